#pragma once

#include "evident/persistence/envelope.hpp"
#include "evident/persistence/errc.hpp"

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace evident {

/// What an append expects of its stream (EventStoreDB's semantics).
struct expected_version {
  enum class kind : uint8_t {
    any,           ///< no check
    no_stream,     ///< the stream must not exist (never written, or soft-deleted)
    stream_exists, ///< the stream must exist and be live
    exact,         ///< the stream's version must be `version` (0 = does not exist)
  };
  kind k = kind::any;
  uint64_t version = 0;

  static expected_version any() noexcept {
    return {kind::any, 0};
  }
  static expected_version no_stream() noexcept {
    return {kind::no_stream, 0};
  }
  static expected_version stream_exists() noexcept {
    return {kind::stream_exists, 0};
  }
  static expected_version exact(uint64_t n) noexcept {
    return {kind::exact, n};
  }
  friend bool operator==(const expected_version&, const expected_version&) = default;
};

/// "any", "no_stream", "stream_exists" or the number.
std::string to_string(const expected_version& x);

/// One atomic append: 0..n events to one stream.
struct append_request {
  std::string stream;
  expected_version expected;
  std::vector<event_data> events;
  /// When set, a retry with the same (stream, command id) returns the first attempt's
  /// result and writes nothing. Deterministic: kept with the journal, not in a cache.
  std::string command_id;
};

/// Where an append's events landed. For a zero-event append both versions are the
/// stream's current version and both positions are 0.
struct append_result {
  uint64_t first_version = 0;
  uint64_t last_version = 0;
  uint64_t first_position = 0;
  uint64_t last_position = 0;
  /// True when this was a retry answered from the command-id record.
  bool duplicate = false;
  friend bool operator==(const append_result& x, const append_result& y) {
    return x.first_version == y.first_version && x.last_version == y.last_version
           && x.first_position == y.first_position && x.last_position == y.last_position;
  }
};

enum class stream_state : uint8_t {
  live = 0,
  soft_deleted = 1,
  tombstoned = 2,
};

std::string_view to_string(stream_state x) noexcept;

/// What the `heads` DB keeps per stream.
struct stream_head {
  std::string stream;
  /// Number of events ever appended (the last event's version); 0 = never written.
  uint64_t version = 0;
  stream_state state = stream_state::live;
  /// Events with a lower version are deleted (delete-to, truncate-before, soft delete).
  uint64_t truncate_before = 0;
};

enum class direction : uint8_t { forward, backward };

/// A window on one stream, walked from `from` towards `to` (both inclusive versions).
/// Forward: `from` defaults to the first event, `to` to the last. Backward: `from`
/// defaults to the last event, `to` to the first. A window whose `from` lies beyond
/// its `to` in the walking direction is empty (no error). Deleted events are skipped;
/// `max_count` bounds what is visited.
struct read_options {
  direction dir = direction::forward;
  std::optional<uint64_t> from;
  std::optional<uint64_t> to;
  uint64_t max_count = std::numeric_limits<uint64_t>::max();
};

/// Called once per event; return false to stop early.
using event_visitor = std::function<bool(const recorded_event&)>;

/// The contract every journal keeps (LMDB-backed and in-memory). One conformance suite
/// (tests/persistence/journal_conformance.cpp) checks both implementations.
///
/// Thread: all members may be called from any thread; writes are serialized inside.
class journal {
public:
  virtual ~journal();

  /// Appends `req.events` atomically with the expected-version check.
  /// Fails with: wrong_expected_version (with expected/actual), stream_deleted,
  ///   too_large, invalid_input (bad stream id), storage_full, io_error.
  virtual expected<append_result> append(const append_request& req) = 0;

  /// Runs each request in order inside ONE write transaction (group commit). Each
  /// request gets its own result: a refused request does not fail the others.
  /// Later requests see the effect of earlier ones. If the commit itself fails, every
  /// request that would have written gets that error (storage_full, io_error).
  virtual std::vector<expected<append_result>> append_batch(std::span<const append_request> reqs)
    = 0;

  /// append_batch whose commit is durable only later: with the next sync(), or when a
  /// later append_batch_deferred that stored events returns (its flush carries this
  /// commit's last piece to the disk, so a writer that commits back to back pays one
  /// flush per commit instead of two). Until then a machine crash may undo the commit as
  /// a whole, never in part; a process crash loses nothing. Answer nothing of it before
  /// then. The default commits durably at once with append_batch.
  virtual std::vector<expected<append_result>>
  append_batch_deferred(std::span<const append_request> reqs);

  /// True when append_batch_deferred leaves its commits short of the durability the
  /// journal promises until a later flush (see above); false when they are as durable
  /// as they get once it returns, so a caller may answer at once. The default is true,
  /// the safe answer (wait for a sync() that may have nothing to do), so that a
  /// decorator forwarding append_batch_deferred but not this one stays correct.
  [[nodiscard]] virtual bool defers_durability() const noexcept;

  /// Makes every commit that returned before this call as durable as the journal's
  /// durability option promises. Fails with io_error: those commits are visible, but
  /// whether they survive a machine crash is unknown. The default has nothing to flush.
  [[nodiscard]] virtual status sync();

  /// Visits the events of `stream` in the window `opts`, skipping deleted ones.
  /// Fails with: stream_not_found (never written or soft-deleted and empty),
  ///   stream_deleted (tombstoned), corrupted.
  virtual status read_stream(const std::string& stream, const read_options& opts,
                             const event_visitor& f)
    = 0;

  /// Visits events in global order from `from_position` (inclusive; 0 = start), at
  /// most `max_count`. Returns the log as written, deleted events included.
  virtual status read_all(uint64_t from_position, uint64_t max_count, const event_visitor& f) = 0;

  /// The stream's head; a stream that was never written has version 0 and state live.
  virtual expected<stream_head> head(const std::string& stream) = 0;

  /// Every stream that was ever written, in byte order of their ids.
  virtual expected<std::vector<stream_head>> streams() = 0;

  /// The last global position (0 for an empty journal).
  virtual expected<uint64_t> last_position() = 0;

  /// The result of the append that carried `command_id` to `stream`, if one did (what a
  /// retry would get back). Lets a caller answer a retried command before deciding it.
  virtual expected<std::optional<append_result>> find_command(const std::string& stream,
                                                              const std::string& command_id)
    = 0;

  /// Deletes events with version <= n (n may exceed the version: everything so far).
  /// Never lowers the stream's version. Fails with stream_not_found, stream_deleted.
  virtual status delete_to(const std::string& stream, uint64_t n) = 0;

  /// Deletes events with version < n. Same rules as delete_to(n - 1).
  virtual status truncate_before(const std::string& stream, uint64_t n) = 0;

  /// Deletes every event so far; the stream reads as not found, and a later append
  /// continues its numbering (EventStoreDB's soft delete).
  virtual status soft_delete(const std::string& stream) = 0;

  /// Deletes the stream for good: every later append or read fails with stream_deleted.
  virtual status tombstone(const std::string& stream) = 0;

  // -- convenience ----------------------------------------------------------------

  /// Collects `read_stream` into a vector.
  expected<std::vector<recorded_event>> read_stream(const std::string& stream,
                                                    const read_options& opts = {});
  /// Collects `read_all` into a vector.
  expected<std::vector<recorded_event>> read_all(uint64_t from_position = 0,
                                                 uint64_t max_count = std::numeric_limits<uint64_t>::max());
};

} // namespace evident
