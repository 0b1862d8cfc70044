// view_bench: how fast a durable view catches up, and how far behind the journal it
// runs while appends go on.
//
//   1. Preload N events (default 1,000,000) over S streams straight into the journal.
//      Baseline: read_all over the same events (how fast the journal alone is read).
//   2. projected_events_per_s: register a durable view (one msgpack row per stream,
//      rows + checkpoint in one LMDB transaction per delivered batch) and time its
//      catch-up over the N events (a read-your-writes query for position N).
//   3. lag: a load actor appends at a steady rate (default 60,000 events/s, 10 events
//      per append) through the journal writer for D seconds; meanwhile a probe appends
//      one event every 5 ms and asks the view to answer once it holds that event. Lag
//      = the probe's append acknowledged (committed) -> the view's answer (rows
//      committed). append_events_per_s = events acknowledged per second in that phase.
//
// Durability: the runtime's default, fsync on every commit (journal and view alike),
// unless --sync says otherwise. Targets (issue 4): projected_events_per_s >= 200,000;
// lag_p99_ms <= 20 with append_events_per_s >= 50,000. The last line is one JSON object.

#include "bench_util.hpp"

#include "evident/actors/atoms.hpp"
#include "evident/actors/errc.hpp"
#include "evident/runtime/runtime.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <msgpack.hpp>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using evident::bench::clock_type;
using evident::bench::seconds_since;

namespace {

// -- the view -------------------------------------------------------------------------

struct moved {
  int64_t amount = 0;
  std::string memo;
  MSGPACK_DEFINE(amount, memo)
};

struct stream_row {
  int64_t balance = 0;
  uint64_t events = 0;
  MSGPACK_DEFINE(balance, events)
};

struct row_query {
  std::string stream;
};

struct balances {
  using event = moved;
  using query = row_query;
  using result = stream_row;
  static constexpr std::string_view name = "bench_balances";

  static void register_events(evident::type_registry<event>& r) {
    r.add<moved>("bench.moved");
  }

  static void project(evident::view_rows& rows, const evident::recorded_event& meta,
                      const event& e) {
    auto row = rows.get_as<stream_row>(meta.stream).value_or(stream_row{});
    row.balance += e.amount;
    ++row.events;
    rows.put_as(meta.stream, row);
  }

  static result ask(const evident::view_rows& rows, const query& q) {
    return rows.get_as<stream_row>(q.stream).value_or(stream_row{});
  }
};

// -- options --------------------------------------------------------------------------

struct options {
  uint64_t events = 1'000'000;
  uint64_t streams = 10'000;
  uint64_t rate = 60'000;
  uint64_t seconds = 5;
  evident::durability sync = evident::durability::fsync_each_commit;
  std::string dir;
};

[[noreturn]] void usage(const std::string& msg) {
  std::cerr << "view_bench: " << msg
            << "\nusage: view_bench [--events=N] [--streams=N] [--rate=EVENTS_PER_S] "
               "[--seconds=N] [--sync=fsync_each_commit|no_meta_sync|no_sync] [--dir=PATH]\n";
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  evident::bench::arg_cursor args{argc, argv, [](const std::string& m) { usage(m); }};
  while (args.next()) {
    const auto& n = args.name();
    if (n == "--events")
      o.events = args.number();
    else if (n == "--streams")
      o.streams = std::max<uint64_t>(args.number(), 1);
    else if (n == "--rate")
      o.rate = args.number();
    else if (n == "--seconds")
      o.seconds = std::max<uint64_t>(args.number(), 1);
    else if (n == "--sync")
      o.sync = args.durability();
    else if (n == "--dir")
      o.dir = args.value();
    else
      usage("unknown argument " + args.arg());
  }
  return o;
}

std::string stream_name(uint64_t i) {
  return "acct-" + std::to_string(i);
}

evident::event_data make_event(const evident::type_registry<moved>& reg, int64_t amount) {
  auto d = reg.encode(moved{amount, "bench payload of some sixty bytes, like a memo line"});
  if (!d) {
    std::cerr << "encode failed: " << to_string(d.err()) << "\n";
    std::exit(1);
  }
  return std::move(*d);
}

// -- steady load ----------------------------------------------------------------------

using tick_atom = caf::atom_constant<caf::atom("b_tick")>;

struct load_state {
  std::shared_ptr<std::atomic<uint64_t>> acked;
  std::shared_ptr<std::atomic<uint64_t>> failed;
  std::shared_ptr<std::atomic<bool>> stop;
  clock_type::time_point start;
  uint64_t sent_events = 0;
  std::mt19937_64 rng{42};
};

// Sends appends of 10 events at `rate` events/s, paced every 2 ms against the wall clock
// (a late tick sends what is due), never more than ~2,000 events ahead of the acks.
caf::behavior load(caf::stateful_actor<load_state>* self, caf::actor writer, uint64_t rate,
                   uint64_t streams, std::shared_ptr<std::atomic<uint64_t>> acked,
                   std::shared_ptr<std::atomic<uint64_t>> failed,
                   std::shared_ptr<std::atomic<bool>> stop) {
  static const auto reg = [] {
    evident::type_registry<moved> r;
    balances::register_events(r);
    return r;
  }();
  auto& st = self->state;
  st.acked = std::move(acked);
  st.failed = std::move(failed);
  st.stop = std::move(stop);
  st.start = clock_type::now();
  self->set_error_handler([=](caf::error&) { ++*self->state.failed; });
  self->send(self, tick_atom::value);
  return {
      [=](tick_atom) {
        auto& s = self->state;
        if (s.stop->load()) {
          self->quit();
          return;
        }
        auto due = static_cast<uint64_t>(seconds_since(s.start) * static_cast<double>(rate));
        while (s.sent_events + 10 <= due && s.sent_events < s.acked->load() + 2'000) {
          evident::append_request req;
          req.stream = stream_name(s.rng() % streams);
          for (int i = 0; i < 10; ++i)
            req.events.push_back(make_event(reg, 1));
          self->send(writer, evident::append_atom::value, std::move(req));
          s.sent_events += 10;
        }
        self->delayed_send(self, 2ms, tick_atom::value);
      },
      [=](const evident::append_result& r) {
        *self->state.acked += r.last_position - r.first_position + 1;
      },
  };
}

} // namespace

int main(int argc, char** argv) {
  auto opt = parse(argc, argv);
  std::random_device rd;
  auto parent = opt.dir.empty() ? fs::temp_directory_path() : fs::path{opt.dir};
  auto root
      = parent / ("evident-view-bench-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
  fs::create_directories(root);
  std::cout << "view_bench: " << opt.events << " events over " << opt.streams
            << " streams; lag phase " << opt.seconds << " s at " << opt.rate
            << " events/s; durability " << evident::to_string(opt.sync) << "\n"
            << "data dir: " << root.string() << "\n";

  evident::runtime_config cfg;
  cfg.storage.data_dir = root.string();
  cfg.storage.sync = opt.sync;
  cfg.storage.map_size = size_t{1} << 30;
  auto rt = evident::runtime::start(cfg);
  if (!rt) {
    std::cerr << to_string(rt.err()) << "\n";
    return 1;
  }
  auto& r = **rt;
  evident::type_registry<moved> reg;
  balances::register_events(reg);

  // -- 1. preload and baseline ----------------------------------------------------------
  {
    auto jnl = r.journal();
    auto t0 = clock_type::now();
    std::mt19937_64 rng{7};
    uint64_t written = 0;
    while (written < opt.events) {
      std::vector<evident::append_request> batch;
      for (int a = 0; a < 100 && written < opt.events; ++a) {
        evident::append_request req;
        req.stream = stream_name(rng() % opt.streams);
        for (int i = 0; i < 10 && written < opt.events; ++i, ++written)
          req.events.push_back(make_event(reg, static_cast<int64_t>(rng() % 100)));
        batch.push_back(std::move(req));
      }
      for (auto& res : jnl->append_batch(batch))
        if (!res) {
          std::cerr << "preload failed: " << to_string(res.err()) << "\n";
          return 1;
        }
    }
    std::printf("preload: %llu events in %.2f s\n", static_cast<unsigned long long>(written),
                seconds_since(t0));
  }
  double read_rate = 0;
  {
    auto jnl = r.journal();
    auto t0 = clock_type::now();
    uint64_t n = 0;
    auto err = jnl->read_all(1, opt.events, [&](const evident::recorded_event&) {
      ++n;
      return true;
    });
    if (err || n != opt.events) {
      std::cerr << "read_all failed\n";
      return 1;
    }
    read_rate = static_cast<double>(n) / seconds_since(t0);
    std::printf("baseline read_all: %.0f events/s\n", read_rate);
  }

  // -- 2. catch-up ------------------------------------------------------------------------
  auto t0 = clock_type::now();
  r.register_view<balances>();
  auto caught = r.query<balances>(row_query{stream_name(0)}, opt.events, 600s);
  auto catch_up_s = seconds_since(t0);
  if (!caught) {
    std::cerr << "catch-up failed: " << to_string(caught.err()) << "\n";
    return 1;
  }
  auto projected = static_cast<double>(opt.events) / catch_up_s;
  std::printf("catch-up: %llu events projected in %.2f s -> %.0f events/s (%.2f x read_all)\n",
              static_cast<unsigned long long>(opt.events), catch_up_s, projected,
              projected / read_rate);

  // -- 3. lag under steady appends -----------------------------------------------------
  auto acked = std::make_shared<std::atomic<uint64_t>>(0);
  auto failed = std::make_shared<std::atomic<uint64_t>>(0);
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto before = r.metrics().writer;
  auto lag_t0 = clock_type::now();
  auto loader = r.system().spawn(load, r.writer(), opt.rate, opt.streams, acked, failed, stop);
  std::vector<uint64_t> lags_us;
  uint64_t probe_errors = 0;
  // Warm-up of 0.5 s (the pacing settles), then one probe per 5 ms.
  std::this_thread::sleep_for(500ms);
  auto measure_t0 = clock_type::now();
  auto acked_t0 = acked->load();
  while (seconds_since(measure_t0) < static_cast<double>(opt.seconds)) {
    evident::append_request req;
    req.stream = "probe";
    req.events.push_back(make_event(reg, 0));
    auto res = r.append(std::move(req));
    auto ack = clock_type::now();
    if (!res) {
      ++probe_errors;
      continue;
    }
    auto q = r.query<balances>(row_query{"probe"}, res->last_position, 10s);
    auto done = clock_type::now();
    if (!q) {
      ++probe_errors;
      continue;
    }
    lags_us.push_back(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(done - ack).count()));
    std::this_thread::sleep_until(ack + 5ms); // probe pacing, not synchronization
  }
  auto measured_s = seconds_since(measure_t0);
  auto acked_events = acked->load() - acked_t0;
  stop->store(true);
  (void)lag_t0;
  auto append_rate = static_cast<double>(acked_events) / measured_s;
  std::sort(lags_us.begin(), lags_us.end());
  auto p50 = static_cast<double>(evident::bench::percentile(lags_us, 0.50)) / 1000.0;
  auto p99 = static_cast<double>(evident::bench::percentile(lags_us, 0.99)) / 1000.0;
  auto pmax = lags_us.empty() ? 0.0 : static_cast<double>(lags_us.back()) / 1000.0;
  auto after = r.metrics();
  auto commits = after.writer.batches - before.batches;
  std::printf("lag phase: %.0f events/s acknowledged (%llu refused/failed), %llu commits; "
              "%zu probes (%llu errors): lag p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              append_rate, static_cast<unsigned long long>(failed->load()),
              static_cast<unsigned long long>(commits), lags_us.size(),
              static_cast<unsigned long long>(probe_errors), p50, p99, pmax);
  uint64_t view_lag = 0;
  for (const auto& v : after.views)
    if (v.name == balances::name)
      view_lag = v.lag;
  {
    caf::scoped_actor self{r.system()};
    self->monitor(loader);
    self->receive([](caf::down_msg&) {}, caf::after(5s) >> [] {});
  }
  auto st = r.stop();
  if (st)
    std::cerr << "stop: " << to_string(st) << "\n";
  rt->reset();
  std::error_code ec;
  fs::remove_all(root, ec);

  bool projected_ok = projected >= 200'000;
  bool lag_ok = p99 <= 20.0 && append_rate >= 50'000;
  std::printf("%s projected_events_per_s %.0f (target >= 200000)\n", projected_ok ? "PASS" : "MISS",
              projected);
  std::printf("%s lag_p99_ms %.2f at append_events_per_s %.0f (target <= 20 at >= 50000)\n",
              lag_ok ? "PASS" : "MISS", p99, append_rate);
  nlohmann::json j;
  j["projected_events_per_s"] = std::round(projected);
  j["append_events_per_s"] = std::round(append_rate);
  j["lag_p50_ms"] = std::round(p50 * 100) / 100;
  j["lag_p99_ms"] = std::round(p99 * 100) / 100;
  j["lag_max_ms"] = std::round(pmax * 100) / 100;
  j["read_all_events_per_s"] = std::round(read_rate);
  j["projected_vs_read_all"] = std::round(projected / read_rate * 1000) / 1000;
  j["view_lag_positions_at_end"] = view_lag;
  j["events"] = opt.events;
  j["durability"] = std::string{evident::to_string(opt.sync)};
  std::cout << j.dump() << std::endl;
  return 0;
}
