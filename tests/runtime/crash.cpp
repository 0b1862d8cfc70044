// Crash recovery: "a process killed with SIGKILL during a load loses no acknowledged
// event". A child process (tests/runtime/crash_child.cpp) runs a deposit load on a
// runtime with durability fsync and prints one line per acknowledged command; the test
// kills it at several load points and then reads the data directory as a restarted node
// would: every acknowledged command is in the journal with the balance its reply
// reported, the journal verifies, and a fresh runtime recovers every account to the sum
// of the deposits in its stream. A second case stops the child with SIGTERM instead and
// checks that a graceful stop with commands in flight answers each of them truthfully.
//
// Every wait is bounded; the child is killed on every exit path (and dies with this
// process, see crash_child.cpp). No network: the child talks to us through a pipe.

#include <boost/test/unit_test.hpp>

#include "evident/persistence/lmdb_journal.hpp"
#include "evident/runtime/runtime.hpp"

#include "support/account_aggregate.hpp"
#include "support/temp_dir.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace evident;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

constexpr size_t client_threads = 16;
constexpr size_t accounts = 8;

std::string account_id(size_t i) {
  return "acc-" + std::to_string(i);
}

// -- what the child printed -----------------------------------------------------------

struct ack_line {
  std::string account;
  std::string command_id;
  int64_t amount = 0;
  int64_t balance = 0;
};

struct err_line {
  std::string account;
  std::string command_id;
  std::string code;
};

struct child_output {
  bool ready = false;
  std::vector<ack_line> acks;
  std::vector<err_line> errors;
  /// The "stopped ..." line of a graceful stop.
  std::optional<std::string> stopped;
  /// Lines of no known form (refusals included: a deposit to an open account is never
  /// refused).
  std::vector<std::string> unexpected;
  std::string partial;

  void feed(std::string_view bytes) {
    partial.append(bytes);
    size_t start = 0;
    for (auto nl = partial.find('\n'); nl != std::string::npos; nl = partial.find('\n', start)) {
      line(partial.substr(start, nl - start));
      start = nl + 1;
    }
    partial.erase(0, start);
  }

  void line(const std::string& text) {
    std::istringstream in{text};
    std::string kind;
    in >> kind;
    if (kind == "ready" && text == "ready") {
      ready = true;
    } else if (kind == "ack") {
      ack_line a;
      if (in >> a.account >> a.command_id >> a.amount >> a.balance)
        acks.push_back(std::move(a));
      else
        unexpected.push_back(text);
    } else if (kind == "err") {
      err_line e;
      if (in >> e.account >> e.command_id >> e.code)
        errors.push_back(std::move(e));
      else
        unexpected.push_back(text);
    } else if (kind == "stopped") {
      stopped = text.substr(8);
    } else {
      unexpected.push_back(text);
    }
  }
};

// -- the child process ----------------------------------------------------------------

/// evident_crash_child with its stdout on a pipe we read and its stderr in a file.
/// The destructor kills and reaps it if the test did not.
class child_process {
public:
  child_process(const std::string& data_dir, const std::string& tag, const std::string& mode,
                const std::string& stderr_path) {
    int fds[2];
    BOOST_TEST_REQUIRE(::pipe2(fds, O_CLOEXEC) == 0, "pipe2: " << errno);
    fd_ = fds[0];
    std::vector<std::string> args{EVIDENT_CRASH_CHILD_PATH,
                                  data_dir,
                                  tag,
                                  mode,
                                  std::to_string(::getpid()),
                                  std::to_string(client_threads),
                                  std::to_string(accounts)};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1); // dup2 clears O_CLOEXEC on fd 1
    posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    // Whatever this process blocks or ignores, the child starts with an empty signal
    // mask and default SIGTERM/SIGPIPE/SIGINT (its own handlers come later).
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigset_t defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGTERM, SIGINT, SIGPIPE})
      sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    auto rc = posix_spawn(&pid_, argv[0], &fa, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]); // the child holds the only write end now: EOF when it dies
    BOOST_TEST_REQUIRE(rc == 0, "posix_spawn " << argv[0] << " failed: " << rc);
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }

  ~child_process() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ignore_status(reap(10s));
    }
    if (fd_ >= 0)
      ::close(fd_);
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// Reads what the child prints until `pred(output())` holds, the pipe reaches EOF or
  /// `deadline` passes. Returns whether `pred` held.
  template <class Pred>
  bool read_until(Pred pred, clock_type::time_point deadline) {
    char buf[65536];
    while (!pred(out_)) {
      if (eof_)
        return false;
      auto now = clock_type::now();
      if (now >= deadline)
        return false;
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(ms, 100))) <= 0)
        continue; // timeout or EINTR: check the deadline
      auto n = ::read(fd_, buf, sizeof(buf));
      if (n > 0)
        out_.feed(std::string_view{buf, static_cast<size_t>(n)});
      else if (n == 0)
        eof_ = true;
      else if (errno != EAGAIN && errno != EINTR)
        eof_ = true; // cannot read on: treat as the end
    }
    return true;
  }

  /// Reads until EOF (the child and its copy of the pipe are gone) or `deadline`.
  bool read_to_end(clock_type::time_point deadline) {
    read_until([this](const child_output&) { return eof_; }, deadline);
    return eof_;
  }

  void signal(int sig) {
    if (pid_ > 0 && !reaped_)
      ::kill(pid_, sig);
  }

  /// Waits at most `timeout` for the child to end; its wait status, or nullopt.
  std::optional<int> reap(std::chrono::milliseconds timeout) {
    if (reaped_)
      return status_;
    auto deadline = clock_type::now() + timeout;
    for (;;) {
      int st = 0;
      auto r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_ || (r < 0 && errno == ECHILD)) {
        reaped_ = true;
        status_ = st;
        return status_;
      }
      if (clock_type::now() >= deadline)
        return std::nullopt;
      std::this_thread::sleep_for(2ms);
    }
  }

  const child_output& output() const noexcept {
    return out_;
  }

private:
  static void ignore_status(std::optional<int>) {
    // nop: a destructor cannot report
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  bool eof_ = false;
  bool reaped_ = false;
  int status_ = 0;
  child_output out_;
};

std::string describe_status(int st) {
  if (WIFEXITED(st))
    return "exit code " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st))
    return "signal " + std::to_string(WTERMSIG(st));
  return "status " + std::to_string(st);
}

std::string read_file(const std::string& path) {
  std::string text;
  if (auto* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
      text.append(buf, n);
    std::fclose(f);
  }
  return text;
}

// -- checks ---------------------------------------------------------------------------

/// One account's stream as the journal holds it.
struct stream_facts {
  uint64_t version = 0;
  /// Sum of every deposit in the stream.
  int64_t sum = 0;
  /// Command id -> (version of its event, balance after it).
  std::map<std::string, std::pair<uint64_t, int64_t>> commands;
};

/// Reads the journal in `dir` as a restarted node would (the child is gone) and checks
/// it against `out`:
///   - lmdb_journal::verify() finds no problem;
///   - every acknowledged command has its event in its account's stream, find_command
///     finds it at that version, and the balance after it is the acknowledged one;
///   - every command answered with an error wrote nothing (`errors_wrote_nothing`);
///   - every deposit of this child (command ids "<tag>-...") in the journal was
///     acknowledged (`all_answered`: a graceful stop), or at most one per client was not
///     (a kill overtakes at most the one command each client has in flight).
/// Returns the facts per account.
std::map<std::string, stream_facts> check_journal(const std::string& dir, const child_output& out,
                                                  const std::string& tag, bool errors_wrote_nothing,
                                                  bool all_answered) {
  runtime_config cfg;
  cfg.storage.data_dir = dir;
  auto opts = cfg.journal();
  opts.create = false;
  auto j = lmdb_journal::open(opts);
  BOOST_TEST_REQUIRE(j.has_value(), "reopening the journal: " << to_string(j.err()));
  auto report = (*j)->verify();
  BOOST_TEST_REQUIRE(report.has_value(), "verify: " << to_string(report.err()));
  BOOST_TEST(report->ok(), report->problems.size()
                               << " problem(s), first: "
                               << (report->ok() ? std::string{} : report->problems[0]));
  BOOST_TEST_MESSAGE("journal: " << report->events << " events, " << report->streams << " streams, "
                                 << report->snapshots << " snapshots");
  spec_model<bank::account_aggregate> model;
  std::map<std::string, stream_facts> facts;
  for (size_t a = 0; a < accounts; ++a) {
    auto& f = facts[account_id(a)];
    auto events = (*j)->read_stream(model.stream_of(account_id(a)));
    BOOST_TEST_REQUIRE(events.has_value(), account_id(a) << ": " << to_string(events.err()));
    for (const auto& e : *events) {
      auto ev = model.registry().decode(e);
      BOOST_TEST_REQUIRE(ev.has_value(),
                         e.stream << " v" << e.version << ": " << to_string(ev.err()));
      if (const auto* d = std::get_if<bank::deposited>(&*ev))
        f.sum += d->amount;
      else
        BOOST_TEST_REQUIRE(std::holds_alternative<bank::opened>(*ev),
                           e.stream << " v" << e.version << ": an unexpected event " << e.type);
      f.version = e.version;
      if (!e.command_id.empty())
        BOOST_TEST_REQUIRE(f.commands.emplace(e.command_id, std::pair{e.version, f.sum}).second,
                           "command id " << e.command_id << " wrote twice");
    }
  }
  // Acknowledged => on disk with the acknowledged balance. Failures are summed up so a
  // broken run prints a handful of lines, not thousands.
  size_t missing = 0;
  size_t wrong_balance = 0;
  size_t not_found = 0;
  std::set<std::string> acked;
  for (const auto& a : out.acks) {
    acked.insert(a.command_id);
    auto stream = model.stream_of(a.account);
    auto& f = facts[a.account];
    auto i = f.commands.find(a.command_id);
    if (i == f.commands.end()) {
      if (++missing <= 5)
        BOOST_TEST_MESSAGE("acknowledged but not in " << stream << ": " << a.command_id);
      continue;
    }
    if (i->second.second != a.balance && ++wrong_balance <= 5)
      BOOST_TEST_MESSAGE(a.command_id << ": acknowledged balance " << a.balance << ", journal says "
                                      << i->second.second);
    auto found = (*j)->find_command(stream, a.command_id);
    if (!found || !*found || (*found)->last_version != i->second.first) {
      if (++not_found <= 5)
        BOOST_TEST_MESSAGE("find_command(" << stream << ", " << a.command_id << ") "
                                           << (!found    ? to_string(found.err())
                                               : !*found ? std::string{"nullopt"}
                                                         : "at another version"));
    }
  }
  BOOST_TEST(missing == 0u, missing << " of " << out.acks.size()
                                    << " acknowledged commands are not in the journal");
  BOOST_TEST(wrong_balance == 0u, wrong_balance << " acknowledged balances differ");
  BOOST_TEST(not_found == 0u, not_found << " acknowledged commands not found by find_command");
  if (errors_wrote_nothing) {
    size_t written = 0;
    for (const auto& e : out.errors) {
      auto found = (*j)->find_command(model.stream_of(e.account), e.command_id);
      BOOST_TEST_REQUIRE(found.has_value(), to_string(found.err()));
      if (*found && ++written <= 5)
        BOOST_TEST_MESSAGE(e.command_id << " was answered " << e.code << " but is in the journal");
    }
    BOOST_TEST(written == 0u, written << " commands answered with an error wrote events");
  }
  // Committed but never acknowledged: after a kill, the commands whose reply (or ack
  // line) the kill overtook; after a graceful stop there must be none.
  size_t unanswered = 0;
  for (const auto& [account, f] : facts)
    for (const auto& [cmd, where] : f.commands)
      if (cmd.rfind(tag + "-", 0) == 0 && acked.count(cmd) == 0 && ++unanswered <= 5
          && all_answered)
        BOOST_TEST_MESSAGE(cmd << " is in the journal but was never acknowledged");
  if (all_answered) {
    BOOST_TEST(unanswered == 0u, unanswered << " commands wrote events without an ack");
  } else {
    BOOST_TEST(unanswered <= client_threads, unanswered << " deposits committed without an ack");
    BOOST_TEST_MESSAGE(unanswered << " deposits committed but not acknowledged before the kill");
  }
  return facts;
}

/// A fresh runtime on `dir` recovers every account (through the aggregate actor, from
/// snapshot + replay) to the sum of the deposits in its stream.
void check_recovery(const std::string& dir, const std::map<std::string, stream_facts>& facts) {
  runtime_config cfg;
  cfg.storage.data_dir = dir;
  cfg.requests.ask_timeout = 10s;
  cfg.shutdown.drain_timeout = 5s;
  runtime rt{cfg};
  rt.register_aggregate<bank::account_aggregate>();
  for (const auto& [account, f] : facts) {
    auto r = rt.ask<bank::account_aggregate>(account, bank::get_balance{});
    BOOST_TEST_REQUIRE(r.has_value(), account << ": " << to_string(r.err()));
    BOOST_TEST(r->balance == f.sum,
               account << " recovered " << r->balance << ", its deposits sum to " << f.sum);
    auto st = rt.state_of<bank::account_aggregate>(account);
    BOOST_TEST_REQUIRE(st.has_value(), account << ": " << to_string(st.err()));
    BOOST_TEST(st->version == f.version, account);
    BOOST_TEST(st->state.balance == f.sum, account);
  }
  auto m = rt.metrics();
  BOOST_TEST(m.aggregates.recoveries == facts.size());
  BOOST_TEST(m.aggregates.recovery_failures == 0u);
  auto err = rt.stop();
  BOOST_TEST(!err, to_string(err));
}

} // namespace

BOOST_AUTO_TEST_SUITE(crash_recovery)

BOOST_AUTO_TEST_CASE(sigkill_during_a_load_loses_no_acknowledged_event) {
  evident::test::temp_dir tmp;
  auto dir = tmp.sub("data");
  // Four kills on the same directory: each later child recovers from the previous
  // crash before it takes load. The load points are acks seen by this process (a few
  // more may be in the pipe, and a few commits not acknowledged yet): right after the
  // load starts, then deeper (with snapshots every 10 events, streams of hundreds of
  // events). On the reference machine (ext4, fsync) 5,000 acks take about 1.5 s; a
  // slower disk hits the per-round time limit instead and the test stays bounded.
  const size_t kill_after[] = {1, 200, 1'000, 5'000};
  size_t round = 0;
  for (auto n : kill_after) {
    ++round;
    BOOST_TEST_CONTEXT("round " << round << ", kill after " << n << " acks") {
      auto err_path = tmp.sub("child-" + std::to_string(round) + ".err");
      auto t0 = clock_type::now();
      child_output out;
      {
        child_process child{dir, "r" + std::to_string(round), "kill", err_path};
        auto seen = child.read_until([n](const child_output& o) { return o.acks.size() >= n; },
                                     clock_type::now() + 4s);
        auto acks_at_kill = child.output().acks.size();
        child.signal(SIGKILL);
        auto st = child.reap(10s);
        BOOST_TEST_REQUIRE(st.has_value(), "the child did not die within 10 s of SIGKILL");
        // What the child wrote before it died is still in the pipe: those acks count too.
        BOOST_TEST(child.read_to_end(clock_type::now() + 5s));
        out = child.output();
        BOOST_TEST(WIFSIGNALED(*st), describe_status(*st) << "; stderr: " << read_file(err_path));
        BOOST_TEST_MESSAGE(
            "killed after "
            << acks_at_kill << " acks (" << out.acks.size() << " with the pipe's rest) in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count()
            << " ms");
        BOOST_TEST(out.ready, "the child never got ready; stderr: " << read_file(err_path));
        if (!seen)
          BOOST_TEST_MESSAGE("time limit passed before " << n << " acks");
        BOOST_TEST(!out.acks.empty(), "no acknowledged command; stderr: " << read_file(err_path));
      }
      // Before the kill nothing fails: any error would be a fault of its own.
      BOOST_TEST(out.errors.empty(), out.errors.size()
                                         << " asks failed, first: "
                                         << (out.errors.empty() ? "" : out.errors[0].code));
      BOOST_TEST(out.unexpected.empty(), out.unexpected.size()
                                             << " unexpected lines, first: "
                                             << (out.unexpected.empty() ? "" : out.unexpected[0]));
      auto facts = check_journal(dir, out, "r" + std::to_string(round), false, false);
      check_recovery(dir, facts);
    }
  }
}

BOOST_AUTO_TEST_CASE(sigterm_during_a_load_answers_every_command_truthfully) {
  // Graceful: SIGTERM -> run_until_stopped -> stop() while the clients keep sending.
  // Commands in flight are answered (and committed); later ones are refused with
  // unavailable and write nothing; nothing is written without an ack.
  evident::test::temp_dir tmp;
  auto dir = tmp.sub("data");
  auto err_path = tmp.sub("child.err");
  child_output out;
  {
    child_process child{dir, "g", "term", err_path};
    // 500 acks, or what a slow disk manages in 4 s: enough that commands are in flight.
    child.read_until([](const child_output& o) { return o.acks.size() >= 500; },
                     clock_type::now() + 4s);
    BOOST_TEST_REQUIRE(child.output().acks.size() >= 20u,
                       "no load; stderr: " << read_file(err_path));
    child.signal(SIGTERM);
    BOOST_TEST_REQUIRE(
        child.read_to_end(clock_type::now() + 15s),
        "the child did not end within 15 s of SIGTERM; stderr: " << read_file(err_path));
    auto st = child.reap(5s);
    BOOST_TEST_REQUIRE(st.has_value(), "the child closed stdout but did not exit");
    out = child.output();
    BOOST_TEST((WIFEXITED(*st) && WEXITSTATUS(*st) == 0),
               describe_status(*st) << "; stderr: " << read_file(err_path));
  }
  BOOST_TEST_REQUIRE(out.stopped.has_value(), "no 'stopped' line");
  BOOST_TEST(*out.stopped == "ok");
  BOOST_TEST(out.unexpected.empty(), out.unexpected.size()
                                         << " unexpected lines, first: "
                                         << (out.unexpected.empty() ? "" : out.unexpected[0]));
  // Each client ends at its first refusal, so there is one per client; anything but
  // unavailable would be an unknown outcome in a stop that promises none.
  BOOST_TEST(out.errors.size() == client_threads);
  for (const auto& e : out.errors)
    BOOST_TEST(e.code == "unavailable", e.command_id);
  BOOST_TEST_MESSAGE(out.acks.size() << " acks, " << out.errors.size() << " refusals");
  auto facts = check_journal(dir, out, "g", true, true);
  check_recovery(dir, facts);
}

BOOST_AUTO_TEST_SUITE_END()
