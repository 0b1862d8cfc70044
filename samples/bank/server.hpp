#pragma once

// The HTTP server of evident-bank: cpp-httplib with a fixed pool of worker threads, a
// route table filled by route groups, bearer-token authentication, JSON bodies for every
// error (also the ones httplib produces itself: malformed requests, 413, ...).
//
//   bank_server srv{rt, opts.http, {add_account_routes, add_system_routes}};
//   auto port = srv.bind();            // 127.0.0.1:0 -> the port the kernel chose
//   std::thread t{[&] { srv.serve(); }};
//   ...
//   srv.stop();                        // no new connections; requests in flight finish
//   t.join();                          // serve() returns once they are answered
//
// Threads: a request runs on a pool thread and blocks it while the runtime answers
// (runtime::ask); a keep-alive connection holds its thread between requests.

#include "http.hpp"
#include "options.hpp"

#include "evident/runtime/runtime.hpp"

#include <httplib.h>

#include <initializer_list>
#include <memory>

namespace bank {

class bank_server {
public:
  bank_server(evident::runtime& rt, http_options opts, std::initializer_list<route_group> groups);
  ~bank_server();

  bank_server(const bank_server&) = delete;
  bank_server& operator=(const bank_server&) = delete;

  /// Binds the listening socket. Returns the port (the chosen one for port 0).
  /// Fails with io_error (address in use, bad host).
  [[nodiscard]] evident::expected<int> bind();

  /// Serves until stop(); returns when every accepted request is answered. Returns
  /// false when the server could not run (not bound).
  bool serve();

  /// Stops accepting; serve() returns once requests in flight are answered. Idempotent,
  /// callable from any thread.
  void stop();

  bank_context& context() noexcept {
    return ctx_;
  }

private:
  bank_context ctx_;
  route_table routes_;
  httplib::Server svr_;
};

} // namespace bank
