// SeatAvailability: the decide/apply rules with the aggregate test kit, and the
// no-overbooking rule under concurrent reservations on a runtime.

#include <boost/test/unit_test.hpp>

#include "conference_node.hpp"
#include "print.hpp"

#include "conference/seat_availability.hpp"

#include "evident/actors/test_kit.hpp"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace conference;

namespace {

using kit_t = evident::test_kit<seat_availability_aggregate>;

/// A kit whose conference "c1" has `seats` seats.
kit_t created(int32_t seats) {
  kit_t kit{"c1"};
  kit.given(conference_created{"c1", seats});
  return kit;
}

} // namespace

BOOST_AUTO_TEST_SUITE(conference_seat_availability)

BOOST_AUTO_TEST_CASE(a_reservation_that_fits_holds_its_seats) {
  auto kit = created(10);
  auto r = kit.when(reserve{"r1", 4});
  BOOST_REQUIRE_MESSAGE(r.ok(), to_string(r.error()));
  BOOST_TEST(r.events_are(seats_reserved{"c1", "r1", 4}));
  BOOST_TEST(r.reply() == (seats_reply{refusal::none, 10, 6}));
  BOOST_TEST(r.state().held == 4);
}

BOOST_AUTO_TEST_CASE(a_reservation_larger_than_what_is_left_is_refused_with_the_remaining_count) {
  auto kit = created(10);
  kit.given(seats_reserved{"c1", "r1", 7});
  auto r = kit.when(reserve{"r2", 4});
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(r.events().empty());
  BOOST_TEST(r.reply() == (seats_reply{refusal::not_enough_seats, 10, 3}));
  // Exactly what is left still fits.
  BOOST_TEST(kit.when(reserve{"r2", 3}).reply() == (seats_reply{refusal::none, 10, 0}));
}

BOOST_AUTO_TEST_CASE(cancelling_gives_the_seats_back_and_the_id_is_not_reused) {
  auto kit = created(10);
  kit.given(seats_reserved{"c1", "r1", 6});
  auto r = kit.when(cancel{"r1", false});
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(r.events_are(reservation_cancelled{"c1", "r1", 6, false, false}));
  BOOST_TEST(r.reply().remaining == 10);
  BOOST_TEST(kit.when(cancel{"r1", false}).reply().refused == refusal::no_reservation);
  BOOST_TEST(kit.when(reserve{"r1", 1}).reply().refused == refusal::reservation_exists);
}

BOOST_AUTO_TEST_CASE(expiry_cannot_cancel_a_paid_reservation_but_the_attendee_can) {
  auto kit = created(10);
  kit.given(seats_reserved{"c1", "r1", 2});
  auto paid = kit.when(confirm{"r1"});
  BOOST_TEST(paid.events_are(reservation_confirmed{"c1", "r1", 2}));
  auto expired = kit.when(cancel{"r1", true});
  BOOST_TEST(expired.events().empty());
  BOOST_TEST(expired.reply() == (seats_reply{refusal::already_confirmed, 10, 8}));
  auto cancelled = kit.when(cancel{"r1", false});
  BOOST_TEST(cancelled.events_are(reservation_cancelled{"c1", "r1", 2, true, false}));
  BOOST_TEST(cancelled.reply().remaining == 10);
}

BOOST_AUTO_TEST_CASE(paying_twice_persists_once_and_paying_an_expired_reservation_is_refused) {
  auto kit = created(10);
  kit.given(seats_reserved{"c1", "r1", 2}, seats_reserved{"c1", "r2", 3});
  BOOST_TEST(kit.when(confirm{"r1"}).events().size() == 1u);
  auto again = kit.when(confirm{"r1"});
  BOOST_TEST(again.events().empty());
  BOOST_TEST(again.reply().ok());
  BOOST_TEST(
      kit.when(cancel{"r2", true}).events_are(reservation_cancelled{"c1", "r2", 3, false, true}));
  BOOST_TEST(kit.when(confirm{"r2"}).reply().refused == refusal::no_reservation);
}

BOOST_AUTO_TEST_CASE(bad_requests_and_commands_before_create_persist_nothing) {
  kit_t fresh{"c1"};
  BOOST_TEST(fresh.when(reserve{"r1", 1}).reply().refused == refusal::no_conference);
  BOOST_TEST(fresh.when(confirm{"r1"}).reply().refused == refusal::no_conference);
  BOOST_TEST(fresh.when(create{"c1", 0}).reply().refused == refusal::invalid_request);
  BOOST_TEST(fresh.when(create{"c1", max_seats + 1}).reply().refused == refusal::invalid_request);
  BOOST_TEST(fresh.when(create{"", 5}).reply().refused == refusal::invalid_request);
  BOOST_TEST(fresh.state().id.empty());
  auto kit = created(10);
  BOOST_TEST(kit.when(create{"c1", 5}).reply().refused == refusal::conference_exists);
  BOOST_TEST(kit.when(reserve{"r1", 0}).reply().refused == refusal::invalid_request);
  BOOST_TEST(kit.when(reserve{"r1", -3}).reply().refused == refusal::invalid_request);
  BOOST_TEST(kit.when(reserve{"", 1}).reply().refused == refusal::invalid_request);
  BOOST_TEST(kit.state().reservations.empty());
  BOOST_TEST(kit.state().held == 0);
}

// Many threads reserve on one conference at once; the aggregate decides one command at
// a time, so the seats granted never exceed the capacity, and each refusal tells the
// truth about what was left then.
BOOST_FIXTURE_TEST_CASE(concurrent_reservations_never_overbook, test::conference_node) {
  constexpr int32_t capacity = 40;
  constexpr int threads = 8;
  constexpr int per_thread = 12; // up to 2 seats each: 192 asked for 40
  BOOST_REQUIRE(ask("c1", create{"c1", capacity}).ok());
  std::atomic<int32_t> granted = 0;
  std::atomic<int> refused = 0;
  std::atomic<int> wrong = 0; // ask errors, lying refusals
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        int32_t seats = 1 + (t + i) % 2;
        auto id = "r" + std::to_string(t) + "-" + std::to_string(i);
        auto r = rt->ask<seat_availability_aggregate>("c1", reserve{id, seats});
        if (!r)
          ++wrong;
        else if (r->ok())
          granted += seats;
        else if (r->refused == refusal::not_enough_seats && r->remaining >= 0
                 && r->remaining < seats)
          ++refused;
        else
          ++wrong;
      }
    });
  for (auto& th : pool)
    th.join();
  BOOST_TEST(wrong.load() == 0);
  BOOST_TEST(refused.load() > 0);
  BOOST_TEST(granted.load() <= capacity);
  // Refused only when what was left did not fit: at most one seat stays free.
  BOOST_TEST(granted.load() >= capacity - 1);
  auto s = state("c1");
  BOOST_TEST(s.held == granted.load());
  BOOST_TEST(view("c1").pending == granted.load());
  BOOST_TEST(view("c1").remaining() == capacity - granted.load());
}

BOOST_AUTO_TEST_SUITE_END()
