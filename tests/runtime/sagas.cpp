// Sagas in evident::runtime: a registered saga type runs transfers between aggregates of
// the same runtime, answers status calls, shows in the metrics and Prometheus text,
// stops with the runtime and finds its instances again after a restart. Real scheduler
// and LMDB; every wait is bounded.

#include <boost/test/unit_test.hpp>

#include "evident/persistence/failing_journal.hpp"
#include "evident/runtime/runtime.hpp"

#include "sagas/transfer.hpp"
#include "support/account_aggregate.hpp"
#include "support/checks.hpp"
#include "support/gate_hook.hpp"
#include "support/print.hpp"
#include "support/temp_dir.hpp"

#include <chrono>
#include <memory>
#include <string>

using namespace evident;
using namespace std::chrono_literals;

namespace {

runtime_config config_for(const test::temp_dir& dir) {
  runtime_config cfg;
  cfg.storage.data_dir = dir.str();
  cfg.storage.sync = durability::no_sync;
  cfg.shutdown.drain_timeout = 10s;
  cfg.requests.ask_timeout = 10s;
  return cfg;
}

std::unique_ptr<runtime> start_bank(const test::temp_dir& dir) {
  auto rt = std::make_unique<runtime>(config_for(dir));
  rt->register_aggregate<bank::account_aggregate>();
  rt->register_aggregate<transfers::transfer_aggregate>();
  rt->register_saga<transfers::transfer_saga>();
  return rt;
}

int64_t balance_of(runtime& rt, const std::string& id) {
  auto r = rt.ask<bank::account_aggregate>(id, bank::get_balance{});
  BOOST_REQUIRE_MESSAGE(r.has_value(), "balance of " << id);
  return r->balance;
}

void open_with(runtime& rt, const std::string& id, int64_t amount) {
  auto o = rt.ask<bank::account_aggregate>(id, bank::open{"owner of " + id});
  BOOST_REQUIRE(o.has_value() && o->ok);
  if (amount > 0) {
    auto d = rt.ask<bank::account_aggregate>(id, bank::deposit{amount});
    BOOST_REQUIRE(d.has_value() && d->ok);
  }
}

void request(runtime& rt, const std::string& id, const std::string& from, const std::string& to,
             int64_t amount) {
  auto r = rt.ask<transfers::transfer_aggregate>(
    id, transfers::request_transfer{id, from, to, amount}, "request-" + id);
  BOOST_REQUIRE(r.has_value() && r->ok);
}

} // namespace

BOOST_AUTO_TEST_SUITE(runtime_sagas)

BOOST_AUTO_TEST_CASE(a_registered_saga_moves_money_and_reports_its_end_state) {
  test::temp_dir dir;
  auto rt = start_bank(dir);
  open_with(*rt, "a", 100);
  open_with(*rt, "b", 0);
  request(*rt, "t1", "a", "b", 30);
  request(*rt, "t2", "b", "a", 500); // b has 30: the debit is refused
  auto done = rt->saga_wait("transfer", "t1", 10s);
  BOOST_REQUIRE_MESSAGE(done.has_value(), "t1: " << (done ? "" : to_string(done.err())));
  BOOST_CHECK(done->status == saga_status::completed);
  auto failed = rt->saga_wait("transfer", "t2", 10s);
  BOOST_REQUIRE(failed.has_value());
  BOOST_CHECK(failed->status == saga_status::failed);
  BOOST_CHECK_EQUAL(balance_of(*rt, "a"), 70);
  BOOST_CHECK_EQUAL(balance_of(*rt, "b"), 30);
  auto detail = rt->saga_show("transfer", "t1");
  BOOST_REQUIRE(detail.has_value());
  BOOST_CHECK_EQUAL(detail->history.size(), 3u); // requested, debited, credited
  auto listed = rt->saga_list("transfer", saga_query{saga_status::completed, 10});
  BOOST_REQUIRE(listed.has_value());
  BOOST_REQUIRE_EQUAL(listed->size(), 1u);
  BOOST_CHECK_EQUAL(listed->front().key, "t1");
  auto m = rt->metrics();
  BOOST_REQUIRE_EQUAL(m.sagas.size(), 1u);
  BOOST_CHECK_EQUAL(m.sagas[0].name, "transfer");
  BOOST_CHECK_EQUAL(m.sagas[0].counters.completed, 1u);
  BOOST_CHECK_EQUAL(m.sagas[0].counters.failed, 1u);
  auto text = to_prometheus(m);
  BOOST_CHECK(text.find("evident_saga_instances{saga=\"transfer\",status=\"completed\"} 1")
              != std::string::npos);
  BOOST_CHECK(!rt->stop());
}

BOOST_AUTO_TEST_CASE(status_calls_name_unknown_sagas_and_refuse_after_stop) {
  test::temp_dir dir;
  auto rt = start_bank(dir);
  auto none = rt->saga_list("no-such-saga");
  BOOST_REQUIRE(!none.has_value());
  BOOST_CHECK(none.err().code == errc::invalid_input);
  BOOST_CHECK_THROW(rt->register_saga<transfers::transfer_saga>(), std::invalid_argument);
  BOOST_CHECK(!rt->stop());
  auto after = rt->saga_list("transfer");
  BOOST_REQUIRE(!after.has_value());
  BOOST_CHECK(after.err().code == errc::unavailable);
  BOOST_CHECK_THROW(rt->register_saga<transfers::transfer_saga>(), std::logic_error);
}

BOOST_AUTO_TEST_CASE(after_a_restart_the_saga_knows_its_instances_and_runs_no_step_twice) {
  test::temp_dir dir;
  {
    auto rt = start_bank(dir);
    open_with(*rt, "a", 100);
    open_with(*rt, "b", 0);
    request(*rt, "t1", "a", "b", 40);
    auto done = rt->saga_wait("transfer", "t1", 10s);
    BOOST_REQUIRE(done.has_value());
    BOOST_REQUIRE(done->status == saga_status::completed);
    BOOST_REQUIRE(!rt->stop());
  }
  auto rt = start_bank(dir);
  auto t1 = rt->saga_show("transfer", "t1");
  BOOST_REQUIRE(t1.has_value());
  BOOST_CHECK(t1->summary.status == saga_status::completed);
  request(*rt, "t2", "a", "b", 10);
  auto done = rt->saga_wait("transfer", "t2", 10s);
  BOOST_REQUIRE(done.has_value());
  BOOST_CHECK(done->status == saga_status::completed);
  // t1 moved 40 once, t2 moved 10: nothing was redelivered into a second debit.
  BOOST_CHECK_EQUAL(balance_of(*rt, "a"), 50);
  BOOST_CHECK_EQUAL(balance_of(*rt, "b"), 50);
  BOOST_CHECK(!rt->stop());
}

BOOST_AUTO_TEST_CASE(a_saga_manager_stopped_by_an_unknown_outcome_is_replaced_and_the_saga_ends) {
  test::temp_dir dir;
  test::gate_hook fj{failing_journal::default_hold_timeout, false}; // fails, holds nothing
  auto rt = std::make_unique<runtime>(config_for(dir), fj.hooks());
  rt->register_aggregate<bank::account_aggregate>();
  rt->register_aggregate<transfers::transfer_aggregate>();
  rt->register_saga<transfers::transfer_saga>();
  open_with(*rt, "a", 100);
  open_with(*rt, "b", 0);
  auto first_manager = rt->saga_manager("transfer");
  // Next append: the transfer request; the one after: the saga's first progress record.
  // It is written, but the manager hears io_error (outcome unknown) and stops.
  fj()->fail_nth_append(fj()->appends() + 2, errc::io_error, failure_point::after_write);
  request(*rt, "t1", "a", "b", 30);
  // Waits on whichever manager is current; one that stopped answers with an error at
  // once, so the bound is time (the replacement comes after a 100 ms backoff).
  expected<saga_summary> done = error{errc::timeout, "not asked"};
  test::eventually([&] {
    done = rt->saga_wait("transfer", "t1", 200ms);
    return done && done->status == saga_status::completed;
  });
  BOOST_REQUIRE_MESSAGE(done.has_value(), "t1: " << (done ? "" : to_string(done.err())));
  BOOST_CHECK(done->status == saga_status::completed);
  BOOST_CHECK(rt->saga_manager("transfer") != first_manager);
  BOOST_CHECK_EQUAL(balance_of(*rt, "a"), 70); // one debit, one credit: nothing twice
  BOOST_CHECK_EQUAL(balance_of(*rt, "b"), 30);
  auto m = rt->metrics();
  BOOST_REQUIRE_EQUAL(m.sagas.size(), 1u);
  BOOST_CHECK_EQUAL(m.sagas[0].restarts, 1u);
  BOOST_CHECK(to_prometheus(m).find("evident_saga_manager_restarts_total{saga=\"transfer\"} 1")
              != std::string::npos);
  BOOST_CHECK_EQUAL(m.sagas[0].counters.completed, 1u);
  first_manager = nullptr;
  auto stopped = rt->stop();
  BOOST_CHECK_MESSAGE(!stopped, to_string(stopped));
}

BOOST_AUTO_TEST_SUITE_END()
