// The journal contract, checked against every implementation: each case runs once per
// factory in `factories`. A rule belongs here when both journals must keep it; what only
// the LMDB journal does (files, reopening, verify) has its own cases at the end or in
// tests/persistence/lmdb_journal.cpp.

#include <boost/test/unit_test.hpp>

#include "evident/persistence/lmdb_journal.hpp"
#include "evident/persistence/memory_journal.hpp"

#include "support/temp_dir.hpp"

#include <boost/mpl/list.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace evident {

// Boost.Test prints values of failed assertions through these.
std::ostream& boost_test_print_type(std::ostream& os, errc x) {
  return os << to_string(x);
}

std::ostream& boost_test_print_type(std::ostream& os, stream_state x) {
  return os << to_string(x);
}

std::ostream& boost_test_print_type(std::ostream& os, const append_result& x) {
  return os << "{versions " << x.first_version << ".." << x.last_version << ", positions "
            << x.first_position << ".." << x.last_position << (x.duplicate ? ", dup}" : "}");
}

} // namespace evident

using namespace evident;

namespace {

// -- factories ------------------------------------------------------------------------

// Each factory builds a fresh, empty journal with the limits of the options it is given.

struct memory_factory {
  explicit memory_factory(journal_options opts = {})
    : ptr(std::make_shared<memory_journal>(std::move(opts))) {
    // nop
  }

  journal& get() {
    return *ptr;
  }

  std::shared_ptr<memory_journal> ptr;
};

struct lmdb_factory {
  explicit lmdb_factory(journal_options base = {}) : opts(std::move(base)) {
    opts.path = dir.sub("j");
    opts.sync = durability::no_sync; // nothing here survives a machine crash anyway
    open();
  }

  journal& get() {
    return *ptr;
  }

  void open() {
    auto j = lmdb_journal::open(opts);
    if (!j.has_value())
      BOOST_FAIL("open failed: " << to_string(j.err()));
    ptr = std::move(j).value();
  }

  /// Closes the journal and opens the same directory again.
  void reopen() {
    ptr.reset();
    open();
  }

  test::temp_dir dir;
  journal_options opts;
  std::shared_ptr<lmdb_journal> ptr;
};

journal_options with_index_lag(journal_options opts, uint64_t lag) {
  opts.index_lag_events = lag;
  return opts;
}

/// The LMDB journal with an index lag of 2 events, so that every case reads across both
/// the bulk-written index and the in-memory tail (the default lag of 100,000 keeps
/// small cases entirely in the tail).
struct lmdb_small_lag_factory : lmdb_factory {
  explicit lmdb_small_lag_factory(journal_options base = {})
    : lmdb_factory(with_index_lag(std::move(base), 2)) {
    // nop
  }
};

using factories = boost::mpl::list<memory_factory, lmdb_factory, lmdb_small_lag_factory>;
using lmdb_factories = boost::mpl::list<lmdb_factory, lmdb_small_lag_factory>;

/// Limits small enough that the limit cases need only small data.
journal_options small_limits() {
  journal_options opts;
  opts.max_event_bytes = 1024;
  opts.max_append_events = 8;
  opts.max_append_bytes = 4096;
  opts.max_stream_id_bytes = 32;
  opts.max_id_bytes = 32;
  return opts;
}

// -- building requests ----------------------------------------------------------------

const auto any = expected_version::any();
const auto no_stream = expected_version::no_stream();
const auto stream_exists = expected_version::stream_exists();
expected_version exact(uint64_t n) {
  return expected_version::exact(n);
}

event_data make_event(std::string type = "test.happened", std::string payload = "x") {
  event_data result;
  result.type = std::move(type);
  result.payload = std::move(payload);
  return result;
}

/// `n` events typed "e1", "e2", ... with payloads "p1", "p2", ...
append_request make_request(std::string stream, expected_version ev, size_t n,
                            std::string command_id = {}) {
  append_request result;
  result.stream = std::move(stream);
  result.expected = ev;
  result.command_id = std::move(command_id);
  for (size_t i = 1; i <= n; ++i)
    result.events.push_back(make_event("e" + std::to_string(i), "p" + std::to_string(i)));
  return result;
}

// -- checking results -----------------------------------------------------------------

// Boost.Test builds an assertion's message even when the assertion holds, so a message
// that reads the error must sit behind an `if`.

template <class T>
T must(expected<T> x) {
  if (!x.has_value())
    BOOST_FAIL("unexpected error: " << to_string(x.err()));
  return std::move(x).value();
}

void must(const status& x) {
  if (x)
    BOOST_FAIL("unexpected error: " << to_string(x));
}

errc code_of(const status& x) {
  return x.code;
}

template <class T>
errc code_of(const expected<T>& x) {
  return x.has_value() ? errc::none : x.err().code;
}

/// Appends and requires success.
append_result put(journal& j, std::string stream, expected_version ev, size_t n,
                  std::string command_id = {}) {
  return must(j.append(make_request(std::move(stream), ev, n, std::move(command_id))));
}

void check_result(const append_result& r, uint64_t first_version, uint64_t last_version,
                  uint64_t first_position, uint64_t last_position) {
  BOOST_TEST(r.first_version == first_version);
  BOOST_TEST(r.last_version == last_version);
  BOOST_TEST(r.first_position == first_position);
  BOOST_TEST(r.last_position == last_position);
}

void check_conflict(const expected<append_result>& r, const std::string& expected_text,
                    uint64_t actual) {
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(r.err().code == errc::wrong_expected_version);
  BOOST_TEST(r.err().expected == expected_text);
  BOOST_REQUIRE(r.err().actual.has_value());
  BOOST_TEST(*r.err().actual == actual);
}

void check_head(journal& j, const std::string& stream, uint64_t version, stream_state state,
                uint64_t truncate_before) {
  auto h = must(j.head(stream));
  BOOST_TEST(h.stream == stream);
  BOOST_TEST(h.version == version);
  BOOST_TEST(h.state == state);
  BOOST_TEST(h.truncate_before == truncate_before);
}

std::vector<uint64_t> versions(const std::vector<recorded_event>& xs) {
  std::vector<uint64_t> result;
  for (auto& x : xs)
    result.push_back(x.version);
  return result;
}

std::vector<uint64_t> positions(const std::vector<recorded_event>& xs) {
  std::vector<uint64_t> result;
  for (auto& x : xs)
    result.push_back(x.position);
  return result;
}

/// The versions a read of `stream` visits; requires the read to succeed.
std::vector<uint64_t> read_versions(journal& j, const std::string& stream,
                                    const read_options& opts = {}) {
  return versions(must(j.read_stream(stream, opts)));
}

using vs = std::vector<uint64_t>;

std::string describe(const recorded_event& e) {
  std::string result = std::to_string(e.position) + "|" + e.stream + "|"
                       + std::to_string(e.version) + "|" + e.type + "|"
                       + std::to_string(e.schema) + "|" + std::to_string(e.time_ns) + "|"
                       + e.event_id.to_string() + "|" + e.correlation_id + "|"
                       + e.causation_id + "|" + e.command_id + "|";
  for (auto& [k, v] : e.meta)
    result += k + "=" + v + ";";
  return result + "|" + e.payload;
}

std::string describe(const stream_head& h) {
  return h.stream + "|" + std::to_string(h.version) + "|" + std::string{to_string(h.state)}
         + "|" + std::to_string(h.truncate_before);
}

/// One line for a list, so a failed comparison shows both sides in full.
std::string joined(const std::vector<std::string>& xs) {
  std::string result;
  for (auto& x : xs)
    result += "[" + x + "]";
  return result;
}

/// Everything a caller can observe of a journal, for before/after comparisons.
struct observed {
  uint64_t last_position = 0;
  std::vector<std::string> log;
  std::vector<std::string> heads;
};

observed observe(journal& j) {
  observed result;
  result.last_position = must(j.last_position());
  for (auto& e : must(j.read_all()))
    result.log.push_back(describe(e));
  for (auto& h : must(j.streams()))
    result.heads.push_back(describe(h));
  return result;
}

void check_unchanged(journal& j, const observed& before) {
  auto after = observe(j);
  BOOST_TEST(after.last_position == before.last_position);
  BOOST_TEST(after.log == before.log, boost::test_tools::per_element());
  BOOST_TEST(joined(after.heads) == joined(before.heads));
}

} // namespace

BOOST_AUTO_TEST_SUITE(journal_conformance)

// -- expected version on a new stream -------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(append_any_on_new_stream_starts_at_version_and_position_1,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  auto r = must(j.append(make_request("s", any, 1)));
  check_result(r, 1, 1, 1, 1);
  BOOST_TEST(!r.duplicate);
  check_head(j, "s", 1, stream_state::live, 0);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_no_stream_on_new_stream_succeeds, Factory, factories) {
  Factory f;
  auto& j = f.get();
  check_result(put(j, "s", no_stream, 2), 1, 2, 1, 2);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_exact_0_on_new_stream_succeeds, Factory, factories) {
  Factory f;
  auto& j = f.get();
  check_result(put(j, "s", exact(0), 1), 1, 1, 1, 1);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_stream_exists_on_new_stream_conflicts, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  check_conflict(j.append(make_request("s", stream_exists, 1)), "stream_exists", 0);
  check_head(j, "s", 0, stream_state::live, 0);
  BOOST_TEST(must(j.last_position()) == 0u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_exact_nonzero_on_new_stream_conflicts, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  check_conflict(j.append(make_request("s", exact(2), 1)), "2", 0);
  BOOST_TEST(must(j.last_position()) == 0u);
}

// -- expected version on a live stream ------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(append_any_on_live_stream_continues_numbering, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  check_result(put(j, "s", any, 2), 3, 4, 3, 4);
  check_head(j, "s", 4, stream_state::live, 0);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_with_no_stream_on_existing_stream_conflicts, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  check_conflict(j.append(make_request("s", no_stream, 1)), "no_stream", 2);
  check_head(j, "s", 2, stream_state::live, 0);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_stream_exists_on_live_stream_succeeds, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  check_result(put(j, "s", stream_exists, 1), 3, 3, 3, 3);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_exact_current_version_on_live_stream_succeeds, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  check_result(put(j, "s", exact(2), 1), 3, 3, 3, 3);
  check_result(put(j, "s", exact(3), 2), 4, 5, 4, 5);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_exact_other_version_on_live_stream_conflicts, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  check_conflict(j.append(make_request("s", exact(0), 1)), "0", 2);
  check_conflict(j.append(make_request("s", exact(1), 1)), "1", 2);
  check_conflict(j.append(make_request("s", exact(3), 1)), "3", 2);
  check_head(j, "s", 2, stream_state::live, 0);
  BOOST_TEST(must(j.last_position()) == 2u);
}

// -- expected version on a soft-deleted stream ----------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(append_any_on_soft_deleted_stream_continues_numbering,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  must(j.soft_delete("s"));
  check_result(put(j, "s", any, 1), 3, 3, 3, 3);
  check_head(j, "s", 3, stream_state::live, 3);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_no_stream_on_soft_deleted_stream_succeeds, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  must(j.soft_delete("s"));
  check_result(put(j, "s", no_stream, 1), 3, 3, 3, 3);
  check_head(j, "s", 3, stream_state::live, 3);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_stream_exists_on_soft_deleted_stream_conflicts,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  must(j.soft_delete("s"));
  check_conflict(j.append(make_request("s", stream_exists, 1)), "stream_exists", 2);
  check_head(j, "s", 2, stream_state::soft_deleted, 3);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_exact_on_soft_deleted_stream_checks_the_kept_version,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  must(j.soft_delete("s"));
  check_conflict(j.append(make_request("s", exact(0), 1)), "0", 2);
  check_head(j, "s", 2, stream_state::soft_deleted, 3);
  check_result(put(j, "s", exact(2), 1), 3, 3, 3, 3);
}

// -- expected version on a tombstoned stream ------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(append_on_tombstoned_stream_fails_with_stream_deleted, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  must(j.tombstone("s"));
  auto before = observe(j);
  for (auto ev : {any, no_stream, stream_exists, exact(0), exact(2), exact(3)}) {
    BOOST_TEST_CONTEXT("expected " << to_string(ev)) {
      BOOST_TEST(code_of(j.append(make_request("s", ev, 1))) == errc::stream_deleted);
      BOOST_TEST(code_of(j.append(make_request("s", ev, 0))) == errc::stream_deleted);
    }
  }
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_on_tombstoned_never_written_stream_fails_with_stream_deleted,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  must(j.tombstone("s"));
  BOOST_TEST(code_of(j.append(make_request("s", any, 1))) == errc::stream_deleted);
  BOOST_TEST(code_of(j.append(make_request("s", no_stream, 1))) == errc::stream_deleted);
  BOOST_TEST(code_of(j.append(make_request("s", exact(0), 1))) == errc::stream_deleted);
  BOOST_TEST(must(j.last_position()) == 0u);
  check_head(j, "s", 0, stream_state::tombstoned, 1);
}

// -- zero-event appends ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(zero_event_append_writes_nothing_and_does_not_create_the_stream,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  auto r = must(j.append(make_request("s", no_stream, 0)));
  check_result(r, 0, 0, 0, 0);
  BOOST_TEST(!r.duplicate);
  check_head(j, "s", 0, stream_state::live, 0);
  BOOST_TEST(joined(observe(j).heads) == ""); // no head, not even at version 0
  BOOST_TEST(must(j.last_position()) == 0u);
  BOOST_TEST(code_of(j.read_stream("s")) == errc::stream_not_found);
  // The stream still counts as new.
  check_result(put(j, "s", no_stream, 1), 1, 1, 1, 1);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(zero_event_append_on_live_stream_reports_current_version,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "other", any, 1);
  put(j, "s", any, 3);
  auto before = observe(j);
  check_result(must(j.append(make_request("s", exact(3), 0))), 3, 3, 0, 0);
  check_result(must(j.append(make_request("s", stream_exists, 0))), 3, 3, 0, 0);
  check_result(must(j.append(make_request("s", any, 0))), 3, 3, 0, 0);
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(zero_event_append_still_checks_expected_version, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  check_conflict(j.append(make_request("new", stream_exists, 0)), "stream_exists", 0);
  check_conflict(j.append(make_request("new", exact(1), 0)), "1", 0);
  put(j, "s", any, 2);
  check_conflict(j.append(make_request("s", no_stream, 0)), "no_stream", 2);
  check_conflict(j.append(make_request("s", exact(1), 0)), "1", 2);
  BOOST_TEST(must(j.last_position()) == 2u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(zero_event_append_on_soft_deleted_stream_keeps_it_deleted,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  must(j.soft_delete("s"));
  check_result(must(j.append(make_request("s", no_stream, 0))), 2, 2, 0, 0);
  check_head(j, "s", 2, stream_state::soft_deleted, 3);
  BOOST_TEST(code_of(j.read_stream("s")) == errc::stream_not_found);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(zero_event_append_records_no_command_id, Factory, factories) {
  Factory f;
  auto& j = f.get();
  auto empty = must(j.append(make_request("s", any, 0, "cmd")));
  BOOST_TEST(!empty.duplicate);
  auto r = must(j.append(make_request("s", any, 2, "cmd")));
  BOOST_TEST(!r.duplicate);
  check_result(r, 1, 2, 1, 2);
  BOOST_TEST(must(j.last_position()) == 2u);
}

// -- atomic multi-event appends -------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(multi_event_append_assigns_consecutive_versions_and_positions,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  check_result(put(j, "s", no_stream, 3), 1, 3, 1, 3);
  auto events = must(j.read_stream("s"));
  BOOST_TEST(versions(events) == vs({1, 2, 3}), boost::test_tools::per_element());
  BOOST_TEST(positions(events) == vs({1, 2, 3}), boost::test_tools::per_element());
  BOOST_REQUIRE_EQUAL(events.size(), 3u);
  BOOST_TEST(events[0].type == "e1");
  BOOST_TEST(events[1].type == "e2");
  BOOST_TEST(events[2].type == "e3");
  BOOST_TEST(events[2].payload == "p3");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_stores_every_field_as_given, Factory, factories) {
  Factory f;
  auto& j = f.get();
  event_data e;
  e.type = "bank.deposited";
  e.schema = 3;
  e.payload = std::string{"\x00\x01\xff payload", 11};
  e.event_id = *uuid::parse("0f8fad5b-d9cb-469f-a165-70867728950e");
  e.correlation_id = "corr-1";
  e.causation_id = "cause-1";
  e.meta = {{"z", "last"}, {"a", "first"}, {"empty", ""}};
  e.time_ns = 1'700'000'000'123'456'789;
  append_request req;
  req.stream = "account-1";
  req.command_id = "cmd-1";
  req.events = {e};
  must(j.append(req));
  for (auto& got : {must(j.read_stream("account-1")), must(j.read_all())}) {
    BOOST_REQUIRE_EQUAL(got.size(), 1u);
    auto& r = got[0];
    BOOST_TEST(r.position == 1u);
    BOOST_TEST(r.stream == "account-1");
    BOOST_TEST(r.version == 1u);
    BOOST_TEST(r.type == e.type);
    BOOST_TEST(r.schema == 3u);
    BOOST_TEST(r.payload == e.payload);
    BOOST_TEST(r.event_id.to_string() == "0f8fad5b-d9cb-469f-a165-70867728950e");
    BOOST_TEST(r.correlation_id == "corr-1");
    BOOST_TEST(r.causation_id == "cause-1");
    BOOST_TEST(r.command_id == "cmd-1");
    BOOST_TEST(r.time_ns == e.time_ns);
    BOOST_REQUIRE_EQUAL(r.meta.size(), 3u);
    BOOST_TEST(r.meta[0].first == "z");
    BOOST_TEST(r.meta[0].second == "last");
    BOOST_TEST(r.meta[1].first == "a");
    BOOST_TEST(r.meta[2].first == "empty");
    BOOST_TEST(r.meta[2].second == "");
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_fills_nil_event_id_and_zero_time, Factory, factories) {
  Factory f;
  auto& j = f.get();
  using namespace std::chrono;
  auto now = [] {
    return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
  };
  auto before = now();
  put(j, "s", any, 2);
  auto after = now();
  auto events = must(j.read_stream("s"));
  BOOST_REQUIRE_EQUAL(events.size(), 2u);
  for (auto& e : events) {
    BOOST_TEST(!e.event_id.is_nil());
    BOOST_TEST(e.time_ns >= before);
    BOOST_TEST(e.time_ns <= after);
    BOOST_TEST(e.command_id == "");
  }
  BOOST_TEST(events[0].event_id.to_string() != events[1].event_id.to_string());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(refused_event_in_multi_event_append_stores_none_of_them,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 1);
  auto before = observe(j);
  auto req = make_request("s", any, 3, "cmd");
  req.events[2].type.clear();
  BOOST_TEST(code_of(j.append(req)) == errc::invalid_input);
  check_unchanged(j, before);
  // The command id was not recorded either: the corrected request writes.
  req.events[2].type = "e3";
  auto r = must(j.append(req));
  BOOST_TEST(!r.duplicate);
  check_result(r, 2, 4, 2, 4);
}

// -- idempotent retries by command id -------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(retry_with_same_command_id_returns_first_result_and_writes_nothing,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 1);
  auto first = put(j, "s", exact(1), 2, "cmd");
  BOOST_TEST(!first.duplicate);
  check_result(first, 2, 3, 2, 3);
  auto before = observe(j);
  auto retry = must(j.append(make_request("s", exact(1), 2, "cmd")));
  BOOST_TEST(retry.duplicate);
  BOOST_TEST(retry == first);
  check_result(retry, 2, 3, 2, 3);
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(find_command_returns_the_result_a_retry_would_get, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 1);
  auto first = put(j, "s", exact(1), 2, "cmd");
  auto found = j.find_command("s", "cmd");
  BOOST_REQUIRE(found.has_value());
  BOOST_REQUIRE(found->has_value());
  BOOST_TEST(**found == first);
  // Unknown ids, ids of other streams and the empty id find nothing.
  BOOST_TEST(!j.find_command("s", "other")->has_value());
  BOOST_TEST(!j.find_command("t", "cmd")->has_value());
  BOOST_TEST(!j.find_command("s", "")->has_value());
  BOOST_TEST((j.find_command("", "cmd").err().code == errc::invalid_input));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(retry_with_known_command_id_ignores_a_now_wrong_expected_version,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  auto first = put(j, "s", no_stream, 1, "cmd");
  put(j, "s", any, 2); // the stream moves on after the first attempt
  auto before = observe(j);
  for (auto ev : {no_stream, exact(0), exact(7), stream_exists, any}) {
    BOOST_TEST_CONTEXT("expected " << to_string(ev)) {
      auto retry = must(j.append(make_request("s", ev, 1, "cmd")));
      BOOST_TEST(retry.duplicate);
      BOOST_TEST(retry == first);
    }
  }
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(retry_answers_the_stored_result_whatever_the_events, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  auto first = put(j, "s", any, 2, "cmd");
  auto before = observe(j);
  // A retry carrying a different number of events (even none) is still the same command.
  for (size_t n : {0u, 1u, 5u}) {
    auto retry = must(j.append(make_request("s", any, n, "cmd")));
    BOOST_TEST(retry.duplicate);
    BOOST_TEST(retry == first);
    check_result(retry, 1, 2, 1, 2);
  }
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(same_command_id_on_different_streams_is_independent, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  auto a = put(j, "a", any, 1, "cmd");
  auto b = put(j, "b", any, 2, "cmd");
  BOOST_TEST(!a.duplicate);
  BOOST_TEST(!b.duplicate);
  check_result(a, 1, 1, 1, 1);
  check_result(b, 1, 2, 2, 3);
  auto retry_a = must(j.append(make_request("a", any, 1, "cmd")));
  auto retry_b = must(j.append(make_request("b", any, 1, "cmd")));
  BOOST_TEST(retry_a.duplicate);
  BOOST_TEST(retry_a == a);
  BOOST_TEST(retry_b.duplicate);
  BOOST_TEST(retry_b == b);
  BOOST_TEST(must(j.last_position()) == 3u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(different_command_ids_on_one_stream_both_write, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  auto x = put(j, "s", any, 1, "cmd-1");
  auto y = put(j, "s", any, 1, "cmd-2");
  BOOST_TEST(!y.duplicate);
  check_result(x, 1, 1, 1, 1);
  check_result(y, 2, 2, 2, 2);
  auto events = must(j.read_stream("s"));
  BOOST_REQUIRE_EQUAL(events.size(), 2u);
  BOOST_TEST(events[0].command_id == "cmd-1");
  BOOST_TEST(events[1].command_id == "cmd-2");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(refused_append_records_no_command_id, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 1);
  check_conflict(j.append(make_request("s", no_stream, 1, "cmd")), "no_stream", 1);
  // The retry with a fixed expectation is a first attempt, not a duplicate.
  auto r = must(j.append(make_request("s", exact(1), 1, "cmd")));
  BOOST_TEST(!r.duplicate);
  check_result(r, 2, 2, 2, 2);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(retry_after_soft_delete_and_tombstone_returns_stored_result,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  auto first = put(j, "s", any, 2, "cmd");
  must(j.soft_delete("s"));
  auto retry = must(j.append(make_request("s", any, 2, "cmd")));
  BOOST_TEST(retry.duplicate);
  BOOST_TEST(retry == first);
  check_head(j, "s", 2, stream_state::soft_deleted, 3);
  // The command-id check comes first, before the stream's state is looked at.
  must(j.tombstone("s"));
  retry = must(j.append(make_request("s", any, 2, "cmd")));
  BOOST_TEST(retry.duplicate);
  BOOST_TEST(retry == first);
  BOOST_TEST(must(j.head("s")).state == stream_state::tombstoned);
  BOOST_TEST(must(j.last_position()) == 2u);
}

// -- global positions -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(positions_are_gap_free_across_streams, Factory, factories) {
  Factory f;
  auto& j = f.get();
  check_result(put(j, "a", any, 2), 1, 2, 1, 2);
  check_result(put(j, "b", any, 1), 1, 1, 3, 3);
  BOOST_TEST(code_of(j.append(make_request("b", no_stream, 1))) == errc::wrong_expected_version);
  check_result(put(j, "a", any, 1), 3, 3, 4, 4);
  check_result(put(j, "c", any, 3), 1, 3, 5, 7);
  auto all = must(j.read_all());
  BOOST_TEST(positions(all) == vs({1, 2, 3, 4, 5, 6, 7}), boost::test_tools::per_element());
  BOOST_TEST(versions(all) == vs({1, 2, 1, 3, 1, 2, 3}), boost::test_tools::per_element());
  std::vector<std::string> ids;
  for (auto& e : all)
    ids.push_back(e.stream);
  BOOST_TEST(ids == std::vector<std::string>({"a", "a", "b", "a", "c", "c", "c"}),
             boost::test_tools::per_element());
  BOOST_TEST(positions(must(j.read_stream("a"))) == vs({1, 2, 4}),
             boost::test_tools::per_element());
  BOOST_TEST(must(j.last_position()) == 7u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(last_position_counts_events_and_ignores_refusals_and_deletes,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  BOOST_TEST(must(j.last_position()) == 0u);
  put(j, "a", any, 3);
  BOOST_TEST(must(j.last_position()) == 3u);
  BOOST_TEST(code_of(j.append(make_request("a", exact(1), 1))) == errc::wrong_expected_version);
  BOOST_TEST(must(j.last_position()) == 3u);
  must(j.delete_to("a", 2));
  must(j.soft_delete("a"));
  must(j.tombstone("a"));
  BOOST_TEST(must(j.last_position()) == 3u);
  put(j, "b", any, 1);
  BOOST_TEST(must(j.last_position()) == 4u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_all_starts_at_a_position_and_stops_at_max_count, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "a", any, 3);
  put(j, "b", any, 3);
  BOOST_TEST(positions(must(j.read_all(0))) == vs({1, 2, 3, 4, 5, 6}),
             boost::test_tools::per_element());
  BOOST_TEST(positions(must(j.read_all(1))) == vs({1, 2, 3, 4, 5, 6}),
             boost::test_tools::per_element());
  BOOST_TEST(positions(must(j.read_all(4))) == vs({4, 5, 6}), boost::test_tools::per_element());
  BOOST_TEST(positions(must(j.read_all(2, 3))) == vs({2, 3, 4}),
             boost::test_tools::per_element());
  BOOST_TEST(positions(must(j.read_all(6))) == vs({6}), boost::test_tools::per_element());
  BOOST_TEST(must(j.read_all(7)).empty());
  BOOST_TEST(must(j.read_all(1000)).empty());
  BOOST_TEST(must(j.read_all(1, 0)).empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_all_of_empty_journal_is_empty, Factory, factories) {
  Factory f;
  auto& j = f.get();
  BOOST_TEST(must(j.read_all()).empty());
  BOOST_TEST(must(j.last_position()) == 0u);
  BOOST_TEST(must(j.streams()).empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_all_visitor_can_stop_early, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "a", any, 5);
  std::vector<uint64_t> seen;
  must(j.read_all(2, 100, [&](const recorded_event& e) {
    seen.push_back(e.position);
    return e.position < 3;
  }));
  BOOST_TEST(seen == vs({2, 3}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_all_includes_deleted_events, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "a", any, 3);
  put(j, "b", any, 2);
  put(j, "c", any, 1);
  auto before = observe(j);
  must(j.delete_to("a", 2));
  must(j.soft_delete("b"));
  must(j.tombstone("c"));
  auto after = observe(j);
  BOOST_TEST(after.log == before.log, boost::test_tools::per_element());
  BOOST_TEST(after.log.size() == 6u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(concurrent_appends_keep_positions_gap_free, Factory, factories) {
  Factory f;
  auto& j = f.get();
  constexpr size_t threads = 4;
  constexpr size_t rounds = 25;
  // Boost.Test assertions are not thread-safe: the workers only count failures.
  std::atomic<size_t> failures{0};
  std::vector<std::thread> workers;
  for (size_t t = 0; t < threads; ++t)
    workers.emplace_back([&j, &failures, t] {
      for (size_t i = 0; i < rounds; ++i) {
        if (!j.append(make_request("own-" + std::to_string(t), any, 2)).has_value())
          ++failures;
        if (!j.append(make_request("shared", any, 1)).has_value())
          ++failures;
      }
    });
  for (auto& w : workers)
    w.join();
  BOOST_TEST(failures.load() == 0u);
  auto all = must(j.read_all());
  BOOST_REQUIRE_EQUAL(all.size(), threads * rounds * 3);
  std::map<std::string, uint64_t> last_version;
  for (size_t i = 0; i < all.size(); ++i) {
    BOOST_TEST(all[i].position == i + 1);
    // Within a stream, versions rise by one in log order.
    BOOST_TEST(all[i].version == ++last_version[all[i].stream]);
  }
  BOOST_TEST(last_version["shared"] == threads * rounds);
  BOOST_TEST(must(j.head("own-0")).version == rounds * 2);
}

// -- read windows ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(read_forward_by_default_visits_the_whole_stream, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 3);
  put(j, "other", any, 1);
  put(j, "s", any, 2);
  auto events = must(j.read_stream("s"));
  BOOST_TEST(versions(events) == vs({1, 2, 3, 4, 5}), boost::test_tools::per_element());
  BOOST_TEST(positions(events) == vs({1, 2, 3, 5, 6}), boost::test_tools::per_element());
  for (auto& e : events)
    BOOST_TEST(e.stream == "s");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_forward_honors_from_to_and_max_count, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 6);
  BOOST_TEST(read_versions(j, "s", {.from = 3}) == vs({3, 4, 5, 6}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.to = 2}) == vs({1, 2}), boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.from = 2, .to = 4}) == vs({2, 3, 4}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.from = 2, .to = 5, .max_count = 2}) == vs({2, 3}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.max_count = 1}) == vs({1}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.from = 4, .to = 4}) == vs({4}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.from = 0}) == vs({1, 2, 3, 4, 5, 6}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_backward_by_default_starts_at_the_last_event, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 4);
  auto events = must(j.read_stream("s", {.dir = direction::backward}));
  BOOST_TEST(versions(events) == vs({4, 3, 2, 1}), boost::test_tools::per_element());
  BOOST_TEST(positions(events) == vs({4, 3, 2, 1}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_backward_honors_from_to_and_max_count, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 6);
  auto back = direction::backward;
  BOOST_TEST(read_versions(j, "s", {.dir = back, .from = 4}) == vs({4, 3, 2, 1}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.dir = back, .to = 5}) == vs({6, 5}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.dir = back, .from = 5, .to = 2}) == vs({5, 4, 3, 2}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.dir = back, .from = 5, .to = 2, .max_count = 3})
               == vs({5, 4, 3}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.dir = back, .max_count = 2}) == vs({6, 5}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(inverted_window_is_empty_not_an_error, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 5);
  BOOST_TEST(read_versions(j, "s", {.from = 4, .to = 2}).empty());
  BOOST_TEST(read_versions(j, "s", {.dir = direction::backward, .from = 2, .to = 4}).empty());
  BOOST_TEST(read_versions(j, "s", {.max_count = 0}).empty());
  BOOST_TEST(read_versions(j, "s", {.dir = direction::backward, .max_count = 0}).empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_from_beyond_the_end, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 3);
  // Forward from past the last event: nothing yet.
  BOOST_TEST(read_versions(j, "s", {.from = 4}).empty());
  BOOST_TEST(read_versions(j, "s", {.from = 100, .to = 200}).empty());
  // Backward from past the end starts at the last event; `to` past the end clips.
  BOOST_TEST(read_versions(j, "s", {.dir = direction::backward, .from = 100}) == vs({3, 2, 1}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.from = 2, .to = 100}) == vs({2, 3}),
             boost::test_tools::per_element());
  BOOST_TEST(
    read_versions(j, "s", {.from = std::numeric_limits<uint64_t>::max()}).empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_stream_visitor_can_stop_early, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 5);
  std::vector<uint64_t> seen;
  must(j.read_stream("s", {.dir = direction::backward}, [&](const recorded_event& e) {
    seen.push_back(e.version);
    return seen.size() < 2;
  }));
  BOOST_TEST(seen == vs({5, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_of_never_written_stream_is_stream_not_found, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "other", any, 1);
  bool called = false;
  auto err = j.read_stream("s", {}, [&](const recorded_event&) {
    called = true;
    return true;
  });
  BOOST_TEST(err.code == errc::stream_not_found);
  BOOST_TEST(!called);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(window_crossing_a_deleted_prefix_returns_only_survivors,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 6);
  must(j.delete_to("s", 3));
  auto back = direction::backward;
  BOOST_TEST(read_versions(j, "s") == vs({4, 5, 6}), boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.from = 1}) == vs({4, 5, 6}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.from = 2, .to = 4}) == vs({4}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.from = 1, .to = 3}).empty());
  BOOST_TEST(read_versions(j, "s", {.from = 1, .max_count = 2}) == vs({4, 5}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.dir = back}) == vs({6, 5, 4}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.dir = back, .from = 5, .to = 1}) == vs({5, 4}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.dir = back, .from = 3}).empty());
  BOOST_TEST(read_versions(j, "s", {.dir = back, .to = 2, .max_count = 10}) == vs({6, 5, 4}),
             boost::test_tools::per_element());
}

// -- delete_to and truncate_before ----------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(delete_to_deletes_versions_up_to_n, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 5);
  must(j.delete_to("s", 2));
  check_head(j, "s", 5, stream_state::live, 3);
  BOOST_TEST(read_versions(j, "s") == vs({3, 4, 5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(delete_to_beyond_the_end_keeps_the_highest_version, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 3);
  must(j.delete_to("s", 100));
  // Deleting "beyond the end" deletes what exists, never events still to come.
  check_head(j, "s", 3, stream_state::live, 4);
  BOOST_TEST(read_versions(j, "s").empty()); // live and empty: no error
  check_conflict(j.append(make_request("s", no_stream, 1)), "no_stream", 3);
  check_result(put(j, "s", exact(3), 2), 4, 5, 4, 5);
  BOOST_TEST(read_versions(j, "s") == vs({4, 5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(delete_to_of_everything_keeps_the_highest_version, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 3);
  must(j.delete_to("s", 3));
  check_head(j, "s", 3, stream_state::live, 4);
  BOOST_TEST(read_versions(j, "s").empty());
  BOOST_TEST(read_versions(j, "s", {.dir = direction::backward}).empty());
  put(j, "t", any, 2);
  must(j.delete_to("t", std::numeric_limits<uint64_t>::max()));
  check_head(j, "t", 2, stream_state::live, 3);
  put(j, "t", any, 1);
  BOOST_TEST(read_versions(j, "t") == vs({3}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(delete_to_never_moves_truncate_before_backwards, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 5);
  must(j.delete_to("s", 3));
  must(j.delete_to("s", 1));
  must(j.truncate_before("s", 2));
  check_head(j, "s", 5, stream_state::live, 4);
  BOOST_TEST(read_versions(j, "s") == vs({4, 5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(delete_to_0_deletes_nothing, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 3);
  must(j.delete_to("s", 0));
  BOOST_TEST(read_versions(j, "s") == vs({1, 2, 3}), boost::test_tools::per_element());
  BOOST_TEST(must(j.head("s")).version == 3u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(truncate_before_deletes_versions_below_n, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 5);
  must(j.truncate_before("s", 3));
  check_head(j, "s", 5, stream_state::live, 3);
  BOOST_TEST(read_versions(j, "s") == vs({3, 4, 5}), boost::test_tools::per_element());
  must(j.truncate_before("s", 100));
  check_head(j, "s", 5, stream_state::live, 6);
  BOOST_TEST(read_versions(j, "s").empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(deletes_of_absent_or_deleted_streams_fail, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "soft", any, 2);
  must(j.soft_delete("soft"));
  put(j, "tomb", any, 2);
  must(j.tombstone("tomb"));
  auto before = observe(j);
  for (auto& [stream, code] : {std::pair{"never", errc::stream_not_found},
                               std::pair{"soft", errc::stream_not_found},
                               std::pair{"tomb", errc::stream_deleted}}) {
    BOOST_TEST_CONTEXT("stream " << stream) {
      BOOST_TEST(j.delete_to(stream, 1).code == code);
      BOOST_TEST(j.truncate_before(stream, 2).code == code);
      BOOST_TEST(j.soft_delete(stream).code == code);
    }
  }
  check_unchanged(j, before);
}

// -- soft delete ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(soft_delete_hides_the_stream_and_keeps_its_version, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 3);
  must(j.soft_delete("s"));
  check_head(j, "s", 3, stream_state::soft_deleted, 4);
  BOOST_TEST(code_of(j.read_stream("s")) == errc::stream_not_found);
  BOOST_TEST(code_of(j.read_stream("s", {.dir = direction::backward}))
             == errc::stream_not_found);
  auto all = must(j.streams());
  BOOST_REQUIRE_EQUAL(all.size(), 1u);
  BOOST_TEST(all[0].state == stream_state::soft_deleted);
  BOOST_TEST(must(j.read_all()).size() == 3u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(soft_delete_then_append_continues_numbering_and_hides_old_events,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 3);
  must(j.delete_to("s", 1));
  must(j.soft_delete("s"));
  check_result(put(j, "s", no_stream, 2), 4, 5, 4, 5);
  check_head(j, "s", 5, stream_state::live, 4);
  auto events = must(j.read_stream("s"));
  BOOST_TEST(versions(events) == vs({4, 5}), boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.from = 1, .to = 4}) == vs({4}),
             boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "s", {.dir = direction::backward}) == vs({5, 4}),
             boost::test_tools::per_element());
  // Live again: it can be soft-deleted again, and the next round continues as well.
  must(j.soft_delete("s"));
  check_head(j, "s", 5, stream_state::soft_deleted, 6);
  check_result(put(j, "s", any, 1), 6, 6, 6, 6);
  BOOST_TEST(read_versions(j, "s") == vs({6}), boost::test_tools::per_element());
}

// -- tombstone ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(tombstone_refuses_appends_and_reads_with_stream_deleted,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 3);
  must(j.tombstone("s"));
  // Like a soft delete, a tombstone deletes every event so far and keeps the version.
  check_head(j, "s", 3, stream_state::tombstoned, 4);
  BOOST_TEST(code_of(j.append(make_request("s", any, 1))) == errc::stream_deleted);
  BOOST_TEST(code_of(j.read_stream("s")) == errc::stream_deleted);
  BOOST_TEST(code_of(j.read_stream("s", {.dir = direction::backward, .from = 2}))
             == errc::stream_deleted);
  BOOST_TEST(code_of(j.tombstone("s")) == errc::stream_deleted);
  BOOST_TEST(must(j.last_position()) == 3u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(tombstone_on_never_written_stream_creates_a_tombstoned_head,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  must(j.tombstone("s"));
  check_head(j, "s", 0, stream_state::tombstoned, 1);
  auto all = must(j.streams());
  BOOST_REQUIRE_EQUAL(all.size(), 1u);
  BOOST_TEST(all[0].stream == "s");
  BOOST_TEST(all[0].state == stream_state::tombstoned);
  BOOST_TEST(code_of(j.read_stream("s")) == errc::stream_deleted);
  BOOST_TEST(code_of(j.append(make_request("s", no_stream, 1))) == errc::stream_deleted);
  BOOST_TEST(code_of(j.tombstone("s")) == errc::stream_deleted);
  BOOST_TEST(must(j.last_position()) == 0u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(tombstone_of_soft_deleted_stream_succeeds, Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "s", any, 2);
  must(j.soft_delete("s"));
  must(j.tombstone("s"));
  check_head(j, "s", 2, stream_state::tombstoned, 3);
  BOOST_TEST(code_of(j.append(make_request("s", no_stream, 1))) == errc::stream_deleted);
  BOOST_TEST(code_of(j.read_stream("s")) == errc::stream_deleted);
}

// -- head, streams --------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(head_of_unknown_stream_is_version_0_live_and_named, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "other", any, 2);
  check_head(j, "nobody", 0, stream_state::live, 0);
  check_head(j, "other", 2, stream_state::live, 0);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(streams_lists_every_stream_with_a_head_in_byte_order, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  put(j, "b", any, 2);
  put(j, "\xc3\xa9t\xc3\xa9", any, 1); // "été": bytes >= 0x80 sort after ASCII
  put(j, "a", any, 1);
  put(j, "B", any, 3);
  put(j, "ab", any, 1);
  must(j.tombstone("tomb"));         // never written, but has a head
  must(j.append(make_request("zero", any, 0))); // no head: not listed
  put(j, "soft", any, 1);
  must(j.soft_delete("soft"));
  std::vector<std::string> got;
  for (auto& h : must(j.streams()))
    got.push_back(describe(h));
  std::vector<std::string> want{"B|3|live|0",          "a|1|live|0",
                                "ab|1|live|0",         "b|2|live|0",
                                "soft|1|soft_deleted|2", "tomb|0|tombstoned|1",
                                "\xc3\xa9t\xc3\xa9|1|live|0"};
  BOOST_TEST(joined(got) == joined(want));
}

// -- limits ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(limits_allow_appends_at_the_limit, Factory, factories) {
  Factory f{small_limits()};
  auto& j = f.get();
  check_result(put(j, std::string(32, 's'), any, 8, std::string(32, 'c')), 1, 8, 1, 8);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(oversize_event_is_too_large, Factory, factories) {
  Factory f{small_limits()};
  auto& j = f.get();
  put(j, "s", any, 1);
  auto before = observe(j);
  auto req = make_request("s", any, 2);
  req.events[1].payload = std::string(1100, 'x');
  BOOST_TEST(code_of(j.append(req)) == errc::too_large);
  // Metadata counts towards the event's size as well.
  req.events[1].payload = "x";
  req.events[1].meta = {{"k", std::string(1100, 'v')}};
  BOOST_TEST(code_of(j.append(req)) == errc::too_large);
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(too_many_events_is_too_large, Factory, factories) {
  Factory f{small_limits()};
  auto& j = f.get();
  put(j, "s", any, 1);
  auto before = observe(j);
  BOOST_TEST(code_of(j.append(make_request("s", any, 9))) == errc::too_large);
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(oversize_append_is_too_large, Factory, factories) {
  Factory f{small_limits()};
  auto& j = f.get();
  put(j, "s", any, 1);
  auto before = observe(j);
  // Each event stays under max_event_bytes (1024); together they exceed 4096.
  auto req = make_request("s", any, 6);
  for (auto& e : req.events)
    e.payload = std::string(800, 'x');
  BOOST_TEST(code_of(j.append(req)) == errc::too_large);
  check_unchanged(j, before);
  req.events.resize(2);
  check_result(must(j.append(req)), 2, 3, 2, 3);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(long_stream_id_is_too_large, Factory, factories) {
  Factory f{small_limits()};
  auto& j = f.get();
  put(j, "s", any, 1);
  auto before = observe(j);
  BOOST_TEST(code_of(j.append(make_request(std::string(33, 's'), any, 1))) == errc::too_large);
  BOOST_TEST(code_of(j.append(make_request(std::string(33, 's'), any, 0))) == errc::too_large);
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(empty_or_control_char_stream_id_is_invalid_input, Factory,
                              factories) {
  Factory f{small_limits()};
  auto& j = f.get();
  put(j, "s", any, 1);
  auto before = observe(j);
  for (auto id : {std::string{}, std::string{"a\nb"}, std::string{"a\x7f"},
                  std::string{"\x01"}, std::string{"a\0b", 3}, std::string{"tab\there"}}) {
    BOOST_TEST_CONTEXT("stream id of " << id.size() << " bytes") {
      BOOST_TEST(code_of(j.append(make_request(id, any, 1))) == errc::invalid_input);
      BOOST_TEST(code_of(j.append(make_request(id, any, 0))) == errc::invalid_input);
    }
  }
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(bad_stream_id_is_refused_by_every_operation, Factory,
                              factories) {
  Factory f{small_limits()};
  auto& j = f.get();
  put(j, "s", any, 1);
  auto before = observe(j);
  for (auto& [id, code] : {std::pair{std::string{}, errc::invalid_input},
                           std::pair{std::string{"a\nb"}, errc::invalid_input},
                           std::pair{std::string(33, 's'), errc::too_large}}) {
    BOOST_TEST_CONTEXT("stream id of " << id.size() << " bytes") {
      BOOST_TEST(code_of(j.head(id)) == code);
      BOOST_TEST(code_of(j.read_stream(id)) == code);
      BOOST_TEST(j.delete_to(id, 1).code == code);
      BOOST_TEST(j.truncate_before(id, 1).code == code);
      BOOST_TEST(j.soft_delete(id).code == code);
      BOOST_TEST(j.tombstone(id).code == code);
    }
  }
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(empty_type_is_invalid_input, Factory, factories) {
  Factory f{small_limits()};
  auto& j = f.get();
  put(j, "s", any, 1);
  auto before = observe(j);
  auto req = make_request("s", any, 1);
  req.events[0].type.clear();
  BOOST_TEST(code_of(j.append(req)) == errc::invalid_input);
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(long_or_nul_ids_are_refused, Factory, factories) {
  Factory f{small_limits()};
  auto& j = f.get();
  put(j, "s", any, 1);
  auto before = observe(j);
  BOOST_TEST(code_of(j.append(make_request("s", any, 1, std::string(33, 'c'))))
             == errc::too_large);
  BOOST_TEST(code_of(j.append(make_request("s", any, 1, std::string{"c\0d", 3})))
             == errc::invalid_input);
  auto req = make_request("s", any, 1);
  req.events[0].type = std::string(33, 't');
  BOOST_TEST(code_of(j.append(req)) == errc::too_large);
  req = make_request("s", any, 1);
  req.events[0].correlation_id = std::string(33, 'x');
  BOOST_TEST(code_of(j.append(req)) == errc::too_large);
  req = make_request("s", any, 1);
  req.events[0].causation_id = std::string(33, 'x');
  BOOST_TEST(code_of(j.append(req)) == errc::too_large);
  check_unchanged(j, before);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(refused_requests_leave_the_journal_unchanged, Factory,
                              factories) {
  Factory f{small_limits()};
  auto& j = f.get();
  put(j, "a", any, 2, "cmd-a");
  put(j, "b", any, 1);
  must(j.delete_to("a", 1));
  put(j, "gone", any, 1);
  must(j.tombstone("gone"));
  auto before = observe(j);
  std::vector<append_request> refused{
    make_request("a", no_stream, 1, "new-cmd"),     // conflict
    make_request("a", exact(1), 3),                 // conflict
    make_request("new", stream_exists, 2, "cmd-x"), // conflict on a new stream
    make_request("gone", any, 1, "cmd-y"),          // tombstoned
    make_request("b", any, 9),                      // too many events
    make_request("", any, 1),                       // invalid stream id
  };
  for (auto& req : refused)
    BOOST_TEST(!j.append(req).has_value());
  auto results = j.append_batch(refused);
  BOOST_REQUIRE_EQUAL(results.size(), refused.size());
  for (auto& r : results)
    BOOST_TEST(!r.has_value());
  check_unchanged(j, before);
  check_head(j, "new", 0, stream_state::live, 0);
}

// -- append_batch ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(append_batch_conflict_in_one_request_does_not_fail_the_others,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  put(j, "b", any, 1);
  std::vector<append_request> reqs{
    make_request("a", no_stream, 2),
    make_request("b", no_stream, 1), // conflict: b exists
    make_request("c", any, 1),
  };
  auto results = j.append_batch(reqs);
  BOOST_REQUIRE_EQUAL(results.size(), 3u);
  BOOST_REQUIRE(results[0].has_value());
  check_result(*results[0], 1, 2, 2, 3);
  check_conflict(results[1], "no_stream", 1);
  BOOST_REQUIRE(results[2].has_value());
  check_result(*results[2], 1, 1, 4, 4);
  BOOST_TEST(must(j.last_position()) == 4u);
  BOOST_TEST(read_versions(j, "b") == vs({1}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_batch_later_requests_see_earlier_ones, Factory,
                              factories) {
  Factory f;
  auto& j = f.get();
  std::vector<append_request> reqs{
    make_request("a", no_stream, 2),
    make_request("a", exact(2), 1),
    make_request("a", no_stream, 1), // conflict: created two requests earlier
    make_request("a", stream_exists, 1),
    make_request("b", exact(0), 1),
    make_request("a", exact(4), 0),
  };
  auto results = j.append_batch(reqs);
  BOOST_REQUIRE_EQUAL(results.size(), 6u);
  for (size_t i : {0u, 1u, 3u, 4u, 5u})
    if (!results[i].has_value())
      BOOST_FAIL("request " << i << " failed: " << to_string(results[i].err()));
  check_result(*results[0], 1, 2, 1, 2);
  check_result(*results[1], 3, 3, 3, 3);
  check_conflict(results[2], "no_stream", 3);
  check_result(*results[3], 4, 4, 4, 4);
  check_result(*results[4], 1, 1, 5, 5);
  check_result(*results[5], 4, 4, 0, 0);
  BOOST_TEST(read_versions(j, "a") == vs({1, 2, 3, 4}), boost::test_tools::per_element());
  BOOST_TEST(positions(must(j.read_stream("a"))) == vs({1, 2, 3, 4}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_batch_dedups_a_command_id_seen_earlier_in_the_batch,
                              Factory, factories) {
  Factory f;
  auto& j = f.get();
  auto before_batch = put(j, "a", any, 1, "old");
  std::vector<append_request> reqs{
    make_request("a", any, 2, "cmd"),
    make_request("a", exact(0), 2, "cmd"), // retry inside the same batch
    make_request("a", no_stream, 1, "old"), // retry of an earlier append
    make_request("b", any, 1, "cmd"),      // other stream: independent
  };
  auto results = j.append_batch(reqs);
  BOOST_REQUIRE_EQUAL(results.size(), 4u);
  for (auto& r : results)
    BOOST_REQUIRE(r.has_value());
  BOOST_TEST(!results[0]->duplicate);
  check_result(*results[0], 2, 3, 2, 3);
  BOOST_TEST(results[1]->duplicate);
  BOOST_TEST(*results[1] == *results[0]);
  BOOST_TEST(results[2]->duplicate);
  BOOST_TEST(*results[2] == before_batch);
  BOOST_TEST(!results[3]->duplicate);
  check_result(*results[3], 1, 1, 4, 4);
  BOOST_TEST(must(j.last_position()) == 4u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_batch_of_nothing_returns_nothing, Factory, factories) {
  Factory f;
  auto& j = f.get();
  BOOST_TEST(j.append_batch({}).empty());
  BOOST_TEST(must(j.last_position()) == 0u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(append_batch_matches_the_same_appends_one_by_one, Factory,
                              factories) {
  Factory batched;
  Factory single;
  std::vector<append_request> reqs{
    make_request("a", any, 2, "c1"), make_request("b", no_stream, 1),
    make_request("a", no_stream, 1), make_request("a", exact(2), 1, "c2"),
    make_request("a", any, 1, "c1"), make_request("", any, 1),
  };
  auto results = batched.get().append_batch(reqs);
  BOOST_REQUIRE_EQUAL(results.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    BOOST_TEST_CONTEXT("request " << i) {
      auto one = single.get().append(reqs[i]);
      BOOST_TEST(code_of(results[i]) == code_of(one));
      if (results[i].has_value() && one.has_value()) {
        BOOST_TEST(*results[i] == *one);
        BOOST_TEST(results[i]->duplicate == one->duplicate);
      }
    }
  }
  auto x = observe(batched.get());
  auto y = observe(single.get());
  BOOST_TEST(x.last_position == y.last_position);
  BOOST_TEST(joined(x.heads) == joined(y.heads));
}

// -- memory journal only ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE(memory_journal_visitor_may_call_back_into_the_journal) {
  // Visitors run without the journal's lock: a projection that appends while replaying
  // must not deadlock, and sees a read that ends where it started.
  memory_journal j;
  put(j, "s", any, 2);
  std::vector<uint64_t> seen;
  must(j.read_stream("s", {}, [&](const recorded_event& e) {
    seen.push_back(e.version);
    put(j, "s", any, 1);
    return true;
  }));
  BOOST_TEST(seen == vs({1, 2}), boost::test_tools::per_element());
  must(j.read_all(0, 10, [&](const recorded_event& e) {
    BOOST_TEST(must(j.head("s")).version >= e.version);
    return true;
  }));
  BOOST_TEST(must(j.head("s")).version == 4u);
}

// -- LMDB only: the journal survives closing it ---------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(reopen_keeps_events_heads_positions_and_command_ids, Factory,
                              lmdb_factories) {
  Factory f;
  auto a1 = put(f.get(), "a", no_stream, 3, "c1");
  auto b1 = put(f.get(), "b", any, 2, "c2");
  put(f.get(), "c", any, 1);
  auto a2 = put(f.get(), "a", exact(3), 1, "c3");
  must(f.get().delete_to("a", 1));
  must(f.get().soft_delete("b"));
  must(f.get().tombstone("c"));
  must(f.get().tombstone("never"));
  auto before = observe(f.get());
  BOOST_TEST(before.last_position == 7u);

  f.reopen();
  auto& j = f.get();
  check_unchanged(j, before);
  BOOST_TEST(read_versions(j, "a") == vs({2, 3, 4}), boost::test_tools::per_element());
  BOOST_TEST(code_of(j.read_stream("b")) == errc::stream_not_found);
  BOOST_TEST(code_of(j.read_stream("c")) == errc::stream_deleted);
  check_head(j, "a", 4, stream_state::live, 2);
  check_head(j, "b", 2, stream_state::soft_deleted, 3);
  check_head(j, "never", 0, stream_state::tombstoned, 1);
  // The command-id records came back too.
  for (auto& [stream, cmd, first] : {std::tuple{"a", "c1", a1}, std::tuple{"b", "c2", b1},
                                     std::tuple{"a", "c3", a2}}) {
    BOOST_TEST_CONTEXT("command " << cmd) {
      auto retry = must(j.append(make_request(stream, no_stream, 1, cmd)));
      BOOST_TEST(retry.duplicate);
      BOOST_TEST(retry == first);
    }
  }
  check_unchanged(j, before);
  // Numbering continues where it stopped, for positions and versions.
  check_result(put(j, "a", exact(4), 1, "c4"), 5, 5, 8, 8);
  check_result(put(j, "b", no_stream, 1), 3, 3, 9, 9);
  BOOST_TEST(code_of(j.append(make_request("c", any, 1))) == errc::stream_deleted);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(reopen_after_flush_index_and_more_appends_keeps_everything,
                              Factory, lmdb_factories) {
  Factory f;
  auto a1 = put(f.get(), "a", any, 3, "c1");
  must(f.ptr->flush_index());
  auto a2 = put(f.get(), "a", any, 2, "c2"); // in the tail again
  put(f.get(), "b", any, 1);
  must(f.get().delete_to("a", 2));
  auto before = observe(f.get());
  f.reopen();
  auto& j = f.get();
  check_unchanged(j, before);
  BOOST_TEST(read_versions(j, "a") == vs({3, 4, 5}), boost::test_tools::per_element());
  BOOST_TEST(read_versions(j, "a", {.dir = direction::backward}) == vs({5, 4, 3}),
             boost::test_tools::per_element());
  auto r1 = must(j.append(make_request("a", any, 1, "c1")));
  auto r2 = must(j.append(make_request("a", any, 1, "c2")));
  BOOST_TEST(r1.duplicate);
  BOOST_TEST(r1 == a1);
  BOOST_TEST(r2.duplicate);
  BOOST_TEST(r2 == a2);
  f.reopen();
  check_unchanged(f.get(), before);
  check_result(put(f.get(), "a", exact(5), 1), 6, 6, 7, 7);
}

BOOST_AUTO_TEST_SUITE_END()
