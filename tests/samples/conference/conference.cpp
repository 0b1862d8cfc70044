// The whole sample on a runtime (register_conference): reservations expire by their
// saga's durable deadline unless paid, also across a restart, and the remaining-seats
// view agrees with the aggregate. Real LMDB and scheduler, a virtual saga clock; every
// wait is a bounded wait for an answer.

#include <boost/test/unit_test.hpp>

#include "conference_node.hpp"
#include "print.hpp"

using namespace conference;
using namespace std::chrono_literals;
using evident::saga_status;

BOOST_FIXTURE_TEST_SUITE(conference_on_a_runtime, test::conference_node)

BOOST_AUTO_TEST_CASE(an_unpaid_reservation_expires_by_its_deadline_and_its_seats_return) {
  BOOST_REQUIRE(ask("c1", create{"c1", 10}).ok());
  BOOST_REQUIRE_EQUAL(ask("c1", reserve{"r1", 6}).remaining, 4);
  BOOST_TEST(ask("c1", reserve{"r2", 6}).refused == refusal::not_enough_seats);
  armed("c1", "r1");
  tick();
  BOOST_TEST(deadlines_fired() == 0u); // not due yet (asked after the tick: it ran first)
  clock->advance(payment_window + 1s);
  tick();
  BOOST_TEST(wait("c1", "r1").status == saga_status::compensated);
  BOOST_TEST(deadlines_fired() == 1u);
  auto s = state("c1");
  BOOST_TEST(s.held == 0);
  BOOST_TEST((s.reservations.at("r1").status == reservation_status::cancelled));
  BOOST_TEST(ask("c1", reserve{"r2", 6}).ok());
  BOOST_TEST(view("c1") == (seat_counts{1, 10, 6, 0}));
}

BOOST_AUTO_TEST_CASE(a_paid_reservation_does_not_expire) {
  BOOST_REQUIRE(ask("c1", create{"c1", 10}).ok());
  BOOST_REQUIRE(ask("c1", reserve{"r1", 4}).ok());
  BOOST_REQUIRE(ask("c1", confirm{"r1"}).ok());
  BOOST_TEST(wait("c1", "r1").status == saga_status::completed);
  clock->advance(payment_window * 2);
  tick();
  BOOST_TEST(deadlines_fired() == 0u); // asked after the tick: the tick ran first
  BOOST_TEST(state("c1").held == 4);
  BOOST_TEST(view("c1") == (seat_counts{1, 10, 0, 4}));
}

BOOST_AUTO_TEST_CASE(a_deadline_that_fell_due_while_stopped_fires_after_restart) {
  BOOST_REQUIRE(ask("c1", create{"c1", 10}).ok());
  BOOST_REQUIRE(ask("c2", create{"c2", 5}).ok());
  BOOST_REQUIRE(ask("c1", reserve{"unpaid", 3}).ok());
  BOOST_REQUIRE(ask("c1", reserve{"paid", 2}).ok());
  BOOST_REQUIRE(ask("c1", confirm{"paid"}).ok());
  BOOST_REQUIRE(ask("c2", reserve{"later", 5}).ok());
  BOOST_TEST(view() == (seat_counts{2, 15, 8, 2}));
  armed("c1", "unpaid");
  armed("c2", "later");
  stop();
  clock->advance(payment_window + 1min);
  start(); // recovery re-arms the deadlines; the first tick runs right after it
  BOOST_TEST(wait("c1", "unpaid").status == saga_status::compensated);
  BOOST_TEST(wait("c2", "later").status == saga_status::compensated);
  BOOST_TEST(state("c1").held == 2);
  BOOST_TEST(state("c2").held == 0);
  // The view resumed from its stored position and agrees with the aggregates.
  BOOST_TEST(view("c1") == (seat_counts{1, 10, 0, 2}));
  BOOST_TEST(view("c1").remaining() == state("c1").remaining());
  BOOST_TEST(view("c2").remaining() == state("c2").remaining());
  BOOST_TEST(view() == (seat_counts{2, 15, 0, 2}));
  // Restarting again changes nothing: no deadline is left to fire twice.
  restart();
  BOOST_TEST(deadlines_fired() == 0u);
  BOOST_TEST(view() == (seat_counts{2, 15, 0, 2}));
}

BOOST_AUTO_TEST_SUITE_END()
