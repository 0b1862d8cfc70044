#pragma once

// The HTTP server of evident-bank: Boost.Beast's parser over Boost.Asio (answers are
// serialized by hand into one buffer), a few I/O threads, no thread per connection. A
// route table filled by route groups, bearer-token authentication, JSON bodies for
// every error (also the ones the HTTP layer produces itself: malformed requests, 413,
// ...).
//
//   bank_server srv{rt, opts.http, {add_account_routes, add_system_routes}};
//   auto port = srv.bind();            // 127.0.0.1:0 -> the port the kernel chose
//   std::thread t{[&] { srv.serve(); }};
//   ...
//   srv.stop();                        // no new connections; requests in flight finish
//   t.join();                          // serve() returns once they are answered
//
// Threads and a request's trip:
//
//   I/O thread (http.threads, default 1): accept, read, parse, route
//     |-- async route (commands, states, /healthz): asks the aggregates through
//     |   runtime::ask_async and returns at once; the answer comes back as a post to the
//     |   connection's strand, which writes it
//     '-- blocking route (events, /metrics): runs on the blocking pool
//         (http.blocking_threads), answers the same way
//
// A connection reads its next request only after the current one is answered (requests
// pipelined by a client wait in its buffer), so a route's request stays valid until it
// answers.

#include "http.hpp"
#include "options.hpp"

#include "evident/runtime/runtime.hpp"

#include <initializer_list>
#include <memory>

namespace bank {

class bank_server {
public:
  /// Builds the route table. Register the aggregates first: the first request starts
  /// the runtime's router.
  bank_server(evident::runtime& rt, http_options opts, std::initializer_list<route_group> groups);

  /// Joins the blocking pool. Join the thread that runs serve() first.
  ~bank_server();

  bank_server(const bank_server&) = delete;
  bank_server& operator=(const bank_server&) = delete;

  /// Binds the listening socket. Returns the port (the chosen one for port 0).
  /// Fails with io_error (address in use, bad host).
  [[nodiscard]] evident::expected<int> bind();

  /// Serves on the calling thread plus http.threads - 1 more until stop(); returns when
  /// every accepted request is answered and every connection closed. Returns false when
  /// the server could not run (not bound).
  bool serve();

  /// Stops accepting, closes idle connections, and lets each busy one close after its
  /// answer is written: serve() then returns. Idempotent, callable from any thread, also
  /// before serve() started (serve() then returns at once).
  void stop();

  bank_context& context() noexcept;

  /// The server's state (server.cpp); opaque to users.
  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace bank
