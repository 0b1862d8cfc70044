// runtime_config: defaults, every key from a file, strict parsing with file:line errors,
// validation, and the sample file that lists every key.

#include <boost/test/unit_test.hpp>

#include "evident/runtime/config.hpp"

#include "support/temp_dir.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace evident;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Parses `text` onto a fresh config and returns the error message ("" when it parsed).
std::string parse_error(const std::string& text, const std::string& source = "test.ini") {
  runtime_config cfg;
  auto err = parse_config(cfg, text, source);
  if (err)
    BOOST_TEST(to_string(err.code) == "invalid_input");
  return err.message;
}

std::string get(const runtime_config& cfg, const std::string& key) {
  auto v = get_option(cfg, key);
  BOOST_REQUIRE_MESSAGE(v, "unknown key " << key);
  return *v;
}

// A non-default value for every key, in its text form. The test below checks that this
// list names exactly config_keys(), so a new key cannot go untested.
const std::map<std::string, std::string>& every_key() {
  static const std::map<std::string, std::string> values = {
      {"storage.data_dir", "/srv/evident/node-1"},
      {"storage.durability", "no_meta_sync"},
      {"storage.map_size", "128MiB"},
      {"storage.map_size_cap", "2TiB"},
      {"storage.file_headroom", "0"},
      {"storage.max_readers", "1024"},
      {"storage.index_lag_events", "50000"},
      {"limits.max_event_bytes", "1MiB"},
      {"limits.max_append_events", "500"},
      {"limits.max_append_bytes", "8MiB"},
      {"limits.max_stream_id_bytes", "200"},
      {"limits.max_id_bytes", "100"},
      {"limits.max_snapshot_bytes", "16MiB"},
      {"group_commit.max_batch_events", "1024"},
      {"group_commit.max_pending", "2000"},
      {"aggregates.idle_timeout", "30s"},
      {"aggregates.max_active", "5000"},
      {"aggregates.max_stash", "64"},
      {"aggregates.max_in_flight", "16"},
      {"aggregates.replay_batch", "128"},
      {"aggregates.append_timeout", "3s"},
      {"snapshots.every", "0"},
      {"snapshots.keep_last", "5"},
      {"scheduler.threads", "1"},
      {"scheduler.max_throughput", "20"},
      {"scheduler.policy", "sharing"},
      {"requests.ask_timeout", "1500ms"},
      {"views.read_batch", "256"},
      {"views.max_buffer_events", "4096"},
      {"views.checkpoint_every", "100"},
      {"views.checkpoint_interval", "250ms"},
      {"views.deliver_timeout", "30s"},
      {"views.commit_interval", "7ms"},
      {"sagas.max_attempts", "3"},
      {"sagas.backoff_initial", "20ms"},
      {"sagas.backoff_max", "2s"},
      {"sagas.command_timeout", "4s"},
      {"sagas.append_timeout", "6s"},
      {"sagas.max_in_flight_commands", "64"},
      {"sagas.max_in_flight_appends", "128"},
      {"sagas.tick_interval", "250ms"},
      {"shutdown.drain_timeout", "1min"},
  };
  return values;
}

std::string ini_of(const std::map<std::string, std::string>& values) {
  std::map<std::string, std::vector<std::string>> sections;
  for (const auto& [key, value] : values) {
    auto dot = key.find('.');
    sections[key.substr(0, dot)].push_back(key.substr(dot + 1) + " = " + value);
  }
  std::string out;
  for (const auto& [section, lines] : sections) {
    out += "[" + section + "]\n";
    for (const auto& l : lines)
      out += l + "\n";
  }
  return out;
}

runtime_config valid_config() {
  runtime_config cfg;
  cfg.storage.data_dir = "/tmp/evident-never-opened";
  return cfg;
}

} // namespace

BOOST_AUTO_TEST_SUITE(runtime_config_tests)

// -- defaults -----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(defaults_are_the_documented_values) {
  runtime_config cfg;
  BOOST_TEST(cfg.storage.data_dir.empty());
  BOOST_TEST(get(cfg, "storage.durability") == "fsync");
  BOOST_TEST(get(cfg, "storage.map_size") == "64MiB");
  BOOST_TEST(get(cfg, "storage.map_size_cap") == "64GiB");
  BOOST_TEST(get(cfg, "storage.file_headroom") == "8MiB");
  BOOST_TEST(get(cfg, "storage.max_readers") == "512");
  BOOST_TEST(get(cfg, "storage.index_lag_events") == "1000000");
  BOOST_TEST(get(cfg, "limits.max_event_bytes") == "4MiB");
  BOOST_TEST(get(cfg, "limits.max_append_events") == "10000");
  BOOST_TEST(get(cfg, "limits.max_append_bytes") == "64MiB");
  BOOST_TEST(get(cfg, "limits.max_stream_id_bytes") == "250");
  BOOST_TEST(get(cfg, "limits.max_id_bytes") == "250");
  BOOST_TEST(get(cfg, "limits.max_snapshot_bytes") == "256MiB");
  BOOST_TEST(get(cfg, "group_commit.max_batch_events") == "4096");
  BOOST_TEST(get(cfg, "group_commit.max_pending") == "10000");
  BOOST_TEST(get(cfg, "aggregates.idle_timeout") == "2min");
  BOOST_TEST(get(cfg, "aggregates.max_active") == "100000");
  BOOST_TEST(get(cfg, "aggregates.max_stash") == "1000");
  BOOST_TEST(get(cfg, "aggregates.max_in_flight") == "256");
  BOOST_TEST(get(cfg, "aggregates.replay_batch") == "1024");
  BOOST_TEST(get(cfg, "aggregates.append_timeout") == "10s");
  BOOST_TEST(get(cfg, "snapshots.every") == "1000");
  BOOST_TEST(get(cfg, "snapshots.keep_last") == "2");
  BOOST_TEST(get(cfg, "scheduler.threads") == "2");
  BOOST_TEST(get(cfg, "scheduler.max_throughput") == "50");
  BOOST_TEST(get(cfg, "scheduler.policy") == "stealing");
  BOOST_TEST(get(cfg, "requests.ask_timeout") == "5s");
  BOOST_TEST(get(cfg, "views.read_batch") == "4096");
  BOOST_TEST(get(cfg, "views.max_buffer_events") == "65536");
  BOOST_TEST(get(cfg, "views.checkpoint_every") == "1000");
  BOOST_TEST(get(cfg, "views.checkpoint_interval") == "1s");
  BOOST_TEST(get(cfg, "views.deliver_timeout") == "1min");
  BOOST_TEST(get(cfg, "views.commit_interval") == "3ms");
  BOOST_TEST(get(cfg, "shutdown.drain_timeout") == "10s");
  BOOST_TEST(get(cfg, "sagas.max_attempts") == "8");
  BOOST_TEST(get(cfg, "sagas.backoff_initial") == "50ms");
  BOOST_TEST(get(cfg, "sagas.backoff_max") == "5s");
  BOOST_TEST(get(cfg, "sagas.command_timeout") == "10s");
  BOOST_TEST(get(cfg, "sagas.append_timeout") == "10s");
  BOOST_TEST(get(cfg, "sagas.max_in_flight_commands") == "1024");
  BOOST_TEST(get(cfg, "sagas.max_in_flight_appends") == "2048");
  BOOST_TEST(get(cfg, "sagas.tick_interval") == "100ms");
}

BOOST_AUTO_TEST_CASE(the_default_journal_options_are_the_journals_defaults) {
  auto cfg = valid_config();
  auto j = cfg.journal();
  journal_options plain;
  BOOST_TEST(j.path == cfg.storage.data_dir);
  BOOST_TEST(j.create);
  BOOST_TEST(!j.read_only);
  BOOST_TEST(j.map_size == plain.map_size);
  BOOST_TEST(j.map_size_cap == plain.map_size_cap);
  BOOST_TEST(j.file_headroom == plain.file_headroom);
  BOOST_TEST(j.max_event_bytes == plain.max_event_bytes);
  BOOST_TEST(j.max_append_events == plain.max_append_events);
  BOOST_TEST(j.max_append_bytes == plain.max_append_bytes);
  BOOST_TEST(j.max_stream_id_bytes == plain.max_stream_id_bytes);
  BOOST_TEST(j.max_id_bytes == plain.max_id_bytes);
  BOOST_TEST(j.index_lag_events == plain.index_lag_events);
  BOOST_TEST(j.max_snapshot_bytes == plain.max_snapshot_bytes);
  BOOST_TEST(j.max_readers == plain.max_readers);
  BOOST_TEST(to_string(j.sync) == to_string(plain.sync));
}

// -- every key ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_key_list_of_this_test_is_complete) {
  std::set<std::string> tested;
  for (const auto& [key, value] : every_key())
    tested.insert(key);
  auto keys = config_keys();
  std::set<std::string> known(keys.begin(), keys.end());
  BOOST_TEST(keys.size() == known.size()); // no key twice
  BOOST_TEST(tested == known, "config_keys() and this test's list differ");
}

BOOST_AUTO_TEST_CASE(every_key_can_be_set_from_a_file) {
  runtime_config cfg;
  auto err = parse_config(cfg, ini_of(every_key()), "all.ini");
  BOOST_REQUIRE_MESSAGE(!err, err.message);
  for (const auto& [key, value] : every_key())
    BOOST_TEST(get(cfg, key) == value, key);
  // Spot checks on the typed members.
  BOOST_TEST(cfg.storage.data_dir == "/srv/evident/node-1");
  BOOST_CHECK(cfg.storage.sync == durability::no_meta_sync);
  BOOST_TEST(cfg.storage.map_size == size_t{128} << 20);
  BOOST_TEST(cfg.storage.map_size_cap == size_t{2} << 40);
  BOOST_TEST(cfg.storage.file_headroom == 0u);
  BOOST_TEST(cfg.group_commit.max_pending == 2000u);
  BOOST_TEST(cfg.aggregates.idle_timeout.count() == 30'000);
  BOOST_TEST(cfg.requests.ask_timeout.count() == 1'500);
  BOOST_TEST(cfg.shutdown.drain_timeout.count() == 60'000);
  BOOST_TEST(cfg.scheduler.threads == 1u);
  BOOST_TEST(cfg.snapshots.every == 0u);
  BOOST_TEST(cfg.sagas.max_attempts == 3u);
  BOOST_TEST(cfg.sagas.backoff_initial.count() == 20);
  BOOST_TEST(cfg.sagas.tick_interval.count() == 250);
  BOOST_TEST(!validate(cfg));
  auto j = cfg.journal();
  BOOST_TEST(j.max_id_bytes == 100u);
  BOOST_TEST(j.index_lag_events == 50'000u);
  BOOST_TEST(j.max_readers == 1024u);
}

BOOST_AUTO_TEST_CASE(every_key_can_be_set_in_code) {
  runtime_config cfg;
  for (const auto& [key, value] : every_key()) {
    auto err = set_option(cfg, key, value);
    BOOST_TEST(!err, key << ": " << err.message);
  }
  for (const auto& [key, value] : every_key())
    BOOST_TEST(get(cfg, key) == value, key);
  auto err = set_option(cfg, "storage.map_sise", "1MiB");
  BOOST_TEST(contains(err.message, "unknown key 'storage.map_sise'"));
  BOOST_TEST(!get_option(cfg, "nope"));
}

BOOST_AUTO_TEST_CASE(to_ini_round_trips) {
  runtime_config cfg;
  BOOST_REQUIRE(!parse_config(cfg, ini_of(every_key())));
  runtime_config back;
  auto err = parse_config(back, to_ini(cfg), "rendered.ini");
  BOOST_REQUIRE_MESSAGE(!err, err.message);
  for (const auto& key : config_keys())
    BOOST_TEST(get(back, key) == get(cfg, key), key);
}

BOOST_AUTO_TEST_CASE(the_sample_file_lists_every_key_with_its_default) {
  std::ifstream in{EVIDENT_SAMPLE_INI};
  BOOST_REQUIRE_MESSAGE(in, "cannot read " EVIDENT_SAMPLE_INI);
  std::stringstream buf;
  buf << in.rdbuf();
  auto text = buf.str();
  runtime_config cfg;
  auto err = parse_config(cfg, text, EVIDENT_SAMPLE_INI);
  BOOST_REQUIRE_MESSAGE(!err, err.message);
  BOOST_TEST(!validate(cfg));
  // Every key is written out, and all but the (required) data_dir have their default.
  runtime_config defaults;
  defaults.storage.data_dir = cfg.storage.data_dir;
  for (const auto& key : config_keys()) {
    auto name = key.substr(key.find('.') + 1);
    BOOST_TEST(contains(text, "\n" + name + " = "), key << " missing from the sample");
    BOOST_TEST(get(cfg, key) == get(defaults, key), key);
  }
  // The sample is what to_ini writes (regenerate it when a key changes).
  BOOST_TEST(text == to_ini(defaults));
}

// -- value syntax -------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(values_take_units_separators_quotes_and_whitespace) {
  runtime_config cfg;
  auto err = parse_config(cfg, "# a comment\r\n"
                               "; another\n"
                               "\n"
                               "  [ storage ]  \n"
                               "data_dir = \"/var/lib/my evident\"\r\n"
                               "map_size=2 GiB\n"
                               "map_size_cap = 1099511627776\n"
                               "index_lag_events = 1_000\n"
                               "[requests]\n"
                               "\task_timeout\t=\t1h\n"
                               "[aggregates]\n"
                               "idle_timeout = 90s\n"
                               "append_timeout = 250ms\n"
                               "[limits]\n"
                               "max_event_bytes = 512KiB\n"
                               "max_append_bytes = 100B\n");
  BOOST_REQUIRE_MESSAGE(!err, err.message);
  BOOST_TEST(cfg.storage.data_dir == "/var/lib/my evident");
  BOOST_TEST(cfg.storage.map_size == size_t{2} << 30);
  BOOST_TEST(cfg.storage.map_size_cap == size_t{1} << 40);
  BOOST_TEST(cfg.storage.index_lag_events == 1000u);
  BOOST_TEST(cfg.requests.ask_timeout.count() == 3'600'000);
  BOOST_TEST(cfg.aggregates.idle_timeout.count() == 90'000);
  BOOST_TEST(cfg.aggregates.append_timeout.count() == 250);
  BOOST_TEST(cfg.limits.max_event_bytes == 512u * 1024u);
  BOOST_TEST(cfg.limits.max_append_bytes == 100u);
  // Renders pick the largest exact unit.
  BOOST_TEST(get(cfg, "aggregates.idle_timeout") == "90s");
  BOOST_TEST(get(cfg, "storage.map_size_cap") == "1TiB");
  BOOST_TEST(get(cfg, "limits.max_append_bytes") == "100");
}

BOOST_AUTO_TEST_CASE(keys_not_in_the_file_keep_their_values) {
  runtime_config cfg;
  cfg.scheduler.threads = 3;
  BOOST_REQUIRE(!parse_config(cfg, "[storage]\nmap_size = 1MiB\n"));
  BOOST_TEST(cfg.scheduler.threads == 3u);
  BOOST_TEST(cfg.storage.map_size == size_t{1} << 20);
}

// -- errors name file:line ----------------------------------------------------------

BOOST_AUTO_TEST_CASE(an_unknown_key_is_an_error_naming_file_and_line) {
  auto msg = parse_error("[storage]\nmap_size = 1MiB\nmap_sise = 2MiB\n", "node.ini");
  BOOST_TEST(contains(msg, "node.ini:3:"), msg);
  BOOST_TEST(contains(msg, "unknown key 'map_sise' in [storage]"), msg);
  BOOST_TEST(contains(msg, "map_size_cap"), msg); // lists what is known
}

BOOST_AUTO_TEST_CASE(an_unknown_section_is_an_error_naming_file_and_line) {
  auto msg = parse_error("\n[storage]\n[clustr]\nseeds = a\n");
  BOOST_TEST(contains(msg, "test.ini:3:"), msg);
  BOOST_TEST(contains(msg, "unknown section [clustr]"), msg);
}

BOOST_AUTO_TEST_CASE(bad_values_are_errors_naming_file_line_and_key) {
  struct bad_case {
    std::string text;
    std::string expect;
  };
  std::vector<bad_case> cases = {
      {"[storage]\nmap_size = 64XB\n", "storage.map_size: bad size '64XB'"},
      {"[storage]\nmap_size = -1\n", "storage.map_size: bad size '-1'"},
      {"[storage]\nmap_size = 64MiB # comment\n", "bad size '64MiB # comment'"},
      {"[storage]\nmap_size = 99999999999TiB\n", "bad size"},
      {"[storage]\ndurability = fast\n", "storage.durability: bad value 'fast'"},
      {"[storage]\nindex_lag_events = 1e6\n", "storage.index_lag_events: bad count '1e6'"},
      {"[storage]\nindex_lag_events = 1__000\n", "bad count '1__000'"},
      {"[storage]\nindex_lag_events =\n", "bad count ''"},
      {"[storage]\nmax_readers = 99999999999999999999999\n", "bad count"},
      {"[requests]\nask_timeout = 5\n", "requests.ask_timeout: bad duration '5'"},
      {"[requests]\nask_timeout = 5 sec\n", "bad duration '5 sec'"},
      {"[requests]\nask_timeout = 0s\n", "requests.ask_timeout: 0ms is out of range"},
      {"[scheduler]\nthreads = 0\n", "scheduler.threads: 0 is out of range (1 to 256)"},
      {"[scheduler]\npolicy = fifo\n",
       "scheduler.policy: bad value 'fifo' (expected stealing or sharing)"},
      {"[storage]\ndurability = fast\n", "(expected fsync, no_meta_sync or no_sync)"},
      {"[storage]\ndata_dir = \"a\"b\"\n", "storage.data_dir: bad path"},
  };
  for (const auto& c : cases) {
    auto msg = parse_error(c.text);
    BOOST_TEST(contains(msg, "test.ini:2: "), c.text << " -> " << msg);
    BOOST_TEST(contains(msg, c.expect), c.text << " -> " << msg);
  }
}

BOOST_AUTO_TEST_CASE(malformed_lines_are_errors_naming_file_and_line) {
  auto msg = parse_error("[storage\n");
  BOOST_TEST(contains(msg, "test.ini:1: malformed section header"), msg);
  msg = parse_error("[storage]\njust words\n");
  BOOST_TEST(contains(msg, "test.ini:2: expected 'key = value'"), msg);
  msg = parse_error("map_size = 1MiB\n");
  BOOST_TEST(contains(msg, "test.ini:1: key 'map_size' outside a section"), msg);
  msg = parse_error("[storage]\n = 1\n");
  BOOST_TEST(contains(msg, "test.ini:2: missing key"), msg);
  msg = parse_error("[storage]\nmap_size = 1MiB\n[limits]\n[storage]\nmap_size = 2MiB\n");
  BOOST_TEST(contains(msg, "test.ini:5: storage.map_size is set twice (first on line 2)"), msg);
}

BOOST_AUTO_TEST_CASE(load_config_reads_a_file_and_names_it_in_errors) {
  evident::test::temp_dir dir;
  auto path = dir.sub("node.ini");
  {
    std::ofstream out{path};
    out << "[storage]\ndata_dir = " << dir.sub("data") << "\n[scheduler]\nthreads = 1\n";
  }
  auto cfg = load_config(path);
  BOOST_REQUIRE_MESSAGE(cfg, cfg.err().message);
  BOOST_TEST(cfg->storage.data_dir == dir.sub("data"));
  BOOST_TEST(cfg->scheduler.threads == 1u);
  BOOST_TEST(get(*cfg, "requests.ask_timeout") == "5s"); // the rest are defaults
  {
    std::ofstream out{path};
    out << "[storage]\n\nmap_size = lots\n";
  }
  auto bad = load_config(path);
  BOOST_REQUIRE(!bad);
  BOOST_TEST(contains(bad.err().message, path + ":3: storage.map_size: bad size 'lots'"),
             bad.err().message);
  auto missing = load_config(dir.sub("nope.ini"));
  BOOST_REQUIRE(!missing);
  BOOST_TEST(to_string(missing.err().code) == "io_error");
  BOOST_TEST(contains(missing.err().message, "nope.ini"));
}

// -- validation ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_config_without_data_dir_is_invalid) {
  runtime_config cfg;
  auto err = validate(cfg);
  BOOST_TEST(to_string(err.code) == "invalid_input");
  BOOST_TEST(contains(err.message, "storage.data_dir: is not set"), err.message);
  BOOST_TEST(!validate(valid_config()));
}

BOOST_AUTO_TEST_CASE(validation_names_the_key_of_a_value_set_in_code) {
  auto check = [](auto mutate, const std::string& expect) {
    auto cfg = valid_config();
    mutate(cfg);
    auto err = validate(cfg);
    BOOST_TEST(to_string(err.code) == "invalid_input", expect);
    BOOST_TEST(contains(err.message, expect), err.message);
  };
  check([](runtime_config& c) { c.scheduler.threads = 0; }, "scheduler.threads: 0 is out of range");
  check([](runtime_config& c) { c.requests.ask_timeout = 0ms; }, "requests.ask_timeout");
  check([](runtime_config& c) { c.shutdown.drain_timeout = -1ms; }, "shutdown.drain_timeout");
  check([](runtime_config& c) { c.group_commit.max_pending = 0; }, "group_commit.max_pending");
  check([](runtime_config& c) { c.group_commit.max_batch_events = 0; },
        "group_commit.max_batch_events");
  check([](runtime_config& c) { c.aggregates.max_in_flight = 0; }, "aggregates.max_in_flight");
  check([](runtime_config& c) { c.aggregates.idle_timeout = -1ms; }, "aggregates.idle_timeout");
  check([](runtime_config& c) { c.snapshots.keep_last = 0; }, "snapshots.keep_last");
  check([](runtime_config& c) { c.sagas.max_attempts = 0; }, "sagas.max_attempts: 0 is out of range");
  check([](runtime_config& c) { c.sagas.tick_interval = -1ms; }, "sagas.tick_interval");
  check(
      [](runtime_config& c) {
        c.sagas.backoff_initial = 2s;
        c.sagas.backoff_max = 1s;
      },
      "sagas.backoff_max (1s) is shorter than sagas.backoff_initial (2s)");
  check([](runtime_config& c) { c.views.commit_interval = -1ms; }, "views.commit_interval");
  check(
      [](runtime_config& c) {
        c.views.deliver_timeout = 5s;
        c.views.commit_interval = 5s;
      },
      "views.commit_interval (5s) is not below views.deliver_timeout (5s)");
  check([](runtime_config& c) { c.storage.map_size = 1024; },
        "storage.map_size: 1KiB is out of range");
  check([](runtime_config& c) { c.storage.sync = static_cast<durability>(9); },
        "storage.durability");
  check(
      [](runtime_config& c) {
        c.storage.map_size = size_t{1} << 30;
        c.storage.map_size_cap = size_t{512} << 20;
      },
      "storage.map_size_cap (512MiB) is smaller than storage.map_size (1GiB)");
  check(
      [](runtime_config& c) {
        c.limits.max_stream_id_bytes = 300;
        c.limits.max_id_bytes = 300;
      },
      "limits.max_stream_id_bytes + limits.max_id_bytes + 1 must not exceed 511");
  check(
      [](runtime_config& c) {
        c.limits.max_event_bytes = 2 << 20;
        c.limits.max_append_bytes = 1 << 20;
      },
      "limits.max_event_bytes (2MiB) exceeds limits.max_append_bytes (1MiB)");
}

BOOST_AUTO_TEST_SUITE_END()
