#pragma once

// The saga manager: one actor per saga type and node. It is a subscriber (event_batch.hpp)
// that routes each event to its saga instance, journals each instance's progress in the
// instance's own stream (through the journal writer), dispatches the outbox through the
// router with deterministic command ids, retries transient failures with backoff, fires
// durable deadlines, and parks instances that fail (visible, retried by an operator).
//
// Protocol (untyped `caf::actor`; atoms below and in evident/actors/atoms.hpp):
//
//   (deliver_atom, event_batch) -> uint64_t handled_through
//       From a subscription. Answered only once every input the batch caused is durable
//       in the saga streams (the outbox with it), so a checkpoint never runs ahead of
//       what the sagas recorded. Re-delivered events are skipped per instance
//       (`saga_record::source_position`): each event is applied to a saga at most once.
//   (saga_list_atom, saga_query) -> std::vector<saga_summary>
//   (saga_show_atom, std::string key) -> saga_detail | error
//       One instance with its history (read from its stream). invalid_input: no such key.
//   (saga_retry_atom, std::string key) -> saga_summary | error
//       Un-parks a parked instance (answered once that is durable): its outbox is sent
//       again (same command ids), a parked event or deadline is handled again, events
//       that arrived while it was parked follow. invalid_input: unknown or not parked.
//   (saga_wait_atom, std::string key) -> saga_summary
//       Answers once the instance is completed, compensated, failed or parked (at once
//       when it is). Unknown keys wait for the instance to appear. Use a finite timeout.
//   (saga_tick_atom)
//       Fires the deadlines due by the saga clock now (also done every `tick_interval`).
//   (metrics_atom) -> saga_metrics
//
// One input per instance is in flight at a time (inputs queue per instance); inputs of
// different instances go to the writer together and share its group commits.
//
//   event ─▶ route ─▶ instance queue ─▶ advance() ─▶ append ──committed──▶ dispatch outbox
//                                           ▲                                  │
//                 outcome / deadline / retry┘◀── reply, refusal or error ◀─────┘
//
// Failures: a progress append that times out or fails with an unknown outcome stops the
// manager with that error (the batch in flight is answered with it, so the subscription
// stops too); whoever supervises it spawns a new one, which recovers from the journal.
// Overloaded appends are retried with backoff.
//
// Recovery (in the spawn function): every stream "saga:<name>:*" is listed and its last
// record read; unfinished instances get their outbox dispatched again (same command
// ids), deadlines re-armed (overdue ones fire at the first tick, right after start),
// deferred events replayed. Cost: one read per saga stream ever written.

#include "evident/actors/atoms.hpp"
#include "evident/actors/event_batch.hpp"
#include "evident/persistence/journal.hpp"
#include "evident/sagas/clock.hpp"
#include "evident/sagas/defaults.hpp"
#include "evident/sagas/options.hpp"
#include "evident/sagas/record.hpp"
#include "evident/sagas/saga.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace evident {

// -- atoms -----------------------------------------------------------------------------

using saga_list_atom = caf::atom_constant<caf::atom("saga_list")>;
using saga_show_atom = caf::atom_constant<caf::atom("saga_show")>;
using saga_retry_atom = caf::atom_constant<caf::atom("saga_retry")>;
using saga_wait_atom = caf::atom_constant<caf::atom("saga_wait")>;
using saga_tick_atom = caf::atom_constant<caf::atom("saga_tick")>;

/// What a saga manager works with.
struct saga_env {
  /// The journal writer (journal_writer.hpp); required. Writes to `journal`.
  caf::actor writer;
  /// The journal, for recovery, history and replays; required.
  std::shared_ptr<::evident::journal> journal;
  /// Where commands go: an actor speaking the aggregate router's protocol
  /// (aggregate_router.hpp); required.
  caf::actor router;
  /// The saga clock; null = the system clock.
  std::shared_ptr<const saga_clock> clock;
  saga_options options;
};

// -- status ----------------------------------------------------------------------------

/// Which instances `saga_list_atom` returns.
struct saga_query {
  /// Only instances in this state; nullopt = all.
  std::optional<saga_status> status;
  /// At most this many (in key order).
  size_t limit = 1'000;
};

/// One instance, as listed.
struct saga_summary {
  std::string key;
  std::string stream;
  saga_status status = saga_status::waiting;
  uint64_t step = 0;
  int64_t started_ns = 0;
  int64_t updated_ns = 0;
  /// Commands out, deadlines armed.
  size_t outbox = 0;
  size_t deadlines = 0;
  /// Why it is parked (empty otherwise).
  std::string error;
};

/// One instance with its history: every record of its stream, oldest first.
struct saga_detail {
  saga_summary summary;
  std::vector<saga_record> history;
};

/// The counters of one manager. Gauges: how many instances are in each state now.
struct saga_metrics {
  uint64_t running = 0;
  uint64_t waiting = 0;
  uint64_t completed = 0;
  uint64_t compensated = 0;
  uint64_t failed = 0;
  uint64_t parked = 0;
  /// Counters since the manager started.
  uint64_t started = 0;          ///< instances created
  uint64_t events = 0;           ///< events handled (applied or deferred)
  uint64_t duplicates = 0;       ///< re-delivered events skipped
  uint64_t ignored = 0;          ///< events for unknown or ended instances
  uint64_t unroutable = 0;       ///< events that did not decode or route (skipped)
  uint64_t appends = 0;          ///< progress records written
  uint64_t commands = 0;         ///< dispatches (retries included)
  uint64_t retries = 0;          ///< dispatches after a transient failure
  uint64_t outcomes = 0;         ///< command outcomes handled
  uint64_t deadlines_fired = 0;
  uint64_t parkings = 0;
  uint64_t operator_retries = 0;
  uint64_t recovered = 0;        ///< unfinished instances found at start
  /// The last event position skipped as unroutable (0 = none), for operators.
  uint64_t last_unroutable = 0;
};

/// The subscription name of a saga type's manager: "saga." + name.
std::string saga_subscription_name(const saga_model& m);

/// Spawns the manager of `model` (a cooperative actor) and recovers its instances.
/// Give it to a subscription (name `saga_subscription_name`, filtered on
/// `model->knows(type)`; managed checkpoints are enough: re-deliveries are skipped).
/// Throws std::invalid_argument when writer, journal, router or model are missing or
/// the options are invalid. A journal that cannot be read at start makes the manager
/// stop at once with that error (monitor it).
caf::actor spawn_saga_manager(caf::actor_system& sys, saga_env env,
                              std::shared_ptr<const saga_model> model);

} // namespace evident

// Local only: status types carry enums and records; operators reach them in-process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(evident::saga_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(evident::saga_summary)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(evident::saga_detail)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(evident::saga_metrics)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<evident::saga_summary>)
