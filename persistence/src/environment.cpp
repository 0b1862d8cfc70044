#include "evident/persistence/environment.hpp"

#include "evident/persistence/detail/msgpack_io.hpp"
#include "evident/persistence/uuid.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <filesystem>

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace evident {

namespace {

namespace fs = std::filesystem;

MDB_val to_val(std::string_view x) noexcept {
  return MDB_val{x.size(), const_cast<char*>(x.data())};
}

std::string_view from_val(const MDB_val& x) noexcept {
  return {static_cast<const char*>(x.mv_data), x.mv_size};
}

// The DBs of a journal; everything else in the main DB is a user's DB (open_db).
constexpr std::array<const char*, 7> journal_db_names = {
  "events", "streams", "heads", "snapshots", "checkpoints", "dedup", "meta",
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

} // namespace

std::string_view to_string(durability x) noexcept {
  switch (x) {
    case durability::fsync_each_commit:
      return "fsync";
    case durability::no_meta_sync:
      return "no_meta_sync";
    default:
      return "no_sync";
  }
}

// -- errors -----------------------------------------------------------------------

error environment::translate(int rc, std::string_view what) {
  std::string msg{what};
  msg += ": ";
  msg += mdb_strerror(rc);
  switch (rc) {
    case MDB_MAP_FULL:
      return {errc::storage_full, std::move(msg)};
    case MDB_TXN_FULL:
      return {errc::too_large, std::move(msg) + " (too many changes in one transaction)"};
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
      return {errc::corrupted, std::move(msg)};
    case MDB_INVALID:
      return {errc::not_a_journal, std::move(msg)};
    case MDB_VERSION_MISMATCH:
      return {errc::unsupported_format, std::move(msg)};
    case ENOSPC:
      return {errc::storage_full, std::move(msg) + " (the disk is full)"};
    default:
      return {errc::io_error, std::move(msg)};
  }
}

error environment::translate_commit(int rc, std::optional<uint64_t> free_bytes) {
  auto err = translate(rc, "mdb_txn_commit");
  if (rc == EIO && free_bytes && *free_bytes < nearly_full_bytes) {
    err.code = errc::storage_full;
    err.message += " (a short write: the disk is full, " + std::to_string(*free_bytes)
                   + " bytes free; nothing was committed)";
  }
  return err;
}

std::optional<uint64_t> environment::free_bytes() const noexcept {
  struct statvfs st {};
  if (::statvfs(opts_.path.c_str(), &st) != 0)
    return std::nullopt;
  // root may write into the blocks the filesystem reserves; others may not.
  auto blocks = ::geteuid() == 0 ? st.f_bfree : st.f_bavail;
  return static_cast<uint64_t>(blocks) * st.f_frsize;
}

// -- txn --------------------------------------------------------------------------

txn::txn(environment* env, MDB_txn* t, bool writable, std::shared_lock<std::shared_mutex> lock)
  : env_(env), txn_(t), writable_(writable), resize_lock_(std::move(lock)) {
  // nop
}

txn::txn(txn&& other) noexcept
  : env_(other.env_),
    txn_(std::exchange(other.txn_, nullptr)),
    writable_(other.writable_),
    resize_lock_(std::move(other.resize_lock_)) {
  // nop
}

txn& txn::operator=(txn&& other) noexcept {
  if (this != &other) {
    abort();
    env_ = other.env_;
    txn_ = std::exchange(other.txn_, nullptr);
    writable_ = other.writable_;
    resize_lock_ = std::move(other.resize_lock_);
  }
  return *this;
}

txn::~txn() {
  abort();
}

const journal_dbs& txn::dbs() const noexcept {
  return env_->dbs();
}

expected<std::optional<std::string_view>> txn::get(MDB_dbi db, std::string_view key) {
  auto k = to_val(key);
  MDB_val v;
  auto rc = mdb_get(txn_, db, &k, &v);
  if (rc == MDB_NOTFOUND)
    return std::optional<std::string_view>{};
  if (rc != 0)
    return environment::translate(rc, "mdb_get");
  return std::optional<std::string_view>{from_val(v)};
}

status txn::put(MDB_dbi db, std::string_view key, std::string_view value, unsigned flags) {
  auto k = to_val(key);
  auto v = to_val(value);
  if (auto rc = mdb_put(txn_, db, &k, &v, flags); rc != 0)
    return environment::translate(rc, "mdb_put");
  return {};
}

status txn::del(MDB_dbi db, std::string_view key) {
  auto k = to_val(key);
  auto rc = mdb_del(txn_, db, &k, nullptr);
  if (rc != 0 && rc != MDB_NOTFOUND)
    return environment::translate(rc, "mdb_del");
  return {};
}

status txn::commit(commit_sync how) {
  if (txn_ == nullptr)
    return {errc::io_error, "commit of a finished transaction"};
  auto rc = mdb_txn_commit(std::exchange(txn_, nullptr));
  resize_lock_ = {};
  if (rc != 0)
    return environment::translate_commit(rc, rc == EIO ? env_->free_bytes() : std::nullopt);
  // LMDB has flushed the data pages and written the meta page without flushing it
  // (MDB_NOMETASYNC). Flushing it here rather than inside mdb_txn_commit costs the same
  // one flush, but the write lock is free meanwhile: another writer's transaction
  // overlaps with it instead of queueing behind it.
  if (writable_ && how == commit_sync::durable && env_->flushes_meta())
    if (auto err = env_->sync()) {
      err.message += " after mdb_txn_commit (the commit is in the journal but may not be on "
                     "disk: outcome unknown)";
      return err;
    }
  return {};
}

void txn::abort() noexcept {
  if (txn_ != nullptr) {
    if (writable_)
      mdb_txn_abort(std::exchange(txn_, nullptr));
    else
      // Under the resize lock still. (commit() frees a read txn for good: that one may
      // have opened DB handles, which only a commit keeps.)
      env_->recycle_read(std::exchange(txn_, nullptr));
  }
  if (resize_lock_.owns_lock())
    resize_lock_.unlock();
}

// -- cursor -----------------------------------------------------------------------

cursor::cursor(txn& t, MDB_dbi db) {
  if (auto rc = mdb_cursor_open(t.native(), db, &cur_); rc != 0) {
    cur_ = nullptr;
    err_ = environment::translate(rc, "mdb_cursor_open");
  }
}

cursor::cursor(cursor&& other) noexcept
  : cur_(std::exchange(other.cur_, nullptr)), err_(std::move(other.err_)) {
  // nop
}

cursor::~cursor() {
  if (cur_ != nullptr)
    mdb_cursor_close(cur_);
}

expected<std::optional<cursor::entry>> cursor::move(MDB_cursor_op op, std::string_view key) {
  if (cur_ == nullptr)
    return err_;
  MDB_val k = to_val(key);
  MDB_val v{0, nullptr};
  auto rc = mdb_cursor_get(cur_, &k, &v, op);
  if (rc == MDB_NOTFOUND)
    return std::optional<entry>{};
  if (rc != 0)
    return environment::translate(rc, "mdb_cursor_get");
  return std::optional<entry>{entry{from_val(k), from_val(v)}};
}

expected<std::optional<cursor::entry>> cursor::seek(std::string_view key) {
  return move(MDB_SET_RANGE, key);
}

expected<std::optional<cursor::entry>> cursor::first() {
  return move(MDB_FIRST);
}

expected<std::optional<cursor::entry>> cursor::last() {
  return move(MDB_LAST);
}

expected<std::optional<cursor::entry>> cursor::next() {
  return move(MDB_NEXT);
}

expected<std::optional<cursor::entry>> cursor::prev() {
  return move(MDB_PREV);
}

status cursor::del() {
  if (cur_ == nullptr)
    return err_;
  if (auto rc = mdb_cursor_del(cur_, 0); rc != 0)
    return environment::translate(rc, "mdb_cursor_del");
  return {};
}

// -- environment ------------------------------------------------------------------

environment::environment(journal_options opts) : opts_(std::move(opts)) {
  // nop
}

environment::~environment() {
  for (auto* t : idle_reads_)
    mdb_txn_abort(t);
  // Deferred commits are on disk but for their meta page: flush it, so that a clean stop
  // leaves nothing for a machine crash to undo. mdb_env_close does not flush.
  if (env_ != nullptr && flushes_meta())
    ignore(sync(), "best effort at close; a failure costs at most the deferred commits");
  if (env_ != nullptr)
    mdb_env_close(env_);
}

expected<std::shared_ptr<environment>> environment::open(const journal_options& opts) {
  if (opts.path.empty())
    return error{errc::invalid_input, "no journal path given"};
  if (opts.map_size_cap < opts.map_size)
    return error{errc::invalid_input, "map_size_cap is smaller than map_size"};
  std::error_code ec;
  auto data_file = fs::path{opts.path} / "data.mdb";
  if (!fs::exists(data_file, ec)) {
    if (!opts.create || opts.read_only)
      return error{errc::not_a_journal, "no journal in '" + opts.path + "'"};
    fs::create_directories(opts.path, ec);
    if (ec)
      return error{errc::io_error, "cannot create '" + opts.path + "': " + ec.message()};
  } else if (fs::is_directory(data_file, ec)) {
    return error{errc::not_a_journal, "'" + data_file.string() + "' is a directory"};
  }
  std::shared_ptr<environment> self{new environment(opts)};
  auto fail = [&](int rc, const char* what) { return translate(rc, what); };
  if (auto rc = mdb_env_create(&self->env_); rc != 0) {
    self->env_ = nullptr;
    return fail(rc, "mdb_env_create");
  }
  if (auto rc = mdb_env_set_maxdbs(self->env_, 64); rc != 0)
    return fail(rc, "mdb_env_set_maxdbs");
  if (auto rc = mdb_env_set_maxreaders(self->env_, opts.max_readers); rc != 0)
    return fail(rc, "mdb_env_set_maxreaders");
  // LMDB keeps the larger of this and the size recorded in the file.
  if (auto rc = mdb_env_set_mapsize(self->env_, opts.map_size); rc != 0)
    return fail(rc, "mdb_env_set_mapsize");
  // MDB_NOTLS: CAF actors hop between threads, so a read txn must not be tied to one.
  unsigned flags = MDB_NOTLS;
  if (opts.read_only)
    flags |= MDB_RDONLY;
  // fsync_each_commit too: txn::commit flushes the meta page itself (see commit_sync).
  if (opts.sync == durability::no_meta_sync || self->flushes_meta())
    flags |= MDB_NOMETASYNC;
  else if (opts.sync == durability::no_sync)
    flags |= MDB_NOSYNC;
  auto max_key = static_cast<size_t>(mdb_env_get_maxkeysize(self->env_));
  if (opts.max_stream_id_bytes + 1 + std::max<size_t>(opts.max_id_bytes, 8) > max_key)
    return error{errc::invalid_input, "max_stream_id_bytes + max_id_bytes + 1 must not exceed "
                                        + std::to_string(max_key) + " (LMDB's key limit)"};
  if (auto rc = mdb_env_open(self->env_, opts.path.c_str(), flags, 0664); rc != 0) {
    auto err = fail(rc, "mdb_env_open");
    if (rc == MDB_INVALID)
      err.message = "'" + opts.path + "' holds no LMDB environment (" + err.message + ")";
    return err;
  }
  MDB_stat est;
  mdb_env_stat(self->env_, &est);
  self->page_size_ = est.ms_psize;
  if (int fd = -1; mdb_env_get_fd(self->env_, &fd) == 0) {
    struct stat st;
    if (::fstat(fd, &st) == 0)
      self->file_end_ = static_cast<size_t>(st.st_size);
  }
  if (auto err = self->open_journal_dbs())
    return err;
  return self;
}

status environment::open_journal_dbs() {
  auto maybe_txn = opts_.read_only ? begin_read() : begin_write();
  if (!maybe_txn)
    return maybe_txn.err();
  auto& t = *maybe_txn;
  MDB_dbi* slots[] = {&dbs_.events, &dbs_.streams, &dbs_.heads, &dbs_.snapshots,
                      &dbs_.checkpoints, &dbs_.dedup, &dbs_.meta};
  // A fresh environment has an empty main DB: only then do we create the journal's
  // DBs. A non-empty main DB without our meta DB belongs to someone else.
  MDB_dbi main_db = 0;
  if (auto rc = mdb_dbi_open(t.native(), nullptr, 0, &main_db); rc != 0)
    return translate(rc, "mdb_dbi_open");
  MDB_stat main_stat;
  mdb_stat(t.native(), main_db, &main_stat);
  bool fresh = main_stat.ms_entries == 0;
  if (fresh && (opts_.read_only || !opts_.create))
    return {errc::not_a_journal, "no journal in '" + opts_.path + "'"};
  for (size_t i = 0; i < journal_db_names.size(); ++i) {
    auto rc = mdb_dbi_open(t.native(), journal_db_names[i], fresh ? MDB_CREATE : 0, slots[i]);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
      return {errc::not_a_journal,
              "'" + opts_.path + "' is an LMDB environment but not an evident journal"};
    if (rc != 0)
      return translate(rc, "mdb_dbi_open");
  }
  auto version = t.get(dbs_.meta, "format_version");
  if (!version)
    return version.err();
  if (!*version) {
    if (!fresh)
      return {errc::not_a_journal, "'" + opts_.path + "' has no format version"};
    std::string v;
    detail::put_be(v, format_version, 4);
    auto id = uuid::random();
    std::string created;
    detail::put_be(created, static_cast<uint64_t>(now_ns()), 8);
    for (auto err : {t.put(dbs_.meta, "format_version", v),
                     t.put(dbs_.meta, "node_id",
                           std::string_view{reinterpret_cast<const char*>(id.bytes.data()), 16}),
                     t.put(dbs_.meta, "created_at", created),
                     t.put(dbs_.meta, "indexed_through", detail::be64(0))})
      if (err)
        return err;
  } else {
    if ((*version)->size() != 4)
      return {errc::not_a_journal, "'" + opts_.path + "' has a malformed format version"};
    auto found = static_cast<uint32_t>(detail::get_be((*version)->data(), 4));
    if (found > format_version)
      return {errc::unsupported_format,
              "journal format " + std::to_string(found) + " is newer than this build reads ("
                + std::to_string(format_version) + ")"};
    if (found == 0)
      return {errc::not_a_journal, "'" + opts_.path + "' has format version 0"};
    // Older layouts are subsets of this one: mark the journal as today's before this
    // build writes what an older build could not read.
    if (found < format_version && !opts_.read_only) {
      std::string v;
      detail::put_be(v, format_version, 4);
      if (auto err = t.put(dbs_.meta, "format_version", v))
        return err;
    }
  }
  return t.commit();
}

expected<txn> environment::begin_read() {
  return begin(true);
}

expected<txn> environment::begin_write() {
  if (opts_.read_only)
    return error{errc::io_error, "the journal was opened read-only"};
  return begin(false);
}

expected<txn> environment::begin(bool read_only) {
  for (;;) {
    std::shared_lock<std::shared_mutex> lock{resize_mtx_};
    MDB_txn* t = nullptr;
    if (read_only) {
      {
        std::lock_guard<std::mutex> guard{idle_reads_mtx_};
        if (!idle_reads_.empty()) {
          t = idle_reads_.back();
          idle_reads_.pop_back();
        }
      }
      if (t != nullptr) {
        auto rc = mdb_txn_renew(t);
        if (rc == 0)
          return txn{this, t, false, std::move(lock)};
        mdb_txn_abort(t); // then as if there had been none (MDB_MAP_RESIZED included)
        t = nullptr;
      }
    }
    auto rc = mdb_txn_begin(env_, nullptr, read_only ? MDB_RDONLY : 0, &t);
    if (rc == 0) {
      if (!read_only)
        keep_headroom();
      return txn{this, t, !read_only, std::move(lock)};
    }
    if (rc != MDB_MAP_RESIZED)
      return translate(rc, "mdb_txn_begin");
    // Another process grew the map: adopt its size (needs no txn of ours open).
    lock.unlock();
    if (auto err = adopt_foreign_resize())
      return err;
  }
}

// Safe because it runs under LMDB's write lock, before this txn wrote anything: LMDB
// writes no page past the last committed one (mm_last_pg) until this txn commits, and
// those pages then overwrite the zeros. A failed write (e.g. a full disk) only leaves
// less headroom: LMDB's own write then reports the error.
void environment::keep_headroom() noexcept {
  if (opts_.file_headroom == 0 || opts_.sync == durability::no_sync)
    return;
  MDB_envinfo info;
  if (mdb_env_info(env_, &info) != 0)
    return;
  auto used = (info.me_last_pgno + 1) * page_size_;
  if (file_end_ >= used + opts_.file_headroom / 4)
    return;
  int fd = -1;
  if (mdb_env_get_fd(env_, &fd) != 0)
    return;
  static const std::array<char, 64 * 1024> zeros{};
  auto to = std::min(used + opts_.file_headroom, info.me_mapsize);
  for (auto off = std::max(file_end_, used); off < to;) {
    auto n = std::min(zeros.size(), to - off);
    auto written = ::pwrite(fd, zeros.data(), n, static_cast<off_t>(off));
    if (written <= 0)
      return;
    off += static_cast<size_t>(written);
    file_end_ = off;
  }
}

// At most this many reset read txns wait for reuse; each holds a reader slot.
constexpr size_t max_idle_reads = 16;

void environment::recycle_read(MDB_txn* t) noexcept {
  mdb_txn_reset(t);
  {
    std::lock_guard<std::mutex> guard{idle_reads_mtx_};
    if (idle_reads_.size() < std::min<size_t>(max_idle_reads, opts_.max_readers / 4)) {
      idle_reads_.push_back(t);
      return;
    }
  }
  mdb_txn_abort(t);
}

status environment::adopt_foreign_resize() {
  std::unique_lock<std::shared_mutex> guard{resize_mtx_};
  if (auto rc = mdb_env_set_mapsize(env_, 0); rc != 0)
    return translate(rc, "mdb_env_set_mapsize");
  return {};
}

size_t environment::map_size() const noexcept {
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  return info.me_mapsize;
}

status environment::grow() {
  std::unique_lock<std::shared_mutex> guard{resize_mtx_};
  auto current = map_size();
  if (current >= opts_.map_size_cap)
    return {errc::storage_full, "the journal reached its size cap of "
                                  + std::to_string(opts_.map_size_cap) + " bytes"};
  auto next = std::min(current * 2, opts_.map_size_cap);
  if (auto rc = mdb_env_set_mapsize(env_, next); rc != 0)
    return translate(rc, "mdb_env_set_mapsize");
  return {};
}

status environment::write(const std::function<status(txn&)>& fn, commit_sync how) {
  for (;;) {
    auto t = begin_write();
    if (!t)
      return t.err();
    auto err = fn(*t);
    if (!err)
      err = t->commit(how);
    else
      t->abort();
    if (err.code != errc::storage_full || err.message.find("MDB_MAP_FULL") == std::string::npos)
      return err;
    // MDB_MAP_FULL: nothing of this txn was written. Grow and run `fn` again.
    if (auto grow_err = grow())
      return grow_err;
  }
}

expected<MDB_dbi> environment::open_db(const std::string& name) {
  if (name.empty() || name.rfind("evident.", 0) == 0
      || std::find(journal_db_names.begin(), journal_db_names.end(), name)
           != journal_db_names.end())
    return error{errc::invalid_input, "'" + name + "' is reserved for the journal"};
  std::lock_guard<std::mutex> guard{dbi_mtx_};
  MDB_dbi result = 0;
  auto err = write([&](txn& t) -> status {
    if (auto rc = mdb_dbi_open(t.native(), name.c_str(), MDB_CREATE, &result); rc != 0)
      return translate(rc, "mdb_dbi_open");
    return {};
  });
  if (err)
    return err;
  return result;
}

status environment::sync() {
  // mdb_env_sync reads the meta pages through the map, and a durable commit syncs after
  // giving up its resize lock: without this lock, a checkpoint's or snapshot's commit on
  // another thread could read the map while the journal writer's grow() replaces it.
  std::shared_lock<std::shared_mutex> lock{resize_mtx_};
  if (auto rc = mdb_env_sync(env_, 1); rc != 0)
    return translate(rc, "mdb_env_sync");
  return {};
}

} // namespace evident
