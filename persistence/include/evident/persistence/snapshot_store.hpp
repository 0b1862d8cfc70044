#pragma once

#include "evident/persistence/errc.hpp"
#include "evident/persistence/options.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace evident {

class environment;

/// The state of one stream's aggregate after its event `version`, so that recovery can
/// start there and replay only later events.
struct snapshot {
  std::string stream;
  /// The version of the last event folded into `state`.
  uint64_t version = 0;
  /// The registered name of the state type, e.g. "bank.account". Not empty.
  std::string type;
  /// The schema version of `state` (starts at 1).
  uint32_t schema = 1;
  /// Nanoseconds since the Unix epoch; 0 on save means "now".
  int64_t time_ns = 0;
  /// The state itself, msgpack-encoded (opaque to the store).
  std::string state;
  /// Bytes of state as stored: set by `load` and `list` (which leaves `state` empty,
  /// so this is how `evident snapshots` shows sizes); ignored by `save`.
  uint64_t state_size = 0;
};

/// Which snapshots an operation selects: those whose version and time both lie in the
/// given closed ranges (Akka's SnapshotSelectionCriteria). The default selects all.
/// A range whose lower bound exceeds its upper bound selects nothing (no error).
struct snapshot_criteria {
  uint64_t max_version = std::numeric_limits<uint64_t>::max();
  int64_t max_time_ns = std::numeric_limits<int64_t>::max();
  uint64_t min_version = 0;
  int64_t min_time_ns = std::numeric_limits<int64_t>::min();

  /// Selects every snapshot.
  static snapshot_criteria all() noexcept {
    return {};
  }
  /// Selects no snapshot.
  static snapshot_criteria none() noexcept {
    snapshot_criteria c;
    c.max_version = 0;
    c.min_version = 1;
    return c;
  }
  /// Selects snapshots with version <= `n` (recovery of a stream up to `n`).
  static snapshot_criteria up_to(uint64_t n) noexcept {
    snapshot_criteria c;
    c.max_version = n;
    return c;
  }

  bool matches(uint64_t version, int64_t time_ns) const noexcept {
    return version >= min_version && version <= max_version && time_ns >= min_time_ns
           && time_ns <= max_time_ns;
  }
  /// True when the time bounds select every time (only versions are compared).
  bool any_time() const noexcept {
    return min_time_ns == std::numeric_limits<int64_t>::min()
           && max_time_ns == std::numeric_limits<int64_t>::max();
  }
};

/// The contract of every snapshot store (LMDB-backed and in-memory). One test suite
/// (tests/persistence/snapshot_store.cpp) checks both implementations.
///
/// A stream keeps any number of snapshots, at most one per version. Snapshots are
/// independent of the journal: deleting events leaves them, and they must be removed
/// (or trimmed with `keep_last`) by whoever made them.
///
/// Thread: all members may be called from any thread.
///
/// Common errors: invalid_input (empty stream id or one with control characters),
/// too_large (stream id longer than `max_stream_id_bytes`); the LMDB store adds
/// io_error and storage_full, and corrupted where it decodes records.
class snapshot_store {
public:
  virtual ~snapshot_store();

  /// Stores `s`, replacing a snapshot of the same stream at the same version.
  /// A `time_ns` of 0 is replaced by the current time.
  /// Cost: one write transaction; the state is copied once into the store.
  /// Fails with: invalid_input (bad stream id, empty type), too_large (stream id, type
  ///   name longer than `max_id_bytes`, or state larger than `max_snapshot_bytes`),
  ///   storage_full, io_error. Nothing is stored on failure.
  [[nodiscard]] virtual status save(const snapshot& s) = 0;

  /// The snapshot with the highest version among those of `stream` matching `c`;
  /// nullopt when none matches (or the stream has no snapshots).
  /// Cost: one seek; with time bounds, a walk back over the newer snapshots that miss
  /// them.
  /// Fails with: corrupted (a visited record fails its checksum; the message names the
  ///   stream and version), unsupported_format, io_error.
  [[nodiscard]] virtual expected<std::optional<snapshot>>
  load(const std::string& stream, const snapshot_criteria& c = {}) = 0;

  /// Removes the snapshot of `stream` at `version`; removing an absent one is no error.
  [[nodiscard]] virtual status remove(const std::string& stream, uint64_t version) = 0;

  /// Removes every snapshot of `stream` matching `c`.
  /// Fails with: corrupted (only when `c` has time bounds, which requires reading the
  ///   records; nothing is removed then), io_error.
  [[nodiscard]] virtual status remove(const std::string& stream, const snapshot_criteria& c) = 0;

  /// Removes all snapshots of `stream` except the `n` with the highest versions
  /// (n = 0 removes them all).
  [[nodiscard]] virtual status keep_last(const std::string& stream, size_t n) = 0;

  /// Every snapshot of `stream` in ascending version order, with `state` left empty
  /// (for `evident snapshots`). Verifies each record's checksum.
  /// Fails with: corrupted, unsupported_format, io_error.
  [[nodiscard]] virtual expected<std::vector<snapshot>> list(const std::string& stream) = 0;

  /// The ids of every stream with at least one snapshot, in byte order.
  [[nodiscard]] virtual expected<std::vector<std::string>> streams() = 0;

  /// Number of snapshots of all streams. O(1).
  [[nodiscard]] virtual expected<uint64_t> count() = 0;
};

/// Snapshots in the `snapshots` DB of a journal's LMDB environment.
///
///   key   = stream + 0x00 + version (u64 big-endian)
///   value = msgpack array [format = 1, type, schema, time_ns, state (bin)]
///           + trailer 0xce + CRC32C(key ++ body) big-endian
///
/// The key is folded into the checksum, so a record under the wrong key is caught.
/// Writes go through `environment::write` (the map grows as needed); reads use their
/// own read transaction per call.
///
/// Thread: any thread; writes are serialized by LMDB's write lock. Writes wait for
/// other writers of the environment (e.g. the journal writer).
class lmdb_snapshot_store final : public snapshot_store {
public:
  /// Limits come from `env->options()`. Stream ids whose key (id + 9 bytes) exceeds
  /// LMDB's key size limit are refused with too_large.
  explicit lmdb_snapshot_store(std::shared_ptr<environment> env);

  status save(const snapshot& s) override;
  expected<std::optional<snapshot>> load(const std::string& stream,
                                         const snapshot_criteria& c = {}) override;
  status remove(const std::string& stream, uint64_t version) override;
  status remove(const std::string& stream, const snapshot_criteria& c) override;
  status keep_last(const std::string& stream, size_t n) override;
  expected<std::vector<snapshot>> list(const std::string& stream) override;
  expected<std::vector<std::string>> streams() override;
  expected<uint64_t> count() override;

  const std::shared_ptr<environment>& env() const noexcept {
    return env_;
  }

private:
  status check_stream(const std::string& stream) const;

  std::shared_ptr<environment> env_;
  size_t max_key_bytes_;
};

/// Snapshots in memory with the same contract and limits as lmdb_snapshot_store, for
/// unit tests and the aggregate test kit. Nothing survives the object; nothing is ever
/// corrupted.
///
/// Thread: any thread; one mutex guards everything. `load` copies the state.
class memory_snapshot_store final : public snapshot_store {
public:
  /// Only the limits of `opts` are used.
  explicit memory_snapshot_store(journal_options opts = {});

  status save(const snapshot& s) override;
  expected<std::optional<snapshot>> load(const std::string& stream,
                                         const snapshot_criteria& c = {}) override;
  status remove(const std::string& stream, uint64_t version) override;
  status remove(const std::string& stream, const snapshot_criteria& c) override;
  status keep_last(const std::string& stream, size_t n) override;
  expected<std::vector<snapshot>> list(const std::string& stream) override;
  expected<std::vector<std::string>> streams() override;
  expected<uint64_t> count() override;

private:
  journal_options opts_;
  std::mutex mtx_;
  std::map<std::string, std::map<uint64_t, snapshot>> streams_;
};

} // namespace evident
