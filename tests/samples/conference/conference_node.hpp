#pragma once

// One runtime with the conference sample registered, on a temporary data directory that
// survives restart(), and a virtual saga clock that moves only when a test says so.
// Deadlines are checked only on tick() (tick_interval 0), and right after each start.

#include "conference/conference.hpp"

#include "support/checks.hpp"
#include "support/temp_dir.hpp"

#include "evident/runtime/runtime.hpp"
#include "evident/sagas/clock.hpp"
#include "evident/sagas/saga_manager.hpp"

#include <boost/test/unit_test.hpp>

#include <caf/send.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace conference::test {

using namespace std::chrono_literals;

struct conference_node {
  evident::test::temp_dir dir;
  std::shared_ptr<evident::virtual_saga_clock> clock
      = std::make_shared<evident::virtual_saga_clock>();
  std::unique_ptr<evident::runtime> rt;

  conference_node() {
    start();
  }
  ~conference_node() {
    stop();
  }

  void start() {
    evident::runtime_config cfg;
    cfg.storage.data_dir = dir.str();
    cfg.storage.sync = evident::durability::no_sync;
    cfg.requests.ask_timeout = 10s;
    cfg.shutdown.drain_timeout = 10s;
    rt = std::make_unique<evident::runtime>(cfg);
    evident::saga_options opts;
    opts.tick_interval = 0ms;
    register_conference(*rt, clock, opts);
  }

  void stop() {
    if (rt)
      BOOST_CHECK_MESSAGE(!rt->stop(), "the runtime stopped with an error");
    rt.reset();
  }

  void restart() {
    stop();
    start();
  }

  seats_reply ask(const std::string& conf, const conference_command& c) {
    auto r = rt->ask<seat_availability_aggregate>(conf, c);
    BOOST_REQUIRE_MESSAGE(r.has_value(), evident::test::why(r));
    return *r;
  }

  /// Fires the deadlines due by the virtual clock now.
  void tick() {
    caf::anon_send(rt->saga_manager(reservation_saga::name), evident::saga_tick_atom::value);
  }

  /// The reservation's saga once it ended (or parked); fails the test after 10 s.
  evident::saga_summary wait(const std::string& conf, const std::string& reservation) {
    auto s = rt->saga_wait("reservation", reservation_saga::key_of(conf, reservation), 10s);
    BOOST_REQUIRE_MESSAGE(s.has_value(), evident::test::why(s));
    return *s;
  }

  /// Returns once the reservation's saga has armed its payment deadline. The saga sees
  /// the reservation a moment after the aggregate answered (through its subscription),
  /// and the window starts then: a test must not move the clock before. Nothing
  /// announces that step, so this polls (bounded: 10 s).
  void armed(const std::string& conf, const std::string& reservation) {
    auto key = reservation_saga::key_of(conf, reservation);
    auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
      auto d = rt->saga_show("reservation", key);
      if (d && d->summary.deadlines == 1)
        return;
      std::this_thread::sleep_for(1ms);
    }
    BOOST_FAIL("the saga of " << key << " armed no deadline within 10 s");
  }

  /// The view's counts once it has applied every event written so far.
  seat_counts view(const std::string& conf = {}) {
    auto head = rt->journal()->last_position();
    BOOST_REQUIRE(head.has_value());
    auto r = rt->query<remaining_seats_view>(seats_query{conf}, *head);
    BOOST_REQUIRE_MESSAGE(r.has_value(), evident::test::why(r));
    return *r;
  }

  /// The aggregate's state, folded from its committed events.
  seat_availability state(const std::string& conf) {
    auto s = rt->state_of<seat_availability_aggregate>(conf);
    BOOST_REQUIRE_MESSAGE(s.has_value(), evident::test::why(s));
    return s->state;
  }

  uint64_t deadlines_fired() {
    for (auto& s : rt->metrics().sagas)
      if (s.name == reservation_saga::name)
        return s.counters.deadlines_fired;
    BOOST_FAIL("no reservation saga in the metrics");
    return 0;
  }
};

} // namespace conference::test
