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

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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
    // httplib writes headers and body in two sends: without this, Nagle holds the body
    // until the daemon's delayed ACK (40 ms a request).
    c.set_tcp_nodelay(true);
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

/// A plain TCP connection to 127.0.0.1:port, for what an HTTP client library will not
/// send (malformed requests, pipelining, headers without their body). Every read is
/// bounded by a deadline.
class raw_connection {
public:
  explicit raw_connection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
      throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect failed");
    }
  }
  ~raw_connection() {
    ::close(fd_);
  }
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;

  /// Sends all of `bytes`; false when the peer is gone.
  bool send(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      auto n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  /// Everything the peer sends until it closes the connection or `timeout` passes.
  /// `closed()` says which.
  std::string read_until_closed(std::chrono::milliseconds timeout) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (read_some(out, deadline) > 0) {
      // more
    }
    return out;
  }

  /// One whole response (headers and a Content-Length body), or what came until the
  /// peer closed or `timeout` passed.
  std::string read_response(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        auto at = buf_.find("Content-Length: ");
        if (at != std::string::npos && at < end)
          length = std::stoul(buf_.substr(at + 16));
        if (buf_.size() >= end + 4 + length) {
          auto out = buf_.substr(0, end + 4 + length);
          buf_.erase(0, end + 4 + length);
          return out;
        }
      }
      if (read_some(buf_, deadline) <= 0) {
        auto out = std::move(buf_);
        buf_.clear();
        return out;
      }
    }
  }

  bool closed() const noexcept {
    return closed_;
  }

private:
  // Appends what arrives before `deadline` to `out`; 0 on close or timeout.
  ssize_t read_some(std::string& out, std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return 0;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      return 0;
    char chunk[4096];
    auto n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      closed_ = true;
      return 0;
    }
    out.append(chunk, static_cast<size_t>(n));
    return n;
  }

  int fd_ = -1;
  bool closed_ = false;
  std::string buf_;
};

/// A parsed JSON body (null when it is not JSON).
inline nlohmann::json body_of(const httplib::Result& r) {
  if (!r)
    return nullptr;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

} // namespace evident::test
