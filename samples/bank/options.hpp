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
//   threads = 64                # HTTP worker threads (each keep-alive connection holds one)
//   max_body = 64KiB            # larger request bodies get 413

#include "evident/persistence/errc.hpp"
#include "evident/runtime/config.hpp"

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
  /// HTTP worker threads. A keep-alive connection holds one thread while it is open,
  /// so this bounds the clients served at once; 64 matches the load benchmark.
  size_t threads = 64;
  /// Largest request body accepted; more gets 413. Default: 64 KiB.
  size_t max_body = 64 * 1024;
};

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
