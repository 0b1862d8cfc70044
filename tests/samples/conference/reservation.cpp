// The reservation saga with the saga test kit (virtual clock, no actors): the payment
// deadline, and every way a reservation ends.

#include <boost/test/unit_test.hpp>

#include "print.hpp"

#include "conference/reservation.hpp"

#include "evident/sagas/test_kit.hpp"

#include <chrono>

using namespace conference;
using namespace std::chrono_literals;

namespace {

using kit_t = evident::saga_test_kit<reservation_saga>;

const seats_reply accepted{refusal::none, 10, 10};

} // namespace

BOOST_AUTO_TEST_SUITE(conference_reservation)

BOOST_AUTO_TEST_CASE(a_reservation_waits_for_its_payment_under_a_deadline) {
  kit_t kit;
  auto r = kit.when(seats_reserved{"c1", "r1", 3});
  BOOST_TEST(r.key() == "c1/r1");
  BOOST_TEST(r.status() == evident::saga_status::waiting);
  BOOST_TEST(r.has_deadline("payment"));
  BOOST_TEST(r.sent_count() == 0u);
  BOOST_TEST(r.state().seats == 3);
  // Not due a moment before the window closes.
  BOOST_TEST(kit.when_elapsed(payment_window - 1s).skipped() == "no deadline due");
}

BOOST_AUTO_TEST_CASE(payment_completes_the_saga_and_the_deadline_never_fires) {
  kit_t kit;
  kit.given(seats_reserved{"c1", "r1", 3});
  auto paid = kit.when(reservation_confirmed{"c1", "r1", 3});
  BOOST_TEST(paid.status() == evident::saga_status::completed);
  BOOST_TEST(paid.state().outcome == "paid");
  BOOST_TEST(paid.deadlines().empty());
  BOOST_TEST(kit.when_elapsed(payment_window + 1min).skipped() == "no deadline due");
}

BOOST_AUTO_TEST_CASE(an_unpaid_reservation_is_cancelled_as_expired_when_the_deadline_fires) {
  kit_t kit;
  kit.given(seats_reserved{"c1", "r1", 3});
  auto fired = kit.when_elapsed(payment_window);
  BOOST_REQUIRE_EQUAL(fired.sent_count(), 1u);
  BOOST_TEST(fired.sent(0).tag == "expire");
  BOOST_TEST(fired.sent(0).target_type == "conference");
  BOOST_TEST(fired.sent(0).target_id == "c1");
  BOOST_TEST(fired.sent(0).command.reservation == "r1");
  auto done = kit.when_reply("expire", accepted);
  BOOST_TEST(done.status() == evident::saga_status::compensated);
  BOOST_TEST(done.state().outcome == "expired");
}

BOOST_AUTO_TEST_CASE(the_expiry_event_may_end_the_saga_before_the_commands_reply) {
  kit_t kit;
  kit.given(seats_reserved{"c1", "r1", 3});
  kit.when_elapsed(payment_window);
  auto r = kit.when(reservation_cancelled{"c1", "r1", 3, false, true});
  BOOST_TEST(r.end() == evident::saga_end::compensated);
  BOOST_TEST(r.state().outcome == "expired");
  // Ended, but its command is still out: the status follows once the reply is in.
  BOOST_TEST(r.status() == evident::saga_status::running);
  BOOST_TEST(kit.when_reply("expire", accepted).status() == evident::saga_status::compensated);
}

BOOST_AUTO_TEST_CASE(an_expiry_that_loses_the_race_to_payment_completes_the_saga) {
  kit_t kit;
  kit.given(seats_reserved{"c1", "r1", 3});
  kit.when_elapsed(payment_window + 1s);
  auto r = kit.when_reply("expire", seats_reply{refusal::already_confirmed, 10, 7});
  BOOST_TEST(r.status() == evident::saga_status::completed);
  BOOST_TEST(r.state().outcome == "paid");
}

BOOST_AUTO_TEST_CASE(an_attendee_cancel_ends_the_saga_compensated) {
  kit_t kit;
  kit.given(seats_reserved{"c1", "r1", 3});
  auto r = kit.when(reservation_cancelled{"c1", "r1", 3, false, false});
  BOOST_TEST(r.status() == evident::saga_status::compensated);
  BOOST_TEST(r.state().outcome == "cancelled");
  BOOST_TEST(kit.when_elapsed(payment_window + 1min).skipped() == "no deadline due");
}

BOOST_AUTO_TEST_CASE(a_failed_expiry_command_fails_the_saga) {
  kit_t kit;
  kit.given(seats_reserved{"c1", "r1", 3});
  kit.when_elapsed(payment_window);
  auto r = kit.when_failure("expire", evident::error{evident::errc::stream_deleted, "gone"});
  BOOST_TEST(r.status() == evident::saga_status::failed);
}

BOOST_AUTO_TEST_CASE(reservations_of_different_conferences_are_different_sagas) {
  kit_t kit;
  auto a = kit.when(seats_reserved{"c1", "r1", 1});
  auto b = kit.when(seats_reserved{"c2", "r1", 1});
  BOOST_TEST(a.key() != b.key());
  BOOST_TEST(b.status() == evident::saga_status::waiting);
  BOOST_TEST(kit.when(conference_created{"c3", 5}).skipped() == "not routed");
}

BOOST_AUTO_TEST_SUITE_END()
