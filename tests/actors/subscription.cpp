#include "evident/actors/subscription.hpp"

#include "bus_fixture.hpp"

#include "evident/persistence/checkpoint_store.hpp"

#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>

#include <atomic>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

using namespace evident;
using namespace evident::test;

namespace {

struct sub_fixture : bus_fixture {
  std::shared_ptr<checkpoint_store> checkpoints = std::make_shared<checkpoint_store>(jnl->env());

  /// A recording subscriber and its subscription.
  std::pair<caf::actor, caf::actor> subscribe(std::shared_ptr<collector> col,
                                              subscription_options opts) {
    auto subscriber = track(sys->spawn(recording_subscriber, col));
    subscription_env env;
    env.bus = bus;
    env.jnl = jnl;
    env.checkpoints = checkpoints;
    auto sub = track(spawn_subscription(*sys, env, subscriber, std::move(opts)));
    return {subscriber, sub};
  }

  std::optional<uint64_t> stored(const std::string& name) {
    auto cp = checkpoints->load(name);
    BOOST_REQUIRE_MESSAGE(cp, why(cp));
    return *cp;
  }
};

subscription_options named(std::string name) {
  subscription_options o;
  o.name = std::move(name);
  return o;
}

} // namespace

BOOST_AUTO_TEST_SUITE(subscription)

BOOST_AUTO_TEST_CASE(category_is_the_stream_id_before_the_first_dash) {
  BOOST_TEST(category_of("account-17") == "account");
  BOOST_TEST(category_of("order-a-b") == "order");
  BOOST_TEST(category_of("plain") == "plain");
  BOOST_TEST(category_of("-x") == "");
}

BOOST_AUTO_TEST_CASE(bad_options_are_refused_with_invalid_input) {
  subscription_options o;
  BOOST_TEST(validate(o).code == errc::invalid_input); // no name
  o.name = "x";
  BOOST_TEST(!validate(o));
  o.read_batch = 0;
  BOOST_TEST(validate(o).code == errc::invalid_input);
  o.read_batch = 100;
  o.max_buffer_events = 10;
  BOOST_TEST(validate(o).code == errc::invalid_input);
}

BOOST_FIXTURE_TEST_CASE(catch_up_to_live_switch_has_no_gap_and_no_duplicate_under_appends,
                        sub_fixture) {
  // 3,000 events before the subscription starts, 3,000 while it catches up.
  for (int i = 0; i < 30; ++i) {
    std::vector<event_data> evs;
    for (int j = 0; j < 100; ++j)
      evs.push_back(bank_event(bank::deposited{j}));
    append("account-" + std::to_string(i % 7), std::move(evs));
  }
  std::atomic<uint64_t> last{0};
  std::thread appender{[&] {
    for (int i = 0; i < 300; ++i)
      last = append("account-" + std::to_string(i % 5),
                    {bank_event(bank::deposited{i}), bank_event(bank::withdrawn{1}),
                     bank_event(bank::deposited{2}), bank_event(bank::noted{"x"}),
                     bank_event(bank::deposited{3}), bank_event(bank::deposited{4}),
                     bank_event(bank::deposited{5}), bank_event(bank::deposited{6}),
                     bank_event(bank::deposited{7}), bank_event(bank::deposited{8})})
                 .last_position;
  }};
  auto col = std::make_shared<collector>();
  auto o = named("seam");
  o.read_batch = 64; // many small catch-up steps, so the seam moves while appends run
  o.max_buffer_events = 1'024;
  auto [subscriber, sub] = subscribe(col, o);
  appender.join();
  BOOST_TEST(last.load() == 6'000u);
  BOOST_REQUIRE(col->wait_through(6'000));
  BOOST_TEST(is_gap_free(col->positions(), 1, 6'000));
  // Both paths were used: the test covers the seam, not just one side of it.
  BOOST_TEST(col->live_batches > 0u);
  BOOST_TEST(col->live_batches < col->batches.size());
  // Whatever the order of arrival, the contents are what the journal holds.
  auto all = jnl->read_all();
  BOOST_REQUIRE(all);
  std::lock_guard guard{col->mtx};
  for (size_t i = 0; i < all->size(); ++i) {
    BOOST_TEST(col->events[i].stream == (*all)[i].stream);
    BOOST_TEST(col->events[i].payload == (*all)[i].payload);
    BOOST_TEST((col->events[i].event_id == (*all)[i].event_id));
  }
}

BOOST_FIXTURE_TEST_CASE(filters_deliver_only_matches_and_checkpoint_moves_past_skipped_events,
                        sub_fixture) {
  append("account-1", {bank_event(bank::opened{"ann"}), bank_event(bank::deposited{5})});
  append("order-1", {bank_event(bank::deposited{7})});
  append("account-2", {bank_event(bank::deposited{9}), bank_event(bank::noted{"n"})});
  auto col = std::make_shared<collector>();
  auto o = named("deposits-of-accounts");
  o.filter.categories = {"account"};
  o.filter.event_types = {"bank.deposited"};
  o.filter.predicate = [](const recorded_event& e) { return e.stream != "account-9"; };
  o.checkpoint_every = 1;
  subscribe(col, o);
  BOOST_REQUIRE(col->wait_through(5));
  // Live now: everything of these appends is skipped; the position still moves.
  auto last = append("order-2", {bank_event(bank::deposited{1})}).last_position;
  append("account-9", {bank_event(bank::deposited{1})});
  last = append("account-3", {bank_event(bank::noted{"skip"})}).last_position;
  BOOST_REQUIRE(col->wait_through(last));
  BOOST_TEST(col->positions() == (std::vector<uint64_t>{2, 4}));
  BOOST_REQUIRE(eventually([&] { return stored("deposits-of-accounts") == last; }));
}

BOOST_FIXTURE_TEST_CASE(restart_resumes_after_the_managed_checkpoint_with_nothing_lost,
                        sub_fixture) {
  deposits("account-1", 50);
  auto col = std::make_shared<collector>();
  auto o = named("resume");
  o.read_batch = 16;
  o.checkpoint_every = 1'000'000; // only the stop saves
  auto [subscriber, sub] = subscribe(col, o);
  BOOST_REQUIRE(col->wait_through(50));
  // The subscriber recorded the batch; wait until its answer reached the subscription.
  BOOST_REQUIRE(eventually([&] { return ask_metrics<subscription_metrics>(sub).position == 50; }));
  stop(sub);
  BOOST_TEST(stored("resume").value_or(0) == 50u);
  deposits("account-2", 30);
  auto col2 = std::make_shared<collector>();
  subscribe(col2, o);
  BOOST_REQUIRE(col2->wait_through(80));
  BOOST_TEST(is_gap_free(col2->positions(), 51, 80));
  // An explicit start position wins over the stored checkpoint.
  auto col3 = std::make_shared<collector>();
  o.start_after = 70;
  subscribe(col3, o);
  BOOST_REQUIRE(col3->wait_through(80));
  BOOST_TEST(is_gap_free(col3->positions(), 71, 80));
}

BOOST_FIXTURE_TEST_CASE(a_stuck_subscriber_does_not_slow_the_others_and_recovers_via_journal,
                        sub_fixture) {
  auto slow = std::make_shared<collector>();
  slow->held = true;
  auto fast = std::make_shared<collector>();
  auto o = named("slow");
  o.read_batch = 8;
  o.max_buffer_events = 32;
  auto [slow_subscriber, slow_sub] = subscribe(slow, o);
  auto [fast_subscriber, fast_sub] = subscribe(fast, named("fast"));
  BOOST_REQUIRE(slow->wait_batches(0)); // nothing committed yet
  uint64_t last = 0;
  for (int i = 0; i < 100; ++i)
    last = append("account-" + std::to_string(i % 4),
                  {bank_event(bank::deposited{i}), bank_event(bank::deposited{i})})
               .last_position;
  // The writer answered every append and the fast subscriber got everything while the
  // slow one still sits on its first batch.
  BOOST_REQUIRE(fast->wait_through(last));
  BOOST_TEST(is_gap_free(fast->positions(), 1, last));
  BOOST_REQUIRE(slow->wait_batches(1));
  BOOST_TEST(slow->batches.size() == 1u);
  auto m = ask_metrics<subscription_metrics>(slow_sub);
  BOOST_TEST(m.overflows > 0u);
  BOOST_TEST(m.buffered <= 32u);
  caf::anon_send(slow_subscriber, release_atom::value);
  BOOST_REQUIRE(slow->wait_through(last));
  BOOST_TEST(is_gap_free(slow->positions(), 1, last));
}

BOOST_FIXTURE_TEST_CASE(a_subscriber_error_stops_the_subscription, sub_fixture) {
  deposits("account-1", 3);
  auto failing = track(sys->spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](deliver_atom, const event_batch&) -> caf::result<uint64_t> {
      return to_caf_error(error{errc::invalid_input, "no thanks"});
    }};
  }));
  subscription_env env;
  env.bus = bus;
  env.jnl = jnl;
  env.checkpoints = checkpoints;
  auto sub = spawn_subscription(*sys, env, failing, named("refused"));
  caf::scoped_actor self{*sys};
  self->monitor(sub);
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(wait_bound) >> [] { BOOST_FAIL("the subscription did not stop"); });
  BOOST_TEST(from_caf_error(reason).code == errc::invalid_input);
}

BOOST_FIXTURE_TEST_CASE(a_batch_unanswered_within_deliver_timeout_stops_the_subscription,
                        sub_fixture) {
  deposits("account-1", 3);
  auto col = std::make_shared<collector>();
  col->held = true; // never released: the subscriber sits on its first batch
  auto o = named("silent");
  o.deliver_timeout = 150ms;
  auto [subscriber, sub] = subscribe(col, o);
  caf::scoped_actor self{*sys};
  self->monitor(sub);
  auto t0 = std::chrono::steady_clock::now();
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(wait_bound) >> [] { BOOST_FAIL("the subscription did not stop"); });
  auto waited = std::chrono::steady_clock::now() - t0;
  BOOST_TEST(from_caf_error(reason).code == errc::timeout);
  BOOST_TEST((waited >= 150ms));
  BOOST_TEST(col->batches.size() == 1u);
}

// Each answer takes a third of deliver_timeout; together they take several times it.
// The bound is per batch, from when that batch was sent.
BOOST_FIXTURE_TEST_CASE(deliver_timeout_bounds_each_batch_not_their_sum, sub_fixture) {
  using answer_atom = caf::atom_constant<caf::atom("t_answer")>;
  struct slow_state {
    std::deque<std::pair<caf::typed_response_promise<uint64_t>, uint64_t>> waiting;
  };
  auto col = std::make_shared<collector>();
  auto slow = track(sys->spawn([col](caf::stateful_actor<slow_state>* self) -> caf::behavior {
    return {
        [=](deliver_atom, const event_batch& b) -> caf::result<uint64_t> {
          col->add(b);
          auto rp = self->make_response_promise<uint64_t>();
          self->state.waiting.emplace_back(rp, b.through);
          self->delayed_send(self, 50ms, answer_atom::value);
          return rp;
        },
        [=](answer_atom) {
          auto [rp, through] = self->state.waiting.front();
          self->state.waiting.pop_front();
          rp.deliver(through);
        },
    };
  }));
  auto o = named("slow-but-steady");
  o.deliver_timeout = 150ms;
  o.read_batch = 1;
  o.max_buffer_events = 1;
  subscription_env env;
  env.bus = bus;
  env.jnl = jnl;
  env.checkpoints = checkpoints;
  auto sub = track(spawn_subscription(*sys, env, slow, o));
  auto t0 = std::chrono::steady_clock::now();
  uint64_t last = 0;
  for (int i = 0; i < 12; ++i)
    last = append("account-" + std::to_string(i % 3), {bank_event(bank::deposited{i + 1})})
               .last_position;
  BOOST_REQUIRE(col->wait_through(last));
  // At least 4 batches of 50 ms: longer than deliver_timeout, and the subscription lives.
  BOOST_TEST(col->batches.size() >= 4u);
  BOOST_TEST((std::chrono::steady_clock::now() - t0 >= 200ms));
  BOOST_TEST(is_gap_free(col->positions(), 1, last));
  BOOST_TEST(ask_metrics<subscription_metrics>(sub).batches == col->batches.size());
}

BOOST_AUTO_TEST_SUITE_END()
