#include "evident/persistence/memory_journal.hpp"

#include "evident/persistence/detail/journal_rules.hpp"

#include <algorithm>
#include <chrono>
#include <limits>

// The memory journal keeps the same model as the LMDB one, minus the disk:
//
//   log_      the global log; position p lives at log_[p - 1], nothing is ever erased
//             (deletes only move a head's truncate_before, as on disk)
//   streams_  per stream: the head (version, state, truncate_before) and the position
//             of every version ever written
//   dedup_    (stream, command id) -> the result of the append that first carried it
//
// Every rule that decides *whether* something may happen lives in journal_rules.cpp;
// this file only applies the outcome, so the two journals cannot drift apart.

namespace evident {

namespace {

int64_t now_ns() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

memory_journal::memory_journal(journal_options opts) : opts_(std::move(opts)) {
  // nop
}

// -- helpers ------------------------------------------------------------------------

stream_head memory_journal::head_of(const std::string& stream) const {
  if (auto i = streams_.find(stream); i != streams_.end())
    return i->second.head;
  stream_head result;
  result.stream = stream;
  return result;
}

void memory_journal::set_head(const stream_head& h) {
  streams_[h.stream].head = h;
}

status memory_journal::visit(const std::vector<const recorded_event*>& events,
                             const event_visitor& f) {
  for (auto* e : events)
    if (!f(*e))
      break;
  return {};
}

expected<append_result> memory_journal::append_locked(const append_request& req) {
  if (auto err = detail::validate(req, opts_))
    return err;
  // The command-id record answers before the expected-version check: a retry whose
  // first attempt succeeded would otherwise fail with a conflict against its own write.
  if (!req.command_id.empty()) {
    if (auto i = dedup_.find({req.stream, req.command_id}); i != dedup_.end()) {
      auto result = i->second;
      result.duplicate = true;
      return result;
    }
  }
  auto h = head_of(req.stream);
  if (auto err = detail::check_expected(req, h))
    return err;
  // A zero-event append only checks: no head, no command-id record (there is no
  // outcome worth replaying), positions 0.
  if (req.events.empty()) {
    append_result result;
    result.first_version = h.version;
    result.last_version = h.version;
    return result;
  }
  auto& entry = streams_[req.stream];
  entry.head.stream = req.stream;
  // Appending to a soft-deleted stream revives it; truncate_before stays where the
  // soft delete put it, so the old events remain hidden.
  entry.head.state = stream_state::live;
  append_result result;
  result.first_version = entry.head.version + 1;
  result.first_position = log_.size() + 1;
  auto time = now_ns(); // one timestamp per append: its events happen together
  for (auto& ev : req.events) {
    recorded_event rec;
    rec.position = log_.size() + 1;
    rec.stream = req.stream;
    rec.version = ++entry.head.version;
    rec.type = ev.type;
    rec.schema = ev.schema;
    rec.time_ns = ev.time_ns != 0 ? ev.time_ns : time;
    rec.event_id = ev.event_id.is_nil() ? uuid::random() : ev.event_id;
    rec.correlation_id = ev.correlation_id;
    rec.causation_id = ev.causation_id;
    rec.command_id = req.command_id;
    rec.meta = ev.meta;
    rec.payload = ev.payload;
    entry.positions.push_back(rec.position);
    log_.push_back(std::move(rec));
  }
  result.last_version = entry.head.version;
  result.last_position = log_.size();
  if (!req.command_id.empty())
    dedup_.emplace(std::pair{req.stream, req.command_id}, result);
  return result;
}

// -- writes -------------------------------------------------------------------------

expected<append_result> memory_journal::append(const append_request& req) {
  std::lock_guard guard{mtx_};
  return append_locked(req);
}

bool memory_journal::defers_durability() const noexcept {
  return false;
}

std::vector<expected<append_result>>
memory_journal::append_batch(std::span<const append_request> reqs) {
  // One lock for the whole batch mirrors the LMDB journal's single write transaction:
  // no other writer gets between two requests of a batch.
  std::vector<expected<append_result>> result;
  result.reserve(reqs.size());
  std::lock_guard guard{mtx_};
  for (auto& req : reqs)
    result.push_back(append_locked(req));
  return result;
}

status memory_journal::delete_to(const std::string& stream, uint64_t n) {
  // delete_to(n) == truncate_before(n + 1); saturate so "everything" stays everything.
  auto before = n == std::numeric_limits<uint64_t>::max() ? n : n + 1;
  return truncate_before(stream, before);
}

status memory_journal::truncate_before(const std::string& stream, uint64_t n) {
  if (auto err = detail::validate_stream_id(stream, opts_))
    return err;
  std::lock_guard guard{mtx_};
  auto h = detail::truncated(head_of(stream), n);
  if (!h)
    return std::move(h).err();
  set_head(*h);
  return {};
}

status memory_journal::soft_delete(const std::string& stream) {
  if (auto err = detail::validate_stream_id(stream, opts_))
    return err;
  std::lock_guard guard{mtx_};
  auto h = head_of(stream);
  if (auto err = detail::check_readable(h))
    return err;
  h.state = stream_state::soft_deleted;
  h.truncate_before = h.version + 1;
  set_head(h);
  return {};
}

status memory_journal::tombstone(const std::string& stream) {
  if (auto err = detail::validate_stream_id(stream, opts_))
    return err;
  std::lock_guard guard{mtx_};
  auto h = head_of(stream);
  if (h.state == stream_state::tombstoned)
    return {errc::stream_deleted, "stream '" + stream + "' is already tombstoned"};
  // A never-written stream gets a head too (version 0): the tombstone must outlive the
  // call, or the next append would create the stream after all. Like a soft delete, it
  // deletes every event so far (the LMDB journal stores the same head).
  h.state = stream_state::tombstoned;
  h.truncate_before = h.version + 1;
  set_head(h);
  return {};
}

// -- reads --------------------------------------------------------------------------

status memory_journal::read_stream(const std::string& stream, const read_options& opts,
                                   const event_visitor& f) {
  if (auto err = detail::validate_stream_id(stream, opts_))
    return err;
  std::vector<const recorded_event*> selected;
  {
    std::lock_guard guard{mtx_};
    auto i = streams_.find(stream);
    if (i == streams_.end())
      return detail::check_readable(head_of(stream)); // never written: not found
    const auto& [h, positions] = i->second;
    if (auto err = detail::check_readable(h))
      return err;
    auto w = detail::read_window(h, opts);
    if (!w)
      return {};
    // read_window keeps hi <= h.version, so every visited version has a position.
    auto count = std::min<uint64_t>(opts.max_count, w->hi - w->lo + 1);
    selected.reserve(count);
    for (uint64_t k = 0; k < count; ++k) {
      auto v = opts.dir == direction::forward ? w->lo + k : w->hi - k;
      selected.push_back(&log_[positions[v - 1] - 1]);
    }
  }
  return visit(selected, f);
}

status memory_journal::read_all(uint64_t from_position, uint64_t max_count,
                                const event_visitor& f) {
  std::vector<const recorded_event*> selected;
  {
    std::lock_guard guard{mtx_};
    auto first = std::max<uint64_t>(from_position, 1);
    for (auto p = first; p <= log_.size() && selected.size() < max_count; ++p)
      selected.push_back(&log_[p - 1]);
  }
  return visit(selected, f);
}

expected<stream_head> memory_journal::head(const std::string& stream) {
  if (auto err = detail::validate_stream_id(stream, opts_))
    return err;
  std::lock_guard guard{mtx_};
  return head_of(stream);
}

expected<std::vector<stream_head>> memory_journal::streams() {
  // std::string compares through char_traits<char>, which orders bytes as unsigned
  // char: the map's order is the byte order LMDB uses for its keys.
  std::lock_guard guard{mtx_};
  std::vector<stream_head> result;
  result.reserve(streams_.size());
  for (auto& [id, entry] : streams_)
    result.push_back(entry.head);
  return result;
}

expected<uint64_t> memory_journal::last_position() {
  std::lock_guard guard{mtx_};
  return static_cast<uint64_t>(log_.size());
}

expected<std::optional<append_result>> memory_journal::find_command(const std::string& stream,
                                                                    const std::string& command_id) {
  if (auto err = detail::validate_stream_id(stream, opts_))
    return err;
  std::lock_guard guard{mtx_};
  if (auto i = dedup_.find({stream, command_id}); i != dedup_.end())
    return std::optional<append_result>{i->second};
  return std::optional<append_result>{};
}

} // namespace evident
