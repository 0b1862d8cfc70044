// verify, corruption and concurrent writers.

#include "cli_runner.hpp"

#include <filesystem>

using namespace evident::test;

BOOST_AUTO_TEST_SUITE(cli_integrity)

BOOST_AUTO_TEST_CASE(verify_passes_on_a_good_journal) {
  journal_fixture f;
  f.append("a", R"({"type":"t","data":{"i":1}})" "\n" R"({"type":"t","data":{"i":2}})" "\n");
  f.append("b", R"({"type":"t","data":{"i":3}})" "\n");
  auto r = cli({"verify", f.dir});
  BOOST_TEST(r.code == 0, r.err);
  auto rep = r.lines().at(0);
  BOOST_TEST(rep.at("ok") == true);
  BOOST_TEST(rep.at("events") == 3);
  BOOST_TEST(rep.at("streams") == 2);
  BOOST_TEST(rep.at("last_position") == 3);
  BOOST_TEST(rep.at("problems").empty());
}

BOOST_AUTO_TEST_CASE(a_flipped_byte_in_an_event_is_reported_as_corrupted_with_its_position) {
  journal_fixture f;
  f.append("a", R"({"type":"t","data":{"note":"first"}})" "\n");
  f.append("b", R"({"type":"t","data":{"note":"UNIQUE-MARKER-7f3a"}})" "\n");
  f.append("a", R"({"type":"t","data":{"note":"third"}})" "\n");
  // Flip one byte of the marker in every copy LMDB's copy-on-write left in the file:
  // one of them is the live record of position 2.
  auto file = (std::filesystem::path{f.dir} / "data.mdb").string();
  auto bytes = read_text(file);
  const std::string marker = "UNIQUE-MARKER-7f3a";
  size_t flipped = 0;
  for (auto at = bytes.find(marker); at != std::string::npos; at = bytes.find(marker, at + 1)) {
    bytes[at + 3] = static_cast<char>(bytes[at + 3] ^ 0x01);
    ++flipped;
  }
  BOOST_TEST_REQUIRE(flipped > 0u);
  write_text(file, bytes);

  auto v = cli({"verify", f.dir});
  BOOST_TEST(v.code == exit_codes::corrupted);
  auto err = v.error();
  BOOST_TEST(err.at("error") == "corrupted");
  BOOST_TEST(err.at("position") == 2);
  auto problems = err.at("problems");
  // The first problem is the record itself; verify may add what follows from it (the
  // index entry and head that point at the unreadable event).
  BOOST_TEST_REQUIRE(!problems.empty());
  auto first = problems[0].get<std::string>();
  BOOST_TEST(first.find("position 2") != std::string::npos, first);
  BOOST_TEST(first.find("checksum") != std::string::npos, first);
  BOOST_TEST(v.lines().at(0).at("ok") == false);

  auto r = cli({"read", f.dir, "b"});
  BOOST_TEST(r.code == exit_codes::corrupted);
  BOOST_TEST(r.error().at("position") == 2);
  // A read that does not touch the bad record still works.
  BOOST_TEST(cli({"read", f.dir, "a"}).code == 0);
  // read-all prints what comes before the bad record, then fails.
  auto all = cli({"read-all", f.dir});
  BOOST_TEST(all.code == exit_codes::corrupted);
  BOOST_TEST(all.lines().size() == 1u);
  // The independent reader finds the same.
  auto py = child{EVIDENT_PYTHON, {EVIDENT_PY_READER, f.dir}, ""}.wait();
  BOOST_TEST(py.code == exit_codes::corrupted, py.err);
  BOOST_TEST(py.error().at("position") == 2);
}

BOOST_AUTO_TEST_CASE(two_concurrent_appenders_both_succeed_and_the_journal_verifies) {
  journal_fixture f;
  std::string batch;
  for (int i = 0; i < 50; ++i)
    batch += R"({"type":"t","data":{"i":)" + std::to_string(i) + "}}\n";
  // Several rounds of two writers started together, to give them a chance to overlap.
  for (int round = 0; round < 5; ++round) {
    child one{EVIDENT_CLI_PATH, {"append", f.dir, "shared", "--expected", "any"}, batch};
    child two{EVIDENT_CLI_PATH, {"append", f.dir, "other-" + std::to_string(round), "--expected", "any"}, batch};
    auto r1 = one.wait();
    auto r2 = two.wait();
    BOOST_TEST(r1.code == 0, r1.err);
    BOOST_TEST(r2.code == 0, r2.err);
  }
  auto rep = cli_ok({"verify", f.dir})[0];
  BOOST_TEST(rep.at("ok") == true);
  BOOST_TEST(rep.at("events") == 500);
  BOOST_TEST(cli_ok({"head", f.dir, "shared"})[0].at("version") == 250);
  // Each append is contiguous in the log.
  auto shared = cli_ok({"read", f.dir, "shared"});
  BOOST_TEST_REQUIRE(shared.size() == 250u);
  for (size_t i = 0; i < shared.size(); ++i) {
    BOOST_TEST(shared[i].at("version") == i + 1);
    if (i % 50 != 0)
      BOOST_TEST(shared[i].at("position").get<uint64_t>()
                 == shared[i - 1].at("position").get<uint64_t>() + 1);
  }
}

BOOST_AUTO_TEST_SUITE_END()
