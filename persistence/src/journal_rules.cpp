#include "evident/persistence/detail/journal_rules.hpp"

#include <algorithm>

namespace evident::detail {

namespace {

status check_id(const std::string& id, const char* what, const journal_options& opts) {
  if (id.size() > opts.max_id_bytes)
    return {errc::too_large, std::string{what} + " is longer than "
                               + std::to_string(opts.max_id_bytes) + " bytes"};
  return {};
}

} // namespace

status validate_stream_id(const std::string& stream, const journal_options& opts) {
  if (stream.empty())
    return {errc::invalid_input, "stream id is empty"};
  if (stream.size() > opts.max_stream_id_bytes)
    return {errc::too_large, "stream id is longer than "
                               + std::to_string(opts.max_stream_id_bytes) + " bytes"};
  // The index keys are stream + 0x00 + version, so a NUL would make keys ambiguous;
  // other control bytes are refused because ids end up in logs and JSON.
  auto bad = std::find_if(stream.begin(), stream.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
  if (bad != stream.end())
    return {errc::invalid_input, "stream id contains a control character"};
  return {};
}

status validate(const append_request& req, const journal_options& opts) {
  if (auto err = validate_stream_id(req.stream, opts))
    return err;
  if (req.command_id.find('\0') != std::string::npos)
    return {errc::invalid_input, "command id contains a NUL byte"};
  if (auto err = check_id(req.command_id, "command id", opts))
    return err;
  if (req.events.size() > opts.max_append_events)
    return {errc::too_large, "append of " + std::to_string(req.events.size())
                               + " events exceeds the limit of "
                               + std::to_string(opts.max_append_events)};
  size_t total = 0;
  for (size_t i = 0; i < req.events.size(); ++i) {
    const auto& e = req.events[i];
    if (e.type.empty())
      return {errc::invalid_input, "event " + std::to_string(i) + " has no type"};
    if (e.type.size() > opts.max_id_bytes)
      return {errc::too_large, "event " + std::to_string(i) + ": type name is longer than "
                                 + std::to_string(opts.max_id_bytes) + " bytes"};
    if (auto err = check_id(e.correlation_id, "correlation id", opts))
      return err;
    if (auto err = check_id(e.causation_id, "causation id", opts))
      return err;
    auto size = envelope::encoded_size_bound(req.stream, req.command_id, e);
    if (size > opts.max_event_bytes)
      return {errc::too_large, "event " + std::to_string(i) + " encodes to "
                                 + std::to_string(size) + " bytes, over the limit of "
                                 + std::to_string(opts.max_event_bytes)};
    total += size;
  }
  if (total > opts.max_append_bytes)
    return {errc::too_large, "append of " + std::to_string(total)
                               + " bytes exceeds the limit of "
                               + std::to_string(opts.max_append_bytes)};
  return {};
}

status check_expected(const append_request& req, const stream_head& h) {
  if (h.state == stream_state::tombstoned)
    return {errc::stream_deleted, "stream '" + req.stream + "' is tombstoned"};
  // A soft-deleted stream reads as absent, but keeps its numbering: an append continues
  // after its last version (EventStoreDB's soft delete).
  bool exists = h.version > 0 && h.state == stream_state::live;
  bool ok = false;
  switch (req.expected.k) {
    case expected_version::kind::any:
      ok = true;
      break;
    case expected_version::kind::no_stream:
      ok = !exists;
      break;
    case expected_version::kind::stream_exists:
      ok = exists;
      break;
    case expected_version::kind::exact:
      ok = req.expected.version == h.version;
      break;
  }
  if (ok)
    return {};
  error err{errc::wrong_expected_version,
            "stream '" + req.stream + "': expected version " + to_string(req.expected)
              + ", actual " + std::to_string(h.version)};
  err.expected = to_string(req.expected);
  err.actual = h.version;
  return err;
}

status check_readable(const stream_head& h) {
  if (h.state == stream_state::tombstoned)
    return {errc::stream_deleted, "stream '" + h.stream + "' is tombstoned"};
  if (h.version == 0 || h.state == stream_state::soft_deleted)
    return {errc::stream_not_found, "stream '" + h.stream + "' not found"};
  return {};
}

expected<stream_head> truncated(const stream_head& h, uint64_t n) {
  if (auto err = check_readable(h))
    return err;
  auto result = h;
  // Deleting beyond the end deletes everything so far, never events still to come.
  result.truncate_before = std::max(h.truncate_before, std::min(n, h.version + 1));
  return result;
}

std::optional<window> read_window(const stream_head& h, const read_options& opts) {
  uint64_t first = std::max<uint64_t>(h.truncate_before, 1);
  uint64_t last = h.version;
  if (first > last)
    return std::nullopt;
  uint64_t lo = 0;
  uint64_t hi = 0;
  if (opts.dir == direction::forward) {
    lo = opts.from.value_or(first);
    hi = opts.to.value_or(last);
  } else {
    hi = opts.from.value_or(last);
    lo = opts.to.value_or(first);
  }
  lo = std::max(lo, first);
  hi = std::min(hi, last);
  if (lo > hi || opts.max_count == 0)
    return std::nullopt;
  return window{lo, hi};
}

} // namespace evident::detail
