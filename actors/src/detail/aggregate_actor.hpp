#pragma once

// Internal to evident_actors: the aggregate actor and the temporal-query actor, which
// only the router spawns, and the counters they share with it.

#include "evident/actors/aggregate.hpp"
#include "evident/actors/aggregate_router.hpp"
#include "evident/actors/temporal.hpp"

#include <caf/actor.hpp>
#include <caf/event_based_actor.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

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

/// What every aggregate of a router shares (immutable after the router started).
struct aggregate_context {
  aggregate_env env;
  std::shared_ptr<aggregate_counters> counters;
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
