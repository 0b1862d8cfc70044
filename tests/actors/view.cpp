#include "evident/actors/view.hpp"

#include "bus_fixture.hpp"

#include "evident/persistence/checkpoint_store.hpp"

#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <variant>

using namespace evident;
using namespace evident::test;

namespace {

// -- a balances view over the bank events -------------------------------------------

struct balance_row {
  int64_t balance = 0;
  uint64_t applied = 0; // events folded in: a double application shows here
  MSGPACK_DEFINE(balance, applied)
  friend bool operator==(const balance_row&, const balance_row&) = default;
};

using row_table = std::map<std::string, balance_row>;

struct balances_query {
  std::string prefix; // rows whose stream starts with this ("" = all)
};

struct balances_result {
  row_table rows;
};

// The fold both the view and the test's reference use.
void fold(balance_row& row, const bank::account_event& e, bool throw_on_curse) {
  if (auto* d = std::get_if<bank::deposited>(&e))
    row.balance += d->amount;
  else if (auto* w = std::get_if<bank::withdrawn>(&e))
    row.balance -= w->amount;
  else if (std::holds_alternative<bank::cursed>(e) && throw_on_curse)
    throw std::runtime_error("cursed event");
  ++row.applied;
}

template <bool Durable, bool ThrowOnCurse = false>
struct balances_spec {
  using event = bank::account_event;
  using query = balances_query;
  using result = balances_result;
  static constexpr std::string_view name
      = Durable ? "balances" : (ThrowOnCurse ? "fragile" : "balances_mem");
  static constexpr bool durable = Durable;

  static void register_events(type_registry<event>& r) {
    bank::account_aggregate::register_events(r);
  }

  static void project(view_rows& rows, const recorded_event& meta, const event& e) {
    auto row = rows.get_as<balance_row>(meta.stream).value_or(balance_row{});
    fold(row, e, ThrowOnCurse);
    rows.put_as(meta.stream, row);
  }

  static result ask(const view_rows& rows, const query& q) {
    result r;
    rows.for_each(q.prefix, [&](std::string_view key, std::string_view value) {
      auto row = from_msgpack<balance_row>(value);
      if (!row)
        throw std::runtime_error(row.err().message);
      r.rows.emplace(std::string{key}, *row);
      return true;
    });
    return r;
  }
};

using durable_balances = balances_spec<true>;
using memory_balances = balances_spec<false>;
using fragile_balances = balances_spec<false, true>;

static_assert(view_spec<durable_balances>);

struct view_fixture : bus_fixture {
  view_env env() {
    view_env e;
    e.bus = bus;
    e.jnl = jnl;
    e.env = jnl->env();
    return e;
  }

  template <class Spec>
  caf::actor spawn(view_options opts = {}) {
    return track(spawn_view(*sys, env(), make_view_model<Spec>(), std::move(opts)));
  }

  expected<view_result> query(const caf::actor& view, std::string prefix, uint64_t min_position,
                              int64_t timeout_ms = 10'000) {
    caf::scoped_actor self{*sys};
    expected<view_result> result{errc::timeout, "no answer"};
    self->request(view, wait_bound, query_atom::value, view_query{balances_query{prefix}},
                  min_position, timeout_ms)
        .receive([&](view_result& r) { result = std::move(r); },
                 [&](caf::error& err) { result = from_caf_error(err); });
    return result;
  }

  /// The view's rows once it reached `pos` (read-your-writes query).
  row_table rows_at(const caf::actor& view, uint64_t pos) {
    auto r = query(view, "", pos);
    BOOST_REQUIRE_MESSAGE(r, why(r));
    BOOST_REQUIRE(r->position >= pos);
    return std::any_cast<balances_result>(r->value).rows;
  }

  /// The reference: a fold of read_all through `through`.
  row_table reference(uint64_t through) {
    row_table t;
    auto all = jnl->read_all(0, through);
    BOOST_REQUIRE(all);
    for (const auto& e : *all) {
      auto ev = bank_registry().decode(e);
      BOOST_REQUIRE(ev);
      fold(t[e.stream], *ev, false);
    }
    return t;
  }

  /// What LMDB holds for the durable view: rows and checkpoint, read directly.
  std::pair<row_table, std::optional<uint64_t>> stored() {
    auto dbi = jnl->env()->open_db(view_db_name(durable_balances::name));
    BOOST_REQUIRE(dbi);
    row_table t;
    auto tx = jnl->env()->begin_read();
    BOOST_REQUIRE(tx);
    cursor c{*tx, *dbi};
    for (auto x = c.first(); x && *x; x = c.next())
      t[std::string{(*x)->key}] = *from_msgpack<balance_row>((*x)->value);
    checkpoint_store cps{jnl->env()};
    auto cp = cps.load(*tx, view_db_name(durable_balances::name));
    BOOST_REQUIRE(cp);
    return {t, *cp};
  }

  /// `n` appends of 1-3 events over 10 streams.
  uint64_t load(int n, int seed = 0) {
    uint64_t last = 0;
    for (int i = 0; i < n; ++i) {
      std::vector<event_data> evs{bank_event(bank::deposited{i + seed})};
      if (i % 3 == 0)
        evs.push_back(bank_event(bank::withdrawn{1}));
      if (i % 5 == 0)
        evs.push_back(bank_event(bank::noted{"n"}));
      last = append("account-" + std::to_string((i + seed) % 10), std::move(evs)).last_position;
    }
    return last;
  }
};

// Holds a durable view inside its write transaction once it gets to `at`.
struct gate {
  std::mutex mtx;
  std::condition_variable cv;
  uint64_t at = 0;
  bool reached = false;
  bool open = false;
};

} // namespace

BOOST_AUTO_TEST_SUITE(view)

BOOST_FIXTURE_TEST_CASE(durable_view_stopped_mid_stream_resumes_with_each_event_applied_once,
                        view_fixture) {
  auto last = load(1'000);
  auto g = std::make_shared<gate>();
  g->at = last / 3;
  view_options opts;
  opts.read_batch = 50;
  opts.hooks.after_rows = [g](uint64_t through) -> status {
    std::unique_lock guard{g->mtx};
    if (through >= g->at && !g->reached) {
      g->reached = true;
      g->cv.notify_all();
      g->cv.wait_for(guard, wait_bound, [&] { return g->open; });
    }
    return {};
  };
  auto view = spawn_view(*sys, env(), make_view_model<durable_balances>(), opts);
  {
    std::unique_lock guard{g->mtx};
    BOOST_REQUIRE(g->cv.wait_for(guard, wait_bound, [&] { return g->reached; }));
  }
  // Stop it while it is inside a batch: the exit waits behind that batch's commit.
  caf::scoped_actor self{*sys};
  self->monitor(view);
  self->send_exit(view, caf::exit_reason::user_shutdown);
  {
    std::lock_guard guard{g->mtx};
    g->open = true;
    g->cv.notify_all();
  }
  self->receive([](caf::down_msg&) {}, caf::after(wait_bound) >> [] { BOOST_FAIL("no stop"); });
  auto [rows, cp] = stored();
  BOOST_REQUIRE(cp);
  BOOST_TEST_MESSAGE("stopped at " << *cp << " of " << last);
  BOOST_TEST(*cp >= g->at);
  BOOST_TEST(*cp < last);
  BOOST_TEST((rows == reference(*cp)));
  // Restart while appends go on: it resumes after the checkpoint.
  std::atomic<uint64_t> final_pos{0};
  std::thread appender{[&] { final_pos = load(300, 7); }};
  auto again = spawn<durable_balances>();
  appender.join();
  auto now = rows_at(again, final_pos);
  BOOST_TEST((now == reference(final_pos)));
  BOOST_TEST(stored().second.value_or(0) == final_pos.load());
}

BOOST_FIXTURE_TEST_CASE(rows_and_checkpoint_are_committed_together_or_not_at_all, view_fixture) {
  auto first = load(20);
  auto last = load(20, 100);
  auto fail_from = first + 1;
  view_options opts;
  opts.read_batch = static_cast<size_t>(first); // batch 1 = [1, first], batch 2 = the rest
  // Fails the transaction of the second batch after its rows were put.
  opts.hooks.after_rows = [fail_from](uint64_t through) -> status {
    if (through >= fail_from)
      return {errc::io_error, "injected failure between rows and checkpoint"};
    return {};
  };
  auto view = spawn<durable_balances>(opts);
  auto r = query(view, "", last, 5'000);
  BOOST_REQUIRE(!r);
  BOOST_TEST(r.err().code == errc::io_error);
  auto m = ask_metrics<view_metrics>(view);
  BOOST_TEST(m.failed);
  BOOST_TEST(m.errors == 1u);
  BOOST_TEST(m.position == first);
  // Neither the second batch's rows nor its checkpoint: LMDB holds exactly batch 1.
  auto [rows, cp] = stored();
  BOOST_TEST(cp.value_or(0) == first);
  BOOST_TEST((rows == reference(first)));
  BOOST_TEST(!(rows == reference(last)));
  // A restarted view (without the fault) picks up from there and ends equal to the fold.
  stop(view);
  auto again = spawn<durable_balances>();
  BOOST_TEST((rows_at(again, last) == reference(last)));
}

BOOST_FIXTURE_TEST_CASE(reset_drops_rows_and_rebuilds_the_same_rows, view_fixture) {
  auto last = load(200);
  auto durable = spawn<durable_balances>();
  auto memory = spawn<memory_balances>();
  auto before = rows_at(durable, last);
  BOOST_TEST((before == reference(last)));
  BOOST_TEST((rows_at(memory, last) == before));
  for (const auto& v : {durable, memory}) {
    caf::scoped_actor self{*sys};
    uint64_t answer = 1;
    self->request(v, wait_bound, reset_atom::value)
        .receive([&](uint64_t x) { answer = x; },
                 [&](caf::error& err) { BOOST_FAIL(to_string(from_caf_error(err))); });
    BOOST_TEST(answer == 0u);
    BOOST_TEST((rows_at(v, last) == before));
    BOOST_TEST(ask_metrics<view_metrics>(v).resets == 1u);
  }
  BOOST_TEST(stored().second.value_or(0) == last);
}

BOOST_FIXTURE_TEST_CASE(queries_wait_for_the_requested_position_or_time_out, view_fixture) {
  auto view = spawn<durable_balances>();
  for (int i = 1; i <= 20; ++i) {
    auto res = append("account-rw", {bank_event(bank::deposited{i})});
    // Read your own write: the answer includes the append that just committed.
    auto rows = rows_at(view, res.last_position);
    BOOST_TEST(rows["account-rw"].balance == i * (i + 1) / 2);
  }
  auto r = query(view, "", 1'000'000, 50);
  BOOST_REQUIRE(!r);
  BOOST_TEST(r.err().code == errc::timeout);
  // A prefix selects rows; position 0 answers at once.
  append("other-1", {bank_event(bank::deposited{5})});
  auto some = query(view, "other", 0);
  BOOST_REQUIRE(some);
}

BOOST_FIXTURE_TEST_CASE(a_throwing_projection_stops_only_its_view_and_names_the_event,
                        view_fixture) {
  auto fragile = spawn<fragile_balances>();
  auto sturdy = spawn<memory_balances>();
  load(10);
  auto bad = append("account-x", {bank_event(bank::cursed{1})}).last_position;
  auto last = load(10, 50);
  BOOST_TEST((rows_at(sturdy, last) == reference(last)));
  auto r = query(fragile, "", last, 5'000);
  BOOST_REQUIRE(!r);
  BOOST_TEST(r.err().code == errc::corrupted);
  auto msg = r.err().message;
  BOOST_TEST(msg.find("position " + std::to_string(bad)) != std::string::npos, msg);
  BOOST_TEST(msg.find("account-x") != std::string::npos, msg);
  BOOST_TEST(msg.find("bank.cursed") != std::string::npos, msg);
  auto m = ask_metrics<view_metrics>(fragile);
  BOOST_TEST(m.failed);
  BOOST_TEST(m.position < bad); // nothing at or after the bad event counts as applied
  BOOST_TEST(ask_metrics<view_metrics>(sturdy).lag == 0u);
}

BOOST_FIXTURE_TEST_CASE(in_memory_view_rebuilds_from_position_zero_and_reports_lag, view_fixture) {
  auto last = load(50);
  auto first = spawn<memory_balances>();
  BOOST_TEST((rows_at(first, last) == reference(last)));
  stop(first);
  auto second = spawn<memory_balances>();
  BOOST_TEST((rows_at(second, last) == reference(last)));
  auto m = ask_metrics<view_metrics>(second);
  BOOST_TEST(m.position == last);
  BOOST_TEST(m.head == last);
  BOOST_TEST(m.lag == 0u);
  BOOST_TEST(m.events > 0u);
  BOOST_TEST(!m.durable);
}

BOOST_FIXTURE_TEST_CASE(a_durable_view_commits_at_most_once_per_commit_interval, view_fixture) {
  view_options opts;
  opts.commit_interval = std::chrono::milliseconds{400};
  auto v = spawn<durable_balances>(opts);
  // Before the first append: the view's first commit cannot begin earlier.
  auto t0 = std::chrono::steady_clock::now();
  auto first = load(1);
  BOOST_TEST((rows_at(v, first) == reference(first)));
  // Twenty appends (separate commits, so separate live deliveries) during the interval
  // that began with the first batch: they wait and go into one commit.
  auto last = load(20, 1);
  BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds{300},
                        "the appends took too long for this test's timing");
  // Meanwhile queries are answered (the view holds only its answer to the subscription).
  auto now = query(v, "", 0, 0);
  BOOST_REQUIRE_MESSAGE(now, why(now));
  BOOST_TEST(now->position == first);
  BOOST_TEST((rows_at(v, last) == reference(last)));
  BOOST_TEST((std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds{400}));
  auto m = ask_metrics<view_metrics>(v);
  BOOST_TEST(m.batches == 2u);
  BOOST_TEST((stored().second == std::optional<uint64_t>{last}));
}

BOOST_AUTO_TEST_SUITE_END()
