#include "evident/sagas/record.hpp"

#include <algorithm>
#include <exception>
#include <functional>
#include <stdexcept>

namespace evident {

// -- names -----------------------------------------------------------------------------

std::string_view to_string(saga_end x) noexcept {
  switch (x) {
    case saga_end::none:
      return "none";
    case saga_end::completed:
      return "completed";
    case saga_end::compensated:
      return "compensated";
    case saga_end::failed:
      return "failed";
  }
  return "unknown";
}

std::string_view to_string(saga_status x) noexcept {
  switch (x) {
    case saga_status::running:
      return "running";
    case saga_status::waiting:
      return "waiting";
    case saga_status::completed:
      return "completed";
    case saga_status::compensated:
      return "compensated";
    case saga_status::failed:
      return "failed";
    case saga_status::parked:
      return "parked";
  }
  return "unknown";
}

std::optional<saga_status> saga_status_from_string(std::string_view x) noexcept {
  for (auto s : {saga_status::running, saga_status::waiting, saga_status::completed,
                 saga_status::compensated, saga_status::failed, saga_status::parked})
    if (to_string(s) == x)
      return s;
  return std::nullopt;
}

saga_model::~saga_model() = default;

std::string saga_model::stream_of(std::string_view key) const {
  std::string out = "saga:";
  out += name();
  out += ':';
  out += key;
  return out;
}


// -- record codec ----------------------------------------------------------------------

saga_status saga_record::status() const noexcept {
  if (parked != park_cause::none)
    return saga_status::parked;
  if (!outbox.empty())
    return saga_status::running;
  switch (end) {
    case saga_end::completed:
      return saga_status::completed;
    case saga_end::compensated:
      return saga_status::compensated;
    case saga_end::failed:
      return saga_status::failed;
    case saga_end::none:
      break;
  }
  return saga_status::waiting;
}

void saga_record::msgpack_unpack(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size < 13)
    throw msgpack::type_error{};
  const auto* a = o.via.array.ptr;
  a[0].convert(step);
  a[1].convert(time_ns);
  a[2].convert(started_ns);
  a[3].convert(input);
  a[4].convert(source_position);
  a[5].convert(state);
  a[6].convert(outbox);
  a[7].convert(deadlines);
  auto e = a[8].as<uint8_t>();
  auto p = a[9].as<uint8_t>();
  if (e > static_cast<uint8_t>(saga_end::failed) || p > static_cast<uint8_t>(park_cause::dispatch))
    throw std::runtime_error("saga record: end or park cause out of range");
  end = static_cast<saga_end>(e);
  parked = static_cast<park_cause>(p);
  a[10].convert(parked_ref);
  a[11].convert(error);
  a[12].convert(deferred);
}

namespace {

/// Lets msgpack's packer append to a string reserved up front.
struct payload_sink {
  std::string& out;
  void write(const char* p, size_t n) {
    out.append(p, n);
  }
};

/// An upper bound of a record's msgpack size: strings plus a few bytes of framing each
/// (msgpack adds at most 9 bytes per value). One allocation instead of the string
/// doubling its way up while the packer appends piece by piece.
size_t size_hint(const saga_record& r) {
  size_t n = 128 + r.input.size() + r.state.size() + r.parked_ref.size() + r.error.size()
             + 9 * r.deferred.size();
  for (const auto& e : r.outbox)
    n += 48 + e.command_id.size() + e.tag.size() + e.target_type.size() + e.target_id.size()
         + e.payload.size();
  for (const auto& d : r.deadlines)
    n += 16 + d.name.size();
  return n;
}

} // namespace

event_data encode_record(const saga_record& r) {
  event_data out;
  out.type = std::string{saga_record_type};
  out.schema = saga_record_schema;
  out.payload.reserve(size_hint(r));
  payload_sink sink{out.payload};
  msgpack::pack(sink, r);
  return out;
}

expected<saga_record> decode_record(const recorded_event& e) {
  if (e.type != saga_record_type || e.schema != saga_record_schema) {
    error err{errc::corrupted, "stream '" + e.stream + "' version " + std::to_string(e.version)
                                 + " is not a saga record (type '" + e.type + "')"};
    err.position = e.position;
    return err;
  }
  auto r = from_msgpack<saga_record>(e.payload);
  if (!r) {
    error err{errc::corrupted, "stream '" + e.stream + "' version " + std::to_string(e.version)
                                 + ": " + r.err().message};
    err.position = e.position;
    return err;
  }
  return r;
}

std::string saga_command_id(std::string_view stream, uint64_t step, size_t index) {
  std::string out{stream};
  out += '/';
  out += std::to_string(step);
  out += '/';
  out += std::to_string(index);
  return out;
}

bool is_transient(errc code) noexcept {
  switch (code) {
    case errc::unavailable:
    case errc::overloaded:
    case errc::timeout:
    case errc::io_error:
    case errc::storage_full:
    case errc::wrong_expected_version:
      return true;
    default:
      return false;
  }
}

// -- the rules -------------------------------------------------------------------------

namespace {

advance_result skip(std::string_view why) {
  advance_result r;
  r.skipped = why;
  return r;
}

/// The record after `cur`: next step, this input's time; everything else carried over.
saga_record next_of(const saga_record& cur, int64_t now_ns, std::string input) {
  saga_record next = cur;
  next.step = cur.step + 1;
  next.time_ns = now_ns;
  if (cur.step == 0)
    next.started_ns = now_ns;
  next.input = std::move(input);
  return next;
}

void apply_step(advance_result& r, const std::string& stream, erased_step& s, int64_t now_ns) {
  auto& next = r.record;
  next.state = std::move(s.state_bytes);
  for (size_t i = 0; i < s.commands.size(); ++i) {
    auto& c = s.commands[i];
    auto id = saga_command_id(stream, next.step, i);
    if (c.aggregate.value.has_value())
      r.prepared.emplace_back(id, std::move(c.aggregate));
    next.outbox.push_back({std::move(id), std::move(c.tag), std::move(c.target_type),
                           std::move(c.target_id), std::move(c.payload)});
  }
  auto drop = [&](const std::string& name) {
    std::erase_if(next.deadlines, [&](const deadline_entry& d) { return d.name == name; });
  };
  for (auto& name : s.deadlines_cancelled)
    drop(name);
  for (auto& [name, after] : s.deadlines_set) {
    drop(name);
    next.deadlines.push_back({name, now_ns + after.count()});
  }
  if (s.end != saga_end::none) {
    next.end = s.end;
    next.deadlines.clear();
  }
}

void park(saga_record& next, park_cause cause, std::string ref, const error& err) {
  next.parked = cause;
  next.parked_ref = std::move(ref);
  next.error = to_string(err);
  next.input += " -> parked";
}

/// Runs the handler on `in` and builds the next record (parked on failure).
advance_result run_handler(const saga_model& m, const std::string& stream, const saga_record& cur,
                           const std::any& state, erased_input& in, std::string what,
                           park_cause cause, std::string ref,
                           const std::function<void(saga_record&)>& on_success) {
  advance_result r;
  r.changed = true;
  r.record = next_of(cur, in.now_ns, std::move(what));
  auto s = m.handle(state, in);
  if (!s) {
    park(r.record, cause, std::move(ref), s.err());
    r.state = state;
    r.parked_now = true;
    return r;
  }
  if (on_success)
    on_success(r.record);
  apply_step(r, stream, *s, in.now_ns);
  r.state = std::move(s->state);
  return r;
}

} // namespace

advance_result advance_event(const saga_model& m, const saga_instance_view& inst,
                             const saga_event_input& in, int64_t now_ns) {
  saga_record fresh;
  std::any fresh_state;
  const saga_record* cur = inst.record;
  const std::any* state = inst.state;
  bool starts = in.routed.route.k == saga_route::kind::start;
  if (cur == nullptr) {
    if (!starts)
      return skip("unknown");
    fresh_state = m.initial_state();
    cur = &fresh;
    state = &fresh_state;
  }
  if (!in.replay && in.position <= cur->source_position)
    return skip("duplicate");
  if (cur->end != saga_end::none)
    return skip("ended");
  std::string what = (starts ? "start " : "event ") + in.type + " @" + std::to_string(in.position);
  if (cur->parked != park_cause::none) {
    if (in.replay) // still in `deferred`: replayed after the next retry
      return skip("parked");
    advance_result r;
    r.changed = true;
    r.record = next_of(*cur, now_ns, "defer " + in.type + " @" + std::to_string(in.position));
    r.record.deferred.push_back(in.position);
    r.record.source_position = std::max(cur->source_position, in.position);
    r.state = *state;
    return r;
  }
  erased_input ei;
  ei.kind = saga_input_kind::event;
  ei.now_ns = now_ns;
  ei.event = in.routed.event;
  ei.position = in.position;
  ei.stream = in.stream;
  ei.type = in.type;
  ei.starts = starts;
  auto bookkeeping = [&](saga_record& next) {
    next.source_position = std::max(cur->source_position, in.position);
    if (in.replay) {
      auto i = std::find(next.deferred.begin(), next.deferred.end(), in.position);
      if (i != next.deferred.end())
        next.deferred.erase(i);
    }
  };
  auto r = run_handler(m, inst.stream, *cur, *state, ei, std::move(what), park_cause::event,
                       std::to_string(in.position), bookkeeping);
  if (r.parked_now)
    bookkeeping(r.record);
  return r;
}

advance_result advance_deadline(const saga_model& m, const saga_instance_view& inst,
                                const std::string& name, int64_t due_ns, int64_t now_ns) {
  if (inst.record == nullptr)
    return skip("unknown");
  const auto& cur = *inst.record;
  if (cur.parked != park_cause::none)
    return skip("parked");
  if (cur.end != saga_end::none)
    return skip("ended");
  auto i = std::find_if(cur.deadlines.begin(), cur.deadlines.end(), [&](const deadline_entry& d) {
    return d.name == name && d.due_ns == due_ns;
  });
  if (i == cur.deadlines.end())
    return skip("stale");
  erased_input ei;
  ei.kind = saga_input_kind::deadline;
  ei.now_ns = now_ns;
  ei.deadline = name;
  return run_handler(m, inst.stream, cur, *inst.state, ei, "deadline " + name,
                     park_cause::deadline, name, [&](saga_record& next) {
                       std::erase_if(next.deadlines, [&](const deadline_entry& d) {
                         return d.name == name && d.due_ns == due_ns;
                       });
                     });
}

advance_result advance_outcome(const saga_model& m, const saga_instance_view& inst,
                               command_outcome outcome, int64_t now_ns) {
  if (inst.record == nullptr)
    return skip("unknown");
  const auto& cur = *inst.record;
  auto i = std::find_if(cur.outbox.begin(), cur.outbox.end(), [&](const outbox_entry& e) {
    return e.command_id == outcome.command_id;
  });
  if (i == cur.outbox.end())
    return skip("stale");
  if (cur.parked != park_cause::none)
    return skip("parked");
  outcome.tag = i->tag;
  outcome.target_type = i->target_type;
  outcome.target_id = i->target_id;
  std::string what = "outcome " + i->tag + " "
                     + (outcome.ok() ? std::string{"ok"} : "error " + to_string(outcome.error));
  auto remove = [id = outcome.command_id](saga_record& next) {
    std::erase_if(next.outbox, [&](const outbox_entry& e) { return e.command_id == id; });
  };
  if (cur.end != saga_end::none) {
    advance_result r;
    r.changed = true;
    r.record = next_of(cur, now_ns, what + " (after end)");
    remove(r.record);
    r.state = *inst.state;
    return r;
  }
  erased_input ei;
  ei.kind = saga_input_kind::outcome;
  ei.now_ns = now_ns;
  auto id = outcome.command_id;
  ei.outcome = std::move(outcome);
  return run_handler(m, inst.stream, cur, *inst.state, ei, std::move(what), park_cause::outcome,
                     std::move(id), remove);
}

advance_result park_dispatch(const saga_instance_view& inst, const std::string& command_id,
                             const error& err, int64_t now_ns) {
  if (inst.record == nullptr)
    return skip("unknown");
  advance_result r;
  r.changed = true;
  r.record = next_of(*inst.record, now_ns, "dispatch " + command_id + " failed");
  park(r.record, park_cause::dispatch, command_id, err);
  r.state = *inst.state;
  r.parked_now = true;
  return r;
}

expected<advance_result> unpark(const saga_instance_view& inst, int64_t now_ns) {
  if (inst.record == nullptr)
    return error{errc::invalid_input, "no saga instance '" + inst.stream + "'"};
  const auto& cur = *inst.record;
  if (cur.parked == park_cause::none)
    return error{errc::invalid_input, "saga '" + inst.stream + "' is not parked (it is "
                                        + std::string{to_string(cur.status())} + ")"};
  advance_result r;
  r.changed = true;
  r.record = next_of(cur, now_ns, "retry (was parked: " + cur.error + ")");
  if (cur.parked == park_cause::event) {
    uint64_t pos = 0;
    try {
      pos = std::stoull(cur.parked_ref);
    } catch (...) {
      return error{errc::corrupted, "saga '" + inst.stream + "': bad parked position '"
                                      + cur.parked_ref + "'"};
    }
    r.record.deferred.insert(r.record.deferred.begin(), pos);
  }
  r.record.parked = park_cause::none;
  r.record.parked_ref.clear();
  r.record.error.clear();
  r.state = *inst.state;
  return r;
}

} // namespace evident
