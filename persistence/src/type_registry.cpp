#include "evident/persistence/type_registry.hpp"

#include <limits>

namespace evident {

namespace {

std::string describe(std::string_view name, uint32_t schema) {
  return "'" + std::string{name} + "' schema " + std::to_string(schema);
}

} // namespace

status schema_registry::add(std::string name, uint32_t schema) {
  if (name.empty())
    return {errc::invalid_input, "event type name is empty"};
  if (schema == 0)
    return {errc::invalid_input, "schema versions start at 1 ('" + name + "')"};
  if (current_.count(name) != 0)
    return {errc::invalid_input, "event type '" + name + "' is registered already"};
  // A step from the current schema (or a later one) would never run: lift stops at
  // the current schema. Refuse it rather than ignore it silently.
  if (auto i = steps_.find(name); i != steps_.end())
    if (auto j = i->second.lower_bound(schema); j != i->second.end())
      return {errc::invalid_input, "an upcaster leads away from " + describe(name, j->first)
                                     + ", which is not older than the current schema "
                                     + std::to_string(schema)};
  current_.emplace(std::move(name), schema);
  return {};
}

status schema_registry::upcast(std::string name, uint32_t from_schema, transform fn) {
  if (!fn)
    return {errc::invalid_input, "upcaster for " + describe(name, from_schema) + " is empty"};
  if (from_schema == std::numeric_limits<uint32_t>::max())
    return {errc::invalid_input, "cannot upcast from the largest schema number"};
  auto to = name;
  return add_step(std::move(name), from_schema, step{std::move(to), from_schema + 1, std::move(fn)});
}

status schema_registry::rename(std::string old_name, uint32_t old_schema, std::string new_name,
                               uint32_t new_schema, transform fn) {
  if (old_name == new_name)
    return {errc::invalid_input, "rename of '" + old_name + "' to itself (use upcast)"};
  if (new_name.empty())
    return {errc::invalid_input, "rename target name is empty"};
  if (new_schema == 0)
    return {errc::invalid_input, "schema versions start at 1 ('" + new_name + "')"};
  return add_step(std::move(old_name), old_schema,
                  step{std::move(new_name), new_schema, std::move(fn)});
}

status schema_registry::add_step(std::string name, uint32_t schema, step s) {
  if (name.empty())
    return {errc::invalid_input, "event type name is empty"};
  if (schema == 0)
    return {errc::invalid_input, "schema versions start at 1 ('" + name + "')"};
  if (find_step(name, schema) != nullptr)
    return {errc::invalid_input, describe(name, schema) + " has an upcaster already"};
  if (auto cur = current_schema(name); cur && *cur <= schema)
    return {errc::invalid_input, describe(name, schema) + " is not older than the current schema "
                                   + std::to_string(*cur) + "; nothing to upcast"};
  // Paths are deterministic (one step per key), so following the new step's target
  // either ends or comes back to the new step's source: the only cycle it can close.
  std::string_view n = s.to_name;
  uint32_t v = s.to_schema;
  for (size_t hops = 0; hops <= step_count_; ++hops) {
    if (n == name && v == schema)
      return {errc::invalid_input, "upcaster from " + describe(name, schema) + " to "
                                     + describe(s.to_name, s.to_schema) + " closes a cycle"};
    auto next = find_step(n, v);
    if (next == nullptr)
      break;
    n = next->to_name;
    v = next->to_schema;
  }
  steps_[std::move(name)].emplace(schema, std::move(s));
  ++step_count_;
  return {};
}

const schema_registry::step* schema_registry::find_step(std::string_view name,
                                                         uint32_t schema) const noexcept {
  auto i = steps_.find(name);
  if (i == steps_.end())
    return nullptr;
  auto j = i->second.find(schema);
  return j != i->second.end() ? &j->second : nullptr;
}

bool schema_registry::knows(std::string_view name) const noexcept {
  return current_.find(name) != current_.end() || steps_.find(name) != steps_.end();
}

std::optional<uint32_t> schema_registry::current_schema(std::string_view name) const noexcept {
  if (auto i = current_.find(name); i != current_.end())
    return i->second;
  return std::nullopt;
}

expected<schema_registry::lifted> schema_registry::lift(std::string_view type, uint32_t schema,
                                                        std::string_view payload,
                                                        std::string& buffer) const {
  lifted out;
  out.type = type;
  out.schema = schema;
  out.payload = payload;
  // Registration refuses cycles, so the path ends within step_count_ hops; the bound
  // is a second line of defence, not a code path.
  for (;;) {
    auto cur = current_.find(out.type);
    if (cur != current_.end() && cur->second == out.schema) {
      out.type = cur->first; // point into the registry, not into the caller's string
      return out;
    }
    const step* next = find_step(out.type, out.schema);
    if (next == nullptr || out.steps > step_count_) {
      std::string msg;
      if (cur != current_.end() && out.schema > cur->second)
        msg = "event " + describe(out.type, out.schema) + " is newer than the registered schema "
              + std::to_string(cur->second) + " (written by a newer build?)";
      else if (cur != current_.end())
        msg = "no upcaster from " + describe(out.type, out.schema) + " (current schema "
              + std::to_string(cur->second) + ")";
      else
        msg = "unknown event type " + describe(out.type, out.schema);
      if (out.steps > 0)
        msg += ", reached from " + describe(type, schema);
      return error{errc::unknown_event_type, std::move(msg)};
    }
    if (next->fn) {
      try {
        // The transform reads `out.payload` (possibly a view into `buffer`) before the
        // assignment replaces `buffer`.
        buffer = next->fn(out.payload);
      } catch (const std::exception& ex) {
        return error{errc::corrupted, "upcaster from " + describe(out.type, out.schema)
                                        + " failed: " + ex.what()};
      } catch (...) {
        return error{errc::corrupted,
                     "upcaster from " + describe(out.type, out.schema) + " failed"};
      }
      out.payload = buffer;
    }
    out.type = next->to_name;
    out.schema = next->to_schema;
    ++out.steps;
  }
}

} // namespace evident
