#pragma once

// How a saga manager retries, times out, batches and ticks (saga_manager.hpp). Plain
// data, so that a daemon's configuration can hold it without CAF (runtime config
// section [sagas]).

#include "evident/persistence/errc.hpp"
#include "evident/sagas/defaults.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace evident {

struct saga_options {
  /// Attempts of one command (transient failures) before the saga is parked (>= 1).
  /// Default: defaults::saga::max_attempts (8).
  uint32_t max_attempts = defaults::saga::max_attempts;
  /// Retry delay after the first failure; doubles per attempt up to `backoff_max`.
  /// Defaults: 50 ms and 5 s.
  std::chrono::milliseconds backoff_initial{defaults::saga::backoff_initial_ms};
  std::chrono::milliseconds backoff_max{defaults::saga::backoff_max_ms};
  /// Time limit of one command at the router (then: a transient timeout). Default 10 s.
  std::chrono::milliseconds command_timeout{defaults::saga::command_timeout_ms};
  /// Time limit of one progress append. Default 10 s.
  std::chrono::milliseconds append_timeout{defaults::saga::append_timeout_ms};
  /// Commands at the router at once (>= 1). Default 1,024.
  size_t max_in_flight_commands = defaults::saga::max_in_flight_commands;
  /// Appends at the writer at once (>= 1). Default 2,048.
  size_t max_in_flight_appends = defaults::saga::max_in_flight_appends;
  /// How often due deadlines are checked (0 = only on saga_tick_atom, for tests with a
  /// virtual clock). Default 100 ms.
  std::chrono::milliseconds tick_interval{defaults::saga::tick_interval_ms};
};

/// Checks `x`. Fails with invalid_input naming the field.
[[nodiscard]] status validate(const saga_options& x);

} // namespace evident
