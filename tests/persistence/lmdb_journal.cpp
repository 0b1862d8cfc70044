#include "evident/persistence/lmdb_journal.hpp"

#include "temp_dir.hpp"

#include <boost/test/unit_test.hpp>

#include <sys/wait.h>
#include <unistd.h>

using namespace evident;

namespace {

journal_options opts_for(const test::temp_dir& dir, uint64_t index_lag = 1'000'000) {
  journal_options o;
  o.path = dir.sub("j");
  o.sync = durability::no_sync;
  o.index_lag_events = index_lag;
  return o;
}

append_request req(std::string stream, size_t n, expected_version ev = expected_version::any(),
                   std::string command_id = {}) {
  append_request r;
  r.stream = std::move(stream);
  r.expected = ev;
  r.command_id = std::move(command_id);
  for (size_t i = 0; i < n; ++i) {
    event_data e;
    e.type = "t";
    e.payload = "p" + std::to_string(i);
    r.events.push_back(std::move(e));
  }
  return r;
}

std::vector<uint64_t> versions_of(journal& j, const std::string& stream, read_options o = {}) {
  std::vector<uint64_t> result;
  auto err = j.read_stream(stream, o, [&](const recorded_event& e) {
    result.push_back(e.version);
    return true;
  });
  BOOST_REQUIRE_MESSAGE(!err, to_string(err));
  return result;
}

std::vector<uint64_t> range(uint64_t lo, uint64_t hi) {
  std::vector<uint64_t> r;
  for (auto v = lo; v <= hi; ++v)
    r.push_back(v);
  return r;
}

} // namespace

BOOST_AUTO_TEST_SUITE(lmdb_journal_rules)

BOOST_AUTO_TEST_CASE(reads_combine_the_bulk_index_with_the_unindexed_tail) {
  test::temp_dir dir;
  auto j = *lmdb_journal::open(opts_for(dir, 50));
  // Interleave two streams so that index passes (every 50 events) cut streams anywhere.
  for (int i = 0; i < 37; ++i) {
    BOOST_REQUIRE(j->append(req("a", 3)).has_value());
    BOOST_REQUIRE(j->append(req("b", 1)).has_value());
  }
  auto st = *j->stats();
  BOOST_TEST(st.indexed_through > 0u);
  BOOST_TEST(st.indexed_through < st.last_position);
  BOOST_TEST(versions_of(*j, "a") == range(1, 111));
  BOOST_TEST(versions_of(*j, "b") == range(1, 37));
  read_options back;
  back.dir = direction::backward;
  auto rev = range(1, 111);
  std::reverse(rev.begin(), rev.end());
  BOOST_TEST(versions_of(*j, "a", back) == rev);
  // A window that straddles the index mark.
  read_options w;
  w.from = 90;
  w.to = 105;
  BOOST_TEST(versions_of(*j, "a", w) == range(90, 105));
  w.dir = direction::backward;
  w.from = 105;
  w.to = 90;
  auto wr = range(90, 105);
  std::reverse(wr.begin(), wr.end());
  BOOST_TEST(versions_of(*j, "a", w) == wr);
}

BOOST_AUTO_TEST_CASE(reads_find_every_window_inside_and_across_multi_version_index_chunks) {
  test::temp_dir dir;
  auto j = *lmdb_journal::open(opts_for(dir));
  // 450 versions of "a" in one pass: index chunks 1-200, 201-400, 401-450, with the
  // neighbouring streams "_" and "a-b" on either side of "a" in key order.
  for (int i = 0; i < 45; ++i) {
    BOOST_REQUIRE(j->append(req("_", 1)).has_value());
    BOOST_REQUIRE(j->append(req("a", 10)).has_value());
    BOOST_REQUIRE(j->append(req("a-b", 1)).has_value());
  }
  BOOST_REQUIRE(!j->flush_index());
  // Then 30 more that stay in the tail, past the index mark.
  BOOST_REQUIRE(j->append(req("a", 30)).has_value());
  BOOST_TEST(j->stats()->indexed_through == 45u * 12u);
  BOOST_TEST(j->verify()->ok());
  BOOST_TEST(j->verify()->indexed_entries == 45u * 12u);
  BOOST_TEST(versions_of(*j, "a") == range(1, 480));
  BOOST_TEST(versions_of(*j, "_") == range(1, 45));
  BOOST_TEST(versions_of(*j, "a-b") == range(1, 45));
  for (uint64_t lo : {1, 2, 199, 200, 201, 202, 399, 400, 401, 449, 450, 451, 479}) {
    for (uint64_t hi : {lo, lo + 1, uint64_t{200}, uint64_t{201}, uint64_t{450}, uint64_t{480}}) {
      if (hi < lo || hi > 480)
        continue;
      read_options w;
      w.from = lo;
      w.to = hi;
      BOOST_TEST(versions_of(*j, "a", w) == range(lo, hi), "forward " << lo << ".." << hi);
      w.dir = direction::backward;
      w.from = hi;
      w.to = lo;
      auto rev = range(lo, hi);
      std::reverse(rev.begin(), rev.end());
      BOOST_TEST(versions_of(*j, "a", w) == rev, "backward " << hi << ".." << lo);
      w.max_count = 3;
      rev.resize(std::min<size_t>(rev.size(), 3));
      BOOST_TEST(versions_of(*j, "a", w) == rev, "backward max 3 from " << hi);
    }
  }
}

BOOST_AUTO_TEST_CASE(reopening_rebuilds_the_tail_and_command_ids_from_the_log) {
  test::temp_dir dir;
  append_result first;
  {
    auto j = *lmdb_journal::open(opts_for(dir));
    first = *j->append(req("s", 2, expected_version::no_stream(), "cmd-1"));
    BOOST_REQUIRE(j->append(req("s", 3)).has_value());
    // Nothing indexed yet: the reopen below must rebuild everything from the log.
    BOOST_TEST(j->stats()->indexed_through == 0u);
    // (Closing indexes the tail; a_read_only_handle_sees_the_unindexed_tail covers the
    // crash case where it never happens.)
  }
  auto j = *lmdb_journal::open(opts_for(dir));
  BOOST_TEST(versions_of(*j, "s") == range(1, 5));
  auto retry = j->append(req("s", 2, expected_version::no_stream(), "cmd-1"));
  BOOST_REQUIRE(retry.has_value());
  BOOST_TEST(retry->duplicate);
  BOOST_TEST((*retry == first));
  BOOST_TEST(*j->last_position() == 5u);
}

BOOST_AUTO_TEST_CASE(command_ids_survive_the_index_pass) {
  test::temp_dir dir;
  auto j = *lmdb_journal::open(opts_for(dir));
  auto first = *j->append(req("s", 2, expected_version::any(), "cmd-x"));
  BOOST_REQUIRE(!j->flush_index());
  BOOST_TEST(j->stats()->indexed_through == 2u);
  auto retry = j->append(req("s", 2, expected_version::exact(0), "cmd-x"));
  BOOST_REQUIRE(retry.has_value());
  BOOST_TEST(retry->duplicate);
  BOOST_TEST((*retry == first));
  BOOST_TEST(*j->last_position() == 2u);
}

BOOST_AUTO_TEST_CASE(verify_passes_on_a_healthy_journal_with_index_and_tail) {
  test::temp_dir dir;
  auto j = *lmdb_journal::open(opts_for(dir, 10));
  for (int i = 0; i < 25; ++i)
    BOOST_REQUIRE(j->append(req("s" + std::to_string(i % 4), 2)).has_value());
  BOOST_REQUIRE(!j->tombstone("s1"));
  BOOST_REQUIRE(!j->delete_to("s2", 3));
  auto rep = j->verify();
  BOOST_REQUIRE(rep.has_value());
  for (auto& p : rep->problems)
    BOOST_TEST_MESSAGE(p);
  BOOST_TEST(rep->ok());
  BOOST_TEST(rep->events == 50u);
  BOOST_TEST(rep->streams == 4u);
}

BOOST_AUTO_TEST_CASE(verify_and_reads_report_a_flipped_byte_with_its_position) {
  test::temp_dir dir;
  auto j = *lmdb_journal::open(opts_for(dir));
  for (int i = 0; i < 5; ++i)
    BOOST_REQUIRE(j->append(req("s", 1)).has_value());
  // Damage event 3 in place, as a bad disk would.
  auto err = j->env()->write([&](txn& t) -> status {
    std::string key("\0\0\0\0\0\0\0\x03", 8);
    auto v = t.get(t.dbs().events, key);
    if (!v || !*v)
      return {errc::io_error, "missing"};
    std::string bad{**v};
    bad[bad.size() / 2] ^= 0x01;
    return t.put(t.dbs().events, key, bad);
  });
  BOOST_REQUIRE(!err);
  auto rep = j->verify();
  BOOST_REQUIRE(rep.has_value());
  BOOST_REQUIRE(!rep->ok());
  BOOST_TEST(rep->problems.front().find("position 3") != std::string::npos);
  auto r = j->read_stream("s");
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST((r.err().code == errc::corrupted));
  BOOST_TEST(r.err().position.value_or(0) == 3u);
}

BOOST_AUTO_TEST_CASE(a_second_process_appending_is_taken_in_by_the_first) {
  test::temp_dir dir;
  auto o = opts_for(dir, 20);
  {
    auto j = *lmdb_journal::open(o);
    BOOST_REQUIRE(j->append(req("shared", 5)).has_value());
  }
  auto j = *lmdb_journal::open(o);
  BOOST_REQUIRE(j->append(req("shared", 1, expected_version::exact(5))).has_value());
  auto child = fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    // A separate process with its own environment (LMDB forbids two in one process).
    auto other = lmdb_journal::open(o);
    bool ok = other.has_value();
    for (int i = 0; ok && i < 30; ++i)
      ok = (*other)->append(req("shared", 1, expected_version::exact(6 + i), "c" + std::to_string(i)))
             .has_value();
    other = error{};
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  BOOST_REQUIRE(WIFEXITED(status));
  BOOST_REQUIRE(WEXITSTATUS(status) == 0);
  // Our in-memory tail is stale: the next append must see version 36, not 6.
  auto stale = j->append(req("shared", 1, expected_version::exact(6)));
  BOOST_REQUIRE(!stale.has_value());
  BOOST_TEST(stale.err().actual.value_or(0) == 36u);
  auto ok = j->append(req("shared", 1, expected_version::exact(36)));
  BOOST_REQUIRE(ok.has_value());
  BOOST_TEST(ok->last_position == 37u);
  BOOST_TEST(versions_of(*j, "shared") == range(1, 37));
  // The other process's command ids are known here too.
  auto retry = j->append(req("shared", 1, expected_version::any(), "c4"));
  BOOST_REQUIRE(retry.has_value());
  BOOST_TEST(retry->duplicate);
  BOOST_TEST(retry->first_version == 11u);
  auto rep = j->verify();
  BOOST_REQUIRE(rep.has_value());
  BOOST_TEST(rep->ok());
}

BOOST_AUTO_TEST_CASE(a_tombstone_from_another_process_reaches_the_writers_cached_head) {
  test::temp_dir dir;
  auto o = opts_for(dir);
  auto j = *lmdb_journal::open(o);
  BOOST_REQUIRE(j->append(req("g", 2)).has_value()); // caches the head of "g"
  BOOST_REQUIRE(j->append(req("h", 2)).has_value());
  auto child = fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    auto other = lmdb_journal::open(o);
    bool ok = other.has_value() && !(*other)->tombstone("g") && !(*other)->soft_delete("h");
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  BOOST_REQUIRE(WEXITSTATUS(status) == 0);
  auto refused = j->append(req("g", 1));
  BOOST_REQUIRE(!refused.has_value());
  BOOST_TEST((refused.err().code == errc::stream_deleted));
  // The soft-deleted stream takes no_stream and continues its numbering.
  auto revived = j->append(req("h", 1, expected_version::no_stream()));
  BOOST_REQUIRE(revived.has_value());
  BOOST_TEST(revived->first_version == 3u);
  BOOST_TEST(versions_of(*j, "h") == std::vector<uint64_t>{3});
  BOOST_TEST((j->head("h")->state == stream_state::live));
}

BOOST_AUTO_TEST_CASE(a_read_only_handle_sees_the_unindexed_tail) {
  test::temp_dir dir;
  auto o = opts_for(dir);
  auto child = fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    auto w = lmdb_journal::open(o);
    bool ok = w.has_value() && (*w)->append(req("x", 7)).has_value();
    // Leave without the closing index pass, as a killed daemon would.
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  BOOST_REQUIRE(WEXITSTATUS(status) == 0);
  auto ro = o;
  ro.read_only = true;
  auto j = *lmdb_journal::open(ro);
  BOOST_TEST(j->stats()->indexed_through == 0u);
  BOOST_TEST(versions_of(*j, "x") == range(1, 7));
  auto w = j->append(req("x", 1));
  BOOST_TEST(!w.has_value());
}

BOOST_AUTO_TEST_CASE(streams_lists_every_head_in_id_order) {
  test::temp_dir dir;
  auto j = *lmdb_journal::open(opts_for(dir));
  BOOST_REQUIRE(j->append(req("b", 2)).has_value());
  BOOST_REQUIRE(j->append(req("a", 1)).has_value());
  BOOST_REQUIRE(!j->tombstone("c"));
  auto s = j->streams();
  BOOST_REQUIRE(s.has_value());
  BOOST_REQUIRE(s->size() == 3u);
  BOOST_TEST((*s)[0].stream == "a");
  BOOST_TEST((*s)[1].version == 2u);
  BOOST_TEST(((*s)[2].state == stream_state::tombstoned));
}

BOOST_AUTO_TEST_CASE(a_deferred_batch_is_readable_at_once_and_kept_after_sync_and_reopen) {
  test::temp_dir dir;
  auto o = opts_for(dir);
  o.sync = durability::fsync_each_commit;
  {
    auto j = *lmdb_journal::open(o);
    std::vector<append_request> batch{req("a", 2), req("b", 1, expected_version::exact(5))};
    auto results = j->append_batch_deferred(batch);
    BOOST_REQUIRE_EQUAL(results.size(), 2u);
    BOOST_TEST(results[0].has_value());
    BOOST_TEST((!results[1].has_value() && results[1].err().code == errc::wrong_expected_version));
    BOOST_TEST(versions_of(*j, "a") == range(1, 2)); // visible before any flush
    BOOST_TEST(!j->sync());
  }
  auto j = *lmdb_journal::open(o);
  BOOST_TEST(versions_of(*j, "a") == range(1, 2));
  BOOST_TEST(*j->last_position() == 2u);
}

BOOST_AUTO_TEST_CASE(only_fsync_defers_the_durability_of_a_deferred_batch) {
  // What the journal writer holds answers for: only under fsync does a later flush
  // complete a deferred commit; no_meta_sync and no_sync promise no such flush.
  auto defers = [](durability d, bool read_only) {
    test::temp_dir dir;
    auto o = opts_for(dir);
    o.sync = d;
    if (read_only) {
      BOOST_REQUIRE(lmdb_journal::open(o).has_value()); // create it first
      o.read_only = true;
    }
    auto j = lmdb_journal::open(o);
    BOOST_REQUIRE(j.has_value());
    return (*j)->defers_durability();
  };
  BOOST_TEST(defers(durability::fsync_each_commit, false));
  BOOST_TEST(!defers(durability::no_meta_sync, false));
  BOOST_TEST(!defers(durability::no_sync, false));
  BOOST_TEST(!defers(durability::fsync_each_commit, true));
}

BOOST_AUTO_TEST_SUITE_END()
