#pragma once

#include "evident/persistence/errc.hpp"
#include "evident/persistence/options.hpp"

#include <lmdb.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace evident {

/// The named DBs of one journal (see docs/format.md).
struct journal_dbs {
  MDB_dbi events = 0;      ///< u64 BE position -> envelope
  MDB_dbi streams = 0;     ///< stream + 0x00 + u64 BE version -> u64 BE position
  MDB_dbi heads = 0;       ///< stream -> head record
  MDB_dbi snapshots = 0;   ///< stream + 0x00 + u64 BE version -> snapshot record
  MDB_dbi checkpoints = 0; ///< subscriber name -> u64 BE position
  MDB_dbi dedup = 0;       ///< stream + 0x00 + command id -> version and position range
  MDB_dbi meta = 0;        ///< key -> value (format version, node id, created-at, index mark)
};

class environment;

/// A transaction. Read transactions may move between threads (MDB_NOTLS). A write
/// transaction must begin and end on one thread. Aborts in the destructor unless
/// committed.
class txn {
public:
  txn(txn&&) noexcept;
  txn& operator=(txn&&) noexcept;
  txn(const txn&) = delete;
  txn& operator=(const txn&) = delete;
  ~txn();

  bool writable() const noexcept {
    return writable_;
  }
  const journal_dbs& dbs() const noexcept;

  /// Looks `key` up. The view points into the map and stays valid until the txn ends.
  /// Returns nullopt when the key is absent. Fails with io_error.
  [[nodiscard]] expected<std::optional<std::string_view>> get(MDB_dbi db, std::string_view key);
  /// Stores `value` under `key`. `flags` are LMDB put flags (e.g. MDB_APPEND).
  /// Fails with storage_full (the caller's write() grows the map and retries), io_error.
  [[nodiscard]] status put(MDB_dbi db, std::string_view key, std::string_view value,
                           unsigned flags = 0);
  /// Removes `key`; removing an absent key is no error.
  [[nodiscard]] status del(MDB_dbi db, std::string_view key);

  /// Commits (write) or ends (read). Fails with storage_full, io_error. An io_error
  /// from the flush of a durable commit leaves the outcome unknown: the changes are
  /// visible to later transactions but may not survive a machine crash.
  [[nodiscard]] status commit(commit_sync how = commit_sync::durable);
  void abort() noexcept;

  MDB_txn* native() const noexcept {
    return txn_;
  }

private:
  friend class environment;
  txn(environment* env, MDB_txn* t, bool writable, std::shared_lock<std::shared_mutex> lock);

  environment* env_ = nullptr;
  MDB_txn* txn_ = nullptr;
  bool writable_ = false;
  std::shared_lock<std::shared_mutex> resize_lock_;
};

/// A read-write cursor over one DB of a txn, with the few moves the stores need.
class cursor {
public:
  cursor(txn& t, MDB_dbi db);
  cursor(cursor&&) noexcept;
  cursor(const cursor&) = delete;
  ~cursor();

  struct entry {
    std::string_view key;
    std::string_view value;
  };
  /// Positions at the first key >= `key`.
  [[nodiscard]] expected<std::optional<entry>> seek(std::string_view key);
  [[nodiscard]] expected<std::optional<entry>> first();
  [[nodiscard]] expected<std::optional<entry>> last();
  [[nodiscard]] expected<std::optional<entry>> next();
  [[nodiscard]] expected<std::optional<entry>> prev();
  /// Deletes the entry under the cursor.
  [[nodiscard]] status del();

  MDB_cursor* native() const noexcept {
    return cur_;
  }

private:
  expected<std::optional<entry>> move(MDB_cursor_op op, std::string_view key = {});
  MDB_cursor* cur_ = nullptr;
  status err_;
};

/// One LMDB environment: a directory with data.mdb and lock.mdb, the named DBs of a
/// journal, map growth and the format check.
///
/// Thread: any thread may open read transactions; write transactions are serialized by
/// LMDB's write lock (across processes too). Map growth needs every transaction of this
/// process to end first, so each txn holds a shared lock that growth takes exclusively.
class environment {
public:
  /// The format version this build writes. It reads every version from 1 up: a
  /// version 1 journal is a version 2 journal whose index chunks hold one version each,
  /// and opening it for writing marks it version 2 (docs/format.md, "Versions").
  static constexpr uint32_t format_version = 2;

  /// Opens (or with `opts.create`, creates) the journal in `opts.path`.
  /// Fails with: not_a_journal (no journal there, or a foreign LMDB file),
  ///   unsupported_format (written by a newer build), io_error.
  [[nodiscard]] static expected<std::shared_ptr<environment>> open(const journal_options& opts);

  ~environment();
  environment(const environment&) = delete;
  environment& operator=(const environment&) = delete;

  const journal_options& options() const noexcept {
    return opts_;
  }
  const journal_dbs& dbs() const noexcept {
    return dbs_;
  }

  [[nodiscard]] expected<txn> begin_read();
  [[nodiscard]] expected<txn> begin_write();

  /// Runs `fn` in a write transaction and commits it. On MDB_MAP_FULL (from `fn`'s puts
  /// or from the commit) aborts, doubles the map (up to `map_size_cap`) and runs `fn`
  /// again, so `fn` must be repeatable. At the cap fails with storage_full, nothing
  /// written. Any error `fn` returns aborts the txn and is returned.
  [[nodiscard]] status write(const std::function<status(txn&)>& fn,
                             commit_sync how = commit_sync::durable);

  /// Opens (creating if needed) a named DB for a caller's own rows, e.g. a view's
  /// read model, so its writes can share a txn with a checkpoint. Names starting with
  /// "evident." are reserved.
  [[nodiscard]] expected<MDB_dbi> open_db(const std::string& name);

  /// Current map size in bytes.
  size_t map_size() const noexcept;

  /// Flushes every commit to disk (deferred commits, or durability modes other than
  /// fsync_each_commit).
  [[nodiscard]] status sync();

  /// True under durability fsync_each_commit (writable): LMDB runs with MDB_NOMETASYNC,
  /// and a durable commit, sync() or the close flushes the meta page (see commit_sync).
  bool flushes_meta() const noexcept {
    return opts_.sync == durability::fsync_each_commit && !opts_.read_only;
  }

  /// Translates an LMDB return code; with translate_commit (which adds the meaning of a
  /// commit's EIO), the one place rc values are interpreted.
  static error translate(int rc, std::string_view what);

  /// Below this much free space on the journal's filesystem, an EIO from a commit is
  /// taken as a full disk.
  static constexpr uint64_t nearly_full_bytes = uint64_t{1} << 20;

  /// Translates what mdb_txn_commit returned. LMDB 0.9 reports a short write, which is
  /// what a disk that fills up in the middle of a commit gives, as EIO; with
  /// `free_bytes` (the space left, when known) below nearly_full_bytes that EIO is
  /// errc::storage_full, not errc::io_error. Nothing was committed either way.
  static error translate_commit(int rc, std::optional<uint64_t> free_bytes);

  /// Bytes this process may still write on the journal's filesystem; nullopt when
  /// statvfs fails.
  std::optional<uint64_t> free_bytes() const noexcept;

  MDB_env* native() const noexcept {
    return env_;
  }

private:
  friend class txn;
  explicit environment(journal_options opts);
  status open_journal_dbs();
  expected<txn> begin(bool read_only);
  status grow();
  status adopt_foreign_resize();
  // Zero-fills data.mdb past its last used page up to opts_.file_headroom; called by
  // the writer right after it took LMDB's write lock.
  void keep_headroom() noexcept;
  // Ends a read txn: reset and kept for the next begin_read, or aborted if enough are.
  void recycle_read(MDB_txn* t) noexcept;

  journal_options opts_;
  MDB_env* env_ = nullptr;
  journal_dbs dbs_;
  std::shared_mutex resize_mtx_;
  std::mutex dbi_mtx_;
  // Reset read txns (MDB_NOTLS: each keeps its reader slot) for mdb_txn_renew. A fresh
  // read txn costs a ~4 KB malloc (one DB record per possible DB) and a reader-table
  // lock; a renewed one neither. Cold activations begin two each.
  std::mutex idle_reads_mtx_;
  std::vector<MDB_txn*> idle_reads_;
  size_t page_size_ = 4096;
  // How far data.mdb is known to reach: its size at open, then what keep_headroom
  // wrote. Written only under LMDB's write lock (another process may have written
  // further; the zeros go past LMDB's last page anyway).
  size_t file_end_ = 0;
};

} // namespace evident
