#include "aggregate_fixtures.hpp"
#include "checks.hpp"
#include "temp_dir.hpp"

#include "evident/actors/temporal.hpp"
#include "evident/actors/test_kit.hpp"
#include "evident/persistence/lmdb_journal.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>

// The router: activation, passivation (idle timeout, cap), the receiver-down race,
// temporal queries, metrics, and a restart on the same LMDB directory.

using namespace bank;
using namespace std::chrono_literals;
using evident::errc;
using evident::state_query;
using evident::test::deterministic_router;
using evident::test::live_router;

namespace {

evident::aggregate_options idle_after(std::chrono::nanoseconds d) {
  auto opts = deterministic_router::no_idle();
  opts.idle_timeout = d;
  return opts;
}

// An LMDB journal in `dir`, without fsync: these tests check behaviour, not power loss.
evident::journal_options no_sync_journal(const evident::test::temp_dir& dir) {
  evident::journal_options jopts;
  jopts.path = dir.sub("journal");
  jopts.sync = evident::durability::no_sync;
  return jopts;
}

evident::aggregate_options capped(size_t max_active) {
  auto opts = deterministic_router::no_idle();
  opts.max_active = max_active;
  return opts;
}

} // namespace

BOOST_AUTO_TEST_SUITE(router)

// -- passivation -----------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(idle_aggregate_passivates_and_reactivates_transparently,
                        deterministic_router) {
  start(idle_after(1min));
  ask("a1", open{"ada"});
  ask("a1", deposit{40});
  BOOST_TEST(metrics().active == 1u);
  sched.advance_time(30s); // not idle long enough
  sched.run();
  BOOST_TEST(metrics().active == 1u);
  sched.advance_time(1min);
  sched.run();
  auto m = metrics();
  BOOST_TEST(m.active == 0u);
  BOOST_TEST(m.passivations == 1u);
  // The next command reactivates it from the journal.
  BOOST_TEST(ask("a1", deposit{2}).balance() == 42);
  m = metrics();
  BOOST_TEST(m.activations == 2u);
  BOOST_TEST(m.recoveries == 2u);
  BOOST_TEST(m.events_replayed == 2u); // the second recovery: open + deposit(40)
}

BOOST_FIXTURE_TEST_CASE(a_busy_aggregate_does_not_passivate, deterministic_router) {
  auto opts = idle_after(1min);
  opts.append_timeout = 10min; // the held append must not time out first
  start(opts);
  ask("a1", open{"ada"});
  ctl->hold = true;
  send("a1", deposit{1}); // in flight, held by the writer
  sched.run();
  sched.advance_time(5s);
  sched.run();
  sched.advance_time(1min); // idle timeout fires with a command in flight
  sched.run();
  BOOST_TEST(metrics().active == 1u);
  release();
  BOOST_TEST(next().balance() == 1);
}

BOOST_FIXTURE_TEST_CASE(cap_asks_the_least_recently_used_to_passivate, deterministic_router) {
  start(capped(2));
  ask("a1", open{"ada"});
  ask("a2", open{"bob"});
  ask("a1", deposit{5}); // a2 is now the least recently used
  ask("a3", open{"cy"});
  auto m = metrics();
  BOOST_TEST(m.active == 2u);
  BOOST_TEST(m.evictions_requested == 1u);
  BOOST_TEST(m.passivations == 1u);
  BOOST_TEST(ask("a1", get_balance{}).balance() == 5); // a1 was kept: no new activation
  BOOST_TEST(metrics().activations == 3u);
  BOOST_TEST(ask("a2", deposit{7}).balance() == 7); // back, state from the journal
  m = metrics();
  BOOST_TEST(m.activations == 4u);
  BOOST_TEST(m.active == 2u);
}

BOOST_FIXTURE_TEST_CASE(cap_never_stops_a_busy_aggregate, deterministic_router) {
  start(capped(1));
  ask("a1", open{"ada"});
  ctl->hold = true;
  send("a1", deposit{3});
  send("a2", open{"bob"}); // asks a1 to passivate; a1 has a command in flight
  sched.run();
  BOOST_TEST(metrics().active == 2u);
  release();
  BOOST_TEST(next().balance() == 3);
  BOOST_TEST(next().ok());
  BOOST_TEST(metrics().passivations == 0u);
}

BOOST_FIXTURE_TEST_CASE(idle_means_no_command_for_idle_timeout, deterministic_router) {
  start(idle_after(1min));
  ask("a1", open{"ada"});
  sched.advance_time(50s);
  sched.run();
  ask("a1", deposit{1}); // the idle clock starts again
  sched.advance_time(50s);
  sched.run();
  BOOST_TEST(metrics().active == 1u); // 100 s since activation, 50 s since the command
  sched.advance_time(30s);
  sched.run();
  BOOST_TEST(metrics().active == 0u);
  BOOST_TEST(metrics().passivations == 1u);
}

BOOST_FIXTURE_TEST_CASE(command_to_an_aggregate_that_just_quit_gets_receiver_down,
                        deterministic_router) {
  start(idle_after(1min));
  ask("a1", open{"ada"});
  sched.advance_time(30s); // an early idle tick, and the append watchdog (nothing to do)
  sched.run();
  sched.advance_time(2min); // only the router's next idle tick is due
  sched.run_once();         // the router asks a1 to passivate
  auto h = self->request(router, 10s, evident::command_atom::value, std::string{"account"},
                         std::string{"a1"}, std::string{},
                         evident::box_command(account_command{deposit{1}}));
  sched.run_once(); // a1 passivates (its mailbox is empty); its down_msg queues behind
  sched.run();      // the command: the router delegates to the dead actor, then forgets it
  bool bounced = false;
  h.receive([&](evident::reply_box&) {},
            [&](caf::error& e) { bounced = e == caf::sec::request_receiver_down; });
  BOOST_TEST(bounced); // nothing happened: the caller retries once
  BOOST_TEST(ask("a1", deposit{1}).balance() == 1);
  BOOST_TEST(version_of("account-a1") == 2u);
}

BOOST_FIXTURE_TEST_CASE(stopping_the_router_stops_its_aggregates, deterministic_router) {
  auto opts = no_idle();
  opts.max_in_flight = 1;
  start(opts);
  ask("a1", open{"ada"});
  ctl->hold = true;
  send("a1", deposit{1}); // in flight, held by the writer
  send("a1", deposit{2}); // stashed behind it (window of 1)
  sched.run();
  caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
  sched.run();
  // The in-flight command's outcome is unknown; the stashed one was never decided.
  auto a = next();
  auto b = next();
  BOOST_TEST(a.code() == errc::io_error);
  BOOST_TEST(b.code() == errc::overloaded);
  router = caf::actor{};
  release();
}

BOOST_FIXTURE_TEST_CASE(a_dead_writer_stops_aggregates_with_appends_in_flight,
                        deterministic_router) {
  start();
  ask("a1", open{"ada"});
  ctl->hold = true;
  send("a1", deposit{1}); // held: the writer dies with its promise
  sched.run();
  caf::anon_send_exit(writer, caf::exit_reason::kill);
  sched.run();
  // At once, not after append_timeout: the router monitors the writer.
  BOOST_TEST(next().code() == errc::io_error);
  BOOST_TEST(metrics().active == 0u);
  writer = caf::actor{};
}

// -- append deadlines ------------------------------------------------------------------

// The router's watch tick replaces a delayed message per aggregate; it must not turn
// into a timer that runs forever once every append is answered.
BOOST_FIXTURE_TEST_CASE(the_append_watch_ticks_only_while_deadlines_are_pending,
                        deterministic_router) {
  start(); // no passivation: no idle tick either; append_timeout 10 s
  BOOST_TEST(!sched.has_pending_timeout());
  ask("a1", open{"ada"});
  ask("a2", open{"bob"});
  BOOST_TEST(sched.has_pending_timeout()); // two deadlines at 10 s: the watch ticks
  size_t ticks = 0;
  while (sched.trigger_timeout() && ticks < 100) {
    ++ticks;
    sched.run();
  }
  // One tick a second until the deadlines fell due, then none.
  BOOST_TEST(ticks == 10u);
  BOOST_TEST(!sched.has_pending_timeout());
  BOOST_TEST(metrics().active == 2u); // both answered in time: nothing stopped
  BOOST_TEST(metrics().stops == 0u);
  // A later append wakes the watch again.
  BOOST_TEST(ask("a1", deposit{5}).balance() == 5);
  BOOST_TEST(sched.has_pending_timeout());
}

// -- metrics ---------------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(metrics_count_activations_recoveries_and_refusals,
                        deterministic_router) {
  auto opts = no_idle();
  opts.max_stash = 1;
  opts.max_in_flight = 1;
  start(opts);
  ctl->hold = true;
  send("a1", open{"ada"});   // in flight
  send("a1", deposit{1});    // stashed
  send("a1", deposit{2});    // stash full
  sched.run();
  BOOST_TEST(next().code() == errc::overloaded);
  release();
  BOOST_TEST(next().ok());
  BOOST_TEST(next().ok());
  auto m = metrics();
  BOOST_TEST(m.active == 1u);
  BOOST_TEST(m.activations == 1u);
  BOOST_TEST(m.recoveries == 1u);
  BOOST_TEST(m.recovery_ns_max >= 1u);
  BOOST_TEST(m.recovery_ns_total >= m.recovery_ns_max);
  BOOST_TEST(m.commands == 3u);
  BOOST_TEST(m.stash_overflows == 1u);
  BOOST_TEST(m.events == 2u);
}

// -- temporal queries ------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(state_at_version_and_time_via_the_router, deterministic_router) {
  auto opts = no_idle();
  opts.replay_batch = 4; // several batches per query
  start(opts);
  ask("a1", open{"ada"});
  for (int i = 1; i <= 24; ++i)
    ask("a1", deposit{i}); // versions 2..25; snapshots at 10 and 20
  auto query = [&](state_query q) {
    self->send(router, evident::state_atom::value, std::string{"account"}, std::string{"a1"}, q);
    for (sched.run(); sched.trigger_timeout(); sched.run()) {
      // each replay batch waits for the clock (the query actor yields)
    }
    return receive_now<evident::aggregate_state>();
  };
  auto at7 = query(state_query::at_version(7));
  BOOST_TEST(at7.version == 7u);
  BOOST_TEST(at7.snapshot_version == 0u);
  BOOST_TEST(std::any_cast<account>(at7.state).balance == 21); // 1+..+6
  auto at15 = query(state_query::at_version(15));
  BOOST_TEST(at15.snapshot_version == 10u); // nearest snapshot at or below
  BOOST_TEST(at15.replayed == 5u);
  BOOST_TEST(std::any_cast<account>(at15.state).balance == 105); // 1+..+14
  auto latest = query(state_query::latest());
  BOOST_TEST(latest.version == 25u);
  BOOST_TEST(std::any_cast<account>(latest.state).balance == 300);
  // At a time: the state after the last event written at or before it.
  auto events = journal->read_stream("account-a1");
  BOOST_TEST_REQUIRE(events.has_value());
  auto t = (*events)[11].time_ns; // version 12
  uint64_t expected_version = 0;
  for (auto& e : *events)
    if (e.time_ns <= t)
      expected_version = e.version;
  auto at_t = query(state_query::at_time(t));
  BOOST_TEST(at_t.version == expected_version);
  evident::spec_model<account_aggregate> model;
  auto direct = evident::load_state(model, *journal, nullptr, "a1",
                                    state_query::at_version(expected_version));
  BOOST_TEST((std::any_cast<account>(at_t.state) == std::any_cast<account>(direct->state)));
  auto before_all = query(state_query::at_time(1));
  BOOST_TEST(before_all.version == 0u);
  BOOST_TEST(!std::any_cast<account>(before_all.state).open);
  // The live aggregate was not involved: still one activation, commands keep working.
  BOOST_TEST(metrics().activations == 1u);
  BOOST_TEST(metrics().queries == 5u);
  BOOST_TEST(ask("a1", deposit{1}).balance() == 301);
}

BOOST_FIXTURE_TEST_CASE(temporal_query_of_an_unknown_type_or_corrupt_stream_fails,
                        deterministic_router) {
  start();
  self->send(router, evident::state_atom::value, std::string{"nope"}, std::string{"a1"},
             state_query::latest());
  sched.run();
  BOOST_TEST(next().code() == errc::invalid_input);
  evident::append_request bad;
  bad.stream = "account-bad";
  evident::event_data e;
  e.type = "bank.deposited";
  e.payload = "\xc1";
  bad.events.push_back(e);
  BOOST_TEST_REQUIRE(journal->append(bad).has_value());
  self->send(router, evident::state_atom::value, std::string{"account"}, std::string{"bad"},
             state_query::latest());
  sched.run();
  BOOST_TEST(next().code() == errc::corrupted);
}

BOOST_AUTO_TEST_CASE(state_at_function_reads_journal_and_snapshots) {
  evident::test_kit<account_aggregate> kit{"t1"};
  kit.given(opened{"ada"});
  for (int i = 1; i <= 14; ++i)
    BOOST_TEST_REQUIRE(kit.when(deposit{i}).ok()); // versions 2..15, snapshot at 10
  auto s = evident::state_at<account_aggregate>(kit.journal(), &kit.snapshots(), "t1",
                                                state_query::at_version(12));
  BOOST_TEST_REQUIRE(s.has_value());
  BOOST_TEST(s->version == 12u);
  BOOST_TEST(s->state.balance == 66); // 1+..+11
  auto beyond = evident::state_at<account_aggregate>(kit.journal(), &kit.snapshots(), "t1",
                                                     state_query::at_version(99));
  BOOST_TEST(beyond->version == 15u);
  auto none = evident::state_at<account_aggregate>(kit.journal(), nullptr, "nobody");
  BOOST_TEST_REQUIRE(none.has_value());
  BOOST_TEST(none->version == 0u);
}

// -- restart on LMDB -------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(command_ids_and_snapshots_survive_a_restart_on_lmdb) {
  evident::test::temp_dir dir;
  auto jopts = no_sync_journal(dir);
  account_reply first;
  {
    auto j = evident::lmdb_journal::open(jopts);
    BOOST_TEST_REQUIRE(j.has_value());
    auto snaps = std::make_shared<evident::lmdb_snapshot_store>((*j)->env());
    live_router node;
    node.start(*j, snaps);
    BOOST_TEST_REQUIRE(node.ask("a1", open{"ada"}).ok());
    auto r = node.ask("a1", deposit{100}, "cmd-42");
    BOOST_TEST_REQUIRE(r.ok());
    first = *r.reply;
    for (int i = 0; i < 23; ++i)
      BOOST_TEST_REQUIRE(node.ask("a1", deposit{1}).ok()); // version 25
    node.stop(); // the router stops its snapshot writer, which saves what it holds
  }
  {
    auto j = evident::lmdb_journal::open(jopts);
    BOOST_TEST_REQUIRE(j.has_value());
    auto snaps = std::make_shared<evident::lmdb_snapshot_store>((*j)->env());
    auto list = snaps->list("account-a1");
    BOOST_TEST_REQUIRE(list.has_value());
    BOOST_TEST_REQUIRE(list->size() == 2u);
    BOOST_TEST((*list)[1].version == 20u);
    live_router node;
    node.start(*j, snaps);
    auto retry = node.ask("a1", deposit{100}, "cmd-42");
    BOOST_TEST_REQUIRE(retry.ok());
    BOOST_TEST(*retry.reply == first); // the original reply (balance 100), not a new deposit
    BOOST_TEST((*j)->head("account-a1")->version == 25u);
    auto m = node.metrics();
    BOOST_TEST(m.duplicates == 1u);
    BOOST_TEST(m.events_replayed == 5u); // recovered from the snapshot at 20
    BOOST_TEST(node.ask("a1", get_balance{}).balance() == 123);
    // Snapshot + replay equals a full replay.
    evident::spec_model<account_aggregate> model;
    auto full = evident::load_state(model, **j, nullptr, "a1");
    auto fast = evident::load_state(model, **j, snaps.get(), "a1");
    BOOST_TEST_REQUIRE(full.has_value());
    BOOST_TEST_REQUIRE(fast.has_value());
    BOOST_TEST(fast->snapshot_version == 20u);
    BOOST_TEST((std::any_cast<account>(full->state) == std::any_cast<account>(fast->state)));
    node.stop();
  }
}

// The router tells its aggregates to stop in slices of 1,000 (one worker's queue of
// 100,000 made CAF 0.17's work stealing quadratic); every one of them must still stop,
// and the router quits only after the last slice.
BOOST_AUTO_TEST_CASE(stopping_the_router_stops_every_aggregate_across_slices) {
  evident::test::temp_dir dir;
  auto jopts = no_sync_journal(dir);
  auto j = evident::lmdb_journal::open(jopts);
  BOOST_TEST_REQUIRE(j.has_value());
  live_router node;
  node.start(*j);
  auto& registry = node.sys.registry();
  auto before = registry.running();
  constexpr size_t n = 2'500; // three slices
  for (size_t i = 0; i < n; ++i)
    BOOST_TEST_REQUIRE(node.ask("s" + std::to_string(i), open{"x"}).ok());
  BOOST_TEST(node.metrics().active == n);
  BOOST_TEST(registry.running() >= before + n);
  node.stop(); // returns once the router is down (after its last slice), then the writer
  BOOST_TEST(evident::test::eventually([&] { return registry.running() + 2 <= before; }));
}

BOOST_AUTO_TEST_SUITE_END()
