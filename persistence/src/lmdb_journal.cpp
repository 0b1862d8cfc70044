#include "evident/persistence/lmdb_journal.hpp"

#include "evident/persistence/detail/journal_rules.hpp"
#include "evident/persistence/detail/msgpack_io.hpp"

#include <algorithm>
#include <bit>
#include <chrono>
#include <unordered_map>

// The write path (DESIGN.md, "The write path is append-only"):
//
//   commit:      events  (MDB_APPEND, fresh pages only)
//   index pass:  streams + dedup + heads, every index_lag_events, many entries per page
//
// Between index passes, the (stream, version) -> position entries, the command-id
// records and the versions of the newest events exist only in the log and in
// `index_tail` below. A stream's current version is therefore the larger of its heads
// record and its last event in the tail. Only a change of state (delete, tombstone, a
// soft-deleted stream written again) writes a head at once; it bumps the heads
// generation in `meta`, which tells every process to drop its cached heads. Every
// process keeps its own tail and rebuilds it from the log: on open, and whenever a
// transaction shows that the log grew (another process appended) or that the index
// mark moved (another process indexed). Readers therefore combine
//
//   index entries (positions <= indexed_through of their snapshot)
//   + tail entries (indexed_through < position <= log end of their snapshot).

namespace evident {

namespace detail {



// A stream's tail positions, ascending. One is kept inline: between two index passes
// most streams get a few events, many just one, and a one-element std::vector costs a
// 24-byte header plus a 32-byte heap block per stream (100,000 streams: 5 MB). More
// than one live in a heap array whose capacity is the size rounded up to a power of two.
class position_run {
public:
  position_run() noexcept : one_(0) {
  }

  position_run(const position_run& other) : position_run() {
    for (auto x : other)
      push_back(x);
  }

  position_run(position_run&& other) noexcept : one_(other.one_), size_(other.size_) {
    other.size_ = 0;
  }

  position_run& operator=(position_run other) noexcept {
    std::swap(one_, other.one_); // the whole union: `many_` when on the heap
    std::swap(size_, other.size_);
    return *this;
  }

  ~position_run() {
    clear();
  }

  bool empty() const noexcept {
    return size_ == 0;
  }

  size_t size() const noexcept {
    return size_;
  }

  const uint64_t* begin() const noexcept {
    return size_ > 1 ? many_ : &one_;
  }

  const uint64_t* end() const noexcept {
    return begin() + size_;
  }

  uint64_t operator[](size_t i) const noexcept {
    return begin()[i];
  }

  uint64_t front() const noexcept {
    return *begin();
  }

  void push_back(uint64_t x) {
    if (size_ == 0) {
      one_ = x;
    } else if (size_ == 1) {
      auto* p = new uint64_t[2]{one_, x};
      many_ = p;
    } else {
      if (std::has_single_bit(size_)) { // full: double
        auto* p = new uint64_t[2 * size_];
        std::copy(many_, many_ + size_, p);
        delete[] many_;
        many_ = p;
      }
      many_[size_] = x;
    }
    ++size_;
  }

  // Drops the first `n` positions (they are indexed now).
  void erase_front(size_t n) {
    if (n == 0)
      return;
    position_run rest;
    for (auto i = begin() + n; i < end(); ++i)
      rest.push_back(*i);
    *this = std::move(rest);
  }

  void clear() noexcept {
    if (size_ > 1)
      delete[] many_;
    size_ = 0;
  }

private:
  union {
    uint64_t one_;   // size_ <= 1
    uint64_t* many_; // size_ > 1
  };
  size_t size_ = 0;
};

// Everything the tail knows of one stream. One hash lookup per stream and batch finds
// all of it: the append path is CPU-bound on the writer's thread.
struct stream_tail {
  uint64_t first_version = 0;
  position_run positions; ///< positions[i]: position of first_version + i
  /// The writer's copy of the stream's heads-DB record (without tail versions), valid
  /// while the DB's heads generation equals index_tail::heads_generation.
  /// (Without the stream name, which is the map key: 64 bytes less per stream.)
  bool head_cached = false;
  stream_state db_state = stream_state::live;
  uint64_t db_version = 0;
  uint64_t db_truncate_before = 0;
  /// Scratch of append_batch: which batch last touched the stream, and its slot there.
  uint64_t batch_epoch = 0;
  size_t batch_slot = 0;

  uint64_t next_version() const noexcept {
    return first_version + positions.size();
  }
  /// The version of the last tail event at or below `end` (0 when none).
  uint64_t last_version_until(uint64_t end) const noexcept {
    auto n = static_cast<uint64_t>(
      std::upper_bound(positions.begin(), positions.end(), end) - positions.begin());
    return n == 0 ? 0 : first_version + n - 1;
  }
};

struct index_tail {
  std::mutex mtx;
  /// The index mark this tail is relative to: entries <= it are in the LMDB index.
  uint64_t indexed_through = 0;
  /// The log end this tail has taken in.
  uint64_t last_position = 0;
  uint64_t entries = 0;
  std::unordered_map<std::string, stream_tail> streams;
  /// Key: stream + '\0' + command id.
  std::unordered_map<std::string, append_result> dedup;
  /// The DB's heads generation (bumped by every head write) that cached heads match.
  uint64_t heads_generation = 0;
  /// Counts append_batch transactions (see stream_tail::batch_epoch).
  uint64_t batch_epoch = 0;
};

} // namespace detail

namespace {

using detail::be64;
using detail::get_be;
using detail::index_tail;
using detail::put_be;
using detail::stream_tail;

constexpr std::string_view indexed_through_key = "indexed_through";
constexpr std::string_view heads_generation_key = "heads_generation";
// Bound on the writer's cache of heads records; past it the cache starts over.
constexpr size_t max_cached_heads = 1'000'000;
// Most versions in one `streams` entry: 1,600-byte values stay inside a 4 KiB leaf
// page (LMDB moves values over about 2 KiB to overflow pages).
constexpr size_t index_chunk_entries = 200;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string stream_key(std::string_view stream, uint64_t version) {
  std::string key;
  key.reserve(stream.size() + 9);
  key.append(stream);
  key.push_back('\0');
  put_be(key, version, 8);
  return key;
}

std::string dedup_key(std::string_view stream, std::string_view command_id) {
  std::string key;
  key.reserve(stream.size() + 1 + command_id.size());
  key.append(stream);
  key.push_back('\0');
  key.append(command_id);
  return key;
}

// heads value: version u64 BE, state u8, truncate_before u64 BE (17 bytes).
std::string encode_head(const stream_head& h) {
  std::string out;
  out.reserve(17);
  put_be(out, h.version, 8);
  out.push_back(static_cast<char>(h.state));
  put_be(out, h.truncate_before, 8);
  return out;
}

status decode_head(std::string_view stream, std::string_view v, stream_head& out) {
  if (v.size() != 17 || static_cast<unsigned char>(v[8]) > 2)
    return {errc::corrupted, "malformed head record of stream '" + std::string{stream} + "'"};
  out.stream.assign(stream);
  out.version = get_be(v.data(), 8);
  out.state = static_cast<stream_state>(v[8]);
  out.truncate_before = get_be(v.data() + 9, 8);
  return {};
}

// dedup value: first/last version, first/last position, u64 BE each (32 bytes).
std::string encode_dedup(const append_result& r) {
  std::string out;
  out.reserve(32);
  put_be(out, r.first_version, 8);
  put_be(out, r.last_version, 8);
  put_be(out, r.first_position, 8);
  put_be(out, r.last_position, 8);
  return out;
}

expected<append_result> decode_dedup(std::string_view v) {
  if (v.size() != 32)
    return error{errc::corrupted, "malformed command-id record"};
  append_result r;
  r.first_version = get_be(v.data(), 8);
  r.last_version = get_be(v.data() + 8, 8);
  r.first_position = get_be(v.data() + 16, 8);
  r.last_position = get_be(v.data() + 24, 8);
  return r;
}

expected<stream_head> load_head(txn& t, const std::string& stream) {
  stream_head h;
  h.stream = stream;
  auto v = t.get(t.dbs().heads, stream);
  if (!v)
    return v.err();
  if (*v)
    if (auto err = decode_head(stream, **v, h))
      return err;
  return h;
}

expected<uint64_t> log_end(txn& t) {
  cursor c{t, t.dbs().events};
  auto e = c.last();
  if (!e)
    return e.err();
  if (!*e)
    return uint64_t{0};
  if ((*e)->key.size() != 8)
    return error{errc::corrupted, "malformed key in the events DB"};
  return get_be((*e)->key.data(), 8);
}

expected<uint64_t> meta_u64(txn& t, std::string_view key) {
  auto v = t.get(t.dbs().meta, key);
  if (!v)
    return v.err();
  if (!*v)
    return uint64_t{0};
  if ((*v)->size() != 8)
    return error{errc::corrupted, "malformed meta value '" + std::string{key} + "'"};
  return get_be((*v)->data(), 8);
}

expected<uint64_t> indexed_through(txn& t) {
  return meta_u64(t, indexed_through_key);
}

// Stores `h` and bumps the heads generation, so other processes drop cached heads.
status write_head(txn& t, const stream_head& h) {
  auto gen = meta_u64(t, heads_generation_key);
  if (!gen)
    return gen.err();
  if (auto err = t.put(t.dbs().heads, h.stream, encode_head(h)))
    return err;
  return t.put(t.dbs().meta, heads_generation_key, be64(*gen + 1));
}

// Adds one logged event to the tail (the event must directly follow what it holds).
void take_in(index_tail& tail, std::string_view stream, uint64_t version, uint64_t position,
             std::string_view command_id) {
  auto& st = tail.streams[std::string{stream}];
  if (st.positions.empty() || st.next_version() != version) {
    // A gap can only mean the earlier versions are indexed: start over from here.
    st.positions.clear();
    st.first_version = version;
  }
  st.positions.push_back(position);
  ++tail.entries;
  if (!command_id.empty()) {
    auto [i, added] = tail.dedup.try_emplace(dedup_key(stream, command_id));
    auto& r = i->second;
    if (added) {
      r.first_version = version;
      r.first_position = position;
    }
    r.last_version = version;
    r.last_position = position;
  }
}

// Drops tail entries at or below `mark` (they are in the LMDB index now).
void drop_indexed(index_tail& tail, uint64_t mark) {
  uint64_t remaining = 0;
  for (auto i = tail.streams.begin(); i != tail.streams.end();) {
    auto& st = i->second;
    auto cut = std::upper_bound(st.positions.begin(), st.positions.end(), mark);
    auto n = static_cast<uint64_t>(cut - st.positions.begin());
    st.positions.erase_front(n);
    st.first_version += n;
    if (st.positions.empty() && !st.head_cached) {
      i = tail.streams.erase(i);
    } else {
      remaining += st.positions.size();
      ++i;
    }
  }
  tail.entries = remaining;
  std::erase_if(tail.dedup, [mark](const auto& kv) { return kv.second.last_position <= mark; });
  tail.indexed_through = mark;
  tail.last_position = std::max(tail.last_position, mark);
}

// Drops every cached heads record (and the entries that held nothing else).
void forget_cached_heads(index_tail& tail) {
  for (auto i = tail.streams.begin(); i != tail.streams.end();) {
    i->second.head_cached = false;
    if (i->second.positions.empty())
      i = tail.streams.erase(i);
    else
      ++i;
  }
}

enum class catch_up_result { ok, stale };

// Brings the tail up to the snapshot of `t`. Caller holds tail.mtx. Returns `stale` when
// `t` is older than the tail's index mark (its index lacks entries the tail dropped).
expected<catch_up_result> catch_up(index_tail& tail, txn& t) {
  auto mark = indexed_through(t);
  if (!mark)
    return mark.err();
  if (*mark < tail.indexed_through)
    return catch_up_result::stale;
  if (*mark > tail.indexed_through)
    drop_indexed(tail, *mark);
  auto gen = meta_u64(t, heads_generation_key);
  if (!gen)
    return gen.err();
  if (*gen != tail.heads_generation) {
    forget_cached_heads(tail);
    tail.heads_generation = *gen;
  }
  auto end = log_end(t);
  if (!end)
    return end.err();
  if (*end <= tail.last_position)
    return catch_up_result::ok;
  cursor c{t, t.dbs().events};
  auto e = c.seek(be64(tail.last_position + 1));
  envelope::header h;
  for (;;) {
    if (!e)
      return e.err();
    if (!*e)
      break;
    auto pos = get_be((*e)->key.data(), 8);
    if (pos > *end)
      break;
    if (pos != tail.last_position + 1)
      return error{errc::corrupted, "gap in the log before position " + std::to_string(pos)};
    if (auto err = envelope::decode_header(pos, (*e)->value, h))
      return err;
    take_in(tail, h.stream, h.version, pos, h.command_id);
    tail.last_position = pos;
    e = c.next();
  }
  return catch_up_result::ok;
}

// The current head of `stream` as of a snapshot ending at `end`: the heads record
// plus the stream's events in the tail. Caller holds tail.mtx and has caught up with `t`.
expected<stream_head> effective_head(index_tail& tail, txn& t, const std::string& stream,
                                     uint64_t end) {
  auto h = load_head(t, stream);
  if (!h)
    return h;
  if (auto i = tail.streams.find(stream); i != tail.streams.end())
    h->version = std::max(h->version, i->second.last_version_until(end));
  return h;
}

// The same for the writer, from (and into) the entry's cached heads record: its write
// txn is the newest snapshot, so the cache stays valid until the heads generation moves.
expected<stream_head> effective_head(index_tail& tail, txn& t, const std::string& stream,
                                     stream_tail& st) {
  if (!st.head_cached) {
    if (tail.streams.size() >= max_cached_heads)
      return effective_head(tail, t, stream, tail.last_position);
    auto h = load_head(t, stream);
    if (!h)
      return h;
    st.db_state = h->state;
    st.db_version = h->version;
    st.db_truncate_before = h->truncate_before;
    st.head_cached = true;
  }
  stream_head h;
  h.stream = stream;
  h.state = st.db_state;
  h.version = st.db_version;
  h.truncate_before = st.db_truncate_before;
  h.version = std::max(h.version, st.last_version_until(tail.last_position));
  return h;
}

} // namespace

// -- construction -------------------------------------------------------------------

lmdb_journal::lmdb_journal(std::shared_ptr<environment> env)
  : env_(std::move(env)), tail_(std::make_unique<detail::index_tail>()) {
  // nop
}

lmdb_journal::~lmdb_journal() {
  // Index what is pending so that the next open reads a short tail. A crash skips this,
  // which costs only open time: the tail is rebuilt from the log.
  if (!env_->options().read_only && tail_->entries > 0)
    ignore(flush_index(), "best effort at close; the log holds everything");
}

expected<std::shared_ptr<lmdb_journal>> lmdb_journal::open(const journal_options& opts) {
  auto env = environment::open(opts);
  if (!env)
    return env.err();
  std::shared_ptr<lmdb_journal> result{new lmdb_journal(std::move(*env))};
  // Take in the log tail now rather than on the first request.
  auto t = result->env_->begin_read();
  if (!t)
    return t.err();
  std::lock_guard<std::mutex> guard{result->tail_->mtx};
  auto r = catch_up(*result->tail_, *t);
  if (!r)
    return r.err();
  return result;
}

// -- appends ------------------------------------------------------------------------

expected<append_result> lmdb_journal::append(const append_request& req) {
  auto results = append_batch(std::span<const append_request>{&req, 1});
  return std::move(results.front());
}

std::vector<expected<append_result>>
lmdb_journal::append_batch(std::span<const append_request> reqs) {
  return append_batch(reqs, commit_sync::durable);
}

std::vector<expected<append_result>>
lmdb_journal::append_batch_deferred(std::span<const append_request> reqs) {
  return append_batch(reqs, commit_sync::deferred);
}

bool lmdb_journal::defers_durability() const noexcept {
  return env_->flushes_meta();
}

status lmdb_journal::sync() {
  // The other modes promise less: their commits are as durable as they get already.
  if (!defers_durability())
    return {};
  return env_->sync();
}

std::vector<expected<append_result>>
lmdb_journal::append_batch(std::span<const append_request> reqs, commit_sync how) {
  const auto& opts = env_->options();
  std::vector<expected<append_result>> results;
  results.reserve(reqs.size());
  // Validation needs no transaction; refused requests never enter it.
  std::vector<status> invalid;
  invalid.reserve(reqs.size());
  for (auto& req : reqs)
    invalid.push_back(detail::validate(req, opts));

  // What this batch adds to the tail once committed.
  struct staged_event {
    size_t stream_slot;
    uint64_t version;
    uint64_t position;
  };
  std::vector<staged_event> staged;
  std::vector<stream_head> touched;                // heads read by this batch
  std::vector<bool> dirty;                         // ... and which of them it changed
  std::unordered_map<std::string, append_result> staged_dedup;
  uint64_t first_position = 0;
  uint64_t next_position = 0;
  std::string buf;

  auto body = [&](txn& t) -> status {
    // Runs again after map growth: start from scratch each time.
    results.clear();
    staged.clear();
    touched.clear();
    dirty.clear();
    staged_dedup.clear();
    // Held for the whole body: readers wait at most for this CPU work, never for the
    // commit's fsync (which runs after the body returns).
    std::lock_guard<std::mutex> guard{tail_->mtx};
    auto caught_up = catch_up(*tail_, t);
    if (!caught_up)
      return caught_up.err();
    first_position = tail_->last_position + 1;
    auto epoch = ++tail_->batch_epoch;
    next_position = first_position;
    auto time = now_ns();
    for (size_t i = 0; i < reqs.size(); ++i) {
      auto& req = reqs[i];
      if (invalid[i]) {
        results.emplace_back(invalid[i]);
        continue;
      }
      // A retry of a known command gets the first attempt's result, whatever else.
      if (!req.command_id.empty()) {
        auto key = dedup_key(req.stream, req.command_id);
        std::optional<append_result> known;
        if (auto j = staged_dedup.find(key); j != staged_dedup.end())
          known = j->second;
        else if (auto k = tail_->dedup.find(key); k != tail_->dedup.end())
          known = k->second;
        if (!known) {
          auto v = t.get(t.dbs().dedup, key);
          if (!v)
            return v.err();
          if (*v) {
            auto r = decode_dedup(**v);
            if (!r)
              return r.err();
            known = *r;
          }
        }
        if (known) {
          known->duplicate = true;
          results.emplace_back(*known);
          continue;
        }
      }
      // One hash lookup per request finds the stream's slot in this batch, its cached
      // head and its tail.
      auto& st = tail_->streams.try_emplace(req.stream).first->second;
      if (st.batch_epoch != epoch) {
        auto h = effective_head(*tail_, t, req.stream, st);
        if (!h)
          return h.err();
        st.batch_epoch = epoch;
        st.batch_slot = touched.size();
        touched.push_back(std::move(*h));
        dirty.push_back(false);
      }
      auto slot = st.batch_slot;
      auto& head = touched[slot];
      if (auto err = detail::check_expected(req, head)) {
        results.emplace_back(std::move(err));
        continue;
      }
      append_result res;
      if (req.events.empty()) {
        res.first_version = res.last_version = head.version;
        results.emplace_back(res);
        continue;
      }
      res.first_version = head.version + 1;
      res.first_position = next_position;
      for (auto& e : req.events) {
        auto version = ++head.version;
        auto id = e.event_id.is_nil() ? uuid::random() : e.event_id;
        buf.clear();
        envelope::encode(next_position, req.stream, version, req.command_id, e,
                         e.time_ns != 0 ? e.time_ns : time, id, buf);
        if (auto err = t.put(t.dbs().events, be64(next_position), buf, MDB_APPEND))
          return err;
        staged.push_back({slot, version, next_position});
        ++next_position;
      }
      if (head.state != stream_state::live) {
        head.state = stream_state::live; // an append revives a soft-deleted stream
        dirty[slot] = true;
      }
      res.last_version = head.version;
      res.last_position = next_position - 1;
      if (!req.command_id.empty())
        staged_dedup.emplace(dedup_key(req.stream, req.command_id), res);
      results.emplace_back(res);
    }
    // Versions live in the log (the index pass writes them to heads); only a change of
    // state is written now.
    for (size_t i = 0; i < touched.size(); ++i)
      if (dirty[i])
        if (auto err = write_head(t, touched[i]))
          return err;
    return {};
  };

  if (auto err = env_->write(body, how)) {
    // Nothing of the batch was stored: every request that got past validation fails
    // with the transaction's error; refusals keep their own.
    results.clear();
    for (size_t i = 0; i < reqs.size(); ++i)
      results.emplace_back(invalid[i] ? invalid[i] : err);
    return results;
  }

  bool index_due = false;
  {
    std::lock_guard<std::mutex> guard{tail_->mtx};
    // A reader may have taken this commit in from the log already.
    if (!staged.empty() && tail_->last_position == first_position - 1) {
      // Staged events are in position order and each stream's in version order, so
      // each stream's new positions simply extend its tail.
      std::vector<detail::stream_tail*> slots(touched.size(), nullptr);
      for (auto& ev : staged) {
        auto*& st = slots[ev.stream_slot];
        if (st == nullptr)
          st = &tail_->streams[touched[ev.stream_slot].stream];
        if (st->positions.empty() || st->next_version() != ev.version) {
          st->positions.clear();
          st->first_version = ev.version;
        }
        st->positions.push_back(ev.position);
        ++tail_->entries;
      }
      for (auto& [key, r] : staged_dedup)
        tail_->dedup.emplace(key, r);
      tail_->last_position = next_position - 1;
    }
    index_due = tail_->entries >= opts.index_lag_events;
  }
  if (index_due)
    ignore(flush_index(), "the index pass runs again after the next commit");
  return results;
}

// -- index pass -----------------------------------------------------------------------

status lmdb_journal::flush_index() {
  uint64_t mark = 0;
  auto err = env_->write([&](txn& t) -> status {
    std::lock_guard<std::mutex> guard{tail_->mtx};
    auto r = catch_up(*tail_, t);
    if (!r)
      return r.err();
    mark = tail_->last_position;
    if (tail_->indexed_through == mark)
      return {};
    // Sorted keys: neighbouring entries share B-tree pages, so each dirty page takes
    // many entries (the point of indexing in bulk).
    std::vector<const std::pair<const std::string, detail::stream_tail>*> order;
    order.reserve(tail_->streams.size());
    for (auto& kv : tail_->streams)
      if (!kv.second.positions.empty()) // entries may hold only a cached head
        order.push_back(&kv);
    std::sort(order.begin(), order.end(),
              [](auto* x, auto* y) { return x->first < y->first; });
    // One entry per run of up to index_chunk_entries versions, not one per version:
    // the pass costs a B-tree insert per chunk, and 8 bytes per event on disk.
    std::string key;
    std::string value;
    for (auto* kv : order) {
      auto& st = kv->second;
      for (size_t i = 0; i < st.positions.size(); i += index_chunk_entries) {
        auto n = std::min(index_chunk_entries, st.positions.size() - i);
        value.clear();
        for (size_t k = 0; k < n; ++k)
          put_be(value, st.positions[i + k], 8);
        key = stream_key(kv->first, st.first_version + i);
        if (auto e = t.put(t.dbs().streams, key, value))
          return e;
      }
    }
    for (auto& [key2, res] : tail_->dedup)
      if (auto e = t.put(t.dbs().dedup, key2, encode_dedup(res)))
        return e;
    // The versions the tail held move into heads (state and truncation stay).
    for (auto* kv : order) {
      auto h = effective_head(*tail_, t, kv->first, mark);
      if (!h)
        return h.err();
      if (auto e = t.put(t.dbs().heads, h->stream, encode_head(*h)))
        return e;
    }
    auto gen = meta_u64(t, heads_generation_key);
    if (!gen)
      return gen.err();
    if (auto e = t.put(t.dbs().meta, heads_generation_key, be64(*gen + 1)))
      return e;
    return t.put(t.dbs().meta, indexed_through_key, be64(mark));
  });
  if (err)
    return err;
  std::lock_guard<std::mutex> guard{tail_->mtx};
  if (mark > tail_->indexed_through)
    drop_indexed(*tail_, mark);
  return {};
}

// -- reads --------------------------------------------------------------------------

namespace {

struct consistent_read {
  txn t;
  uint64_t end; ///< the snapshot's log end
};

// A read transaction whose snapshot is not older than the tail, with the tail caught up.
expected<consistent_read> begin_consistent_read(environment& env, index_tail& tail) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto t = env.begin_read();
    if (!t)
      return t.err();
    std::lock_guard<std::mutex> guard{tail.mtx};
    auto r = catch_up(tail, *t);
    if (!r)
      return r.err();
    if (*r == catch_up_result::stale)
      continue; // someone indexed after our snapshot began: take a newer snapshot
    auto end = log_end(*t);
    if (!end)
      return end.err();
    return consistent_read{std::move(*t), *end};
  }
  return error{errc::io_error, "could not get a read snapshot consistent with the index"};
}

} // namespace

status lmdb_journal::read_stream(const std::string& stream, const read_options& opts,
                                 const event_visitor& f) {
  if (auto err = detail::validate_stream_id(stream, env_->options()))
    return err;
  auto snap = begin_consistent_read(*env_, *tail_);
  if (!snap)
    return snap.err();
  auto& t = snap->t;
  auto* end = &snap->end;
  expected<stream_head> head = error{};
  {
    std::lock_guard<std::mutex> guard{tail_->mtx};
    head = effective_head(*tail_, t, stream, *end);
  }
  if (!head)
    return head.err();
  if (auto err = detail::check_readable(*head))
    return err;
  auto win = detail::read_window(*head, opts);
  if (!win)
    return {};
  // Versions >= tail_first are in the tail, the rest in the index.
  uint64_t tail_first = win->hi + 1;
  std::vector<uint64_t> tail_positions; // positions of versions tail_first..hi in range
  {
    std::lock_guard<std::mutex> guard{tail_->mtx};
    if (auto i = tail_->streams.find(stream); i != tail_->streams.end()) {
      auto& st = i->second;
      tail_first = st.first_version;
      auto from = std::max(win->lo, st.first_version);
      for (auto v = from; v <= win->hi && v < st.next_version(); ++v) {
        auto pos = st.positions[v - st.first_version];
        if (pos > *end)
          break; // committed after our snapshot
        tail_positions.push_back(pos);
      }
    }
  }
  uint64_t count = 0;
  recorded_event ev;
  bool stop = false;
  auto visit = [&](uint64_t pos) -> status {
    auto v = t.get(t.dbs().events, be64(pos));
    if (!v)
      return v.err();
    if (!*v)
      return {errc::corrupted, "the index names position " + std::to_string(pos)
                                 + " but the log has no such event"};
    if (auto err = envelope::decode_into(pos, **v, ev))
      return err;
    ++count;
    if (!f(ev) || count >= opts.max_count)
      stop = true;
    return {};
  };
  auto index_hi = std::min(win->hi, tail_first - 1);
  // The index holds runs ("chunks") of a stream's positions: key stream ++ 0x00 ++ the
  // run's first version, value one u64 position per version (docs/format.md).
  auto walk_index = [&](bool forward) -> status {
    if (win->lo > index_hi)
      return {};
    cursor c{t, t.dbs().streams};
    auto prefix_len = stream.size() + 1;
    struct chunk {
      uint64_t first = 0;
      uint64_t count = 0;
      std::string_view positions;
      uint64_t last() const noexcept {
        return first + count - 1;
      }
      uint64_t at(uint64_t version) const noexcept {
        return get_be(positions.data() + 8 * (version - first), 8);
      }
    };
    // The chunk `e` names, when it is one of this stream's; corrupted when malformed.
    auto chunk_of = [&](const std::optional<cursor::entry>& e) -> expected<std::optional<chunk>> {
      if (!e || e->key.size() != prefix_len + 8
          || e->key.compare(0, stream.size(), stream) != 0 || e->key[stream.size()] != '\0')
        return std::optional<chunk>{};
      if (e->value.empty() || e->value.size() % 8 != 0)
        return error{errc::corrupted, "malformed index entry of stream '" + stream + "'"};
      return std::optional<chunk>{
        chunk{get_be(e->key.data() + prefix_len, 8), e->value.size() / 8, e->value}};
    };
    // Position on the chunk holding `version`, or else the nearest one after (forward)
    // or before (backward) it. seek lands on the first key >= target, and the chunk
    // holding `version` may begin below it: then it is the entry before.
    auto target = stream_key(stream, forward ? win->lo : index_hi);
    auto e = c.seek(target);
    if (!e)
      return e.err();
    if (!*e || (*e)->key != target) {
      auto p = *e ? c.prev() : c.last();
      if (!p)
        return p.err();
      auto pc = chunk_of(*p);
      if (!pc)
        return pc.err();
      if (!forward || (*pc && (*pc)->last() >= win->lo))
        e = std::move(p);
      else
        e = c.seek(target); // back where seek landed (prev may not have moved)
    }
    for (;;) {
      if (!e)
        return e.err();
      auto ch = chunk_of(*e);
      if (!ch)
        return ch.err();
      if (!*ch)
        return {};
      auto& k = **ch;
      auto lo = std::max(k.first, win->lo);
      auto hi = std::min(k.last(), index_hi);
      if (forward ? k.first > index_hi : k.last() < win->lo)
        return {};
      for (auto i = uint64_t{0}; lo + i <= hi; ++i) {
        if (auto err = visit(k.at(forward ? lo + i : hi - i)))
          return err;
        if (stop)
          return {};
      }
      e = forward ? c.next() : c.prev();
    }
  };
  if (opts.dir == direction::forward) {
    if (auto err = walk_index(true))
      return err;
    for (size_t i = 0; i < tail_positions.size() && !stop; ++i)
      if (auto err = visit(tail_positions[i]))
        return err;
  } else {
    for (size_t i = tail_positions.size(); i > 0 && !stop; --i)
      if (auto err = visit(tail_positions[i - 1]))
        return err;
    if (!stop)
      if (auto err = walk_index(false))
        return err;
  }
  return {};
}

status lmdb_journal::read_all(uint64_t from_position, uint64_t max_count,
                              const event_visitor& f) {
  if (max_count == 0)
    return {};
  auto t = env_->begin_read();
  if (!t)
    return t.err();
  cursor c{*t, t->dbs().events};
  auto e = c.seek(be64(std::max<uint64_t>(from_position, 1)));
  recorded_event ev;
  uint64_t count = 0;
  for (;;) {
    if (!e)
      return e.err();
    if (!*e)
      return {};
    if ((*e)->key.size() != 8)
      return {errc::corrupted, "malformed key in the events DB"};
    auto pos = get_be((*e)->key.data(), 8);
    if (auto err = envelope::decode_into(pos, (*e)->value, ev))
      return err;
    if (!f(ev) || ++count >= max_count)
      return {};
    e = c.next();
  }
}

expected<stream_head> lmdb_journal::head(const std::string& stream) {
  if (auto err = detail::validate_stream_id(stream, env_->options()))
    return err;
  auto snap = begin_consistent_read(*env_, *tail_);
  if (!snap)
    return snap.err();
  std::lock_guard<std::mutex> guard{tail_->mtx};
  return effective_head(*tail_, snap->t, stream, snap->end);
}

expected<std::vector<stream_head>> lmdb_journal::streams() {
  auto snap = begin_consistent_read(*env_, *tail_);
  if (!snap)
    return snap.err();
  auto& t = snap->t;
  std::vector<stream_head> result;
  cursor c{t, t.dbs().heads};
  for (auto e = c.first();; e = c.next()) {
    if (!e)
      return e.err();
    if (!*e)
      break;
    stream_head h;
    if (auto err = decode_head((*e)->key, (*e)->value, h))
      return err;
    result.push_back(std::move(h));
  }
  // Streams written since the last index pass may have no heads record yet, and the
  // others may have newer versions in the tail.
  std::lock_guard<std::mutex> guard{tail_->mtx};
  for (auto& h : result)
    if (auto eh = effective_head(*tail_, t, h.stream, snap->end); eh)
      h.version = eh->version;
  auto known = result.size();
  for (auto& [stream, st] : tail_->streams) {
    if (st.positions.empty() || st.positions.front() > snap->end)
      continue;
    auto i = std::lower_bound(result.begin(), result.begin() + static_cast<ptrdiff_t>(known),
                              stream, [](const stream_head& h, const std::string& s2) {
                                return h.stream < s2;
                              });
    if (i != result.begin() + static_cast<ptrdiff_t>(known) && i->stream == stream)
      continue;
    auto eh = effective_head(*tail_, t, stream, snap->end);
    if (!eh)
      return eh.err();
    result.push_back(std::move(*eh));
  }
  std::sort(result.begin(), result.end(),
            [](const stream_head& x, const stream_head& y) { return x.stream < y.stream; });
  return result;
}

expected<std::optional<append_result>> lmdb_journal::find_command(const std::string& stream,
                                                                  const std::string& command_id) {
  if (auto err = detail::validate_stream_id(stream, env_->options()))
    return err;
  if (command_id.empty())
    return std::optional<append_result>{};
  auto snap = begin_consistent_read(*env_, *tail_);
  if (!snap)
    return snap.err();
  auto key = dedup_key(stream, command_id);
  {
    std::lock_guard<std::mutex> guard{tail_->mtx};
    if (auto i = tail_->dedup.find(key);
        i != tail_->dedup.end() && i->second.last_position <= snap->end)
      return std::optional<append_result>{i->second};
  }
  auto v = snap->t.get(snap->t.dbs().dedup, key);
  if (!v)
    return v.err();
  if (!*v)
    return std::optional<append_result>{};
  auto r = decode_dedup(**v);
  if (!r)
    return r.err();
  return std::optional<append_result>{*r};
}

expected<uint64_t> lmdb_journal::last_position() {
  auto t = env_->begin_read();
  if (!t)
    return t.err();
  return log_end(*t);
}

// -- deletes ------------------------------------------------------------------------

namespace {

// Loads the head of `stream`, lets `change` compute the new one, and stores it.
status update_head(environment& env, index_tail& tail, const std::string& stream,
                   const std::function<expected<stream_head>(const stream_head&)>& change) {
  if (auto err = detail::validate_stream_id(stream, env.options()))
    return err;
  return env.write([&](txn& t) -> status {
    expected<stream_head> h = error{};
    {
      std::lock_guard<std::mutex> guard{tail.mtx};
      auto r = catch_up(tail, t);
      if (!r)
        return r.err();
      h = effective_head(tail, t, stream, tail.last_position);
    }
    if (!h)
      return h.err();
    auto next = change(*h);
    if (!next)
      return next.err();
    return write_head(t, *next);
  });
}

} // namespace

status lmdb_journal::delete_to(const std::string& stream, uint64_t n) {
  return truncate_before(stream, n == UINT64_MAX ? n : n + 1);
}

status lmdb_journal::truncate_before(const std::string& stream, uint64_t n) {
  return update_head(*env_, *tail_, stream,
                     [n](const stream_head& h) { return detail::truncated(h, n); });
}

status lmdb_journal::soft_delete(const std::string& stream) {
  return update_head(*env_, *tail_, stream, [](const stream_head& h) -> expected<stream_head> {
    auto next = detail::truncated(h, h.version + 1);
    if (next)
      next->state = stream_state::soft_deleted;
    return next;
  });
}

status lmdb_journal::tombstone(const std::string& stream) {
  return update_head(*env_, *tail_, stream, [](const stream_head& h) -> expected<stream_head> {
    if (h.state == stream_state::tombstoned)
      return error{errc::stream_deleted, "stream '" + h.stream + "' is tombstoned"};
    auto next = h;
    next.state = stream_state::tombstoned;
    next.truncate_before = h.version + 1;
    return next;
  });
}

// -- verify and stats ---------------------------------------------------------------

expected<verify_report> lmdb_journal::verify() {
  auto t = env_->begin_read();
  if (!t)
    return t.err();
  verify_report rep;
  auto problem = [&](std::string what) {
    // Bounded: a badly damaged file should not produce gigabytes of report.
    if (rep.problems.size() < 1000)
      rep.problems.push_back(std::move(what));
  };
  auto mark = indexed_through(*t);
  if (!mark)
    return mark.err();
  // 1. The log: gap-free positions from 1, checksums, consecutive versions per stream.
  std::unordered_map<std::string, uint64_t> versions;
  std::unordered_map<std::string, uint64_t> versions_at_mark; // as of the index mark
  std::vector<uint64_t> unreadable; // positions whose records failed; later checks skip them
  {
    cursor c{*t, t->dbs().events};
    uint64_t expected_pos = 1;
    envelope::header h;
    for (auto e = c.first();; e = c.next()) {
      if (!e)
        return e.err();
      if (!*e)
        break;
      if ((*e)->key.size() != 8) {
        problem("malformed key in the events DB");
        continue;
      }
      auto pos = get_be((*e)->key.data(), 8);
      if (pos != expected_pos)
        problem("position " + std::to_string(expected_pos) + ": missing (next is "
                + std::to_string(pos) + ")");
      expected_pos = pos + 1;
      rep.last_position = pos;
      ++rep.events;
      if (auto err = envelope::decode_header(pos, (*e)->value, h)) {
        problem("position " + std::to_string(pos) + ": " + err.message);
        unreadable.push_back(pos);
        continue;
      }
      // Full decode too: the checksum passed, but the rest must parse.
      if (auto d = envelope::decode(pos, (*e)->value); !d) {
        problem("position " + std::to_string(pos) + ": " + d.err().message);
        unreadable.push_back(pos);
        continue;
      }
      auto& v = versions[std::string{h.stream}];
      if (h.version != v + 1)
        problem("position " + std::to_string(pos) + ": stream '" + std::string{h.stream}
                + "' version " + std::to_string(h.version) + " follows "
                + std::to_string(v));
      v = h.version;
      if (pos <= *mark)
        versions_at_mark[std::string{h.stream}] = h.version;
    }
  }
  rep.streams = versions.size();
  // 2. The index: every entry names an event of that stream and version, and every
  // event up to the index mark has its entry.
  {
    cursor c{*t, t->dbs().streams};
    for (auto e = c.first();; e = c.next()) {
      if (!e)
        return e.err();
      if (!*e)
        break;
      auto key = (*e)->key;
      auto value = (*e)->value;
      if (key.size() < 10 || key[key.size() - 9] != '\0' || value.empty()
          || value.size() % 8 != 0) {
        problem("malformed index entry");
        continue;
      }
      auto stream = key.substr(0, key.size() - 9);
      auto first = get_be(key.data() + key.size() - 8, 8);
      for (size_t k = 0; k < value.size() / 8; ++k) {
        ++rep.indexed_entries;
        auto version = first + k;
        auto pos = get_be(value.data() + 8 * k, 8);
        // Already reported above; comparing against it would only repeat the problem.
        if (std::binary_search(unreadable.begin(), unreadable.end(), pos))
          continue;
        auto v = t->get(t->dbs().events, be64(pos));
        envelope::header h;
        if (!v || !*v || envelope::decode_header(pos, **v, h) || h.stream != stream
            || h.version != version)
          problem("index entry '" + std::string{stream} + "' version " + std::to_string(version)
                  + " does not match the event at position " + std::to_string(pos));
        if (pos > *mark)
          problem("index entry at position " + std::to_string(pos)
                  + " lies beyond the index mark " + std::to_string(*mark));
      }
    }
    if (rep.indexed_entries != std::min(*mark, rep.last_position))
      problem("the index holds " + std::to_string(rep.indexed_entries)
              + " entries but the log has " + std::to_string(std::min(*mark, rep.last_position))
              + " events up to the index mark");
  }
  // 3. Heads agree with the streams (unless unreadable records hide what they hold).
  if (unreadable.empty()) {
    cursor c{*t, t->dbs().heads};
    uint64_t heads = 0;
    for (auto e = c.first();; e = c.next()) {
      if (!e)
        return e.err();
      if (!*e)
        break;
      ++heads;
      stream_head h;
      if (auto err = decode_head((*e)->key, (*e)->value, h)) {
        problem(err.message);
        continue;
      }
      // A heads record is exact as of the index mark or of its last state change,
      // whichever is later; newer versions are only in the log.
      auto i = versions.find(h.stream);
      auto logged = i == versions.end() ? 0 : i->second;
      auto j = versions_at_mark.find(h.stream);
      auto at_mark = j == versions_at_mark.end() ? 0 : j->second;
      if (h.version > logged || h.version < at_mark)
        problem("head of stream '" + h.stream + "' says version " + std::to_string(h.version)
                + " but the log has " + std::to_string(logged) + " (" + std::to_string(at_mark)
                + " up to the index mark)");
    }
    for (auto& [stream, v] : versions_at_mark) {
      auto h = t->get(t->dbs().heads, stream);
      if (!h || !*h)
        problem("stream '" + stream + "' has indexed events but no head");
    }
  }
  {
    MDB_stat st;
    mdb_stat(t->native(), t->dbs().snapshots, &st);
    rep.snapshots = st.ms_entries;
  }
  return rep;
}

expected<journal_stats> lmdb_journal::stats() {
  auto t = env_->begin_read();
  if (!t)
    return t.err();
  journal_stats s;
  auto entries = [&](MDB_dbi db) {
    MDB_stat st;
    mdb_stat(t->native(), db, &st);
    return static_cast<uint64_t>(st.ms_entries);
  };
  s.events = entries(t->dbs().events);
  s.streams = entries(t->dbs().heads);
  s.snapshots = entries(t->dbs().snapshots);
  s.checkpoints = entries(t->dbs().checkpoints);
  auto end = log_end(*t);
  if (!end)
    return end.err();
  s.last_position = *end;
  auto mark = indexed_through(*t);
  if (!mark)
    return mark.err();
  s.indexed_through = *mark;
  MDB_envinfo info;
  mdb_env_info(env_->native(), &info);
  MDB_stat env_stat;
  mdb_env_stat(env_->native(), &env_stat);
  s.map_size = info.me_mapsize;
  s.page_size = env_stat.ms_psize;
  s.map_used = (info.me_last_pgno + 1) * static_cast<uint64_t>(env_stat.ms_psize);
  s.format_version = environment::format_version;
  if (auto v = t->get(t->dbs().meta, "format_version"); v && *v && (*v)->size() == 4)
    s.format_version = static_cast<uint32_t>(get_be((*v)->data(), 4));
  if (auto v = t->get(t->dbs().meta, "node_id"); v && *v && (*v)->size() == 16) {
    uuid id;
    std::copy((*v)->begin(), (*v)->end(), id.bytes.begin());
    s.node_id = id.to_string();
  }
  if (auto v = t->get(t->dbs().meta, "created_at"); v && *v && (*v)->size() == 8)
    s.created_at_ns = static_cast<int64_t>(get_be((*v)->data(), 8));
  return s;
}

} // namespace evident
