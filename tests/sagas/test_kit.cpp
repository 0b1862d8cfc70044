// The saga test kit on the transfer saga: given/when/then without actors.

#include "transfer.hpp"

#include "evident/sagas/test_kit.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>

using namespace transfers;
using namespace std::chrono_literals;
using evident::saga_end;
using evident::saga_status;
using kit_t = evident::saga_test_kit<transfer_saga>;

namespace {

bank::account_reply ok(int64_t balance = 0) {
  return {true, balance, {}};
}

bank::account_reply refused(std::string why) {
  return bank::account_reply::refused(std::move(why));
}

} // namespace

BOOST_AUTO_TEST_SUITE(saga_test_kit)

BOOST_AUTO_TEST_CASE(a_start_event_sends_the_debit_with_a_deterministic_command_id) {
  kit_t kit;
  auto r = kit.when(transfer_requested{"t1", "a", "b", 50});
  BOOST_TEST(r.changed());
  BOOST_TEST(r.key() == "t1");
  BOOST_REQUIRE(r.sent_count() == 1u);
  BOOST_TEST(r.sent(0).tag == "debit");
  BOOST_TEST(r.sent(0).target_type == "account");
  BOOST_TEST(r.sent(0).target_id == "a");
  BOOST_TEST(r.sent(0).command.amount == 50);
  BOOST_TEST(!r.sent(0).command.deposit);
  BOOST_TEST(r.sent(0).command_id == "saga:transfer:t1/1/0");
  BOOST_TEST(r.status() == saga_status::running);
}

BOOST_AUTO_TEST_CASE(debit_then_credit_completes_the_transfer) {
  kit_t kit;
  kit.given(transfer_requested{"t1", "a", "b", 50});
  auto credit = kit.when_reply("debit", ok(50));
  BOOST_REQUIRE(credit.sent_count() == 1u);
  BOOST_TEST(credit.sent(0).tag == "credit");
  BOOST_TEST(credit.sent(0).target_id == "b");
  BOOST_TEST(credit.sent(0).command.deposit);
  auto done = kit.when_reply("credit", ok(50));
  BOOST_TEST(done.sent_count() == 0u);
  BOOST_TEST(done.status() == saga_status::completed);
  BOOST_TEST(done.record().step == 3u);
}

BOOST_AUTO_TEST_CASE(insufficient_funds_fails_the_saga_without_a_credit) {
  kit_t kit;
  kit.given(transfer_requested{"t1", "a", "b", 50});
  auto r = kit.when_reply("debit", refused("insufficient funds"));
  BOOST_TEST(r.sent_count() == 0u);
  BOOST_TEST(r.status() == saga_status::failed);
  BOOST_TEST(r.state().reason == "debit refused: insufficient funds");
}

BOOST_AUTO_TEST_CASE(a_refused_credit_is_compensated_by_a_refund) {
  kit_t kit;
  kit.given(transfer_requested{"t1", "a", "b", 50});
  kit.when_reply("debit", ok());
  auto refund = kit.when_reply("credit", refused("account not open"));
  BOOST_REQUIRE(refund.sent_count() == 1u);
  BOOST_TEST(refund.sent(0).tag == "refund");
  BOOST_TEST(refund.sent(0).target_id == "a");
  BOOST_TEST(refund.sent(0).command.deposit);
  BOOST_TEST(refund.status() == saga_status::running);
  auto r = kit.when_reply("refund", ok());
  BOOST_TEST(r.status() == saga_status::compensated);
  BOOST_TEST(r.end() == saga_end::compensated);
}

BOOST_AUTO_TEST_CASE(a_permanent_command_failure_reaches_the_handler_as_an_outcome) {
  kit_t kit;
  kit.given(transfer_requested{"t1", "a", "b", 50});
  kit.when_reply("debit", ok());
  auto r = kit.when_failure("credit", {evident::errc::invalid_input, "unknown aggregate type"});
  BOOST_REQUIRE(r.sent_count() == 1u);
  BOOST_TEST(r.sent(0).tag == "refund");
}

BOOST_AUTO_TEST_CASE(a_large_transfer_waits_for_approval_with_a_deadline) {
  kit_t kit;
  auto r = kit.when(transfer_requested{"t1", "a", "b", 5'000});
  BOOST_TEST(r.sent_count() == 0u);
  BOOST_TEST(r.status() == saga_status::waiting);
  BOOST_TEST(r.has_deadline("approval"));
  auto approved = kit.when(transfer_approved{"t1"});
  BOOST_REQUIRE(approved.sent_count() == 1u);
  BOOST_TEST(approved.sent(0).tag == "debit");
  BOOST_TEST(!approved.has_deadline("approval"));
  // The cancelled deadline never fires.
  BOOST_TEST(!kit.when_elapsed(2min).changed());
}

BOOST_AUTO_TEST_CASE(an_expired_approval_deadline_fails_the_saga) {
  kit_t kit;
  kit.given(transfer_requested{"t1", "a", "b", 5'000});
  BOOST_TEST(!kit.when_elapsed(59s).changed()); // not due yet
  auto r = kit.when_elapsed(1s);
  BOOST_TEST(r.changed());
  BOOST_TEST(r.status() == saga_status::failed);
  BOOST_TEST(r.state().reason == "approval timed out");
  BOOST_TEST(r.deadlines().empty());
}

BOOST_AUTO_TEST_CASE(an_event_delivered_twice_is_applied_once) {
  kit_t kit;
  auto first = kit.when(transfer_requested{"t1", "a", "b", 50}, 7);
  BOOST_TEST(first.changed());
  auto again = kit.when(transfer_requested{"t1", "a", "b", 50}, 7);
  BOOST_TEST(!again.changed());
  BOOST_TEST(again.skipped() == "duplicate");
  BOOST_TEST(again.record().step == 1u);
}

BOOST_AUTO_TEST_CASE(a_continue_event_without_an_instance_is_ignored) {
  kit_t kit;
  auto r = kit.when(transfer_approved{"nobody"});
  BOOST_TEST(!r.changed());
  BOOST_TEST(r.skipped() == "unknown");
  BOOST_TEST(kit.record("nobody") == nullptr);
}

BOOST_AUTO_TEST_CASE(a_throwing_handler_parks_the_saga_and_a_retry_replays_the_event) {
  poison_active = true;
  kit_t kit;
  auto r = kit.when(transfer_requested{"t1", "poison", "b", 50}, 3);
  BOOST_TEST(r.status() == saga_status::parked);
  BOOST_TEST(r.record().error.find("poisoned transfer") != std::string::npos);
  BOOST_TEST(r.sent_count() == 0u);
  // An event for the parked saga is deferred, not lost.
  auto d = kit.when(transfer_approved{"t1"}, 4);
  BOOST_TEST(d.status() == saga_status::parked);
  BOOST_TEST((d.record().deferred == std::vector<uint64_t>{4}));
  poison_active = false;
  auto u = kit.when_retried();
  poison_active = true;
  // Replayed: the start (debit sent), then the deferred approval (ignored: no approval
  // needed for a small amount).
  BOOST_TEST(u.status() == saga_status::running);
  BOOST_TEST(u.record().deferred.empty());
  BOOST_REQUIRE(kit.record("t1") != nullptr);
  BOOST_TEST(kit.record("t1")->outbox.size() == 1u);
  BOOST_TEST(kit.record("t1")->outbox[0].tag == "debit");
}

BOOST_AUTO_TEST_SUITE_END()
