#pragma once

// Fixtures for the aggregate and router tests.
//
// deterministic_router: CAF's test scheduler (`scheduler.policy = testing`): nothing
// runs until the test calls `sched.run()`, and time moves only with `advance_time`. The
// journal writer is `inline_writer` (cooperative, steerable), snapshots go to the
// in-memory store through a cooperative snapshot writer.
//
// live_router: CAF's real scheduler (2 threads) with the real, detached journal writer,
// over any journal (a `gated_journal` to hold commits, or LMDB). Every request has a
// finite timeout.
//
// Both stop what they spawned in their destructors, so a failed test never leaves an
// actor that would hang ~actor_system.

#include "account_aggregate.hpp"
#include "inline_writer.hpp"
#include "print.hpp"

#include "evident/actors/aggregate_router.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/journal_writer.hpp"
#include "evident/actors/message_types.hpp"
#include "evident/actors/snapshot_writer.hpp"
#include "evident/persistence/memory_journal.hpp"
#include "evident/persistence/snapshot_store.hpp"

#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace evident::test {

/// What one command came back with.
struct outcome {
  std::optional<bank::account_reply> reply;
  caf::error raw;
  evident::error err;

  bool ok() const {
    return reply.has_value();
  }
  int64_t balance() const {
    return reply ? reply->balance : -1;
  }
  errc code() const {
    return err.code;
  }
};

inline outcome to_outcome(reply_box& r) {
  outcome out;
  if (auto* x = unbox_reply<bank::account_reply>(r))
    out.reply = *x;
  else
    out.err = error{errc::invalid_input, "reply of an unexpected type"};
  return out;
}

inline outcome to_outcome(caf::error& e) {
  outcome out;
  out.raw = e;
  out.err = from_caf_error(e);
  return out;
}

template <class Spec = bank::account_aggregate>
std::vector<std::shared_ptr<const aggregate_model>> models_of() {
  return {make_model<Spec>()};
}

// -- deterministic ---------------------------------------------------------------------

struct deterministic_router {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scoped_actor self;
  caf::scheduler::test_coordinator& sched;
  std::shared_ptr<memory_journal> journal;
  std::shared_ptr<memory_snapshot_store> snapshots;
  std::shared_ptr<inline_writer_controls> ctl;
  caf::actor writer;
  caf::actor snapshot_writer;
  caf::actor router;

  static caf::actor_system_config& prepare(caf::actor_system_config& c) {
    c.set("scheduler.policy", caf::atom("testing"));
    c.set("logger.inline-output", true);
    add_message_types(c);
    return c;
  }

  deterministic_router()
    : sys(prepare(cfg)),
      self(sys, true),
      sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    // nop
  }

  /// Spawns writer, snapshot writer and router. `opts.idle_timeout` defaults to 0 here
  /// (no passivation) unless a test sets it.
  void start(aggregate_options opts = no_idle(),
             std::vector<std::shared_ptr<const aggregate_model>> models = models_of(),
             journal_options jopts = {}) {
    journal = std::make_shared<memory_journal>(jopts);
    snapshots = std::make_shared<memory_snapshot_store>(jopts);
    ctl = std::make_shared<inline_writer_controls>();
    writer = sys.spawn(inline_writer, std::shared_ptr<evident::journal>{journal}, ctl);
    snapshot_writer = spawn_snapshot_writer(sys, snapshots, false);
    aggregate_env env;
    env.writer = writer;
    env.journal = journal;
    env.snapshots = snapshots;
    env.snapshot_writer = snapshot_writer;
    env.options = opts;
    router = spawn_aggregate_router(sys, env, std::move(models));
    sched.run();
  }

  static aggregate_options no_idle() {
    aggregate_options opts;
    opts.idle_timeout = std::chrono::nanoseconds{0};
    return opts;
  }

  ~deterministic_router() {
    for (auto* a : {&router, &writer, &snapshot_writer})
      if (*a)
        caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
    sched.run();
  }

  /// Sends a command without running anything; its answer arrives as a message to
  /// `self` (async send: the aggregate's promise answers the sender).
  void send(const std::string& id, bank::account_command cmd, std::string command_id = {},
            std::string type = "account") {
    self->send(router, command_atom::value, std::move(type), id, std::move(command_id),
               box_command(std::move(cmd)));
  }

  /// Takes the next answer that is waiting in self's mailbox; fails the test when none.
  outcome next() {
    outcome out;
    bool got = false;
    self->receive([&](reply_box& r) { out = to_outcome(r), got = true; },
                  [&](caf::error& e) { out = to_outcome(e), got = true; },
                  caf::after(std::chrono::seconds(0)) >> [] {});
    BOOST_REQUIRE_MESSAGE(got, "no answer is waiting");
    return out;
  }

  /// True when no answer is waiting.
  bool no_answer() {
    bool got = false;
    self->receive([&](reply_box&) { got = true; }, [&](caf::error&) { got = true; },
                  caf::after(std::chrono::seconds(0)) >> [] {});
    return !got;
  }

  /// True when a message waits in self's mailbox (without taking it).
  bool has_answer() {
    return !self->mailbox().empty();
  }

  outcome ask(const std::string& id, bank::account_command cmd, std::string command_id = {}) {
    send(id, std::move(cmd), std::move(command_id));
    sched.run();
    return next();
  }

  template <class T>
  T receive_now() {
    T result{};
    bool got = false;
    self->receive([&](T& x) { result = std::move(x), got = true; },
                  caf::after(std::chrono::seconds(0)) >> [] {});
    BOOST_REQUIRE_MESSAGE(got, "expected message is not waiting");
    return result;
  }

  router_metrics metrics() {
    self->send(router, metrics_atom::value);
    sched.run();
    return receive_now<router_metrics>();
  }

  journal_writer_metrics writer_metrics() {
    self->send(writer, metrics_atom::value);
    sched.run();
    return receive_now<journal_writer_metrics>();
  }

  void release() {
    self->send(writer, release_atom::value);
    sched.run();
  }

  uint64_t version_of(const std::string& stream) {
    auto h = journal->head(stream);
    BOOST_REQUIRE(h.has_value());
    return h->version;
  }
};

// -- real scheduler --------------------------------------------------------------------

struct live_router {
  static constexpr auto timeout = std::chrono::seconds(10);

  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scoped_actor self;
  std::shared_ptr<evident::journal> journal;
  caf::actor writer;
  caf::actor router;
  /// Opened in the destructor so that a held writer can stop.
  std::function<void()> on_stop;

  static caf::actor_system_config& prepare(caf::actor_system_config& c) {
    c.set("scheduler.max-threads", 2);
    add_message_types(c);
    return c;
  }

  live_router() : sys(prepare(cfg)), self(sys) {
    // nop
  }

  void start(std::shared_ptr<evident::journal> j, std::shared_ptr<snapshot_store> snaps = nullptr,
             aggregate_options opts = {},
             std::vector<std::shared_ptr<const aggregate_model>> models = models_of()) {
    journal = std::move(j);
    writer = spawn_journal_writer(sys, journal);
    aggregate_env env;
    env.writer = writer;
    env.journal = journal;
    env.snapshots = std::move(snaps);
    env.options = opts;
    router = spawn_aggregate_router(sys, env, std::move(models));
  }

  /// Stops router and writer and waits until both are gone (an LMDB journal can then be
  /// reopened by another "node").
  void stop() {
    if (on_stop)
      on_stop();
    for (auto* a : {&router, &writer}) {
      if (!*a)
        continue;
      self->monitor(*a);
      self->send_exit(*a, caf::exit_reason::user_shutdown);
      self->receive([](caf::down_msg&) {}, caf::after(timeout) >> [] {
        BOOST_FAIL("actor did not stop");
      });
      *a = caf::actor{};
    }
  }

  ~live_router() {
    if (on_stop)
      on_stop();
    for (auto* a : {&router, &writer})
      if (*a)
        caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
  }

  outcome ask(const std::string& id, bank::account_command cmd, std::string command_id = {}) {
    outcome out;
    self
      ->request(router, timeout, command_atom::value, std::string{"account"}, id,
                std::move(command_id), box_command(std::move(cmd)))
      .receive([&](reply_box& r) { out = to_outcome(r); },
               [&](caf::error& e) { out = to_outcome(e); });
    return out;
  }

  template <class T, class... Ts>
  T request_value(const caf::actor& dest, Ts&&... xs) {
    T result{};
    self->request(dest, timeout, std::forward<Ts>(xs)...)
      .receive([&](T& x) { result = std::move(x); },
               [&](caf::error& e) { BOOST_FAIL("request failed: " << caf::to_string(e)); });
    return result;
  }

  router_metrics metrics() {
    return request_value<router_metrics>(router, metrics_atom::value);
  }

  journal_writer_metrics writer_metrics() {
    return request_value<journal_writer_metrics>(writer, metrics_atom::value);
  }
};

} // namespace evident::test
