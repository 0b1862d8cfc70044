#include "evident/actors/temporal.hpp"

#include <string>
#include <utility>

namespace evident {

state_loader::state_loader(const aggregate_model& model, journal& j, snapshot_store* snapshots,
                           std::string stream, state_query q)
  : model_(model), journal_(j), snapshots_(snapshots), query_(q) {
  result_.stream = std::move(stream);
  result_.state = model_.initial_state();
}

status state_loader::start() {
  auto h = journal_.head(result_.stream);
  if (!h)
    return std::move(h).err();
  if (h->state == stream_state::tombstoned)
    return {errc::stream_deleted, "stream '" + result_.stream + "' is tombstoned"};
  head_version_ = h->version;
  if (head_version_ == 0 || (query_.k == state_query::kind::at_version && query_.version == 0)) {
    // The state before the first event. (No snapshot lookup for a stream never written,
    // which is most cold activations: a snapshot there could only be of version 0.)
    done_ = true;
    return {};
  }
  if (snapshots_ == nullptr)
    return {};
  snapshot_criteria c;
  if (query_.k == state_query::kind::at_version)
    c.max_version = query_.version;
  else if (query_.k == state_query::kind::at_time)
    c.max_time_ns = query_.time_ns;
  auto snap = snapshots_->load(result_.stream, c);
  if (!snap) {
    // A snapshot is only a shortcut: if it is unreadable, the events still are.
    auto code = snap.err().code;
    if (code == errc::corrupted || code == errc::unsupported_format
        || code == errc::invalid_input)
      return {};
    return std::move(snap).err();
  }
  if (!*snap)
    return {};
  auto& s = **snap;
  // Another type or schema (the state struct changed), or a snapshot beyond the
  // stream (a journal replaced under its snapshots): replay everything instead.
  if (s.type != model_.state_type() || s.schema != model_.state_schema()
      || s.version > head_version_)
    return {};
  auto st = model_.decode_state(s.state);
  if (!st)
    return {};
  result_.state = std::move(*st);
  result_.version = s.version;
  result_.snapshot_version = s.version;
  return {};
}

expected<bool> state_loader::step(size_t n) {
  if (done_)
    return true;
  if (n == 0)
    n = 1;
  read_options opts;
  opts.from = result_.version + 1;
  opts.max_count = n;
  if (query_.k == state_query::kind::at_version)
    opts.to = query_.version;
  size_t visited = 0;
  bool reached_time = false;
  status failure;
  auto st = journal_.read_stream(result_.stream, opts, [&](const recorded_event& e) {
    if (query_.k == state_query::kind::at_time && e.time_ns > query_.time_ns) {
      reached_time = true;
      return false;
    }
    ++visited;
    if (auto err = model_.apply(result_.state, e)) {
      failure = std::move(err);
      return false;
    }
    result_.version = e.version;
    result_.time_ns = e.time_ns;
    ++result_.replayed;
    return true;
  });
  if (failure)
    return failure;
  if (st) {
    // Never written or soft-deleted: the state is the initial one.
    if (st.code != errc::stream_not_found)
      return st;
    visited = 0;
  }
  if (reached_time || visited < n) {
    done_ = true;
    // The end was reached below the head: the last events were deleted (soft delete,
    // delete_to). The version goes on from the head, as the next append's numbering does.
    if (query_.k == state_query::kind::latest && result_.version < head_version_)
      result_.version = head_version_;
    return true;
  }
  if (query_.k == state_query::kind::at_version && result_.version >= query_.version) {
    done_ = true;
    return true;
  }
  return false;
}

expected<aggregate_state> load_state(const aggregate_model& model, journal& j,
                                     snapshot_store* snapshots, const std::string& id,
                                     state_query q, size_t batch) {
  state_loader loader{model, j, snapshots, model.stream_of(id), q};
  if (auto err = loader.start())
    return err;
  for (;;) {
    auto done = loader.step(batch);
    if (!done)
      return std::move(done).err();
    if (*done)
      return std::move(loader.result());
  }
}

expected<std::optional<std::any>> find_reply(const aggregate_model& model, journal& j,
                                             const std::string& stream,
                                             const std::string& command_id) {
  auto found = j.find_command(stream, command_id);
  if (!found)
    return std::move(found).err();
  // No append carried the id, or it wrote nothing: decide the command again.
  if (!*found || (*found)->last_position == 0)
    return std::optional<std::any>{};
  auto last = (*found)->last_version;
  read_options opts;
  opts.from = last;
  opts.to = last;
  opts.max_count = 1;
  std::optional<std::string> bytes;
  auto st = j.read_stream(stream, opts, [&](const recorded_event& e) {
    for (auto& [key, value] : e.meta)
      if (key == reply_meta_key) {
        bytes = value;
        break;
      }
    return false;
  });
  if (st && st.code != errc::stream_not_found)
    return st;
  auto what = "command '" + command_id + "' on '" + stream + "' was handled before (versions "
              + std::to_string((*found)->first_version) + ".." + std::to_string(last) + ")";
  if (!bytes)
    return error{errc::invalid_input, what + ", but its reply is no longer stored"};
  auto reply = model.decode_reply(*bytes);
  if (!reply)
    return error{errc::invalid_input, what + ", but its stored reply does not decode: "
                                        + reply.err().message};
  return std::optional<std::any>{std::move(*reply)};
}

} // namespace evident
