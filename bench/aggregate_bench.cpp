// aggregate_bench: commands end to end through the aggregate router and aggregate
// actors into a durable LMDB journal (group commit), compared with the journal writer
// alone on the same workload; one hot aggregate; recovery of a 100,000-event stream with
// and without a snapshot; memory per idle aggregate and cold activations per second.
// Prints human-readable lines, and as the LAST line one JSON object with the figures.
//
// Phases (each in a fresh directory under --dir, with its own actor system, journal and
// writer; scheduler.max-threads 2; durability fsync_each_commit unless --sync):
//
//   journal     --commands appends of one event each (the event a command of the counter
//               aggregate below produces, reply metadata included) over --aggregates
//               streams from --clients producers, one append in flight each, exact
//               expected versions: the journal writer alone.
//   aggregates  the same workload as commands: --commands deposits to --aggregates
//               aggregates from --clients client actors, one command in flight each;
//               each client owns aggregates (round-robin), so each aggregate sees one
//               command at a time, like each stream in the journal phase.
//   hot         --hot-commands deposits to ONE aggregate from --clients clients, one
//               command in flight each (the aggregate pipelines up to max_in_flight).
//   recovery    streams of --recovery-events events written beforehand straight into
//               the journal (the spec's event encoding); for each of --recovery-reps
//               streams, a fresh router gets one deposit and the time to its reply is
//               taken; once without a snapshot (spec policy every_events = 0, none
//               stored) and once with one every 1,000 events (policy 1,000; a snapshot
//               at the last multiple of 1,000 is stored). The median is reported.
//   idle        first command to --idle-aggregates distinct cold aggregates (empty
//               streams) from --clients clients: activations per second; then the
//               memory those aggregates hold while idle (idle timeout 30 min, max_active
//               above their number), as a malloc in-use delta (glibc mallinfo2: arena
//               bytes in use + mmapped chunks) and as an RSS delta (/proc/self/statm
//               resident - shared, i.e. anonymous memory, after malloc_trim), taken
//               right after the last reply and again after the aggregates' request
//               timeouts left CAF's actor clock (append_timeout + 1.5 s).
//
// Clients are event-based CAF actors. --client-mode send (default): a plain `send` to
// the router; the aggregate's reply comes back as an ordinary message, an error reply
// at the client's error handler (CAF 0.17.6 routes a message holding only an error
// there; its default handler would terminate the client), and a 1 s tick per client
// resends a command whose reply is overdue (--request-timeout, default 30 s).
// --client-mode request: `request(router, timeout, ...).then(...)`; in CAF 0.17.6 each
// request leaves a timeout entry in the actor clock until it expires (see
// journal_writer.hpp), so send is the cheaper client. Errors (overloaded, receiver
// down, timeouts, ...) are counted and the command is retried (after 1 ms for
// overloaded, 5 ms for others, doubling with each error in a row up to 64x; at once
// after a bounce or a timeout); a client that meets 1,000 errors in a row gives up and
// fails the phase. Replies carry a per-client token, so a late reply to a resent
// command is recognized and ignored. --idle-timeout-ms (default 30 min; 0 = none) and
// --policy exist for experiments.
//
// Each phase has a time limit (--phase-timeout, default 300 s): clients that have not
// finished by then fail the run (exit 1, with the replies and errors counted so far);
// a watchdog ends the program (exit 3) if a phase's setup or shutdown hangs. The run
// directory is removed in every case unless --keep.
//
// Usage: aggregate_bench [--dir PARENT] [--commands N] [--aggregates N] [--clients N]
//                        [--hot-commands N] [--recovery-events N] [--recovery-reps N]
//                        [--idle-aggregates N] [--client-mode send|request]
//                        [--request-timeout S] [--phase-timeout S] [--idle-timeout-ms MS]
//                        [--phases journal,aggregates,hot,recovery,idle]
//                        [--sync MODE] [--policy stealing|sharing] [--keep]

#include "bench_util.hpp"

#include "evident/actors/aggregate.hpp"
#include "evident/actors/aggregate_router.hpp"
#include "evident/actors/atoms.hpp"
#include "evident/actors/defaults.hpp"
#include "evident/actors/effect.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/journal_writer.hpp"
#include "evident/actors/message_types.hpp"
#include "evident/actors/snapshot_writer.hpp"
#include "evident/persistence/lmdb_journal.hpp"
#include "evident/persistence/snapshot_store.hpp"
#include "evident/runtime/defaults.hpp"

#include <caf/all.hpp>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <any>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// -- the aggregate under test -----------------------------------------------------------

namespace benchspec {

struct deposited {
  int64_t amount = 0;
  MSGPACK_DEFINE(amount)
};

using counter_event = std::variant<deposited>;

struct counter_state {
  int64_t balance = 0;
  uint64_t applied = 0;
  MSGPACK_DEFINE(balance, applied)
};

struct deposit {
  int64_t amount = 1;
  /// Echoed in the reply: lets a client tell a late reply from the current one.
  uint64_t token = 0;
};

struct query {
  uint64_t token = 0;
};

using counter_command = std::variant<deposit, query>;

struct counter_reply {
  int64_t balance = 0;
  uint64_t applied = 0;
  uint64_t token = 0;
  MSGPACK_DEFINE(balance, applied, token)
};

/// A counter: every deposit persists one event; the reply (stored in the event's
/// metadata by the runtime) is the new balance. Snapshots every 1,000 events (the
/// runtime's default policy).
struct counter_aggregate {
  using state = counter_state;
  using command = counter_command;
  using event = counter_event;
  using reply = counter_reply;

  static constexpr std::string_view name = "counter";
  static constexpr evident::snapshot_policy snapshots{.every_events = 1'000, .keep_last = 2};

  static void register_events(evident::type_registry<event>& r) {
    r.add<deposited>("bench.deposited");
  }

  static evident::effect<state, event, reply> decide(const state& s, const command& c) {
    if (const auto* d = std::get_if<deposit>(&c)) {
      auto token = d->token;
      return evident::persist(deposited{d->amount}).then_reply([token](const state& now) {
        return counter_reply{now.balance, now.applied, token};
      });
    }
    return evident::reply(counter_reply{s.balance, s.applied, std::get<query>(c).token});
  }

  static state apply(state s, const event& e) {
    s.balance += std::get<deposited>(e).amount;
    ++s.applied;
    return s;
  }
};

/// The same counter without snapshots (recovery replays the whole stream).
struct counter_no_snapshots : counter_aggregate {
  static constexpr std::string_view name = "counter_nosnap";
  static constexpr evident::snapshot_policy snapshots{.every_events = 0, .keep_last = 1};
};

} // namespace benchspec

// -- messages between the bench's actors ------------------------------------------------

namespace {

/// What one client (or producer) reports when it is done.
struct client_report {
  std::vector<uint64_t> latency_ns;
  uint64_t replies = 0;
  uint64_t overloaded = 0;
  uint64_t receiver_down = 0;
  uint64_t timeouts = 0;
  uint64_t conflicts = 0;
  uint64_t other_errors = 0;
  uint64_t late_replies = 0;
  uint64_t retries = 0;
  std::string first_error;
  bool gave_up = false;
};

/// Updated by every client as it goes (relaxed atomics), so that a phase that runs out
/// of time can say how far it got.
struct live_counters {
  std::atomic<uint64_t> replies{0};
  std::atomic<uint64_t> errors{0};
};

using live_ptr = std::shared_ptr<live_counters>;

} // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(client_report)

namespace {

using evident::bench::clock_type;
using evident::bench::percentile;
using evident::bench::probe_journal;
using evident::bench::seconds_since;

using go_atom = caf::atom_constant<caf::atom("go")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using probe_atom = caf::atom_constant<caf::atom("probe")>;

constexpr uint32_t max_consecutive_errors = 1'000;

// -- command line -----------------------------------------------------------------------

struct config {
  std::string dir;
  uint64_t commands = 1'000'000;
  uint64_t aggregates = 10'000;
  uint64_t clients = 1'000;
  uint64_t hot_commands = 200'000;
  uint64_t recovery_events = 100'000;
  uint64_t recovery_reps = 3;
  uint64_t idle_aggregates = 100'000;
  bool use_request = false;
  uint64_t request_timeout_s = 30;
  uint64_t phase_timeout_s = 300;
  /// Aggregates' idle timeout (0 = none: no CAF receive timeout per aggregate).
  uint64_t idle_timeout_ms = 30 * 60 * 1'000;
  std::set<std::string> phases{"journal", "aggregates", "hot", "recovery", "idle"};
  evident::durability sync = evident::durability::fsync_each_commit;
  std::string policy = "stealing";
  bool keep = false;

  bool run(const std::string& phase) const {
    return phases.count(phase) > 0;
  }
};

[[noreturn]] void usage(const std::string& msg) {
  std::cerr << "aggregate_bench: " << msg << "\n"
            << "usage: aggregate_bench [--dir PARENT] [--commands N] [--aggregates N] "
               "[--clients N] [--hot-commands N] [--recovery-events N] [--recovery-reps N] "
               "[--idle-aggregates N] [--client-mode send|request] [--request-timeout S] "
               "[--phase-timeout S] [--idle-timeout-ms MS] [--phases journal,aggregates,hot,recovery,idle] "
               "[--sync fsync_each_commit|no_meta_sync|no_sync] [--policy stealing|sharing] "
               "[--keep]\n";
  std::exit(2);
}

config parse(int argc, char** argv) {
  config cfg;
  evident::bench::arg_cursor args{argc, argv, [](const std::string& msg) { usage(msg); }};
  auto value = [&] { return args.value(); };
  auto number = [&] { return args.number(); };
  while (args.next()) {
    auto& name = args.name();
    if (name == "--dir")
      cfg.dir = value();
    else if (name == "--commands")
      cfg.commands = number();
    else if (name == "--aggregates")
      cfg.aggregates = number();
    else if (name == "--clients")
      cfg.clients = number();
    else if (name == "--hot-commands")
      cfg.hot_commands = number();
    else if (name == "--recovery-events")
      cfg.recovery_events = number();
    else if (name == "--recovery-reps")
      cfg.recovery_reps = number();
    else if (name == "--idle-aggregates")
      cfg.idle_aggregates = number();
    else if (name == "--client-mode") {
      auto v = value();
      if (v != "send" && v != "request")
        usage("--client-mode is send or request");
      cfg.use_request = v == "request";
    } else if (name == "--request-timeout")
      cfg.request_timeout_s = number();
    else if (name == "--phase-timeout")
      cfg.phase_timeout_s = number();
    else if (name == "--idle-timeout-ms")
      cfg.idle_timeout_ms = number();
    else if (name == "--phases") {
      cfg.phases.clear();
      std::istringstream in(value());
      std::string p;
      while (std::getline(in, p, ',')) {
        if (p != "journal" && p != "aggregates" && p != "hot" && p != "recovery" && p != "idle")
          usage("unknown phase " + p);
        cfg.phases.insert(p);
      }
    } else if (name == "--sync") {
      cfg.sync = args.durability();
    } else if (name == "--policy") {
      cfg.policy = value();
      if (cfg.policy != "stealing" && cfg.policy != "sharing")
        usage("--policy is stealing or sharing");
    } else if (name == "--keep")
      cfg.keep = true;
    else if (name == "--help" || name == "-h")
      usage("help");
    else
      usage("unknown option " + args.arg());
  }
  if (cfg.commands == 0 || cfg.aggregates == 0 || cfg.clients == 0 || cfg.hot_commands == 0
      || cfg.recovery_events == 0 || cfg.recovery_reps == 0 || cfg.idle_aggregates == 0
      || cfg.request_timeout_s == 0 || cfg.phase_timeout_s == 0)
    usage("counts and timeouts must be positive");
  return cfg;
}

// -- failing and the watchdog -----------------------------------------------------------

// The run's directory, removed on success and on failure (unless --keep).
fs::path g_root;
bool g_keep = false;

void remove_root() {
  if (g_keep || g_root.empty())
    return;
  std::error_code ec;
  fs::remove_all(g_root, ec);
}

// Ends the program at once: actors may still run (and ~actor_system would wait for
// them), so no destructors.
[[noreturn]] void fail(const std::string& msg) {
  std::cout.flush();
  std::cerr << "aggregate_bench: FAILED: " << msg << std::endl;
  remove_root();
  std::_Exit(1);
}

/// Kills the program when a phase (setup and shutdown included) overruns its limit.
class watchdog {
public:
  watchdog() : thread_([this] { loop(); }) {
    // nop
  }
  ~watchdog() {
    {
      std::lock_guard guard{mtx_};
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void arm(std::string what, std::chrono::seconds limit) {
    std::lock_guard guard{mtx_};
    what_ = std::move(what);
    limit_ = limit;
    deadline_ = clock_type::now() + limit;
    cv_.notify_all();
  }
  void disarm() {
    std::lock_guard guard{mtx_};
    deadline_.reset();
  }

private:
  void loop() {
    std::unique_lock guard{mtx_};
    for (;;) {
      if (quit_)
        return;
      if (!deadline_) {
        cv_.wait(guard);
        continue;
      }
      if (clock_type::now() >= *deadline_) {
        std::cout.flush();
        std::cerr << "aggregate_bench: FAILED: phase '" << what_ << "' did not finish within "
                  << limit_.count() << " s (setup and shutdown included); giving up"
                  << std::endl;
        remove_root();
        std::_Exit(3);
      }
      cv_.wait_until(guard, *deadline_);
    }
  }

  std::mutex mtx_;
  std::condition_variable cv_;
  std::optional<clock_type::time_point> deadline_;
  std::string what_;
  std::chrono::seconds limit_{0};
  bool quit_ = false;
  std::thread thread_;
};

// -- the machine ------------------------------------------------------------------------

/// /proc/loadavg's 1, 5 and 15 minute load averages (another busy process on these two
/// cores, or on the disk, shows here and skews every figure).
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

/// Median microseconds of a 4 KiB pwrite + fdatasync in `dir` (20 rounds): the floor
/// of one durable commit (LMDB syncs twice per commit). 0 when the probe fails.
double fdatasync_us(const fs::path& dir) {
  auto path = (dir / "fsync-probe").string();
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0)
    return 0;
  std::vector<char> buf(4096, 'x');
  std::vector<double> us;
  for (int i = 0; i < 20; ++i) {
    auto t0 = clock_type::now();
    if (::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(i) * 4096) < 0
        || ::fdatasync(fd) != 0)
      break;
    us.push_back(seconds_since(t0) * 1e6);
  }
  ::close(fd);
  ::unlink(path.c_str());
  if (us.empty())
    return 0;
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

// -- memory -----------------------------------------------------------------------------

struct memory_sample {
  uint64_t malloc_in_use = 0; // mallinfo2: uordblks + hblkhd
  uint64_t rss_anon = 0;      // statm: (resident - shared) * page size
  uint64_t rss = 0;           // statm: resident * page size
};

memory_sample sample_memory() {
  malloc_trim(0); // return freed memory, so that RSS shows what is held
  memory_sample m;
  auto mi = mallinfo2();
  m.malloc_in_use = mi.uordblks + mi.hblkhd;
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0, shared = 0;
  in >> size >> resident >> shared;
  auto page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  m.rss = resident * page;
  m.rss_anon = (resident - shared) * page;
  return m;
}

double per(int64_t bytes, uint64_t n) {
  return static_cast<double>(bytes) / static_cast<double>(std::max<uint64_t>(n, 1));
}

int64_t delta(uint64_t after, uint64_t before) {
  return static_cast<int64_t>(after) - static_cast<int64_t>(before);
}

// -- CPU per thread group ---------------------------------------------------------------

struct cpu_split {
  double process = 0;
  double writer = 0;
  double workers = 0;
  double clock = 0;
  double other = 0;
};

struct cpu_probe {
  std::map<long, double> before;
  void start() {
    before = evident::bench::thread_cpu();
  }
  cpu_split stop(long writer_tid) const {
    auto after = evident::bench::thread_cpu();
    auto names = evident::bench::thread_names();
    cpu_split out;
    for (auto& [tid, secs] : after) {
      auto i = before.find(tid);
      auto d = secs - (i != before.end() ? i->second : 0.0);
      out.process += d;
      auto& name = names[tid];
      if (tid == writer_tid)
        out.writer += d;
      else if (name == "caf.multiplexer")
        out.workers += d;
      else if (name == "caf.clock")
        out.clock += d;
      else
        out.other += d;
    }
    return out;
  }
};

void print_cpu(const cpu_split& c, double wall, double writer_batch_s) {
  std::printf("  CPU: process %.2f s over %.2f s wall (%.2f of 2 cores); journal writer thread "
              "%.2f s (in append_batch %.2f s); CAF workers %.2f s; CAF clock %.2f s; other "
              "(main, snapshot writer) %.2f s\n",
              c.process, wall, c.process / wall, c.writer, writer_batch_s, c.workers, c.clock,
              c.other);
}

// -- one node: journal, writer, snapshot store, actor system ---------------------------

class node {
public:
  node(const config& cfg, const std::string& path) {
    lj_ = evident::bench::open_journal(path, cfg.sync);
    probe_ = std::make_shared<probe_journal>(lj_);
    snapshots_ = std::make_shared<evident::lmdb_snapshot_store>(lj_->env());
    caf_cfg_ = std::make_unique<caf::actor_system_config>();
    caf_cfg_->set("scheduler.max-threads", 2);
    // As evident::runtime configures CAF (scheduler.max_throughput).
    caf_cfg_->set("scheduler.max-throughput",
                  static_cast<int64_t>(evident::defaults::runtime::scheduler_max_throughput));
    caf_cfg_->set("scheduler.policy", caf::atom_from_string(cfg.policy));
    evident::add_message_types(*caf_cfg_);
    sys_ = std::make_unique<caf::actor_system>(*caf_cfg_);
    evident::group_commit_options gc;
    gc.max_pending = std::max<size_t>(gc.max_pending, cfg.clients + 1'000);
    writer_ = evident::spawn_journal_writer(*sys_, probe_, gc);
  }

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  ~node() {
    stop();
  }

  caf::actor_system& sys() {
    return *sys_;
  }
  const caf::actor& writer() const {
    return writer_;
  }
  evident::lmdb_journal& journal() {
    return *lj_;
  }
  probe_journal& probe() {
    return *probe_;
  }
  long writer_tid() const {
    return probe_->writer_tid.load();
  }

  /// A router over this node's writer, journal and snapshots for `models`.
  caf::actor spawn_router(std::vector<std::shared_ptr<const evident::aggregate_model>> models,
                          evident::aggregate_options opts) {
    evident::aggregate_env env;
    env.writer = writer_;
    env.journal = lj_;
    env.snapshots = snapshots_;
    env.options = opts;
    auto r = evident::spawn_aggregate_router(*sys_, std::move(env), std::move(models));
    routers_.push_back(r);
    return r;
  }

  evident::journal_writer_metrics writer_metrics() {
    evident::journal_writer_metrics m;
    caf::scoped_actor self{*sys_};
    self->request(writer_, std::chrono::seconds(30), evident::metrics_atom::value)
      .receive([&](evident::journal_writer_metrics& x) { m = x; },
               [&](caf::error& e) { fail("writer metrics: " + caf::to_string(e)); });
    return m;
  }

  evident::router_metrics router_metrics(const caf::actor& router) {
    evident::router_metrics m;
    caf::scoped_actor self{*sys_};
    self->request(router, std::chrono::seconds(30), evident::metrics_atom::value)
      .receive([&](evident::router_metrics& x) { m = x; },
               [&](caf::error& e) { fail("router metrics: " + caf::to_string(e)); });
    return m;
  }

  /// Stops one actor (user_shutdown) and waits for it; fails the run after 60 s.
  void stop_actor(const caf::actor& a, const char* what) {
    if (!a)
      return;
    caf::scoped_actor self{*sys_};
    self->monitor(a);
    self->send_exit(a, caf::exit_reason::user_shutdown);
    bool down = false;
    self->receive([&](caf::down_msg&) { down = true; }, caf::after(60s) >> [] {});
    if (!down)
      fail(std::string{"the "} + what + " did not stop within 60 s");
  }

  void stop_router(const caf::actor& r) {
    stop_actor(r, "router");
    routers_.erase(std::remove(routers_.begin(), routers_.end(), r), routers_.end());
  }

  /// Routers first (their aggregates answer what they hold), then the writer, then the
  /// actor system, then LMDB.
  void stop() {
    if (!sys_)
      return;
    for (auto& r : routers_)
      stop_actor(r, "router");
    routers_.clear();
    stop_actor(writer_, "journal writer");
    writer_ = nullptr;
    sys_.reset();
    caf_cfg_.reset();
    snapshots_.reset();
    probe_.reset();
    lj_.reset();
  }

private:
  std::shared_ptr<evident::lmdb_journal> lj_;
  std::shared_ptr<probe_journal> probe_;
  std::shared_ptr<evident::lmdb_snapshot_store> snapshots_;
  std::unique_ptr<caf::actor_system_config> caf_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::actor writer_;
  std::vector<caf::actor> routers_;
};

evident::aggregate_options bench_options(const config& cfg, uint64_t live_aggregates) {
  evident::aggregate_options opts;
  // No passivation during a phase: idle timeout far beyond any phase (30 min unless
  // --idle-timeout-ms), cap above the number of aggregates the phase activates.
  opts.idle_timeout = std::chrono::milliseconds(cfg.idle_timeout_ms);
  opts.max_active = std::max<size_t>(opts.max_active, live_aggregates + 1'000);
  return opts;
}

std::string agg_id(const char* prefix, uint64_t i) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%s%07llu", prefix, static_cast<unsigned long long>(i));
  return buf;
}

// -- error classification ----------------------------------------------------------------

enum class err_kind { overloaded, receiver_down, timeout, conflict, other };

err_kind classify(const caf::error& e) {
  if (e == caf::sec::request_receiver_down)
    return err_kind::receiver_down;
  if (e == caf::sec::request_timeout)
    return err_kind::timeout;
  if (e.category() == evident::errc_category) {
    auto code = evident::from_caf_error(e).code;
    if (code == evident::errc::overloaded)
      return err_kind::overloaded;
    if (code == evident::errc::timeout)
      return err_kind::timeout;
    if (code == evident::errc::wrong_expected_version)
      return err_kind::conflict;
  }
  return err_kind::other;
}

// Counts `e` in `r`; returns the delay before the retry: none for a bounce or a
// timeout, else 1 ms (overloaded) or 5 ms, doubled with each further error in a row
// (`consecutive` counts this one) up to 64 times.
std::chrono::milliseconds count_error(client_report& r, const caf::error& e,
                                      uint32_t consecutive) {
  ++r.retries;
  auto backoff = [consecutive](std::chrono::milliseconds base) {
    return base * (1 << std::min<uint32_t>(consecutive > 0 ? consecutive - 1 : 0, 6));
  };
  switch (classify(e)) {
    case err_kind::overloaded:
      ++r.overloaded;
      return backoff(1ms);
    case err_kind::receiver_down:
      ++r.receiver_down;
      return 0ms;
    case err_kind::timeout:
      ++r.timeouts;
      return 0ms;
    case err_kind::conflict:
      ++r.conflicts;
      break;
    case err_kind::other:
      ++r.other_errors;
      break;
  }
  if (r.first_error.empty())
    r.first_error = caf::to_string(e);
  return backoff(5ms);
}

// -- clients: commands through the router ------------------------------------------------

struct client_plan {
  std::vector<std::string> ids; // round-robin targets
  uint64_t commands = 0;
};

struct client_state {
  client_plan p;
  std::string type;
  caf::actor router;
  caf::actor report;
  bool use_request = false;
  std::chrono::seconds timeout{30};
  uint64_t done = 0;
  uint64_t token = 1; // of the command in flight
  bool waiting = false;
  bool finished = false;
  uint32_t consecutive_errors = 0;
  clock_type::time_point first_sent; // first attempt of the command in flight
  clock_type::time_point last_sent;  // latest attempt
  client_report rep;
  live_ptr live;
};

using client_actor = caf::stateful_actor<client_state>;

void client_finish(client_actor* self) {
  auto& st = self->state;
  st.finished = true;
  st.waiting = false;
  self->send(st.report, done_atom::value, std::move(st.rep));
  self->quit();
}

void client_on_reply(client_actor* self, const evident::reply_box& r);
void client_on_error(client_actor* self, uint64_t token, const caf::error& e);

void client_send(client_actor* self) {
  auto& st = self->state;
  const auto& id = st.p.ids[st.done % st.p.ids.size()];
  st.waiting = true;
  st.last_sent = clock_type::now();
  auto cmd = evident::box_command(benchspec::counter_command{benchspec::deposit{1, st.token}});
  if (!st.use_request) {
    self->send(st.router, evident::command_atom::value, st.type, id, std::string{},
               std::move(cmd));
    return;
  }
  auto token = st.token;
  self
    ->request(st.router, st.timeout, evident::command_atom::value, st.type, id, std::string{},
              std::move(cmd))
    .then([self](evident::reply_box& r) { client_on_reply(self, r); },
          [self, token](caf::error& e) { client_on_error(self, token, e); });
}

void client_next(client_actor* self) {
  auto& st = self->state;
  if (st.done >= st.p.commands) {
    client_finish(self);
    return;
  }
  st.first_sent = clock_type::now();
  client_send(self);
}

void client_on_reply(client_actor* self, const evident::reply_box& r) {
  auto& st = self->state;
  const auto* x = evident::unbox_reply<benchspec::counter_reply>(r);
  if (st.finished)
    return;
  if (x == nullptr) {
    client_on_error(self, st.token,
                    caf::make_error(evident::errc::invalid_input, "reply of another type"));
    return;
  }
  if (!st.waiting || x->token != st.token) {
    ++st.rep.late_replies; // an earlier attempt answered after we resent it
    return;
  }
  auto now = clock_type::now();
  st.rep.latency_ns.push_back(static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(now - st.first_sent).count()));
  ++st.rep.replies;
  st.live->replies.fetch_add(1, std::memory_order_relaxed);
  ++st.done;
  ++st.token;
  st.waiting = false;
  st.consecutive_errors = 0;
  client_next(self);
}

void client_on_error(client_actor* self, uint64_t token, const caf::error& e) {
  auto& st = self->state;
  if (st.finished || !st.waiting || token != st.token)
    return;
  st.live->errors.fetch_add(1, std::memory_order_relaxed);
  auto delay = count_error(st.rep, e, ++st.consecutive_errors);
  if (st.consecutive_errors >= max_consecutive_errors) {
    st.rep.gave_up = true;
    client_finish(self);
    return;
  }
  st.waiting = false; // nothing in flight until the retry
  if (delay.count() == 0)
    client_send(self);
  else
    self->delayed_send(self, delay, retry_atom::value, st.token);
}

caf::behavior client(client_actor* self, client_plan p, std::string type, caf::actor router,
                     caf::actor report, live_ptr live, bool use_request,
                     std::chrono::seconds timeout) {
  auto& st = self->state;
  st.live = std::move(live);
  st.p = std::move(p);
  st.type = std::move(type);
  st.router = std::move(router);
  st.report = std::move(report);
  st.use_request = use_request;
  st.timeout = timeout;
  st.rep.latency_ns.reserve(st.p.commands);
  // send mode: an error answering a plain send arrives at the error handler (CAF 0.17.6
  // routes a message holding only an error there; the default handler terminates the
  // actor), never at a behavior's caf::error handler.
  self->set_error_handler(
    [self](caf::error& e) { client_on_error(self, self->state.token, e); });
  return {
    [self](go_atom) {
      if (!self->state.use_request)
        self->delayed_send(self, 1s, tick_atom::value);
      client_next(self);
    },
    // send mode: the reply arrives as an ordinary message
    [self](evident::reply_box& r) { client_on_reply(self, r); },
    [self](retry_atom, uint64_t token) {
      auto& s = self->state;
      if (!s.finished && !s.waiting && token == s.token)
        client_send(self);
    },
    // send mode: resend a command whose reply is overdue
    [self](tick_atom) {
      auto& s = self->state;
      if (s.finished)
        return;
      if (s.waiting && clock_type::now() - s.last_sent > s.timeout) {
        s.live->errors.fetch_add(1, std::memory_order_relaxed);
        ++s.rep.timeouts;
        ++s.rep.retries;
        if (++s.consecutive_errors >= max_consecutive_errors) {
          s.rep.gave_up = true;
          client_finish(self);
          return;
        }
        client_send(self);
      }
      self->delayed_send(self, 1s, tick_atom::value);
    },
  };
}

// -- producers: appends straight to the journal writer -----------------------------------

struct producer_state {
  std::shared_ptr<const evident::aggregate_model> model;
  std::vector<std::string> streams; // round-robin targets
  std::vector<uint64_t> versions;
  std::vector<std::any> states; // committed state per stream
  uint64_t appends = 0;
  uint64_t done = 0;
  caf::actor writer;
  caf::actor report;
  bool use_request = false;
  std::chrono::seconds timeout{30};
  size_t slot = 0;
  std::any pending; // the state after the append in flight
  evident::append_request req;
  bool waiting = false;
  bool finished = false;
  uint32_t consecutive_errors = 0;
  clock_type::time_point first_sent;
  clock_type::time_point last_sent;
  client_report rep;
  live_ptr live;
};

using producer_actor = caf::stateful_actor<producer_state>;

void producer_finish(producer_actor* self) {
  auto& st = self->state;
  st.finished = true;
  st.waiting = false;
  self->send(st.report, done_atom::value, std::move(st.rep));
  self->quit();
}

void producer_on_result(producer_actor* self, const evident::append_result& r);
void producer_on_error(producer_actor* self, uint64_t done, const caf::error& e);

void producer_send(producer_actor* self) {
  auto& st = self->state;
  st.waiting = true;
  st.last_sent = clock_type::now();
  auto req = st.req; // kept for a retry; the writer takes the copy
  if (!st.use_request) {
    self->send(st.writer, evident::append_atom::value, std::move(req));
    return;
  }
  auto done = st.done;
  self->request(st.writer, st.timeout, evident::append_atom::value, std::move(req))
    .then([self](evident::append_result& r) { producer_on_result(self, r); },
          [self, done](caf::error& e) { producer_on_error(self, done, e); });
}

void producer_next(producer_actor* self) {
  auto& st = self->state;
  if (st.done >= st.appends) {
    producer_finish(self);
    return;
  }
  // What an aggregate does per command: decide against the state, one event with the
  // reply in its metadata, exact expected version.
  st.slot = st.done % st.streams.size();
  st.pending = st.model->copy_state(st.states[st.slot]);
  std::any cmd = benchspec::counter_command{benchspec::deposit{1, st.done + 1}};
  auto d = st.model->decide(st.pending, cmd);
  if (!d) {
    st.rep.first_error = "decide failed: " + evident::to_string(d.err());
    st.rep.gave_up = true;
    producer_finish(self);
    return;
  }
  st.req = evident::append_request{};
  st.req.stream = st.streams[st.slot];
  st.req.expected = evident::expected_version::exact(st.versions[st.slot]);
  st.req.events = std::move(d->events);
  st.first_sent = clock_type::now();
  producer_send(self);
}

void producer_on_result(producer_actor* self, const evident::append_result& r) {
  auto& st = self->state;
  if (st.finished || !st.waiting)
    return;
  auto now = clock_type::now();
  st.rep.latency_ns.push_back(static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(now - st.first_sent).count()));
  ++st.rep.replies;
  st.live->replies.fetch_add(1, std::memory_order_relaxed);
  st.versions[st.slot] = r.last_version;
  st.states[st.slot] = std::move(st.pending);
  ++st.done;
  st.waiting = false;
  st.consecutive_errors = 0;
  producer_next(self);
}

void producer_on_error(producer_actor* self, uint64_t done, const caf::error& e) {
  auto& st = self->state;
  if (st.finished || !st.waiting || done != st.done)
    return;
  st.live->errors.fetch_add(1, std::memory_order_relaxed);
  auto delay = count_error(st.rep, e, ++st.consecutive_errors);
  if (st.consecutive_errors >= max_consecutive_errors) {
    st.rep.gave_up = true;
    producer_finish(self);
    return;
  }
  st.waiting = false;
  if (delay.count() == 0)
    producer_send(self);
  else
    self->delayed_send(self, delay, retry_atom::value, st.done);
}

caf::behavior producer(producer_actor* self, std::shared_ptr<const evident::aggregate_model> model,
                       std::vector<std::string> streams, uint64_t appends, caf::actor writer,
                       caf::actor report, live_ptr live, bool use_request,
                       std::chrono::seconds timeout) {
  auto& st = self->state;
  st.live = std::move(live);
  st.versions.assign(streams.size(), 0);
  for (size_t i = 0; i < streams.size(); ++i)
    st.states.push_back(model->initial_state());
  st.model = std::move(model);
  st.streams = std::move(streams);
  st.appends = appends;
  st.writer = std::move(writer);
  st.report = std::move(report);
  st.use_request = use_request;
  st.timeout = timeout;
  st.rep.latency_ns.reserve(appends);
  // send mode: errors arrive at the error handler (see client()).
  self->set_error_handler(
    [self](caf::error& e) { producer_on_error(self, self->state.done, e); });
  return {
    [self](go_atom) {
      if (!self->state.use_request)
        self->delayed_send(self, 1s, tick_atom::value);
      producer_next(self);
    },
    [self](evident::append_result& r) { producer_on_result(self, r); },
    [self](retry_atom, uint64_t done) {
      auto& s = self->state;
      if (!s.finished && !s.waiting && done == s.done)
        producer_send(self);
    },
    [self](tick_atom) {
      auto& s = self->state;
      if (s.finished)
        return;
      if (s.waiting && clock_type::now() - s.last_sent > s.timeout) {
        // A resend of an append that did commit meets a conflict: counted, and the
        // producer gives up on it after max_consecutive_errors.
        ++s.rep.timeouts;
        ++s.rep.retries;
        if (++s.consecutive_errors >= max_consecutive_errors) {
          s.rep.gave_up = true;
          producer_finish(self);
          return;
        }
        producer_send(self);
      }
      self->delayed_send(self, 1s, tick_atom::value);
    },
  };
}

// -- running a set of clients ------------------------------------------------------------

struct run_figures {
  double seconds = 0;
  uint64_t replies = 0;
  std::vector<uint64_t> latency_ns; // sorted
  client_report errors;             // summed counters (latency_ns unused)
  uint64_t gave_up = 0;
  cpu_split cpu;
  double writer_batch_s = 0;

  double rate() const {
    return static_cast<double>(replies) / seconds;
  }
  double p(double q) const {
    return static_cast<double>(percentile(latency_ns, q)) / 1e6;
  }
  double max_ms() const {
    return latency_ns.empty() ? 0.0 : static_cast<double>(latency_ns.back()) / 1e6;
  }
  uint64_t error_count() const {
    return errors.overloaded + errors.receiver_down + errors.timeouts + errors.conflicts
           + errors.other_errors;
  }
};

/// Sends `go` to every actor `spawn(i, report, live)` returns (one per worker), waits for their
/// reports (at most `limit`), and sums them up. Fails the run on a timeout or when a
/// client gave up.
template <class Spawn>
run_figures run_workers(node& n, size_t count, Spawn spawn, std::chrono::seconds limit,
                        const char* what) {
  run_figures fig;
  caf::scoped_actor self{n.sys()};
  auto report = caf::actor_cast<caf::actor>(self);
  auto live = std::make_shared<live_counters>();
  std::vector<caf::actor> workers;
  workers.reserve(count);
  for (size_t i = 0; i < count; ++i)
    workers.push_back(spawn(i, report, live));
  cpu_probe cpu;
  cpu.start();
  auto batch0 = n.probe().batch_cpu_s.load();
  auto t0 = clock_type::now();
  for (auto& w : workers)
    caf::anon_send(w, go_atom::value);
  workers.clear();
  auto deadline = t0 + limit;
  size_t received = 0;
  std::string first_error;
  while (received < count) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0)
      break;
    bool got = false;
    self->receive(
      [&](done_atom, client_report& r) {
        got = true;
        ++received;
        fig.replies += r.replies;
        fig.latency_ns.insert(fig.latency_ns.end(), r.latency_ns.begin(), r.latency_ns.end());
        fig.errors.overloaded += r.overloaded;
        fig.errors.receiver_down += r.receiver_down;
        fig.errors.timeouts += r.timeouts;
        fig.errors.conflicts += r.conflicts;
        fig.errors.other_errors += r.other_errors;
        fig.errors.late_replies += r.late_replies;
        fig.errors.retries += r.retries;
        if (r.gave_up)
          ++fig.gave_up;
        if (first_error.empty() && !r.first_error.empty())
          first_error = r.first_error;
      },
      caf::after(left) >> [] {});
    (void)got;
  }
  fig.seconds = seconds_since(t0);
  fig.cpu = cpu.stop(n.writer_tid());
  fig.writer_batch_s = n.probe().batch_cpu_s.load() - batch0;
  fig.errors.first_error = first_error;
  if (received < count)
    fail(std::string{what} + ": " + std::to_string(count - received) + " of "
         + std::to_string(count) + " clients did not finish within " + std::to_string(limit.count())
         + " s (" + std::to_string(live->replies.load()) + " replies and "
         + std::to_string(live->errors.load()) + " errors so far; first error reported: "
         + (first_error.empty() ? "none" : first_error) + ")");
  if (fig.gave_up > 0)
    fail(std::string{what} + ": " + std::to_string(fig.gave_up) + " clients gave up after "
         + std::to_string(max_consecutive_errors) + " errors in a row; first error: " + first_error);
  std::sort(fig.latency_ns.begin(), fig.latency_ns.end());
  return fig;
}

void print_errors(const run_figures& f) {
  auto& e = f.errors;
  std::printf("  errors (each retried): overloaded %llu, receiver down %llu, timeouts %llu, "
              "conflicts %llu, other %llu; retries %llu; late replies ignored %llu%s%s\n",
              static_cast<unsigned long long>(e.overloaded),
              static_cast<unsigned long long>(e.receiver_down),
              static_cast<unsigned long long>(e.timeouts),
              static_cast<unsigned long long>(e.conflicts),
              static_cast<unsigned long long>(e.other_errors),
              static_cast<unsigned long long>(e.retries),
              static_cast<unsigned long long>(e.late_replies),
              e.first_error.empty() ? "" : "; first: ", e.first_error.c_str());
}

void print_latency(const char* what, const run_figures& f) {
  std::printf("  %s latency: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
              what, f.p(0.50), f.p(0.90), f.p(0.99), f.p(0.999), f.max_ms());
}

void print_writer(const evident::journal_writer_metrics& m, double seconds) {
  auto avg = m.batches ? static_cast<double>(m.events) / static_cast<double>(m.batches) : 0.0;
  auto avg_appends
    = m.batches ? static_cast<double>(m.appends) / static_cast<double>(m.batches) : 0.0;
  std::printf("  journal writer: %llu appends, %llu events, %llu commits (avg %.1f events, "
              "%.1f appends per commit, largest %llu events); time in append_batch %.3f s "
              "(%.0f%% of wall), avg %.0f us/commit; overloaded %llu, failed %llu\n",
              static_cast<unsigned long long>(m.appends), static_cast<unsigned long long>(m.events),
              static_cast<unsigned long long>(m.batches), avg, avg_appends,
              static_cast<unsigned long long>(m.largest_batch_events), m.commit_ns / 1e9,
              100.0 * (m.commit_ns / 1e9) / seconds,
              m.batches ? m.commit_ns / 1e3 / static_cast<double>(m.batches) : 0.0,
              static_cast<unsigned long long>(m.overloaded),
              static_cast<unsigned long long>(m.failed));
}

void print_router(const evident::router_metrics& m) {
  std::printf("  router: %llu active, %llu activations, %llu commands, %llu events, %llu "
              "stash overflows, %llu rejections, %llu conflicts, %llu stops, %llu "
              "passivations, %llu snapshots; recoveries %llu (avg %.2f ms, max %.2f ms)\n",
              static_cast<unsigned long long>(m.active),
              static_cast<unsigned long long>(m.activations),
              static_cast<unsigned long long>(m.commands), static_cast<unsigned long long>(m.events),
              static_cast<unsigned long long>(m.stash_overflows),
              static_cast<unsigned long long>(m.rejections),
              static_cast<unsigned long long>(m.conflicts), static_cast<unsigned long long>(m.stops),
              static_cast<unsigned long long>(m.passivations),
              static_cast<unsigned long long>(m.snapshots),
              static_cast<unsigned long long>(m.recoveries),
              m.recoveries ? m.recovery_ns_total / 1e6 / static_cast<double>(m.recoveries) : 0.0,
              m.recovery_ns_max / 1e6);
}

/// Splits `total` commands over `clients`, each with the ids `ids_of(client)`.
std::vector<client_plan> split_commands(uint64_t total, uint64_t clients,
                                        const std::function<std::vector<std::string>(uint64_t)>& ids_of) {
  std::vector<client_plan> plans(clients);
  for (uint64_t c = 0; c < clients; ++c) {
    plans[c].ids = ids_of(c);
    plans[c].commands = total / clients + (c < total % clients ? 1 : 0);
  }
  return plans;
}

/// Aggregate ids (or streams) 0..n-1 dealt round-robin to `clients`: client c owns
/// c, c + clients, c + 2 clients, ...
std::vector<std::string> owned(uint64_t c, uint64_t clients, uint64_t n, const char* prefix) {
  std::vector<std::string> ids;
  for (uint64_t i = c; i < n; i += clients)
    ids.push_back(agg_id(prefix, i));
  if (ids.empty()) // more clients than aggregates: share
    ids.push_back(agg_id(prefix, c % n));
  return ids;
}

std::chrono::seconds phase_limit(const config& cfg) {
  return std::chrono::seconds(cfg.phase_timeout_s);
}

// -- results --------------------------------------------------------------------------

struct results {
  std::optional<double> journal_events_per_s;
  std::optional<double> journal_p50_ms;
  std::optional<double> journal_p99_ms;
  std::optional<double> commands_per_s;
  std::optional<double> p50_ms;
  std::optional<double> p99_ms;
  std::optional<double> p999_ms;
  std::optional<double> max_ms;
  std::optional<uint64_t> command_errors;
  std::optional<double> hot_commands_per_s;
  std::optional<double> hot_p99_ms;
  std::optional<double> recovery_ms;
  std::optional<double> recovery_snapshot_ms;
  std::optional<double> bytes_per_idle_aggregate;
  std::optional<double> bytes_per_idle_aggregate_rss;
  std::optional<double> bytes_per_idle_aggregate_journal;
  std::optional<double> activations_per_s;
};

// -- phase 1: the journal writer alone ---------------------------------------------------

void phase_journal(const config& cfg, const fs::path& root, watchdog& wd, results& res) {
  wd.arm("journal", phase_limit(cfg) + 60s);
  auto dir = root / "journal";
  {
    node n{cfg, dir.string()};
    auto model = evident::make_model<benchspec::counter_aggregate>();
    auto clients = std::min(cfg.clients, cfg.commands);
    auto plans = split_commands(cfg.commands, clients, [&](uint64_t c) {
      auto ids = owned(c, clients, cfg.aggregates, "a");
      for (auto& id : ids)
        id = model->stream_of(id);
      return ids;
    });
    auto fig = run_workers(
      n, plans.size(),
      [&](size_t i, const caf::actor& report, const live_ptr& live) {
        return n.sys().spawn(producer, model, plans[i].ids, plans[i].commands, n.writer(), report,
                             live, cfg.use_request, std::chrono::seconds(cfg.request_timeout_s));
      },
      phase_limit(cfg), "journal phase");
    auto wm = n.writer_metrics();
    std::printf("[journal] group-commit journal alone: %llu appends of one event from %llu "
                "producers (one in flight each, exact expected versions) over %llu streams: "
                "%.3f s -> %.0f events/s\n",
                static_cast<unsigned long long>(fig.replies),
                static_cast<unsigned long long>(clients),
                static_cast<unsigned long long>(cfg.aggregates), fig.seconds, fig.rate());
    print_latency("append", fig);
    print_errors(fig);
    print_writer(wm, fig.seconds);
    print_cpu(fig.cpu, fig.seconds, fig.writer_batch_s);
    res.journal_events_per_s = fig.rate();
    res.journal_p50_ms = fig.p(0.5);
    res.journal_p99_ms = fig.p(0.99);
  }
  if (!cfg.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  wd.disarm();
}

// -- phase 2: commands through router and aggregates -------------------------------------

void phase_aggregates(const config& cfg, const fs::path& root, watchdog& wd, results& res) {
  wd.arm("aggregates", phase_limit(cfg) + 60s);
  auto dir = root / "aggregates";
  {
    node n{cfg, dir.string()};
    auto router = n.spawn_router({evident::make_model<benchspec::counter_aggregate>()},
                                 bench_options(cfg, cfg.aggregates));
    auto clients = std::min(cfg.clients, cfg.commands);
    auto plans = split_commands(cfg.commands, clients, [&](uint64_t c) {
      return owned(c, clients, cfg.aggregates, "a");
    });
    auto type = std::string{benchspec::counter_aggregate::name};
    auto fig = run_workers(
      n, plans.size(),
      [&](size_t i, const caf::actor& report, const live_ptr& live) {
        return n.sys().spawn(client, plans[i], type, router, report, live, cfg.use_request,
                             std::chrono::seconds(cfg.request_timeout_s));
      },
      phase_limit(cfg), "aggregates phase");
    auto wm = n.writer_metrics();
    auto rm = n.router_metrics(router);
    std::printf("[aggregates] %llu commands (one event each) from %llu clients (one in flight "
                "each, %s) to %llu aggregates through the router: %.3f s -> %.0f commands/s\n",
                static_cast<unsigned long long>(fig.replies),
                static_cast<unsigned long long>(clients),
                cfg.use_request ? "request().then" : "plain send",
                static_cast<unsigned long long>(cfg.aggregates), fig.seconds, fig.rate());
    print_latency("command", fig);
    print_errors(fig);
    print_writer(wm, fig.seconds);
    print_router(rm);
    print_cpu(fig.cpu, fig.seconds, fig.writer_batch_s);
    if (rm.events != cfg.commands)
      std::printf("  NOTE: %llu events committed through aggregates, %llu commands sent "
                  "(resent commands after timeouts add events)\n",
                  static_cast<unsigned long long>(rm.events),
                  static_cast<unsigned long long>(cfg.commands));
    res.commands_per_s = fig.rate();
    res.p50_ms = fig.p(0.5);
    res.p99_ms = fig.p(0.99);
    res.p999_ms = fig.p(0.999);
    res.max_ms = fig.max_ms();
    res.command_errors = fig.error_count();
    if (res.journal_events_per_s)
      std::printf("  actor overhead: %.0f commands/s through aggregates vs %.0f events/s "
                  "through the journal writer alone = %.2f x\n",
                  fig.rate(), *res.journal_events_per_s, fig.rate() / *res.journal_events_per_s);
  }
  if (!cfg.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  wd.disarm();
}

// -- phase 3: one hot aggregate ------------------------------------------------------------

void phase_hot(const config& cfg, const fs::path& root, watchdog& wd, results& res) {
  wd.arm("hot", phase_limit(cfg) + 60s);
  auto dir = root / "hot";
  {
    node n{cfg, dir.string()};
    auto router = n.spawn_router({evident::make_model<benchspec::counter_aggregate>()},
                                 bench_options(cfg, 1));
    auto clients = std::min(cfg.clients, cfg.hot_commands);
    auto plans = split_commands(cfg.hot_commands, clients,
                                [](uint64_t) { return std::vector<std::string>{"hot"}; });
    auto type = std::string{benchspec::counter_aggregate::name};
    auto fig = run_workers(
      n, plans.size(),
      [&](size_t i, const caf::actor& report, const live_ptr& live) {
        return n.sys().spawn(client, plans[i], type, router, report, live, cfg.use_request,
                             std::chrono::seconds(cfg.request_timeout_s));
      },
      phase_limit(cfg), "hot phase");
    auto wm = n.writer_metrics();
    auto rm = n.router_metrics(router);
    auto opts = bench_options(cfg, 1);
    std::printf("[hot] %llu commands from %llu clients (one in flight each) to ONE aggregate "
                "(max_in_flight %zu, max_stash %zu, snapshots every 1,000 events): %.3f s -> "
                "%.0f commands/s\n",
                static_cast<unsigned long long>(fig.replies),
                static_cast<unsigned long long>(clients), opts.max_in_flight, opts.max_stash,
                fig.seconds, fig.rate());
    print_latency("command", fig);
    print_errors(fig);
    print_writer(wm, fig.seconds);
    print_router(rm);
    print_cpu(fig.cpu, fig.seconds, fig.writer_batch_s);
    res.hot_commands_per_s = fig.rate();
    res.hot_p99_ms = fig.p(0.99);
  }
  if (!cfg.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  wd.disarm();
}

// -- phase 4: recovery -------------------------------------------------------------------

/// Writes `events` deposits to the aggregate `id` of `model` straight into the journal
/// (the events a live aggregate would have written: one per command, the reply in its
/// metadata), and, when `snapshot_every` > 0, the snapshot at the last multiple of it.
void write_stream(evident::lmdb_journal& j, evident::snapshot_store& snaps,
                  const evident::aggregate_model& model, const std::string& id, uint64_t events,
                  uint64_t snapshot_every) {
  auto stream = model.stream_of(id);
  auto state = model.initial_state();
  uint64_t version = 0;
  uint64_t snap_at = snapshot_every > 0 ? events / snapshot_every * snapshot_every : 0;
  std::vector<evident::append_request> batch;
  auto flush = [&] {
    if (batch.empty())
      return;
    auto rs = j.append_batch(batch);
    for (auto& r : rs)
      if (!r)
        fail("writing the recovery stream " + stream + ": " + evident::to_string(r.err()));
    batch.clear();
  };
  for (uint64_t i = 1; i <= events; ++i) {
    std::any cmd = benchspec::counter_command{benchspec::deposit{1, i}};
    auto d = model.decide(state, cmd);
    if (!d)
      fail("decide: " + evident::to_string(d.err()));
    auto& req = batch.emplace_back();
    req.stream = stream;
    req.expected = evident::expected_version::exact(version);
    req.events = std::move(d->events);
    ++version;
    if (batch.size() == 10'000)
      flush();
    if (version == snap_at) {
      auto bytes = model.encode_state(state);
      if (!bytes)
        fail("encode_state: " + evident::to_string(bytes.err()));
      evident::snapshot s;
      s.stream = stream;
      s.version = version;
      s.type = std::string{model.state_type()};
      s.schema = model.state_schema();
      s.state = std::move(*bytes);
      flush();
      if (auto err = snaps.save(s))
        fail("saving the snapshot: " + evident::to_string(err));
    }
  }
  flush();
}

struct probe_result {
  uint64_t ns = 0;
  std::string error;
};

/// Sends one command to `router` and reports the time to its reply.
caf::behavior first_reply_probe(caf::event_based_actor* self, caf::actor router, std::string type,
                                std::string id, caf::actor report) {
  auto t0 = clock_type::now();
  self
    ->request(router, std::chrono::seconds(60), evident::command_atom::value, std::move(type),
              std::move(id), std::string{},
              evident::box_command(benchspec::counter_command{benchspec::deposit{1, 1}}))
    .then(
      [self, t0, report](evident::reply_box&) {
        auto ns = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count());
        self->send(report, probe_atom::value, ns, std::string{});
        self->quit();
      },
      [self, report](caf::error& e) {
        self->send(report, probe_atom::value, uint64_t{0}, caf::to_string(e));
        self->quit();
      });
  return {[](go_atom) {}};
}

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

void phase_recovery(const config& cfg, const fs::path& root, watchdog& wd, results& res) {
  wd.arm("recovery", phase_limit(cfg) + 60s);
  auto dir = root / "recovery";
  auto with_snap = evident::make_model<benchspec::counter_aggregate>();
  auto no_snap = evident::make_model<benchspec::counter_no_snapshots>();
  auto every = benchspec::counter_aggregate::snapshots.every_events;
  {
    // Written by a journal that is then closed: the node below opens it as a restart
    // would (and finds the per-stream index written at close).
    auto t0 = clock_type::now();
    auto j = evident::bench::open_journal(dir.string(), cfg.sync);
    evident::lmdb_snapshot_store snaps{j->env()};
    for (uint64_t r = 0; r < cfg.recovery_reps; ++r) {
      write_stream(*j, snaps, *no_snap, agg_id("r", r), cfg.recovery_events, 0);
      write_stream(*j, snaps, *with_snap, agg_id("r", r), cfg.recovery_events, every);
    }
    std::printf("[recovery] wrote %llu streams of %llu events (+ %llu snapshots) in %.2f s\n",
                static_cast<unsigned long long>(2 * cfg.recovery_reps),
                static_cast<unsigned long long>(cfg.recovery_events),
                static_cast<unsigned long long>(cfg.recovery_reps), seconds_since(t0));
  }
  {
    node n{cfg, dir.string()};
    auto measure = [&](const std::shared_ptr<const evident::aggregate_model>& model,
                       const std::string& id, evident::router_metrics& rm) {
      auto router = n.spawn_router({model}, bench_options(cfg, 1));
      caf::scoped_actor self{n.sys()};
      n.sys().spawn(first_reply_probe, router, std::string{model->name()}, id,
                    caf::actor_cast<caf::actor>(self));
      probe_result pr;
      bool got = false;
      self->receive(
        [&](probe_atom, uint64_t ns, std::string& err) {
          got = true;
          pr.ns = ns;
          pr.error = std::move(err);
        },
        caf::after(std::chrono::seconds(cfg.phase_timeout_s)) >> [] {});
      if (!got)
        fail("recovery: no reply from aggregate " + id + " within "
             + std::to_string(cfg.phase_timeout_s) + " s");
      if (!pr.error.empty())
        fail("recovery: the first command to " + id + " failed: " + pr.error);
      rm = n.router_metrics(router);
      n.stop_router(router);
      return pr.ns / 1e6;
    };
    std::vector<double> plain, snap;
    for (uint64_t r = 0; r < cfg.recovery_reps; ++r) {
      auto id = agg_id("r", r);
      evident::router_metrics rm;
      auto ms = measure(no_snap, id, rm);
      plain.push_back(ms);
      std::printf("  no snapshot, aggregate %s: first reply after %.2f ms (recovery %.2f ms, "
                  "%llu events replayed)\n",
                  id.c_str(), ms, rm.recovery_ns_max / 1e6,
                  static_cast<unsigned long long>(rm.events_replayed));
      ms = measure(with_snap, id, rm);
      snap.push_back(ms);
      std::printf("  snapshot every %llu, aggregate %s: first reply after %.2f ms (recovery "
                  "%.2f ms, %llu events replayed)\n",
                  static_cast<unsigned long long>(every), id.c_str(), ms,
                  rm.recovery_ns_max / 1e6, static_cast<unsigned long long>(rm.events_replayed));
    }
    res.recovery_ms = median(plain);
    res.recovery_snapshot_ms = median(snap);
    std::printf("[recovery] time to first reply (a deposit, so one commit included) for a "
                "stream of %llu events, median of %llu: %.2f ms without snapshot, %.2f ms with "
                "a snapshot at version %llu\n",
                static_cast<unsigned long long>(cfg.recovery_events),
                static_cast<unsigned long long>(cfg.recovery_reps), *res.recovery_ms,
                *res.recovery_snapshot_ms,
                static_cast<unsigned long long>(cfg.recovery_events / every * every));
  }
  if (!cfg.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  wd.disarm();
}

// -- phase 5: cold activations and idle memory ------------------------------------------

void phase_idle(const config& cfg, const fs::path& root, watchdog& wd, results& res) {
  auto settle = std::chrono::milliseconds{evident::defaults::aggregate::append_timeout_ms} + 1500ms;
  wd.arm("idle", phase_limit(cfg) + std::chrono::duration_cast<std::chrono::seconds>(settle)
                   + 60s);
  auto dir = root / "idle";
  {
    node n{cfg, dir.string()};
    auto model = evident::make_model<benchspec::counter_aggregate>();
    // Control: what the journal alone keeps in memory per written stream (its in-memory
    // index tail and cached head), measured with direct appends to as many other streams.
    auto j0 = sample_memory();
    {
      std::vector<evident::append_request> batch;
      auto state = model->initial_state();
      for (uint64_t i = 0; i < cfg.idle_aggregates; ++i) {
        auto pending = model->copy_state(state);
        std::any cmd = benchspec::counter_command{benchspec::deposit{1, 1}};
        auto d = model->decide(pending, cmd);
        if (!d)
          fail("decide: " + evident::to_string(d.err()));
        auto& req = batch.emplace_back();
        req.stream = model->stream_of(agg_id("c", i));
        req.expected = evident::expected_version::exact(0);
        req.events = std::move(d->events);
        if (batch.size() == 1'000 || i + 1 == cfg.idle_aggregates) {
          for (auto& r : n.journal().append_batch(batch))
            if (!r)
              fail("control appends: " + evident::to_string(r.err()));
          batch.clear();
        }
      }
    }
    auto j1 = sample_memory();
    auto journal_per_stream = per(delta(j1.malloc_in_use, j0.malloc_in_use), cfg.idle_aggregates);

    auto router = n.spawn_router({model}, bench_options(cfg, cfg.idle_aggregates));
    n.router_metrics(router); // the router's own start, outside the measured delta
    auto m0 = sample_memory();
    auto clients = std::min(cfg.clients, cfg.idle_aggregates);
    std::vector<client_plan> plans(clients);
    for (uint64_t c = 0; c < clients; ++c) {
      plans[c].ids = owned(c, clients, cfg.idle_aggregates, "i");
      plans[c].commands = plans[c].ids.size(); // one command per aggregate
    }
    auto type = std::string{benchspec::counter_aggregate::name};
    auto fig = run_workers(
      n, plans.size(),
      [&](size_t i, const caf::actor& report, const live_ptr& live) {
        return n.sys().spawn(client, plans[i], type, router, report, live, cfg.use_request,
                             std::chrono::seconds(cfg.request_timeout_s));
      },
      phase_limit(cfg), "idle phase");
    auto rm = n.router_metrics(router);
    auto m1 = sample_memory();
    std::this_thread::sleep_for(settle);
    auto m2 = sample_memory();
    auto rm2 = n.router_metrics(router);
    auto wm = n.writer_metrics();
    auto rate = static_cast<double>(rm.activations) / fig.seconds;
    std::printf("[idle] first command to %llu cold aggregates (empty streams) from %llu "
                "clients: %.3f s -> %.0f activations/s (%llu activations)\n",
                static_cast<unsigned long long>(cfg.idle_aggregates),
                static_cast<unsigned long long>(clients), fig.seconds, rate,
                static_cast<unsigned long long>(rm.activations));
    print_latency("first command", fig);
    print_errors(fig);
    print_writer(wm, fig.seconds);
    print_router(rm);
    print_cpu(fig.cpu, fig.seconds, fig.writer_batch_s);
    auto n_live = rm2.active;
    if (n_live != cfg.idle_aggregates)
      std::printf("  WARNING: %llu aggregates live after the pause, %llu activated\n",
                  static_cast<unsigned long long>(n_live),
                  static_cast<unsigned long long>(cfg.idle_aggregates));
    auto show = [&](const char* when, const memory_sample& m) {
      std::printf("  memory %s: malloc in use %+.0f bytes/aggregate, RSS anon %+.0f "
                  "bytes/aggregate (RSS total %+.1f MiB)\n",
                  when, per(delta(m.malloc_in_use, m0.malloc_in_use), cfg.idle_aggregates),
                  per(delta(m.rss_anon, m0.rss_anon), cfg.idle_aggregates),
                  static_cast<double>(delta(m.rss, m0.rss)) / (1 << 20));
    };
    show("right after the last reply", m1);
    show(("after " + std::to_string(settle.count()) + " ms idle (request timeouts expired)")
           .c_str(),
         m2);
    std::printf("  of which the journal (control: %llu direct single-event appends to new "
                "streams): malloc in use %+.0f bytes/stream\n",
                static_cast<unsigned long long>(cfg.idle_aggregates), journal_per_stream);
    res.activations_per_s = rate;
    res.bytes_per_idle_aggregate
      = per(delta(m2.malloc_in_use, m0.malloc_in_use), cfg.idle_aggregates);
    res.bytes_per_idle_aggregate_rss = per(delta(m2.rss_anon, m0.rss_anon), cfg.idle_aggregates);
    res.bytes_per_idle_aggregate_journal = journal_per_stream;
  }
  if (!cfg.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  wd.disarm();
}

// -- targets ---------------------------------------------------------------------------

struct target_line {
  std::string name;
  std::optional<double> value;
  std::string op; // ">=" or "<="
  double target;
  std::string unit;
};

} // namespace

int main(int argc, char** argv) {
  auto cfg = parse(argc, argv);
  std::random_device rd;
  auto parent = cfg.dir.empty() ? fs::temp_directory_path() : fs::path{cfg.dir};
  g_root = parent / ("evident-aggbench-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
  g_keep = cfg.keep;
  std::error_code ec;
  fs::create_directories(g_root, ec);
  if (ec) {
    std::cerr << "aggregate_bench: cannot create " << g_root.string() << ": " << ec.message()
              << "\n";
    return 1;
  }
  std::printf("aggregate_bench: %llu commands to %llu aggregates from %llu clients "
              "(client mode: %s); hot: %llu commands; recovery: %llu-event streams x %llu; "
              "idle: %llu aggregates; durability %s; scheduler.max-threads 2, "
              "max-throughput %zu, policy %s\n",
              static_cast<unsigned long long>(cfg.commands),
              static_cast<unsigned long long>(cfg.aggregates),
              static_cast<unsigned long long>(cfg.clients),
              cfg.use_request ? "request().then with timeout" : "plain send + 1 s overdue tick",
              static_cast<unsigned long long>(cfg.hot_commands),
              static_cast<unsigned long long>(cfg.recovery_events),
              static_cast<unsigned long long>(cfg.recovery_reps),
              static_cast<unsigned long long>(cfg.idle_aggregates),
              std::string{evident::to_string(cfg.sync)}.c_str(),
              evident::defaults::runtime::scheduler_max_throughput, cfg.policy.c_str());
  std::printf("run dir: %s; load average %s; disk: 4 KiB write + fdatasync %.0f us (median "
              "of 20)\n",
              g_root.string().c_str(), load_average().c_str(), fdatasync_us(g_root));
  std::fflush(stdout);
  auto t_start = clock_type::now();
  results res;
  {
    watchdog wd;
    if (cfg.run("journal"))
      phase_journal(cfg, g_root, wd, res);
    std::fflush(stdout);
    if (cfg.run("aggregates"))
      phase_aggregates(cfg, g_root, wd, res);
    std::fflush(stdout);
    if (cfg.run("hot"))
      phase_hot(cfg, g_root, wd, res);
    std::fflush(stdout);
    if (cfg.run("recovery"))
      phase_recovery(cfg, g_root, wd, res);
    std::fflush(stdout);
    if (cfg.run("idle"))
      phase_idle(cfg, g_root, wd, res);
    std::fflush(stdout);
  }
  auto end_fsync_us = fdatasync_us(g_root);
  remove_root();

  std::optional<double> ratio;
  if (res.commands_per_s && res.journal_events_per_s)
    ratio = *res.commands_per_s / *res.journal_events_per_s;
  std::vector<target_line> targets = {
    {"commands_per_s", res.commands_per_s, ">=", 100'000, "/s"},
    {"commands_per_s / journal_events_per_s", ratio, ">=", 0.4, ""},
    {"p99_ms", res.p99_ms, "<=", 50, "ms"},
    {"hot_aggregate_commands_per_s", res.hot_commands_per_s, ">=", 20'000, "/s"},
    {"recovery_100k_ms", res.recovery_ms, "<=", 200, "ms"},
    {"recovery_100k_snapshot_ms", res.recovery_snapshot_ms, "<=", 5, "ms"},
    {"bytes_per_idle_aggregate", res.bytes_per_idle_aggregate, "<=", 2'048, "B"},
    {"activations_per_s", res.activations_per_s, ">=", 50'000, "/s"},
  };
  std::printf("summary (%.1f s in all; load average now %s; disk: 4 KiB write + fdatasync "
              "%.0f us):\n",
              seconds_since(t_start), load_average().c_str(), end_fsync_us);
  if (res.journal_events_per_s)
    std::printf("  %-40s %12.0f %s   (reference for the ratio)\n", "journal_events_per_s",
                *res.journal_events_per_s, "/s");
  for (auto& t : targets) {
    if (!t.value) {
      std::printf("  %-40s %12s      target %s %g %s   SKIPPED\n", t.name.c_str(), "-",
                  t.op.c_str(), t.target, t.unit.c_str());
      continue;
    }
    bool ok = t.op == ">=" ? *t.value >= t.target : *t.value <= t.target;
    auto prec = *t.value < 100 ? 2 : 0;
    std::printf("  %-40s %12.*f %-3s  target %s %g %s   %s\n", t.name.c_str(), prec, *t.value,
                t.unit.c_str(), t.op.c_str(), t.target, t.unit.c_str(), ok ? "PASS" : "MISS");
  }

  auto rounded = [](std::optional<double> x, int digits) -> nlohmann::ordered_json {
    if (!x)
      return nullptr;
    auto f = std::pow(10.0, digits);
    return std::round(*x * f) / f;
  };
  nlohmann::ordered_json out;
  out["commands_per_s"] = rounded(res.commands_per_s, 0);
  out["p50_ms"] = rounded(res.p50_ms, 3);
  out["p99_ms"] = rounded(res.p99_ms, 3);
  out["journal_events_per_s"] = rounded(res.journal_events_per_s, 0);
  out["hot_aggregate_commands_per_s"] = rounded(res.hot_commands_per_s, 0);
  out["recovery_100k_ms"] = rounded(res.recovery_ms, 3);
  out["recovery_100k_snapshot_ms"] = rounded(res.recovery_snapshot_ms, 3);
  out["bytes_per_idle_aggregate"] = rounded(res.bytes_per_idle_aggregate, 0);
  out["activations_per_s"] = rounded(res.activations_per_s, 0);
  out["actor_overhead_ratio"] = rounded(ratio, 3);
  out["p999_ms"] = rounded(res.p999_ms, 3);
  out["max_ms"] = rounded(res.max_ms, 3);
  out["command_errors"] = res.command_errors ? nlohmann::ordered_json(*res.command_errors)
                                             : nlohmann::ordered_json(nullptr);
  out["journal_p50_ms"] = rounded(res.journal_p50_ms, 3);
  out["journal_p99_ms"] = rounded(res.journal_p99_ms, 3);
  out["hot_p99_ms"] = rounded(res.hot_p99_ms, 3);
  out["bytes_per_idle_aggregate_rss_anon"] = rounded(res.bytes_per_idle_aggregate_rss, 0);
  out["journal_bytes_per_stream"] = rounded(res.bytes_per_idle_aggregate_journal, 0);
  out["client_mode"] = cfg.use_request ? "request" : "send";
  out["commands"] = cfg.commands;
  out["aggregates"] = cfg.aggregates;
  out["clients"] = cfg.clients;
  std::cout << out.dump() << std::endl;
  return 0;
}
