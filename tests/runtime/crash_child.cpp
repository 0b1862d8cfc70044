// evident_crash_child: the process that tests/runtime/crash.cpp kills.
//
//   evident_crash_child <data_dir> <tag> <kill|term> <parent_pid> [threads] [accounts]
//
// Opens an evident::runtime on <data_dir> with durability fsync, registers the sample
// account aggregate, opens `accounts` accounts (acc-0, acc-1, ...) and runs a deposit
// load from `threads` client threads. Each client sends deposits with unique command ids
// (<tag>-<thread>-<n>) to the accounts in turn and, after each reply, writes one line to
// stdout with write(2), so that nothing acknowledged sits in a buffer of this process
// when it is killed:
//
//   ack <account> <command id> <amount> <balance after>   the deposit was committed
//   err <account> <command id> <errc>                     the ask failed
//   refused <account> <command id> <reason>               a domain refusal (never expected)
//
// Lines are shorter than PIPE_BUF, so concurrent writes to a pipe never interleave.
//
// Modes:
//   kill  runs until it is killed (the test sends SIGKILL).
//   term  installs the runtime's signal handlers: SIGTERM stops the runtime gracefully
//         (run_until_stopped), the clients end at their first `unavailable`, the program
//         prints "stopped ok" (or "stopped <error>") and exits 0 (1 when the stop failed).
//
// It never outlives the test: it asks the kernel for SIGKILL when its parent dies
// (PR_SET_PDEATHSIG, checked against <parent_pid> to close the race with an early exit of
// the parent), and a watchdog ends it after 60 s whatever happens. It listens on nothing.

#include "evident/runtime/runtime.hpp"

#include "support/account_aggregate.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <sys/prctl.h>
#include <unistd.h>

namespace {

constexpr auto watchdog = std::chrono::seconds{60};

// One line to stdout, unbuffered. A short write to a pipe cannot happen for lines below
// PIPE_BUF unless a signal interrupts it; loop anyway.
void emit(std::string line) {
  line.push_back('\n');
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    auto n = ::write(STDOUT_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      std::_Exit(6); // the reader is gone
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void client(evident::runtime& rt, const std::string& tag, size_t t, size_t accounts) {
  for (uint64_t i = 0;; ++i) {
    auto account = "acc-" + std::to_string((t + i) % accounts);
    auto amount = static_cast<int64_t>(1 + (t * 7 + i) % 100);
    auto cmd_id = tag + "-" + std::to_string(t) + "-" + std::to_string(i);
    auto r = rt.ask<bank::account_aggregate>(account, bank::deposit{amount}, cmd_id);
    if (!r) {
      auto code = r.err().code;
      emit("err " + account + " " + cmd_id + " " + std::string{evident::to_string(code)});
      if (code == evident::errc::unavailable)
        return; // the runtime is stopping
      continue;
    }
    if (!r->ok) {
      emit("refused " + account + " " + cmd_id + " " + r->reason);
      continue;
    }
    emit("ack " + account + " " + cmd_id + " " + std::to_string(amount) + " "
         + std::to_string(r->balance));
  }
}

int usage() {
  std::fputs("usage: evident_crash_child <data_dir> <tag> <kill|term> <parent_pid> "
             "[threads] [accounts]\n",
             stderr);
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 5 || argc > 7)
    return usage();
  std::string data_dir = argv[1];
  std::string tag = argv[2];
  std::string mode = argv[3];
  auto parent = static_cast<pid_t>(std::atol(argv[4]));
  size_t threads = argc > 5 ? std::strtoul(argv[5], nullptr, 10) : 16;
  size_t accounts = argc > 6 ? std::strtoul(argv[6], nullptr, 10) : 8;
  if ((mode != "kill" && mode != "term") || threads == 0 || accounts == 0)
    return usage();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent)
    return 3; // the parent died before prctl took effect
  std::thread{[] {
    std::this_thread::sleep_for(watchdog);
    std::fputs("evident_crash_child: watchdog expired\n", stderr);
    std::_Exit(5);
  }}.detach();

  evident::runtime_config cfg;
  cfg.storage.data_dir = data_dir;
  cfg.storage.sync = evident::durability::fsync_each_commit;
  cfg.storage.map_size = size_t{16} << 20;
  // Index passes every 1,000 events (default 1,000,000): a kill then finds command ids
  // both in the per-stream index and in the log tail that reopening rebuilds.
  cfg.storage.index_lag_events = 1'000;
  cfg.requests.ask_timeout = std::chrono::seconds{10};
  cfg.shutdown.drain_timeout = std::chrono::seconds{10};
  if (mode == "term")
    evident::runtime::install_signal_handlers();
  auto rt = evident::runtime::start(cfg);
  if (!rt) {
    std::fprintf(stderr, "evident_crash_child: %s\n", evident::to_string(rt.err()).c_str());
    return 4;
  }
  (*rt)->register_aggregate<bank::account_aggregate>();
  // "Already open" (a later round on the same directory) is as good as opened.
  for (size_t a = 0; a < accounts; ++a) {
    auto account = "acc-" + std::to_string(a);
    auto r = (*rt)->ask<bank::account_aggregate>(account, bank::open{"owner " + account},
                                                 "open-" + account);
    if (!r) {
      std::fprintf(stderr, "evident_crash_child: open %s: %s\n", account.c_str(),
                   evident::to_string(r.err()).c_str());
      return 4;
    }
  }
  emit("ready");
  std::vector<std::thread> clients;
  for (size_t t = 0; t < threads; ++t)
    clients.emplace_back([&, t] { client(**rt, tag, t, accounts); });
  // kill mode: no handlers, so this blocks until SIGKILL (or SIGTERM's default action).
  auto err = (*rt)->run_until_stopped();
  for (auto& c : clients)
    c.join();
  emit(err ? "stopped " + evident::to_string(err) : std::string{"stopped ok"});
  return err ? 1 : 0;
}
