#pragma once

// async_asker: commands and state queries to the aggregate router without blocking a
// thread. runtime::ask parks the calling thread in a scoped_actor for the whole trip
// (about 100 us of thread switching even when the aggregate answers at once); an HTTP
// I/O thread must not wait like that. Here one long-lived event-based actor (the
// bridge) sends the request with `request(...).then(...)` and hands the answer to a
// callback:
//
//   I/O thread --anon_send(task)--> bridge --request--> router --delegate--> aggregate
//                                     ^                                          |
//   callback (on the bridge's worker) <------------- reply_box | error ----------+
//
// The callback runs on a CAF worker thread inside the bridge's handler: it must be short
// and must not block (post the answer to an asio executor and return).
//
// This belongs in evident::runtime (a `runtime::ask_async`) once the runtime grows one;
// it lives in the bank sample for now because runtime.hpp is being reworked. Unlike
// runtime::ask, requests made here are not counted in runtime::requests_in_flight():
// the owner must drain them (answers or timeouts) before runtime::stop() (the bank's
// server does: it stops only after every connection was answered).

#include "evident/actors/aggregate.hpp"
#include "evident/actors/temporal.hpp"
#include "evident/persistence/errc.hpp"
#include "evident/runtime/runtime.hpp"

#include <caf/actor.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace bank {

class async_asker {
public:
  template <class T>
  using callback = std::function<void(evident::expected<T>)>;

  /// Spawns the bridge in `rt.system()` and takes `rt.router()`, which starts the router:
  /// register every aggregate type before. Requests wait at most
  /// `rt.config().requests.ask_timeout`, as runtime::ask does.
  explicit async_asker(evident::runtime& rt);

  /// Stops the bridge. Callbacks still pending are destroyed without being called.
  ~async_asker();

  async_asker(const async_asker&) = delete;
  async_asker& operator=(const async_asker&) = delete;

  /// runtime::ask without the wait: `done` gets the reply or the error, exactly once
  /// (unless the asker is destroyed first), on a CAF worker thread.
  /// Fails (through `done`) with what runtime::ask fails with: the router's errors,
  /// timeout (outcome unknown: retry with the same command id), unavailable (the
  /// runtime is stopping: nothing was taken).
  template <evident::aggregate_spec Spec>
  void ask(std::string id, typename Spec::command cmd, std::string command_id,
           callback<typename Spec::reply> done) {
    ask_boxed(std::string{Spec::name}, std::move(id), evident::box_command(std::move(cmd)),
              std::move(command_id),
              [done = std::move(done)](evident::expected<evident::reply_box> r) {
                if (!r) {
                  done(std::move(r).err());
                  return;
                }
                if (const auto* x = evident::unbox_reply<typename Spec::reply>(*r)) {
                  done(*x);
                  return;
                }
                done(evident::error{evident::errc::invalid_input, "the reply of aggregate type '"
                                                                      + std::string{Spec::name}
                                                                      + "' has another type"});
              });
  }

  /// `ask` with the command and reply boxed, by type name. A command that meets an
  /// aggregate that just passivated (sec::request_receiver_down: nothing happened) is
  /// sent once more, within the same deadline.
  void ask_boxed(std::string type, std::string id, evident::command_box cmd, std::string command_id,
                 callback<evident::reply_box> done);

  /// runtime::state_of without the wait. Fails (through `done`) as state_of does.
  template <evident::aggregate_spec Spec>
  void state_of(std::string id, evident::state_query q, callback<evident::typed_state<Spec>> done) {
    state_of_boxed(std::string{Spec::name}, std::move(id), q,
                   [done = std::move(done)](evident::expected<evident::aggregate_state> r) {
                     if (!r) {
                       done(std::move(r).err());
                       return;
                     }
                     const auto* st = std::any_cast<typename Spec::state>(&r->state);
                     if (st == nullptr) {
                       done(evident::error{evident::errc::invalid_input,
                                           "the state of aggregate type '" + std::string{Spec::name}
                                               + "' has another type"});
                       return;
                     }
                     evident::typed_state<Spec> out;
                     out.state = *st;
                     out.version = r->version;
                     out.time_ns = r->time_ns;
                     done(std::move(out));
                   });
  }

  /// `state_of` with the state boxed, by type name.
  void state_of_boxed(std::string type, std::string id, evident::state_query q,
                      callback<evident::aggregate_state> done);

private:
  evident::runtime& rt_;
  caf::actor router_;
  caf::actor bridge_;
  std::chrono::milliseconds timeout_;
};

} // namespace bank
