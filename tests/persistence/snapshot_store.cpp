#include "evident/persistence/snapshot_store.hpp"
#include "evident/persistence/environment.hpp"

#include "temp_dir.hpp"

#include <boost/mpl/list.hpp>
#include "checks.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

using namespace evident;
using evident::test::why;

namespace {

// -- the two stores under one contract ------------------------------------------------

journal_options test_options(journal_options opts = {}) {
  opts.sync = durability::no_sync;
  return opts;
}

struct lmdb_kind {
  test::temp_dir dir;
  std::shared_ptr<environment> env;
  std::unique_ptr<lmdb_snapshot_store> impl;

  explicit lmdb_kind(journal_options opts = {}) {
    opts = test_options(opts);
    opts.path = dir.sub("j");
    auto e = environment::open(opts);
    BOOST_REQUIRE_MESSAGE(e.has_value(), why(e));
    env = *e;
    impl = std::make_unique<lmdb_snapshot_store>(env);
  }
  snapshot_store& store() {
    return *impl;
  }
};

struct memory_kind {
  memory_snapshot_store impl;

  explicit memory_kind(journal_options opts = {}) : impl(test_options(opts)) {
    // nop
  }
  snapshot_store& store() {
    return impl;
  }
};

using store_kinds = boost::mpl::list<lmdb_kind, memory_kind>;

snapshot snap(std::string stream, uint64_t version, std::string state = "state",
              int64_t time_ns = 1'000) {
  snapshot s;
  s.stream = std::move(stream);
  s.version = version;
  s.type = "bank.account";
  s.schema = 2;
  s.time_ns = time_ns;
  s.state = std::move(state);
  return s;
}

// The version loaded for `c`, or 0 when none matched.
uint64_t loaded_version(snapshot_store& store, const std::string& stream,
                        const snapshot_criteria& c = {}) {
  auto s = store.load(stream, c);
  BOOST_REQUIRE_MESSAGE(s.has_value(), why(s));
  return *s ? (*s)->version : 0;
}

std::vector<uint64_t> listed_versions(snapshot_store& store, const std::string& stream) {
  auto xs = store.list(stream);
  BOOST_REQUIRE_MESSAGE(xs.has_value(), why(xs));
  std::vector<uint64_t> out;
  for (const auto& x : *xs)
    out.push_back(x.version);
  return out;
}

using versions = std::vector<uint64_t>;

} // namespace

BOOST_AUTO_TEST_SUITE(snapshot_store_tests)

// -- contract: both stores --------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(stream_without_snapshots_loads_nothing, Kind, store_kinds) {
  Kind k;
  auto s = k.store().load("account-1");
  BOOST_REQUIRE(s.has_value());
  BOOST_TEST(!s->has_value());
  BOOST_TEST(listed_versions(k.store(), "account-1").empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(save_then_load_returns_every_field, Kind, store_kinds) {
  Kind k;
  auto in = snap("account-1", 42, std::string{"\x00\x01binary\xff", 9}, 123'456'789);
  REQUIRE_OK(k.store().save(in));
  auto out = k.store().load("account-1");
  BOOST_REQUIRE_MESSAGE(out.has_value(), why(out));
  BOOST_REQUIRE(out->has_value());
  const auto& s = **out;
  BOOST_TEST(s.stream == "account-1");
  BOOST_TEST(s.version == 42u);
  BOOST_TEST(s.type == "bank.account");
  BOOST_TEST(s.schema == 2u);
  BOOST_TEST(s.time_ns == 123'456'789);
  BOOST_TEST(s.state == in.state);
  BOOST_TEST(s.state_size == 9u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(load_selects_the_highest_version, Kind, store_kinds) {
  Kind k;
  for (uint64_t v : {3, 7, 5})
    REQUIRE_OK(k.store().save(snap("account-1", v, "at " + std::to_string(v))));
  auto s = k.store().load("account-1");
  BOOST_REQUIRE(s.has_value() && s->has_value());
  BOOST_TEST((*s)->version == 7u);
  BOOST_TEST((*s)->state == "at 7");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(load_selects_the_highest_version_within_bounds, Kind,
                              store_kinds) {
  Kind k;
  for (uint64_t v : {3, 5, 7})
    REQUIRE_OK(k.store().save(snap("account-1", v)));
  BOOST_TEST(loaded_version(k.store(), "account-1", snapshot_criteria::up_to(7)) == 7u);
  BOOST_TEST(loaded_version(k.store(), "account-1", snapshot_criteria::up_to(6)) == 5u);
  BOOST_TEST(loaded_version(k.store(), "account-1", snapshot_criteria::up_to(4)) == 3u);
  BOOST_TEST(loaded_version(k.store(), "account-1", snapshot_criteria::up_to(2)) == 0u);
  snapshot_criteria c;
  c.min_version = 6;
  BOOST_TEST(loaded_version(k.store(), "account-1", c) == 7u);
  c.min_version = 4;
  c.max_version = 6;
  BOOST_TEST(loaded_version(k.store(), "account-1", c) == 5u);
  c.min_version = 8;
  c.max_version = UINT64_MAX;
  BOOST_TEST(loaded_version(k.store(), "account-1", c) == 0u);
  BOOST_TEST(loaded_version(k.store(), "account-1", snapshot_criteria::none()) == 0u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(load_selects_the_latest_within_a_time_range, Kind, store_kinds) {
  Kind k;
  // Version order and time order disagree on purpose: version 3 is the oldest.
  REQUIRE_OK(k.store().save(snap("account-1", 1, "s", 200)));
  REQUIRE_OK(k.store().save(snap("account-1", 2, "s", 300)));
  REQUIRE_OK(k.store().save(snap("account-1", 3, "s", 100)));
  snapshot_criteria c;
  c.max_time_ns = 250;
  BOOST_TEST(loaded_version(k.store(), "account-1", c) == 3u);
  c.min_time_ns = 150;
  BOOST_TEST(loaded_version(k.store(), "account-1", c) == 1u);
  c.max_time_ns = 99;
  c.min_time_ns = INT64_MIN;
  BOOST_TEST(loaded_version(k.store(), "account-1", c) == 0u);
  c = {};
  c.min_time_ns = 250;
  BOOST_TEST(loaded_version(k.store(), "account-1", c) == 2u);
  c.max_version = 1; // both bounds: version 1 is at 200
  BOOST_TEST(loaded_version(k.store(), "account-1", c) == 0u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(saving_at_an_existing_version_replaces_it, Kind, store_kinds) {
  Kind k;
  REQUIRE_OK(k.store().save(snap("account-1", 2, "first")));
  REQUIRE_OK(k.store().save(snap("account-1", 2, "second")));
  auto s = k.store().load("account-1");
  BOOST_REQUIRE(s.has_value() && s->has_value());
  BOOST_TEST((*s)->state == "second");
  BOOST_TEST(listed_versions(k.store(), "account-1") == versions{2}, boost::test_tools::per_element());
  BOOST_TEST(*k.store().count() == 1u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(zero_time_is_stamped_with_now, Kind, store_kinds) {
  Kind k;
  using namespace std::chrono;
  auto before = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
  REQUIRE_OK(k.store().save(snap("account-1", 1, "s", 0)));
  auto after = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
  auto s = k.store().load("account-1");
  BOOST_REQUIRE(s.has_value() && s->has_value());
  BOOST_TEST((*s)->time_ns >= before);
  BOOST_TEST((*s)->time_ns <= after);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(streams_do_not_see_each_others_snapshots, Kind, store_kinds) {
  Kind k;
  // "a" is a prefix of "a-1" and "ab"; "b" sorts after all of them.
  REQUIRE_OK(k.store().save(snap("a", 5)));
  REQUIRE_OK(k.store().save(snap("a-1", 9)));
  REQUIRE_OK(k.store().save(snap("ab", 7)));
  BOOST_TEST(loaded_version(k.store(), "a") == 5u);
  BOOST_TEST(loaded_version(k.store(), "a-1") == 9u);
  BOOST_TEST(loaded_version(k.store(), "ab") == 7u);
  BOOST_TEST(loaded_version(k.store(), "b") == 0u);
  BOOST_TEST(loaded_version(k.store(), "0") == 0u);
  BOOST_TEST(loaded_version(k.store(), "a-0") == 0u);
  BOOST_TEST(listed_versions(k.store(), "a") == versions{5}, boost::test_tools::per_element());
  REQUIRE_OK(k.store().keep_last("a", 0));
  BOOST_TEST(loaded_version(k.store(), "a-1") == 9u);
  BOOST_TEST(loaded_version(k.store(), "ab") == 7u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(remove_deletes_exactly_one_version, Kind, store_kinds) {
  Kind k;
  for (uint64_t v : {1, 2, 3})
    REQUIRE_OK(k.store().save(snap("account-1", v)));
  REQUIRE_OK(k.store().remove("account-1", 3));
  BOOST_TEST(listed_versions(k.store(), "account-1") == (versions{1, 2}),
             boost::test_tools::per_element());
  BOOST_TEST(loaded_version(k.store(), "account-1") == 2u);
  REQUIRE_OK(k.store().remove("account-1", 3)); // absent: no error
  REQUIRE_OK(k.store().remove("nobody", 1));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(remove_by_criteria_deletes_all_matching, Kind, store_kinds) {
  Kind k;
  for (uint64_t v = 1; v <= 6; ++v)
    REQUIRE_OK(k.store().save(snap("account-1", v, "s", static_cast<int64_t>(v) * 100)));
  REQUIRE_OK(k.store().save(snap("account-2", 1)));
  REQUIRE_OK(k.store().remove("account-1", snapshot_criteria::up_to(2)));
  BOOST_TEST(listed_versions(k.store(), "account-1") == (versions{3, 4, 5, 6}),
             boost::test_tools::per_element());
  snapshot_criteria by_time;
  by_time.min_time_ns = 350;
  by_time.max_time_ns = 550;
  REQUIRE_OK(k.store().remove("account-1", by_time));
  BOOST_TEST(listed_versions(k.store(), "account-1") == (versions{3, 6}),
             boost::test_tools::per_element());
  REQUIRE_OK(k.store().remove("account-1", snapshot_criteria::none()));
  BOOST_TEST(listed_versions(k.store(), "account-1") == (versions{3, 6}),
             boost::test_tools::per_element());
  REQUIRE_OK(k.store().remove("account-1", snapshot_criteria::all()));
  BOOST_TEST(listed_versions(k.store(), "account-1").empty());
  BOOST_TEST(listed_versions(k.store(), "account-2") == versions{1},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(keep_last_keeps_the_n_highest_versions, Kind, store_kinds) {
  Kind k;
  for (uint64_t v : {10, 20, 30, 40, 50})
    REQUIRE_OK(k.store().save(snap("account-1", v)));
  REQUIRE_OK(k.store().keep_last("account-1", 10)); // fewer than n: all stay
  BOOST_TEST(listed_versions(k.store(), "account-1").size() == 5u);
  REQUIRE_OK(k.store().keep_last("account-1", 2));
  BOOST_TEST(listed_versions(k.store(), "account-1") == (versions{40, 50}),
             boost::test_tools::per_element());
  REQUIRE_OK(k.store().keep_last("account-1", 0));
  BOOST_TEST(listed_versions(k.store(), "account-1").empty());
  REQUIRE_OK(k.store().keep_last("nobody", 1));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(list_is_ascending_and_leaves_state_empty, Kind, store_kinds) {
  Kind k;
  REQUIRE_OK(k.store().save(snap("account-1", 9, "nine", 900)));
  REQUIRE_OK(k.store().save(snap("account-1", 4, "four", 400)));
  auto xs = k.store().list("account-1");
  BOOST_REQUIRE_MESSAGE(xs.has_value(), why(xs));
  BOOST_REQUIRE(xs->size() == 2u);
  BOOST_TEST((*xs)[0].version == 4u);
  BOOST_TEST((*xs)[0].time_ns == 400);
  BOOST_TEST((*xs)[0].type == "bank.account");
  BOOST_TEST((*xs)[0].schema == 2u);
  BOOST_TEST((*xs)[0].stream == "account-1");
  BOOST_TEST((*xs)[0].state.empty());
  BOOST_TEST((*xs)[0].state_size == 4u);
  BOOST_TEST((*xs)[1].version == 9u);
  BOOST_TEST((*xs)[1].state.empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(streams_and_count_cover_every_snapshot, Kind, store_kinds) {
  Kind k;
  REQUIRE_OK(k.store().save(snap("b", 1)));
  REQUIRE_OK(k.store().save(snap("a", 1)));
  REQUIRE_OK(k.store().save(snap("a", 2)));
  REQUIRE_OK(k.store().save(snap("a-1", 1)));
  auto names = k.store().streams();
  BOOST_REQUIRE_MESSAGE(names.has_value(), why(names));
  BOOST_TEST(*names == (std::vector<std::string>{"a", "a-1", "b"}),
             boost::test_tools::per_element());
  auto n = k.store().count();
  BOOST_REQUIRE(n.has_value());
  BOOST_TEST(*n == 4u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(twelve_megabyte_snapshot_round_trips, Kind, store_kinds) {
  Kind k;
  std::string state(12u << 20, '\0');
  for (size_t i = 0; i < state.size(); ++i)
    state[i] = static_cast<char>((i * 7919) >> 3);
  REQUIRE_OK(k.store().save(snap("big", 1, state)));
  REQUIRE_OK(k.store().save(snap("big", 2, state))); // a second one in the same map
  auto s = k.store().load("big");
  BOOST_REQUIRE_MESSAGE(s.has_value(), why(s));
  BOOST_REQUIRE(s->has_value());
  BOOST_TEST((*s)->version == 2u);
  BOOST_TEST((*s)->state.size() == state.size());
  BOOST_TEST(((*s)->state == state));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(state_over_the_limit_is_too_large, Kind, store_kinds) {
  journal_options opts;
  opts.max_snapshot_bytes = 1024;
  Kind k{opts};
  auto st = k.store().save(snap("account-1", 1, std::string(1025, 'x')));
  BOOST_TEST(st.code == errc::too_large);
  BOOST_TEST(loaded_version(k.store(), "account-1") == 0u);
  REQUIRE_OK(k.store().save(snap("account-1", 1, std::string(1024, 'x'))));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(bad_stream_ids_and_types_are_refused, Kind, store_kinds) {
  journal_options opts;
  opts.max_stream_id_bytes = 16;
  Kind k{opts};
  BOOST_TEST(k.store().save(snap("", 1)).code == errc::invalid_input);
  BOOST_TEST(k.store().save(snap("bad\nid", 1)).code == errc::invalid_input);
  BOOST_TEST(k.store().save(snap(std::string{"nul\0id", 6}, 1)).code == errc::invalid_input);
  BOOST_TEST(k.store().save(snap(std::string(17, 'x'), 1)).code == errc::too_large);
  auto untyped = snap("account-1", 1);
  untyped.type.clear();
  BOOST_TEST(k.store().save(untyped).code == errc::invalid_input);
  auto long_type = snap("account-1", 1);
  long_type.type = std::string(opts.max_id_bytes + 1, 't');
  BOOST_TEST(k.store().save(long_type).code == errc::too_large);
  auto loaded = k.store().load("");
  BOOST_REQUIRE(!loaded.has_value());
  BOOST_TEST(loaded.err().code == errc::invalid_input);
  BOOST_TEST(k.store().remove("", 1).code == errc::invalid_input);
  BOOST_TEST(k.store().keep_last(std::string(17, 'x'), 1).code == errc::too_large);
  BOOST_TEST(*k.store().count() == 0u);
}

// -- the LMDB store only ----------------------------------------------------------------

namespace {

// Overwrites the stored record of (stream, version) with `f(record)`.
template <class F>
void tamper(environment& env, const std::string& stream, uint64_t version, F f) {
  std::string key = stream;
  key.push_back('\0');
  for (int shift = 56; shift >= 0; shift -= 8)
    key.push_back(static_cast<char>((version >> shift) & 0xff));
  auto t = env.begin_write();
  BOOST_REQUIRE(t.has_value());
  auto value = t->get(t->dbs().snapshots, key);
  BOOST_REQUIRE(value.has_value() && value->has_value());
  std::string record{**value};
  f(record);
  REQUIRE_OK(t->put(t->dbs().snapshots, key, record));
  REQUIRE_OK(t->commit());
}

} // namespace

BOOST_AUTO_TEST_CASE(flipped_state_byte_is_corrupted_naming_stream_and_version) {
  lmdb_kind k;
  REQUIRE_OK(k.store().save(snap("account-1", 7, std::string(100, 's'))));
  tamper(*k.env, "account-1", 7, [](std::string& r) { r[r.size() - 20] ^= 0x01; });
  auto s = k.store().load("account-1");
  BOOST_REQUIRE(!s.has_value());
  BOOST_TEST(s.err().code == errc::corrupted);
  BOOST_TEST(s.err().message.find("'account-1'") != std::string::npos);
  BOOST_TEST(s.err().message.find("version 7") != std::string::npos);
  auto xs = k.store().list("account-1");
  BOOST_REQUIRE(!xs.has_value());
  BOOST_TEST(xs.err().code == errc::corrupted);
  // A corrupt snapshot can still be removed by version, so recovery can move on.
  REQUIRE_OK(k.store().remove("account-1", 7));
  BOOST_TEST(loaded_version(k.store(), "account-1") == 0u);
}

BOOST_AUTO_TEST_CASE(flipped_checksum_or_truncated_record_is_corrupted) {
  lmdb_kind k;
  REQUIRE_OK(k.store().save(snap("account-1", 1)));
  REQUIRE_OK(k.store().save(snap("account-1", 2)));
  tamper(*k.env, "account-1", 2, [](std::string& r) { r.back() ^= 0x80; });
  tamper(*k.env, "account-1", 1, [](std::string& r) { r.resize(3); });
  for (auto c : {snapshot_criteria::up_to(2), snapshot_criteria::up_to(1)}) {
    auto s = k.store().load("account-1", c);
    BOOST_REQUIRE(!s.has_value());
    BOOST_TEST(s.err().code == errc::corrupted);
  }
}

BOOST_AUTO_TEST_CASE(record_under_the_wrong_key_is_corrupted) {
  lmdb_kind k;
  REQUIRE_OK(k.store().save(snap("account-1", 1, "one")));
  REQUIRE_OK(k.store().save(snap("account-1", 2, "two")));
  std::string one;
  tamper(*k.env, "account-1", 1, [&](std::string& r) { one = r; });
  tamper(*k.env, "account-1", 2, [&](std::string& r) { r = one; });
  auto s = k.store().load("account-1");
  BOOST_REQUIRE(!s.has_value());
  BOOST_TEST(s.err().code == errc::corrupted);
  BOOST_TEST(s.err().message.find("version 2") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(time_bounded_walk_reports_corruption_it_meets) {
  lmdb_kind k;
  REQUIRE_OK(k.store().save(snap("account-1", 1, "s", 100)));
  REQUIRE_OK(k.store().save(snap("account-1", 2, "s", 200)));
  tamper(*k.env, "account-1", 2, [](std::string& r) { r[4] ^= 0x01; });
  // Versions alone do not reach version 2: its record is never read.
  BOOST_TEST(loaded_version(k.store(), "account-1", snapshot_criteria::up_to(1)) == 1u);
  snapshot_criteria c;
  c.max_time_ns = 150;
  auto s = k.store().load("account-1", c);
  BOOST_REQUIRE(!s.has_value());
  BOOST_TEST(s.err().code == errc::corrupted);
  BOOST_TEST(k.store().remove("account-1", c).code == errc::corrupted);
  auto xs = k.store().list("account-1");
  BOOST_REQUIRE(!xs.has_value());
  BOOST_TEST(xs.err().code == errc::corrupted);
}

BOOST_AUTO_TEST_CASE(snapshots_survive_reopening_the_environment) {
  test::temp_dir dir;
  auto opts = test_options();
  opts.path = dir.sub("j");
  {
    auto env = environment::open(opts);
    BOOST_REQUIRE(env.has_value());
    lmdb_snapshot_store store{*env};
    REQUIRE_OK(store.save(snap("account-1", 3, "kept", 333)));
  }
  auto env = environment::open(opts);
  BOOST_REQUIRE(env.has_value());
  lmdb_snapshot_store store{*env};
  auto s = store.load("account-1");
  BOOST_REQUIRE_MESSAGE(s.has_value(), why(s));
  BOOST_REQUIRE(s->has_value());
  BOOST_TEST((*s)->state == "kept");
  BOOST_TEST((*s)->time_ns == 333);
}

BOOST_AUTO_TEST_CASE(large_snapshots_grow_a_small_map) {
  journal_options opts;
  opts.map_size = size_t{4} << 20;
  lmdb_kind k{opts};
  std::string state(12u << 20, 'z');
  for (uint64_t v = 1; v <= 3; ++v)
    REQUIRE_OK(k.store().save(snap("big", v, state)));
  BOOST_TEST(k.env->map_size() >= size_t{36} << 20);
  BOOST_TEST(loaded_version(k.store(), "big") == 3u);
}

BOOST_AUTO_TEST_CASE(stream_ids_up_to_the_limit_fit_in_an_lmdb_key_and_longer_are_too_large) {
  lmdb_kind k;
  auto limit = k.env->options().max_stream_id_bytes;
  BOOST_REQUIRE(limit + 9 <= static_cast<size_t>(mdb_env_get_maxkeysize(k.env->native())));
  auto fits = std::string(limit, 'x');
  REQUIRE_OK(k.store().save(snap(fits, 1)));
  BOOST_TEST(loaded_version(k.store(), fits) == 1u);
  BOOST_TEST(k.store().save(snap(fits + "x", 1)).code == errc::too_large);
}

BOOST_AUTO_TEST_SUITE_END()
