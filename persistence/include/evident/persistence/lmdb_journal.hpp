#pragma once

#include "evident/persistence/environment.hpp"
#include "evident/persistence/journal.hpp"
#include "evident/persistence/options.hpp"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace evident {

namespace detail {
struct index_tail;
} // namespace detail

/// What `verify` found.
struct verify_report {
  uint64_t events = 0;
  uint64_t streams = 0;
  uint64_t indexed_entries = 0;
  uint64_t snapshots = 0;
  uint64_t last_position = 0;
  /// One line per problem, e.g. "position 17: checksum mismatch".
  std::vector<std::string> problems;
  bool ok() const noexcept {
    return problems.empty();
  }
};

/// Sizes and counts for `evident stats`.
struct journal_stats {
  uint64_t events = 0;
  uint64_t streams = 0;
  uint64_t snapshots = 0;
  uint64_t checkpoints = 0;
  uint64_t last_position = 0;
  /// Positions <= this are in the per-stream index; later ones are in the log tail.
  uint64_t indexed_through = 0;
  uint64_t map_size = 0;
  uint64_t map_used = 0;
  uint64_t page_size = 0;
  uint32_t format_version = 0;
  std::string node_id;
  int64_t created_at_ns = 0;
};

/// The journal on LMDB (see docs/format.md and DESIGN.md's write path).
///
/// A commit touches only append-only pages (the `events` log, written with MDB_APPEND)
/// and the small `heads` table. The per-stream index (`streams`) and the command-id
/// records (`dedup`) are written in bulk behind the log, every `index_lag_events`
/// events; until then they live in memory (the "tail") and are rebuilt from the log
/// when a journal opens. Several processes may open one journal: each write and each
/// read first takes in what others committed since it last looked.
///
/// Thread: any thread; writes are serialized by LMDB's write lock.
class lmdb_journal final : public journal {
public:
  /// Opens the journal in `opts.path`. Fails as `environment::open` does.
  [[nodiscard]] static expected<std::shared_ptr<lmdb_journal>> open(const journal_options& opts);

  ~lmdb_journal() override;

  expected<append_result> append(const append_request& req) override;
  std::vector<expected<append_result>> append_batch(std::span<const append_request> reqs) override;
  /// Under fsync_each_commit: the data pages are flushed before it returns (and with
  /// them the meta pages of the commits before it), its own meta page is not. Under the
  /// other durability modes the same as append_batch.
  std::vector<expected<append_result>>
  append_batch_deferred(std::span<const append_request> reqs) override;
  /// True under fsync_each_commit only: under no_meta_sync and no_sync no later flush
  /// is promised, so a deferred commit is as durable as it gets when it returns.
  bool defers_durability() const noexcept override;
  /// Under fsync_each_commit flushes the meta page of the deferred commits (one
  /// mdb_env_sync); under the other modes nothing (they promise less).
  status sync() override;
  status read_stream(const std::string& stream, const read_options& opts,
                     const event_visitor& f) override;
  status read_all(uint64_t from_position, uint64_t max_count, const event_visitor& f) override;
  expected<stream_head> head(const std::string& stream) override;
  expected<std::vector<stream_head>> streams() override;
  expected<uint64_t> last_position() override;
  expected<std::optional<append_result>> find_command(const std::string& stream,
                                                      const std::string& command_id) override;
  status delete_to(const std::string& stream, uint64_t n) override;
  status truncate_before(const std::string& stream, uint64_t n) override;
  status soft_delete(const std::string& stream) override;
  status tombstone(const std::string& stream) override;

  using journal::read_all;
  using journal::read_stream;

  /// Writes the in-memory tail of the per-stream index to LMDB now (also done
  /// automatically every `index_lag_events` and when the journal closes).
  [[nodiscard]] status flush_index();

  /// Walks every record: checksums, gap-free positions, the index against the log,
  /// heads against the streams. Costs a full scan.
  [[nodiscard]] expected<verify_report> verify();

  [[nodiscard]] expected<journal_stats> stats();

  const std::shared_ptr<environment>& env() const noexcept {
    return env_;
  }

private:
  explicit lmdb_journal(std::shared_ptr<environment> env);
  std::vector<expected<append_result>> append_batch(std::span<const append_request> reqs,
                                                    commit_sync how);

  std::shared_ptr<environment> env_;
  std::unique_ptr<detail::index_tail> tail_;
};

} // namespace evident
