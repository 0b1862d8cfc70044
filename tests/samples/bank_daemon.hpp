#pragma once

// Runs evident-bank as a child process for the integration tests: on 127.0.0.1 with a
// port the kernel picks (read from the daemon's first stdout line), with bounded waits
// everywhere, and always stopped (SIGTERM, then SIGKILL) when the object goes away.

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace evident::test {

class bank_daemon {
public:
  /// Starts `EVIDENT_BANK_PATH --listen 127.0.0.1:0 --data <data_dir> <extra...>` and
  /// waits (at most 30 s) for its "listening on" line. Throws std::runtime_error when it
  /// does not come.
  bank_daemon(const std::string& data_dir, std::vector<std::string> extra = {}) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2 failed");
    auto parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0)
      throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // The daemon never outlives the test process.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        std::_Exit(9);
      ::dup2(fds[1], STDOUT_FILENO);
      std::vector<std::string> args{EVIDENT_BANK_PATH, "--listen", "127.0.0.1:0", "--data",
                                    data_dir};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::_Exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    auto line = read_line(std::chrono::seconds{30});
    auto at = line.find("127.0.0.1:");
    if (at == std::string::npos) {
      kill(SIGKILL);
      throw std::runtime_error("evident-bank did not start: '" + line + "'");
    }
    port_ = std::stoi(line.substr(at + 10));
  }

  ~bank_daemon() {
    if (!exited_) {
      stop(SIGTERM, std::chrono::seconds{20});
      if (!exited_)
        stop(SIGKILL, std::chrono::seconds{10});
    }
    if (pidfd_ >= 0)
      ::close(pidfd_);
    ::close(out_);
  }

  bank_daemon(const bank_daemon&) = delete;
  bank_daemon& operator=(const bank_daemon&) = delete;

  int port() const noexcept {
    return port_;
  }

  /// A client for this daemon (keep-alive, 10 s timeouts).
  httplib::Client client() const {
    httplib::Client c{"127.0.0.1", port_};
    c.set_keep_alive(true);
    c.set_connection_timeout(std::chrono::seconds{5});
    c.set_read_timeout(std::chrono::seconds{10});
    c.set_write_timeout(std::chrono::seconds{10});
    return c;
  }

  void kill(int sig) {
    if (!exited_)
      ::kill(pid_, sig);
  }

  /// Sends `sig` and waits up to `timeout` for the exit. Returns the exit status
  /// (waitpid form), nullopt if it did not exit in time.
  std::optional<int> stop(int sig, std::chrono::milliseconds timeout) {
    kill(sig);
    return wait_exit(timeout);
  }

  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    if (exited_)
      return status_;
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(timeout.count()));
    }
    int st = 0;
    if (::waitpid(pid_, &st, pidfd_ >= 0 ? WNOHANG : 0) == pid_) {
      exited_ = true;
      status_ = st;
      return st;
    }
    return std::nullopt;
  }

  /// The rest of the daemon's stdout after it exited (e.g. "evident-bank stopped").
  std::string rest_of_output() {
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(out_, buf, sizeof(buf))) > 0)
      out.append(buf, static_cast<size_t>(n));
    return out;
  }

private:
  std::string read_line(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string line;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return line;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        continue;
      char c;
      auto n = ::read(out_, &c, 1);
      if (n <= 0)
        return line; // the daemon exited
      if (c == '\n')
        return line;
      line.push_back(c);
    }
  }

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_ = -1;
  int port_ = 0;
  bool exited_ = false;
  int status_ = 0;
};

/// A parsed JSON body (null when it is not JSON).
inline nlohmann::json body_of(const httplib::Result& r) {
  if (!r)
    return nullptr;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

} // namespace evident::test
