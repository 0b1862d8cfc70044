#pragma once

// Loading an aggregate's state from the journal: the latest state, the state after
// version N, or the state at time T. Recovery (aggregate actor), temporal queries
// (router) and the test kit share `state_loader`, so all three fold events the same
// way: the nearest usable snapshot at or below the bound, then a replay of later events.
//
//   auto s = evident::state_at<account_aggregate>(*journal, snapshots.get(), "acc-1",
//                                                 evident::state_query::at_version(3));
//   if (s) use(s->state, s->version);

#include "evident/actors/aggregate.hpp"
#include "evident/actors/defaults.hpp"
#include "evident/persistence/journal.hpp"
#include "evident/persistence/snapshot_store.hpp"

#include <caf/meta/type_name.hpp>

#include <any>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace evident {

/// Which state of an aggregate to load.
struct state_query {
  enum class kind : uint8_t {
    latest,     ///< after the last event
    at_version, ///< after event `version` (the last event when the stream is shorter)
    at_time,    ///< after the last event whose time is <= `time_ns` (event times are
                ///< the journal's write times; assumed non-decreasing within a stream)
  };
  kind k = kind::latest;
  uint64_t version = 0;
  int64_t time_ns = 0;

  static state_query latest() noexcept {
    return {};
  }
  static state_query at_version(uint64_t n) noexcept {
    return {kind::at_version, n, 0};
  }
  static state_query at_time(int64_t ns) noexcept {
    return {kind::at_time, 0, ns};
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, state_query& x) {
  return f(caf::meta::type_name("evident.state_query"), x.k, x.version, x.time_ns);
}

/// A loaded state (type-erased: `state` holds a `Spec::state`).
struct aggregate_state {
  std::string stream;
  /// The version of the last event folded in; 0 when none. For `latest` on a stream
  /// whose events were all deleted (soft delete), the stream's version.
  uint64_t version = 0;
  /// The time of the last event replayed (0 when only a snapshot or nothing was used).
  int64_t time_ns = 0;
  /// The version of the snapshot the load started from (0 = none: full replay).
  uint64_t snapshot_version = 0;
  /// Events replayed after the snapshot.
  uint64_t replayed = 0;
  std::any state;
};

/// Loads one aggregate's state step by step, so that an actor can replay a long stream
/// in bounded batches between other messages.
///
///   state_loader l{model, journal, snapshots, stream, query};
///   if (auto err = l.start()) ...;      // snapshot + head
///   for (;;) { auto done = l.step(1024); if (!done) ...; if (*done) break; }
///   use(l.result());
///
/// Snapshots: the one with the highest version at or below the bound is used when its
/// type and schema equal the model's (`state_type`, `state_schema`), it decodes, and it
/// is not beyond the stream's version; otherwise it is ignored and the stream replayed
/// from its start. A snapshot store that reports the snapshot corrupted is ignored the
/// same way (events are the source of truth).
///
/// Thread: one thread at a time; `model`, `j` and `snapshots` (may be null: no
/// snapshots) must outlive the loader. Cost: one snapshot load and one head read in
/// `start`, one read of at most `n` events per `step`.
class state_loader {
public:
  state_loader(const aggregate_model& model, journal& j, snapshot_store* snapshots,
               std::string stream, state_query q = {});

  /// Reads the stream's head and the snapshot.
  /// Fails with: stream_deleted (tombstoned), invalid_input / too_large (bad stream id),
  ///   io_error. (A snapshot that does not decode is ignored, not an error.)
  [[nodiscard]] status start();

  /// Replays at most `n` further events (n >= 1). Returns true when the state is
  /// complete.
  /// Fails with: corrupted (a record fails its checksum or payload, or apply threw),
  ///   unknown_event_type, stream_deleted, io_error. Messages name stream and version.
  [[nodiscard]] expected<bool> step(size_t n);

  /// The state so far (complete once `step` returned true).
  aggregate_state& result() noexcept {
    return result_;
  }

  /// The stream's version per its head at `start`.
  uint64_t head_version() const noexcept {
    return head_version_;
  }

private:
  const aggregate_model& model_;
  journal& journal_;
  snapshot_store* snapshots_;
  state_query query_;
  aggregate_state result_;
  uint64_t head_version_ = 0;
  bool done_ = false;
};

/// Loads the state of the aggregate with id `id` (stream `model.stream_of(id)`) in one
/// call. Blocks the calling thread for the whole replay: in an actor, use the router's
/// state query instead (it replays in batches).
/// Fails as `state_loader::start` and `step`.
[[nodiscard]] expected<aggregate_state>
load_state(const aggregate_model& model, journal& j, snapshot_store* snapshots,
           const std::string& id, state_query q = {},
           size_t batch = defaults::aggregate::replay_batch);

/// A typed state with its version.
template <class Spec>
struct typed_state {
  typename Spec::state state;
  uint64_t version = 0;
  int64_t time_ns = 0;
};

/// `load_state` for one spec, with the state unboxed.
template <aggregate_spec Spec>
expected<typed_state<Spec>> state_at(journal& j, snapshot_store* snapshots,
                                     const std::string& id, state_query q = {}) {
  spec_model<Spec> model;
  auto r = load_state(model, j, snapshots, id, q);
  if (!r)
    return std::move(r).err();
  typed_state<Spec> out;
  out.state = std::any_cast<typename Spec::state>(std::move(r->state));
  out.version = r->version;
  out.time_ns = r->time_ns;
  return out;
}

/// The stored reply of the command `command_id` on `stream`, for a retry: nullopt when
/// no append carried that id, or the append wrote no events (such a command is decided
/// again: nothing of it was stored).
/// Fails with: invalid_input (the command's events were deleted or carry no reply under
///   `reply_meta_key`, or it does not decode), and what the journal's find_command and
///   read_stream fail with.
[[nodiscard]] expected<std::optional<std::any>>
find_reply(const aggregate_model& model, journal& j, const std::string& stream,
           const std::string& command_id);

} // namespace evident
