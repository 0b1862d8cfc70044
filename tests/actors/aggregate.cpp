#include "aggregate_fixtures.hpp"
#include "gated_journal.hpp"

#include "evident/actors/temporal.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>

// The aggregate actor's rules, one test each. Most run on CAF's deterministic scheduler
// with the inline writer, which holds appends until the test releases them: the
// in-flight window, stash, rejections and conflicts are then exact, not timing-
// dependent. The tests that need the real journal writer (commit before reply, group
// commits of a hot aggregate) use the real scheduler and a gated journal.

using namespace bank;
using namespace std::chrono_literals;
using evident::errc;
using evident::test::deterministic_router;
using evident::test::live_router;

namespace {

evident::aggregate_options with(size_t max_in_flight, size_t max_stash) {
  auto opts = deterministic_router::no_idle();
  opts.max_in_flight = max_in_flight;
  opts.max_stash = max_stash;
  return opts;
}

} // namespace

BOOST_AUTO_TEST_SUITE(aggregate)

// -- the basics ------------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(commands_persist_events_and_reply_from_the_new_state,
                        deterministic_router) {
  start();
  BOOST_TEST(ask("a1", open{"ada"}).balance() == 0);
  BOOST_TEST(ask("a1", deposit{100}).balance() == 100);
  auto refused = ask("a1", withdraw{500});
  BOOST_TEST_REQUIRE(refused.ok());
  BOOST_TEST(refused.reply->reason == "insufficient funds");
  BOOST_TEST(ask("a1", withdraw{30}).balance() == 70);
  BOOST_TEST(version_of("account-a1") == 3u);
  auto m = metrics();
  BOOST_TEST(m.active == 1u);
  BOOST_TEST(m.activations == 1u);
  BOOST_TEST(m.recoveries == 1u);
  BOOST_TEST(m.commands == 4u);
  BOOST_TEST(m.events == 3u);
}

BOOST_FIXTURE_TEST_CASE(no_reply_leaves_before_its_commit, deterministic_router) {
  start();
  ask("a1", open{"ada"});
  ctl->hold = true;
  send("a1", deposit{10});
  send("a1", get_balance{}); // persists nothing, but its reply would reveal the deposit
  sched.run();
  BOOST_TEST(ctl->held == 1u);
  BOOST_TEST(no_answer());
  release();
  BOOST_TEST(next().balance() == 10);
  BOOST_TEST(next().balance() == 10);
}

BOOST_AUTO_TEST_CASE(reply_only_after_the_real_writer_committed) {
  // Real journal writer, its commit held inside the journal.
  live_router f;
  auto gate = std::make_shared<evident::test::gated_journal>();
  f.on_stop = [gate] { gate->open(); };
  f.start(gate, nullptr, {}, evident::test::models_of<account_no_snapshots>());
  BOOST_TEST_REQUIRE(f.ask("a1", open{"ada"}).ok());
  auto before = gate->entered();
  gate->close();
  auto h = f.self->request(f.router, live_router::timeout, evident::command_atom::value,
                           std::string{"account"}, std::string{"a1"}, std::string{},
                           evident::box_command(account_command{deposit{25}}));
  BOOST_TEST_REQUIRE(gate->wait_entered(before + 1)); // the writer sits in the commit
  BOOST_TEST(gate->inner().head("account-a1")->version == 1u);
  bool early = false;
  f.self->receive([&](evident::reply_box&) { early = true; },
                  [&](caf::error&) { early = true; },
                  caf::after(std::chrono::seconds(0)) >> [] {});
  BOOST_TEST(!early);
  gate->open();
  int64_t balance = -1;
  h.receive(
    [&](evident::reply_box& r) {
      balance = evident::unbox_reply<account_reply>(r)->balance;
      // The event is in the journal by the time the reply exists.
      BOOST_TEST(gate->inner().head("account-a1")->version == 2u);
    },
    [&](caf::error& e) { BOOST_FAIL(caf::to_string(e)); });
  BOOST_TEST(balance == 25);
}

// -- stash -----------------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(commands_during_recovery_wait_in_order, deterministic_router) {
  auto opts = with(1, 3);
  opts.replay_batch = 1; // three events: recovery yields between its batches
  start(opts);
  evident::spec_model<account_aggregate> model;
  evident::append_request req;
  req.stream = "account-a1";
  req.events.push_back(*model.registry().encode(account_event{opened{"ada"}}));
  req.events.push_back(*model.registry().encode(account_event{deposited{10}}));
  req.events.push_back(*model.registry().encode(account_event{deposited{20}}));
  BOOST_TEST_REQUIRE(journal->append(req).has_value());
  send("a1", get_balance{});
  send("a1", deposit{1});
  send("a1", deposit{2});
  sched.run();
  BOOST_TEST(no_answer()); // still replaying: every command waits
  size_t yields = 0;
  while (!has_answer() && yields < 10 && sched.trigger_timeout()) {
    ++yields;
    sched.run();
  }
  BOOST_TEST(yields >= 2u);
  BOOST_TEST(next().balance() == 30); // then the stash in arrival order
  BOOST_TEST(next().balance() == 31);
  BOOST_TEST(next().balance() == 33);
}

BOOST_FIXTURE_TEST_CASE(first_activation_needs_no_fence, deterministic_router) {
  start();
  ctl->hold = true; // a fence would be held: the command could not be decided
  send("a1", open{"ada"});
  sched.run();
  BOOST_TEST(ctl->held == 1u); // the command's own append, nothing before it
  release();
  BOOST_TEST(next().ok());
  BOOST_TEST(writer_metrics().appends == 1u);
}

BOOST_FIXTURE_TEST_CASE(stash_overflow_is_refused_at_once, deterministic_router) {
  start(with(1, 3));
  ctl->hold = true;
  for (int i = 0; i < 4; ++i) // one in flight, three stashed
    send("a1", i == 0 ? account_command{open{"ada"}} : account_command{deposit{i}});
  send("a1", deposit{100});
  sched.run();
  // The fifth command is refused while the other four still wait.
  auto refused = next();
  BOOST_TEST(refused.code() == errc::overloaded);
  BOOST_TEST(no_answer());
  release();
  BOOST_TEST(next().balance() == 0);
  BOOST_TEST(next().balance() == 1);
  BOOST_TEST(next().balance() == 3);
  BOOST_TEST(next().balance() == 6);
  BOOST_TEST(metrics().stash_overflows == 1u);
  BOOST_TEST(version_of("account-a1") == 4u);
}

BOOST_FIXTURE_TEST_CASE(a_full_in_flight_window_stashes, deterministic_router) {
  start(with(2, 10));
  ask("a1", open{"ada"});
  ctl->hold = true;
  for (int i = 1; i <= 5; ++i)
    send("a1", deposit{i});
  sched.run();
  BOOST_TEST(ctl->held == 2u); // two appends in flight, three commands stashed
  BOOST_TEST(no_answer());
  release();
  for (int i = 1, sum = 0; i <= 5; ++i)
    BOOST_TEST(next().balance() == (sum += i));
}

// -- pipelining ------------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(pipelined_commands_share_one_commit, deterministic_router) {
  start();
  ask("a1", open{"ada"});
  ctl->hold = true;
  for (int i = 1; i <= 50; ++i)
    send("a1", deposit{1});
  sched.run();
  BOOST_TEST(ctl->held == 50u); // all decided without waiting for a commit
  auto before = writer_metrics().batches;
  release();
  BOOST_TEST(writer_metrics().batches == before + 1);
  for (int i = 1; i <= 50; ++i)
    BOOST_TEST(next().balance() == i);
  BOOST_TEST(version_of("account-a1") == 51u);
}

BOOST_AUTO_TEST_CASE(hot_aggregate_pipelines_through_the_real_writer) {
  live_router f;
  constexpr int n = 5'000;
  evident::aggregate_options opts;
  opts.max_stash = n; // the test sends everything at once; no backpressure wanted here
  f.start(std::make_shared<evident::memory_journal>(), nullptr, opts,
          evident::test::models_of<account_no_snapshots>());
  BOOST_TEST_REQUIRE(f.ask("hot", open{"ada"}).ok());
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    f.self->send(f.router, evident::command_atom::value, std::string{"account"},
                 std::string{"hot"}, std::string{}, evident::box_command(account_command{deposit{1}}));
  int64_t last = 0;
  int in_order = 0;
  int errors = 0;
  for (int i = 0; i < n; ++i)
    f.self->receive(
      [&](evident::reply_box& r) {
        auto b = evident::unbox_reply<account_reply>(r)->balance;
        if (b == last + 1)
          ++in_order;
        last = b;
      },
      [&](caf::error&) { ++errors; },
      caf::after(live_router::timeout) >> [&] { ++errors; });
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto wm = f.writer_metrics();
  BOOST_TEST_MESSAGE("hot aggregate: " << n << " commands in " << secs << " s ("
                                       << static_cast<int>(n / secs) << "/s), " << wm.batches
                                       << " commits");
  BOOST_TEST(errors == 0);
  BOOST_TEST(in_order == n); // replies in command order, each exactly once
  BOOST_TEST(last == n);
  BOOST_TEST(wm.batches < static_cast<uint64_t>(n)); // commands shared commits
  BOOST_TEST(f.journal->head("account-hot")->version == static_cast<uint64_t>(n + 1));
}

// -- rejections, conflicts, unknown outcomes -------------------------------------------

BOOST_FIXTURE_TEST_CASE(rejection_keeps_state_and_later_commands_are_decided_again,
                        deterministic_router) {
  evident::journal_options jopts;
  jopts.max_event_bytes = 512;
  start(no_idle(), evident::test::models_of<account_no_snapshots>(), jopts);
  ask("a1", open{"ada"});
  ctl->hold = true;
  send("a1", deposit{10});
  send("a1", note{std::string(2000, 'x')}); // too large for the journal
  send("a1", deposit{5});                   // decided on top of the note: must conflict
  sched.run();
  BOOST_TEST(ctl->held == 3u);
  release(); // one batch: ok, too_large, conflict -> deposit 5 decided again, committed
  BOOST_TEST(next().balance() == 10);
  BOOST_TEST(next().code() == errc::too_large);
  BOOST_TEST(next().balance() == 15);
  BOOST_TEST(version_of("account-a1") == 3u);
  auto m = metrics();
  BOOST_TEST(m.rejections == 1u);
  BOOST_TEST(m.stops == 0u);
  BOOST_TEST(m.active == 1u);
  BOOST_TEST(ask("a1", get_balance{}).balance() == 15);
}

BOOST_FIXTURE_TEST_CASE(conflict_replies_the_error_and_the_next_command_recovers,
                        deterministic_router) {
  start();
  ask("a1", open{"ada"});
  // Someone else writes the stream behind the aggregate's back.
  evident::append_request other;
  other.stream = "account-a1";
  other.events.push_back(
    *evident::spec_model<account_aggregate>{}.registry().encode(account_event{deposited{1000}}));
  BOOST_TEST_REQUIRE(journal->append(other).has_value());
  auto r = ask("a1", deposit{10});
  BOOST_TEST(r.code() == errc::wrong_expected_version);
  BOOST_TEST(r.err.actual.value_or(0) == 2u);
  BOOST_TEST(metrics().active == 0u); // stopped
  BOOST_TEST(ask("a1", deposit{10}).balance() == 1010);
  auto m = metrics();
  BOOST_TEST(m.conflicts == 1u);
  BOOST_TEST(m.activations == 2u);
}

BOOST_FIXTURE_TEST_CASE(unknown_outcome_fails_everything_in_flight_and_recovers_later,
                        deterministic_router) {
  start(with(2, 10));
  ask("a1", open{"ada"});
  ctl->hold = true;
  send("a1", deposit{1});
  send("a1", deposit{2});
  send("a1", deposit{3}); // stashed (window of 2)
  sched.run();
  ctl->fail_next = errc::io_error;
  release();
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(next().code() == errc::io_error);
  auto m = metrics();
  BOOST_TEST(m.active == 0u);
  BOOST_TEST(m.stops == 1u);
  // The next command recovers from the journal (nothing of the failed batch landed).
  BOOST_TEST(ask("a1", deposit{7}).balance() == 7);
  BOOST_TEST(metrics().recoveries == 2u);
}

BOOST_FIXTURE_TEST_CASE(timed_out_append_stops_and_the_retry_gets_the_real_outcome,
                        deterministic_router) {
  start();
  ask("a1", open{"ada"});
  ctl->hold = true;
  send("a1", deposit{10}, "c-1");
  sched.run();
  sched.advance_time(std::chrono::seconds(10)); // append_timeout
  sched.run();
  BOOST_TEST(next().code() == errc::timeout);
  BOOST_TEST(metrics().active == 0u);
  // The caller retries. The new incarnation's recovery fence queues behind the old
  // append, which is still at the writer and may yet commit.
  send("a1", deposit{10}, "c-1");
  sched.run();
  BOOST_TEST(no_answer());
  release(); // the old append commits after all, then the fence
  BOOST_TEST(next().balance() == 10); // the original outcome, not a second deposit
  BOOST_TEST(version_of("account-a1") == 2u);
  BOOST_TEST(ask("a1", get_balance{}).balance() == 10);
}

BOOST_FIXTURE_TEST_CASE(append_timeout_counts_from_each_append, deterministic_router) {
  start(); // append_timeout 10 s
  ask("a1", open{"ada"}); // arms the watchdog: due at 10 s
  ctl->hold = true;
  sched.advance_time(8s);
  sched.run();
  send("a1", deposit{1}); // sent at 8 s: times out at 18 s
  sched.run();
  sched.advance_time(2s); // the watchdog checks at 10 s and waits for 18 s
  sched.run();
  BOOST_TEST(no_answer());
  sched.advance_time(7s);
  sched.run();
  BOOST_TEST(no_answer());
  sched.advance_time(1s);
  sched.run();
  BOOST_TEST(next().code() == errc::timeout);
  BOOST_TEST(metrics().active == 0u);
  release();
}

BOOST_FIXTURE_TEST_CASE(writer_gone_is_an_unknown_outcome, deterministic_router) {
  start();
  ask("a1", open{"ada"});
  caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
  sched.run();
  auto r = ask("a1", deposit{1});
  BOOST_TEST(r.code() == errc::io_error); // request_receiver_down
  BOOST_TEST(metrics().active == 0u);
  writer = caf::actor{};
}

// -- user code that throws -------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(exceptions_in_decide_and_apply_become_errors, deterministic_router) {
  start();
  ask("a1", open{"ada"});
  ctl->hold = true;
  send("a1", deposit{5});
  send("a1", explode{}); // decide throws
  send("a1", curse{});   // apply throws while deciding (pending state rebuilt)
  send("a1", deposit{6});
  sched.run();
  release();
  BOOST_TEST(next().balance() == 5);
  auto e1 = next();
  BOOST_TEST(e1.code() == errc::invalid_input);
  BOOST_TEST(e1.err.message.find("decide exploded") != std::string::npos);
  auto e2 = next();
  BOOST_TEST(e2.code() == errc::invalid_input);
  BOOST_TEST(e2.err.message.find("cursed event") != std::string::npos);
  BOOST_TEST(next().balance() == 11);
  auto m = metrics();
  BOOST_TEST(m.decide_failures == 2u);
  BOOST_TEST(m.stops == 0u);
  BOOST_TEST(version_of("account-a1") == 3u);
}

BOOST_FIXTURE_TEST_CASE(a_command_of_another_type_is_invalid_input, deterministic_router) {
  start();
  self->send(router, evident::command_atom::value, std::string{"account"}, std::string{"a1"},
             std::string{}, evident::box_command(42));
  sched.run();
  BOOST_TEST(next().code() == errc::invalid_input);
  self->send(router, evident::command_atom::value, std::string{"nope"}, std::string{"a1"},
             std::string{}, evident::box_command(account_command{open{"x"}}));
  sched.run();
  BOOST_TEST(next().code() == errc::invalid_input);
}

// -- command ids -----------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(retry_of_a_committed_command_gets_the_original_reply,
                        deterministic_router) {
  start();
  ask("a1", open{"ada"});
  BOOST_TEST(ask("a1", deposit{10}, "c-1").balance() == 10);
  BOOST_TEST(ask("a1", deposit{5}).balance() == 15);
  BOOST_TEST(ask("a1", deposit{10}, "c-1").balance() == 10); // the original reply
  BOOST_TEST(version_of("account-a1") == 3u);
  BOOST_TEST(metrics().duplicates == 1u);
}

BOOST_FIXTURE_TEST_CASE(retry_while_in_flight_shares_the_outcome, deterministic_router) {
  start();
  ask("a1", open{"ada"});
  ctl->hold = true;
  send("a1", deposit{10}, "c-1");
  send("a1", deposit{10}, "c-1");
  sched.run();
  BOOST_TEST(ctl->held == 1u);
  release();
  BOOST_TEST(next().balance() == 10);
  BOOST_TEST(next().balance() == 10);
  BOOST_TEST(version_of("account-a1") == 2u);
}

// -- corrupt events --------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(a_corrupt_event_fails_only_its_aggregate, deterministic_router) {
  start();
  evident::append_request bad;
  bad.stream = "account-bad";
  evident::event_data e;
  e.type = "bank.deposited";
  e.payload = "\xc1 not msgpack";
  bad.events.push_back(e);
  BOOST_TEST_REQUIRE(journal->append(bad).has_value());
  evident::append_request unknown;
  unknown.stream = "account-alien";
  e.type = "bank.teleported";
  unknown.events.push_back(e);
  BOOST_TEST_REQUIRE(journal->append(unknown).has_value());
  send("bad", get_balance{});
  send("bad", deposit{1});
  sched.run();
  auto r1 = next();
  BOOST_TEST(r1.code() == errc::corrupted);
  BOOST_TEST(r1.err.message.find("account-bad") != std::string::npos);
  BOOST_TEST(next().code() == errc::corrupted); // every waiting caller hears it
  BOOST_TEST(ask("good", open{"ada"}).ok());    // other aggregates are unaffected
  BOOST_TEST(ask("alien", get_balance{}).code() == errc::unknown_event_type);
  auto m = metrics();
  BOOST_TEST(m.recovery_failures == 2u);
  BOOST_TEST(m.active == 1u);
  BOOST_TEST(ask("good", deposit{3}).balance() == 3);
}

// -- snapshots -------------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(snapshots_every_n_events_keep_the_last_m, deterministic_router) {
  start(); // account_aggregate: every 10 events, keep 2
  ask("a1", open{"ada"});
  for (int i = 0; i < 34; ++i)
    BOOST_TEST_REQUIRE(ask("a1", deposit{1}).ok());
  self->send(snapshot_writer, evident::metrics_atom::value);
  sched.run();
  auto sm = receive_now<evident::snapshot_writer_metrics>();
  BOOST_TEST(sm.saved == 3u);
  auto list = snapshots->list("account-a1");
  BOOST_TEST_REQUIRE(list->size() == 2u);
  BOOST_TEST((*list)[0].version == 20u);
  BOOST_TEST((*list)[1].version == 30u);
  BOOST_TEST(metrics().snapshots == 3u);
}

BOOST_FIXTURE_TEST_CASE(recovery_from_snapshot_plus_replay_equals_full_replay,
                        deterministic_router) {
  start();
  ask("a1", open{"ada"});
  for (int i = 1; i <= 25; ++i)
    ask("a1", i % 3 == 0 ? account_command{withdraw{1}} : account_command{deposit{i}});
  ask("a1", note{"last"});
  // Passivate everything: a new incarnation recovers.
  caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
  sched.run();
  {
    evident::aggregate_env env;
    env.writer = writer;
    env.journal = journal;
    env.snapshots = snapshots;
    env.snapshot_writer = snapshot_writer;
    env.options = no_idle();
    router = evident::spawn_aggregate_router(sys, env, evident::test::models_of());
  }
  auto r = ask("a1", get_balance{});
  auto m = metrics();
  BOOST_TEST(m.recoveries == 1u);
  BOOST_TEST(m.events_replayed == 7u); // snapshot at 20, events 21..27
  evident::spec_model<account_aggregate> model;
  auto full = evident::load_state(model, *journal, nullptr, "a1");
  auto fast = evident::load_state(model, *journal, snapshots.get(), "a1");
  BOOST_TEST_REQUIRE(full.has_value());
  BOOST_TEST_REQUIRE(fast.has_value());
  BOOST_TEST(full->snapshot_version == 0u);
  BOOST_TEST(fast->snapshot_version == 20u);
  BOOST_TEST(full->version == fast->version);
  BOOST_TEST((std::any_cast<account>(full->state) == std::any_cast<account>(fast->state)));
  BOOST_TEST(r.balance() == std::any_cast<account>(full->state).balance);
}

BOOST_FIXTURE_TEST_CASE(a_snapshot_of_another_schema_is_ignored, deterministic_router) {
  start();
  ask("a1", open{"ada"});
  for (int i = 0; i < 12; ++i)
    ask("a1", deposit{1});
  BOOST_TEST_REQUIRE(snapshots->list("account-a1")->size() == 1u);
  evident::spec_model<account_aggregate_v2> v2;
  auto s = evident::load_state(v2, *journal, snapshots.get(), "a1");
  BOOST_TEST_REQUIRE(s.has_value());
  BOOST_TEST(s->snapshot_version == 0u); // schema 1 snapshot ignored: full replay
  BOOST_TEST(s->replayed == 13u);
  BOOST_TEST(std::any_cast<account>(s->state).balance == 12);
}

// -- long streams ----------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(recovery_of_a_long_stream_replays_in_bounded_batches,
                        deterministic_router) {
  auto opts = no_idle();
  opts.replay_batch = 1'024;
  start(opts, evident::test::models_of<account_no_snapshots>());
  constexpr int n = 100'000;
  evident::spec_model<account_aggregate> model;
  evident::append_request req;
  req.stream = "account-long";
  req.events.push_back(*model.registry().encode(account_event{opened{"ada"}}));
  for (int i = 1; i < n; ++i) {
    req.events.push_back(*model.registry().encode(account_event{deposited{1}}));
    if (req.events.size() == 5'000) {
      BOOST_TEST_REQUIRE(journal->append(req).has_value());
      req.events.clear();
    }
  }
  if (!req.events.empty())
    BOOST_TEST_REQUIRE(journal->append(req).has_value());
  send("long", get_balance{});
  send("other", open{"bob"});
  sched.run();
  // The long recovery gave its worker back after its first batch (it waits for the
  // clock now), and the short one finished meanwhile.
  BOOST_TEST(next().ok());
  BOOST_TEST(no_answer());
  size_t yields = 0;
  while (sched.trigger_timeout()) { // the earliest timeout is always the replay's yield
    ++yields;
    sched.run();
    if (has_answer())
      break;
  }
  BOOST_TEST(yields == static_cast<size_t>(n / 1'024));
  BOOST_TEST(next().balance() == n - 1);
  BOOST_TEST(metrics().events_replayed == static_cast<uint64_t>(n));
}

BOOST_AUTO_TEST_SUITE_END()
