// The everyday commands: init, append, read, read-all, head, streams, delete, truncate,
// and the error contract (one JSON object on stderr, one exit code per error).

#include "cli_runner.hpp"

#include "evident/persistence/environment.hpp"
#include "evident/persistence/snapshot_store.hpp"

#include <filesystem>

using namespace evident::test;

namespace {

std::string n_events(int n, const std::string& type = "noted") {
  std::string out;
  for (int i = 1; i <= n; ++i)
    out += R"({"type":")" + type + R"(","data":{"i":)" + std::to_string(i) + "}}\n";
  return out;
}

std::vector<uint64_t> versions_of(const std::vector<json>& lines) {
  std::vector<uint64_t> result;
  for (auto& l : lines)
    result.push_back(l.at("version").get<uint64_t>());
  return result;
}

using versions = std::vector<uint64_t>;

} // namespace

BOOST_AUTO_TEST_SUITE(cli_commands)

BOOST_AUTO_TEST_CASE(init_creates_a_journal_and_reports_its_format_version) {
  temp_dir tmp;
  auto dir = tmp.sub("new");
  auto out = cli_ok({"init", dir});
  BOOST_TEST(out.size() == 1u);
  BOOST_TEST(out[0].at("format_version") == 2);
  BOOST_TEST(out[0].at("path").get<std::string>()
             == std::filesystem::absolute(dir).lexically_normal().string());
  BOOST_TEST(std::filesystem::exists(std::filesystem::path{dir} / "data.mdb"));
  auto again = cli_ok({"init", dir});
  BOOST_TEST(again[0].at("created") == false);
}

BOOST_AUTO_TEST_CASE(append_then_read_returns_every_field_as_written) {
  journal_fixture f;
  auto r = cli_ok({"append", f.dir, "acc-1", "--expected", "no-stream", "--command-id", "c-1"},
                  R"({"type":"opened","data":{"owner":"ann","limit":-5,"tags":["a","é"],"x":1.5,"ok":true,"none":null},)"
                  R"("metadata":{"user":"bob","retries":3,"obj":{"k":[1,2]}},)"
                  R"("id":"0b7a3215-5d68-4132-9ba1-e9c8a5602801","correlation_id":"corr","causation_id":"cause","schema":2})"
                  "\n"
                  R"({"type":"deposited","data":{"amount":100}})"
                  "\n");
  BOOST_TEST(r.at(0).at("first_version") == 1);
  BOOST_TEST(r.at(0).at("last_version") == 2);
  BOOST_TEST(r.at(0).at("first_position") == 1);
  BOOST_TEST(r.at(0).at("last_position") == 2);
  auto events = cli_ok({"read", f.dir, "acc-1"});
  BOOST_TEST_REQUIRE(events.size() == 2u);
  auto& e = events[0];
  BOOST_TEST(e.at("position") == 1);
  BOOST_TEST(e.at("stream") == "acc-1");
  BOOST_TEST(e.at("version") == 1);
  BOOST_TEST(e.at("type") == "opened");
  BOOST_TEST(e.at("schema") == 2);
  BOOST_TEST(e.at("id") == "0b7a3215-5d68-4132-9ba1-e9c8a5602801");
  BOOST_TEST(e.at("correlation_id") == "corr");
  BOOST_TEST(e.at("causation_id") == "cause");
  BOOST_TEST(e.at("command_id") == "c-1");
  BOOST_TEST(e.at("data") == json::parse(R"({"owner":"ann","limit":-5,"tags":["a","é"],"x":1.5,"ok":true,"none":null})"));
  // Strings stay strings; other metadata values are stored as their JSON text.
  BOOST_TEST(e.at("metadata") == json::parse(R"({"user":"bob","retries":"3","obj":"{\"k\":[1,2]}"})"));
  auto time = e.at("time").get<std::string>();
  BOOST_TEST(time.size() == 30u); // 2024-05-01T12:00:00.123456789Z
  BOOST_TEST(time.back() == 'Z');
  BOOST_TEST(e.at("time_ns").get<int64_t>() > 0);
  BOOST_TEST(events[1].at("data") == json::parse(R"({"amount":100})"));
  BOOST_TEST(events[1].at("schema") == 1);
  BOOST_TEST(events[1].at("id") != events[0].at("id"));
}

BOOST_AUTO_TEST_CASE(time_is_iso_8601_utc_with_nanoseconds) {
  journal_fixture f;
  // Import sets times exactly: 2001-09-09T01:46:40.000000007Z is 1e18 + 7 ns.
  auto export_text = std::string{R"({"kind":"header","export_format":1,"journal_format":1})"} + "\n"
                     + R"({"kind":"event","position":1,"stream":"s","version":1,"type":"t","schema":1,"time_ns":1000000000000000007,"id":"0b7a3215-5d68-4132-9ba1-e9c8a5602801","correlation_id":"","causation_id":"","command_id":"","metadata":[],"payload_base64":"wA=="})"
                     + "\n"
                     + R"({"kind":"event","position":2,"stream":"s","version":2,"type":"t","schema":1,"time_ns":-1,"id":"0b7a3215-5d68-4132-9ba1-e9c8a5602802","correlation_id":"","causation_id":"","command_id":"","metadata":[],"payload_base64":"wA=="})"
                     + "\n";
  temp_dir tmp;
  cli_ok({"import", tmp.sub("k")}, export_text);
  auto events = cli_ok({"read", tmp.sub("k"), "s"});
  BOOST_TEST_REQUIRE(events.size() == 2u);
  BOOST_TEST(events[0].at("time") == "2001-09-09T01:46:40.000000007Z");
  BOOST_TEST(events[1].at("time") == "1969-12-31T23:59:59.999999999Z");
  BOOST_TEST(events[0].at("data").is_null());
}

BOOST_AUTO_TEST_CASE(a_conflict_prints_expected_and_actual_and_exits_with_its_code) {
  journal_fixture f;
  f.append("acc-1", n_events(3));
  auto r = cli({"append", f.dir, "acc-1", "--expected", "1"}, n_events(1));
  BOOST_TEST(r.code == exit_codes::wrong_expected_version);
  BOOST_TEST(r.out.empty());
  auto err = r.error();
  BOOST_TEST(err.at("error") == "wrong_expected_version");
  BOOST_TEST(err.at("expected") == "1");
  BOOST_TEST(err.at("actual") == 3);
  BOOST_TEST(!err.at("message").get<std::string>().empty());
  auto no_stream = cli({"append", f.dir, "acc-1", "--expected", "no-stream"}, n_events(1));
  BOOST_TEST(no_stream.code == exit_codes::wrong_expected_version);
  BOOST_TEST(no_stream.error().at("expected") == "no_stream");
  auto exists = cli({"append", f.dir, "other", "--expected", "exists"}, n_events(1));
  BOOST_TEST(exists.code == exit_codes::wrong_expected_version);
  BOOST_TEST(exists.error().at("actual") == 0);
  // The right expectations pass.
  BOOST_TEST(f.append("acc-1", n_events(1), "3").at("last_version") == 4);
  BOOST_TEST(f.append("acc-1", n_events(1), "exists").at("last_version") == 5);
}

BOOST_AUTO_TEST_CASE(a_malformed_line_is_invalid_input_naming_the_line_and_writes_nothing) {
  journal_fixture f;
  f.append("acc-1", n_events(2));
  auto before = cli_ok({"read-all", f.dir});
  std::vector<std::pair<std::string, std::string>> cases = {
    {n_events(2) + "{not json\n", "line 3"},
    {n_events(1) + "[1,2]\n", "line 2"},
    {n_events(1) + R"({"data":{}})" + "\n", "line 2"},                       // no type
    {R"({"type":"t"})" "\n", "line 1"},                                       // no data
    {R"({"type":"t","data":{},"id":"nope"})" "\n", "line 1"},                 // bad id
    {R"({"type":"t","data":{},"schema":0})" "\n", "line 1"},                  // bad schema
    {R"({"type":"t","data":{},"typo":1})" "\n", "line 1"},                    // unknown field
    {R"({"type":"t","data_base64":"***"})" "\n", "line 1"},                   // bad base64
    {"\n" + n_events(1) + std::string(300, '[') + std::string(300, ']') + "\n", "line 3"},
  };
  for (auto& [input, where] : cases) {
    auto r = cli({"append", f.dir, "acc-1", "--expected", "any"}, input);
    BOOST_TEST(r.code == exit_codes::invalid_input, input);
    auto err = r.error();
    BOOST_TEST(err.at("error") == "invalid_input");
    BOOST_TEST(err.at("message").get<std::string>().find(where) != std::string::npos,
               err.dump());
  }
  BOOST_TEST(cli_ok({"read-all", f.dir}) == before);
}

BOOST_AUTO_TEST_CASE(a_payload_that_is_not_msgpack_reads_as_base64) {
  journal_fixture f;
  f.append("raw", R"({"type":"blob","data_base64":"AAEC"})" "\n"
                  R"({"type":"bin","data":{"$bin":"AAEC"}})" "\n");
  auto events = cli_ok({"read", f.dir, "raw"});
  BOOST_TEST_REQUIRE(events.size() == 2u);
  BOOST_TEST(events[0].at("data_base64") == "AAEC");
  BOOST_TEST(!events[0].contains("data"));
  // A msgpack bin value is shown as {"$bin": base64} and written back the same way.
  BOOST_TEST(events[1].at("data") == json::parse(R"({"$bin":"AAEC"})"));
}

BOOST_AUTO_TEST_CASE(a_retried_command_id_writes_nothing_and_returns_the_first_result) {
  journal_fixture f;
  auto first = cli_ok({"append", f.dir, "acc-1", "--expected", "any", "--command-id", "x"},
                      n_events(2))[0];
  auto again = cli_ok({"append", f.dir, "acc-1", "--expected", "any", "--command-id", "x"},
                      n_events(2))[0];
  BOOST_TEST(again.at("duplicate") == true);
  BOOST_TEST(again.at("first_position") == first.at("first_position"));
  BOOST_TEST(again.at("last_version") == 2);
  BOOST_TEST(cli_ok({"read-all", f.dir}).size() == 2u);
}

BOOST_AUTO_TEST_CASE(read_windows_follow_from_to_max_and_direction) {
  journal_fixture f;
  f.append("s", n_events(10));
  BOOST_TEST(versions_of(cli_ok({"read", f.dir, "s"})) == (versions{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  BOOST_TEST(versions_of(cli_ok({"read", f.dir, "s", "--from", "4", "--to", "6"})) == (versions{4, 5, 6}));
  BOOST_TEST(versions_of(cli_ok({"read", f.dir, "s", "--from", "8", "--max", "5"})) == (versions{8, 9, 10}));
  BOOST_TEST(versions_of(cli_ok({"read", f.dir, "s", "--backward", "--max", "3"})) == (versions{10, 9, 8}));
  BOOST_TEST(versions_of(cli_ok({"read", f.dir, "s", "--backward", "--from", "5", "--to", "3"})) == (versions{5, 4, 3}));
  BOOST_TEST(cli_ok({"read", f.dir, "s", "--from", "7", "--to", "3"}).empty());
  BOOST_TEST(cli_ok({"read", f.dir, "s", "--max", "0"}).empty());
  f.append("t", n_events(2));
  auto all = cli_ok({"read-all", f.dir, "--from", "10", "--max", "2"});
  BOOST_TEST_REQUIRE(all.size() == 2u);
  BOOST_TEST(all[0].at("position") == 10);
  BOOST_TEST(all[0].at("stream") == "s");
  BOOST_TEST(all[1].at("position") == 11);
  BOOST_TEST(all[1].at("stream") == "t");
}

BOOST_AUTO_TEST_CASE(delete_to_and_truncate_hide_a_prefix_but_keep_the_version) {
  journal_fixture f;
  f.append("s", n_events(6));
  auto h = cli_ok({"delete", f.dir, "s", "--to", "2"})[0];
  BOOST_TEST(h == json::parse(R"({"stream":"s","version":6,"state":"live","truncate_before":3})"));
  BOOST_TEST(versions_of(cli_ok({"read", f.dir, "s"})) == (versions{3, 4, 5, 6}));
  h = cli_ok({"truncate", f.dir, "s", "--before", "5"})[0];
  BOOST_TEST(h.at("truncate_before") == 5);
  BOOST_TEST(versions_of(cli_ok({"read", f.dir, "s", "--backward"})) == (versions{6, 5}));
  // Truncating never moves back.
  BOOST_TEST(cli_ok({"truncate", f.dir, "s", "--before", "2"})[0].at("truncate_before") == 5);
  // The log keeps everything.
  BOOST_TEST(cli_ok({"read-all", f.dir}).size() == 6u);
  BOOST_TEST(f.append("s", n_events(1), "6").at("last_version") == 7);
}

BOOST_AUTO_TEST_CASE(soft_delete_reads_as_not_found_and_numbering_goes_on) {
  journal_fixture f;
  f.append("s", n_events(3));
  auto h = cli_ok({"delete", f.dir, "s", "--soft"})[0];
  BOOST_TEST(h == json::parse(R"({"stream":"s","version":3,"state":"soft_deleted","truncate_before":4})"));
  auto r = cli({"read", f.dir, "s"});
  BOOST_TEST(r.code == exit_codes::stream_not_found);
  BOOST_TEST(r.error().at("error") == "stream_not_found");
  BOOST_TEST(f.append("s", n_events(1), "no-stream").at("first_version") == 4);
  BOOST_TEST(versions_of(cli_ok({"read", f.dir, "s"})) == (versions{4}));
  BOOST_TEST(cli_ok({"head", f.dir, "s"})[0].at("state") == "live");
}

BOOST_AUTO_TEST_CASE(a_tombstoned_stream_refuses_reads_and_appends) {
  journal_fixture f;
  f.append("s", n_events(2));
  auto h = cli_ok({"delete", f.dir, "s", "--tombstone"})[0];
  BOOST_TEST(h.at("state") == "tombstoned");
  auto r = cli({"read", f.dir, "s"});
  BOOST_TEST(r.code == exit_codes::stream_deleted);
  BOOST_TEST(r.error().at("error") == "stream_deleted");
  auto a = cli({"append", f.dir, "s", "--expected", "any"}, n_events(1));
  BOOST_TEST(a.code == exit_codes::stream_deleted);
  auto t = cli({"truncate", f.dir, "s", "--before", "2"});
  BOOST_TEST(t.code == exit_codes::stream_deleted);
}

BOOST_AUTO_TEST_CASE(delete_needs_exactly_one_mode) {
  journal_fixture f;
  f.append("s", n_events(2));
  BOOST_TEST(cli({"delete", f.dir, "s"}).code == exit_codes::invalid_input);
  BOOST_TEST(cli({"delete", f.dir, "s", "--soft", "--tombstone"}).code == exit_codes::invalid_input);
  BOOST_TEST(cli({"delete", f.dir, "s", "--to", "1", "--soft"}).code == exit_codes::invalid_input);
  BOOST_TEST(cli({"delete", f.dir, "missing", "--to", "1"}).code == exit_codes::stream_not_found);
}

BOOST_AUTO_TEST_CASE(head_and_streams_report_version_and_state) {
  journal_fixture f;
  f.append("b", n_events(2));
  f.append("a", n_events(3));
  f.append("c", n_events(1));
  cli_ok({"delete", f.dir, "c", "--tombstone"});
  BOOST_TEST(cli_ok({"head", f.dir, "a"})[0]
             == json::parse(R"({"stream":"a","version":3,"state":"live","truncate_before":0})"));
  BOOST_TEST(cli_ok({"head", f.dir, "never"})[0].at("version") == 0);
  auto all = cli_ok({"streams", f.dir});
  BOOST_TEST_REQUIRE(all.size() == 3u);
  BOOST_TEST(all[0] == json::parse(R"({"stream":"a","version":3,"state":"live"})"));
  BOOST_TEST(all[1] == json::parse(R"({"stream":"b","version":2,"state":"live"})"));
  BOOST_TEST(all[2] == json::parse(R"({"stream":"c","version":1,"state":"tombstoned"})"));
  auto stats = cli_ok({"stats", f.dir})[0];
  BOOST_TEST(stats.at("events") == 6);
  BOOST_TEST(stats.at("streams") == 3);
  BOOST_TEST(stats.at("last_position") == 6);
  BOOST_TEST(stats.at("format_version") == 2);
}

BOOST_AUTO_TEST_CASE(snapshots_of_a_stream_without_any_is_an_empty_list) {
  journal_fixture f;
  f.append("s", n_events(1));
  auto r = cli({"snapshots", f.dir, "s"});
  BOOST_TEST(r.code == 0, r.err);
  BOOST_TEST(r.out.empty());
}

BOOST_AUTO_TEST_CASE(snapshots_lists_each_snapshot_without_its_state) {
  journal_fixture f;
  f.append("s", n_events(5));
  {
    // Snapshots are written by aggregates, not by the CLI: use the store directly.
    evident::journal_options opts;
    opts.path = f.dir;
    opts.create = false;
    auto env = evident::environment::open(opts);
    BOOST_TEST_REQUIRE(static_cast<bool>(env));
    evident::lmdb_snapshot_store store{*env};
    auto snap = [](std::string stream, uint64_t version, uint32_t schema, int64_t time_ns,
                   std::string state) {
      evident::snapshot s;
      s.stream = std::move(stream);
      s.version = version;
      s.type = "acc.state";
      s.schema = schema;
      s.time_ns = time_ns;
      s.state = std::move(state);
      return s;
    };
    BOOST_TEST(!store.save(snap("s", 2, 1, 1'000'000'000'000'000'007, "abc")));
    BOOST_TEST(!store.save(snap("s", 5, 2, 1'000'000'000'000'000'008, std::string(1000, 'x'))));
    BOOST_TEST(!store.save(snap("other", 1, 1, 1, "z")));
  }
  auto list = cli_ok({"snapshots", f.dir, "s"});
  BOOST_TEST_REQUIRE(list.size() == 2u);
  BOOST_TEST(list[0] == json::parse(R"({"stream":"s","version":2,"type":"acc.state","schema":1,)"
                                    R"("time":"2001-09-09T01:46:40.000000007Z","time_ns":1000000000000000007,"size":3})"));
  BOOST_TEST(list[1].at("version") == 5);
  BOOST_TEST(list[1].at("schema") == 2);
  BOOST_TEST(list[1].at("size") == 1000);
  BOOST_TEST(cli_ok({"stats", f.dir})[0].at("snapshots") == 3);
}

BOOST_AUTO_TEST_CASE(read_commands_never_create_a_journal) {
  temp_dir tmp;
  auto dir = tmp.sub("absent");
  for (auto args : std::vector<std::vector<std::string>>{
         {"read", dir, "s"}, {"read-all", dir}, {"streams", dir}, {"head", dir, "s"},
         {"verify", dir}, {"stats", dir}, {"export", dir}, {"snapshots", dir, "s"}}) {
    auto r = cli(args);
    BOOST_TEST(r.code == exit_codes::not_a_journal, args[0]);
    BOOST_TEST(r.error().at("error") == "not_a_journal");
  }
  BOOST_TEST(cli({"append", dir, "s", "--expected", "any"}, n_events(1)).code
             == exit_codes::not_a_journal);
  BOOST_TEST(!std::filesystem::exists(dir));
  // An empty directory is no journal either, and stays empty.
  std::filesystem::create_directories(dir);
  BOOST_TEST(cli({"read-all", dir}).code == exit_codes::not_a_journal);
  BOOST_TEST(std::filesystem::is_empty(dir));
}

BOOST_AUTO_TEST_CASE(usage_errors_are_invalid_input_as_json) {
  journal_fixture f;
  std::vector<std::vector<std::string>> cases = {
    {},
    {"frobnicate"},
    {"read"},
    {"read", f.dir, "s", "--max", "-1"},
    {"read", f.dir, "s", "--from", "x"},
    {"append", f.dir, "s"},
    {"append", f.dir, "s", "--expected", "sometimes"},
    {"truncate", f.dir, "s"},
    {"read", f.dir, "s", "extra"},
    {"read", f.dir, ""},
  };
  for (auto& args : cases) {
    auto r = cli(args);
    BOOST_TEST(r.code == exit_codes::invalid_input, r.err);
    BOOST_TEST(r.error().at("error") == "invalid_input");
  }
}

BOOST_AUTO_TEST_CASE(help_lists_every_exit_code) {
  auto r = cli({"--help"});
  BOOST_TEST(r.code == 0);
  for (auto name : {"wrong_expected_version", "stream_deleted", "stream_not_found", "corrupted",
                    "storage_full", "too_large", "invalid_input", "not_a_journal",
                    "unsupported_format", "io_error"})
    BOOST_TEST(r.out.find(name) != std::string::npos, name);
  BOOST_TEST(r.out.find("11  wrong_expected_version") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
