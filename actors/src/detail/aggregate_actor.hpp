#pragma once

// Internal to evident_actors: the aggregate actor and the temporal-query actor, which
// only the router spawns, and the counters they share with it.

#include "evident/actors/aggregate.hpp"
#include "evident/actors/aggregate_router.hpp"
#include "evident/actors/temporal.hpp"

#include <caf/actor.hpp>
#include <caf/actor_clock.hpp>
#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/weak_intrusive_ptr.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace evident::detail {

/// Counters the aggregates of one router update and the router reports
/// (router_metrics). Relaxed atomics: they are statistics, not synchronization.
struct aggregate_counters {
  std::atomic<uint64_t> passivations{0};
  std::atomic<uint64_t> stops{0};
  std::atomic<uint64_t> recoveries{0};
  std::atomic<uint64_t> recovery_failures{0};
  std::atomic<uint64_t> recovery_ns_total{0};
  std::atomic<uint64_t> recovery_ns_max{0};
  std::atomic<uint64_t> events_replayed{0};
  std::atomic<uint64_t> commands{0};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> stash_overflows{0};
  std::atomic<uint64_t> rejections{0};
  std::atomic<uint64_t> conflicts{0};
  std::atomic<uint64_t> decide_failures{0};
  std::atomic<uint64_t> events{0};
  std::atomic<uint64_t> snapshots{0};

  static void add(std::atomic<uint64_t>& x, uint64_t n = 1) noexcept {
    x.fetch_add(n, std::memory_order_relaxed);
  }
  static void max(std::atomic<uint64_t>& x, uint64_t n) noexcept {
    auto cur = x.load(std::memory_order_relaxed);
    while (cur < n && !x.compare_exchange_weak(cur, n, std::memory_order_relaxed)) {
      // retry
    }
  }
};

/// Sent by the router to an aggregate whose append deadline fell due: "check the oldest
/// unanswered request against append_timeout".
using watchdog_atom = caf::atom_constant<caf::atom("agg_wdog")>;

/// Sent to the router when its append watch gets an entry while empty: "tick again".
using watch_wake_atom = caf::atom_constant<caf::atom("rt_wwake")>;

/// The append deadlines of one router's aggregates, checked by the router's watch tick.
///
/// Why not a delayed message per aggregate: in CAF 0.17.6 every delayed message is a
/// hand-off to the clock thread (a mutex, a 64-slot ring and a condition variable), and
/// workers block when the ring is full. A cold activation sends one append, so that
/// hand-off cost about a third of each activation. Here an aggregate with a request out
/// at the writer adds one entry under a mutex, and the router's tick (one clock entry
/// per router) sends a watchdog message to those whose entry fell due. An entry is not
/// removed when its answer comes: the aggregate checks, finds nothing overdue and adds
/// no new entry. Deadlines are therefore checked up to one tick late. The router ticks
/// only while entries are pending: the first entry after an empty spell wakes it.
class append_watch {
public:
  using time_point = caf::actor_clock::time_point;

  /// The router, woken by the first entry after an empty spell. (Weak: the router's
  /// state owns this object.)
  void set_owner(caf::weak_actor_ptr router) {
    std::lock_guard<std::mutex> guard{mtx_};
    owner_ = std::move(router);
  }

  void add(time_point due, caf::weak_actor_ptr who) {
    caf::strong_actor_ptr wake;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (heap_.empty())
        wake = owner_.lock();
      heap_.push_back(entry{due, std::move(who)});
      std::push_heap(heap_.begin(), heap_.end(), later);
    }
    if (wake)
      caf::anon_send(caf::actor_cast<caf::actor>(std::move(wake)), watch_wake_atom::value);
  }

  /// Moves at most `max` entries due at `now` into `out`; returns how many.
  size_t take_due(time_point now, size_t max, std::vector<caf::weak_actor_ptr>& out) {
    std::lock_guard<std::mutex> guard{mtx_};
    size_t n = 0;
    while (n < max && !heap_.empty() && heap_.front().due <= now) {
      std::pop_heap(heap_.begin(), heap_.end(), later);
      out.push_back(std::move(heap_.back().who));
      heap_.pop_back();
      ++n;
    }
    // A burst of activations leaves a large buffer behind: give it back once drained.
    // (A copy of a heap is a heap.)
    if (heap_.capacity() > 4 * heap_.size() + 1024)
      std::vector<entry>{heap_.begin(), heap_.end()}.swap(heap_);
    return n;
  }

  size_t size() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return heap_.size();
  }

private:
  struct entry {
    time_point due;
    caf::weak_actor_ptr who;
  };

  static bool later(const entry& x, const entry& y) noexcept {
    return x.due > y.due;
  }

  mutable std::mutex mtx_;
  caf::weak_actor_ptr owner_;
  std::vector<entry> heap_; // a min-heap on `due`
};

/// What every aggregate of a router shares (immutable after the router started).
struct aggregate_context {
  aggregate_env env;
  std::shared_ptr<aggregate_counters> counters;
  std::shared_ptr<append_watch> watch;
};

/// Spawns the aggregate `id` of type `model` from `router` (lazy_init + monitored).
/// `fence`: an earlier incarnation may still have appends at the writer (it ended with
/// an error), so recovery first sends a zero-event append that queues behind them.
/// Protocol: (command_atom, std::string command_id, command_box) -> reply_box | error;
///           (passivate_atom) -> stops if idle (no reply). It ends normally (exit
///           reason `normal`) only by passivating, i.e. with nothing at the writer.
caf::actor spawn_aggregate(caf::event_based_actor* router,
                           std::shared_ptr<const aggregate_model> model, std::string id,
                           std::shared_ptr<const aggregate_context> ctx, bool fence);

/// Spawns a one-shot actor (lazy_init + linked to `router`): on (state_atom) it loads
/// the state of aggregate `id` per `q` in batches of `replay_batch`, answers
/// aggregate_state or an error, then quits.
caf::actor spawn_state_query(caf::event_based_actor* router,
                             std::shared_ptr<const aggregate_model> model, std::string id,
                             state_query q, std::shared_ptr<const aggregate_context> ctx);

} // namespace evident::detail
