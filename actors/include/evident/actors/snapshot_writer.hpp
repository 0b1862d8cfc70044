#pragma once

// The snapshot writer: saves aggregate snapshots off the aggregates' path.
//
// Protocol (untyped `caf::actor`):
//
//   (snapshot_atom, snapshot, uint64_t keep_last)      -- no reply
//       Saves `snapshot` (its `time_ns` 0 = now) and then removes all but the newest
//       `keep_last` snapshots of its stream. Several snapshots of one stream waiting in
//       the mailbox are coalesced: only the newest is saved. A failed save is counted
//       and dropped (snapshots are an optimization: recovery replays instead).
//   (metrics_atom) -> snapshot_writer_metrics
//       First saves everything waiting, so a caller that saw an aggregate's reply and
//       then asks for metrics sees that aggregate's snapshot saved.
//
// Why a separate actor: an aggregate must not wait for a snapshot, and an LMDB write
// transaction (plus fsync) must not run in a cooperative actor. DESIGN wants the journal
// writer to be the only LMDB writer; until it takes this protocol itself (a handler that
// saves between two commits on the writer's thread), this detached actor is a second
// writer whose transactions LMDB's write lock serializes with the writer's commits.
// Aggregates only know "an actor that speaks this protocol", so the swap is local.

#include "evident/actors/atoms.hpp"
#include "evident/persistence/snapshot_store.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <memory>

namespace evident {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot& x) {
  return f(caf::meta::type_name("evident.snapshot"), x.stream, x.version, x.type, x.schema,
           x.time_ns, x.state, x.state_size);
}

/// The snapshot writer's counters since it started.
struct snapshot_writer_metrics {
  /// Snapshots saved.
  uint64_t saved = 0;
  /// Saves (or trims) that failed; the error is dropped.
  uint64_t failed = 0;
  /// Snapshots replaced by a newer one of the same stream before they were saved.
  uint64_t coalesced = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot_writer_metrics& x) {
  return f(caf::meta::type_name("evident.snapshot_writer_metrics"), x.saved, x.failed,
           x.coalesced);
}

/// Spawns a snapshot writer for `store`. `detached` (default) gives it its own thread,
/// as LMDB writes need; pass false for the in-memory store under CAF's deterministic
/// test scheduler. Stop it with an exit message; it saves what it holds first.
/// Throws std::invalid_argument when `store` is null.
caf::actor spawn_snapshot_writer(caf::actor_system& sys, std::shared_ptr<snapshot_store> store,
                                 bool detached = true);

} // namespace evident
