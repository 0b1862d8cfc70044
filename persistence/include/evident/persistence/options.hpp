#pragma once

#include "evident/persistence/defaults.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace evident {

/// What a crash may lose.
enum class durability : uint8_t {
  /// fsync on every commit: nothing acknowledged is lost, even on power loss. Default.
  fsync_each_commit,
  /// LMDB's MDB_NOMETASYNC: data pages are synced, the meta page is not, so a machine
  /// crash may roll back the last commit (a process crash loses nothing). Saves one
  /// of LMDB's two syncs per commit.
  no_meta_sync,
  /// LMDB's MDB_NOSYNC: the OS writes back when it likes. A process crash loses
  /// nothing; a machine crash may lose recent commits. For tests and benchmarks.
  no_sync,
};

std::string_view to_string(durability x) noexcept;

/// When a write transaction's changes are on disk, under durability fsync_each_commit
/// (the other modes promise less and ignore this).
enum class commit_sync : uint8_t {
  /// Before the commit returns: LMDB flushes the data pages, then the environment
  /// flushes the meta page (after LMDB's write lock is released, so the next writer
  /// already runs).
  durable,
  /// Data pages before the commit returns, the meta page with the next durable commit or
  /// sync(). A machine crash may undo the commit as a whole (never half of it). For rows
  /// that are rebuilt when that happens: a view's rows with its position, a managed
  /// (at-least-once) checkpoint.
  deferred,
};

/// How to open a journal's LMDB environment. All sizes in bytes.
struct journal_options {
  /// The directory holding data.mdb and lock.mdb.
  std::string path;
  /// Create the directory and an empty journal if there is none. When false, opening a
  /// directory without a journal fails with not_a_journal.
  bool create = true;
  /// Open without write access (the CLI's read commands). Appends fail with io_error.
  bool read_only = false;
  durability sync = durability::fsync_each_commit;
  size_t map_size = defaults::map_size;
  size_t map_size_cap = defaults::map_size_cap;
  /// Zero-filled bytes a writable environment keeps past the last used page of
  /// data.mdb, so that commits overwrite allocated blocks instead of growing the file
  /// (see defaults::file_headroom). 0: the file grows with each commit (LMDB's own way).
  /// Ignored under no_sync and read-only.
  size_t file_headroom = defaults::file_headroom;
  size_t max_event_bytes = defaults::max_event_bytes;
  size_t max_append_events = defaults::max_append_events;
  size_t max_append_bytes = defaults::max_append_bytes;
  size_t max_stream_id_bytes = defaults::max_stream_id_bytes;
  size_t max_id_bytes = defaults::max_id_bytes;
  uint64_t index_lag_events = defaults::index_lag_events;
  size_t max_snapshot_bytes = defaults::max_snapshot_bytes;
  /// Most LMDB reader slots (threads or actors with an open read at the same time).
  unsigned max_readers = 512;
};

} // namespace evident
