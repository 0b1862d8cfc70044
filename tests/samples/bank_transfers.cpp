// The bank's transfer saga and balances view on a runtime (no HTTP): transfers complete,
// fail without moving money, or are compensated; the balances report folds every
// account's events and ranks the largest accounts. Real scheduler and LMDB; bounded.

#include <boost/test/unit_test.hpp>

#include "bank/account.hpp"
#include "bank/balances.hpp"
#include "bank/transfer.hpp"

#include "evident/runtime/runtime.hpp"

#include "support/temp_dir.hpp"

#include <chrono>
#include <memory>
#include <string>

using namespace std::chrono_literals;

namespace {

std::unique_ptr<evident::runtime> start(const evident::test::temp_dir& dir) {
  evident::runtime_config cfg;
  cfg.storage.data_dir = dir.str();
  cfg.storage.sync = evident::durability::no_sync;
  cfg.requests.ask_timeout = 10s;
  cfg.shutdown.drain_timeout = 10s;
  auto rt = std::make_unique<evident::runtime>(cfg);
  rt->register_aggregate<bank::account_aggregate>();
  rt->register_aggregate<bank::transfer_aggregate>();
  rt->register_view<bank::balances_view>();
  rt->register_saga<bank::transfer_saga>();
  return rt;
}

bank::account_reply command(evident::runtime& rt, const std::string& id,
                            bank::account_command c) {
  auto r = rt.ask<bank::account_aggregate>(id, std::move(c));
  BOOST_REQUIRE_MESSAGE(r.has_value(), "command to " << id);
  return *r;
}

void open(evident::runtime& rt, const std::string& id, int64_t amount) {
  BOOST_REQUIRE(command(rt, id, {bank::open{"owner"}, {}}).ok());
  if (amount > 0)
    BOOST_REQUIRE(command(rt, id, {bank::deposit{amount}, {}}).ok());
}

evident::saga_status transfer(evident::runtime& rt, const std::string& id,
                              const std::string& from, const std::string& to, int64_t amount) {
  auto r = rt.ask<bank::transfer_aggregate>(id, bank::request_transfer{id, from, to, amount});
  BOOST_REQUIRE(r.has_value() && r->ok());
  auto done = rt.saga_wait("transfer", id, 10s);
  BOOST_REQUIRE_MESSAGE(done.has_value(), "transfer " << id << " did not end");
  return done->status;
}

int64_t balance(evident::runtime& rt, const std::string& id) {
  auto s = rt.state_of<bank::account_aggregate>(id);
  BOOST_REQUIRE_MESSAGE(s.has_value(), "state of " << id);
  return s->state.balance;
}

} // namespace

BOOST_AUTO_TEST_SUITE(bank_transfers)

BOOST_AUTO_TEST_CASE(a_transfer_moves_money_once_or_fails_or_is_refunded) {
  evident::test::temp_dir dir;
  auto rt = start(dir);
  open(*rt, "a", 100);
  open(*rt, "b", 0);
  open(*rt, "c", 0);
  BOOST_REQUIRE(command(*rt, "c", {bank::close{}, {}}).ok());
  BOOST_CHECK(transfer(*rt, "t1", "a", "b", 30) == evident::saga_status::completed);
  BOOST_CHECK(transfer(*rt, "t2", "b", "a", 500) == evident::saga_status::failed);
  BOOST_CHECK(transfer(*rt, "t3", "a", "c", 20) == evident::saga_status::compensated);
  BOOST_CHECK_EQUAL(balance(*rt, "a"), 70);
  BOOST_CHECK_EQUAL(balance(*rt, "b"), 30);
  auto t3 = rt->saga_show("transfer", "t3");
  BOOST_REQUIRE(t3.has_value());
  BOOST_CHECK_EQUAL(t3->history.size(), 4u); // requested, debited, credit refused, refunded
  auto again = rt->ask<bank::transfer_aggregate>("t1", bank::request_transfer{"t1", "a", "b", 30});
  BOOST_REQUIRE(again.has_value());
  BOOST_CHECK(again->refused == bank::transfer_refusal::exists);
  BOOST_CHECK(!rt->stop());
}

BOOST_AUTO_TEST_CASE(the_balances_report_totals_open_accounts_and_ranks_the_largest) {
  evident::test::temp_dir dir;
  auto rt = start(dir);
  for (int i = 0; i < 12; ++i)
    open(*rt, "acc" + std::to_string(i), 10 * (i + 1));
  BOOST_REQUIRE(command(*rt, "acc0", {bank::withdraw{10}, {}}).ok());
  BOOST_REQUIRE(command(*rt, "acc0", {bank::close{}, {}}).ok());
  auto head = rt->journal()->last_position();
  BOOST_REQUIRE(head.has_value());
  auto report = rt->query<bank::balances_view>(bank::balances_query{}, *head, 10s);
  BOOST_REQUIRE(report.has_value());
  // 20 + 30 + ... + 120 after acc0 (10) was emptied and closed.
  BOOST_CHECK_EQUAL(report->total_balance, 770);
  BOOST_CHECK_EQUAL(report->open_accounts, 11u);
  BOOST_REQUIRE_EQUAL(report->largest.size(), 10u);
  BOOST_CHECK_EQUAL(report->largest.front().id, "acc11");
  BOOST_CHECK_EQUAL(report->largest.front().balance, 120);
  BOOST_CHECK_EQUAL(report->largest.back().id, "acc2");
  BOOST_CHECK(!rt->stop());
}

BOOST_AUTO_TEST_SUITE_END()
