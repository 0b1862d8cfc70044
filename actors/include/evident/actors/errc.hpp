#pragma once

#include "evident/persistence/errc.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>

// Lets `caf::error` carry an `evident::errc`: `caf::make_error(errc::overloaded, "msg")`,
// `err == evident::errc::overloaded` and `err.category() == caf::atom("evident")`.
CAF_ERROR_CODE_ENUM(evident::errc, "evident")

namespace evident {

/// The category atom of every `caf::error` that carries an `evident::errc`.
inline constexpr caf::atom_value errc_category = caf::atom("evident");

/// Turns `x` into a `caf::error` that keeps every fact a caller needs. The context
/// message is, by code:
///   wrong_expected_version: (message, expected, actual)  -- strings, uint64_t
///   corrupted:              (message, position)          -- string, uint64_t
///   everything else:        (message)
/// (`actual` or `position` are left out when `x` has none.) All elements are CAF builtins,
/// so the error also crosses node boundaries. Precondition: `x.code != errc::none`.
caf::error to_caf_error(const error& x);

/// Inverse of `to_caf_error`, and the one place where callers of floor-2 actors map
/// what a request can fail with to an errc:
///   - category "evident": the code with message, expected/actual and position restored;
///   - sec::request_timeout -> errc::timeout (the outcome is unknown);
///   - sec::request_receiver_down and every other CAF error -> errc::io_error (the
///     target is gone or broken: treat the outcome as unknown and re-read);
///   - no error -> errc::none.
error from_caf_error(const caf::error& x);

/// Registers a renderer for the "evident" category, so that `sys.render(err)` prints
/// e.g. "evident::wrong_expected_version: stream s-1 is at version 4 (expected 3,
/// actual 4)". Call once per `actor_system_config` (add_message_types does it).
void add_error_category(caf::actor_system_config& cfg);

} // namespace evident
