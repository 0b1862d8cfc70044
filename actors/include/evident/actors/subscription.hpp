#pragma once

// A subscription: feeds one subscriber actor every committed event that passes its
// filter, in global order, from a start position on, without gaps or duplicates, and
// keeps doing so while the journal grows. It speaks event_batch.hpp's protocol to the
// subscriber and event_bus.hpp's to the bus.
//
//   journal ──read_all (catch-up)──┐
//                                  ├─▶ subscription ──(deliver, event_batch)──▶ subscriber
//   writer ──▶ bus ──live batches──┘        ▲                                      │
//                                           └──────── handled_through ◀────────────┘
//
// How it moves (positions are gap-free, so "covered" = every position up to it was
// read or received, and was sent to the subscriber or filtered out):
//
//   1. Subscribe to the bus and wait for its answer: from then on every published batch
//      arrives here; everything published before is readable from the journal.
//   2. Live batches go into a bounded buffer (the bus's messages themselves: no copy).
//   3. Next delivery, when nothing is in flight:
//        buffer front starts at covered + 1  -> live: merge buffered batches (up to
//                                              read_batch events), deliver;
//        buffer empty, journal may be ahead  -> read the journal from covered + 1
//        buffer front starts later (a gap)   -> read the journal up to the front's start
//      Positions <= covered in a live batch are dropped (the journal read got there
//      first). A read that finds fewer positions than asked (with no buffer) means the
//      journal is exhausted: the subscription waits for live batches.
//   4. Buffer past max_buffer_events: drop it all and go back to step 3 via the journal.
//      The bus and the writer never wait for a subscriber.
//
// One batch is in flight at a time; while it is, the next journal batch is read ahead.
//
// Checkpoints (`checkpoint_mode`):
//   managed:       the subscription saves the subscriber's handled_through in the
//                  checkpoint store every `checkpoint_every` positions or
//                  `checkpoint_interval`, and when it stops: at-least-once delivery
//                  (after a crash the events since the last save come again).
//   by_subscriber: the subscriber stores its position itself (a durable view writes it
//                  with its rows in one transaction: exactly-once effect) and hands it
//                  in as `start_after`.
//
// Lifecycle: the subscription monitors its subscriber and the bus and stops when either
// terminates; it stops on any exit message (saving a managed checkpoint first). It
// stops with an error when the subscriber answers a batch with an error or does not
// answer within deliver_timeout, or when the journal cannot be read.

#include "evident/actors/defaults.hpp"
#include "evident/actors/message_types.hpp"
#include "evident/persistence/checkpoint_store.hpp"
#include "evident/persistence/envelope.hpp"
#include "evident/persistence/errc.hpp"
#include "evident/persistence/journal.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/meta/type_name.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace evident {

/// The category of a stream: its id up to the first '-' ("account-17" -> "account");
/// the whole id when it has no '-'.
std::string_view category_of(std::string_view stream) noexcept;

/// Which events a subscription delivers. Empty lists mean "all". An event passes when
/// its category is listed (or none are), its type is listed (or none are) and the
/// predicate (if any) returns true. Skipped events still advance the subscription
/// (event_batch::through), so the checkpoint moves past them.
struct subscription_filter {
  std::vector<std::string> categories;
  std::vector<std::string> event_types;
  /// Runs on the subscription's thread for every event that passed the lists; keep it
  /// cheap and pure. An exception it throws stops the subscription with invalid_input.
  std::function<bool(const recorded_event&)> predicate;

  bool accepts_all() const noexcept {
    return categories.empty() && event_types.empty() && !predicate;
  }
  /// Throws what the predicate throws.
  bool matches(const recorded_event& e) const;
};

enum class checkpoint_mode : uint8_t {
  /// The subscription saves the checkpoint (at-least-once).
  managed,
  /// The subscriber stores its position itself (see the top of this file).
  by_subscriber,
};

/// One subscription's settings.
struct subscription_options {
  /// The subscription's name: its checkpoint key and event_batch::subscription.
  /// Not empty; the checkpoint store's name rules apply in managed mode.
  std::string name;
  subscription_filter filter;
  checkpoint_mode checkpoints = checkpoint_mode::managed;
  /// The position already handled: delivery starts after it. nullopt: the stored
  /// checkpoint (managed mode; 0 when none), or 0.
  std::optional<uint64_t> start_after;
  /// Positions per journal read and most events per live delivery. Default 4,096.
  size_t read_batch = defaults::subscription::read_batch;
  /// Most buffered live events before falling back to the journal. Default 65,536.
  size_t max_buffer_events = defaults::subscription::max_buffer_events;
  /// Managed checkpoints: save after this many positions (at least 1)... Default 1,000.
  uint64_t checkpoint_every = defaults::subscription::checkpoint_every;
  /// ... or this long after the first unsaved progress. Default 1 s.
  std::chrono::milliseconds checkpoint_interval{defaults::subscription::checkpoint_interval_ms};
  /// Most time the subscriber may take to answer one batch. Default 60 s.
  std::chrono::milliseconds deliver_timeout{defaults::subscription::deliver_timeout_ms};
};

/// Checks `x`. Fails with invalid_input naming the field (empty name, read_batch 0,
/// max_buffer_events < read_batch, checkpoint_every 0, non-positive durations).
[[nodiscard]] status validate(const subscription_options& x);

/// What a subscription reads from and writes to.
struct subscription_env {
  /// The event bus (event_bus.hpp). Null: catch-up only (the subscription reads the
  /// journal to its end and then waits forever; for replays and tools).
  caf::actor bus;
  /// The journal to catch up from. Required.
  std::shared_ptr<journal> jnl;
  /// Where managed checkpoints live. Required in managed mode.
  std::shared_ptr<checkpoint_store> checkpoints;
};

/// A subscription's counters, answered to (metrics_atom).
struct subscription_metrics {
  /// Everything up to here was handled by the subscriber (its last answer).
  uint64_t position = 0;
  /// Everything up to here was delivered or skipped (may be ahead of `position`).
  uint64_t covered = 0;
  /// Events and batches delivered; batches that came from the bus.
  uint64_t events = 0;
  uint64_t batches = 0;
  uint64_t live_batches = 0;
  /// Journal reads, and how often the live buffer overflowed (fell back to the journal).
  uint64_t journal_reads = 0;
  uint64_t overflows = 0;
  /// Live events buffered now.
  uint64_t buffered = 0;
  /// Checkpoints saved (managed mode) and the last saved position.
  uint64_t checkpoints_saved = 0;
  uint64_t checkpoint = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, subscription_metrics& x) {
  return f(caf::meta::type_name("evident.subscription_metrics"), x.position, x.covered, x.events,
           x.batches, x.live_batches, x.journal_reads, x.overflows, x.buffered, x.checkpoints_saved,
           x.checkpoint);
}

/// Spawns a subscription feeding `subscriber` (a cooperative actor: journal reads and
/// checkpoint saves are short, bounded by read_batch and one small commit).
/// Throws std::invalid_argument when `opts` is invalid, `env.jnl` is null, `subscriber`
/// is null, or managed mode lacks `env.checkpoints`. A stored checkpoint that cannot be
/// loaded makes the subscription stop at once with that error (monitor it).
caf::actor spawn_subscription(caf::actor_system& sys, subscription_env env, caf::actor subscriber,
                              subscription_options opts);

} // namespace evident
