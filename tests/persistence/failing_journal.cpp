// The failing-journal decorator: which append a rule hits, what gets written, and that
// holds are released (or expire) so fault tests never hang.

#include <boost/test/unit_test.hpp>

#include "evident/persistence/failing_journal.hpp"
#include "evident/persistence/memory_journal.hpp"

#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace evident;
using namespace std::chrono_literals;

namespace {

constexpr auto wait_bound = 10s; // generous: a broken test fails, it does not hang

append_request one_event(std::string stream, expected_version ev = expected_version::any()) {
  append_request req;
  req.stream = std::move(stream);
  req.expected = ev;
  event_data e;
  e.type = "test.happened";
  e.payload = "\x81\xa1x\x01";
  req.events.push_back(std::move(e));
  return req;
}

std::string code_of(const error& e) {
  return std::string{to_string(e.code)};
}

uint64_t version_of(journal& j, const std::string& stream) {
  auto h = j.head(stream);
  BOOST_REQUIRE(h);
  return h->version;
}

struct fixture {
  std::shared_ptr<memory_journal> mem = std::make_shared<memory_journal>();
  failing_journal fj{mem};
};

} // namespace

BOOST_AUTO_TEST_SUITE(failing_journal_tests)

BOOST_AUTO_TEST_CASE(a_null_inner_journal_is_refused) {
  BOOST_CHECK_THROW(failing_journal{nullptr}, std::invalid_argument);
}

BOOST_FIXTURE_TEST_CASE(without_rules_every_call_passes_through, fixture) {
  auto r1 = fj.append(one_event("s-1"));
  BOOST_REQUIRE(r1);
  BOOST_TEST(r1->last_position == 1u);
  std::vector<append_request> batch{one_event("s-1"), one_event("s-2")};
  auto rs = fj.append_batch(batch);
  BOOST_REQUIRE(rs.size() == 2u);
  BOOST_TEST(rs[0].has_value());
  BOOST_TEST(rs[1].has_value());
  BOOST_TEST(version_of(fj, "s-1") == 2u);
  auto events = fj.read_stream("s-1");
  BOOST_REQUIRE(events);
  BOOST_TEST(events->size() == 2u);
  auto all = fj.read_all();
  BOOST_REQUIRE(all);
  BOOST_TEST(all->size() == 3u);
  auto last = fj.last_position();
  BOOST_REQUIRE(last);
  BOOST_TEST(*last == 3u);
  auto heads = fj.streams();
  BOOST_REQUIRE(heads);
  BOOST_TEST(heads->size() == 2u);
  BOOST_TEST(!fj.delete_to("s-1", 1));
  BOOST_TEST(!fj.truncate_before("s-1", 1));
  BOOST_TEST(!fj.soft_delete("s-2"));
  BOOST_TEST(!fj.tombstone("s-2"));
  BOOST_TEST(code_of(mem->append(one_event("s-2")).err()) == "stream_deleted");
  BOOST_TEST(fj.appends() == 3u);
  BOOST_TEST(fj.append_calls() == 1u);
  BOOST_TEST(fj.batch_calls() == 1u);
  BOOST_TEST(fj.injected_failures() == 0u);
}

BOOST_FIXTURE_TEST_CASE(find_command_passes_through, fixture) {
  auto req = one_event("s-1");
  req.command_id = "cmd-1";
  BOOST_REQUIRE(fj.append(req));
  auto found = fj.find_command("s-1", "cmd-1");
  BOOST_REQUIRE(found);
  BOOST_REQUIRE(found->has_value());
  BOOST_TEST((*found)->last_version == 1u);
}

BOOST_FIXTURE_TEST_CASE(a_failed_append_writes_nothing_by_default, fixture) {
  fj.fail_nth_append(2);
  BOOST_REQUIRE(fj.append(one_event("s-1")));
  auto r = fj.append(one_event("s-1"));
  BOOST_REQUIRE(!r);
  BOOST_TEST(code_of(r.err()) == "io_error");
  BOOST_TEST(r.err().message.find("#2") != std::string::npos);
  BOOST_TEST(version_of(*mem, "s-1") == 1u);
  // The rule fired once: the third append goes through.
  BOOST_REQUIRE(fj.append(one_event("s-1")));
  BOOST_TEST(version_of(*mem, "s-1") == 2u);
  BOOST_TEST(fj.injected_failures() == 1u);
}

BOOST_FIXTURE_TEST_CASE(write_then_fail_stores_the_append_and_reports_the_error, fixture) {
  fj.fail_nth_append(1, errc::io_error, failure_point::after_write);
  auto r = fj.append(one_event("s-1"));
  BOOST_REQUIRE(!r);
  BOOST_TEST(code_of(r.err()) == "io_error");
  // The acknowledgement was lost, the commit was not.
  BOOST_TEST(version_of(*mem, "s-1") == 1u);
}

BOOST_FIXTURE_TEST_CASE(a_rejected_append_gets_its_code_and_writes_nothing, fixture) {
  fj.reject_nth_append(1);
  auto r = fj.append(one_event("s-1"));
  BOOST_REQUIRE(!r);
  BOOST_TEST(code_of(r.err()) == "too_large");
  BOOST_TEST(r.err().message.find("rejected") != std::string::npos);
  fj.reject_nth_append(2, errc::invalid_input);
  auto r2 = fj.append(one_event("s-1"));
  BOOST_REQUIRE(!r2);
  BOOST_TEST(code_of(r2.err()) == "invalid_input");
  BOOST_TEST(version_of(*mem, "s-1") == 0u);
}

BOOST_FIXTURE_TEST_CASE(a_later_rule_for_the_same_append_replaces_the_earlier, fixture) {
  fj.fail_nth_append(1, errc::io_error);
  fj.reject_nth_append(1, errc::too_large);
  BOOST_TEST(code_of(fj.append(one_event("s-1")).err()) == "too_large");
}

BOOST_FIXTURE_TEST_CASE(each_request_of_a_batch_counts_as_one_append, fixture) {
  BOOST_REQUIRE(fj.append(one_event("s-0"))); // append #1
  fj.fail_nth_append(3);                      // the second request of the batch below
  std::vector<append_request> batch{one_event("s-1", expected_version::exact(0)),
                                    one_event("s-2", expected_version::exact(0)),
                                    one_event("s-3", expected_version::exact(0))};
  auto rs = fj.append_batch(batch);
  BOOST_REQUIRE(rs.size() == 3u);
  BOOST_TEST(rs[0].has_value());
  BOOST_REQUIRE(!rs[1]);
  BOOST_TEST(code_of(rs[1].err()) == "io_error");
  BOOST_REQUIRE(rs[2].has_value());
  // The failed request was left out of the batch the memory journal saw.
  BOOST_TEST(rs[2]->first_position == 3u);
  BOOST_TEST(version_of(*mem, "s-2") == 0u);
  BOOST_TEST(version_of(*mem, "s-3") == 1u);
  BOOST_TEST(fj.appends() == 4u);
  BOOST_TEST(fj.append_calls() == 1u);
  BOOST_TEST(fj.batch_calls() == 1u);
}

BOOST_FIXTURE_TEST_CASE(a_batch_with_a_lost_acknowledgement_writes_everything, fixture) {
  fj.fail_nth_append(2, errc::io_error, failure_point::after_write);
  std::vector<append_request> batch{one_event("s-1"), one_event("s-1"), one_event("s-1")};
  auto rs = fj.append_batch(batch);
  BOOST_REQUIRE(rs.size() == 3u);
  BOOST_TEST(rs[0].has_value());
  BOOST_TEST(!rs[1].has_value());
  BOOST_REQUIRE(rs[2].has_value());
  BOOST_TEST(rs[2]->last_version == 3u);
  BOOST_TEST(version_of(*mem, "s-1") == 3u);
}

BOOST_FIXTURE_TEST_CASE(a_batch_whose_every_request_fails_reaches_no_journal, fixture) {
  fj.reject_nth_append(1).reject_nth_append(2);
  std::vector<append_request> batch{one_event("s-1"), one_event("s-1")};
  auto rs = fj.append_batch(batch);
  BOOST_REQUIRE(rs.size() == 2u);
  BOOST_TEST(!rs[0].has_value());
  BOOST_TEST(!rs[1].has_value());
  auto last = mem->last_position();
  BOOST_REQUIRE(last);
  BOOST_TEST(*last == 0u);
}

BOOST_FIXTURE_TEST_CASE(clear_rules_drops_rules_that_have_not_fired, fixture) {
  fj.fail_nth_append(1).delay_nth_append(1, 5s);
  fj.clear_rules();
  auto t0 = std::chrono::steady_clock::now();
  BOOST_TEST(fj.append(one_event("s-1")).has_value());
  BOOST_CHECK(std::chrono::steady_clock::now() - t0 < 4s);
}

BOOST_FIXTURE_TEST_CASE(a_delayed_append_is_answered_after_the_delay, fixture) {
  fj.delay_nth_append(1, 60ms);
  auto t0 = std::chrono::steady_clock::now();
  BOOST_TEST(fj.append(one_event("s-1")).has_value());
  BOOST_CHECK(std::chrono::steady_clock::now() - t0 >= 60ms);
  // A batch sleeps once, for its longest matching delay.
  fj.delay_nth_append(2, 30ms).delay_nth_append(3, 50ms);
  std::vector<append_request> batch{one_event("s-1"), one_event("s-1")};
  t0 = std::chrono::steady_clock::now();
  auto rs = fj.append_batch(batch);
  auto took = std::chrono::steady_clock::now() - t0;
  BOOST_TEST(rs[0].has_value());
  BOOST_TEST(rs[1].has_value());
  BOOST_CHECK(took >= 50ms);
  BOOST_CHECK(took < 5s);
}

BOOST_FIXTURE_TEST_CASE(a_delay_and_a_failure_combine, fixture) {
  fj.delay_nth_append(1, 20ms).fail_nth_append(1);
  auto t0 = std::chrono::steady_clock::now();
  auto r = fj.append(one_event("s-1"));
  BOOST_TEST(!r.has_value());
  BOOST_CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);
}

BOOST_FIXTURE_TEST_CASE(a_held_append_is_answered_only_after_release, fixture) {
  fj.hold();
  auto fut = std::async(std::launch::async, [&] { return fj.append(one_event("s-1")); });
  BOOST_REQUIRE(fj.wait_held(1, wait_bound));
  BOOST_TEST(fj.appends() == 1u); // numbered on entry
  BOOST_CHECK(fut.wait_for(20ms) == std::future_status::timeout);
  BOOST_TEST(version_of(*mem, "s-1") == 0u); // nothing reached the journal yet
  fj.release();
  BOOST_REQUIRE(fut.wait_for(wait_bound) == std::future_status::ready);
  BOOST_TEST(fut.get().has_value());
  BOOST_TEST(fj.held() == 0u);
  BOOST_TEST(fj.expired_holds() == 0u);
  // Released means released: the next append does not wait.
  BOOST_TEST(fj.append(one_event("s-1")).has_value());
}

BOOST_FIXTURE_TEST_CASE(hold_applies_to_batches_and_to_several_callers, fixture) {
  fj.hold();
  auto a = std::async(std::launch::async, [&] { return fj.append(one_event("s-1")); });
  auto b = std::async(std::launch::async, [&] {
    std::vector<append_request> batch{one_event("s-2"), one_event("s-3")};
    return fj.append_batch(batch);
  });
  BOOST_REQUIRE(fj.wait_held(2, wait_bound));
  BOOST_TEST(fj.wait_appends(3, wait_bound));
  fj.release();
  BOOST_REQUIRE(a.wait_for(wait_bound) == std::future_status::ready);
  BOOST_REQUIRE(b.wait_for(wait_bound) == std::future_status::ready);
  BOOST_TEST(a.get().has_value());
  auto rs = b.get();
  BOOST_REQUIRE(rs.size() == 2u);
  BOOST_TEST(rs[0].has_value());
  BOOST_TEST(rs[1].has_value());
}

BOOST_FIXTURE_TEST_CASE(a_rule_armed_while_an_append_is_held_still_applies, fixture) {
  fj.hold();
  auto fut = std::async(std::launch::async, [&] { return fj.append(one_event("s-1")); });
  BOOST_REQUIRE(fj.wait_held(1, wait_bound));
  fj.fail_nth_append(fj.appends());
  fj.release();
  BOOST_REQUIRE(fut.wait_for(wait_bound) == std::future_status::ready);
  auto r = fut.get();
  BOOST_REQUIRE(!r);
  BOOST_TEST(code_of(r.err()) == "io_error");
}

BOOST_FIXTURE_TEST_CASE(a_forgotten_hold_expires_instead_of_hanging, fixture) {
  fj.hold_timeout(50ms);
  BOOST_CHECK(fj.hold_timeout() == 50ms);
  fj.hold();
  auto t0 = std::chrono::steady_clock::now();
  auto r = fj.append(one_event("s-1"));
  auto took = std::chrono::steady_clock::now() - t0;
  BOOST_TEST(r.has_value());
  BOOST_CHECK(took >= 50ms);
  BOOST_CHECK(took < 5s);
  BOOST_TEST(fj.expired_holds() == 1u);
  fj.release();
}

BOOST_FIXTURE_TEST_CASE(reads_are_not_held, fixture) {
  BOOST_REQUIRE(fj.append(one_event("s-1")));
  fj.hold();
  auto fut = std::async(std::launch::async, [&] { return fj.append(one_event("s-1")); });
  BOOST_REQUIRE(fj.wait_held(1, wait_bound));
  auto events = fj.read_stream("s-1");
  BOOST_REQUIRE(events);
  BOOST_TEST(events->size() == 1u);
  fj.release();
  BOOST_REQUIRE(fut.wait_for(wait_bound) == std::future_status::ready);
  BOOST_TEST(fut.get().has_value());
}

BOOST_AUTO_TEST_CASE(durability_is_deferred_unless_a_journal_says_otherwise) {
  // The journal writer answers at once only when defers_durability() is false: the
  // memory journal says so; a decorator that does not forward the query keeps the safe
  // default and has its answers held for a sync().
  auto inner = std::make_shared<memory_journal>();
  BOOST_TEST(!inner->defers_durability());
  failing_journal decorated{inner};
  BOOST_TEST(decorated.defers_durability());
}

BOOST_AUTO_TEST_SUITE_END()
