// The router: (type, id) -> live aggregate, least recently used first out.
//
//   live:   "account\0acc-1" -> {actor, last command time, LRU links, key pointer}
//   LRU:    lru_newest <-> ... <-> lru_oldest     (intrusive links: O(1) touch)
//   by_id:  actor id -> entry                      (down_msg -> forget)
//
// The key is stored once (in `live`); the LRU links and by_id point at the entry, so
// one live aggregate costs the router two hash nodes and no further strings.
//
// The router never holds a request: commands are delegated (the aggregate answers the
// caller), temporal queries are delegated to a one-shot query actor. So its cost per
// command is one map lookup, two link updates and one message, independent of how many
// commands are in flight (CAF 0.17 pays O(outstanding) per response in a requester).
//
// An entry is removed only on its actor's down_msg, so there is never more than one live
// incarnation per aggregate. Between an aggregate's quit and that down_msg, a command
// still goes to the old actor and bounces with sec::request_receiver_down: nothing
// happened, the caller retries once.
//
// Passivation: while aggregates are live, one periodic tick (every idle_timeout / 4,
// clamped to [10 ms, 60 s]) walks the LRU from its cold end and asks every aggregate
// whose last command is idle_timeout old to passivate; the walk stops at the first
// younger one, so a tick costs O(expired). A busy aggregate refuses and is asked again
// at the next tick. (A CAF `after` per aggregate would re-arm a timer in the actor
// clock on every message, and keep one per idle aggregate.)
//
// Append deadlines: aggregates with requests out at the writer put their next deadline
// in the shared append_watch; a second periodic tick (every append_timeout / 10, 10 ms
// to 1 s, while deadlines are pending) sends a watchdog message to each whose deadline
// fell due, at most 2,000 per message. One clock entry per router, instead of one per
// aggregate with an append out.
//
// Fences: an aggregate that ended with an error may have left appends at the writer;
// its key goes into `fence_next` and its next incarnation fences (see
// aggregate_actor.cpp). Ids never seen, or whose last incarnation passivated, start
// without one.

#include "detail/aggregate_actor.hpp"

#include "evident/actors/aggregate_router.hpp"
#include "evident/actors/atoms.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/snapshot_writer.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/result.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace evident {

status validate(const aggregate_options& x) {
  if (x.replay_batch == 0)
    return {errc::invalid_input, "aggregate_options.replay_batch must be at least 1"};
  if (x.max_in_flight == 0)
    return {errc::invalid_input, "aggregate_options.max_in_flight must be at least 1"};
  if (x.max_active == 0)
    return {errc::invalid_input, "aggregate_options.max_active must be at least 1"};
  if (x.append_timeout.count() <= 0)
    return {errc::invalid_input, "aggregate_options.append_timeout must be positive"};
  if (x.idle_timeout.count() < 0)
    return {errc::invalid_input, "aggregate_options.idle_timeout must not be negative"};
  return {};
}

namespace {

// Self-sent only: "passivate what has been idle for idle_timeout".
using idle_tick_atom = caf::atom_constant<caf::atom("rt_idle")>;

// Self-sent only: "send a watchdog message to each aggregate whose append deadline fell
// due" (see detail::append_watch).
using watch_tick_atom = caf::atom_constant<caf::atom("rt_watch")>;

// Watchdog messages sent per watch tick at most; more go out in the next message, so
// that one tick never floods the worker's queue (CAF 0.17's work-stealing queue makes
// a long queue quadratic to steal from).
constexpr size_t max_watchdogs_per_tick = 2'000;

// Self-sent only: "stop the next slice of aggregates" (see stop_slice).
using stop_slice_atom = caf::atom_constant<caf::atom("rt_stops")>;

// Aggregates told to stop per message while the router stops. All at once, 100,000 live
// aggregates took ~37 s to stop: they all land in one worker's queue, and each steal by
// the other worker walks that queue (CAF 0.17's work stealing, caf-0.17-guide.md).
constexpr size_t stops_per_slice = 1'000;

using time_point = caf::actor_clock::time_point;

struct live_aggregate {
  caf::actor handle;
  const std::string* key = nullptr; // the key in `live` (node-based: stable)
  live_aggregate* newer = nullptr;
  live_aggregate* older = nullptr;
  time_point last_used;
  bool asked = false; // asked to passivate since its last command
};

struct router_state {
  std::shared_ptr<const detail::aggregate_context> ctx;
  std::map<std::string, std::shared_ptr<const aggregate_model>, std::less<>> models;
  std::unordered_map<std::string, live_aggregate> live;
  std::unordered_map<caf::actor_id, live_aggregate*> by_id;
  live_aggregate* lru_newest = nullptr;
  live_aggregate* lru_oldest = nullptr;
  /// Keys whose last incarnation ended with an error: their next one fences. Bounded:
  /// past max_active keys every activation fences (fence_all).
  std::unordered_set<std::string> fence_next;
  bool fence_all = false;
  /// While stopping: the aggregates not yet told, and why.
  std::vector<caf::actor> to_stop;
  caf::error stop_reason;
  bool stopping = false;
  /// Scratch for the key of each command (see find_or_spawn).
  std::string key_buf;
  bool tick_armed = false;
  bool watch_armed = false;
  /// Spawned by the router (stopped with it); null when the env brought its own.
  caf::actor own_snapshot_writer;
  /// Running temporal queries (linked): their normal exits are no reason to stop.
  std::set<caf::actor_addr> queries;
  uint64_t activations = 0;
  uint64_t evictions_requested = 0;
  uint64_t queries_started = 0;

  // Runs however the router ends, `kill` included (which its exit handler cannot
  // trap): what it spawned must not outlive it, or ~actor_system would wait forever.
  ~router_state() {
    for (auto& [key, entry] : live)
      caf::anon_send_exit(entry.handle, caf::exit_reason::user_shutdown);
    for (auto& handle : to_stop)
      caf::anon_send_exit(handle, caf::exit_reason::user_shutdown);
    if (own_snapshot_writer)
      caf::anon_send_exit(own_snapshot_writer, caf::exit_reason::user_shutdown);
  }

  void unlink(live_aggregate& e) noexcept {
    (e.newer ? e.newer->older : lru_newest) = e.older;
    (e.older ? e.older->newer : lru_oldest) = e.newer;
    e.newer = e.older = nullptr;
  }

  void push_newest(live_aggregate& e) noexcept {
    e.older = lru_newest;
    e.newer = nullptr;
    (lru_newest ? lru_newest->newer : lru_oldest) = &e;
    lru_newest = &e;
  }
};

using router_actor = caf::stateful_actor<router_state>;

caf::timespan tick_interval(const aggregate_options& opts) {
  auto x = std::chrono::duration_cast<caf::timespan>(opts.idle_timeout) / 4;
  return std::clamp<caf::timespan>(x, std::chrono::milliseconds{10}, std::chrono::seconds{60});
}

void arm_tick(router_actor* self) {
  auto& st = self->state;
  if (st.tick_armed || st.live.empty() || st.ctx->env.options.idle_timeout.count() <= 0)
    return;
  st.tick_armed = true;
  self->delayed_send(self, tick_interval(st.ctx->env.options), idle_tick_atom::value);
}

// Append deadlines are checked every append_timeout / 10 (10 ms to 1 s) while any are
// pending.
caf::timespan watch_interval(const aggregate_options& opts) {
  auto x = std::chrono::duration_cast<caf::timespan>(opts.append_timeout) / 10;
  return std::clamp<caf::timespan>(x, std::chrono::milliseconds{10}, std::chrono::seconds{1});
}

void arm_watch(router_actor* self, caf::timespan delay) {
  auto& st = self->state;
  if (st.watch_armed || st.ctx->watch->size() == 0)
    return;
  st.watch_armed = true;
  self->delayed_send(self, delay, watch_tick_atom::value);
}

void on_watch_tick(router_actor* self) {
  auto& st = self->state;
  st.watch_armed = false;
  std::vector<caf::weak_actor_ptr> due;
  auto n = st.ctx->watch->take_due(self->clock().now(), max_watchdogs_per_tick, due);
  for (auto& w : due)
    if (auto p = w.lock())
      self->send(caf::actor_cast<caf::actor>(std::move(p)), detail::watchdog_atom::value);
  // More due: go on as soon as this worker had its turn, not a whole interval later.
  arm_watch(self, n == max_watchdogs_per_tick ? caf::timespan{0}
                                              : watch_interval(st.ctx->env.options));
}

// Tells the next slice of aggregates to stop; quits once all are told. Each aggregate
// answers what it holds, then quits; ~actor_system waits for nothing we spawned.
void stop_slice(router_actor* self) {
  auto& st = self->state;
  for (size_t n = 0; n < stops_per_slice && !st.to_stop.empty(); ++n) {
    self->send_exit(st.to_stop.back(), st.stop_reason);
    st.to_stop.pop_back();
  }
  if (st.to_stop.empty()) {
    std::vector<caf::actor>{}.swap(st.to_stop);
    self->quit(st.stop_reason);
    return;
  }
  // The next slice once this worker had its turn (a zero delay goes through the clock).
  self->delayed_send(self, caf::timespan{0}, stop_slice_atom::value);
}

void on_tick(router_actor* self) {
  auto& st = self->state;
  st.tick_armed = false;
  auto idle = std::chrono::duration_cast<caf::timespan>(st.ctx->env.options.idle_timeout);
  auto now = self->clock().now();
  for (auto* e = st.lru_oldest; e != nullptr && e->last_used + idle <= now; e = e->newer) {
    e->asked = true;
    self->send(e->handle, passivate_atom::value);
  }
  arm_tick(self);
}

// Asks least recently used aggregates to passivate until the live count is back at the
// cap (counting those asked before: they stop once idle).
void enforce_cap(router_actor* self) {
  auto& st = self->state;
  auto cap = st.ctx->env.options.max_active;
  if (st.live.size() <= cap)
    return;
  auto excess = st.live.size() - cap;
  for (auto* e = st.lru_oldest; e != nullptr && excess > 0; e = e->newer) {
    --excess;
    if (e->asked)
      continue;
    e->asked = true;
    ++st.evictions_requested;
    self->send(e->handle, passivate_atom::value);
  }
}

bool needs_fence(router_state& st, const std::string& key) {
  if (st.fence_all)
    return true;
  return st.fence_next.erase(key) > 0;
}

void note_fence(router_state& st, const std::string& key) {
  if (st.fence_all)
    return;
  if (st.fence_next.size() >= st.ctx->env.options.max_active) {
    // Bounded memory: from now on every activation fences (correct, a bit slower).
    st.fence_all = true;
    st.fence_next = {};
    return;
  }
  st.fence_next.insert(key);
}

caf::actor find_or_spawn(router_actor* self, const std::shared_ptr<const aggregate_model>& model,
                         const std::string& id) {
  auto& st = self->state;
  // Built in a buffer the router keeps: a live aggregate's command allocates no key.
  auto& key = st.key_buf;
  key.assign(model->name());
  key.push_back('\0'); // type names cannot contain NUL, so keys are unambiguous
  key.append(id);
  auto now = self->clock().now();
  if (auto i = st.live.find(key); i != st.live.end()) {
    auto& e = i->second;
    if (st.lru_newest != &e) {
      st.unlink(e);
      st.push_newest(e);
    }
    e.asked = false;
    e.last_used = now;
    return e.handle;
  }
  auto fence = needs_fence(st, key);
  auto handle = detail::spawn_aggregate(self, model, id, st.ctx, fence);
  ++st.activations;
  auto [i, added] = st.live.emplace(key, live_aggregate{});
  auto& e = i->second;
  e.handle = handle;
  e.key = &i->first;
  e.last_used = now;
  st.push_newest(e);
  st.by_id.emplace(handle.id(), &e);
  enforce_cap(self);
  arm_tick(self);
  return handle;
}

router_metrics collect(const router_state& st) {
  auto& c = *st.ctx->counters;
  auto get = [](const std::atomic<uint64_t>& x) { return x.load(std::memory_order_relaxed); };
  router_metrics m;
  m.active = st.live.size();
  m.activations = st.activations;
  m.passivations = get(c.passivations);
  m.evictions_requested = st.evictions_requested;
  m.stops = get(c.stops);
  m.recoveries = get(c.recoveries);
  m.recovery_failures = get(c.recovery_failures);
  m.recovery_ns_total = get(c.recovery_ns_total);
  m.recovery_ns_max = get(c.recovery_ns_max);
  m.events_replayed = get(c.events_replayed);
  m.commands = get(c.commands);
  m.duplicates = get(c.duplicates);
  m.stash_overflows = get(c.stash_overflows);
  m.rejections = get(c.rejections);
  m.conflicts = get(c.conflicts);
  m.decide_failures = get(c.decide_failures);
  m.events = get(c.events);
  m.snapshots = get(c.snapshots);
  m.queries = st.queries_started;
  return m;
}

caf::behavior router(router_actor* self, std::shared_ptr<const detail::aggregate_context> ctx,
                     std::vector<std::shared_ptr<const aggregate_model>> models,
                     caf::actor own_snapshot_writer) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.own_snapshot_writer = std::move(own_snapshot_writer);
  for (auto& m : models)
    st.models.emplace(std::string{m->name()}, m);
  // One monitor for all aggregates: if the writer dies, the answers to their appends
  // never come; stop them now rather than at their append_timeout.
  self->monitor(st.ctx->env.writer);
  st.ctx->watch->set_owner(caf::weak_actor_ptr{self->ctrl()});
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& s = self->state;
    if (msg.source == s.ctx->env.writer.address()) {
      auto reason = to_caf_error(
        error{errc::io_error, "the journal writer stopped (" + caf::to_string(msg.reason)
                                + "); outcome unknown"});
      for (auto& [key, entry] : s.live)
        self->send_exit(entry.handle, reason);
      return;
    }
    auto i = s.by_id.find(msg.source.id());
    if (i == s.by_id.end())
      return;
    auto& e = *i->second;
    if (msg.reason)
      note_fence(s, *e.key);
    s.unlink(e);
    s.live.erase(*e.key);
    s.by_id.erase(i);
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& s = self->state;
    if (s.queries.erase(msg.source) > 0 || !msg.reason)
      return; // a query finished (or a linked actor ended normally)
    if (s.stopping)
      return;
    // Stop: from now on commands are refused, and the aggregates are told in slices.
    s.stopping = true;
    s.stop_reason = msg.reason;
    s.to_stop.reserve(s.live.size());
    for (auto& [key, entry] : s.live)
      s.to_stop.push_back(entry.handle);
    if (s.own_snapshot_writer)
      self->send_exit(s.own_snapshot_writer, msg.reason);
    s.own_snapshot_writer = nullptr;
    s.lru_newest = s.lru_oldest = nullptr;
    s.by_id.clear();
    s.live.clear();
    stop_slice(self);
  });
  return {
    [self](command_atom, const std::string& type, const std::string& id,
           std::string& command_id, command_box& cmd) -> caf::result<reply_box> {
      auto& s = self->state;
      if (s.stopping)
        return to_caf_error(error{errc::unavailable, "the aggregate router is stopping"});
      auto m = s.models.find(type);
      if (m == s.models.end())
        return to_caf_error(error{errc::invalid_input, "no aggregate type '" + type + "'"});
      if (id.empty())
        return to_caf_error(error{errc::invalid_input, "empty aggregate id"});
      auto handle = find_or_spawn(self, m->second, id);
      self->delegate(handle, command_atom::value, std::move(command_id), std::move(cmd));
      return caf::delegated<reply_box>{};
    },
    [self](state_atom, const std::string& type, const std::string& id,
           state_query q) -> caf::result<aggregate_state> {
      auto& s = self->state;
      if (s.stopping)
        return to_caf_error(error{errc::unavailable, "the aggregate router is stopping"});
      auto m = s.models.find(type);
      if (m == s.models.end())
        return to_caf_error(error{errc::invalid_input, "no aggregate type '" + type + "'"});
      if (id.empty())
        return to_caf_error(error{errc::invalid_input, "empty aggregate id"});
      auto query = detail::spawn_state_query(self, m->second, id, q, s.ctx);
      s.queries.insert(query.address());
      ++s.queries_started;
      self->delegate(query, state_atom::value);
      return caf::delegated<aggregate_state>{};
    },
    [self](metrics_atom) { return collect(self->state); },
    [self](idle_tick_atom) { on_tick(self); },
    [self](watch_tick_atom) { on_watch_tick(self); },
    [self](stop_slice_atom) { stop_slice(self); },
    [self](detail::watch_wake_atom) {
      arm_watch(self, watch_interval(self->state.ctx->env.options));
    },
  };
}

} // namespace

caf::actor spawn_aggregate_router(caf::actor_system& sys, aggregate_env env,
                                  std::vector<std::shared_ptr<const aggregate_model>> models) {
  if (!env.writer)
    throw std::invalid_argument("spawn_aggregate_router: env.writer is missing");
  if (!env.journal)
    throw std::invalid_argument("spawn_aggregate_router: env.journal is missing");
  if (auto err = validate(env.options))
    throw std::invalid_argument("spawn_aggregate_router: " + err.message);
  std::set<std::string, std::less<>> names;
  for (auto& m : models) {
    if (!m)
      throw std::invalid_argument("spawn_aggregate_router: a model is null");
    if (!names.emplace(m->name()).second)
      throw std::invalid_argument("spawn_aggregate_router: two models are named '"
                                  + std::string{m->name()} + "'");
  }
  caf::actor own_snapshot_writer;
  if (env.snapshots && !env.snapshot_writer) {
    own_snapshot_writer = spawn_snapshot_writer(sys, env.snapshots);
    env.snapshot_writer = own_snapshot_writer;
  }
  auto ctx = std::make_shared<detail::aggregate_context>();
  ctx->env = std::move(env);
  ctx->counters = std::make_shared<detail::aggregate_counters>();
  ctx->watch = std::make_shared<detail::append_watch>();
  return sys.spawn(router, std::shared_ptr<const detail::aggregate_context>{std::move(ctx)},
                   std::move(models), std::move(own_snapshot_writer));
}

} // namespace evident
