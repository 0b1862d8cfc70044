#include "async_ask.hpp"

#include "evident/actors/atoms.hpp"
#include "evident/actors/errc.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <exception>
#include <map>
#include <memory>
#include <string>

namespace bank::detail {

/// What the bridge runs: a closure that makes one request with the bridge as `self`.
/// Local only (a std::function), like the command boxes it carries.
struct bridge_task {
  std::function<void(caf::event_based_actor*)> run;
};

/// One command on its way: what to send (again, after a bounce) and whom to tell.
struct command_job {
  std::string type;
  std::string id;
  std::string command_id;
  evident::command_box cmd;
  async_asker::callback<evident::reply_box> done;
  std::chrono::steady_clock::time_point deadline;
  int attempt = 0;
};

using command_job_ptr = std::shared_ptr<command_job>;

} // namespace bank::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bank::detail::bridge_task)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bank::detail::command_job_ptr)

namespace bank {

using evident::errc;
using evident::error;
using clock_type = std::chrono::steady_clock;

namespace {

/// The bridge's watchdog tick (see bridge_state).
using bridge_tick_atom = caf::atom_constant<caf::atom("bank_tick")>;

// The bridge must outlive every exception a task or a callback might throw (bad_alloc
// while building an answer): an exception leaving a handler would kill it, and with it
// every request still waiting for an answer.
template <class F>
void guarded(F&& f) {
  try {
    f();
  } catch (...) {
    // The request's callback is lost with the exception; its responder (if any) answers
    // 500 when it is destroyed, so the client still gets an answer.
  }
}

using detail::command_job;
using detail::command_job_ptr;

// Commands are sent without a CAF request timeout: each timeout is two events for CAF's
// clock thread (set, cancel), which at 20,000 commands/s cost more than the rest of the
// bridge (a profile showed the clock thread waking for nearly every command). Instead
// the bridge keeps its commands in `pending` and one tick, armed only while commands
// wait, answers the overdue ones with errc::timeout, at most `tick` late. Every command
// gets the same timeout, so sequence order is deadline order: the sweep stops at the
// first command not yet due. A reply that comes after its command timed out finds no
// entry and is dropped.
//
// A reply that never comes (an aggregate killed while holding the promise: CAF 0.17 has
// no broken-promise detection) leaves its response handler in the bridge; the client
// still gets its timeout from the tick.
struct bridge_state {
  static inline const char* name = "bank.async_asker";
  caf::actor router;
  std::chrono::milliseconds timeout{0};
  std::chrono::milliseconds tick{100};
  uint64_t next_seq = 0;
  std::map<uint64_t, std::shared_ptr<command_job>> pending;
  bool tick_armed = false;
};

using bridge_actor = caf::stateful_actor<bridge_state>;

void finish(bridge_actor* self, uint64_t seq, evident::expected<evident::reply_box> result) {
  auto i = self->state.pending.find(seq);
  if (i == self->state.pending.end())
    return; // timed out already
  auto job = std::move(i->second);
  self->state.pending.erase(i);
  guarded([&] { job->done(std::move(result)); });
}

void send_command(bridge_actor* self, uint64_t seq, const std::shared_ptr<command_job>& job) {
  ++job->attempt;
  // The first attempt sends a copy: a bounce (request_receiver_down) sends it again.
  auto cmd = job->attempt == 1 ? evident::command_box{job->cmd} : std::move(job->cmd);
  self->request(self->state.router, caf::infinite, evident::command_atom::value, job->type, job->id,
                job->command_id, std::move(cmd))
      .then([self, seq](evident::reply_box& r) { finish(self, seq, std::move(r)); },
            [self, seq, job](caf::error& err) {
              // Between an aggregate's passivation and the router learning of it, a
              // command bounces and nothing happened: once more, as runtime::ask does.
              if (err == caf::sec::request_receiver_down && job->attempt == 1
                  && self->state.pending.count(seq) > 0) {
                guarded([&] { send_command(self, seq, job); });
                return;
              }
              finish(self, seq, evident::from_caf_error(err));
            });
}

void arm_tick(bridge_actor* self) {
  if (self->state.tick_armed || self->state.pending.empty())
    return;
  self->state.tick_armed = true;
  self->delayed_send(self, self->state.tick, bridge_tick_atom::value);
}

caf::behavior bridge(bridge_actor* self, caf::actor router, std::chrono::milliseconds timeout) {
  self->state.router = std::move(router);
  self->state.timeout = timeout;
  // A tenth of the timeout: timeouts come at most 10% late; at least 10 ms.
  self->state.tick = std::max(timeout / 10, std::chrono::milliseconds{10});
  return {
      [self](detail::bridge_task& t) { guarded([&] { t.run(self); }); },
      [self](command_job_ptr& job) {
        auto seq = self->state.next_seq++;
        self->state.pending.emplace(seq, job);
        guarded([&] { send_command(self, seq, job); });
        arm_tick(self);
      },
      [self](bridge_tick_atom) {
        auto& st = self->state;
        st.tick_armed = false;
        auto now = clock_type::now();
        while (!st.pending.empty() && st.pending.begin()->second->deadline <= now) {
          auto job = std::move(st.pending.begin()->second);
          st.pending.erase(st.pending.begin());
          guarded([&] {
            job->done(error{errc::timeout, "no answer from the aggregate within "
                                               + std::to_string(st.timeout.count()) + " ms"});
          });
        }
        arm_tick(self);
      },
  };
}

error stopping() {
  return error{errc::unavailable, "the runtime is stopping; the request was not taken"};
}

} // namespace

async_asker::async_asker(evident::runtime& rt)
    : rt_(rt), router_(rt.router()),
      bridge_(rt.system().spawn(bridge, router_, rt.config().requests.ask_timeout)),
      timeout_(rt.config().requests.ask_timeout) {
  // nop
}

async_asker::~async_asker() {
  caf::anon_send_exit(bridge_, caf::exit_reason::user_shutdown);
}

void async_asker::ask_boxed(std::string type, std::string id, evident::command_box cmd,
                            std::string command_id, callback<evident::reply_box> done) {
  // The router stays the same for the runtime's life; once the runtime stops, it refuses
  // new requests (as runtime::ask does) instead of sending them to a stopped router.
  if (!router_ || !rt_.running()) {
    done(stopping());
    return;
  }
  auto job = std::make_shared<detail::command_job>(
      detail::command_job{std::move(type), std::move(id), std::move(command_id), std::move(cmd),
                          std::move(done), clock_type::now() + timeout_, 0});
  caf::anon_send(bridge_, std::move(job));
}

void async_asker::state_of_boxed(std::string type, std::string id, evident::state_query q,
                                 callback<evident::aggregate_state> done) {
  if (!router_ || !rt_.running()) {
    done(stopping());
    return;
  }
  auto cb = std::make_shared<callback<evident::aggregate_state>>(std::move(done));
  caf::anon_send(
      bridge_,
      detail::bridge_task{[cb, router = router_, timeout = timeout_, type = std::move(type),
                           id = std::move(id), q](caf::event_based_actor* self) {
        self->request(router, timeout, evident::state_atom::value, type, id, q)
            .then([cb](evident::aggregate_state& st) { guarded([&] { (*cb)(std::move(st)); }); },
                  [cb](caf::error& err) { guarded([&] { (*cb)(evident::from_caf_error(err)); }); });
      }});
}

} // namespace bank
