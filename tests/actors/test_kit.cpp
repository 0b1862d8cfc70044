#include "evident/actors/test_kit.hpp"

#include "account_aggregate.hpp"
#include "print.hpp"

#include <boost/test/unit_test.hpp>

#include <string>

// The test kit runs the aggregate's decide/apply through the real recovery, command-id
// and append code, on the in-memory journal: no actors, no threads, no clock.

using namespace bank;
using evident::errc;
using kit = evident::test_kit<account_aggregate>;

BOOST_AUTO_TEST_SUITE(test_kit_suite)

BOOST_AUTO_TEST_CASE(refusal_persists_nothing_and_replies) {
  auto r = kit{}.given(opened{"ada"}, deposited{100}).when(withdraw{500});
  BOOST_TEST(r.ok());
  BOOST_TEST(r.events().empty());
  BOOST_TEST(r.reply() == account_reply::refused("insufficient funds"));
  BOOST_TEST(r.state().balance == 100);
  BOOST_TEST(r.version() == 2u);
}

BOOST_AUTO_TEST_CASE(accepted_command_persists_its_events_and_replies_from_the_new_state) {
  kit k;
  k.given(opened{"ada"}, deposited{100});
  auto r = k.when(withdraw{30});
  BOOST_TEST(r.events_are(withdrawn{30}));
  BOOST_TEST(r.reply() == account_reply::balance_of(account{"ada", 70, true, 3, {}}));
  BOOST_TEST(r.version() == 3u);
  BOOST_TEST(k.state().balance == 70);
  // The next command recovers from the journal: the event was stored.
  BOOST_TEST(k.when(get_balance{}).reply().balance == 70);
}

BOOST_AUTO_TEST_CASE(persist_all_stores_several_events_atomically) {
  kit k;
  k.given(opened{"ada"});
  auto r = k.when(deposit_many{{1, 2, 3}}, "many-1");
  BOOST_TEST(r.events_are(deposited{1}, deposited{2}, deposited{3}));
  BOOST_TEST(r.reply().balance == 6);
  BOOST_TEST(r.version() == 4u);
  // The reply is stored on the last event of the append; a retry reads it from there.
  auto retry = k.when(deposit_many{{1, 2, 3}}, "many-1");
  BOOST_TEST(retry.duplicate());
  BOOST_TEST(retry.reply().balance == 6);
  BOOST_TEST(k.state().balance == 6);
}

BOOST_AUTO_TEST_CASE(then_chains_on_a_temporary_kit) {
  kit{}.given(opened{"bob"}).when(deposit{5}).then([](const auto& r) {
    BOOST_TEST(r.events_are(deposited{5}));
    BOOST_TEST(r.reply().balance == 5);
  });
}

BOOST_AUTO_TEST_CASE(decide_that_throws_is_an_error_and_persists_nothing) {
  kit k;
  k.given(opened{"ada"});
  auto r = k.when(explode{});
  BOOST_TEST(!r.ok());
  BOOST_TEST(r.error().code == errc::invalid_input);
  BOOST_TEST(r.error().message.find("decide exploded") != std::string::npos);
  BOOST_CHECK_THROW(r.reply(), std::logic_error);
  BOOST_TEST(k.journal().head(k.stream())->version == 1u);
}

BOOST_AUTO_TEST_CASE(apply_that_throws_is_an_error_and_persists_nothing) {
  kit k;
  k.given(opened{"ada"});
  auto r = k.when(curse{});
  BOOST_TEST(r.error().code == errc::invalid_input);
  BOOST_TEST(r.error().message.find("cursed event") != std::string::npos);
  BOOST_TEST(k.journal().head(k.stream())->version == 1u);
}

BOOST_AUTO_TEST_CASE(oversize_event_is_rejected_by_the_journal) {
  evident::journal_options opts;
  opts.max_event_bytes = 512;
  kit k{"acc", opts};
  k.given(opened{"ada"});
  auto r = k.when(note{std::string(1000, 'x')});
  BOOST_TEST(r.error().code == errc::too_large);
  BOOST_TEST(r.events().empty());
  BOOST_TEST(k.when(note{"short"}).ok());
}

BOOST_AUTO_TEST_CASE(retry_with_the_same_command_id_gets_the_original_reply) {
  kit k;
  k.given(opened{"ada"}, deposited{100});
  auto first = k.when(withdraw{40}, "cmd-1");
  BOOST_TEST(first.events_are(withdrawn{40}));
  k.when(deposit{1000});
  auto retry = k.when(withdraw{40}, "cmd-1");
  BOOST_TEST(retry.duplicate());
  BOOST_TEST(retry.events().empty());
  BOOST_TEST(retry.reply() == first.reply()); // balance 60, not 1060 - 40
  BOOST_TEST(k.state().balance == 1060);
}

BOOST_AUTO_TEST_CASE(a_command_id_without_events_is_decided_again) {
  kit k;
  k.given(opened{"ada"});
  auto first = k.when(withdraw{10}, "cmd-2");
  BOOST_TEST(first.reply() == account_reply::refused("insufficient funds"));
  k.when(deposit{50});
  auto again = k.when(withdraw{10}, "cmd-2");
  BOOST_TEST(!again.duplicate());
  BOOST_TEST(again.events_are(withdrawn{10}));
}

BOOST_AUTO_TEST_CASE(snapshots_follow_the_policy_and_recovery_uses_them) {
  kit k;
  k.given(opened{"ada"});
  for (int i = 0; i < 24; ++i)
    BOOST_TEST_REQUIRE(k.when(deposit{1}).ok());
  auto snaps = k.snapshots().list(k.stream());
  BOOST_TEST_REQUIRE(snaps.has_value());
  BOOST_TEST_REQUIRE(snaps->size() == 2u); // keep_last = 2
  BOOST_TEST((*snaps)[0].version == 10u);
  BOOST_TEST((*snaps)[1].version == 20u);
  BOOST_TEST(k.state().balance == 24);
}

BOOST_AUTO_TEST_SUITE_END()
