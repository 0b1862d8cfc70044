#pragma once

// The aggregate router: one actor per node that holds the live aggregates by
// (type, id), activates them on demand and passivates idle ones.
//
// Protocol (untyped `caf::actor`; atoms in atoms.hpp; boxes in aggregate.hpp):
//
//   (command_atom, std::string type, std::string id, std::string command_id, command_box)
//       -> reply_box | caf::error
//       Finds or spawns the aggregate and forwards the request with `delegate`: the
//       aggregate answers the caller directly; the router holds nothing per request.
//       `command_id` may be empty (no deduplication). Errors (see errc.hpp,
//       `from_caf_error`):
//         invalid_input        unknown type, empty id, a command of another type,
//                              decide/apply threw; nothing persisted
//         overloaded           the aggregate's stash is full; nothing persisted, retry
//         wrong_expected_version  someone else wrote the stream; the aggregate restarts
//         too_large, unknown_event_type  the events cannot be stored; state unchanged
//         stream_deleted       the stream is tombstoned
//         corrupted            recovery met a bad event; this aggregate cannot start
//         io_error, storage_full, timeout  outcome unknown; retry with the same command id
//         sec::request_receiver_down  the aggregate passivated (or stopped) between the
//                              router's lookup and the delivery; nothing happened:
//                              callers retry once (the runtime does)
//   (state_atom, std::string type, std::string id, state_query) -> aggregate_state | error
//       A temporal query, run by a short-lived actor off the live aggregate (it reads
//       committed events only, in batches of `replay_batch`).
//   (metrics_atom) -> router_metrics
//
// A command's trip through one aggregate (see aggregate_actor.cpp for the phases):
//
//   router --delegate--> aggregate: [fencing] -> recovering -> running
//                                     |          (commands wait in the stash)
//                                     v
//                  decide against the pending state (committed + in-flight events),
//                  append(expected = pending version) to the journal writer, and the
//                  next command is decided without waiting (pipelining); replies leave
//                  in command order, each only after its append committed.
//
// Passivation: the router asks aggregates idle for `idle_timeout` (one periodic tick
// walks its LRU list from the cold end) and the least recently used beyond
// `max_active` to stop; an aggregate stops only when it holds nothing.
//
// The router monitors the journal writer: if it dies, every live aggregate stops
// (in-flight commands get io_error, stashed ones overloaded).
//
// Stopping: an exit message (e.g. user_shutdown) makes the router stop every aggregate
// it spawned (each answers what it holds: in-flight commands get io_error, stashed ones
// overloaded) and the snapshot writer it spawned, then quit.

#include "evident/actors/aggregate.hpp"
#include "evident/actors/defaults.hpp"
#include "evident/actors/temporal.hpp"
#include "evident/persistence/journal.hpp"
#include "evident/persistence/snapshot_store.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/meta/type_name.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace evident {

/// Options of every aggregate of one router. Validated by `spawn_aggregate_router`.
struct aggregate_options {
  /// Events replayed per handler invocation during recovery and temporal queries
  /// (at least 1). Default: defaults::aggregate::replay_batch (1,024).
  size_t replay_batch = defaults::aggregate::replay_batch;
  /// Commands an aggregate holds undecided while it recovers or while `max_in_flight`
  /// commands are pending; more get errc::overloaded at once (0 = refuse all).
  /// Default: defaults::aggregate::max_stash (1,000).
  size_t max_stash = defaults::aggregate::max_stash;
  /// Commands an aggregate has decided and not yet answered (at least 1; 1 = no
  /// pipelining: each command waits for the previous commit).
  /// Default: defaults::aggregate::max_in_flight (256).
  size_t max_in_flight = defaults::aggregate::max_in_flight;
  /// How long an aggregate waits for the writer's answer to an append (and to the
  /// recovery fence); then the outcome is unknown (errc::timeout) and the aggregate
  /// stops. Checked by one watchdog message per aggregate while appends are
  /// unanswered, so a timeout is noticed at most one check late (normally on time).
  /// Default: 10 s (defaults::aggregate::append_timeout_ms).
  std::chrono::nanoseconds append_timeout
    = std::chrono::milliseconds{defaults::aggregate::append_timeout_ms};
  /// An aggregate that got no command for this long is asked to passivate; it stops
  /// if nothing is stashed or in flight (0 = never). The router checks every
  /// idle_timeout / 4 (clamped to [10 ms, 60 s]), so an idle aggregate stops between
  /// 1 and about 1.25 idle_timeouts after its last command.
  /// Default: 2 min (defaults::aggregate::idle_timeout_ms).
  std::chrono::nanoseconds idle_timeout
    = std::chrono::milliseconds{defaults::aggregate::idle_timeout_ms};
  /// Most live aggregates; the least recently used one is asked to passivate when an
  /// activation exceeds it (it stops only if idle, so the count may exceed the cap while
  /// all are busy). At least 1. Default: defaults::aggregate::max_active (100,000).
  size_t max_active = defaults::aggregate::max_active;
};

/// Checks `x`. Fails with errc::invalid_input naming the bad option.
[[nodiscard]] status validate(const aggregate_options& x);

/// What the aggregates of a router work with.
struct aggregate_env {
  /// The journal writer (journal_writer.hpp protocol); required. Must write to
  /// `journal`.
  caf::actor writer;
  /// The journal, for reads (recovery, command-id lookups, temporal queries); required.
  std::shared_ptr<::evident::journal> journal;
  /// Where snapshots are loaded from and saved to; null = no snapshots.
  std::shared_ptr<snapshot_store> snapshots;
  /// An actor speaking the snapshot_writer.hpp protocol for `snapshots`. When null and
  /// `snapshots` is set, the router spawns a detached one and stops it when it stops.
  caf::actor snapshot_writer;
  aggregate_options options;
};

/// The counters of a router and its aggregates since it started.
struct router_metrics {
  /// Live aggregates now.
  uint64_t active = 0;
  /// Aggregates spawned.
  uint64_t activations = 0;
  /// Aggregates that stopped because they were idle (timeout or cap).
  uint64_t passivations = 0;
  /// Passivation requests sent because of `max_active`.
  uint64_t evictions_requested = 0;
  /// Aggregates that stopped for another reason (unknown outcome, conflict, failed
  /// recovery, exit message).
  uint64_t stops = 0;
  /// Recoveries finished, failed, and their total and longest duration (fence,
  /// snapshot, replay).
  uint64_t recoveries = 0;
  uint64_t recovery_failures = 0;
  uint64_t recovery_ns_total = 0;
  uint64_t recovery_ns_max = 0;
  /// Events replayed by recoveries (after their snapshots).
  uint64_t events_replayed = 0;
  /// Commands received by aggregates (retries included).
  uint64_t commands = 0;
  /// Commands answered from an earlier command with the same id.
  uint64_t duplicates = 0;
  /// Commands refused because a stash was full.
  uint64_t stash_overflows = 0;
  /// Appends refused by the journal (too_large, invalid_input, unknown_event_type,
  /// overloaded); the aggregate kept its state.
  uint64_t rejections = 0;
  /// Appends that met someone else's write.
  uint64_t conflicts = 0;
  /// Commands whose decide (or apply) threw or failed.
  uint64_t decide_failures = 0;
  /// Events committed through aggregates.
  uint64_t events = 0;
  /// Snapshots handed to the snapshot writer.
  uint64_t snapshots = 0;
  /// Temporal queries started.
  uint64_t queries = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, router_metrics& x) {
  return f(caf::meta::type_name("evident.router_metrics"), x.active, x.activations,
           x.passivations, x.evictions_requested, x.stops, x.recoveries, x.recovery_failures,
           x.recovery_ns_total, x.recovery_ns_max, x.events_replayed, x.commands,
           x.duplicates, x.stash_overflows, x.rejections, x.conflicts, x.decide_failures,
           x.events, x.snapshots, x.queries);
}

/// Spawns the router for `models` (one per aggregate type, distinct names).
/// Thread: call from setup code or an actor; the router is an ordinary cooperative actor
/// (it never blocks: temporal queries and recoveries run in other actors).
/// Throws std::invalid_argument when `env.writer` or `env.journal` is missing, a model
/// is null or two share a name, or `env.options` is invalid.
caf::actor spawn_aggregate_router(caf::actor_system& sys, aggregate_env env,
                                  std::vector<std::shared_ptr<const aggregate_model>> models);

} // namespace evident

// Local only (std::any inside): commands, replies and loaded states never leave the
// process in this version; the cluster router will carry msgpack bytes instead.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(evident::command_box)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(evident::reply_box)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(evident::aggregate_state)
