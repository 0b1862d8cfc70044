#pragma once

#include <cstddef>
#include <cstdint>

/// Default values of the saga floor's options (see saga_manager.hpp).
namespace evident::defaults::saga {

/// Attempts of one command before its saga is parked: 8. With the default backoff
/// (50 ms doubling, capped at 5 s) that is about 6 s of transient failures
/// (unavailable, overloaded, timeouts).
inline constexpr uint32_t max_attempts = 8;

/// First retry delay of a failed dispatch: 50 ms; it doubles per attempt.
inline constexpr long long backoff_initial_ms = 50;

/// Longest retry delay: 5 s.
inline constexpr long long backoff_max_ms = 5'000;

/// How long one command may take at the router before it counts as a (transient)
/// timeout: 10 s, as the aggregates' append timeout.
inline constexpr long long command_timeout_ms = 10'000;

/// How long one progress append may take at the journal writer: 10 s. Past it the
/// outcome is unknown and the manager stops (it recovers from the journal).
inline constexpr long long append_timeout_ms = 10'000;

/// Commands out at the router at once (more wait in a queue): 1,024. CAF 0.17 pays
/// O(outstanding requests) per response, so the window keeps that cost small.
inline constexpr size_t max_in_flight_commands = 1'024;

/// Progress appends out at the writer at once: 2,048 (same reason).
inline constexpr size_t max_in_flight_appends = 2'048;

/// How often due deadlines are checked: 100 ms. A deadline fires at most this late.
inline constexpr long long tick_interval_ms = 100;

} // namespace evident::defaults::saga
