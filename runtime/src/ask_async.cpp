// runtime::ask_async and runtime::state_of_async: requests to the aggregate router that
// no thread waits for. A small fixed pool of bridge actors makes the requests with
// `request(...).then(...)` and calls the caller's callback with the answer.
//
//   caller thread                bridge (cooperative actor)               router
//   -------------                --------------------------               ------
//   enter_async: slot taken,
//     bridge = pool[hash(id)]
//   anon_send(request) -------->  pending[(deadline, seq)] = request
//                                 request(router, infinite, ...) ------->  delegate
//                                 ...then: take it out of pending,    <--  reply | error
//                                   (request_receiver_down: send once more)
//                                   done(answer); leave the slot
//                                 tick (at the earliest deadline): the overdue
//                                   ones get errc::timeout, then leave their slots
//
// Why a pool and a hash: one bridge handles two messages per ask, far from a bottleneck
// at 20,000 asks/s (measured in a closed loop of 64 asks in flight, no_sync: about
// 45,000 asks/s end to end with one worker, 65,000-70,000 with two, the same as the
// bank sample's single bridge this replaced), but with one bridge per scheduler thread
// the callbacks spread over the workers. Picking the bridge by the aggregate id keeps
// the order of one caller's asks to one aggregate (caller -> bridge -> router ->
// aggregate are all FIFO links). Each bridge pays O(its asks in flight) per response
// (CAF 0.17 keeps pending responses in a flat map): thousands in flight are fine.
//
// Why no CAF request timeouts: each one is two events for CAF's clock thread (set and
// cancel), which at 20,000 asks/s cost more than the bridge itself (a profile of the
// bank daemon showed the clock thread waking for nearly every command). Instead each
// bridge keeps its requests ordered by deadline and arms one delayed message for the
// earliest; an answer that comes after its request timed out finds nothing and is
// dropped. A reply that never comes (an aggregate killed while holding the promise:
// CAF 0.17 has no broken-promise detection) leaves its response handler behind, but
// the caller still gets its timeout.
//
// Exactly once: an async_request answers through finish(), which marks it answered;
// its destructor answers whatever was never answered (the bridge stopped with requests
// pending because stop()'s drain ran out of time, or a message to a dead bridge was
// dropped) with errc::timeout: the command may have reached its aggregate, so the
// outcome is unknown. The slot in requests_in_flight() is left only after the callback
// returned, so stop() does not go on while a callback still runs.

#include "evident/runtime/detail/ask_bridge.hpp"
#include "evident/runtime/runtime.hpp"

#include "evident/actors/atoms.hpp"
#include "evident/actors/errc.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace evident::detail {

/// One ask_async or state_of_async on its way, owned by its bridge while pending.
struct async_request {
  using clock_type = std::chrono::steady_clock;
  enum class kind : uint8_t { command, state };

  runtime* rt = nullptr; // set once the request has its slot
  kind what = kind::command;
  std::string type;
  std::string id;
  std::string command_id;
  command_box cmd;
  state_query query;
  runtime::async_callback<reply_box> on_reply;
  runtime::async_callback<aggregate_state> on_state;
  std::chrono::milliseconds timeout{0};
  clock_type::time_point deadline;
  int attempt = 0;
  bool answered = false;

  async_request() = default;
  async_request(const async_request&) = delete;
  async_request& operator=(const async_request&) = delete;

  ~async_request() {
    if (!answered)
      fail(error{errc::timeout, "no answer from the aggregate: the runtime stopped before it "
                                "came (outcome unknown: retry with the same command id)"});
  }

  void fail(error err) {
    if (what == kind::command)
      finish(expected<reply_box>{std::move(err)});
    else
      finish(expected<aggregate_state>{std::move(err)});
  }

  // The one place a callback is called. Never throws: it runs inside actor handlers and
  // destructors, and a user's exception must not kill a bridge (and with it every
  // request it holds).
  template <class T>
  void finish(expected<T> result) noexcept {
    if (answered)
      return;
    answered = true;
    try {
      if constexpr (std::is_same_v<T, reply_box>) {
        if (on_reply)
          on_reply(std::move(result));
      } else {
        if (on_state)
          on_state(std::move(result));
      }
    } catch (...) {
      // The callback's own failure; documented as caught and dropped.
    }
    // Destroy the callback (and what it captured) before leaving the slot, so that
    // nothing of this request outlives stop()'s drain.
    on_reply = nullptr;
    on_state = nullptr;
    if (rt != nullptr)
      rt->leave_request();
  }
};

using async_request_ptr = std::shared_ptr<async_request>;

} // namespace evident::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(evident::detail::async_request_ptr)

namespace evident {

using detail::async_request;
using detail::async_request_ptr;

namespace {

using clock_type = std::chrono::steady_clock;

/// The bridge's timer (see bridge_state), with the generation it was armed in.
using ask_tick_atom = caf::atom_constant<caf::atom("ask_tick")>;

/// Where a pending request sits: deadline order first, so the timer sweeps from the
/// front; the sequence number makes keys unique.
using pending_key = std::pair<clock_type::time_point, uint64_t>;

struct bridge_state {
  static inline const char* name = "evident.ask_bridge";
  caf::actor router;
  uint64_t next_seq = 0;
  std::map<pending_key, async_request_ptr> pending;
  /// When the current timer fires; nullopt when none is armed. Invariant: while
  /// `pending` is not empty, a timer is armed no later than its earliest deadline
  /// (or 1 ms from when it was armed).
  std::optional<clock_type::time_point> tick_at;
  /// Generation of the current timer; older timers that fire only sweep.
  uint64_t tick_gen = 0;
};

using bridge_actor = caf::stateful_actor<bridge_state>;

void arm(bridge_actor* self, clock_type::time_point at) {
  auto& st = self->state;
  st.tick_at = at;
  ++st.tick_gen;
  auto delay = std::chrono::ceil<std::chrono::milliseconds>(at - clock_type::now());
  self->delayed_send(self, std::max(delay, std::chrono::milliseconds{1}), ask_tick_atom::value,
                     st.tick_gen);
}

// Answers the pending request `key` with `r`; nothing when it timed out already.
template <class T>
void take(bridge_actor* self, const pending_key& key, expected<T> r) {
  auto i = self->state.pending.find(key);
  if (i == self->state.pending.end())
    return;
  auto req = std::move(i->second);
  self->state.pending.erase(i);
  req->finish(std::move(r));
}

// Deadlines are the bridge's (see above), so the requests themselves never time out.
void send_command(bridge_actor* self, const pending_key& key, async_request& req) {
  ++req.attempt;
  // The first attempt sends a copy: a bounce (request_receiver_down) sends it again.
  auto cmd = req.attempt == 1 ? command_box{req.cmd} : std::move(req.cmd);
  self->request(self->state.router, caf::infinite, command_atom::value, req.type, req.id,
                req.command_id, std::move(cmd))
      .then([self, key](reply_box& r) { take(self, key, expected<reply_box>{std::move(r)}); },
            [self, key](caf::error& err) {
              // Between an aggregate's passivation and the router learning of it, a
              // command bounces with request_receiver_down and nothing happened: send it
              // once more, as runtime::ask does.
              if (err == caf::sec::request_receiver_down) {
                auto i = self->state.pending.find(key);
                if (i != self->state.pending.end() && i->second->attempt == 1) {
                  auto again = i->second; // keeps it alive if send_command throws
                  try {
                    send_command(self, key, *again);
                    return;
                  } catch (...) {
                    // Out of memory copying the command: answer with the bounce.
                  }
                }
              }
              take(self, key, expected<reply_box>{from_caf_error(err)});
            });
}

void send_state(bridge_actor* self, const pending_key& key, async_request& req) {
  ++req.attempt;
  self->request(self->state.router, caf::infinite, state_atom::value, req.type, req.id, req.query)
      .then([self, key](
                aggregate_state& st) { take(self, key, expected<aggregate_state>{std::move(st)}); },
            [self, key](caf::error& err) {
              take(self, key, expected<aggregate_state>{from_caf_error(err)});
            });
}

caf::behavior bridge(bridge_actor* self, caf::actor router) {
  self->state.router = std::move(router);
  return {
      [self](async_request_ptr& req) {
        auto& st = self->state;
        pending_key key{req->deadline, st.next_seq++};
        try {
          st.pending.emplace(key, req);
          if (req->what == async_request::kind::command)
            send_command(self, key, *req);
          else
            send_state(self, key, *req);
        } catch (...) {
          // Out of memory: the request leaves `pending` and its destructor answers it
          // once the last reference (here) goes.
          st.pending.erase(key);
          req->fail(error{errc::overloaded, "the request could not be sent (out of memory)"});
          return;
        }
        if (!st.tick_at || req->deadline < *st.tick_at)
          arm(self, req->deadline);
      },
      [self](ask_tick_atom, uint64_t gen) {
        auto& st = self->state;
        auto now = clock_type::now();
        while (!st.pending.empty() && st.pending.begin()->first.first <= now) {
          auto req = std::move(st.pending.begin()->second);
          st.pending.erase(st.pending.begin());
          req->fail(error{errc::timeout, "no answer within " + std::to_string(req->timeout.count())
                                             + " ms (outcome unknown: retry with the same "
                                               "command id)"});
        }
        if (gen != st.tick_gen)
          return; // an older timer: a newer one is armed for an earlier deadline
        st.tick_at.reset();
        if (!st.pending.empty())
          arm(self, st.pending.begin()->first.first);
      },
  };
}

// Bridges per runtime: one per scheduler thread, at most this many.
constexpr size_t max_bridges = 8;

error bad_timeout(std::chrono::milliseconds t) {
  return error{errc::invalid_input,
               "the timeout must be positive, not " + std::to_string(t.count()) + " ms"};
}

} // namespace

namespace detail {

caf::actor spawn_ask_bridge(caf::actor_system& sys, caf::actor router) {
  return sys.spawn(bridge, std::move(router));
}

void ask_through_bridge(const caf::actor& bridge_handle, std::string type, std::string id,
                        std::string command_id, command_box cmd, std::chrono::milliseconds timeout,
                        std::function<void(expected<reply_box>)> done) {
  auto req = std::make_shared<async_request>();
  req->type = std::move(type);
  req->id = std::move(id);
  req->command_id = std::move(command_id);
  req->cmd = std::move(cmd);
  req->on_reply = std::move(done);
  req->timeout = timeout;
  if (timeout <= std::chrono::milliseconds::zero()) {
    req->fail(bad_timeout(timeout));
    return;
  }
  req->deadline = clock_type::now() + timeout;
  caf::anon_send(bridge_handle, std::move(req));
}

} // namespace detail

expected<caf::actor> runtime::enter_async(const std::string& id) {
  std::lock_guard guard{mtx_};
  if (phase_ != phase::running)
    return refuse_locked();
  if (bridges_.empty()) {
    auto router_handle = router_locked();
    auto n = std::clamp<size_t>(cfg_.scheduler.threads, 1, max_bridges);
    bridges_.reserve(n);
    for (size_t i = 0; i < n; ++i)
      bridges_.push_back(detail::spawn_ask_bridge(*sys_, router_handle));
  }
  // As in enter_request: stop() waits for in_flight_ to drop to 0 before it stops the
  // bridges and the router.
  ++in_flight_;
  ++requests_;
  return bridges_[std::hash<std::string>{}(id) % bridges_.size()];
}

void runtime::start_async(std::shared_ptr<detail::async_request> req) {
  if (req->timeout <= std::chrono::milliseconds::zero()) {
    req->fail(bad_timeout(req->timeout));
    return;
  }
  auto dest = enter_async(req->id);
  if (!dest) {
    req->fail(std::move(dest).err());
    return;
  }
  req->rt = this;
  req->deadline = clock_type::now() + req->timeout;
  // To a bridge that already stopped (only when stop()'s drain ran out of time) the
  // message is dropped here and the request's destructor answers it.
  caf::anon_send(*dest, std::move(req));
}

void runtime::ask_async_boxed(std::string type, std::string id, command_box cmd,
                              std::string command_id, std::chrono::milliseconds timeout,
                              async_callback<reply_box> done) {
  if (!done)
    throw std::invalid_argument("ask_async_boxed: the callback is empty");
  auto req = std::make_shared<async_request>();
  req->what = async_request::kind::command;
  req->type = std::move(type);
  req->id = std::move(id);
  req->command_id = std::move(command_id);
  req->cmd = std::move(cmd);
  req->on_reply = std::move(done);
  req->timeout = timeout;
  start_async(std::move(req));
}

void runtime::state_of_async_boxed(std::string type, std::string id, state_query q,
                                   std::chrono::milliseconds timeout,
                                   async_callback<aggregate_state> done) {
  if (!done)
    throw std::invalid_argument("state_of_async_boxed: the callback is empty");
  auto req = std::make_shared<async_request>();
  req->what = async_request::kind::state;
  req->type = std::move(type);
  req->id = std::move(id);
  req->query = q;
  req->on_state = std::move(done);
  req->timeout = timeout;
  start_async(std::move(req));
}

} // namespace evident
