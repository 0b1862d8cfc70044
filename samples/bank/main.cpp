// evident-bank: a REST daemon over bank accounts kept as event-sourced aggregates in an
// embedded LMDB journal. See docs/bank.md for the API, `evident-bank --help` for options.
//
// Start:  options -> runtime (opens ./data) -> HTTP bind -> "listening on ..." on stdout.
// Stop (SIGTERM, SIGINT):
//   1. the server stops accepting, closes idle connections and finishes the requests in
//      flight (each is answered only after its events are durable, so nothing
//      acknowledged is lost); serve() returns when the last one is written;
//   2. the runtime stops (aggregates, journal writer, LMDB). Its stop also waits for
//      async asks in flight, but a connection must still be open to write the answer,
//      so the server goes first.
// Exit codes: 0 clean stop, 1 the stop reported an error, 2 bad options or start failure.

#include "account.hpp"
#include "balances.hpp"
#include "transfer.hpp"
#include "options.hpp"
#include "server.hpp"

#include "evident/runtime/runtime.hpp"

#include <chrono>
#include <cstdio>
#include <future>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto opts = bank::parse_options(args);
  if (!opts) {
    std::cerr << "evident-bank: " << evident::to_string(opts.err()) << "\n" << bank::usage();
    return 2;
  }
  if (opts->help) {
    std::cout << bank::usage();
    return 0;
  }
  // Before the runtime opens the journal (which may take a while): a SIGTERM during
  // startup is then remembered and honoured once the server is up, not fatal midway.
  evident::runtime::install_signal_handlers();
  auto rt = evident::runtime::start(opts->runtime);
  if (!rt) {
    std::cerr << "evident-bank: " << evident::to_string(rt.err()) << "\n";
    return 2;
  }
  try {
    (*rt)->register_aggregate<bank::account_aggregate>();
    (*rt)->register_aggregate<bank::transfer_aggregate>();
    (*rt)->register_view<bank::balances_view>();
    // Last: it starts the router (aggregate registration ends) and recovers unfinished
    // transfers, whose commands then go out again with their original command ids.
    (*rt)->register_saga<bank::transfer_saga>();
  } catch (const std::exception& ex) {
    std::cerr << "evident-bank: " << ex.what() << "\n";
    return 2;
  }
  bank::bank_server server{**rt, opts->http, {bank::add_account_routes, bank::add_transfer_routes,
                                              bank::add_report_routes, bank::add_system_routes}};
  auto port = server.bind();
  if (!port) {
    std::cerr << "evident-bank: " << evident::to_string(port.err()) << "\n";
    return 2;
  }
  // Tests and scripts wait for this line to learn the port (also for --listen ...:0).
  std::printf("evident-bank listening on http://%s:%d (data %s)\n", opts->http.host.c_str(), *port,
              opts->runtime.storage.data_dir.c_str());
  std::fflush(stdout);

  auto served = std::async(std::launch::async, [&] {
    bool ok = server.serve();
    // If the server ends on its own, the daemon ends too.
    evident::runtime::request_stop();
    return ok;
  });
  evident::runtime::wait_for_stop_signal();
  // stop() before serve() has started listening would be a no-op; repeat until it ends.
  using namespace std::chrono_literals;
  do
    server.stop();
  while (served.wait_for(50ms) != std::future_status::ready);
  served.get();

  auto err = (*rt)->stop();
  if (err) {
    std::cerr << "evident-bank: stopped with " << evident::to_string(err) << "\n";
    return 1;
  }
  std::printf("evident-bank stopped\n");
  return 0;
}
