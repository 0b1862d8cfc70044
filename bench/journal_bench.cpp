// journal_bench: durable appends through the group-commit journal writer into an LMDB
// journal, then a stream replay and a full read. Prints human-readable lines, and as
// the LAST line one JSON object with the figures.
//
// Workload (defaults): 1,000,000 events of ~120-byte msgpack payload over 10,000 streams
// from 1,000 producers. Each producer is an event-based CAF actor with exactly one append
// in flight, each append with the exact expected version of its stream. Producer 0 owns
// the stream "hot" and writes 100,000 events to it in appends of ~110 events, spread
// over the whole run (one append per round, like everybody else), so that "hot" is
// interleaved with the rest of the log; every other producer writes single-event appends
// round-robin to its share of the 10,000 streams.
//
// Usage: journal_bench [--dir PARENT] [--events N] [--streams N] [--producers N]
//                      [--hot-events N] [--payload BYTES] [--naive-events N]
//                      [--max-batch N] [--sync MODE] [--policy P] [--keep]
// --sync (fsync_each_commit | no_meta_sync | no_sync), --policy (CAF scheduler:
// stealing | sharing) and --request (producers use request().then() with a timeout of
// --request-timeout seconds, default 120, instead of a plain send and a reply handler)
// exist for profiling; the defaults are the measured configuration. Producers send
// plainly because evident's aggregates do: a request's timeout stays in CAF's clock
// until it expires, which costs the producers about 6 us of CPU per append here.
// --dir is where a fresh directory for the journals is created (default: the system
// temp dir); it is removed at the end unless --keep.

#include "bench_util.hpp"

#include "evident/actors/journal_writer.hpp"
#include "evident/persistence/lmdb_journal.hpp"

#include <caf/all.hpp>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using evident::append_atom;
using evident::append_request;
using evident::append_result;
using evident::expected_version;

namespace {

using evident::bench::clock_type;
using evident::bench::open_journal;
using evident::bench::percentile;
using evident::bench::probe_journal;
using evident::bench::proc_write_bytes;
using evident::bench::seconds_since;
using evident::bench::thread_cpu;

// -- command line -------------------------------------------------------------------

struct config {
  std::string dir;
  uint64_t events = 1'000'000;
  uint64_t streams = 10'000;
  uint64_t producers = 1'000;
  uint64_t hot_events = 100'000;
  size_t payload = 120;
  uint64_t naive_events = 3'000;
  size_t max_batch = evident::defaults::group_commit::max_batch_events;
  evident::durability sync = evident::durability::fsync_each_commit;
  std::string policy = "stealing";
  bool plain_send = true;
  uint64_t request_timeout_s = 120;
  bool keep = false;
};

[[noreturn]] void usage(const char* msg) {
  std::cerr << "journal_bench: " << msg << "\n"
            << "usage: journal_bench [--dir PARENT] [--events N] [--streams N] "
               "[--producers N] [--hot-events N] [--payload BYTES] [--naive-events N] "
               "[--max-batch N] [--sync fsync_each_commit|no_meta_sync|no_sync] "
               "[--policy stealing|sharing] [--request] [--request-timeout S] [--keep]\n";
  std::exit(2);
}

config parse(int argc, char** argv) {
  config cfg;
  evident::bench::arg_cursor args{argc, argv, [](const std::string& msg) { usage(msg.c_str()); }};
  auto value = [&] { return args.value(); };
  auto number = [&] { return args.number(); };
  while (args.next()) {
    auto& name = args.name();
    if (name == "--dir")
      cfg.dir = value();
    else if (name == "--events")
      cfg.events = number();
    else if (name == "--streams")
      cfg.streams = number();
    else if (name == "--producers")
      cfg.producers = number();
    else if (name == "--hot-events")
      cfg.hot_events = number();
    else if (name == "--payload")
      cfg.payload = number();
    else if (name == "--naive-events")
      cfg.naive_events = number();
    else if (name == "--max-batch")
      cfg.max_batch = number();
    else if (name == "--sync") {
      cfg.sync = args.durability();
    } else if (name == "--policy") {
      cfg.policy = value();
      if (cfg.policy != "stealing" && cfg.policy != "sharing")
        usage("--policy is stealing or sharing");
    } else if (name == "--request-timeout") {
      cfg.request_timeout_s = number();
    } else if (name == "--request") {
      cfg.plain_send = false;
    } else if (name == "--keep")
      cfg.keep = true;
    else if (name == "--help" || name == "-h")
      usage("help");
    else
      usage(("unknown option " + args.arg()).c_str());
  }
  if (cfg.events == 0 || cfg.producers == 0 || cfg.streams == 0 || cfg.max_batch == 0)
    usage("--events, --producers, --streams and --max-batch must be positive");
  return cfg;
}

// -- payload ------------------------------------------------------------------------

// A msgpack array [sequence, amount, account, memo] padded to about `size` bytes: what
// an application's "deposited" event would look like.
std::string make_payload(uint64_t seq, const std::string& account, size_t size) {
  auto pack = [&](const std::string& memo) {
    msgpack::sbuffer buf(size + 64);
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_array(4);
    pk.pack(seq);
    pk.pack(static_cast<int64_t>(seq % 10'000) * 100 + 1);
    pk.pack(account);
    pk.pack(memo);
    return std::string(buf.data(), buf.size());
  };
  auto probe = pack({});
  auto pad = size > probe.size() + 2 ? size - probe.size() - 2 : 0; // str8 header: 2 bytes
  return pack(std::string(pad, 'm'));
}

std::string stream_name(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "acct-%06llu", static_cast<unsigned long long>(i));
  return buf;
}

// -- producers ----------------------------------------------------------------------

using go_atom = caf::atom_constant<caf::atom("go")>;
using done_atom = caf::atom_constant<caf::atom("done")>;

struct plan {
  std::vector<std::string> streams; // round-robin targets
  std::vector<uint32_t> events_per_append;
  size_t payload = 120;
};

struct producer_state {
  plan p;
  std::vector<uint64_t> versions; // per entry of p.streams
  size_t next = 0;                // appends done
  std::vector<uint64_t> latency_ns;
  uint64_t errors = 0;
  std::string first_error;
  caf::actor writer;
  caf::actor report;
  bool plain_send = false;
  std::chrono::seconds timeout{120};
  size_t slot = 0;
  clock_type::time_point t0;
};

using producer_actor = caf::stateful_actor<producer_state>;

void finish(producer_actor* self) {
  auto& st = self->state;
  self->send(st.report, done_atom::value, std::move(st.latency_ns), st.errors, st.first_error);
  self->quit();
}

void append_next(producer_actor* self);

void on_result(producer_actor* self, size_t slot, clock_type::time_point t0,
               const append_result& r) {
  auto& s = self->state;
  s.latency_ns.push_back(static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
  s.versions[slot] = r.last_version;
  ++s.next;
  append_next(self);
}

void on_error(producer_actor* self, const caf::error& e) {
  auto& s = self->state;
  ++s.errors;
  if (s.first_error.empty())
    s.first_error = caf::to_string(e);
  finish(self); // a conflict would repeat forever: stop this producer
}

void append_next(producer_actor* self) {
  auto& st = self->state;
  if (st.next == st.p.events_per_append.size()) {
    finish(self);
    return;
  }
  auto slot = st.next % st.p.streams.size();
  append_request req;
  req.stream = st.p.streams[slot];
  req.expected = expected_version::exact(st.versions[slot]);
  auto n = st.p.events_per_append[st.next];
  req.events.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    req.events[i].type = "bench.deposited";
    req.events[i].payload = make_payload(st.versions[slot] + i + 1, req.stream, st.p.payload);
  }
  auto t0 = clock_type::now();
  if (st.plain_send) {
    // The writer answers a plain send with an ordinary message (see the behavior).
    st.slot = slot;
    st.t0 = t0;
    self->send(st.writer, append_atom::value, std::move(req));
    return;
  }
  self->request(st.writer, st.timeout, append_atom::value, std::move(req))
    .then([self, slot, t0](append_result& r) { on_result(self, slot, t0, r); },
          [self](caf::error& e) { on_error(self, e); });
}

caf::behavior producer(producer_actor* self, plan p, caf::actor writer, caf::actor report,
                       bool plain_send, std::chrono::seconds timeout) {
  auto& st = self->state;
  st.plain_send = plain_send;
  st.timeout = timeout;
  st.versions.assign(p.streams.size(), 0);
  st.latency_ns.reserve(p.events_per_append.size());
  st.p = std::move(p);
  st.writer = std::move(writer);
  st.report = std::move(report);
  // Plain sends: an error answering a plain send arrives at the error handler (CAF
  // 0.17.6 routes a message holding only an error there; the default handler would
  // terminate the producer), not at a behavior handler.
  self->set_error_handler([self](caf::error& e) { on_error(self, e); });
  return {
    [self](go_atom) { append_next(self); },
    [self](append_result& r) { on_result(self, self->state.slot, self->state.t0, r); },
  };
}

// -- phases -------------------------------------------------------------------------

struct group_commit_figures {
  double seconds = 0;
  uint64_t events = 0;
  uint64_t appends = 0;
  uint64_t errors = 0;
  uint64_t p50_ns = 0;
  uint64_t p99_ns = 0;
  uint64_t max_ns = 0;
  evident::journal_writer_metrics metrics;
  uint64_t map_used_growth = 0;
  uint64_t io_write_bytes = 0;
  double writer_cpu_s = 0;
  double writer_batch_cpu_s = 0;
  double other_cpu_s = 0;
  double process_cpu_s = 0;
};

std::vector<plan> make_plans(const config& cfg, bool with_hot) {
  std::vector<plan> plans(cfg.producers);
  for (auto& p : plans)
    p.payload = cfg.payload;
  auto first_cold = with_hot ? uint64_t{1} : uint64_t{0};
  auto cold_producers = cfg.producers - first_cold;
  auto cold_events = cfg.events - (with_hot ? cfg.hot_events : 0);
  // Streams are spread round-robin, so each producer owns its streams alone and exact
  // expected versions never conflict.
  auto streams = std::max(cfg.streams, cold_producers);
  for (uint64_t s = 0; s < streams; ++s)
    plans[first_cold + s % cold_producers].streams.push_back(stream_name(s));
  uint64_t rounds = 0;
  for (uint64_t i = 0; i < cold_producers; ++i) {
    auto n = cold_events / cold_producers + (i < cold_events % cold_producers ? 1 : 0);
    plans[first_cold + i].events_per_append.assign(n, 1);
    rounds = std::max(rounds, n);
  }
  if (with_hot) {
    // One append per round, like everybody else, so "hot" is spread over the log.
    rounds = std::max<uint64_t>(rounds, 1);
    rounds = std::min(rounds, cfg.hot_events);
    auto& hot = plans[0];
    hot.streams = {"hot"};
    for (uint64_t r = 0; r < rounds; ++r)
      hot.events_per_append.push_back(
        static_cast<uint32_t>(cfg.hot_events / rounds + (r < cfg.hot_events % rounds ? 1 : 0)));
  }
  return plans;
}

group_commit_figures run_group_commit(const config& cfg, const std::string& path,
                                      bool with_hot) {
  group_commit_figures fig;
  auto lj = open_journal(path, cfg.sync);
  auto before = lj->stats();
  auto probe = std::make_shared<probe_journal>(lj);
  caf::actor_system_config sys_cfg;
  sys_cfg.set("scheduler.max-threads", 2);
  sys_cfg.set("scheduler.policy", caf::atom_from_string(cfg.policy));
  evident::add_message_types(sys_cfg);
  caf::actor_system sys{sys_cfg};
  caf::scoped_actor self{sys};
  evident::group_commit_options opts;
  opts.max_batch_events = cfg.max_batch;
  opts.max_pending = std::max<size_t>(opts.max_pending, cfg.producers);
  auto writer = evident::spawn_journal_writer(sys, probe, opts);
  auto plans = make_plans(cfg, with_hot);
  for (auto& p : plans)
    for (auto n : p.events_per_append) {
      fig.events += n;
      ++fig.appends;
    }
  std::vector<caf::actor> producers;
  producers.reserve(plans.size());
  auto report = caf::actor_cast<caf::actor>(self);
  for (auto& p : plans)
    producers.push_back(sys.spawn(producer, std::move(p), writer, report, cfg.plain_send,
                                  std::chrono::seconds(cfg.request_timeout_s)));
  auto cpu0 = thread_cpu();
  auto io0 = proc_write_bytes();
  auto t0 = clock_type::now();
  for (auto& p : producers)
    caf::anon_send(p, go_atom::value);
  std::vector<uint64_t> latencies;
  latencies.reserve(fig.appends);
  for (size_t i = 0; i < producers.size(); ++i) {
    bool got = false;
    self->receive(
      [&](done_atom, std::vector<uint64_t>& lat, uint64_t errors, std::string& first_error) {
        got = true;
        latencies.insert(latencies.end(), lat.begin(), lat.end());
        fig.errors += errors;
        if (errors > 0)
          std::cerr << "producer error: " << first_error << "\n";
      },
      caf::after(std::chrono::minutes(10)) >> [] {});
    if (!got) {
      std::cerr << "timeout waiting for producers\n";
      std::exit(1);
    }
  }
  fig.seconds = seconds_since(t0);
  fig.io_write_bytes = proc_write_bytes() - io0;
  auto cpu1 = thread_cpu();
  self->request(writer, std::chrono::seconds(10), evident::metrics_atom::value)
    .receive([&](evident::journal_writer_metrics& m) { fig.metrics = m; },
             [&](caf::error& e) { std::cerr << "metrics: " << caf::to_string(e) << "\n"; });
  self->monitor(writer);
  self->send_exit(writer, caf::exit_reason::user_shutdown);
  self->receive([](caf::down_msg&) {}, caf::after(std::chrono::seconds(30)) >> [] {});
  // Per-thread CPU over the run: the writer thread (found by the probe) vs the rest
  // (CAF's two workers, which run the producers and deliver messages, and this thread).
  auto wtid = probe->writer_tid.load();
  for (auto& [tid, secs] : cpu1) {
    auto d = secs - (cpu0.count(tid) ? cpu0[tid] : 0.0);
    fig.process_cpu_s += d;
    if (tid == wtid)
      fig.writer_cpu_s += d;
    else
      fig.other_cpu_s += d;
  }
  fig.writer_batch_cpu_s = probe->batch_cpu_s.load();
  std::sort(latencies.begin(), latencies.end());
  fig.p50_ns = percentile(latencies, 0.50);
  fig.p99_ns = percentile(latencies, 0.99);
  fig.max_ns = latencies.empty() ? 0 : latencies.back();
  auto after = lj->stats();
  if (before && after)
    fig.map_used_growth = after->map_used - before->map_used;
  return fig;
}

} // namespace

int main(int argc, char** argv) {
  auto cfg = parse(argc, argv);
  if (cfg.hot_events >= cfg.events)
    cfg.hot_events = cfg.events / 10;
  bool with_hot = cfg.hot_events > 0 && cfg.producers >= 2;
  if (!with_hot)
    cfg.hot_events = 0;
  std::random_device rd;
  auto parent = cfg.dir.empty() ? fs::temp_directory_path() : fs::path{cfg.dir};
  auto root = parent / ("evident-bench-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
  fs::create_directories(root);
  auto main_path = (root / "group").string();
  auto naive_path = (root / "naive").string();
  std::cout << "journal_bench: " << cfg.events << " events (" << cfg.payload
            << "-byte payloads) over " << cfg.streams << " streams from " << cfg.producers
            << " producers, one append in flight each; hot stream: " << cfg.hot_events
            << " events; durability " << evident::to_string(cfg.sync) << "; max batch "
            << cfg.max_batch << " events; scheduler.max-threads 2, policy " << cfg.policy
            << "\n";
  std::cout << "journal dir: " << root.string() << "\n";

  // -- 1. group commit ------------------------------------------------------------------
  auto fig = run_group_commit(cfg, main_path, with_hot);
  auto gc_rate = static_cast<double>(fig.events) / fig.seconds;
  auto& m = fig.metrics;
  auto avg_batch = m.batches ? static_cast<double>(m.events) / static_cast<double>(m.batches) : 0;
  auto bytes_per_event = static_cast<double>(fig.map_used_growth)
                         / static_cast<double>(std::max<uint64_t>(fig.events, 1));
  auto io_per_event = static_cast<double>(fig.io_write_bytes)
                      / static_cast<double>(std::max<uint64_t>(fig.events, 1));
  std::printf("group commit: %llu events in %llu appends, %.3f s -> %.0f events/s "
              "(%llu errors)\n",
              static_cast<unsigned long long>(fig.events),
              static_cast<unsigned long long>(fig.appends), fig.seconds, gc_rate,
              static_cast<unsigned long long>(fig.errors));
  std::printf("  append latency: p50 %.0f us, p99 %.0f us, max %.0f us\n", fig.p50_ns / 1e3,
              fig.p99_ns / 1e3, fig.max_ns / 1e3);
  std::printf("  commits: %llu, avg %.1f events/commit, largest %llu; time in append_batch "
              "%.3f s (%.0f%% of wall), avg %.0f us/commit\n",
              static_cast<unsigned long long>(m.batches), avg_batch,
              static_cast<unsigned long long>(m.largest_batch_events), m.commit_ns / 1e9,
              100.0 * (m.commit_ns / 1e9) / fig.seconds,
              m.batches ? m.commit_ns / 1e3 / static_cast<double>(m.batches) : 0.0);
  std::printf("  commit latency histogram (us):");
  for (size_t i = 0; i < m.commit_latency.size(); ++i) {
    if (i + 1 < m.commit_latency.size())
      std::printf(" <=%llu:%llu", static_cast<unsigned long long>(
                                    evident::latency_bounds_us[i]),
                  static_cast<unsigned long long>(m.commit_latency[i]));
    else
      std::printf(" more:%llu\n", static_cast<unsigned long long>(m.commit_latency[i]));
  }
  std::printf("  CPU: process %.2f s over %.2f s wall (%.2f of 2 cores); writer thread "
              "%.2f s (in append_batch %.2f s, CAF handling %.2f s); other threads "
              "(CAF workers: producers + messaging) %.2f s\n",
              fig.process_cpu_s, fig.seconds, fig.process_cpu_s / fig.seconds,
              fig.writer_cpu_s, fig.writer_batch_cpu_s,
              fig.writer_cpu_s - fig.writer_batch_cpu_s, fig.other_cpu_s);
  std::printf("  bytes per event: %.0f (LMDB map growth), %.0f (written to disk, "
              "/proc/self/io)\n",
              bytes_per_event, io_per_event);

  // -- 2. naive: one append per transaction ---------------------------------------------
  double naive_rate = 0;
  {
    auto nj = open_journal(naive_path, cfg.sync);
    std::vector<uint64_t> versions(cfg.streams, 0);
    auto t0 = clock_type::now();
    uint64_t errors = 0;
    for (uint64_t i = 0; i < cfg.naive_events; ++i) {
      auto s = i % cfg.streams;
      append_request req;
      req.stream = stream_name(s);
      req.expected = expected_version::exact(versions[s]);
      req.events.resize(1);
      req.events[0].type = "bench.deposited";
      req.events[0].payload = make_payload(versions[s] + 1, req.stream, cfg.payload);
      auto r = nj->append(req);
      if (r)
        versions[s] = r->last_version;
      else
        ++errors;
    }
    auto secs = seconds_since(t0);
    naive_rate = static_cast<double>(cfg.naive_events) / secs;
    std::printf("naive (journal.append in a loop, one transaction each): %llu events "
                "in %.3f s -> %.0f events/s (%.0f us/append, %llu errors)\n",
                static_cast<unsigned long long>(cfg.naive_events), secs, naive_rate,
                secs * 1e6 / static_cast<double>(std::max<uint64_t>(cfg.naive_events, 1)),
                static_cast<unsigned long long>(errors));
  }

  // -- 3. reads -------------------------------------------------------------------------
  auto lj = open_journal(main_path, cfg.sync);
  double replay_rate = 0;
  if (with_hot) {
    for (int run = 0; run < 2; ++run) {
      uint64_t n = 0;
      uint64_t bytes = 0;
      auto t0 = clock_type::now();
      auto err = lj->read_stream("hot", {}, [&](const evident::recorded_event& e) {
        ++n;
        bytes += e.payload.size();
        return true;
      });
      auto secs = seconds_since(t0);
      if (err)
        std::cerr << "read_stream: " << evident::to_string(err) << "\n";
      auto rate = static_cast<double>(n) / secs;
      if (run == 0)
        replay_rate = rate;
      std::printf("replay (read_stream \"hot\", envelope decoded)%s: %llu events in %.3f s -> "
                  "%.0f events/s\n",
                  run == 0 ? "" : ", second run", static_cast<unsigned long long>(n), secs,
                  rate);
    }
    // What an aggregate's recovery also does: decode each payload.
    uint64_t n = 0;
    int64_t sum = 0;
    auto t0 = clock_type::now();
    auto err = lj->read_stream("hot", {}, [&](const evident::recorded_event& e) {
      auto oh = msgpack::unpack(e.payload.data(), e.payload.size());
      auto arr = oh.get().via.array;
      if (arr.size >= 2)
        sum += arr.ptr[1].as<int64_t>();
      ++n;
      return true;
    });
    auto secs = seconds_since(t0);
    if (err)
      std::cerr << "read_stream: " << evident::to_string(err) << "\n";
    std::printf("replay + msgpack payload decode: %llu events in %.3f s -> %.0f events/s "
                "(checksum %lld)\n",
                static_cast<unsigned long long>(n), secs, static_cast<double>(n) / secs,
                static_cast<long long>(sum));
  }
  double read_all_rate = 0;
  {
    uint64_t n = 0;
    uint64_t bytes = 0;
    uint64_t last = 0;
    bool ordered = true;
    auto t0 = clock_type::now();
    auto err = lj->read_all(0, std::numeric_limits<uint64_t>::max(),
                            [&](const evident::recorded_event& e) {
                              ++n;
                              bytes += e.payload.size();
                              ordered = ordered && e.position == last + 1;
                              last = e.position;
                              return true;
                            });
    auto secs = seconds_since(t0);
    if (err)
      std::cerr << "read_all: " << evident::to_string(err) << "\n";
    read_all_rate = static_cast<double>(n) / secs;
    std::printf("read_all: %llu events in %.3f s -> %.0f events/s (positions gap-free: %s)\n",
                static_cast<unsigned long long>(n), secs, read_all_rate,
                ordered ? "yes" : "NO");
  }
  lj.reset();
  if (!cfg.keep) {
    std::error_code ec;
    fs::remove_all(root, ec);
  }

  nlohmann::ordered_json out;
  out["group_commit_events_per_s"] = std::round(gc_rate);
  out["append_p50_us"] = std::round(fig.p50_ns / 100.0) / 10.0;
  out["append_p99_us"] = std::round(fig.p99_ns / 100.0) / 10.0;
  out["bytes_written_per_event"] = std::round(bytes_per_event);
  out["naive_events_per_s"] = std::round(naive_rate);
  out["replay_stream_events_per_s"] = std::round(replay_rate);
  out["read_all_events_per_s"] = std::round(read_all_rate);
  out["events"] = fig.events;
  out["commits"] = m.batches;
  out["avg_events_per_commit"] = std::round(avg_batch * 10) / 10;
  out["disk_bytes_written_per_event"] = std::round(io_per_event);
  std::cout << out.dump() << std::endl;
  return fig.errors == 0 ? 0 : 1;
}
