// runtime::ask_async and state_of_async: the same answers as the blocking calls, through
// a callback, exactly once; timeouts, stop's drain, refusals after stop, the retry after
// a passivation bounce, and many concurrent asks. Real scheduler and real LMDB; every
// wait is bounded.

#include <boost/test/unit_test.hpp>

#include "evident/actors/atoms.hpp"
#include "evident/persistence/failing_journal.hpp"
#include "evident/runtime/detail/ask_bridge.hpp"
#include "evident/runtime/runtime.hpp"

#include "support/account_aggregate.hpp"
#include "support/checks.hpp"
#include "support/gate_hook.hpp"
#include "support/temp_dir.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace evident;
using namespace std::chrono_literals;

namespace {

constexpr auto bound = 10s; // a broken test fails within this, it does not hang

std::string code_of(const error& e) {
  return std::string{to_string(e.code)};
}

// Collects the answers of asynchronous calls; every wait is bounded.
template <class T>
class inbox {
public:
  runtime::async_callback<T> callback() {
    return [this](expected<T> x) {
      std::lock_guard guard{mtx_};
      got_.push_back(std::move(x));
      cv_.notify_all();
    };
  }

  /// Waits until `n` answers came (at most `bound`).
  bool wait_for(size_t n) {
    std::unique_lock guard{mtx_};
    return cv_.wait_for(guard, bound, [&] { return got_.size() >= n; });
  }

  size_t size() const {
    std::lock_guard guard{mtx_};
    return got_.size();
  }

  /// The i-th answer (call after wait_for).
  expected<T> at(size_t i) const {
    std::lock_guard guard{mtx_};
    BOOST_REQUIRE(i < got_.size());
    return got_[i];
  }

private:
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<expected<T>> got_;
};

using test::gate_hook;

// Counts events; waits (bounded) until there were enough.
class countdown {
public:
  void add() {
    std::lock_guard guard{mtx_};
    ++n_;
    cv_.notify_all();
  }
  bool wait_for(size_t n) {
    std::unique_lock guard{mtx_};
    return cv_.wait_for(guard, bound, [&] { return n_ >= n; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  size_t n_ = 0;
};

using test::eventually;

struct fixture {
  evident::test::temp_dir dir;
  runtime_config cfg;

  fixture() {
    cfg.storage.data_dir = dir.sub("data");
    cfg.storage.sync = durability::no_sync;
    cfg.storage.map_size = size_t{16} << 20;
    cfg.requests.ask_timeout = 5s;
    cfg.shutdown.drain_timeout = 5s;
  }
};

using account = bank::account_aggregate;
using bank::account_reply;

// A stand-in router: bounces the first `bounces` commands with request_receiver_down (as
// the router does for an aggregate that passivated after its lookup), then answers with
// the number of commands it got. Never answers when `bounces` is negative.
struct bouncer_state {
  int bounces = 0;
  int64_t commands = 0;
};

caf::behavior bouncing_router(caf::stateful_actor<bouncer_state>* self, int bounces) {
  self->state.bounces = bounces;
  return {
      [self](command_atom, const std::string&, const std::string&, const std::string&,
             const command_box&) -> caf::result<reply_box> {
        auto n = ++self->state.commands;
        if (self->state.bounces < 0) {
          self->make_response_promise<reply_box>(); // dropped: never answered
          return caf::delegated<reply_box>{};
        }
        if (n <= self->state.bounces)
          return caf::make_error(caf::sec::request_receiver_down);
        return reply_box{std::any{n}};
      },
  };
}

} // namespace

BOOST_AUTO_TEST_SUITE(ask_async_tests)

BOOST_FIXTURE_TEST_CASE(an_async_reply_equals_the_blocking_reply, fixture) {
  runtime rt{cfg};
  rt.register_aggregate<account>();
  inbox<account_reply> replies;
  rt.ask_async<account>("acc-1", bank::open{"ann"}, "", replies.callback());
  BOOST_REQUIRE(replies.wait_for(1));
  rt.ask_async<account>("acc-1", bank::deposit{7}, "cmd-1", replies.callback());
  BOOST_REQUIRE(replies.wait_for(2));
  auto opened = replies.at(0);
  BOOST_REQUIRE_MESSAGE(opened, opened.err().message);
  BOOST_TEST(opened->ok);
  auto deposited = replies.at(1);
  BOOST_REQUIRE_MESSAGE(deposited, deposited.err().message);
  BOOST_TEST(deposited->balance == 7);
  // The blocking ask sees the same aggregate; a retry of cmd-1 gets the same reply.
  auto again = rt.ask<account>("acc-1", bank::deposit{7}, "cmd-1");
  BOOST_REQUIRE_MESSAGE(again, again.err().message);
  BOOST_TEST(*again == *deposited);
  rt.ask_async<account>("acc-1", bank::deposit{7}, "cmd-1", replies.callback());
  BOOST_REQUIRE(replies.wait_for(3));
  BOOST_TEST(*replies.at(2) == *deposited);
  // state_of_async equals state_of, latest and at a version.
  // One query at a time: each runs in its own query actor, so two may answer in any
  // order.
  inbox<typed_state<account>> states;
  rt.state_of_async<account>("acc-1", {}, states.callback());
  BOOST_REQUIRE(states.wait_for(1));
  rt.state_of_async<account>("acc-1", state_query::at_version(1), states.callback());
  BOOST_REQUIRE(states.wait_for(2));
  auto latest = rt.state_of<account>("acc-1");
  BOOST_REQUIRE_MESSAGE(latest, latest.err().message);
  auto async_latest = states.at(0);
  BOOST_REQUIRE_MESSAGE(async_latest, async_latest.err().message);
  BOOST_TEST((async_latest->state == latest->state));
  BOOST_TEST(async_latest->version == 2u);
  auto at_one = states.at(1);
  BOOST_REQUIRE_MESSAGE(at_one, at_one.err().message);
  BOOST_TEST(at_one->version == 1u);
  BOOST_TEST(at_one->state.balance == 0);
  BOOST_TEST(at_one->state.owner == "ann");
  BOOST_TEST(eventually([&] { return rt.requests_in_flight() == 0u; }));
}

BOOST_FIXTURE_TEST_CASE(a_domain_refusal_arrives_as_a_value, fixture) {
  runtime rt{cfg};
  rt.register_aggregate<account>();
  inbox<account_reply> replies;
  rt.ask_async<account>("acc-1", bank::open{"ann"}, "", replies.callback());
  rt.ask_async<account>("acc-1", bank::withdraw{50}, "", replies.callback());
  BOOST_REQUIRE(replies.wait_for(2));
  auto r = replies.at(1);
  BOOST_REQUIRE_MESSAGE(r, r.err().message);
  BOOST_TEST(!r->ok);
  BOOST_TEST(r->reason == "insufficient funds");
}

BOOST_FIXTURE_TEST_CASE(bad_input_is_a_typed_error_through_the_callback, fixture) {
  runtime rt{cfg};
  rt.register_aggregate<account>();
  inbox<reply_box> boxed;
  rt.ask_async_boxed("nope", "x", box_command(bank::account_command{bank::get_balance{}}), "", 1s,
                     boxed.callback());
  rt.ask_async_boxed("account", "acc-1", box_command(42), "", 1s, boxed.callback());
  rt.ask_async_boxed("account", "", box_command(bank::account_command{bank::get_balance{}}), "", 1s,
                     boxed.callback());
  BOOST_REQUIRE(boxed.wait_for(3));
  for (size_t i = 0; i < 3; ++i) {
    auto r = boxed.at(i);
    BOOST_REQUIRE_MESSAGE(!r, "answer " << i << " is not an error");
    BOOST_TEST(code_of(r.err()) == "invalid_input", "answer " << i << ": " << r.err().message);
  }
  // Different ids, different bridges: the answers come in any order.
  bool named_the_type = false;
  for (size_t i = 0; i < 3; ++i)
    named_the_type
        = named_the_type
          || boxed.at(i).err().message.find("no aggregate type 'nope'") != std::string::npos;
  BOOST_TEST(named_the_type);
  inbox<aggregate_state> states;
  rt.state_of_async_boxed("nope", "x", {}, 1s, states.callback());
  BOOST_REQUIRE(states.wait_for(1));
  BOOST_REQUIRE(!states.at(0));
  BOOST_TEST(code_of(states.at(0).err()) == "invalid_input");
  // A timeout that is not positive is refused at once, on the calling thread.
  inbox<account_reply> replies;
  rt.ask_async<account>("acc-1", bank::get_balance{}, "", 0ms, replies.callback());
  BOOST_REQUIRE(replies.size() == 1u);
  BOOST_TEST(code_of(replies.at(0).err()) == "invalid_input");
  // An empty callback cannot be told anything: the call throws.
  BOOST_CHECK_THROW(rt.ask_async<account>("acc-1", bank::get_balance{}, "", {}),
                    std::invalid_argument);
  BOOST_CHECK_THROW(rt.state_of_async_boxed("account", "acc-1", {}, 1s, {}), std::invalid_argument);
  BOOST_TEST(eventually([&] { return rt.requests_in_flight() == 0u; }));
}

BOOST_FIXTURE_TEST_CASE(a_callback_that_throws_harms_nothing, fixture) {
  runtime rt{cfg};
  rt.register_aggregate<account>();
  std::atomic<int> calls{0};
  rt.ask_async<account>("acc-1", bank::open{"ann"}, "", [&](expected<account_reply>) {
    ++calls;
    throw std::runtime_error("a user's bug");
  });
  BOOST_REQUIRE(eventually([&] { return rt.requests_in_flight() == 0u; }));
  BOOST_TEST(calls.load() == 1);
  // The same bridge (same id) still answers.
  inbox<account_reply> replies;
  rt.ask_async<account>("acc-1", bank::deposit{1}, "", replies.callback());
  BOOST_REQUIRE(replies.wait_for(1));
  BOOST_TEST(replies.at(0)->balance == 1);
}

BOOST_FIXTURE_TEST_CASE(asks_from_one_thread_to_one_aggregate_are_decided_in_call_order, fixture) {
  runtime rt{cfg};
  rt.register_aggregate<account>();
  BOOST_REQUIRE(rt.ask<account>("acc-1", bank::open{"ann"}));
  constexpr int n = 200;
  inbox<account_reply> replies;
  for (int i = 1; i <= n; ++i)
    rt.ask_async<account>("acc-1", bank::deposit{i}, "", replies.callback());
  BOOST_REQUIRE(replies.wait_for(n));
  // Replies leave an aggregate in command order, so the k-th answer is the k-th deposit.
  for (int k = 1; k <= n; ++k) {
    auto r = replies.at(static_cast<size_t>(k - 1));
    BOOST_REQUIRE_MESSAGE(r, r.err().message);
    BOOST_TEST(r->balance == int64_t{k} * (k + 1) / 2);
  }
}

BOOST_FIXTURE_TEST_CASE(an_async_ask_past_its_timeout_says_timeout_exactly_once, fixture) {
  gate_hook gate;
  runtime rt{cfg, gate.hooks()};
  rt.register_aggregate<account>();
  inbox<account_reply> replies;
  auto t0 = std::chrono::steady_clock::now();
  rt.ask_async<account>("acc-1", bank::open{"ann"}, "cmd-1", 100ms, replies.callback());
  BOOST_REQUIRE(replies.wait_for(1));
  auto waited = std::chrono::steady_clock::now() - t0;
  BOOST_TEST((waited >= 100ms));
  BOOST_TEST((waited < 3s));
  BOOST_REQUIRE(!replies.at(0));
  BOOST_TEST(code_of(replies.at(0).err()) == "timeout");
  // The slot is left right after the callback returned.
  BOOST_TEST(eventually([&] { return rt.requests_in_flight() == 0u; }));
  // The commit goes through late; its reply finds nothing to answer.
  gate()->release();
  inbox<account_reply> later;
  rt.ask_async<account>("acc-1", bank::open{"ann"}, "cmd-1", later.callback());
  BOOST_REQUIRE(later.wait_for(1));
  // Same id, same bridge: the late reply was in its mailbox before this one's.
  auto retry = later.at(0);
  BOOST_REQUIRE_MESSAGE(retry, retry.err().message);
  BOOST_TEST(retry->ok); // the retry with the same command id learns the outcome
  BOOST_TEST(replies.size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(stop_waits_for_async_asks_in_flight_and_loses_none, fixture) {
  gate_hook gate;
  auto rt = std::make_unique<runtime>(cfg, gate.hooks());
  rt->register_aggregate<account>();
  constexpr size_t n = 8;
  std::mutex mtx;
  std::vector<int> calls(n, 0);
  std::vector<std::optional<expected<account_reply>>> answers(n);
  for (size_t i = 0; i < n; ++i)
    rt->ask_async<account>("acc-" + std::to_string(i), bank::open{"owner " + std::to_string(i)}, "",
                           [&, i](expected<account_reply> r) {
                             std::lock_guard guard{mtx};
                             ++calls[i];
                             answers[i] = std::move(r);
                           });
  BOOST_REQUIRE(gate()->wait_held(1, bound));
  BOOST_TEST(rt->requests_in_flight() == n);
  auto stopped = std::async(std::launch::async, [&] { return rt->stop(); });
  BOOST_REQUIRE(eventually([&] { return !rt->running(); }));
  // Taken before the stop: not answered yet, the stop waits for them.
  BOOST_TEST((stopped.wait_for(50ms) == std::future_status::timeout));
  {
    std::lock_guard guard{mtx};
    for (size_t i = 0; i < n; ++i)
      BOOST_TEST(calls[i] == 0);
  }
  gate()->release();
  BOOST_REQUIRE(stopped.wait_for(bound) == std::future_status::ready);
  auto err = stopped.get();
  BOOST_TEST(!err, err.message);
  // Every callback ran before stop() returned, once, with the committed reply.
  {
    std::lock_guard guard{mtx};
    for (size_t i = 0; i < n; ++i) {
      BOOST_TEST(calls[i] == 1, "ask " << i);
      BOOST_REQUIRE(answers[i].has_value());
      BOOST_REQUIRE_MESSAGE(*answers[i], "ask " << i << ": " << answers[i]->err().message);
      BOOST_TEST((*answers[i])->ok);
    }
  }
  rt.reset();
  runtime again{cfg};
  again.register_aggregate<account>();
  for (size_t i = 0; i < n; ++i) {
    auto st = again.state_of<account>("acc-" + std::to_string(i));
    BOOST_REQUIRE_MESSAGE(st, st.err().message);
    BOOST_TEST(st->state.open);
  }
}

BOOST_FIXTURE_TEST_CASE(async_asks_after_stop_get_unavailable_exactly_once, fixture) {
  runtime rt{cfg};
  rt.register_aggregate<account>();
  inbox<account_reply> warmup; // the bridges exist, then stop
  rt.ask_async<account>("acc-1", bank::open{"ann"}, "", warmup.callback());
  BOOST_REQUIRE(warmup.wait_for(1));
  BOOST_REQUIRE(!rt.stop());
  inbox<account_reply> replies;
  inbox<typed_state<account>> states;
  rt.ask_async<account>("acc-1", bank::get_balance{}, "", replies.callback());
  rt.state_of_async<account>("acc-1", {}, states.callback());
  // Refused on the calling thread: answered before the call returned.
  BOOST_REQUIRE(replies.size() == 1u);
  BOOST_REQUIRE(states.size() == 1u);
  BOOST_TEST(code_of(replies.at(0).err()) == "unavailable");
  BOOST_TEST(code_of(states.at(0).err()) == "unavailable");
  BOOST_TEST(rt.requests_in_flight() == 0u);
  BOOST_TEST(rt.metrics().refused_unavailable == 2u);
}

BOOST_AUTO_TEST_CASE(a_bounced_command_is_sent_once_more) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  auto once = sys.spawn(bouncing_router, 1);
  auto twice = sys.spawn(bouncing_router, 2);
  auto b1 = detail::spawn_ask_bridge(sys, once);
  auto b2 = detail::spawn_ask_bridge(sys, twice);
  inbox<reply_box> first;
  inbox<reply_box> second;
  auto cmd = [] { return box_command(bank::account_command{bank::get_balance{}}); };
  detail::ask_through_bridge(b1, "account", "a1", "", cmd(), 5s, first.callback());
  detail::ask_through_bridge(b2, "account", "a1", "", cmd(), 5s, second.callback());
  BOOST_REQUIRE(first.wait_for(1));
  BOOST_REQUIRE(second.wait_for(1));
  // One bounce: the second attempt is answered (the stand-in got two commands).
  auto r = first.at(0);
  BOOST_REQUIRE(r);
  BOOST_REQUIRE(unbox_reply<int64_t>(*r) != nullptr);
  BOOST_TEST(*unbox_reply<int64_t>(*r) == 2);
  // Two bounces: once more only, then the error (the target is gone: io_error).
  BOOST_REQUIRE(!second.at(0));
  BOOST_TEST(code_of(second.at(0).err()) == "io_error");
  for (auto& a : {b1, b2, once, twice})
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_bridge_that_stops_answers_what_it_holds_with_timeout) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  auto silent = sys.spawn(bouncing_router, -1);
  auto b = detail::spawn_ask_bridge(sys, silent);
  inbox<reply_box> answers;
  auto cmd = [] { return box_command(bank::account_command{bank::get_balance{}}); };
  detail::ask_through_bridge(b, "account", "a1", "", cmd(), 50ms, answers.callback());
  detail::ask_through_bridge(b, "account", "a2", "", cmd(), 60s, answers.callback());
  // The first times out by the bridge's timer; the second is still pending when the
  // bridge stops, and is answered then.
  BOOST_REQUIRE(answers.wait_for(1));
  BOOST_TEST(code_of(answers.at(0).err()) == "timeout");
  BOOST_TEST(answers.size() == 1u);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  BOOST_REQUIRE(answers.wait_for(2));
  BOOST_TEST(code_of(answers.at(1).err()) == "timeout");
  caf::anon_send_exit(silent, caf::exit_reason::user_shutdown);
}

BOOST_FIXTURE_TEST_CASE(passivating_aggregates_under_async_load_lose_no_command, fixture) {
  // One live aggregate at most: every activation evicts the previous one, so commands
  // keep meeting aggregates that just passivated (the bounce the bridge retries).
  cfg.aggregates.max_active = 1;
  runtime rt{cfg};
  rt.register_aggregate<account>();
  constexpr int ids = 4;
  constexpr int per_id = 250;
  for (int a = 0; a < ids; ++a)
    BOOST_REQUIRE(rt.ask<account>("p-" + std::to_string(a), bank::open{"o"}));
  inbox<account_reply> replies;
  for (int i = 0; i < per_id; ++i)
    for (int a = 0; a < ids; ++a)
      rt.ask_async<account>("p-" + std::to_string(a), bank::deposit{1}, "", replies.callback());
  BOOST_REQUIRE(replies.wait_for(ids * per_id));
  size_t failed = 0;
  for (size_t i = 0; i < ids * per_id; ++i)
    if (!replies.at(i))
      ++failed;
  BOOST_TEST(failed == 0u);
  for (int a = 0; a < ids; ++a) {
    auto st = rt.state_of<account>("p-" + std::to_string(a));
    BOOST_REQUIRE_MESSAGE(st, st.err().message);
    BOOST_TEST(st->state.balance == per_id);
  }
  BOOST_TEST(rt.metrics().aggregates.passivations > 0u);
}

BOOST_FIXTURE_TEST_CASE(ten_thousand_concurrent_async_asks_are_each_answered_once, fixture) {
  runtime rt{cfg};
  rt.register_aggregate<account>();
  constexpr size_t accounts = 100;
  constexpr size_t n = 10'000;
  for (size_t a = 0; a < accounts; ++a)
    BOOST_REQUIRE(rt.ask<account>("c-" + std::to_string(a), bank::open{"o"}));
  std::vector<std::atomic<int>> calls(n);
  countdown answered;
  std::atomic<size_t> ok{0};
  // From two threads at once, as an HTTP server's I/O threads would.
  auto load = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i)
      rt.ask_async<account>("c-" + std::to_string(i % accounts), bank::deposit{1}, "",
                            [&, i](expected<account_reply> r) {
                              calls[i].fetch_add(1);
                              if (r && r->ok)
                                ok.fetch_add(1);
                              answered.add();
                            });
  };
  std::thread t1{load, 0, n / 2};
  std::thread t2{load, n / 2, n};
  t1.join();
  t2.join();
  BOOST_REQUIRE(answered.wait_for(n));
  BOOST_TEST(ok.load() == n);
  size_t not_once = 0;
  for (auto& c : calls)
    if (c.load() != 1)
      ++not_once;
  BOOST_TEST(not_once == 0u);
  BOOST_REQUIRE(eventually([&] { return rt.requests_in_flight() == 0u; }));
  int64_t total = 0;
  for (size_t a = 0; a < accounts; ++a) {
    auto st = rt.state_of<account>("c-" + std::to_string(a));
    BOOST_REQUIRE_MESSAGE(st, st.err().message);
    total += st->state.balance;
  }
  BOOST_TEST(total == static_cast<int64_t>(n));
}

BOOST_AUTO_TEST_SUITE_END()
