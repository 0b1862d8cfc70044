// The saga manager with real actors over LMDB: a transfer between two accounts through
// the aggregate router (success, insufficient funds, refused credit), a stop between
// every two steps followed by a restart, a deadline that expires while the node is
// down, a poison event, an operator's retry of a parked saga, and commands and progress
// appends that are never answered (or answered after their timeout).
//
// Events reach the manager the way a subscription delivers them: the test reads the
// journal from the last position it fed and sends (deliver_atom, event_batch), waiting
// for the answer. After a restart it feeds everything again from position 1, the worst
// case a subscription can produce; dedup must make that harmless.

#include "transfer.hpp"

#include "support/checks.hpp"
#include "support/temp_dir.hpp"

#include "evident/actors/aggregate_router.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/event_bus.hpp"
#include "evident/actors/subscription.hpp"
#include "evident/persistence/checkpoint_store.hpp"
#include "evident/actors/journal_writer.hpp"
#include "evident/actors/message_types.hpp"
#include "evident/persistence/lmdb_journal.hpp"
#include "evident/sagas/saga_manager.hpp"

#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace transfers;
using evident::errc;
using evident::saga_status;

namespace {

using cut_atom = caf::atom_constant<caf::atom("test_cut")>;
using release_atom = caf::atom_constant<caf::atom("test_rels")>;
using released_atom = caf::atom_constant<caf::atom("test_reld")>;

/// Steers `proxy_router`, which stands between the manager and the real router.
struct proxy_controls {
  /// Answer this many commands with errc::unavailable (nothing reaches the router).
  std::atomic<int> fail_remaining{0};
  /// Forward this many commands (-1: all); the next one is the "crash": it is dropped
  /// (never answered), after reaching the router when `cut_after_forward`.
  std::atomic<int> allow{-1};
  std::atomic<bool> cut_after_forward{false};
  /// Hold this many commands unanswered until the proxy gets release_atom; then forward
  /// them and deliver their (late) answers, and send released_atom to `notify`.
  std::atomic<int> hold{0};
  std::atomic<int> forwarded{0};
  std::atomic<int> seen{0};
  bool cut = false;
};

struct held_command {
  caf::response_promise rp;
  std::string type;
  std::string id;
  std::string cid;
  evident::command_box box;
};

caf::behavior proxy_router(caf::event_based_actor* self, caf::actor router,
                           std::shared_ptr<proxy_controls> ctl, caf::actor notify) {
  auto held = std::make_shared<std::vector<held_command>>();
  return {
    [=](evident::command_atom a, std::string& type, std::string& id, std::string& cid,
        evident::command_box& box) {
      ++ctl->seen;
      auto rp = self->make_response_promise();
      if (ctl->cut)
        return; // the node is "down": nothing is answered
      if (ctl->hold > 0) {
        --ctl->hold;
        held->push_back({rp, std::move(type), std::move(id), std::move(cid), std::move(box)});
        return;
      }
      if (ctl->fail_remaining > 0) {
        --ctl->fail_remaining;
        rp.deliver(evident::to_caf_error({errc::unavailable, "injected: owner down"}));
        return;
      }
      if (ctl->allow >= 0 && ctl->forwarded >= ctl->allow) {
        ctl->cut = true;
        if (!ctl->cut_after_forward) {
          caf::anon_send(notify, cut_atom::value);
          return;
        }
        self->request(router, 10s, a, type, id, cid, std::move(box))
          .then([=](evident::reply_box&) { caf::anon_send(notify, cut_atom::value); },
                [=](caf::error&) { caf::anon_send(notify, cut_atom::value); });
        return;
      }
      ++ctl->forwarded;
      rp.delegate(router, a, std::move(type), std::move(id), std::move(cid), std::move(box));
    },
    [=](release_atom) {
      for (auto& h : *held)
        self->request(router, 10s, evident::command_atom::value, h.type, h.id, h.cid, h.box)
          .then(
            [=, rp = h.rp](evident::reply_box& r) mutable {
              rp.deliver(std::move(r)); // reaches the requester before `released`
              caf::anon_send(notify, released_atom::value);
            },
            [=, rp = h.rp](caf::error& e) mutable {
              rp.deliver(std::move(e));
              caf::anon_send(notify, released_atom::value);
            });
      held->clear();
    },
  };
}

/// A journal writer that takes appends and never answers them.
caf::behavior silent_writer(caf::event_based_actor* self) {
  auto held = std::make_shared<std::vector<caf::response_promise>>();
  return {
    [=](evident::append_atom, evident::append_request&) {
      held->push_back(self->make_response_promise());
    },
  };
}

/// One node: journal writer, aggregate router (accounts, transfers), saga manager, on an
/// LMDB journal that survives `stop()` / `start()`.
struct saga_node {
  static constexpr auto timeout = std::chrono::seconds(10);

  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scoped_actor self;
  evident::test::temp_dir dir;
  std::shared_ptr<evident::virtual_saga_clock> clock
    = std::make_shared<evident::virtual_saga_clock>();
  std::shared_ptr<proxy_controls> ctl = std::make_shared<proxy_controls>();
  evident::saga_options opts;
  std::shared_ptr<evident::journal> journal;
  caf::actor writer;
  caf::actor router;
  caf::actor proxy;
  caf::actor manager;
  uint64_t fed = 0;

  static caf::actor_system_config& prepare(caf::actor_system_config& c) {
    c.set("scheduler.max-threads", 2);
    evident::add_message_types(c);
    return c;
  }

  saga_node() : sys(prepare(cfg)), self(sys) {
    opts.tick_interval = 0ms; // deadlines fire on saga_tick_atom (virtual clock)
    opts.backoff_initial = 1ms;
    opts.backoff_max = 4ms;
    opts.max_attempts = 3;
    start();
  }

  ~saga_node() {
    stop();
  }

  void start() {
    evident::journal_options jopts;
    jopts.path = dir.sub("journal");
    jopts.sync = evident::durability::no_sync;
    auto j = evident::lmdb_journal::open(jopts);
    BOOST_REQUIRE_MESSAGE(j.has_value(), evident::test::why(j));
    journal = *j;
    writer = evident::spawn_journal_writer(sys, journal);
    evident::aggregate_env env;
    env.writer = writer;
    env.journal = journal;
    router = evident::spawn_aggregate_router(
      sys, env,
      {evident::make_model<bank::account_no_snapshots>(), evident::make_model<transfer_aggregate>()});
    ctl = std::make_shared<proxy_controls>();
    proxy = sys.spawn(proxy_router, router, ctl, caf::actor_cast<caf::actor>(self));
    manager = evident::spawn_saga_manager(sys, saga_env_with(writer),
                                          evident::make_saga_model<transfer_saga>());
    fed = 0;
  }

  /// The manager's environment on this node, appending through `w`.
  evident::saga_env saga_env_with(caf::actor w) {
    evident::saga_env senv;
    senv.writer = std::move(w);
    senv.journal = journal;
    senv.router = proxy;
    senv.clock = clock;
    senv.options = opts;
    return senv;
  }

  /// Stops every actor and closes the journal: what a process stop leaves is on disk.
  void stop() {
    for (auto* a : {&manager, &proxy, &router, &writer}) {
      if (!*a)
        continue;
      self->monitor(*a);
      self->send_exit(*a, caf::exit_reason::user_shutdown);
      bool down = false;
      self->receive([&](caf::down_msg&) { down = true; }, caf::after(timeout) >> [] {});
      BOOST_CHECK_MESSAGE(down, "an actor did not stop");
      *a = caf::actor{};
    }
    // LMDB forbids opening one environment twice in a process, and the router's
    // aggregates (which hold the journal) may finish a moment after the router's
    // down message; nothing announces that, so wait (bounded) for the last reference.
    std::weak_ptr<evident::journal> old = journal;
    journal.reset();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!old.expired() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    BOOST_REQUIRE_MESSAGE(old.expired(), "the journal is still open after the stop");
  }

  void restart() {
    stop();
    start();
  }

  /// Delivers every event after the last one fed, as a subscription would, and waits
  /// for the manager's answer (= the sagas' progress is durable).
  void feed() {
    auto evs = journal->read_all(fed + 1);
    BOOST_REQUIRE_MESSAGE(evs.has_value(), evident::test::why(evs));
    if (evs->empty())
      return;
    evident::event_batch b;
    b.subscription = "saga.transfer";
    b.through = evs->back().position;
    b.events = std::move(*evs);
    uint64_t through = 0;
    self->request(manager, timeout, evident::deliver_atom::value, std::move(b))
      .receive([&](uint64_t x) { through = x; },
               [&](caf::error& e) { BOOST_FAIL("deliver failed: " << caf::to_string(e)); });
    BOOST_REQUIRE(through > fed);
    fed = through;
  }

  evident::reply_box ask(const std::string& type, const std::string& id, evident::command_box cmd,
                         const std::string& cid = {}) {
    evident::reply_box out;
    self->request(router, timeout, evident::command_atom::value, type, id, cid, std::move(cmd))
      .receive([&](evident::reply_box& r) { out = std::move(r); },
               [&](caf::error& e) { BOOST_FAIL("command failed: " << caf::to_string(e)); });
    return out;
  }

  void open(const std::string& id, int64_t balance) {
    ask("account", id, evident::box_command(bank::account_command{bank::open{id}}));
    if (balance > 0)
      ask("account", id, evident::box_command(bank::account_command{bank::deposit{balance}}));
  }

  int64_t balance(const std::string& id) {
    auto r = ask("account", id, evident::box_command(bank::account_command{bank::get_balance{}}));
    const auto* x = evident::unbox_reply<bank::account_reply>(r);
    BOOST_REQUIRE(x != nullptr);
    return x->balance;
  }

  void request_transfer(const std::string& id, const std::string& from, const std::string& to,
                        int64_t amount) {
    auto r = ask("transfer", id,
                 evident::box_command(transfer_command{transfers::request_transfer{id, from, to, amount}}));
    const auto* x = evident::unbox_reply<transfer_reply>(r);
    BOOST_REQUIRE(x != nullptr && x->ok);
  }

  /// Waits until saga `key` is completed, compensated, failed or parked.
  evident::saga_summary wait(const std::string& key) {
    evident::saga_summary out;
    self->request(manager, timeout, evident::saga_wait_atom::value, key)
      .receive([&](evident::saga_summary& s) { out = std::move(s); },
               [&](caf::error& e) { BOOST_FAIL("wait failed: " << caf::to_string(e)); });
    return out;
  }

  std::vector<evident::saga_summary> list(std::optional<saga_status> status = std::nullopt) {
    std::vector<evident::saga_summary> out;
    evident::saga_query q;
    q.status = status;
    self->request(manager, timeout, evident::saga_list_atom::value, q)
      .receive([&](std::vector<evident::saga_summary>& x) { out = std::move(x); },
               [&](caf::error& e) { BOOST_FAIL("list failed: " << caf::to_string(e)); });
    return out;
  }

  evident::saga_metrics metrics() {
    evident::saga_metrics out;
    self->request(manager, timeout, evident::metrics_atom::value)
      .receive([&](evident::saga_metrics& m) { out = m; },
               [&](caf::error& e) { BOOST_FAIL("metrics failed: " << caf::to_string(e)); });
    return out;
  }

  /// Events of `type` in account `id`'s stream.
  size_t count(const std::string& id, const std::string& type) {
    auto evs = journal->read_stream("account-" + id);
    BOOST_REQUIRE(evs.has_value());
    size_t n = 0;
    for (auto& e : *evs)
      n += e.type == type ? 1 : 0;
    return n;
  }

  /// Waits for the proxy's "crash" notification.
  void wait_for_cut() {
    bool got = false;
    self->receive([&](cut_atom) { got = true; }, caf::after(timeout) >> [] {});
    BOOST_REQUIRE_MESSAGE(got, "the cut point was not reached");
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(saga_manager)

BOOST_FIXTURE_TEST_CASE(a_transfer_moves_the_money_and_completes, saga_node) {
  open("a", 100);
  open("b", 0);
  request_transfer("t1", "a", "b", 30);
  feed();
  auto s = wait("t1");
  BOOST_TEST(s.status == saga_status::completed);
  BOOST_TEST(s.step == 3u);
  BOOST_TEST(balance("a") == 70);
  BOOST_TEST(balance("b") == 30);
  auto m = metrics();
  BOOST_TEST(m.completed == 1u);
  BOOST_TEST(m.started == 1u);
  BOOST_TEST(m.outcomes == 2u);
  // The history is the saga's stream: start, debit outcome, credit outcome.
  evident::saga_detail d;
  self->request(manager, timeout, evident::saga_show_atom::value, std::string{"t1"})
    .receive([&](evident::saga_detail& x) { d = std::move(x); },
             [&](caf::error& e) { BOOST_FAIL(caf::to_string(e)); });
  BOOST_REQUIRE(d.history.size() == 3u);
  BOOST_TEST(d.history[0].input.find("start bank.transfer_requested") == 0u);
  BOOST_TEST(d.history[1].input == "outcome debit ok");
  BOOST_TEST(d.history[2].input == "outcome credit ok");
}

BOOST_FIXTURE_TEST_CASE(insufficient_funds_fails_the_saga_without_a_credit, saga_node) {
  open("a", 10);
  open("b", 0);
  request_transfer("t1", "a", "b", 30);
  feed();
  auto s = wait("t1");
  BOOST_TEST(s.status == saga_status::failed);
  BOOST_TEST(balance("a") == 10);
  BOOST_TEST(balance("b") == 0);
  BOOST_TEST(count("b", "bank.deposited") == 0u);
}

BOOST_FIXTURE_TEST_CASE(a_refused_credit_is_refunded_and_the_saga_compensated, saga_node) {
  open("a", 100); // "b" is never opened: the credit is refused
  request_transfer("t1", "a", "b", 30);
  feed();
  auto s = wait("t1");
  BOOST_TEST(s.status == saga_status::compensated);
  BOOST_TEST(balance("a") == 100);
  BOOST_TEST(count("a", "bank.withdrawn") == 1u);
  BOOST_TEST(count("a", "bank.deposited") == 2u); // the opening deposit and the refund
}

BOOST_FIXTURE_TEST_CASE(a_stop_between_any_two_steps_moves_the_money_exactly_once, saga_node) {
  // Cut points: the k-th command never reaches its aggregate (the node stopped after
  // the saga recorded it), or reaches it but its reply is lost (stopped after the
  // aggregate applied it). Success path: 2 commands; refund path: 3.
  struct path {
    bool refund;
    int commands;
  };
  int run = 0;
  for (auto p : {path{false, 2}, path{true, 3}}) {
    for (int k = 0; k < p.commands; ++k) {
      for (bool after : {false, true}) {
        BOOST_TEST_CONTEXT("refund path " << p.refund << ", command " << k << ", reply lost "
                                          << after) {
          auto n = std::to_string(run++);
          auto from = "from" + n;
          auto to = "to" + n;
          open(from, 100);
          if (!p.refund)
            open(to, 0);
          ctl->allow = k;
          ctl->cut_after_forward = after;
          request_transfer("t" + n, from, to, 30);
          feed();
          wait_for_cut();
          restart(); // proxies everything from now on
          feed();    // from position 1 again: all duplicates
          auto s = wait("t" + n);
          BOOST_TEST(s.status
                     == (p.refund ? saga_status::compensated : saga_status::completed));
          BOOST_TEST(count(from, "bank.withdrawn") == 1u);
          if (p.refund) {
            BOOST_TEST(balance(from) == 100);
            BOOST_TEST(count(from, "bank.deposited") == 2u);
          } else {
            BOOST_TEST(balance(from) == 70);
            BOOST_TEST(balance(to) == 30);
            BOOST_TEST(count(to, "bank.deposited") == 1u);
          }
          BOOST_TEST(metrics().duplicates >= 1u);
        }
      }
    }
  }
}

BOOST_FIXTURE_TEST_CASE(a_deadline_that_expired_while_down_fires_after_restart, saga_node) {
  open("a", 10'000);
  open("b", 0);
  request_transfer("big", "a", "b", 5'000); // waits for an approval, for 1 min
  feed();
  auto waiting = list(saga_status::waiting);
  BOOST_REQUIRE(waiting.size() == 1u);
  BOOST_TEST(waiting[0].deadlines == 1u);
  stop();
  clock->advance(2min);
  start(); // the first tick runs right after recovery
  auto s = wait("big");
  BOOST_TEST(s.status == saga_status::failed);
  BOOST_TEST(metrics().deadlines_fired == 1u);
  BOOST_TEST(count("a", "bank.withdrawn") == 0u);
}

BOOST_FIXTURE_TEST_CASE(an_approval_before_the_deadline_lets_the_transfer_run, saga_node) {
  open("a", 10'000);
  open("b", 0);
  request_transfer("big", "a", "b", 5'000);
  feed();
  clock->advance(30s);
  self->send(manager, evident::saga_tick_atom::value); // not due: nothing happens
  ask("transfer", "big", evident::box_command(transfer_command{approve_transfer{"big"}}));
  feed();
  BOOST_TEST(wait("big").status == saga_status::completed);
  clock->advance(1min);
  self->send(manager, evident::saga_tick_atom::value); // cancelled: never fires
  BOOST_TEST(metrics().deadlines_fired == 0u);
  BOOST_TEST(balance("b") == 5'000);
}

BOOST_FIXTURE_TEST_CASE(a_poison_event_parks_its_saga_and_not_the_others, saga_node) {
  poison_active = true;
  open("a", 100);
  open("b", 0);
  open("poison", 100);
  request_transfer("t1", "a", "b", 10);
  request_transfer("tp", "poison", "b", 10);
  request_transfer("t2", "a", "b", 10);
  feed();
  BOOST_TEST(wait("t1").status == saga_status::completed);
  BOOST_TEST(wait("t2").status == saga_status::completed);
  auto p = wait("tp");
  BOOST_TEST(p.status == saga_status::parked);
  BOOST_TEST(p.error.find("poisoned transfer") != std::string::npos);
  auto parked = list(saga_status::parked);
  BOOST_REQUIRE(parked.size() == 1u);
  BOOST_TEST(parked[0].key == "tp");
  BOOST_TEST(metrics().parked == 1u);
  BOOST_TEST(balance("b") == 20);
  // The fix is deployed: an operator retries, the parked event runs again.
  poison_active = false;
  evident::saga_summary r;
  self->request(manager, timeout, evident::saga_retry_atom::value, std::string{"tp"})
    .receive([&](evident::saga_summary& x) { r = x; },
             [&](caf::error& e) { BOOST_FAIL(caf::to_string(e)); });
  BOOST_TEST(r.status != saga_status::parked);
  auto done = wait("tp");
  poison_active = true;
  BOOST_TEST(done.status == saga_status::completed);
  BOOST_TEST(balance("poison") == 90);
  BOOST_TEST(balance("b") == 30);
}

BOOST_FIXTURE_TEST_CASE(a_saga_whose_commands_keep_failing_is_parked_and_an_operator_retries_it,
                        saga_node) {
  open("a", 100);
  open("b", 0);
  ctl->fail_remaining = 3; // = max_attempts: the debit is parked
  request_transfer("t1", "a", "b", 30);
  feed();
  auto p = wait("t1");
  BOOST_TEST(p.status == saga_status::parked);
  BOOST_TEST(p.error.find("unavailable") != std::string::npos);
  BOOST_TEST(p.error.find("after 3 attempts") != std::string::npos);
  BOOST_TEST(metrics().retries == 2u);
  BOOST_TEST(count("a", "bank.withdrawn") == 0u);
  // Retrying something that is not parked is refused with a clear error.
  evident::error refused;
  self->request(manager, timeout, evident::saga_retry_atom::value, std::string{"nope"})
    .receive([](evident::saga_summary&) {},
             [&](caf::error& e) { refused = evident::from_caf_error(e); });
  BOOST_TEST(refused.code == errc::invalid_input);
  // The owner is back; the operator retries.
  self->request(manager, timeout, evident::saga_retry_atom::value, std::string{"t1"})
    .receive([](evident::saga_summary&) {}, [&](caf::error& e) { BOOST_FAIL(caf::to_string(e)); });
  BOOST_TEST(wait("t1").status == saga_status::completed);
  BOOST_TEST(count("a", "bank.withdrawn") == 1u);
  BOOST_TEST(balance("b") == 30);
}

// Requests go out without a CAF timeout; the manager's own deadlines must still end them
// (tick_interval is 0 here: the deadlines do not depend on the tick).
BOOST_FIXTURE_TEST_CASE(a_command_unanswered_for_command_timeout_is_a_failed_attempt_and_parks,
                        saga_node) {
  opts.command_timeout = 100ms;
  restart();
  open("a", 100);
  open("b", 0);
  ctl->allow = 0; // the owner never answers: every attempt of the debit times out
  auto t0 = std::chrono::steady_clock::now();
  request_transfer("t1", "a", "b", 30);
  feed();
  wait_for_cut();
  auto p = wait("t1");
  auto took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t0)
                   .count();
  BOOST_TEST(p.status == saga_status::parked);
  BOOST_TEST(p.error.find("timeout") != std::string::npos);
  BOOST_TEST(p.error.find("after 3 attempts") != std::string::npos);
  BOOST_TEST(ctl->seen == 3);
  BOOST_TEST(metrics().retries == 2u);
  // Three timeouts of 100 ms each, not the 10 s default nor a tick.
  BOOST_TEST(took_ms >= 300);
  BOOST_TEST(took_ms < 5'000);
}

BOOST_FIXTURE_TEST_CASE(a_late_answer_after_a_command_timeout_is_ignored, saga_node) {
  opts.command_timeout = 100ms;
  restart();
  open("a", 100);
  open("b", 0);
  ctl->hold = 1; // the first debit is answered only after it timed out
  request_transfer("t1", "a", "b", 30);
  feed();
  BOOST_TEST(wait("t1").status == saga_status::completed); // by the retry
  auto before = metrics();
  BOOST_TEST(before.outcomes == 2u);
  BOOST_TEST(before.retries == 1u);
  self->send(proxy, release_atom::value);
  bool released = false;
  self->receive([&](released_atom) { released = true; }, caf::after(timeout) >> [] {});
  BOOST_REQUIRE(released);
  // The late answer is in the manager's mailbox before this request: it changed nothing.
  auto after = metrics();
  BOOST_TEST(after.outcomes == before.outcomes);
  BOOST_TEST(after.appends == before.appends);
  BOOST_TEST(count("a", "bank.withdrawn") == 1u);
  // Nothing was counted twice: later commands still go out.
  request_transfer("t2", "a", "b", 10);
  feed();
  BOOST_TEST(wait("t2").status == saga_status::completed);
  BOOST_TEST(balance("b") == 40);
}

BOOST_FIXTURE_TEST_CASE(a_progress_append_unanswered_for_append_timeout_stops_the_manager,
                        saga_node) {
  open("a", 100);
  open("b", 0);
  request_transfer("t1", "a", "b", 30);
  // A second manager whose writer never answers (the first one is never fed).
  auto mute = sys.spawn(silent_writer);
  auto senv = saga_env_with(mute);
  senv.options.append_timeout = 100ms;
  auto m2 = evident::spawn_saga_manager(sys, senv, evident::make_saga_model<transfer_saga>());
  self->monitor(m2);
  auto evs = journal->read_all(1);
  BOOST_REQUIRE(evs.has_value());
  evident::event_batch b;
  b.subscription = "saga.transfer";
  b.through = evs->back().position;
  b.events = std::move(*evs);
  evident::error answer;
  auto t0 = std::chrono::steady_clock::now();
  self->request(m2, timeout, evident::deliver_atom::value, std::move(b))
    .receive([](uint64_t) { BOOST_FAIL("the delivery was answered as durable"); },
             [&](caf::error& e) { answer = evident::from_caf_error(e); });
  BOOST_TEST(answer.code == errc::timeout);
  BOOST_TEST(answer.message.find("progress append failed") != std::string::npos);
  BOOST_TEST(std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now() - t0)
               .count()
             < 5'000);
  evident::error reason;
  bool down = false;
  self->receive(
    [&](caf::down_msg& d) {
      down = true;
      reason = evident::from_caf_error(d.reason);
    },
    caf::after(timeout) >> [] {});
  BOOST_REQUIRE(down);
  BOOST_TEST(reason.code == errc::timeout);
  self->send_exit(mute, caf::exit_reason::user_shutdown);
}

BOOST_FIXTURE_TEST_CASE(an_unfinished_saga_resumes_after_a_restart_without_new_events,
                        saga_node) {
  open("a", 100);
  open("b", 0);
  ctl->allow = 1; // the credit never arrives
  request_transfer("t1", "a", "b", 30);
  feed();
  wait_for_cut();
  BOOST_TEST(list(saga_status::running).size() == 1u);
  restart(); // no feed: the outbox alone drives it
  BOOST_TEST(wait("t1").status == saga_status::completed);
  BOOST_TEST(metrics().recovered == 1u);
  BOOST_TEST(balance("b") == 30);
}

// The wiring the runtime will use: writer -> event bus -> subscription -> manager. The
// transfer's event reaches the saga live, and the subscription's checkpoint moves past it
// only once the saga's first record is durable.
BOOST_AUTO_TEST_CASE(a_subscription_feeds_the_manager_live) {
  caf::actor_system_config cfg;
  caf::actor_system sys{saga_node::prepare(cfg)};
  caf::scoped_actor self{sys};
  evident::test::temp_dir dir;
  evident::journal_options jopts;
  jopts.path = dir.sub("journal");
  jopts.sync = evident::durability::no_sync;
  auto j = evident::lmdb_journal::open(jopts);
  BOOST_REQUIRE(j.has_value());
  std::shared_ptr<evident::journal> journal = *j;
  auto bus = evident::spawn_event_bus(sys, 0);
  evident::commit_listener listener;
  listener.actor = bus;
  auto writer = evident::spawn_journal_writer(sys, journal, {}, listener);
  evident::aggregate_env env;
  env.writer = writer;
  env.journal = journal;
  auto router = evident::spawn_aggregate_router(
    sys, env,
    {evident::make_model<bank::account_no_snapshots>(), evident::make_model<transfer_aggregate>()});
  auto model = evident::make_saga_model<transfer_saga>();
  evident::saga_env senv;
  senv.writer = writer;
  senv.journal = journal;
  senv.router = router;
  auto manager = evident::spawn_saga_manager(sys, senv, model);
  auto checkpoints = std::make_shared<evident::checkpoint_store>((*j)->env());
  evident::subscription_options so;
  so.name = evident::saga_subscription_name(*model);
  so.filter.predicate = [model](const evident::recorded_event& e) { return model->knows(e.type); };
  so.checkpoint_interval = 1ms;
  auto sub = evident::spawn_subscription(sys, {bus, journal, checkpoints}, manager, so);
  auto ask = [&](const std::string& type, const std::string& id, evident::command_box cmd) {
    bool ok = false;
    self->request(router, 10s, evident::command_atom::value, type, id, std::string{}, std::move(cmd))
      .receive([&](evident::reply_box&) { ok = true; }, [](caf::error&) {});
    BOOST_REQUIRE(ok);
  };
  ask("account", "a", evident::box_command(bank::account_command{bank::open{"a"}}));
  ask("account", "a", evident::box_command(bank::account_command{bank::deposit{50}}));
  ask("account", "b", evident::box_command(bank::account_command{bank::open{"b"}}));
  ask("transfer", "t1",
      evident::box_command(transfer_command{transfers::request_transfer{"t1", "a", "b", 20}}));
  evident::saga_summary s;
  self->request(manager, 10s, evident::saga_wait_atom::value, std::string{"t1"})
    .receive([&](evident::saga_summary& x) { s = x; },
             [&](caf::error& e) { BOOST_FAIL(caf::to_string(e)); });
  BOOST_TEST(s.status == saga_status::completed);
  BOOST_TEST(s.key == "t1");
  BOOST_TEST(so.name == "saga.transfer");
  for (auto* a : {&sub, &manager, &router, &writer, &bus}) {
    self->monitor(*a);
    self->send_exit(*a, caf::exit_reason::user_shutdown);
    self->receive([](caf::down_msg&) {}, caf::after(10s) >> [] { BOOST_FAIL("did not stop"); });
  }
  // The subscription saved its checkpoint when it stopped: past the transfer's event.
  auto cp = checkpoints->load("saga.transfer");
  BOOST_REQUIRE(cp.has_value());
  BOOST_REQUIRE(cp->has_value());
  BOOST_TEST(**cp >= 4u);
}

BOOST_AUTO_TEST_SUITE_END()
