// evident::runtime: start and stop on a temp dir, durable appends across a restart,
// graceful stop with appends in flight, fail-fast requests after stop, SIGTERM, metrics.
// Real scheduler and real LMDB; every wait is bounded.

#include <boost/test/unit_test.hpp>

#include "evident/actors/atoms.hpp"
#include "evident/persistence/failing_journal.hpp"
#include "evident/persistence/lmdb_journal.hpp"
#include "evident/runtime/runtime.hpp"

#include "support/account_aggregate.hpp"
#include "support/checks.hpp"
#include "support/gate_hook.hpp"
#include "support/temp_dir.hpp"

#include <caf/all.hpp>
#include <caf/policy/work_sharing.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/scheduler/coordinator.hpp>

#include <msgpack.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

using namespace evident;
using namespace std::chrono_literals;

namespace {

constexpr auto bound = 10s; // a broken test fails within this, it does not hang

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string code_of(const error& e) {
  return std::string{to_string(e.code)};
}

append_request one_event(std::string stream, expected_version ev = expected_version::any(),
                         std::string payload = "\xa3"
                                               "abc") {
  append_request req;
  req.stream = std::move(stream);
  req.expected = ev;
  event_data e;
  e.type = "test.happened";
  e.payload = std::move(payload);
  req.events.push_back(std::move(e));
  return req;
}

using test::eventually;

using test::gate_hook;

// An aggregate type without a snapshot policy of its own: it gets the config's.
struct added {
  int64_t n = 0;
  MSGPACK_DEFINE(n)
};

struct total {
  int64_t value = 0;
  MSGPACK_DEFINE(value)
};

struct add {
  int64_t n = 0;
};

struct counter_aggregate {
  using state = total;
  using command = add;
  using event = std::variant<added>;
  using reply = int64_t;
  static constexpr std::string_view name = "counter";
  static void register_events(type_registry<event>& r) {
    r.add<added>("test.added");
  }
  static effect<state, event, reply> decide(const state&, const command& c) {
    return persist(added{c.n}).then_reply([](const total& t) { return t.value; });
  }
  static state apply(state s, const event& e) {
    s.value += std::get<added>(e).n;
    return s;
  }
};

struct fixture {
  evident::test::temp_dir dir;
  runtime_config cfg;

  fixture() {
    cfg.storage.data_dir = dir.sub("data");
    cfg.storage.sync = durability::no_sync; // a process crash still loses nothing
    cfg.storage.map_size = size_t{4} << 20;
    cfg.requests.ask_timeout = 5s;
    cfg.shutdown.drain_timeout = 5s;
  }

  // The journal as a separate process would see it after the runtime stopped.
  std::shared_ptr<lmdb_journal> reopen() {
    auto j = lmdb_journal::open(cfg.journal());
    BOOST_REQUIRE_MESSAGE(j, j.err().message);
    return *j;
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(runtime_tests)

// -- start / stop -------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(starts_and_stops_on_a_temp_dir, fixture) {
  runtime rt{cfg};
  BOOST_TEST(rt.running());
  BOOST_TEST(rt.system().scheduler().num_workers() == 2u);
  BOOST_TEST(rt.config().storage.data_dir == cfg.storage.data_dir);
  std::weak_ptr<lmdb_journal> weak = rt.journal();
  BOOST_TEST(!weak.expired());
  BOOST_TEST(rt.snapshots() != nullptr);
  BOOST_TEST(static_cast<bool>(rt.writer()));
  auto err = rt.stop();
  BOOST_TEST(!err, err.message);
  BOOST_TEST(!rt.running());
  // LMDB is closed: nobody holds the journal any more.
  BOOST_TEST(weak.expired());
  BOOST_TEST(rt.journal() == nullptr);
  BOOST_TEST(rt.snapshots() == nullptr);
  // Idempotent.
  BOOST_TEST(!rt.stop());
}

BOOST_FIXTURE_TEST_CASE(the_scheduler_gets_exactly_the_configured_threads, fixture) {
  cfg.scheduler.threads = 1;
  runtime rt{cfg};
  BOOST_TEST(rt.system().scheduler().num_workers() == 1u);
}

BOOST_FIXTURE_TEST_CASE(the_scheduler_runs_the_configured_policy, fixture) {
  using sharing = caf::scheduler::coordinator<caf::policy::work_sharing>;
  using stealing = caf::scheduler::coordinator<caf::policy::work_stealing>;
  {
    runtime rt{cfg};
    BOOST_TEST(dynamic_cast<stealing*>(&rt.system().scheduler()) != nullptr);
  }
  cfg.scheduler.policy = scheduler_policy::sharing;
  runtime rt{cfg};
  BOOST_TEST(dynamic_cast<sharing*>(&rt.system().scheduler()) != nullptr);
  BOOST_TEST(rt.system().scheduler().num_workers() == 2u);
}

BOOST_FIXTURE_TEST_CASE(a_bad_config_is_a_clear_startup_error, fixture) {
  runtime_config no_dir;
  try {
    runtime rt{no_dir};
    BOOST_FAIL("a runtime without data_dir started");
  } catch (const startup_error& ex) {
    BOOST_TEST(code_of(ex.err()) == "invalid_input");
    BOOST_TEST(contains(ex.what(), "storage.data_dir"), ex.what());
  }
  cfg.scheduler.threads = 0;
  auto rt = runtime::start(cfg);
  BOOST_REQUIRE(!rt);
  BOOST_TEST(code_of(rt.err()) == "invalid_input");
  BOOST_TEST(contains(rt.err().message, "scheduler.threads"), rt.err().message);
}

BOOST_FIXTURE_TEST_CASE(an_unopenable_journal_is_a_clear_startup_error, fixture) {
  // data_dir is a regular file: no directory can be created there.
  { std::ofstream{dir.sub("file")} << "not a directory"; }
  cfg.storage.data_dir = dir.sub("file") + "/data";
  auto rt = runtime::start(cfg);
  BOOST_REQUIRE(!rt);
  BOOST_TEST(contains(rt.err().message, "cannot open the journal in '" + cfg.storage.data_dir),
             rt.err().message);
  // A foreign file where the journal should be.
  std::filesystem::create_directories(dir.sub("foreign"));
  { std::ofstream{dir.sub("foreign") + "/data.mdb"} << std::string(8192, 'x'); }
  cfg.storage.data_dir = dir.sub("foreign");
  rt = runtime::start(cfg);
  BOOST_REQUIRE(!rt);
  BOOST_TEST(contains(rt.err().message, "cannot open the journal"), rt.err().message);
}

// -- appends ------------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(appends_survive_a_stop_and_a_restart, fixture) {
  cfg.storage.sync = durability::fsync_each_commit;
  {
    runtime rt{cfg};
    for (uint64_t v = 0; v < 3; ++v) {
      auto r = rt.append(one_event("s-1", expected_version::exact(v), "p" + std::to_string(v)));
      BOOST_REQUIRE_MESSAGE(r, r.err().message);
      BOOST_TEST(r->last_version == v + 1);
    }
    BOOST_REQUIRE(!rt.stop());
  }
  {
    runtime rt{cfg};
    auto head = rt.journal()->head("s-1");
    BOOST_REQUIRE(head);
    BOOST_TEST(head->version == 3u);
    auto events = rt.journal()->read_stream("s-1");
    BOOST_REQUIRE(events);
    BOOST_REQUIRE(events->size() == 3u);
    BOOST_TEST((*events)[2].payload == "p2");
    auto r = rt.append(one_event("s-1", expected_version::exact(3)));
    BOOST_REQUIRE_MESSAGE(r, r.err().message);
    BOOST_TEST(r->last_position == 4u);
  } // the destructor stops
  auto j = reopen();
  auto head = j->head("s-1");
  BOOST_REQUIRE(head);
  BOOST_TEST(head->version == 4u);
}

BOOST_FIXTURE_TEST_CASE(a_conflict_comes_back_as_wrong_expected_version, fixture) {
  runtime rt{cfg};
  BOOST_REQUIRE(rt.append(one_event("s-1", expected_version::no_stream())));
  auto r = rt.append(one_event("s-1", expected_version::exact(0)));
  BOOST_REQUIRE(!r);
  BOOST_TEST(code_of(r.err()) == "wrong_expected_version");
  BOOST_REQUIRE(r.err().actual.has_value());
  BOOST_TEST(*r.err().actual == 1u);
}

BOOST_FIXTURE_TEST_CASE(appends_after_stop_fail_fast, fixture) {
  runtime rt{cfg};
  BOOST_REQUIRE(rt.append(one_event("s-1")));
  BOOST_REQUIRE(!rt.stop());
  auto t0 = std::chrono::steady_clock::now();
  auto r = rt.append(one_event("s-1"));
  BOOST_CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
  BOOST_REQUIRE(!r);
  BOOST_TEST(code_of(r.err()) == "unavailable");
  BOOST_TEST(contains(r.err().message, "stopped"), r.err().message);
  auto m = rt.metrics();
  BOOST_TEST(!m.running);
  BOOST_TEST(m.refused_unavailable == 1u);
  BOOST_TEST(m.requests == 1u);
}

BOOST_FIXTURE_TEST_CASE(graceful_stop_answers_every_append_in_flight_and_loses_none, fixture) {
  // The writer's journal holds every commit until released, so the appends below are
  // provably in flight when stop() begins.
  gate_hook gate;
  auto hooks = gate.hooks();
  auto rt = std::make_unique<runtime>(cfg, hooks);
  constexpr size_t n = 16;
  std::vector<std::future<expected<append_result>>> answers;
  for (size_t i = 0; i < n; ++i)
    answers.push_back(std::async(std::launch::async, [&, i] {
      return rt->append(one_event("s-" + std::to_string(i), expected_version::no_stream()));
    }));
  BOOST_REQUIRE(gate()->wait_held(1, bound));
  BOOST_REQUIRE(eventually([&] { return rt->requests_in_flight() == n; }));
  auto stopped = std::async(std::launch::async, [&] { return rt->stop(); });
  BOOST_REQUIRE(eventually([&] { return !rt->running(); }));
  // Stopping: new appends are refused at once, the ones in flight still wait.
  auto late = rt->append(one_event("late"));
  BOOST_REQUIRE(!late);
  BOOST_TEST(code_of(late.err()) == "unavailable");
  BOOST_TEST(contains(late.err().message, "stopping"), late.err().message);
  for (auto& a : answers)
    BOOST_CHECK(a.wait_for(0s) == std::future_status::timeout);
  gate()->release();
  for (size_t i = 0; i < n; ++i) {
    BOOST_REQUIRE(answers[i].wait_for(bound) == std::future_status::ready);
    auto r = answers[i].get();
    BOOST_TEST(r.has_value(), "append " << i << ": " << r.err().message);
  }
  BOOST_REQUIRE(stopped.wait_for(bound) == std::future_status::ready);
  auto err = stopped.get();
  BOOST_TEST(!err, err.message);
  rt.reset();
  auto j = reopen();
  for (size_t i = 0; i < n; ++i) {
    auto head = j->head("s-" + std::to_string(i));
    BOOST_REQUIRE(head);
    BOOST_TEST(head->version == 1u, "s-" << i);
  }
  auto last = j->last_position();
  BOOST_REQUIRE(last);
  BOOST_TEST(*last == n);
}

BOOST_FIXTURE_TEST_CASE(graceful_stop_lets_the_writer_commit_what_actors_sent_it, fixture) {
  // Appends sent straight to the writer (as aggregates do), not through runtime::append:
  // stop() must let the writer commit and answer them before it quits.
  gate_hook gate;
  auto hooks = gate.hooks();
  auto rt = std::make_unique<runtime>(cfg, hooks);
  constexpr size_t n = 20;
  std::vector<std::string> answers;
  {
    caf::scoped_actor self{rt->system()};
    for (size_t i = 0; i < n; ++i)
      self->send(rt->writer(), append_atom::value, one_event("d-" + std::to_string(i)));
    BOOST_REQUIRE(gate()->wait_held(1, bound));
    auto stopped = std::async(std::launch::async, [&] { return rt->stop(); });
    BOOST_REQUIRE(eventually([&] { return !rt->running(); }));
    gate()->release();
    for (size_t i = 0; i < n; ++i)
      self->receive([&](append_result&) { answers.push_back("ok"); },
                    [&](caf::error& e) { answers.push_back(caf::to_string(e)); },
                    caf::after(bound) >> [&] { answers.push_back("no answer"); });
    BOOST_REQUIRE(stopped.wait_for(bound) == std::future_status::ready);
    auto err = stopped.get();
    BOOST_TEST(!err, err.message);
  }
  BOOST_REQUIRE(answers.size() == n);
  for (size_t i = 0; i < n; ++i)
    BOOST_TEST(answers[i] == "ok", i);
  rt.reset();
  auto last = reopen()->last_position();
  BOOST_REQUIRE(last);
  BOOST_TEST(*last == n);
}

BOOST_FIXTURE_TEST_CASE(a_stuck_writer_is_killed_after_the_drain_timeout, fixture) {
  gate_hook gate{3s}; // the "hung disk" recovers eventually, so the test ends
  auto hooks = gate.hooks();
  cfg.shutdown.drain_timeout = 200ms;
  cfg.requests.ask_timeout = 200ms;
  auto rt = std::make_unique<runtime>(cfg, hooks);
  auto pending = std::async(std::launch::async, [&] { return rt->append(one_event("s-1")); });
  BOOST_REQUIRE(gate()->wait_held(1, bound));
  auto t0 = std::chrono::steady_clock::now();
  auto err = rt->stop();
  BOOST_CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  BOOST_TEST(code_of(err) == "timeout", err.message);
  BOOST_REQUIRE(pending.wait_for(bound) == std::future_status::ready);
  auto r = pending.get();
  BOOST_REQUIRE(!r);
  BOOST_TEST(code_of(r.err()) == "timeout"); // outcome unknown
  if (auto g = gate.ref.lock())
    g->release();
  rt.reset(); // waits for the killed writer: its commit returns once released
}

// -- signals ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(wait_for_stop_signal_is_bounded_and_woken_by_request_stop) {
  runtime::clear_stop_request();
  BOOST_TEST(!runtime::stop_requested());
  auto t0 = std::chrono::steady_clock::now();
  BOOST_TEST(!runtime::wait_for_stop_signal(50ms));
  BOOST_CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
  auto waiter = std::async(std::launch::async, [] { return runtime::wait_for_stop_signal(bound); });
  std::this_thread::sleep_for(20ms);
  runtime::request_stop();
  BOOST_REQUIRE(waiter.wait_for(bound) == std::future_status::ready);
  BOOST_TEST(waiter.get());
  BOOST_TEST(runtime::stop_requested());
  // Every later wait sees the request until it is cleared.
  BOOST_TEST(runtime::wait_for_stop_signal(0ms));
  runtime::clear_stop_request();
  BOOST_TEST(!runtime::wait_for_stop_signal(0ms));
}

BOOST_FIXTURE_TEST_CASE(sigterm_stops_a_runtime_blocked_in_run_until_stopped, fixture) {
  runtime::clear_stop_request();
  runtime::install_signal_handlers();
  runtime rt{cfg};
  BOOST_REQUIRE(rt.append(one_event("s-1")));
  auto main_loop = std::async(std::launch::async, [&] { return rt.run_until_stopped(); });
  BOOST_CHECK(main_loop.wait_for(50ms) == std::future_status::timeout);
  std::raise(SIGTERM);
  auto ready = main_loop.wait_for(bound) == std::future_status::ready;
  runtime::restore_signal_handlers();
  runtime::clear_stop_request();
  BOOST_REQUIRE(ready);
  auto err = main_loop.get();
  BOOST_TEST(!err, err.message);
  BOOST_TEST(!rt.running());
  BOOST_TEST(code_of(rt.append(one_event("s-1")).err()) == "unavailable");
}

BOOST_FIXTURE_TEST_CASE(sigint_requests_a_stop_too, fixture) {
  runtime::clear_stop_request();
  runtime::install_signal_handlers();
  std::raise(SIGINT);
  auto requested = runtime::wait_for_stop_signal(bound);
  runtime::restore_signal_handlers();
  runtime::clear_stop_request();
  BOOST_TEST(requested);
}

BOOST_FIXTURE_TEST_CASE(run_until_stopped_returns_when_another_thread_stops, fixture) {
  runtime::clear_stop_request();
  runtime rt{cfg};
  auto main_loop = std::async(std::launch::async, [&] { return rt.run_until_stopped(); });
  BOOST_REQUIRE(!rt.stop());
  BOOST_REQUIRE(main_loop.wait_for(bound) == std::future_status::ready);
  BOOST_TEST(!main_loop.get());
}

// -- metrics ------------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(metrics_reflect_appends, fixture) {
  runtime rt{cfg};
  auto m0 = rt.metrics();
  BOOST_TEST(m0.running);
  BOOST_TEST(m0.writer.appends == 0u);
  for (int i = 0; i < 3; ++i)
    BOOST_REQUIRE(rt.append(one_event("s-1")));
  auto bad = rt.append(one_event("s-1", expected_version::no_stream()));
  BOOST_REQUIRE(!bad);
  auto m = rt.metrics();
  BOOST_TEST(m.writer.appends == 4u);
  BOOST_TEST(m.writer.events == 3u);
  BOOST_TEST(m.writer.failed == 1u);
  BOOST_TEST(m.writer.batches >= 1u);
  BOOST_TEST(m.writer.batches <= 4u);
  BOOST_TEST(m.writer.largest_batch_events >= 1u);
  uint64_t in_buckets = 0;
  for (auto x : m.writer.commit_latency)
    in_buckets += x;
  BOOST_TEST(in_buckets == m.writer.batches);
  uint64_t answered = 0;
  for (auto x : m.writer.answer_latency)
    answered += x;
  BOOST_TEST(answered == 4u); // the refused append was answered too
  BOOST_TEST(m.requests == 4u);
  BOOST_TEST(m.aggregates.active == 0u);
  auto text = to_prometheus(m);
  BOOST_TEST(contains(text, "# TYPE evident_journal_appends_total counter\n"
                            "evident_journal_appends_total 4\n"),
             text);
  BOOST_TEST(contains(text, "evident_journal_events_total 3\n"), text);
  BOOST_TEST(contains(text, "evident_up 1\n"), text);
  BOOST_TEST(contains(text, "# TYPE evident_journal_commit_duration_seconds histogram\n"), text);
  BOOST_TEST(contains(text, "evident_journal_commit_duration_seconds_bucket{le=\"0.0001\"} "),
             text);
  BOOST_TEST(contains(text, "evident_journal_commit_duration_seconds_bucket{le=\"+Inf\"} "
                                + std::to_string(m.writer.batches) + "\n"),
             text);
  BOOST_TEST(contains(text, "evident_journal_commit_duration_seconds_count "
                                + std::to_string(m.writer.batches) + "\n"),
             text);
  BOOST_TEST(contains(text, "# TYPE evident_journal_append_duration_seconds histogram\n"), text);
  BOOST_TEST(contains(text, "evident_journal_append_duration_seconds_bucket{le=\"+Inf\"} 4\n"
                            "evident_journal_append_duration_seconds_sum "),
             text);
  BOOST_TEST(contains(text, "evident_journal_append_duration_seconds_count 4\n"), text);
  // Every sample line is "name[{labels}] value"; every metric has HELP and TYPE.
  std::istringstream lines{text};
  std::string line;
  size_t helps = 0;
  size_t types = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      ++helps;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      ++types;
      continue;
    }
    auto space = line.rfind(' ');
    BOOST_REQUIRE_MESSAGE(space != std::string::npos, line);
    BOOST_TEST(line.rfind("evident_", 0) == 0u, line);
    auto value = line.substr(space + 1);
    BOOST_TEST(value.find_first_not_of("0123456789.e-+") == std::string::npos, line);
  }
  BOOST_TEST(helps == types);
  BOOST_TEST(helps >= 15u);
  // After stop: the last values, and "down".
  BOOST_REQUIRE(!rt.stop());
  auto after = rt.metrics();
  BOOST_TEST(!after.running);
  BOOST_TEST(after.writer.appends == 4u);
  BOOST_TEST(contains(to_prometheus(after), "evident_up 0\n"));
}

// -- aggregates ---------------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(asks_reach_registered_aggregates_and_survive_a_restart, fixture) {
  {
    runtime rt{cfg};
    rt.register_aggregate<bank::account_aggregate>();
    auto r = rt.ask<bank::account_aggregate>("acc-1", bank::open{"ann"});
    BOOST_REQUIRE_MESSAGE(r, r.err().message);
    BOOST_TEST(r->ok);
    r = rt.ask<bank::account_aggregate>("acc-1", bank::deposit{5}, "cmd-1");
    BOOST_REQUIRE_MESSAGE(r, r.err().message);
    BOOST_TEST(r->balance == 5);
    // A retry with the same command id gets the first reply and writes nothing.
    r = rt.ask<bank::account_aggregate>("acc-1", bank::deposit{5}, "cmd-1");
    BOOST_REQUIRE_MESSAGE(r, r.err().message);
    BOOST_TEST(r->balance == 5);
    // A domain refusal is a reply, not an error.
    r = rt.ask<bank::account_aggregate>("acc-1", bank::withdraw{50});
    BOOST_REQUIRE_MESSAGE(r, r.err().message);
    BOOST_TEST(!r->ok);
    BOOST_TEST(r->reason == "insufficient funds");
    auto st = rt.state_of<bank::account_aggregate>("acc-1");
    BOOST_REQUIRE_MESSAGE(st, st.err().message);
    BOOST_TEST(st->state.balance == 5);
    BOOST_TEST(st->version == 2u);
    BOOST_REQUIRE(!rt.stop());
  }
  runtime rt{cfg};
  rt.register_aggregate<bank::account_aggregate>();
  auto r = rt.ask<bank::account_aggregate>("acc-1", bank::get_balance{});
  BOOST_REQUIRE_MESSAGE(r, r.err().message);
  BOOST_TEST(r->balance == 5);
  r = rt.ask<bank::account_aggregate>("acc-1", bank::deposit{5}, "cmd-1");
  BOOST_REQUIRE_MESSAGE(r, r.err().message);
  BOOST_TEST(r->balance == 5); // still deduplicated after the restart
  auto m = rt.metrics();
  BOOST_TEST(m.aggregates.active == 1u);
  BOOST_TEST(m.aggregates.recoveries == 1u);
  BOOST_TEST(m.aggregates.commands == 2u);
  BOOST_TEST(contains(to_prometheus(m), "evident_aggregates_active 1\n"));
}

BOOST_FIXTURE_TEST_CASE(registration_errors_are_clear, fixture) {
  runtime rt{cfg};
  rt.register_aggregate<bank::account_aggregate>();
  BOOST_CHECK_THROW(rt.register_aggregate<bank::account_aggregate>(), std::invalid_argument);
  BOOST_CHECK_THROW(rt.register_aggregate(nullptr), std::invalid_argument);
  auto r = rt.ask_boxed("nope", "x", box_command(1), "", 1s);
  BOOST_REQUIRE(!r);
  BOOST_TEST(code_of(r.err()) == "invalid_input");
  BOOST_TEST(contains(r.err().message, "no aggregate type 'nope'"), r.err().message);
  // The router started with the first ask: registration is over.
  BOOST_CHECK_THROW(rt.register_aggregate<counter_aggregate>(), std::logic_error);
  BOOST_TEST(static_cast<bool>(rt.router()));
}

BOOST_FIXTURE_TEST_CASE(specs_without_a_snapshot_policy_get_the_configs, fixture) {
  cfg.snapshots.every = 2;
  cfg.snapshots.keep_last = 1;
  {
    runtime rt{cfg};
    rt.register_aggregate<counter_aggregate>();
    rt.register_aggregate<bank::account_aggregate>(); // own policy: every 10 events
    for (int i = 1; i <= 5; ++i) {
      auto r = rt.ask<counter_aggregate>("c-1", add{i});
      BOOST_REQUIRE_MESSAGE(r, r.err().message);
      BOOST_TEST(*r == i * (i + 1) / 2);
    }
    BOOST_REQUIRE(rt.ask<bank::account_aggregate>("acc-1", bank::open{"ann"}));
    for (int i = 0; i < 4; ++i)
      BOOST_REQUIRE(rt.ask<bank::account_aggregate>("acc-1", bank::deposit{1}));
    BOOST_REQUIRE(!rt.stop()); // the snapshot writer saves what it holds first
  }
  auto j = reopen();
  lmdb_snapshot_store store{j->env()};
  auto counter = store.list("counter-c-1");
  BOOST_REQUIRE(counter);
  BOOST_REQUIRE(counter->size() == 1u); // keep_last = 1
  BOOST_TEST(counter->front().version == 4u);
  auto account = store.list("account-acc-1");
  BOOST_REQUIRE(account);
  BOOST_TEST(account->empty()); // 5 events < 10
  auto policy = with_snapshot_policy(make_model<counter_aggregate>(), {7, 3})->snapshots();
  BOOST_TEST(policy.every_events == 7u);
  BOOST_TEST(policy.keep_last == 3u);
}

BOOST_FIXTURE_TEST_CASE(graceful_stop_answers_every_ask_in_flight_and_loses_none, fixture) {
  gate_hook gate;
  auto hooks = gate.hooks();
  auto rt = std::make_unique<runtime>(cfg, hooks);
  rt->register_aggregate<bank::account_aggregate>();
  constexpr size_t n = 8;
  std::vector<std::future<expected<bank::account_reply>>> answers;
  for (size_t i = 0; i < n; ++i)
    answers.push_back(std::async(std::launch::async, [&, i] {
      return rt->ask<bank::account_aggregate>("acc-" + std::to_string(i),
                                              bank::open{"owner " + std::to_string(i)});
    }));
  BOOST_REQUIRE(gate()->wait_held(1, bound));
  BOOST_REQUIRE(eventually([&] { return rt->requests_in_flight() == n; }));
  auto stopped = std::async(std::launch::async, [&] { return rt->stop(); });
  BOOST_REQUIRE(eventually([&] { return !rt->running(); }));
  auto late = rt->ask<bank::account_aggregate>("acc-late", bank::open{"late"});
  BOOST_REQUIRE(!late);
  BOOST_TEST(code_of(late.err()) == "unavailable");
  BOOST_TEST(!rt->router());
  gate()->release();
  for (size_t i = 0; i < n; ++i) {
    BOOST_REQUIRE(answers[i].wait_for(bound) == std::future_status::ready);
    auto r = answers[i].get();
    BOOST_REQUIRE_MESSAGE(r, "ask " << i << ": " << r.err().message);
    BOOST_TEST(r->ok);
  }
  BOOST_REQUIRE(stopped.wait_for(bound) == std::future_status::ready);
  auto err = stopped.get();
  BOOST_TEST(!err, err.message);
  rt.reset();
  runtime again{cfg};
  again.register_aggregate<bank::account_aggregate>();
  for (size_t i = 0; i < n; ++i) {
    auto st = again.state_of<bank::account_aggregate>("acc-" + std::to_string(i));
    BOOST_REQUIRE_MESSAGE(st, st.err().message);
    BOOST_TEST(st->state.open);
    BOOST_TEST(st->state.owner == "owner " + std::to_string(i));
  }
}

BOOST_FIXTURE_TEST_CASE(an_ask_that_outlives_its_timeout_says_timeout, fixture) {
  gate_hook gate;
  auto hooks = gate.hooks();
  runtime rt{cfg, hooks};
  rt.register_aggregate<bank::account_aggregate>();
  auto r = rt.ask<bank::account_aggregate>("acc-1", bank::open{"ann"}, "cmd-1", 100ms);
  BOOST_REQUIRE(!r);
  BOOST_TEST(code_of(r.err()) == "timeout");
  gate()->release();
  // The retry with the same command id learns what happened.
  r = rt.ask<bank::account_aggregate>("acc-1", bank::open{"ann"}, "cmd-1");
  BOOST_REQUIRE_MESSAGE(r, r.err().message);
  BOOST_TEST(r->ok);
}

BOOST_FIXTURE_TEST_CASE(asks_after_stop_fail_fast, fixture) {
  runtime rt{cfg};
  rt.register_aggregate<bank::account_aggregate>();
  BOOST_REQUIRE(rt.ask<bank::account_aggregate>("acc-1", bank::open{"ann"}));
  BOOST_REQUIRE(!rt.stop());
  auto t0 = std::chrono::steady_clock::now();
  auto r = rt.ask<bank::account_aggregate>("acc-1", bank::get_balance{});
  BOOST_CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
  BOOST_REQUIRE(!r);
  BOOST_TEST(code_of(r.err()) == "unavailable");
  auto st = rt.state_of<bank::account_aggregate>("acc-1");
  BOOST_REQUIRE(!st);
  BOOST_TEST(code_of(st.err()) == "unavailable");
  BOOST_TEST(!rt.router());
  auto m = rt.metrics();
  BOOST_TEST(m.aggregates.commands == 1u); // the values from before the stop
}

BOOST_AUTO_TEST_SUITE_END()
