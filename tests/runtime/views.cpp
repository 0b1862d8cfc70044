// Views and subscriptions in evident::runtime: registered views start with the runtime,
// answer blocking queries (read-your-writes), report metrics and Prometheus lines, stop
// with it and resume after a restart. Real scheduler and LMDB; every wait is bounded.

#include <boost/test/unit_test.hpp>

#include "evident/actors/atoms.hpp"
#include "evident/actors/event_batch.hpp"
#include "evident/runtime/runtime.hpp"

#include "support/account_aggregate.hpp"
#include "support/print.hpp"
#include "support/temp_dir.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>

using namespace evident;
using namespace std::chrono_literals;

namespace {

struct total_query {
  std::string stream;
};

struct total_result {
  int64_t balance = 0;
  uint64_t events = 0;
};

struct total_row {
  int64_t balance = 0;
  uint64_t events = 0;
  MSGPACK_DEFINE(balance, events)
};

// Balance per account stream, durable.
struct totals_view {
  using event = bank::account_event;
  using query = total_query;
  using result = total_result;
  static constexpr std::string_view name = "totals";

  static void register_events(type_registry<event>& r) {
    bank::account_aggregate::register_events(r);
  }

  static evident::subscription_filter filter() {
    evident::subscription_filter f;
    f.categories = {"account"};
    return f;
  }

  static void project(view_rows& rows, const recorded_event& meta, const event& e) {
    auto row = rows.get_as<total_row>(meta.stream).value_or(total_row{});
    if (auto* d = std::get_if<bank::deposited>(&e))
      row.balance += d->amount;
    else if (auto* w = std::get_if<bank::withdrawn>(&e))
      row.balance -= w->amount;
    ++row.events;
    rows.put_as(meta.stream, row);
  }

  static result ask(const view_rows& rows, const query& q) {
    auto row = rows.get_as<total_row>(q.stream).value_or(total_row{});
    return {row.balance, row.events};
  }
};

runtime_config config_for(const test::temp_dir& dir) {
  runtime_config cfg;
  cfg.storage.data_dir = dir.str();
  cfg.storage.sync = durability::no_sync;
  cfg.shutdown.drain_timeout = 10s;
  return cfg;
}

struct batch_log {
  std::mutex mtx;
  std::condition_variable cv;
  uint64_t through = 0;
  uint64_t events = 0;
};

} // namespace

BOOST_AUTO_TEST_SUITE(runtime_views)

BOOST_AUTO_TEST_CASE(registered_view_answers_queries_after_the_commands_it_waits_for) {
  test::temp_dir dir;
  runtime rt{config_for(dir)};
  rt.register_aggregate<bank::account_aggregate>();
  rt.register_view<totals_view>();
  BOOST_CHECK_THROW(rt.register_view<totals_view>(), std::invalid_argument);
  BOOST_REQUIRE(rt.ask<bank::account_aggregate>("a1", bank::open{"ann"}));
  for (int i = 1; i <= 10; ++i)
    BOOST_REQUIRE(rt.ask<bank::account_aggregate>("a1", bank::deposit{i}));
  auto head = rt.journal()->last_position();
  BOOST_REQUIRE(head);
  auto r = rt.query<totals_view>({"account-a1"}, *head);
  BOOST_REQUIRE_MESSAGE(r, to_string(r.err()));
  BOOST_TEST(r->balance == 55);
  BOOST_TEST(r->events == 11u);
  auto late = rt.query<totals_view>({"account-a1"}, *head + 100, 50ms);
  BOOST_REQUIRE(!late);
  BOOST_TEST(late.err().code == errc::timeout);
  auto none = rt.query_boxed("nope", view_query{}, 0, 1s);
  BOOST_REQUIRE(!none);
  BOOST_TEST(none.err().code == errc::invalid_input);
  auto m = rt.metrics();
  BOOST_REQUIRE(m.views.size() == 1u);
  BOOST_TEST(m.views[0].name == "totals");
  BOOST_TEST(m.views[0].position == *head);
  BOOST_TEST(m.views[0].lag == 0u);
  BOOST_TEST(m.bus.events == *head);
  auto text = to_prometheus(m);
  BOOST_TEST(text.find("evident_view_position{view=\"totals\"} " + std::to_string(*head))
             != std::string::npos);
  BOOST_TEST(text.find("evident_view_lag{view=\"totals\"} 0") != std::string::npos);
  BOOST_TEST(!rt.stop());
  auto after = rt.query<totals_view>({"account-a1"});
  BOOST_REQUIRE(!after);
  BOOST_TEST(after.err().code == errc::unavailable);
}

BOOST_AUTO_TEST_CASE(durable_view_and_raw_subscription_resume_after_a_restart) {
  test::temp_dir dir;
  uint64_t head = 0;
  {
    runtime rt{config_for(dir)};
    rt.register_aggregate<bank::account_aggregate>();
    rt.register_view<totals_view>();
    BOOST_REQUIRE(rt.ask<bank::account_aggregate>("b", bank::open{"bob"}));
    for (int i = 1; i <= 5; ++i)
      BOOST_REQUIRE(rt.ask<bank::account_aggregate>("b", bank::deposit{i}));
    head = *rt.journal()->last_position();
    BOOST_REQUIRE(rt.query<totals_view>({"account-b"}, head));
    // A subscriber with managed checkpoints, stopped with the runtime.
    auto log = std::make_shared<batch_log>();
    auto subscriber = rt.system().spawn([log](caf::event_based_actor*) -> caf::behavior {
      return {[log](deliver_atom, const event_batch& b) {
        std::lock_guard guard{log->mtx};
        log->through = b.through;
        log->events += b.events.size();
        log->cv.notify_all();
        return b.through;
      }};
    });
    subscription_options o;
    o.name = "audit";
    rt.subscribe(subscriber, o);
    {
      std::unique_lock guard{log->mtx};
      BOOST_REQUIRE(log->cv.wait_for(guard, 10s, [&] { return log->through >= head; }));
    }
    BOOST_TEST(!rt.stop());
    caf::anon_send_exit(subscriber, caf::exit_reason::user_shutdown);
  }
  runtime rt{config_for(dir)};
  rt.register_aggregate<bank::account_aggregate>();
  rt.register_view<totals_view>();
  // Resumed from its stored position: the old events are not applied a second time.
  BOOST_REQUIRE(rt.ask<bank::account_aggregate>("b", bank::deposit{100}));
  auto now = *rt.journal()->last_position();
  auto r = rt.query<totals_view>({"account-b"}, now);
  BOOST_REQUIRE(r);
  BOOST_TEST(r->balance == 115);
  BOOST_TEST(r->events == 7u);
  {
    checkpoint_store cps{rt.journal()->env()}; // dropped before stop: it holds LMDB
    auto audit = cps.load("audit");
    BOOST_REQUIRE(audit);
    BOOST_TEST(audit->value_or(0) == head);
  }
  auto st = rt.stop();
  BOOST_TEST(!st, to_string(st));
}

BOOST_AUTO_TEST_SUITE_END()
