#include "evident/actors/event_bus.hpp"

#include "bus_fixture.hpp"

#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>

#include <memory>
#include <mutex>
#include <vector>

using namespace evident;
using namespace evident::test;

namespace {

// What a raw bus subscriber saw: positions, and the address of each batch's event
// storage (equal addresses across subscribers = one shared payload, nothing copied).
struct raw_log {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<uint64_t> positions;
  std::vector<const void*> storage;
  uint64_t last = 0;
  bool wait_last(uint64_t pos) {
    std::unique_lock guard{mtx};
    return cv.wait_for(guard, wait_bound, [&] { return last >= pos; });
  }
};

caf::behavior raw_subscriber(caf::event_based_actor*, std::shared_ptr<raw_log> log) {
  return {
      [=](const committed_batch& cb) {
        std::lock_guard guard{log->mtx};
        for (const auto& e : cb.events)
          log->positions.push_back(e.position);
        log->storage.push_back(cb.events.data());
        log->last = cb.last_position();
        log->cv.notify_all();
      },
  };
}

uint64_t subscribe(bus_fixture& f, const caf::actor& sub) {
  caf::scoped_actor self{*f.sys};
  uint64_t head = 0;
  self->request(f.bus, wait_bound, subscribe_atom::value, sub)
      .receive([&](uint64_t h) { head = h; },
               [&](caf::error& err) { BOOST_FAIL(to_string(from_caf_error(err))); });
  return head;
}

} // namespace

BOOST_AUTO_TEST_SUITE(event_bus)

BOOST_FIXTURE_TEST_CASE(every_subscriber_gets_every_batch_in_order_sharing_one_payload,
                        bus_fixture) {
  auto a_log = std::make_shared<raw_log>();
  auto b_log = std::make_shared<raw_log>();
  auto a = track(sys->spawn(raw_subscriber, a_log));
  auto b = track(sys->spawn(raw_subscriber, b_log));
  BOOST_TEST(subscribe(*this, a) == 0u);
  BOOST_TEST(subscribe(*this, b) == 0u);
  uint64_t last = 0;
  for (int i = 0; i < 20; ++i)
    last = append("account-" + std::to_string(i % 3),
                  {bank_event(bank::deposited{i}), bank_event(bank::deposited{i + 1})})
               .last_position;
  BOOST_REQUIRE(a_log->wait_last(last));
  BOOST_REQUIRE(b_log->wait_last(last));
  std::lock_guard ga{a_log->mtx};
  std::lock_guard gb{b_log->mtx};
  BOOST_TEST(is_gap_free(a_log->positions, 1, last));
  BOOST_TEST(a_log->positions == b_log->positions);
  // The same vector object reached both: the bus forwarded one message, no copy.
  BOOST_TEST(a_log->storage == b_log->storage);
}

BOOST_FIXTURE_TEST_CASE(subscribe_answers_the_last_published_position, bus_fixture) {
  auto log = std::make_shared<raw_log>();
  auto a = track(sys->spawn(raw_subscriber, log));
  auto last = deposits("account-1", 5);
  // The writer told the bus before it answered the appends, so the bus has seen them.
  BOOST_TEST(subscribe(*this, a) == last);
  auto next = deposits("account-1", 1);
  BOOST_REQUIRE(log->wait_last(next));
  std::lock_guard guard{log->mtx};
  BOOST_TEST(log->positions == std::vector<uint64_t>{next});
}

BOOST_FIXTURE_TEST_CASE(terminated_and_unsubscribed_actors_get_nothing_more, bus_fixture) {
  auto log = std::make_shared<raw_log>();
  auto gone = sys->spawn(raw_subscriber, std::make_shared<raw_log>());
  auto left = track(sys->spawn(raw_subscriber, log));
  auto stays = track(sys->spawn(raw_subscriber, std::make_shared<raw_log>()));
  subscribe(*this, gone);
  subscribe(*this, left);
  subscribe(*this, stays);
  BOOST_TEST(ask_metrics<event_bus_metrics>(bus).subscribers == 3u);
  stop(gone);
  BOOST_REQUIRE(eventually([&] { return ask_metrics<event_bus_metrics>(bus).subscribers == 2; }));
  BOOST_TEST(ask_metrics<event_bus_metrics>(bus).dropped == 1u);
  caf::anon_send(bus, unsubscribe_atom::value, left);
  BOOST_REQUIRE(eventually([&] { return ask_metrics<event_bus_metrics>(bus).subscribers == 1; }));
  auto last = deposits("account-1", 3);
  auto m = ask_metrics<event_bus_metrics>(bus);
  BOOST_TEST(m.head == last);
  BOOST_TEST(m.events == 3u);
  BOOST_TEST(m.deliveries == 3u); // only `stays`
  std::lock_guard guard{log->mtx};
  BOOST_TEST(log->positions.empty());
}

BOOST_AUTO_TEST_SUITE_END()
