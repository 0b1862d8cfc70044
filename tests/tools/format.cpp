// docs/format.md is complete: an independent Python reader built from it alone
// (read_journal.py, Debian's python3-lmdb and python3-msgpack) reads every event, checks
// every CRC32C and agrees with `evident read-all` and `evident head`.

#include "cli_runner.hpp"

#include "evident/persistence/lmdb_journal.hpp"

#include <sys/wait.h>
#include <unistd.h>

using namespace evident::test;

BOOST_AUTO_TEST_SUITE(journal_format)

BOOST_AUTO_TEST_CASE(python_reader_agrees_with_read_all_and_head) {
  journal_fixture f;
  f.append("acc-1", R"({"type":"opened","data":{"owner":"ann","tags":["x","é"],"n":-3,"f":0.5,"b":false,"z":null},"metadata":{"user":"bob","retries":2},"correlation_id":"k","causation_id":"c","schema":4})" "\n"
                    R"({"type":"raw","data_base64":"AP8Q"})" "\n");
  cli_ok({"append", f.dir, "acc-2", "--expected", "no-stream", "--command-id", "cmd-9"},
         R"({"type":"bin","data":{"$bin":"AAEC","k":[{"deep":[1,[2,[3]]]}]}})" "\n"
         R"({"type":"big","data":")" + std::string(70'000, 'x') + R"("})" "\n");
  f.append("acc-1", R"({"type":"later","data":18446744073709551615})" "\n");
  cli_ok({"delete", f.dir, "acc-1", "--to", "1"});
  cli_ok({"delete", f.dir, "acc-2", "--tombstone"});

  auto expected = cli_ok({"read-all", f.dir});
  auto py = child{EVIDENT_PYTHON, {EVIDENT_PY_READER, f.dir}, ""}.wait();
  BOOST_TEST_REQUIRE(py.code == 0, py.err);
  auto actual = py.lines();
  BOOST_TEST_REQUIRE(actual.size() == expected.size());
  BOOST_TEST_REQUIRE(actual.size() == 5u);
  for (size_t i = 0; i < actual.size(); ++i)
    BOOST_TEST(actual[i] == expected[i], "python: " << actual[i].dump() << "\nevident: "
                                                    << expected[i].dump());

  auto heads = child{EVIDENT_PYTHON, {EVIDENT_PY_READER, f.dir, "--heads"}, ""}.wait();
  BOOST_TEST_REQUIRE(heads.code == 0, heads.err);
  auto py_heads = heads.lines();
  BOOST_TEST_REQUIRE(py_heads.size() == 2u);
  BOOST_TEST(py_heads[0] == cli_ok({"head", f.dir, "acc-1"})[0]);
  BOOST_TEST(py_heads[1] == cli_ok({"head", f.dir, "acc-2"})[0]);
}

BOOST_AUTO_TEST_CASE(python_reader_takes_versions_from_the_unindexed_tail) {
  journal_fixture f;
  f.append("tail-1", R"({"type":"a","data":1})" "\n");
  cli_ok({"delete", f.dir, "tail-1", "--to", "1"}); // writes a heads record at version 1
  // A writer that dies before its closing index pass leaves versions only in the log.
  auto pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    evident::journal_options o;
    o.path = f.dir;
    o.create = false;
    auto j = evident::lmdb_journal::open(o);
    bool ok = j.has_value();
    for (int i = 0; ok && i < 3; ++i) {
      evident::append_request r;
      r.stream = i < 2 ? "tail-1" : "tail-2";
      r.events.push_back(evident::event_data{.type = "b", .payload = std::string("\xc0", 1)});
      ok = (*j)->append(r).has_value();
    }
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  BOOST_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto heads = child{EVIDENT_PYTHON, {EVIDENT_PY_READER, f.dir, "--heads"}, ""}.wait();
  BOOST_TEST_REQUIRE(heads.code == 0, heads.err);
  auto py_heads = heads.lines();
  BOOST_TEST_REQUIRE(py_heads.size() == 2u);
  BOOST_TEST(py_heads[0]["version"] == 3);
  BOOST_TEST(py_heads[0]["truncate_before"] == 2);
  BOOST_TEST(py_heads[0] == cli_ok({"head", f.dir, "tail-1"})[0]);
  BOOST_TEST(py_heads[1] == cli_ok({"head", f.dir, "tail-2"})[0]);
}

BOOST_AUTO_TEST_SUITE_END()
