// The router: (type, id) -> live aggregate, least recently used first out.
//
//   live_:  "account\0acc-1" -> {actor, lru position, asked_to_passivate}
//   lru_:   [most recent ... least recent]           (std::list: O(1) touch)
//   by_addr_: actor address -> key                   (down_msg -> forget)
//
// The router never holds a request: commands are delegated (the aggregate answers the
// caller), temporal queries are delegated to a one-shot query actor. So its cost per
// command is one map lookup, one list splice and one message, independent of how many
// commands are in flight (CAF 0.17 pays O(outstanding) per response in a requester).
//
// An entry is removed only on its actor's down_msg, so there is never more than one live
// incarnation per aggregate. Between an aggregate's quit and that down_msg, a command
// still goes to the old actor and bounces with sec::request_receiver_down: nothing
// happened, the caller retries once.

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

#include <list>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

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

struct live_aggregate {
  caf::actor handle;
  std::list<std::string>::iterator lru;
  bool asked = false; // asked to passivate since its last command
};

struct router_state {
  std::shared_ptr<const detail::aggregate_context> ctx;
  std::map<std::string, std::shared_ptr<const aggregate_model>, std::less<>> models;
  std::unordered_map<std::string, live_aggregate> live;
  std::map<caf::actor_addr, std::string> by_addr;
  std::list<std::string> lru;
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
    if (own_snapshot_writer)
      caf::anon_send_exit(own_snapshot_writer, caf::exit_reason::user_shutdown);
  }
};

using router_actor = caf::stateful_actor<router_state>;

std::string key_of(std::string_view type, std::string_view id) {
  std::string key;
  key.reserve(type.size() + 1 + id.size());
  key.append(type);
  key.push_back('\0'); // type names cannot contain NUL, so keys are unambiguous
  key.append(id);
  return key;
}

// Asks least recently used aggregates to passivate until the live count is back at the
// cap (counting those asked before: they stop once idle).
void enforce_cap(router_actor* self) {
  auto& st = self->state;
  auto cap = st.ctx->env.options.max_active;
  if (st.live.size() <= cap)
    return;
  auto excess = st.live.size() - cap;
  for (auto i = st.lru.rbegin(); i != st.lru.rend() && excess > 0; ++i) {
    auto& entry = st.live[*i];
    --excess;
    if (entry.asked)
      continue;
    entry.asked = true;
    ++st.evictions_requested;
    self->send(entry.handle, passivate_atom::value);
  }
}

caf::actor find_or_spawn(router_actor* self, const std::shared_ptr<const aggregate_model>& model,
                         const std::string& id) {
  auto& st = self->state;
  auto key = key_of(model->name(), id);
  if (auto i = st.live.find(key); i != st.live.end()) {
    st.lru.splice(st.lru.begin(), st.lru, i->second.lru);
    i->second.asked = false;
    return i->second.handle;
  }
  auto handle = detail::spawn_aggregate(self, model, id, st.ctx);
  ++st.activations;
  st.lru.push_front(key);
  st.by_addr.emplace(handle.address(), key);
  st.live.emplace(std::move(key), live_aggregate{handle, st.lru.begin(), false});
  enforce_cap(self);
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
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& s = self->state;
    auto i = s.by_addr.find(msg.source);
    if (i == s.by_addr.end())
      return;
    if (auto j = s.live.find(i->second); j != s.live.end()) {
      s.lru.erase(j->second.lru);
      s.live.erase(j);
    }
    s.by_addr.erase(i);
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& s = self->state;
    if (s.queries.erase(msg.source) > 0 || !msg.reason)
      return; // a query finished (or a linked actor ended normally)
    // Stop: every aggregate answers what it holds, then quits; ~actor_system waits for
    // nothing we spawned.
    for (auto& [key, entry] : s.live)
      self->send_exit(entry.handle, msg.reason);
    if (s.own_snapshot_writer)
      self->send_exit(s.own_snapshot_writer, msg.reason);
    s.own_snapshot_writer = nullptr;
    s.live.clear();
    s.by_addr.clear();
    s.lru.clear();
    self->quit(msg.reason);
  });
  return {
    [self](command_atom, const std::string& type, const std::string& id,
           std::string& command_id, command_box& cmd) -> caf::result<reply_box> {
      auto& s = self->state;
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
  return sys.spawn(router, std::shared_ptr<const detail::aggregate_context>{std::move(ctx)},
                   std::move(models), std::move(own_snapshot_writer));
}

} // namespace evident
