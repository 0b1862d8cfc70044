#pragma once

// evident::runtime_config: every option of a node, with its default, settable in code or
// from an INI file. docs/configuration.md ("Runtime") lists the keys; samples/evident.ini
// is a complete file with every default.
//
// The file format (strict on purpose: a typo must not silently fall back to a default):
//
//   # comment            (a line starting with '#' or ';'; no comments after a value)
//   [storage]            (a known section)
//   map_size = 64MiB     (a known key of that section, once per file)
//
// Values: sizes are an integer with an optional unit B, KiB, MiB, GiB or TiB; durations
// an integer with a unit ms, s, min or h; counts a plain integer ('_' may separate
// digits); strings as written (optionally in double quotes). Unknown sections and keys,
// malformed lines and bad values are errors naming file:line.

// First: evident/actors/defaults.hpp uses uint64_t without including <cstdint> (yet).
#include <cstdint>

#include "evident/actors/defaults.hpp"
#include "evident/actors/journal_writer.hpp"
#include "evident/persistence/defaults.hpp"
#include "evident/persistence/errc.hpp"
#include "evident/persistence/options.hpp"
#include "evident/runtime/defaults.hpp"
#include "evident/sagas/options.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace evident {

/// How idle CAF workers wait for work (scheduler.policy).
enum class scheduler_policy : uint8_t {
  /// CAF's work stealing: an idle worker polls its queue and the others', first
  /// spinning, then sleeping 50 us between polls, then on a condition variable.
  stealing,
  /// CAF's work sharing: one queue; an idle worker blocks until a job is enqueued.
  sharing,
};

/// "stealing" or "sharing".
std::string_view to_string(scheduler_policy x) noexcept;

/// The options of one node. Plain data: set members in code, or load a file with
/// `load_config` / `parse_config`, or set single keys with `set_option`. `runtime`
/// validates it once when it starts (`validate`); nothing is checked on assignment.
struct runtime_config {
  // -- [storage] --------------------------------------------------------------------

  struct storage_options {
    /// storage.data_dir: the directory of the journal (data.mdb, lock.mdb), created if
    /// missing. A relative path is taken from the process's working directory.
    /// Default: none; required.
    std::string data_dir;
    /// storage.durability: what a crash may lose (fsync | no_meta_sync | no_sync).
    /// Default: fsync.
    durability sync = durability::fsync_each_commit;
    /// storage.map_size: initial LMDB map size. Default: 64 MiB.
    size_t map_size = defaults::map_size;
    /// storage.map_size_cap: the map doubles on MDB_MAP_FULL up to this; at the cap
    /// appends fail with storage_full. Default: 64 GiB.
    size_t map_size_cap = defaults::map_size_cap;
    /// storage.file_headroom: zero-filled bytes kept past the end of the data in
    /// data.mdb, so that commits do not grow the file (0: off). Default: 8 MiB.
    size_t file_headroom = defaults::file_headroom;
    /// storage.max_readers: LMDB reader slots. Default: 512.
    unsigned max_readers = defaults::runtime::max_readers;
    /// storage.index_lag_events: events the per-stream index may lag behind the log.
    /// Default: 1,000,000.
    uint64_t index_lag_events = defaults::index_lag_events;
  } storage;

  // -- [limits] ---------------------------------------------------------------------

  struct limit_options {
    /// limits.max_event_bytes. Default: 4 MiB.
    size_t max_event_bytes = defaults::max_event_bytes;
    /// limits.max_append_events: most events in one append. Default: 10,000.
    size_t max_append_events = defaults::max_append_events;
    /// limits.max_append_bytes. Default: 64 MiB.
    size_t max_append_bytes = defaults::max_append_bytes;
    /// limits.max_stream_id_bytes. Default: 250.
    size_t max_stream_id_bytes = defaults::max_stream_id_bytes;
    /// limits.max_id_bytes: command, correlation, causation ids and type names.
    /// Default: 250.
    size_t max_id_bytes = defaults::max_id_bytes;
    /// limits.max_snapshot_bytes. Default: 256 MiB.
    size_t max_snapshot_bytes = defaults::max_snapshot_bytes;
  } limits;

  // -- [group_commit] ---------------------------------------------------------------

  /// group_commit.max_batch_events (default 4,096) and group_commit.max_pending
  /// (default 10,000); see journal_writer.hpp.
  group_commit_options group_commit;

  // -- [aggregates] -----------------------------------------------------------------

  struct aggregate_options {
    /// aggregates.idle_timeout: an aggregate that got no message for this long
    /// passivates (0 = never). Default: 2 min.
    std::chrono::milliseconds idle_timeout{defaults::aggregate::idle_timeout_ms};
    /// aggregates.max_active: most live aggregates on this node; one more activation
    /// passivates the least recently used. Default: 100,000.
    size_t max_active = defaults::aggregate::max_active;
    /// aggregates.max_stash: commands one aggregate holds undecided (while recovering or
    /// while max_in_flight are pending); more are refused with overloaded (0 = refuse
    /// all). Default: 1,000.
    size_t max_stash = defaults::aggregate::max_stash;
    /// aggregates.max_in_flight: commands one aggregate has decided and not yet answered.
    /// Default: 256.
    size_t max_in_flight = defaults::aggregate::max_in_flight;
    /// aggregates.replay_batch: events replayed per step of a recovery. Default: 1,024.
    size_t replay_batch = defaults::aggregate::replay_batch;
    /// aggregates.append_timeout: how long an aggregate waits for the writer; past it
    /// the outcome is unknown and the aggregate stops. Default: 10 s.
    std::chrono::milliseconds append_timeout{defaults::aggregate::append_timeout_ms};
  } aggregates;

  // -- [snapshots] ------------------------------------------------------------------

  struct snapshot_options {
    /// snapshots.every: snapshot an aggregate every this many events (0 = never).
    /// Default: 1,000.
    uint64_t every = defaults::aggregate::snapshot_every;
    /// snapshots.keep_last: snapshots kept per aggregate. Default: 2.
    size_t keep_last = defaults::aggregate::snapshot_keep_last;
  } snapshots;

  // -- [scheduler] ------------------------------------------------------------------

  struct scheduler_options {
    /// scheduler.threads: CAF worker threads (CAF's scheduler.max-threads); the runtime
    /// never starts more. Default: 2.
    size_t threads = defaults::runtime::scheduler_threads;
    /// scheduler.max_throughput: messages a worker handles for one actor before it
    /// turns to the next (CAF's scheduler.max-throughput). Default: 50.
    size_t max_throughput = defaults::runtime::scheduler_max_throughput;
    /// scheduler.policy: how idle workers wait for work (CAF's scheduler.policy).
    /// Default: stealing.
    scheduler_policy policy = scheduler_policy::stealing;
  } scheduler;

  // -- [requests] -------------------------------------------------------------------

  struct request_options {
    /// requests.ask_timeout: default wait of `runtime::append` and command asks.
    /// Default: 5 s.
    std::chrono::milliseconds ask_timeout = defaults::runtime::ask_timeout;
  } requests;

  // -- [views] ----------------------------------------------------------------------

  /// Defaults of the views and subscriptions registered with the runtime (see
  /// subscription.hpp and docs/views.md).
  struct view_settings {
    /// views.read_batch: positions per journal read while catching up, and most events
    /// per live delivery (a durable view writes one transaction per delivery).
    /// Default: 4,096.
    size_t read_batch = defaults::subscription::read_batch;
    /// views.max_buffer_events: live events a subscription holds for a busy subscriber;
    /// past it it drops them and reads the journal again. Default: 65,536.
    size_t max_buffer_events = defaults::subscription::max_buffer_events;
    /// views.checkpoint_every: raw subscriptions with managed checkpoints save after
    /// this many positions... Default: 1,000.
    uint64_t checkpoint_every = defaults::subscription::checkpoint_every;
    /// views.checkpoint_interval: ... or this long after the first unsaved one.
    /// Default: 1 s.
    std::chrono::milliseconds checkpoint_interval{defaults::subscription::checkpoint_interval_ms};
    /// views.deliver_timeout: most time a view or subscriber may take for one batch;
    /// past it the subscription stops with timeout. Default: 60 s.
    std::chrono::milliseconds deliver_timeout{defaults::subscription::deliver_timeout_ms};
    /// views.commit_interval: shortest time between two commits of a durable view (0:
    /// every delivery at once). Default: 3 ms.
    std::chrono::milliseconds commit_interval{defaults::view::commit_interval_ms};
  } views;

  // -- [sagas] ----------------------------------------------------------------------

  /// sagas.*: the options of every saga type registered without options of its own
  /// (runtime::register_saga<Spec>()). Defaults: evident::defaults::saga.
  saga_options sagas;

  // -- [shutdown] -------------------------------------------------------------------

  struct shutdown_options {
    /// shutdown.drain_timeout: bound of each step of a graceful stop. Default: 10 s.
    std::chrono::milliseconds drain_timeout = defaults::runtime::drain_timeout;
  } shutdown;

  // -- conversions ------------------------------------------------------------------

  /// The journal options these settings describe (path = storage.data_dir, create).
  journal_options journal() const;
};

/// Checks every value's range and the rules between keys (map_size_cap >= map_size,
/// stream id + id limits within LMDB's key size, ...). Fails with invalid_input naming
/// the key, e.g. "storage.data_dir is not set".
[[nodiscard]] status validate(const runtime_config& cfg);

/// Sets one key ("section.name", e.g. "storage.map_size") from its text form, as a
/// config file would. Fails with invalid_input: unknown key, or a bad value (the message
/// names the key and says what is expected).
[[nodiscard]] status set_option(runtime_config& cfg, std::string_view key, std::string_view value);

/// The text form of one key's value (as `to_ini` writes it); nullopt for an unknown key.
std::optional<std::string> get_option(const runtime_config& cfg, std::string_view key);

/// Every key, "section.name", in file order.
std::vector<std::string> config_keys();

/// Applies the INI text `text` onto `cfg` (keys not in the text keep their values).
/// `source` names the text in errors ("evident.ini:7: ..."). Stops at the first error,
/// with invalid_input; `cfg` may then hold the keys before the bad line.
[[nodiscard]] status parse_config(runtime_config& cfg, std::string_view text,
                                  std::string_view source = "<config>");

/// Reads the file at `path` and applies it onto `cfg` (see parse_config).
/// Fails with: io_error (cannot read the file), invalid_input (file:line and why).
[[nodiscard]] status load_config(runtime_config& cfg, const std::string& path);

/// The defaults with the file at `path` applied. Does not validate.
[[nodiscard]] expected<runtime_config> load_config(const std::string& path);

/// An INI file with every key of `cfg`, each with a comment saying what it does and its
/// default. `parse_config(to_ini(x))` reproduces `x`.
std::string to_ini(const runtime_config& cfg);

} // namespace evident
