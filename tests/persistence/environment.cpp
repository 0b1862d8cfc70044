#include "evident/persistence/environment.hpp"
#include "evident/persistence/detail/msgpack_io.hpp"
#include "evident/persistence/lmdb_journal.hpp"

#include "temp_dir.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

using namespace evident;

namespace {

journal_options opts_for(const test::temp_dir& dir) {
  journal_options o;
  o.path = dir.sub("j");
  o.sync = durability::no_sync;
  return o;
}

// A 1 MiB map that may grow to 64 MiB: a few large appends make it grow.
journal_options small_map_opts_for(const test::temp_dir& dir) {
  auto o = opts_for(dir);
  o.map_size = size_t{1} << 20;
  o.map_size_cap = size_t{64} << 20;
  return o;
}

journal_options fsync_opts_for(const test::temp_dir& dir) {
  auto o = opts_for(dir);
  o.sync = durability::fsync_each_commit;
  return o;
}

// The value under `key` in the user DB `db`, read in a fresh read transaction.
std::optional<std::string> value_of(environment& env, const std::string& db, std::string_view key) {
  auto dbi = env.open_db(db);
  BOOST_REQUIRE(dbi.has_value());
  auto r = env.begin_read();
  BOOST_REQUIRE(r.has_value());
  auto v = r->get(*dbi, key);
  BOOST_REQUIRE(v.has_value());
  if (!v->has_value())
    return std::nullopt;
  return std::string{**v};
}

// Bytes of data.mdb past LMDB's last used page: how many, and whether all are zero.
struct file_tail {
  size_t used = 0;
  size_t size = 0;
  bool zeros = true;
};

file_tail tail_of(environment& env, const std::string& dir) {
  MDB_envinfo info;
  BOOST_REQUIRE_EQUAL(mdb_env_info(env.native(), &info), 0);
  MDB_stat st;
  BOOST_REQUIRE_EQUAL(mdb_env_stat(env.native(), &st), 0);
  file_tail result;
  result.used = (info.me_last_pgno + 1) * st.ms_psize;
  std::ifstream in{dir + "/data.mdb", std::ios::binary};
  std::string bytes{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  result.size = bytes.size();
  if (result.size > result.used)
    result.zeros = std::all_of(bytes.begin() + static_cast<std::ptrdiff_t>(result.used),
                               bytes.end(), [](char c) { return c == 0; });
  return result;
}

append_request one_event(std::string stream, size_t payload_bytes) {
  append_request req;
  req.stream = std::move(stream);
  event_data e;
  e.type = "t";
  e.payload = std::string(payload_bytes, 'x');
  req.events.push_back(std::move(e));
  return req;
}

} // namespace

BOOST_AUTO_TEST_SUITE(environment_rules)

BOOST_AUTO_TEST_CASE(opening_a_missing_journal_without_create_is_not_a_journal) {
  test::temp_dir dir;
  auto o = opts_for(dir);
  o.create = false;
  auto env = environment::open(o);
  BOOST_REQUIRE(!env.has_value());
  BOOST_TEST((env.err().code == errc::not_a_journal));
}

BOOST_AUTO_TEST_CASE(a_file_that_is_not_lmdb_is_not_a_journal) {
  test::temp_dir dir;
  auto o = opts_for(dir);
  std::filesystem::create_directories(o.path);
  std::ofstream{o.path + "/data.mdb"} << std::string(8192, 'z');
  auto env = environment::open(o);
  BOOST_REQUIRE(!env.has_value());
  BOOST_TEST((env.err().code == errc::not_a_journal));
}

BOOST_AUTO_TEST_CASE(a_foreign_lmdb_environment_is_not_a_journal) {
  test::temp_dir dir;
  auto o = opts_for(dir);
  std::filesystem::create_directories(o.path);
  {
    MDB_env* env = nullptr;
    MDB_txn* txn = nullptr;
    MDB_dbi dbi = 0;
    BOOST_REQUIRE(mdb_env_create(&env) == 0);
    BOOST_REQUIRE(mdb_env_open(env, o.path.c_str(), 0, 0664) == 0);
    BOOST_REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    BOOST_REQUIRE(mdb_dbi_open(txn, nullptr, 0, &dbi) == 0);
    MDB_val k{3, const_cast<char*>("key")};
    MDB_val v{5, const_cast<char*>("value")};
    BOOST_REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
    BOOST_REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
  }
  auto env = environment::open(o);
  BOOST_REQUIRE(!env.has_value());
  BOOST_TEST((env.err().code == errc::not_a_journal));
}

BOOST_AUTO_TEST_CASE(a_journal_from_a_newer_format_is_refused) {
  test::temp_dir dir;
  auto o = opts_for(dir);
  {
    auto env = environment::open(o);
    BOOST_REQUIRE(env.has_value());
    auto err = (*env)->write([&](txn& t) {
      return t.put(t.dbs().meta, "format_version", std::string("\0\0\0\x09", 4));
    });
    BOOST_REQUIRE(!err);
  }
  auto env = environment::open(o);
  BOOST_REQUIRE(!env.has_value());
  BOOST_TEST((env.err().code == errc::unsupported_format));
  BOOST_TEST(env.err().message.find("newer") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_version_1_journal_is_read_as_is_and_marked_version_2_when_opened_to_write) {
  test::temp_dir dir;
  auto o = opts_for(dir);
  auto format_of = [](environment& env) {
    uint64_t v = 0;
    auto t = env.begin_read();
    BOOST_REQUIRE(t.has_value());
    auto got = t->get(t->dbs().meta, "format_version");
    BOOST_REQUIRE(got.has_value() && got->has_value());
    v = detail::get_be((*got)->data(), 4);
    return v;
  };
  {
    auto env = environment::open(o);
    BOOST_REQUIRE(env.has_value());
    BOOST_TEST(format_of(**env) == 2u);
    auto err = (*env)->write([&](txn& t) {
      return t.put(t.dbs().meta, "format_version", std::string("\0\0\0\x01", 4));
    });
    BOOST_REQUIRE(!err);
  }
  {
    auto ro = o;
    ro.read_only = true;
    auto env = environment::open(ro);
    BOOST_REQUIRE(env.has_value());
    BOOST_TEST(format_of(**env) == 1u); // reading changes nothing
  }
  auto env = environment::open(o);
  BOOST_REQUIRE(env.has_value());
  BOOST_TEST(format_of(**env) == 2u);
}

BOOST_AUTO_TEST_CASE(map_full_grows_the_map_and_the_append_succeeds) {
  test::temp_dir dir;
  auto j = lmdb_journal::open(small_map_opts_for(dir));
  BOOST_REQUIRE(j.has_value());
  auto before = (*j)->env()->map_size();
  for (int i = 0; i < 40; ++i) {
    auto r = (*j)->append(one_event("s", 100'000));
    BOOST_REQUIRE_MESSAGE(r.has_value(), to_string(r.err()));
  }
  BOOST_TEST((*j)->env()->map_size() > before);
  BOOST_TEST(*(*j)->last_position() == 40u);
}

// Read txns are reset and renewed rather than freed: a renewed one must see what was
// committed since, also after the map grew under the idle ones.
BOOST_AUTO_TEST_CASE(reused_read_transactions_see_later_commits_and_a_grown_map) {
  test::temp_dir dir;
  auto j = lmdb_journal::open(small_map_opts_for(dir));
  BOOST_REQUIRE(j.has_value());
  auto env = (*j)->env();
  auto before = env->map_size();
  for (uint64_t i = 1; i <= 40; ++i) {
    {
      // Several at once, so that the pool holds more than one when they end.
      auto a = env->begin_read();
      auto b = env->begin_read();
      BOOST_REQUIRE(a.has_value() && b.has_value());
    }
    auto r = (*j)->append(one_event("s", 100'000));
    BOOST_REQUIRE_MESSAGE(r.has_value(), to_string(r.err()));
    auto t = env->begin_read();
    BOOST_REQUIRE(t.has_value());
    auto got = t->get(t->dbs().events, detail::be64(i));
    BOOST_REQUIRE(got.has_value());
    BOOST_TEST(got->has_value()); // the event committed after the txn was last reset
    BOOST_TEST((*j)->head("s")->version == i);
  }
  BOOST_TEST(env->map_size() > before);
}

// LMDB 0.9 turns a short write (the disk filled up within a commit) into EIO. Seen by
// hand on a 24 MiB tmpfs: evident-bank answered io_error until this rule; with it,
// storage_full (507), and deposits went on once a file was removed.
BOOST_AUTO_TEST_CASE(an_eio_from_a_commit_on_a_nearly_full_disk_is_storage_full) {
  auto full = environment::translate_commit(EIO, 4096);
  BOOST_TEST((full.code == errc::storage_full));
  BOOST_TEST(full.message.find("4096 bytes free") != std::string::npos);
  auto at_the_bound = environment::translate_commit(EIO, environment::nearly_full_bytes);
  BOOST_TEST((at_the_bound.code == errc::io_error));
  BOOST_TEST((environment::translate_commit(EIO, uint64_t{100} << 30).code == errc::io_error));
  BOOST_TEST((environment::translate_commit(EIO, std::nullopt).code == errc::io_error));
  // Other codes keep their meaning whatever the free space.
  BOOST_TEST((environment::translate_commit(ENOSPC, std::nullopt).code == errc::storage_full));
  BOOST_TEST((environment::translate_commit(MDB_MAP_FULL, uint64_t{100} << 30).code
              == errc::storage_full));
  BOOST_TEST((environment::translate_commit(EROFS, 0).code == errc::io_error));
}

BOOST_AUTO_TEST_CASE(free_bytes_reports_the_space_left_on_the_journals_filesystem) {
  test::temp_dir dir;
  auto env = environment::open(opts_for(dir));
  BOOST_REQUIRE(env.has_value());
  auto free = (*env)->free_bytes();
  BOOST_REQUIRE(free.has_value());
  auto space = std::filesystem::space(dir.str());
  // Both read the same filesystem a moment apart; other processes write meanwhile.
  auto expected = std::max(space.available, space.free);
  BOOST_TEST(*free > 0u);
  BOOST_TEST(*free <= expected + (uint64_t{256} << 20));
  BOOST_TEST(*free + (uint64_t{256} << 20) >= space.available);
}

BOOST_AUTO_TEST_CASE(at_the_cap_appends_fail_with_storage_full_and_nothing_is_lost) {
  test::temp_dir dir;
  auto o = opts_for(dir);
  o.map_size = size_t{1} << 20;
  o.map_size_cap = size_t{2} << 20;
  auto j = lmdb_journal::open(o);
  BOOST_REQUIRE(j.has_value());
  uint64_t stored = 0;
  error last;
  for (int i = 0; i < 100; ++i) {
    auto r = (*j)->append(one_event("s", 100'000));
    if (!r) {
      last = r.err();
      break;
    }
    ++stored;
  }
  BOOST_TEST((last.code == errc::storage_full));
  BOOST_TEST(stored > 5u);
  BOOST_TEST(*(*j)->last_position() == stored);
  auto all = (*j)->read_all();
  BOOST_REQUIRE(all.has_value());
  BOOST_TEST(all->size() == stored);
  // Small appends still fit where a big one did not, and reads keep working.
  auto r = (*j)->append(one_event("s", 10));
  BOOST_TEST(r.has_value());
  auto head = (*j)->head("s");
  BOOST_TEST(head->version == (r.has_value() ? stored + 1 : stored));
}

BOOST_AUTO_TEST_CASE(limits_that_cannot_fit_an_lmdb_key_are_refused_at_open) {
  test::temp_dir dir;
  auto o = opts_for(dir);
  o.max_stream_id_bytes = 500;
  auto env = environment::open(o);
  BOOST_REQUIRE(!env.has_value());
  BOOST_TEST((env.err().code == errc::invalid_input));
}

BOOST_AUTO_TEST_CASE(user_dbs_cannot_take_journal_names) {
  test::temp_dir dir;
  auto env = environment::open(opts_for(dir));
  BOOST_REQUIRE(env.has_value());
  BOOST_TEST((!(*env)->open_db("events").has_value()));
  BOOST_TEST((!(*env)->open_db("evident.x").has_value()));
  BOOST_TEST(((*env)->open_db("view.balances").has_value()));
}

BOOST_AUTO_TEST_CASE(under_fsync_lmdb_leaves_the_meta_flush_to_the_durable_commit) {
  // The meta page is flushed by txn::commit after LMDB's write lock is released; LMDB
  // itself must not flush it (again) under the lock.
  test::temp_dir dir;
  auto env = environment::open(fsync_opts_for(dir));
  BOOST_REQUIRE(env.has_value());
  unsigned flags = 0;
  BOOST_REQUIRE_EQUAL(mdb_env_get_flags((*env)->native(), &flags), 0);
  BOOST_TEST((flags & MDB_NOMETASYNC) != 0u);
  BOOST_TEST((flags & MDB_NOSYNC) == 0u);
  // no_sync keeps LMDB's own flag: there is nothing to flush afterwards.
  test::temp_dir other;
  auto env2 = environment::open(opts_for(other));
  BOOST_REQUIRE(env2.has_value());
  BOOST_REQUIRE_EQUAL(mdb_env_get_flags((*env2)->native(), &flags), 0);
  BOOST_TEST((flags & MDB_NOSYNC) != 0u);
}

BOOST_AUTO_TEST_CASE(a_deferred_commit_is_visible_at_once_and_kept_across_a_reopen) {
  test::temp_dir dir;
  {
    auto env = environment::open(fsync_opts_for(dir));
    BOOST_REQUIRE(env.has_value());
    auto db = (*env)->open_db("view.rows");
    BOOST_REQUIRE(db.has_value());
    auto err = (*env)->write([&](txn& t) { return t.put(*db, "k", "deferred"); },
                             commit_sync::deferred);
    BOOST_REQUIRE(!err);
    BOOST_TEST((value_of(**env, "view.rows", "k") == std::optional<std::string>{"deferred"}));
  }
  auto env = environment::open(fsync_opts_for(dir));
  BOOST_REQUIRE(env.has_value());
  BOOST_TEST((value_of(**env, "view.rows", "k") == std::optional<std::string>{"deferred"}));
}

BOOST_AUTO_TEST_CASE(a_writable_environment_keeps_zeroed_headroom_past_its_last_page) {
  // Ten small appends under fsync with `headroom`; then data.mdb's tail.
  auto tail_after_appends = [](size_t headroom) {
    test::temp_dir dir;
    auto o = fsync_opts_for(dir);
    o.file_headroom = headroom;
    auto j = lmdb_journal::open(o);
    BOOST_REQUIRE(j.has_value());
    for (int i = 0; i < 10; ++i)
      BOOST_REQUIRE((*j)->append(one_event("s", 1'000)).has_value());
    return tail_of(*(*j)->env(), o.path);
  };
  constexpr size_t headroom = size_t{1} << 20;
  auto t = tail_after_appends(headroom);
  BOOST_TEST(t.size >= t.used + headroom / 4);
  BOOST_TEST(t.size <= t.used + headroom);
  BOOST_TEST(t.zeros);
  // Off: the file ends where LMDB's pages end, as LMDB leaves it.
  auto plain = tail_after_appends(0);
  BOOST_TEST(plain.size == plain.used);
}

BOOST_AUTO_TEST_CASE(zero_filling_never_overwrites_committed_pages) {
  // Headroom of 64 KiB against appends of 20 KB: the file is extended again and again,
  // each time right behind pages committed a moment before.
  test::temp_dir dir;
  auto o = fsync_opts_for(dir);
  o.file_headroom = size_t{64} << 10;
  {
    auto j = lmdb_journal::open(o);
    BOOST_REQUIRE(j.has_value());
    for (int i = 0; i < 100; ++i) {
      auto req = one_event("s", 20'000);
      req.events[0].payload = std::string(20'000, static_cast<char>('a' + i % 26));
      BOOST_REQUIRE((*j)->append(req).has_value());
    }
    BOOST_TEST(tail_of(*(*j)->env(), o.path).zeros);
  }
  auto j = lmdb_journal::open(o);
  BOOST_REQUIRE(j.has_value());
  auto all = (*j)->read_all();
  BOOST_REQUIRE(all.has_value());
  BOOST_REQUIRE_EQUAL(all->size(), 100u);
  for (size_t i = 0; i < all->size(); ++i)
    BOOST_TEST(((*all)[i].payload == std::string(20'000, static_cast<char>('a' + i % 26))),
               "event " << i);
}

BOOST_AUTO_TEST_SUITE_END()
