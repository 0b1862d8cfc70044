#pragma once

// The rules both journals share (lmdb_journal and memory_journal), so that they cannot
// drift apart: request validation, the expected-version check, and delete rules.
// Internal to persistence/.

#include "evident/persistence/journal.hpp"
#include "evident/persistence/options.hpp"

#include <optional>

namespace evident::detail {

/// Checks ids, counts and sizes of a request against the limits of `opts` (the size
/// of each event is its encoded envelope size). Fails with invalid_input or too_large.
[[nodiscard]] status validate(const append_request& req, const journal_options& opts);

/// Checks a stream id alone (non-empty, within the limit, no NUL or control bytes).
[[nodiscard]] status validate_stream_id(const std::string& stream, const journal_options& opts);

/// Checks `req.expected` against the stream's head (`h.version == 0` and live: the
/// stream was never written). Fails with wrong_expected_version or stream_deleted.
[[nodiscard]] status check_expected(const append_request& req, const stream_head& h);

/// The head after deleting events with version < `n`: never lowers the version and
/// never moves truncate_before backwards. Fails with stream_not_found or stream_deleted.
[[nodiscard]] expected<stream_head> truncated(const stream_head& h, uint64_t n);

/// The versions [lo, hi] a read visits (lo <= hi; the direction decides the order),
/// after deleted events are cut off; nullopt when it is empty. `max_count` is not
/// applied here.
struct window {
  uint64_t lo = 0;
  uint64_t hi = 0;
};
std::optional<window> read_window(const stream_head& h, const read_options& opts);

/// Fails with stream_deleted or stream_not_found when `h` cannot be read at all.
[[nodiscard]] status check_readable(const stream_head& h);

} // namespace evident::detail
