#include "evident/runtime/config.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <utility>

namespace evident {

std::string_view to_string(scheduler_policy x) noexcept {
  switch (x) {
    case scheduler_policy::stealing:
      return "stealing";
    case scheduler_policy::sharing:
      return "sharing";
  }
  return "unknown";
}

journal_options runtime_config::journal() const {
  journal_options result;
  result.path = storage.data_dir;
  result.create = true;
  result.read_only = false;
  result.sync = storage.sync;
  result.map_size = storage.map_size;
  result.map_size_cap = storage.map_size_cap;
  result.file_headroom = storage.file_headroom;
  result.max_readers = storage.max_readers;
  result.index_lag_events = storage.index_lag_events;
  result.max_event_bytes = limits.max_event_bytes;
  result.max_append_events = limits.max_append_events;
  result.max_append_bytes = limits.max_append_bytes;
  result.max_stream_id_bytes = limits.max_stream_id_bytes;
  result.max_id_bytes = limits.max_id_bytes;
  result.max_snapshot_bytes = limits.max_snapshot_bytes;
  return result;
}

namespace {

// -- text helpers -------------------------------------------------------------------

std::string_view trim(std::string_view x) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!x.empty() && is_space(x.front()))
    x.remove_prefix(1);
  while (!x.empty() && is_space(x.back()))
    x.remove_suffix(1);
  return x;
}

error bad(std::string_view key, std::string msg) {
  std::string text{key};
  text += ": ";
  text += msg;
  return error{errc::invalid_input, std::move(text)};
}

// Digits with optional single '_' between them. No sign, no spaces.
std::optional<uint64_t> parse_uint(std::string_view x) {
  if (x.empty() || x.front() == '_' || x.back() == '_')
    return std::nullopt;
  std::string digits;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == '_') {
      if (x[i - 1] == '_')
        return std::nullopt;
      continue;
    }
    if (x[i] < '0' || x[i] > '9')
      return std::nullopt;
    digits += x[i];
  }
  uint64_t result = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), result);
  if (ec != std::errc{} || ptr != digits.data() + digits.size())
    return std::nullopt;
  return result;
}

// Splits "64MiB" / "64 MiB" into number and unit.
std::pair<std::string_view, std::string_view> split_unit(std::string_view x) {
  size_t i = 0;
  while (i < x.size() && ((x[i] >= '0' && x[i] <= '9') || x[i] == '_'))
    ++i;
  return {x.substr(0, i), trim(x.substr(i))};
}

struct unit {
  std::string_view name;
  uint64_t factor;
};

constexpr unit size_units[] = {
    {"TiB", uint64_t{1} << 40},
    {"GiB", uint64_t{1} << 30},
    {"MiB", uint64_t{1} << 20},
    {"KiB", uint64_t{1} << 10},
    {"B", 1},
};

// Milliseconds per unit.
constexpr unit duration_units[] = {
    {"h", 3'600'000},
    {"min", 60'000},
    {"s", 1'000},
    {"ms", 1},
};

template <size_t N>
std::optional<uint64_t> parse_with_units(std::string_view x, const unit (&units)[N],
                                         bool unit_required) {
  auto [num, u] = split_unit(x);
  auto n = parse_uint(num);
  if (!n)
    return std::nullopt;
  if (u.empty())
    return unit_required ? std::nullopt : n;
  for (const auto& candidate : units)
    if (candidate.name == u) {
      if (*n > std::numeric_limits<uint64_t>::max() / candidate.factor)
        return std::nullopt;
      return *n * candidate.factor;
    }
  return std::nullopt;
}

template <size_t N>
std::string render_with_units(uint64_t x, const unit (&units)[N], std::string_view plain) {
  if (x == 0)
    return "0" + std::string{plain};
  for (const auto& u : units)
    if (u.factor > 1 && x % u.factor == 0)
      return std::to_string(x / u.factor) + std::string{u.name};
  return std::to_string(x) + std::string{plain};
}

std::string render_size(uint64_t x) {
  return render_with_units(x, size_units, "");
}

std::string render_duration(std::chrono::milliseconds x) {
  return render_with_units(static_cast<uint64_t>(x.count()), duration_units, "ms");
}

// -- the key table ------------------------------------------------------------------

// One row per key: how to set it from text, render it, and check its range. The table
// is the single list of keys: the parser, to_ini, config_keys and validate walk it.
struct entry {
  std::string section;
  std::string name;
  /// One line for to_ini, without the default (added from the defaults).
  std::string doc;
  std::function<status(runtime_config&, std::string_view)> set;
  std::function<std::string(const runtime_config&)> get;
  std::function<status(const runtime_config&)> check;

  std::string key() const {
    return section + "." + name;
  }
};

// `ref(cfg)` returns a reference to the member (const for a const config).
template <class Ref>
entry size_entry(std::string section, std::string name, std::string doc, Ref ref, uint64_t min,
                 uint64_t max) {
  entry e{section, name, std::move(doc), {}, {}, {}};
  auto key = e.key();
  auto range = [key, min, max](uint64_t v) -> status {
    if (v < min || v > max)
      return bad(key, render_size(v) + " is out of range (" + render_size(min) + " to "
                          + render_size(max) + ")");
    return {};
  };
  e.set = [key, ref, range](runtime_config& cfg, std::string_view text) -> status {
    auto v = parse_with_units(text, size_units, false);
    if (!v || *v > std::numeric_limits<size_t>::max())
      return bad(key, "bad size '" + std::string{text}
                          + "' (expected an integer with an optional unit B, KiB, MiB, GiB "
                            "or TiB, e.g. 64MiB)");
    if (auto err = range(*v))
      return err;
    ref(cfg) = static_cast<std::remove_reference_t<decltype(ref(cfg))>>(*v);
    return {};
  };
  e.get = [ref](const runtime_config& cfg) { return render_size(ref(cfg)); };
  e.check
      = [ref, range](const runtime_config& cfg) { return range(static_cast<uint64_t>(ref(cfg))); };
  return e;
}

template <class Ref>
entry count_entry(std::string section, std::string name, std::string doc, Ref ref, uint64_t min,
                  uint64_t max) {
  entry e{section, name, std::move(doc), {}, {}, {}};
  auto key = e.key();
  auto range = [key, min, max](uint64_t v) -> status {
    if (v < min || v > max)
      return bad(key, std::to_string(v) + " is out of range (" + std::to_string(min) + " to "
                          + std::to_string(max) + ")");
    return {};
  };
  e.set = [key, ref, range](runtime_config& cfg, std::string_view text) -> status {
    using value_type = std::remove_reference_t<decltype(ref(cfg))>;
    auto v = parse_uint(text);
    if (!v || *v > std::numeric_limits<value_type>::max())
      return bad(key, "bad count '" + std::string{text}
                          + "' (expected a non-negative integer, e.g. 1000 or 1_000)");
    if (auto err = range(*v))
      return err;
    ref(cfg) = static_cast<value_type>(*v);
    return {};
  };
  e.get = [ref](const runtime_config& cfg) { return std::to_string(ref(cfg)); };
  e.check
      = [ref, range](const runtime_config& cfg) { return range(static_cast<uint64_t>(ref(cfg))); };
  return e;
}

template <class Ref>
entry duration_entry(std::string section, std::string name, std::string doc, Ref ref,
                     std::chrono::milliseconds min, std::chrono::milliseconds max) {
  entry e{section, name, std::move(doc), {}, {}, {}};
  auto key = e.key();
  auto range = [key, min, max](std::chrono::milliseconds v) -> status {
    if (v < min || v > max)
      return bad(key, render_duration(v) + " is out of range (" + render_duration(min) + " to "
                          + render_duration(max) + ")");
    return {};
  };
  e.set = [key, ref, range](runtime_config& cfg, std::string_view text) -> status {
    auto v = parse_with_units(text, duration_units, true);
    if (!v || *v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return bad(key, "bad duration '" + std::string{text}
                          + "' (expected an integer with a unit ms, s, min or h, e.g. 5s)");
    std::chrono::milliseconds d{static_cast<int64_t>(*v)};
    if (auto err = range(d))
      return err;
    ref(cfg) = d;
    return {};
  };
  e.get = [ref](const runtime_config& cfg) { return render_duration(ref(cfg)); };
  e.check = [ref, range](const runtime_config& cfg) { return range(ref(cfg)); };
  return e;
}

// A key whose value is one of `values`, each spelled as its to_string.
template <class Ref, class Enum>
entry choice_entry(std::string section, std::string name, std::string doc, Ref ref,
                   std::vector<Enum> values) {
  entry e{section, name, std::move(doc), {}, {}, {}};
  auto key = e.key();
  std::string expected;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0)
      expected += i + 1 == values.size() ? " or " : ", ";
    expected += to_string(values[i]);
  }
  e.set = [key, ref, values, expected](runtime_config& cfg, std::string_view text) -> status {
    for (auto x : values)
      if (to_string(x) == text) {
        ref(cfg) = x;
        return {};
      }
    return bad(key, "bad value '" + std::string{text} + "' (expected " + expected + ")");
  };
  e.get = [ref](const runtime_config& cfg) { return std::string{to_string(ref(cfg))}; };
  e.check = [key, ref, values](const runtime_config& cfg) -> status {
    if (std::find(values.begin(), values.end(), ref(cfg)) == values.end())
      return bad(key, "not one of the allowed values");
    return {};
  };
  return e;
}

entry data_dir_entry() {
  entry e{"storage",
          "data_dir",
          "Directory of the journal (data.mdb, lock.mdb); created if missing. Relative "
          "paths start at the process's working directory.",
          {},
          {},
          {}};
  auto key = e.key();
  e.set = [key](runtime_config& cfg, std::string_view text) -> status {
    if (text.size() >= 2 && text.front() == '"' && text.back() == '"')
      text = text.substr(1, text.size() - 2);
    if (text.find('"') != std::string_view::npos)
      return bad(key, "bad path '" + std::string{text} + "' (quotes only around the whole value)");
    for (auto c : text)
      if (static_cast<unsigned char>(c) < 0x20)
        return bad(key, "the path contains a control character");
    cfg.storage.data_dir = std::string{text};
    return {};
  };
  e.get = [](const runtime_config& cfg) { return cfg.storage.data_dir; };
  e.check = [key](const runtime_config& cfg) -> status {
    if (cfg.storage.data_dir.empty())
      return bad(key, "is not set (the directory of the journal)");
    return {};
  };
  return e;
}

constexpr uint64_t kib = uint64_t{1} << 10;
constexpr uint64_t mib = uint64_t{1} << 20;
constexpr uint64_t gib = uint64_t{1} << 30;
constexpr uint64_t tib = uint64_t{1} << 40;
constexpr uint64_t count_max = uint64_t{1} << 32;

using ms = std::chrono::milliseconds;
constexpr ms day{86'400'000};

const std::vector<entry>& table() {
  static const std::vector<entry> rows = [] {
    std::vector<entry> t;
    // [storage]
    t.push_back(data_dir_entry());
    t.push_back(choice_entry(
        "storage", "durability",
        "What a crash may lose. fsync: nothing acknowledged, even on power loss. "
        "no_meta_sync: a machine crash may roll back the last commit. no_sync: a machine "
        "crash may lose recent commits (tests, benchmarks).",
        [](auto& c) -> auto& { return c.storage.sync; },
        std::vector{durability::fsync_each_commit, durability::no_meta_sync, durability::no_sync}));
    t.push_back(size_entry(
        "storage", "map_size", "Initial LMDB map size; the file grows with use, not to this size.",
        [](auto& c) -> auto& { return c.storage.map_size; }, 64 * kib, 64 * tib));
    t.push_back(size_entry(
        "storage", "map_size_cap",
        "The map doubles on MDB_MAP_FULL up to this; at the cap appends fail with storage_full.",
        [](auto& c) -> auto& { return c.storage.map_size_cap; }, 64 * kib, 64 * tib));
    t.push_back(size_entry(
        "storage", "file_headroom",
        "Zero-filled bytes kept past the data in data.mdb: a commit then overwrites "
        "allocated blocks instead of growing the file, which makes its flush cheaper. 0: off.",
        [](auto& c) -> auto& { return c.storage.file_headroom; }, 0, 1 * tib));
    t.push_back(count_entry(
        "storage", "max_readers",
        "LMDB reader slots: threads or actors reading at the same time, across processes.",
        [](auto& c) -> auto& { return c.storage.max_readers; }, 1, 65'536));
    t.push_back(count_entry(
        "storage", "index_lag_events",
        "Events the per-stream index may lag behind the log before it is written in bulk.",
        [](auto& c) -> auto& { return c.storage.index_lag_events; }, 1, uint64_t{1} << 40));
    // [limits]
    t.push_back(size_entry(
        "limits", "max_event_bytes",
        "Largest encoded event (envelope, metadata, payload); larger is too_large.",
        [](auto& c) -> auto& { return c.limits.max_event_bytes; }, 1, 4 * gib));
    t.push_back(count_entry(
        "limits", "max_append_events", "Most events in one append.",
        [](auto& c) -> auto& { return c.limits.max_append_events; }, 1, count_max));
    t.push_back(size_entry(
        "limits", "max_append_bytes", "Largest total encoded size of one append.",
        [](auto& c) -> auto& { return c.limits.max_append_bytes; }, 1, 64 * gib));
    t.push_back(count_entry(
        "limits", "max_stream_id_bytes",
        "Longest stream id in bytes (stream + id limits + 1 must fit LMDB's 511-byte keys).",
        [](auto& c) -> auto& { return c.limits.max_stream_id_bytes; }, 1, 510));
    t.push_back(count_entry(
        "limits", "max_id_bytes",
        "Longest command, correlation or causation id, type or checkpoint name, in bytes.",
        [](auto& c) -> auto& { return c.limits.max_id_bytes; }, 1, 510));
    t.push_back(size_entry(
        "limits", "max_snapshot_bytes", "Largest snapshot state.",
        [](auto& c) -> auto& { return c.limits.max_snapshot_bytes; }, 1, 64 * gib));
    // [group_commit]
    t.push_back(count_entry(
        "group_commit", "max_batch_events",
        "Most events in one LMDB transaction (one fsync); a larger append goes alone.",
        [](auto& c) -> auto& { return c.group_commit.max_batch_events; }, 1, count_max));
    t.push_back(count_entry(
        "group_commit", "max_pending",
        "Most appends the writer holds uncommitted; past it appends get overloaded at once.",
        [](auto& c) -> auto& { return c.group_commit.max_pending; }, 1, count_max));
    // [aggregates]
    t.push_back(duration_entry(
        "aggregates", "idle_timeout",
        "An aggregate that got no message for this long passivates (the next command "
        "recovers it); 0s = never.",
        [](auto& c) -> auto& { return c.aggregates.idle_timeout; }, ms{0}, 365 * day));
    t.push_back(count_entry(
        "aggregates", "max_active",
        "Most live aggregates on this node; one more passivates the least recently used.",
        [](auto& c) -> auto& { return c.aggregates.max_active; }, 1, count_max));
    t.push_back(count_entry(
        "aggregates", "max_stash",
        "Commands one aggregate holds undecided (recovering, or max_in_flight pending); "
        "more get overloaded at once (0 = refuse all).",
        [](auto& c) -> auto& { return c.aggregates.max_stash; }, 0, count_max));
    t.push_back(count_entry(
        "aggregates", "max_in_flight",
        "Commands one aggregate has decided and not yet answered (appends at the writer).",
        [](auto& c) -> auto& { return c.aggregates.max_in_flight; }, 1, count_max));
    t.push_back(count_entry(
        "aggregates", "replay_batch", "Events replayed per step of a recovery.",
        [](auto& c) -> auto& { return c.aggregates.replay_batch; }, 1, count_max));
    t.push_back(duration_entry(
        "aggregates", "append_timeout",
        "How long an aggregate waits for the writer; past it the outcome is unknown and the "
        "aggregate stops.",
        [](auto& c) -> auto& { return c.aggregates.append_timeout; }, ms{1}, day));
    // [snapshots]
    t.push_back(count_entry(
        "snapshots", "every",
        "Snapshot an aggregate every this many events (0 = never), for aggregate types "
        "without a snapshot policy of their own.",
        [](auto& c) -> auto& { return c.snapshots.every; }, 0, uint64_t{1} << 40));
    t.push_back(count_entry(
        "snapshots", "keep_last",
        "Snapshots kept per aggregate (same types as 'every'); older ones are removed.",
        [](auto& c) -> auto& { return c.snapshots.keep_last; }, 1, 1'000'000));
    // [scheduler]
    t.push_back(count_entry(
        "scheduler", "threads",
        "CAF worker threads (scheduler.max-threads); the journal writer has its own thread "
        "on top.",
        [](auto& c) -> auto& { return c.scheduler.threads; }, 1, 256));
    t.push_back(count_entry(
        "scheduler", "max_throughput",
        "Messages a worker handles for one actor before it turns to the next "
        "(scheduler.max-throughput): bounds how long one busy actor keeps others waiting.",
        [](auto& c) -> auto& { return c.scheduler.max_throughput; }, 1, 1'000'000));
    t.push_back(choice_entry(
        "scheduler", "policy",
        "How idle workers wait for work (scheduler.policy). stealing: poll, sleeping 50 us "
        "between polls, before they block. sharing: block at once on one shared queue; "
        "cheaper with a single worker, which has no one to steal from.",
        [](auto& c) -> auto& { return c.scheduler.policy; },
        std::vector{scheduler_policy::stealing, scheduler_policy::sharing}));
    // [requests]
    t.push_back(duration_entry(
        "requests", "ask_timeout", "Default wait of runtime::append and command asks.",
        [](auto& c) -> auto& { return c.requests.ask_timeout; }, ms{1}, day));
    // [views]
    t.push_back(count_entry(
        "views", "read_batch",
        "Positions per journal read while a view catches up, and most events per live "
        "delivery (a durable view commits once per delivery).",
        [](auto& c) -> auto& { return c.views.read_batch; }, 1, count_max));
    t.push_back(count_entry(
        "views", "max_buffer_events",
        "Live events a subscription buffers for a busy subscriber; past it it drops them "
        "and reads the journal again (at least read_batch).",
        [](auto& c) -> auto& { return c.views.max_buffer_events; }, 1, count_max));
    t.push_back(count_entry(
        "views", "checkpoint_every",
        "Subscriptions with managed checkpoints save after this many positions...",
        [](auto& c) -> auto& { return c.views.checkpoint_every; }, 1, uint64_t{1} << 40));
    t.push_back(duration_entry(
        "views", "checkpoint_interval", "... or this long after the first unsaved one.",
        [](auto& c) -> auto& { return c.views.checkpoint_interval; }, ms{1}, day));
    t.push_back(duration_entry(
        "views", "deliver_timeout",
        "Most time a view or subscriber may take for one batch; past it its subscription "
        "stops with timeout.",
        [](auto& c) -> auto& { return c.views.deliver_timeout; }, ms{1}, day));
    t.push_back(duration_entry(
        "views", "commit_interval",
        "Shortest time between two commits of a durable view (0: every delivery at once); "
        "events arriving meanwhile go into its next commit. Fewer view commits leave LMDB's "
        "write lock to the journal writer more often; the price is up to this much lag.",
        [](auto& c) -> auto& { return c.views.commit_interval; }, ms{0}, day));
    // [sagas]
    t.push_back(count_entry(
        "sagas", "max_attempts",
        "Attempts of one saga command (unavailable, overloaded, timeouts) before its saga "
        "is parked.",
        [](auto& c) -> auto& { return c.sagas.max_attempts; }, 1, 1'000'000));
    t.push_back(duration_entry(
        "sagas", "backoff_initial",
        "Retry delay after a saga command's first failure; it doubles per attempt...",
        [](auto& c) -> auto& { return c.sagas.backoff_initial; }, ms{1}, day));
    t.push_back(duration_entry(
        "sagas", "backoff_max", "... up to this.",
        [](auto& c) -> auto& { return c.sagas.backoff_max; }, ms{1}, day));
    t.push_back(duration_entry(
        "sagas", "command_timeout",
        "How long one saga command may take at the router before it counts as a "
        "(retried) timeout.",
        [](auto& c) -> auto& { return c.sagas.command_timeout; }, ms{1}, day));
    t.push_back(duration_entry(
        "sagas", "append_timeout",
        "How long one saga progress append may take; past it the outcome is unknown and "
        "the saga manager stops.",
        [](auto& c) -> auto& { return c.sagas.append_timeout; }, ms{1}, day));
    t.push_back(count_entry(
        "sagas", "max_in_flight_commands",
        "Saga commands out at the router at once, per saga type (more wait in a queue).",
        [](auto& c) -> auto& { return c.sagas.max_in_flight_commands; }, 1, count_max));
    t.push_back(count_entry(
        "sagas", "max_in_flight_appends",
        "Saga progress appends out at the journal writer at once, per saga type.",
        [](auto& c) -> auto& { return c.sagas.max_in_flight_appends; }, 1, count_max));
    t.push_back(duration_entry(
        "sagas", "tick_interval",
        "How often due saga deadlines are checked: a deadline fires at most this late "
        "(0s = only when asked, for tests with a virtual clock).",
        [](auto& c) -> auto& { return c.sagas.tick_interval; }, ms{0}, day));
    // [shutdown]
    t.push_back(duration_entry(
        "shutdown", "drain_timeout",
        "Bound of each step of a graceful stop (answer what is in flight, then let the "
        "writer commit what it holds).",
        [](auto& c) -> auto& { return c.shutdown.drain_timeout; }, ms{1}, day));
    return t;
  }();
  return rows;
}

const entry* find_entry(std::string_view section, std::string_view name) {
  for (const auto& e : table())
    if (e.section == section && e.name == name)
      return &e;
  return nullptr;
}

const entry* find_entry(std::string_view key) {
  auto dot = key.find('.');
  if (dot == std::string_view::npos)
    return nullptr;
  return find_entry(key.substr(0, dot), key.substr(dot + 1));
}

bool known_section(std::string_view section) {
  return std::any_of(table().begin(), table().end(),
                     [&](const entry& e) { return e.section == section; });
}

std::string names_in(std::string_view section) {
  std::string result;
  for (const auto& e : table())
    if (e.section == section) {
      if (!result.empty())
        result += ", ";
      result += e.name;
    }
  return result;
}

std::string section_names() {
  std::string result;
  std::string last;
  for (const auto& e : table())
    if (e.section != last) {
      if (!result.empty())
        result += ", ";
      result += e.section;
      last = e.section;
    }
  return result;
}

} // namespace

// -- public functions ---------------------------------------------------------------

status set_option(runtime_config& cfg, std::string_view key, std::string_view value) {
  const auto* e = find_entry(key);
  if (e == nullptr)
    return error{errc::invalid_input, "unknown key '" + std::string{key} + "'"};
  return e->set(cfg, trim(value));
}

std::optional<std::string> get_option(const runtime_config& cfg, std::string_view key) {
  const auto* e = find_entry(key);
  if (e == nullptr)
    return std::nullopt;
  return e->get(cfg);
}

std::vector<std::string> config_keys() {
  std::vector<std::string> result;
  for (const auto& e : table())
    result.push_back(e.key());
  return result;
}

status validate(const runtime_config& cfg) {
  for (const auto& e : table())
    if (auto err = e.check(cfg))
      return err;
  if (cfg.storage.map_size_cap < cfg.storage.map_size)
    return error{errc::invalid_input, "storage.map_size_cap ("
                                          + render_size(cfg.storage.map_size_cap)
                                          + ") is smaller than storage.map_size ("
                                          + render_size(cfg.storage.map_size) + ")"};
  // LMDB's default key limit: index keys are stream id + 0x00 + command id (or a u64).
  constexpr size_t lmdb_max_key = 511;
  if (cfg.limits.max_stream_id_bytes + 1 + std::max<size_t>(cfg.limits.max_id_bytes, 8)
      > lmdb_max_key)
    return error{errc::invalid_input,
                 "limits.max_stream_id_bytes + limits.max_id_bytes + 1 must not exceed "
                     + std::to_string(lmdb_max_key) + " (LMDB's key limit)"};
  if (cfg.limits.max_event_bytes > cfg.limits.max_append_bytes)
    return error{errc::invalid_input, "limits.max_event_bytes ("
                                          + render_size(cfg.limits.max_event_bytes)
                                          + ") exceeds limits.max_append_bytes ("
                                          + render_size(cfg.limits.max_append_bytes) + ")"};
  if (auto err = validate(cfg.group_commit))
    return err;
  if (cfg.sagas.backoff_max < cfg.sagas.backoff_initial)
    return error{errc::invalid_input, "sagas.backoff_max ("
                                          + render_duration(cfg.sagas.backoff_max)
                                          + ") is shorter than sagas.backoff_initial ("
                                          + render_duration(cfg.sagas.backoff_initial) + ")"};
  if (cfg.views.commit_interval >= cfg.views.deliver_timeout)
    return error{errc::invalid_input, "views.commit_interval ("
                                          + render_duration(cfg.views.commit_interval)
                                          + ") is not below views.deliver_timeout ("
                                          + render_duration(cfg.views.deliver_timeout) + ")"};
  if (cfg.views.max_buffer_events < cfg.views.read_batch)
    return error{errc::invalid_input, "views.max_buffer_events ("
                                          + std::to_string(cfg.views.max_buffer_events)
                                          + ") is smaller than views.read_batch ("
                                          + std::to_string(cfg.views.read_batch) + ")"};
  return {};
}

status parse_config(runtime_config& cfg, std::string_view text, std::string_view source) {
  std::string section;
  std::map<std::string, size_t> seen; // key -> line of its first setting
  size_t line_no = 0;
  auto fail = [&](const std::string& msg) {
    return error{errc::invalid_input,
                 std::string{source} + ":" + std::to_string(line_no) + ": " + msg};
  };
  while (!text.empty()) {
    ++line_no;
    auto eol = text.find('\n');
    auto raw = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    auto line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';')
      continue;
    if (line.front() == '[') {
      if (line.back() != ']')
        return fail("malformed section header '" + std::string{line}
                    + "' (expected [name] alone on its line)");
      auto name = trim(line.substr(1, line.size() - 2));
      if (!known_section(name))
        return fail("unknown section [" + std::string{name} + "] (known: " + section_names() + ")");
      section = std::string{name};
      continue;
    }
    auto eq = line.find('=');
    if (eq == std::string_view::npos)
      return fail("expected 'key = value', got '" + std::string{line} + "'");
    auto name = trim(line.substr(0, eq));
    auto value = trim(line.substr(eq + 1));
    if (name.empty())
      return fail("missing key before '='");
    if (section.empty())
      return fail("key '" + std::string{name} + "' outside a section (start with e.g. [storage])");
    const auto* e = find_entry(section, name);
    if (e == nullptr)
      return fail("unknown key '" + std::string{name} + "' in [" + section
                  + "] (known: " + names_in(section) + ")");
    auto key = e->key();
    if (auto i = seen.find(key); i != seen.end())
      return fail(key + " is set twice (first on line " + std::to_string(i->second) + ")");
    seen.emplace(key, line_no);
    if (auto err = e->set(cfg, value))
      return fail(err.message);
  }
  return {};
}

status load_config(runtime_config& cfg, const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return error{errc::io_error, "cannot read config file '" + path + "'"};
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad())
    return error{errc::io_error, "cannot read config file '" + path + "'"};
  return parse_config(cfg, buf.str(), path);
}

expected<runtime_config> load_config(const std::string& path) {
  runtime_config cfg;
  if (auto err = load_config(cfg, path))
    return err;
  return cfg;
}

std::string to_ini(const runtime_config& cfg) {
  static const runtime_config defaults_cfg;
  std::string out;
  out += "# evident node configuration: every key, with its default.\n"
         "# Format: [section] lines and 'key = value' lines; '#' starts a comment line.\n"
         "# Sizes take B, KiB, MiB, GiB or TiB; durations ms, s, min or h.\n"
         "# Reference: docs/configuration.md (\"Runtime\").\n";
  std::string section;
  for (const auto& e : table()) {
    if (e.section != section) {
      section = e.section;
      out += "\n[" + section + "]\n";
    }
    auto def = e.get(defaults_cfg);
    // Wrap the doc text at ~88 columns.
    std::string doc = e.doc + " Default: " + (def.empty() ? "none (required)" : def) + ".";
    std::string line = "#";
    std::istringstream words{doc};
    std::string w;
    while (words >> w) {
      if (line.size() + 1 + w.size() > 88) {
        out += line + "\n";
        line = "#";
      }
      line += " " + w;
    }
    out += line + "\n";
    out += e.name + " = " + e.get(cfg) + "\n";
  }
  return out;
}

} // namespace evident
