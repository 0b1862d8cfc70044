#include "evident/persistence/snapshot_store.hpp"

#include "evident/persistence/detail/journal_rules.hpp"
#include "evident/persistence/environment.hpp"
#include "evident/persistence/envelope.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace evident {

snapshot_store::~snapshot_store() {
  // nop
}

namespace {

// -- rules shared by both stores ------------------------------------------------

// Both stores run the same checks in the same order, so that they refuse the same
// snapshots with the same codes.
status check_snapshot(const snapshot& s, const journal_options& opts) {
  if (auto err = detail::validate_stream_id(s.stream, opts))
    return err;
  if (s.type.empty())
    return {errc::invalid_input, "snapshot of '" + s.stream + "' has no type"};
  if (s.type.size() > opts.max_id_bytes)
    return {errc::too_large, "snapshot type name is longer than "
                               + std::to_string(opts.max_id_bytes) + " bytes"};
  // msgpack's bin length is 32 bits, whatever the configured limit says.
  if (s.state.size() > opts.max_snapshot_bytes || s.state.size() > UINT32_MAX)
    return {errc::too_large, "snapshot of '" + s.stream + "' at version "
                               + std::to_string(s.version) + " has "
                               + std::to_string(s.state.size())
                               + " bytes of state, over the limit of "
                               + std::to_string(opts.max_snapshot_bytes)};
  return {};
}

int64_t now_ns() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
}

int64_t stamped(int64_t time_ns) {
  return time_ns != 0 ? time_ns : now_ns();
}

// -- key and record layout ------------------------------------------------------

constexpr uint32_t record_format = 1;
constexpr size_t version_bytes = 8;
constexpr size_t trailer_size = 5;
constexpr unsigned char trailer_tag = 0xce; // msgpack's uint32 marker

void put_be64(std::string& out, uint64_t x) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((x >> shift) & 0xff));
}

uint64_t get_be64(std::string_view in) {
  uint64_t x = 0;
  for (size_t i = 0; i < version_bytes; ++i)
    x = (x << 8) | static_cast<unsigned char>(in[i]);
  return x;
}

// stream + 0x00: every key of one stream starts with this and no key of another
// stream does, since stream ids contain no NUL.
std::string key_prefix(const std::string& stream) {
  std::string k;
  k.reserve(stream.size() + 1 + version_bytes);
  k += stream;
  k.push_back('\0');
  return k;
}

std::string make_key(const std::string& stream, uint64_t version) {
  auto k = key_prefix(stream);
  put_be64(k, version);
  return k;
}

// The version of `key` when it belongs to the stream of `prefix`.
std::optional<uint64_t> version_of(std::string_view key, std::string_view prefix) {
  if (key.size() != prefix.size() + version_bytes || !key.starts_with(prefix))
    return std::nullopt;
  return get_be64(key.substr(prefix.size()));
}

struct string_sink {
  std::string& out;
  void write(const char* p, size_t n) {
    out.append(p, n);
  }
};

std::string encode_record(std::string_view key, const snapshot& s, int64_t time_ns) {
  std::string out;
  // 32 bytes cover the array, format, schema, time and bin headers.
  out.reserve(s.type.size() + s.state.size() + 32 + trailer_size);
  string_sink sink{out};
  msgpack::packer<string_sink> pk{sink};
  pk.pack_array(5);
  pk.pack(record_format);
  pk.pack(s.type);
  pk.pack(s.schema);
  pk.pack(time_ns);
  pk.pack_bin(static_cast<uint32_t>(s.state.size()));
  pk.pack_bin_body(s.state.data(), static_cast<uint32_t>(s.state.size()));
  auto crc = crc32c(out, crc32c(key));
  out.push_back(static_cast<char>(trailer_tag));
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((crc >> shift) & 0xff));
  return out;
}

// Lets msgpack point str and bin objects into the record instead of copying them into
// its zone: a 12 MB state is then copied once, into the snapshot handed back.
bool reference_all(msgpack::type::object_type, size_t, void*) {
  return true;
}

struct decoded_record {
  std::string_view type;
  uint32_t schema = 0;
  int64_t time_ns = 0;
  std::string_view state;
  msgpack::object_handle handle; // keeps the parsed objects alive
};

error corrupt(const std::string& stream, uint64_t version, const std::string& why) {
  return {errc::corrupted,
          "snapshot of '" + stream + "' at version " + std::to_string(version) + ": " + why};
}

// Verifies the trailer and decodes a stored record. The views point into `stored`.
expected<decoded_record> decode_record(std::string_view key, std::string_view stored,
                                       const std::string& stream, uint64_t version) {
  if (stored.size() < trailer_size + 1)
    return corrupt(stream, version, "record is truncated");
  auto body = stored.substr(0, stored.size() - trailer_size);
  auto trailer = stored.substr(body.size());
  if (static_cast<unsigned char>(trailer[0]) != trailer_tag)
    return corrupt(stream, version, "record has no checksum trailer");
  uint32_t stored_crc = 0;
  for (size_t i = 1; i < trailer_size; ++i)
    stored_crc = (stored_crc << 8) | static_cast<unsigned char>(trailer[i]);
  if (crc32c(body, crc32c(key)) != stored_crc)
    return corrupt(stream, version, "checksum mismatch");
  decoded_record out;
  try {
    size_t offset = 0;
    out.handle = msgpack::unpack(body.data(), body.size(), offset, reference_all);
    if (offset != body.size())
      return corrupt(stream, version, "trailing bytes after the record");
    const auto& obj = out.handle.get();
    if (obj.type != msgpack::type::ARRAY || obj.via.array.size < 1)
      return corrupt(stream, version, "record is not an array");
    const auto* fields = obj.via.array.ptr;
    auto format = fields[0].as<uint32_t>();
    if (format > record_format)
      return error{errc::unsupported_format,
                   "snapshot of '" + stream + "' at version " + std::to_string(version)
                     + " has record format " + std::to_string(format)
                     + ", newer than this build reads"};
    if (format != record_format || obj.via.array.size != 5)
      return corrupt(stream, version, "record is not our layout");
    if (fields[1].type != msgpack::type::STR || fields[4].type != msgpack::type::BIN)
      return corrupt(stream, version, "record is not our layout");
    out.type = {fields[1].via.str.ptr, fields[1].via.str.size};
    out.schema = fields[2].as<uint32_t>();
    out.time_ns = fields[3].as<int64_t>();
    out.state = {fields[4].via.bin.ptr, fields[4].via.bin.size};
  } catch (const std::exception& ex) {
    // A matching checksum over bytes we cannot parse means a writer bug rather than
    // bit rot, but the caller's reaction is the same.
    return corrupt(stream, version, std::string{"record does not decode: "} + ex.what());
  }
  return out;
}

snapshot to_snapshot(const std::string& stream, uint64_t version, const decoded_record& r,
                     bool with_state) {
  snapshot s;
  s.stream = stream;
  s.version = version;
  s.type = std::string{r.type};
  s.schema = r.schema;
  s.time_ns = r.time_ns;
  s.state_size = r.state.size();
  if (with_state)
    s.state = std::string{r.state};
  return s;
}

} // namespace

// -- lmdb_snapshot_store --------------------------------------------------------

lmdb_snapshot_store::lmdb_snapshot_store(std::shared_ptr<environment> env)
  : env_(std::move(env)),
    max_key_bytes_(static_cast<size_t>(mdb_env_get_maxkeysize(env_->native()))) {
  // nop
}

status lmdb_snapshot_store::check_stream(const std::string& stream) const {
  if (auto err = detail::validate_stream_id(stream, env_->options()))
    return err;
  // LMDB refuses keys over its compile-time limit (511 bytes by default) with
  // MDB_BAD_VALSIZE; the id limit alone may allow longer keys than that.
  if (stream.size() + 1 + version_bytes > max_key_bytes_)
    return {errc::too_large, "stream id is too long for a snapshot key (at most "
                               + std::to_string(max_key_bytes_ - 1 - version_bytes)
                               + " bytes)"};
  return {};
}

status lmdb_snapshot_store::save(const snapshot& s) {
  if (auto err = check_snapshot(s, env_->options()))
    return err;
  if (auto err = check_stream(s.stream))
    return err;
  auto key = make_key(s.stream, s.version);
  // Encoded outside the transaction: write() may run the function more than once
  // (map growth), and the encoding is the expensive part for large states.
  auto value = encode_record(key, s, stamped(s.time_ns));
  auto db = env_->dbs().snapshots;
  return env_->write([&](txn& t) { return t.put(db, key, value); });
}

expected<std::optional<snapshot>> lmdb_snapshot_store::load(const std::string& stream,
                                                            const snapshot_criteria& c) {
  if (auto err = check_stream(stream))
    return err;
  if (c.min_version > c.max_version || c.min_time_ns > c.max_time_ns)
    return std::optional<snapshot>{};
  auto t = env_->begin_read();
  if (!t)
    return std::move(t).err();
  cursor cur{*t, t->dbs().snapshots};
  auto prefix = key_prefix(stream);
  auto top = make_key(stream, c.max_version);
  // Walk back from the newest key <= top: seek lands on the first key >= top, which is
  // top itself or the key after it (possibly of another stream, or the end).
  auto e = cur.seek(top);
  if (!e)
    return std::move(e).err();
  if (!*e)
    e = cur.last();
  else if ((*e)->key != top)
    e = cur.prev();
  for (;;) {
    if (!e)
      return std::move(e).err();
    if (!*e)
      return std::optional<snapshot>{};
    auto version = version_of((*e)->key, prefix);
    if (!version || *version < c.min_version)
      return std::optional<snapshot>{};
    auto rec = decode_record((*e)->key, (*e)->value, stream, *version);
    if (!rec)
      return std::move(rec).err();
    if (c.matches(*version, rec->time_ns))
      return std::optional<snapshot>{to_snapshot(stream, *version, *rec, true)};
    e = cur.prev();
  }
}

status lmdb_snapshot_store::remove(const std::string& stream, uint64_t version) {
  if (auto err = check_stream(stream))
    return err;
  auto key = make_key(stream, version);
  auto db = env_->dbs().snapshots;
  return env_->write([&](txn& t) { return t.del(db, key); });
}

status lmdb_snapshot_store::remove(const std::string& stream, const snapshot_criteria& c) {
  if (auto err = check_stream(stream))
    return err;
  if (c.min_version > c.max_version || c.min_time_ns > c.max_time_ns)
    return {};
  auto db = env_->dbs().snapshots;
  auto prefix = key_prefix(stream);
  return env_->write([&](txn& t) -> status {
    // Collect first, delete after: deleting under a cursor while walking it depends
    // on LMDB's cursor-after-delete rules, which this avoids.
    std::vector<std::string> doomed;
    {
      cursor cur{t, db};
      auto e = cur.seek(make_key(stream, c.min_version));
      for (;; e = cur.next()) {
        if (!e)
          return std::move(e).err();
        if (!*e)
          break;
        auto version = version_of((*e)->key, prefix);
        if (!version || *version > c.max_version)
          break;
        if (!c.any_time()) {
          auto rec = decode_record((*e)->key, (*e)->value, stream, *version);
          if (!rec)
            return std::move(rec).err();
          if (!c.matches(*version, rec->time_ns))
            continue;
        }
        doomed.emplace_back((*e)->key);
      }
    }
    for (const auto& key : doomed)
      if (auto err = t.del(db, key))
        return err;
    return {};
  });
}

status lmdb_snapshot_store::keep_last(const std::string& stream, size_t n) {
  if (auto err = check_stream(stream))
    return err;
  auto db = env_->dbs().snapshots;
  auto prefix = key_prefix(stream);
  return env_->write([&](txn& t) -> status {
    std::vector<std::string> keys;
    {
      cursor cur{t, db};
      for (auto e = cur.seek(prefix);; e = cur.next()) {
        if (!e)
          return std::move(e).err();
        if (!*e || !version_of((*e)->key, prefix))
          break;
        keys.emplace_back((*e)->key);
      }
    }
    if (keys.size() <= n)
      return {};
    keys.resize(keys.size() - n); // ascending order: the oldest come first
    for (const auto& key : keys)
      if (auto err = t.del(db, key))
        return err;
    return {};
  });
}

expected<std::vector<snapshot>> lmdb_snapshot_store::list(const std::string& stream) {
  if (auto err = check_stream(stream))
    return err;
  auto t = env_->begin_read();
  if (!t)
    return std::move(t).err();
  cursor cur{*t, t->dbs().snapshots};
  auto prefix = key_prefix(stream);
  std::vector<snapshot> out;
  for (auto e = cur.seek(prefix);; e = cur.next()) {
    if (!e)
      return std::move(e).err();
    if (!*e)
      break;
    auto version = version_of((*e)->key, prefix);
    if (!version)
      break;
    auto rec = decode_record((*e)->key, (*e)->value, stream, *version);
    if (!rec)
      return std::move(rec).err();
    out.push_back(to_snapshot(stream, *version, *rec, false));
  }
  return out;
}

expected<std::vector<std::string>> lmdb_snapshot_store::streams() {
  auto t = env_->begin_read();
  if (!t)
    return std::move(t).err();
  cursor cur{*t, t->dbs().snapshots};
  std::vector<std::string> out;
  auto e = cur.first();
  for (;;) {
    if (!e)
      return std::move(e).err();
    if (!*e)
      break;
    auto key = (*e)->key;
    auto nul = key.find('\0');
    if (nul == std::string_view::npos || key.size() != nul + 1 + version_bytes)
      return error{errc::corrupted, "snapshot key is not stream + 0x00 + version"};
    out.emplace_back(key.substr(0, nul));
    // Skip the rest of this stream: stream + 0x01 sorts after every stream + 0x00 + v
    // and before any longer id that starts with this one (their next byte is >= 0x20).
    auto next = out.back();
    next.push_back('\x01');
    e = cur.seek(next);
  }
  return out;
}

expected<uint64_t> lmdb_snapshot_store::count() {
  auto t = env_->begin_read();
  if (!t)
    return std::move(t).err();
  MDB_stat st;
  if (auto rc = mdb_stat(t->native(), t->dbs().snapshots, &st); rc != 0)
    return environment::translate(rc, "counting snapshots");
  return static_cast<uint64_t>(st.ms_entries);
}

// -- memory_snapshot_store ------------------------------------------------------

memory_snapshot_store::memory_snapshot_store(journal_options opts) : opts_(std::move(opts)) {
  // nop
}

status memory_snapshot_store::save(const snapshot& s) {
  if (auto err = check_snapshot(s, opts_))
    return err;
  auto copy = s;
  copy.time_ns = stamped(s.time_ns);
  copy.state_size = s.state.size();
  std::lock_guard guard{mtx_};
  streams_[s.stream].insert_or_assign(s.version, std::move(copy));
  return {};
}

expected<std::optional<snapshot>> memory_snapshot_store::load(const std::string& stream,
                                                              const snapshot_criteria& c) {
  if (auto err = detail::validate_stream_id(stream, opts_))
    return err;
  std::lock_guard guard{mtx_};
  auto i = streams_.find(stream);
  if (i == streams_.end())
    return std::optional<snapshot>{};
  // Newest first, like the LMDB store's walk back.
  for (auto j = i->second.rbegin(); j != i->second.rend(); ++j)
    if (c.matches(j->first, j->second.time_ns))
      return std::optional<snapshot>{j->second};
  return std::optional<snapshot>{};
}

status memory_snapshot_store::remove(const std::string& stream, uint64_t version) {
  if (auto err = detail::validate_stream_id(stream, opts_))
    return err;
  std::lock_guard guard{mtx_};
  if (auto i = streams_.find(stream); i != streams_.end()) {
    i->second.erase(version);
    if (i->second.empty())
      streams_.erase(i);
  }
  return {};
}

status memory_snapshot_store::remove(const std::string& stream, const snapshot_criteria& c) {
  if (auto err = detail::validate_stream_id(stream, opts_))
    return err;
  std::lock_guard guard{mtx_};
  if (auto i = streams_.find(stream); i != streams_.end()) {
    std::erase_if(i->second, [&](const auto& kv) {
      return c.matches(kv.first, kv.second.time_ns);
    });
    if (i->second.empty())
      streams_.erase(i);
  }
  return {};
}

status memory_snapshot_store::keep_last(const std::string& stream, size_t n) {
  if (auto err = detail::validate_stream_id(stream, opts_))
    return err;
  std::lock_guard guard{mtx_};
  if (auto i = streams_.find(stream); i != streams_.end()) {
    auto& versions = i->second;
    while (versions.size() > n)
      versions.erase(versions.begin());
    if (versions.empty())
      streams_.erase(i);
  }
  return {};
}

expected<std::vector<snapshot>> memory_snapshot_store::list(const std::string& stream) {
  if (auto err = detail::validate_stream_id(stream, opts_))
    return err;
  std::lock_guard guard{mtx_};
  std::vector<snapshot> out;
  if (auto i = streams_.find(stream); i != streams_.end()) {
    for (const auto& [version, s] : i->second) {
      auto& x = out.emplace_back();
      x.stream = s.stream;
      x.version = version;
      x.type = s.type;
      x.schema = s.schema;
      x.time_ns = s.time_ns;
      x.state_size = s.state_size;
    }
  }
  return out;
}

expected<std::vector<std::string>> memory_snapshot_store::streams() {
  std::lock_guard guard{mtx_};
  std::vector<std::string> out;
  out.reserve(streams_.size());
  for (const auto& kv : streams_)
    out.push_back(kv.first);
  return out;
}

expected<uint64_t> memory_snapshot_store::count() {
  std::lock_guard guard{mtx_};
  uint64_t n = 0;
  for (const auto& kv : streams_)
    n += kv.second.size();
  return n;
}

} // namespace evident
