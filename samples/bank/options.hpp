#pragma once

// The options of evident-bank: the runtime's (every key of evident::runtime_config) plus
// an [http] section, from a config file and command-line flags. Flags win over the file.
//
//   evident-bank [--listen HOST:PORT] [--data DIR] [--config FILE] [--token T]
//                [--http-threads N] [--durability fsync|no_meta_sync|no_sync]
//
//   [http]                      # in the config file, beside the runtime's sections
//   listen = 127.0.0.1:8080
//   token = s3cret              # empty: no authentication
//   threads = 1                 # HTTP I/O threads (connections are multiplexed on them)
//   blocking_threads = 4        # threads for the routes that block (events, metrics)
//   max_body = 64KiB            # larger request bodies get 413

#include "evident/persistence/errc.hpp"
#include "evident/runtime/config.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bank {

struct http_options {
  /// Address to listen on. Port 0 picks a free port (printed on stdout at start).
  /// Default: 127.0.0.1:8080.
  std::string host = "127.0.0.1";
  int port = 8080;
  /// When set, every request needs `Authorization: Bearer <token>`. Default: none.
  std::string token;
  /// HTTP I/O threads: they accept, parse, route and write; every connection is
  /// multiplexed on them and none waits for the runtime. One keeps a 2-core machine's
  /// second core for the actors and the journal writer (1 to 64). Default: 1.
  size_t threads = 1;
  /// Threads for the routes that block (the event history reads LMDB, /metrics asks
  /// the runtime synchronously); at most this many such requests run at once, the
  /// others wait their turn (1 to 256). Default: 4.
  size_t blocking_threads = 4;
  /// Largest request body accepted; more gets 413. Default: 64 KiB.
  size_t max_body = 64 * 1024;
};

/// The bank's default for the runtime's scheduler.threads (the runtime's own is 2): one
/// CAF worker. The daemon already runs an HTTP I/O thread and the journal writer's
/// thread; on the 2-core reference machine, shared with the load generator, a second
/// worker only added work stealing and 50 us polling sleeps: bench/bank_load.sh gave
/// 12,100-12,400 deposits/s with one worker against 6,900-7,500 with two (same
/// window, busy machine). `[scheduler] threads` in the config file overrides it.
inline constexpr size_t bank_scheduler_threads = 1;

/// The bank's default for scheduler.policy (the runtime's own is stealing): sharing.
/// With one worker there is no one to steal from, and CAF's work stealing only polls its
/// own queue, sleeping 50 us between polls before it blocks: thousands of sleeps and
/// wake-ups a second, and a command that arrives meanwhile waits for the sleep to end.
/// Work sharing blocks at once and is woken by the next job. Deposits only, 64
/// connections, 5 rounds alternating in one window: 47.4 against 51.3 us of the
/// daemon's CPU per deposit (median), 22,567 against 21,534 deposits/s. With jemalloc
/// the two policies are within the noise under full load (docs/bank.md); sharing stays
/// because a lightly loaded daemon then sleeps instead of polling.
inline constexpr evident::scheduler_policy bank_scheduler_policy = evident::scheduler_policy::sharing;

/// The bank's default for views.commit_interval (the runtime's own is 3 ms): the
/// balances view commits at most every 50 ms. Each view commit is a flush that holds
/// LMDB's write lock and competes with the deposits' commits for the disk and the
/// cores; bench/bank_load.sh gave 19,600-19,800 deposits/s with 10 ms against
/// 13,500-16,700 with 0 and 14,400-18,600 with 3 ms, and later 18,842 / 18,471 / 21,862
/// with 50 ms against 17,664 / 17,381 / 21,822 with 10 ms (same window each). The report
/// lags by up to that much more. `[views] commit_interval` in the config file overrides
/// it.
inline constexpr std::chrono::milliseconds bank_view_commit_interval{50};

struct bank_options {
  http_options http;
  evident::runtime_config runtime;
  /// --help was given: print usage and exit 0.
  bool help = false;
};

/// The usage text.
std::string usage();

/// Parses `args` (without the program name). Reads --config first (so flags override
/// it); --data defaults to ./data when neither the file nor a flag sets it.
/// Fails with invalid_input (unknown flag, bad value, naming it) or what loading the
/// config file fails with (io_error, invalid_input with file:line).
[[nodiscard]] evident::expected<bank_options> parse_options(const std::vector<std::string>& args);

/// Parses "HOST:PORT" into `out`. Fails with invalid_input.
[[nodiscard]] evident::status parse_listen(std::string_view text, http_options& out);

} // namespace bank
