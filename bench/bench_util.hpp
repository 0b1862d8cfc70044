#pragma once

// Helpers shared by the benchmark programs (journal_bench, aggregate_bench): timing,
// per-thread CPU from /proc, percentiles, disk writes, and a pass-through journal that
// tells where the journal writer's thread spends its time.

#include "evident/persistence/journal.hpp"
#include "evident/persistence/lmdb_journal.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace evident::bench {

using clock_type = std::chrono::steady_clock;

/// Walks a benchmark's command line: `--name=value` or `--name value`. `fail` prints a
/// usage error and exits (it must not return).
class arg_cursor {
public:
  using fail_fn = void (*)(const std::string&);

  arg_cursor(int argc, char** argv, fail_fn on_fail)
    : argc_(argc), argv_(argv), fail_(on_fail) {
    // nop
  }

  /// Moves to the next argument; false at the end.
  bool next() {
    if (++i_ >= argc_)
      return false;
    arg_ = argv_[i_];
    name_ = arg_.substr(0, arg_.find('='));
    return true;
  }
  const std::string& arg() const noexcept {
    return arg_;
  }
  const std::string& name() const noexcept {
    return name_;
  }

  std::string value() {
    if (auto eq = arg_.find('='); eq != std::string::npos)
      return arg_.substr(eq + 1);
    if (i_ + 1 >= argc_)
      fail("missing value for " + arg_);
    return argv_[++i_];
  }

  uint64_t number() {
    auto v = value();
    try {
      size_t used = 0;
      auto n = std::stoull(v, &used);
      if (used == v.size())
        return n;
    } catch (...) {
      // reported below
    }
    fail("not a number: " + v);
  }

  /// --sync's values.
  evident::durability durability() {
    auto v = value();
    if (v == "fsync_each_commit")
      return evident::durability::fsync_each_commit;
    if (v == "no_meta_sync")
      return evident::durability::no_meta_sync;
    if (v == "no_sync")
      return evident::durability::no_sync;
    fail("unknown durability " + v);
  }

  [[noreturn]] void fail(const std::string& msg) {
    fail_(msg);
    std::abort(); // fail_ exits; this only tells the compiler
  }

private:
  int argc_;
  char** argv_;
  fail_fn fail_;
  int i_ = 0;
  std::string arg_;
  std::string name_;
};

inline double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Bytes this process caused to be written to storage so far (/proc/self/io).
inline uint64_t proc_write_bytes() {
  std::ifstream in("/proc/self/io");
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value)
    if (key == "write_bytes:")
      return value;
  return 0;
}

/// CPU seconds (user + system) per thread of this process, by thread id.
inline std::map<long, double> thread_cpu() {
  namespace fs = std::filesystem;
  std::map<long, double> result;
  auto ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (auto& entry : fs::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(entry.path() / "stat");
    std::string line;
    std::getline(in, line);
    auto close = line.rfind(')');
    if (close == std::string::npos)
      continue;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    std::vector<std::string> fields;
    while (rest >> field)
      fields.push_back(field);
    // After "pid (comm) ": state is field 3 of the man page = index 0 here; utime and
    // stime are fields 14 and 15 = indexes 11 and 12.
    if (fields.size() > 12)
      result[std::stol(entry.path().filename().string())]
        = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
  }
  return result;
}

/// The name (comm) of each thread of this process, by thread id. CAF 0.17.6 names its
/// workers "caf.multiplexer" and its timer thread "caf.clock"; detached actors and the
/// main thread keep the program's name.
inline std::map<long, std::string> thread_names() {
  namespace fs = std::filesystem;
  std::map<long, std::string> result;
  std::error_code ec;
  for (auto& entry : fs::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(entry.path() / "comm");
    std::string name;
    std::getline(in, name);
    result[std::stol(entry.path().filename().string())] = name;
  }
  return result;
}

/// CPU seconds of the calling thread.
inline double thread_cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

inline long current_tid() {
  return static_cast<long>(syscall(SYS_gettid));
}

/// The value at fraction `p` (0..1) of an ascending vector; 0 when empty.
inline uint64_t percentile(const std::vector<uint64_t>& sorted, double p) {
  if (sorted.empty())
    return 0;
  auto idx = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(idx, sorted.size() - 1)];
}

/// Opens an LMDB journal or exits the program with a message.
inline std::shared_ptr<evident::lmdb_journal> open_journal(const std::string& path,
                                                          evident::durability sync) {
  evident::journal_options opts;
  opts.path = path;
  opts.sync = sync;
  auto j = evident::lmdb_journal::open(opts);
  if (!j) {
    std::cerr << "cannot open journal in " << path << ": " << evident::to_string(j.err())
              << "\n";
    std::exit(1);
  }
  return std::move(*j);
}

// -- a pass-through journal that tells where the writer thread spends its time -------

/// Forwards everything to `inner`; records the thread that calls append_batch (the
/// journal writer's) and the CPU time it spends inside it.
class probe_journal final : public evident::journal {
public:
  explicit probe_journal(std::shared_ptr<evident::journal> inner) : inner_(std::move(inner)) {
    // nop
  }

  std::atomic<long> writer_tid{0};
  std::atomic<double> batch_cpu_s{0};

  evident::expected<evident::append_result> append(const evident::append_request& req) override {
    return inner_->append(req);
  }
  std::vector<evident::expected<evident::append_result>>
  append_batch(std::span<const evident::append_request> reqs) override {
    return timed([&] { return inner_->append_batch(reqs); });
  }
  // The journal writer commits with these (one flush per commit when commits follow
  // each other); forwarded so that the benchmark measures what the runtime does.
  std::vector<evident::expected<evident::append_result>>
  append_batch_deferred(std::span<const evident::append_request> reqs) override {
    return timed([&] { return inner_->append_batch_deferred(reqs); });
  }
  bool defers_durability() const noexcept override {
    return inner_->defers_durability();
  }
  evident::status sync() override {
    return inner_->sync();
  }
  evident::status read_stream(const std::string& s, const evident::read_options& o,
                              const evident::event_visitor& f) override {
    return inner_->read_stream(s, o, f);
  }
  evident::status read_all(uint64_t from, uint64_t n, const evident::event_visitor& f) override {
    return inner_->read_all(from, n, f);
  }
  evident::expected<evident::stream_head> head(const std::string& s) override {
    return inner_->head(s);
  }
  evident::expected<std::vector<evident::stream_head>> streams() override {
    return inner_->streams();
  }
  evident::expected<uint64_t> last_position() override {
    return inner_->last_position();
  }
  evident::expected<std::optional<evident::append_result>>
  find_command(const std::string& s, const std::string& command_id) override {
    return inner_->find_command(s, command_id);
  }
  evident::status delete_to(const std::string& s, uint64_t n) override {
    return inner_->delete_to(s, n);
  }
  evident::status truncate_before(const std::string& s, uint64_t n) override {
    return inner_->truncate_before(s, n);
  }
  evident::status soft_delete(const std::string& s) override {
    return inner_->soft_delete(s);
  }
  evident::status tombstone(const std::string& s) override {
    return inner_->tombstone(s);
  }

private:
  template <class F>
  std::vector<evident::expected<evident::append_result>> timed(F commit) {
    if (writer_tid.load(std::memory_order_relaxed) == 0)
      writer_tid = current_tid();
    auto c0 = thread_cpu_now();
    auto result = commit();
    batch_cpu_s = batch_cpu_s.load(std::memory_order_relaxed) + (thread_cpu_now() - c0);
    return result;
  }

  std::shared_ptr<evident::journal> inner_;
};

} // namespace evident::bench
