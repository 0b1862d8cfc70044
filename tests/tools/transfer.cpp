// export and import: a journal survives the trip through JSON lines unchanged.

#include "cli_runner.hpp"

using namespace evident::test;

namespace {

// A journal with a bit of everything: command ids, metadata, raw payloads, interleaved
// streams, a delete-to, a soft delete followed by more events, a plain soft delete, a
// tombstone, and a tombstone of a stream that never had events.
void fill(journal_fixture& f) {
  auto run = [&](std::vector<std::string> args, const std::string& input = "") {
    cli_ok(args, input);
  };
  run({"append", f.dir, "acc-1", "--expected", "no-stream", "--command-id", "open-1"},
      R"({"type":"opened","data":{"owner":"ann","limit":-5},"metadata":{"user":"bob","n":1},"correlation_id":"k1","causation_id":"c0"})"
      "\n"
      R"({"type":"deposited","data":{"amount":100.25,"note":"é ü ✓"}})"
      "\n");
  run({"append", f.dir, "acc-2", "--expected", "any"},
      R"({"type":"opened","data":[1,2,3],"schema":3})" "\n"
      R"({"type":"raw","data_base64":"AP8Q"})" "\n");
  run({"append", f.dir, "acc-1", "--expected", "2", "--command-id", "dep-2"},
      R"({"type":"deposited","data":{"amount":1}})" "\n");
  run({"append", f.dir, "acc-1", "--expected", "3"},
      R"({"type":"withdrawn","data":{"amount":2}})" "\n"
      R"({"type":"withdrawn","data":{"amount":3}})" "\n");
  run({"append", f.dir, "gone", "--expected", "any"},
      R"({"type":"x","data":null})" "\n" R"({"type":"x","data":null})" "\n");
  run({"append", f.dir, "soft", "--expected", "any"}, R"({"type":"x","data":1})" "\n");
  run({"append", f.dir, "revived", "--expected", "any"}, R"({"type":"x","data":1})" "\n");
  run({"delete", f.dir, "acc-1", "--to", "2"});
  run({"delete", f.dir, "gone", "--tombstone"});
  run({"delete", f.dir, "soft", "--soft"});
  run({"delete", f.dir, "revived", "--soft"});
  run({"append", f.dir, "revived", "--expected", "no-stream"}, R"({"type":"y","data":2})" "\n");
  run({"delete", f.dir, "never-written", "--tombstone"});
}

} // namespace

BOOST_AUTO_TEST_SUITE(cli_transfer)

BOOST_AUTO_TEST_CASE(export_import_export_is_byte_identical) {
  journal_fixture f;
  fill(f);
  auto first = cli({"export", f.dir});
  BOOST_TEST_REQUIRE(first.code == 0, first.err);
  auto lines = first.lines();
  BOOST_TEST_REQUIRE(lines.size() == 1u + 12u + 5u); // header, events, heads
  BOOST_TEST(lines[0].at("kind") == "header");
  BOOST_TEST(lines[1].at("payload_base64").is_string());
  BOOST_TEST(lines[1].at("metadata") == json::parse(R"([["user","bob"],["n","1"]])"));
  temp_dir tmp;
  auto copy = tmp.sub("copy");
  auto imported = cli({"import", copy}, first.out);
  BOOST_TEST_REQUIRE(imported.code == 0, imported.err);
  BOOST_TEST(imported.lines().at(0).at("events") == 12);
  auto second = cli({"export", copy});
  BOOST_TEST_REQUIRE(second.code == 0, second.err);
  BOOST_TEST(second.out == first.out);
  // The copy behaves like the original, not just prints like it.
  BOOST_TEST(cli_ok({"streams", copy}) == cli_ok({"streams", f.dir}));
  BOOST_TEST(cli_ok({"read", copy, "acc-1"}) == cli_ok({"read", f.dir, "acc-1"}));
  BOOST_TEST(cli({"read", copy, "gone"}).code == exit_codes::stream_deleted);
  BOOST_TEST(cli({"read", copy, "soft"}).code == exit_codes::stream_not_found);
  BOOST_TEST(cli_ok({"verify", copy})[0].at("ok") == true);
}

BOOST_AUTO_TEST_CASE(import_keeps_command_ids_so_retries_are_still_recognized) {
  journal_fixture f;
  fill(f);
  temp_dir tmp;
  auto copy = tmp.sub("copy");
  cli_ok({"import", copy}, cli({"export", f.dir}).out);
  auto retry = cli_ok({"append", copy, "acc-1", "--expected", "any", "--command-id", "open-1"},
                      R"({"type":"opened","data":{}})" "\n")[0];
  BOOST_TEST(retry.at("duplicate") == true);
  BOOST_TEST(retry.at("first_position") == 1);
  BOOST_TEST(retry.at("last_position") == 2);
}

BOOST_AUTO_TEST_CASE(import_needs_an_empty_journal) {
  journal_fixture f;
  fill(f);
  auto exported = cli({"export", f.dir}).out;
  auto r = cli({"import", f.dir}, exported);
  BOOST_TEST(r.code == exit_codes::invalid_input);
  BOOST_TEST(r.error().at("error") == "invalid_input");
}

BOOST_AUTO_TEST_CASE(import_refuses_input_that_is_not_an_export) {
  journal_fixture f;
  fill(f);
  auto events = cli({"read-all", f.dir}).out; // read output, not an export
  temp_dir tmp;
  auto r = cli({"import", tmp.sub("x")}, events);
  BOOST_TEST(r.code == exit_codes::invalid_input);
  BOOST_TEST(r.error().at("line") == 1);
  // A gap in positions is refused with the line that shows it.
  auto lines = cli({"export", f.dir}).out;
  auto second_event = lines.find("\n", lines.find("\n") + 1) + 1;
  auto third_event = lines.find("\n", second_event) + 1;
  auto gap = lines.substr(0, second_event) + lines.substr(third_event);
  auto g = cli({"import", tmp.sub("y")}, gap);
  BOOST_TEST(g.code == exit_codes::invalid_input);
  BOOST_TEST(g.error().at("line") == 3);
}

BOOST_AUTO_TEST_SUITE_END()
