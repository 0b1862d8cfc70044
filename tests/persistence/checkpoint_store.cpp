#include "evident/persistence/checkpoint_store.hpp"
#include "evident/persistence/environment.hpp"

#include "temp_dir.hpp"

#include "checks.hpp"

#include <boost/test/unit_test.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

using namespace evident;
using evident::test::why;

namespace {

struct fixture {
  test::temp_dir dir;
  journal_options opts;
  std::shared_ptr<environment> env;
  std::unique_ptr<checkpoint_store> store;

  fixture() {
    opts.path = dir.sub("j");
    opts.sync = durability::no_sync;
    open();
  }

  void open() {
    store.reset();
    env.reset();
    auto e = environment::open(opts);
    BOOST_REQUIRE_MESSAGE(e.has_value(), why(e));
    env = *e;
    store = std::make_unique<checkpoint_store>(env);
  }

  // The checkpoint of `name`, or -1 when it has none.
  int64_t position(const std::string& name) {
    auto p = store->load(name);
    BOOST_REQUIRE_MESSAGE(p.has_value(), why(p));
    return *p ? static_cast<int64_t>(**p) : -1;
  }

  // The row `key` of `db`, or "<none>".
  std::string row(MDB_dbi db, const std::string& key) {
    auto t = env->begin_read();
    BOOST_REQUIRE(t.has_value());
    auto v = t->get(db, key);
    BOOST_REQUIRE_MESSAGE(v.has_value(), why(v));
    return *v ? std::string{**v} : std::string{"<none>"};
  }
};

using entries = std::vector<std::pair<std::string, uint64_t>>;

} // namespace

BOOST_FIXTURE_TEST_SUITE(checkpoint_store_tests, fixture)

BOOST_AUTO_TEST_CASE(unknown_name_has_no_checkpoint) {
  BOOST_TEST(position("view.balances") == -1);
}

BOOST_AUTO_TEST_CASE(save_then_load_returns_the_position) {
  REQUIRE_OK(store->save("view.balances", 42));
  BOOST_TEST(position("view.balances") == 42);
  REQUIRE_OK(store->save("view.balances", 43));
  BOOST_TEST(position("view.balances") == 43);
}

BOOST_AUTO_TEST_CASE(position_may_move_backwards_for_a_rebuild) {
  REQUIRE_OK(store->save("view.balances", 1000));
  REQUIRE_OK(store->save("view.balances", 0));
  BOOST_TEST(position("view.balances") == 0);
}

BOOST_AUTO_TEST_CASE(the_full_u64_range_round_trips) {
  REQUIRE_OK(store->save("max", UINT64_MAX));
  REQUIRE_OK(store->save("big", (uint64_t{1} << 63) + 5));
  auto p = store->load("max");
  BOOST_REQUIRE(p.has_value() && p->has_value());
  BOOST_TEST(**p == UINT64_MAX);
  p = store->load("big");
  BOOST_REQUIRE(p.has_value() && p->has_value());
  BOOST_TEST(**p == (uint64_t{1} << 63) + 5);
}

BOOST_AUTO_TEST_CASE(value_is_the_position_in_big_endian) {
  REQUIRE_OK(store->save("saga.payments", 0x0102030405060708));
  BOOST_TEST(row(env->dbs().checkpoints, "saga.payments")
             == std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
}

BOOST_AUTO_TEST_CASE(remove_forgets_the_checkpoint) {
  REQUIRE_OK(store->save("view.balances", 7));
  REQUIRE_OK(store->remove("view.balances"));
  BOOST_TEST(position("view.balances") == -1);
  REQUIRE_OK(store->remove("view.balances")); // absent: no error
}

BOOST_AUTO_TEST_CASE(list_returns_every_checkpoint_in_name_order) {
  REQUIRE_OK(store->save("view.b", 2));
  REQUIRE_OK(store->save("saga.a", 1));
  REQUIRE_OK(store->save("view.a", 3));
  auto xs = store->list();
  BOOST_REQUIRE_MESSAGE(xs.has_value(), why(xs));
  BOOST_TEST((*xs == entries{{"saga.a", 1}, {"view.a", 3}, {"view.b", 2}}));
}

BOOST_AUTO_TEST_CASE(checkpoints_survive_reopening_the_environment) {
  REQUIRE_OK(store->save("view.balances", 99));
  open();
  BOOST_TEST(position("view.balances") == 99);
}

BOOST_AUTO_TEST_CASE(a_deferred_save_is_read_back_at_once_and_after_reopening_under_fsync) {
  opts.sync = durability::fsync_each_commit;
  open();
  REQUIRE_OK(store->save("sub.managed", 41, commit_sync::deferred));
  BOOST_TEST(position("sub.managed") == 41);
  open();
  BOOST_TEST(position("sub.managed") == 41);
}

BOOST_AUTO_TEST_CASE(committed_caller_txn_stores_rows_and_checkpoint_together) {
  auto rows = env->open_db("view.balances");
  BOOST_REQUIRE_MESSAGE(rows.has_value(), why(rows));
  auto t = env->begin_write();
  BOOST_REQUIRE_MESSAGE(t.has_value(), why(t));
  REQUIRE_OK(t->put(*rows, "account-1", "100"));
  REQUIRE_OK(store->save(*t, "view.balances", 17));
  // The caller's txn sees its own uncommitted checkpoint.
  auto inside = store->load(*t, "view.balances");
  BOOST_REQUIRE(inside.has_value() && inside->has_value());
  BOOST_TEST(**inside == 17u);
  REQUIRE_OK(t->commit());
  BOOST_TEST(row(*rows, "account-1") == "100");
  BOOST_TEST(position("view.balances") == 17);
}

BOOST_AUTO_TEST_CASE(rolled_back_caller_txn_leaves_neither_rows_nor_checkpoint) {
  auto rows = env->open_db("view.balances");
  BOOST_REQUIRE_MESSAGE(rows.has_value(), why(rows));
  REQUIRE_OK(store->save("view.balances", 5));
  {
    auto t = env->begin_write();
    BOOST_REQUIRE_MESSAGE(t.has_value(), why(t));
    REQUIRE_OK(t->put(*rows, "account-1", "100"));
    REQUIRE_OK(store->save(*t, "view.balances", 17));
    t->abort();
  }
  BOOST_TEST(row(*rows, "account-1") == "<none>");
  BOOST_TEST(position("view.balances") == 5);
  {
    // A txn that goes away uncommitted rolls back too.
    auto t = env->begin_write();
    BOOST_REQUIRE(t.has_value());
    REQUIRE_OK(t->put(*rows, "account-1", "200"));
    REQUIRE_OK(store->save(*t, "view.balances", 18));
  }
  BOOST_TEST(row(*rows, "account-1") == "<none>");
  BOOST_TEST(position("view.balances") == 5);
}

BOOST_AUTO_TEST_CASE(failing_write_function_stores_neither_rows_nor_checkpoint) {
  auto rows = env->open_db("view.balances");
  BOOST_REQUIRE_MESSAGE(rows.has_value(), why(rows));
  auto st = env->write([&](txn& t) -> status {
    if (auto err = t.put(*rows, "account-1", "100"))
      return err;
    if (auto err = store->save(t, "view.balances", 17))
      return err;
    return {errc::invalid_input, "the view refused the event"};
  });
  BOOST_TEST(st.code == errc::invalid_input);
  BOOST_TEST(row(*rows, "account-1") == "<none>");
  BOOST_TEST(position("view.balances") == -1);
  REQUIRE_OK(env->write([&](txn& t) -> status {
    if (auto err = t.put(*rows, "account-1", "100"))
      return err;
    return store->save(t, "view.balances", 17);
  }));
  BOOST_TEST(row(*rows, "account-1") == "100");
  BOOST_TEST(position("view.balances") == 17);
}

BOOST_AUTO_TEST_CASE(caller_txn_remove_rolls_back_with_it) {
  REQUIRE_OK(store->save("view.balances", 5));
  {
    auto t = env->begin_write();
    BOOST_REQUIRE(t.has_value());
    REQUIRE_OK(store->remove(*t, "view.balances"));
  }
  BOOST_TEST(position("view.balances") == 5);
}

BOOST_AUTO_TEST_CASE(saving_into_a_read_txn_is_invalid_input) {
  auto t = env->begin_read();
  BOOST_REQUIRE(t.has_value());
  BOOST_TEST(store->save(*t, "view.balances", 1).code == errc::invalid_input);
  BOOST_TEST(store->remove(*t, "view.balances").code == errc::invalid_input);
}

BOOST_AUTO_TEST_CASE(bad_names_are_refused) {
  BOOST_TEST(store->save("", 1).code == errc::invalid_input);
  BOOST_TEST(store->save("bad\tname", 1).code == errc::invalid_input);
  BOOST_TEST(store->save(std::string(opts.max_id_bytes + 1, 'n'), 1).code == errc::too_large);
  REQUIRE_OK(store->save(std::string(opts.max_id_bytes, 'n'), 1));
  auto p = store->load("");
  BOOST_REQUIRE(!p.has_value());
  BOOST_TEST(p.err().code == errc::invalid_input);
  BOOST_TEST(store->remove("").code == errc::invalid_input);
}

BOOST_AUTO_TEST_CASE(value_of_the_wrong_size_is_corrupted) {
  REQUIRE_OK(env->write([](txn& t) { return t.put(t.dbs().checkpoints, "view.x", "abc"); }));
  auto p = store->load("view.x");
  BOOST_REQUIRE(!p.has_value());
  BOOST_TEST(p.err().code == errc::corrupted);
  BOOST_TEST(p.err().message.find("view.x") != std::string::npos);
  auto xs = store->list();
  BOOST_REQUIRE(!xs.has_value());
  BOOST_TEST(xs.err().code == errc::corrupted);
}

BOOST_AUTO_TEST_SUITE_END()
