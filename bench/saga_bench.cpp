// saga_bench: transfer sagas end to end, durable (fsync per group commit by default).
//
// A node as the runtime would wire it: LMDB journal, journal writer -> event bus ->
// subscription -> saga manager -> aggregate router -> account aggregates. Each saga
// starts with a `transfer_requested` event appended through the writer and completes
// after a debit and a credit (3 saga progress records + 2 account events + the request
// = 6 appends per saga).
//
//   1. baseline: the same number of single-event appends straight to the writer
//      (appends/s), measured in this run on this disk;
//   2. throughput: a burst of --sagas transfers; sagas_per_s = sagas / (last completion
//      - first request);
//   3. latency: --rate transfers per second (default 2,000, below the burst's capacity
//      on the reference machine, so the figure is latency and not queueing) for
//      --seconds, paced every 10 ms;
//      saga_p99_ms = p99 of (completion record time - request event time).
//
// The last line is one JSON object: sagas_per_s, saga_p99_ms, and the rest.

#include "bench_util.hpp"

#include "sagas/transfer.hpp"

#include "evident/actors/aggregate_router.hpp"
#include "evident/actors/event_bus.hpp"
#include "evident/actors/journal_writer.hpp"
#include "evident/actors/message_types.hpp"
#include "evident/actors/subscription.hpp"
#include "evident/persistence/checkpoint_store.hpp"
#include "evident/runtime/defaults.hpp"
#include "evident/sagas/saga_manager.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using evident::bench::clock_type;
using evident::bench::seconds_since;

namespace {

struct args_t {
  std::string dir = "/tmp/evident-saga-bench";
  uint64_t accounts = 10'000;
  uint64_t sagas = 20'000;
  uint64_t rate = 2'000;
  uint64_t seconds = 2;
  evident::durability sync = evident::durability::fsync_each_commit;
  uint64_t command_window = evident::defaults::saga::max_in_flight_commands;
  uint64_t append_window = evident::defaults::saga::max_in_flight_appends;
};

void usage_fail(const std::string& msg) {
  std::cerr << "saga_bench: " << msg
            << "\nusage: saga_bench [--dir D] [--accounts N] [--sagas N] [--rate N/s] "
               "[--seconds N] [--sync fsync_each_commit|no_meta_sync|no_sync]\n"
               "  [--command-window N] [--append-window N]\n";
  std::exit(2);
}

args_t parse(int argc, char** argv) {
  args_t a;
  evident::bench::arg_cursor c{argc, argv, usage_fail};
  while (c.next()) {
    if (c.name() == "--dir")
      a.dir = c.value();
    else if (c.name() == "--accounts")
      a.accounts = c.number();
    else if (c.name() == "--sagas")
      a.sagas = c.number();
    else if (c.name() == "--rate")
      a.rate = c.number();
    else if (c.name() == "--seconds")
      a.seconds = c.number();
    else if (c.name() == "--sync")
      a.sync = c.durability();
    else if (c.name() == "--command-window")
      a.command_window = c.number();
    else if (c.name() == "--append-window")
      a.append_window = c.number();
    else
      usage_fail("unknown argument " + c.arg());
  }
  if (a.accounts < 2 || a.sagas == 0 || a.rate == 0 || a.seconds == 0)
    usage_fail("--accounts >= 2, --sagas, --rate and --seconds > 0");
  return a;
}

std::string account(uint64_t i) {
  return "acc" + std::to_string(i);
}

evident::append_request request_of(const std::string& id, uint64_t accounts, uint64_t i) {
  static const evident::type_registry<transfers::transfer_event> reg = [] {
    evident::type_registry<transfers::transfer_event> r;
    transfers::transfer_aggregate::register_events(r);
    return r;
  }();
  evident::append_request req;
  req.stream = "transfer-" + id;
  req.expected = evident::expected_version::no_stream();
  auto data = reg.encode(transfers::transfer_event{
    transfers::transfer_requested{id, account(i % accounts), account((i + 1) % accounts), 1}});
  req.events.push_back(std::move(*data));
  return req;
}

struct node {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scoped_actor self;
  std::shared_ptr<evident::lmdb_journal> journal;
  caf::actor bus, writer, router, manager, sub;

  static caf::actor_system_config& prepare(caf::actor_system_config& c) {
    c.set("scheduler.max-threads", 2);
    // As evident::runtime configures CAF (scheduler.max_throughput).
    c.set("scheduler.max-throughput",
          static_cast<int64_t>(evident::defaults::runtime::scheduler_max_throughput));
    evident::add_message_types(c);
    return c;
  }

  explicit node(const args_t& a) : sys(prepare(cfg)), self(sys) {
    std::filesystem::remove_all(a.dir);
    std::filesystem::create_directories(a.dir);
    journal = evident::bench::open_journal(a.dir + "/journal", a.sync);
    open_accounts(a.accounts);
    auto head = journal->last_position();
    bus = evident::spawn_event_bus(sys, head ? *head : 0);
    evident::group_commit_options gc;
    gc.max_pending = 1'000'000; // the burst is sent without waiting for answers
    evident::commit_listener listener;
    listener.actor = bus;
    writer = evident::spawn_journal_writer(sys, journal, gc, listener);
    evident::aggregate_env env;
    env.writer = writer;
    env.journal = journal;
    router = evident::spawn_aggregate_router(
      sys, env,
      {evident::make_model<bank::account_no_snapshots>(),
       evident::make_model<transfers::transfer_aggregate>()});
    auto model = evident::make_saga_model<transfers::transfer_saga>();
    evident::saga_env senv;
    senv.writer = writer;
    senv.journal = journal;
    senv.router = router;
    senv.options.max_in_flight_commands = a.command_window;
    senv.options.max_in_flight_appends = a.append_window;
    manager = evident::spawn_saga_manager(sys, senv, model);
    evident::subscription_options so;
    so.name = evident::saga_subscription_name(*model);
    so.filter.predicate = [model](const evident::recorded_event& e) {
      return model->knows(e.type);
    };
    evident::subscription_env sub_env;
    sub_env.bus = bus;
    sub_env.jnl = journal;
    sub_env.checkpoints = std::make_shared<evident::checkpoint_store>(journal->env());
    sub = evident::spawn_subscription(sys, sub_env, manager, so);
  }

  ~node() {
    for (auto* a : {&sub, &manager, &router, &writer, &bus}) {
      self->monitor(*a);
      self->send_exit(*a, caf::exit_reason::user_shutdown);
      self->receive([](caf::down_msg&) {}, caf::after(30s) >> [] {});
    }
  }

  // Setup only, before the writer exists: the journal is written directly.
  void open_accounts(uint64_t n) {
    evident::type_registry<bank::account_event> reg;
    bank::account_aggregate::register_events(reg);
    std::vector<evident::append_request> batch;
    for (uint64_t i = 0; i < n; ++i) {
      evident::append_request req;
      req.stream = "account-" + account(i);
      req.expected = evident::expected_version::no_stream();
      req.events.push_back(*reg.encode(bank::account_event{bank::opened{account(i)}}));
      req.events.push_back(*reg.encode(bank::account_event{bank::deposited{1'000'000}}));
      batch.push_back(std::move(req));
      if (batch.size() == 1'000 || i + 1 == n) {
        for (auto& r : journal->append_batch(batch))
          if (!r) {
            std::cerr << "setup failed: " << evident::to_string(r.err()) << "\n";
            std::exit(1);
          }
        batch.clear();
      }
    }
  }

  evident::saga_metrics metrics() {
    evident::saga_metrics m;
    self->request(manager, 30s, evident::metrics_atom::value)
      .receive([&](evident::saga_metrics& x) { m = x; },
               [&](caf::error& e) {
                 std::cerr << "metrics failed: " << caf::to_string(e) << "\n";
                 std::exit(1);
               });
    return m;
  }

  /// Waits until `n` sagas ended (or `limit` passed); returns the number ended.
  uint64_t wait_ended(uint64_t n, std::chrono::seconds limit) {
    auto t0 = clock_type::now();
    uint64_t polls = 0;
    for (;;) {
      auto m = metrics();
      auto ended = m.completed + m.failed + m.compensated;
      if (ended >= n || m.parked > 0 || clock_type::now() - t0 > limit)
        return ended;
      if (std::getenv("SAGA_BENCH_TRACE") != nullptr && ++polls % 50 == 0)
        std::cout << "  t=" << seconds_since(t0) << " events " << m.events << " appends "
                  << m.appends << " commands " << m.commands << " outcomes " << m.outcomes
                  << " ended " << ended << "\n";
      std::this_thread::sleep_for(5ms); // polling a counter: no message tells "all done"
    }
  }

  /// Activates every account aggregate (a live node has its hot aggregates in memory;
  /// cold activations are aggregate_bench's subject, not this one's).
  void warm_up(uint64_t accounts) {
    for (uint64_t i = 0; i < accounts; ++i)
      self->send(router, evident::command_atom::value, std::string{"account"}, account(i),
                 std::string{}, evident::box_command(bank::account_command{bank::get_balance{}}));
    uint64_t got = 0;
    bool timed_out = false;
    while (got < accounts && !timed_out)
      self->receive([&](evident::reply_box&) { ++got; }, [&](caf::error&) { ++got; },
                    caf::after(60s) >> [&] { timed_out = true; });
    if (timed_out) {
      std::cerr << "warm-up timed out\n";
      std::exit(1);
    }
  }

  /// Every append sent so far is committed: the writer answers in order.
  void writer_barrier() {
    evident::append_request req;
    req.stream = "bench-barrier";
    self->request(writer, 60s, evident::append_atom::value, std::move(req))
      .receive([](evident::append_result&) {}, [](caf::error&) {});
  }
};

} // namespace

int main(int argc, char** argv) {
  auto a = parse(argc, argv);
  node n{a};
  std::cout << "saga_bench: " << a.accounts << " accounts, sync "
            << (a.sync == evident::durability::fsync_each_commit ? "fsync_each_commit"
                                                                  : "relaxed")
            << "\n";

  n.warm_up(a.accounts);

  // 1. baseline: plain appends through the same writer, 6 per saga of phase 2.
  uint64_t base_n = a.sagas * 6;
  auto tb = clock_type::now();
  {
    evident::type_registry<bank::account_event> reg;
    bank::account_aggregate::register_events(reg);
    auto ev = *reg.encode(bank::account_event{bank::noted{"baseline"}});
    for (uint64_t i = 0; i < base_n; ++i) {
      evident::append_request req;
      req.stream = "baseline-" + std::to_string(i % a.accounts);
      req.events.push_back(ev);
      caf::anon_send(n.writer, evident::append_atom::value, std::move(req));
    }
    n.writer_barrier();
  }
  double base_s = seconds_since(tb);
  double base_appends_per_s = static_cast<double>(base_n) / base_s;
  std::cout << "baseline: " << base_n << " appends in " << base_s << " s = "
            << static_cast<uint64_t>(base_appends_per_s) << " appends/s\n";

  // 2. throughput: a burst.
  auto t0 = clock_type::now();
  for (uint64_t i = 0; i < a.sagas; ++i)
    caf::anon_send(n.writer, evident::append_atom::value,
                   request_of("b" + std::to_string(i), a.accounts, i));
  auto ended = n.wait_ended(a.sagas, 300s);
  double burst_s = seconds_since(t0);
  auto m = n.metrics();
  double sagas_per_s = static_cast<double>(ended) / burst_s;
  std::cout << "burst: " << ended << "/" << a.sagas << " sagas ended in " << burst_s
            << " s = " << static_cast<uint64_t>(sagas_per_s) << " sagas/s (completed "
            << m.completed << ", failed " << m.failed << ", parked " << m.parked
            << ", appends " << m.appends << ", commands " << m.commands << ")\n";

  // 3. latency: paced.
  uint64_t total = a.rate * a.seconds;
  uint64_t per_tick = std::max<uint64_t>(1, a.rate / 100);
  auto tp = clock_type::now();
  uint64_t sent = 0;
  for (uint64_t tick = 0; sent < total; ++tick) {
    for (uint64_t k = 0; k < per_tick && sent < total; ++k, ++sent)
      caf::anon_send(n.writer, evident::append_atom::value,
                     request_of("p" + std::to_string(sent), a.accounts, sent + 7));
    std::this_thread::sleep_until(tp + (tick + 1) * 10ms); // pacing, not synchronisation
  }
  auto ended2 = n.wait_ended(a.sagas + total, 300s) - ended;
  std::vector<uint64_t> lat_us;
  lat_us.reserve(total);
  auto model = evident::make_saga_model<transfers::transfer_saga>();
  for (uint64_t i = 0; i < total; ++i) {
    auto id = "p" + std::to_string(i);
    evident::read_options last;
    last.dir = evident::direction::backward;
    last.max_count = 1;
    auto rec = n.journal->read_stream(model->stream_of(id), last);
    auto req = n.journal->read_stream("transfer-" + id);
    if (!rec || rec->empty() || !req || req->empty())
      continue;
    auto r = evident::decode_record(rec->front());
    if (!r || !evident::is_final(r->status()))
      continue;
    lat_us.push_back(static_cast<uint64_t>(std::max<int64_t>(0, r->time_ns - req->front().time_ns))
                     / 1'000);
  }
  if (std::getenv("SAGA_BENCH_TRACE") != nullptr && lat_us.size() >= 10) {
    // Latency by tenth of the paced run, in sending order: a backlog left by the burst
    // shows as high early tenths.
    std::cout << "  paced max latency (ms) by tenth:";
    auto tenth = lat_us.size() / 10;
    for (size_t k = 0; k < 10; ++k)
      std::cout << " "
                << *std::max_element(lat_us.begin() + static_cast<std::ptrdiff_t>(k * tenth),
                                     lat_us.begin() + static_cast<std::ptrdiff_t>((k + 1) * tenth))
                     / 1000;
    std::cout << "\n";
  }
  std::sort(lat_us.begin(), lat_us.end());
  double p50 = static_cast<double>(evident::bench::percentile(lat_us, 0.50)) / 1000.0;
  double p99 = static_cast<double>(evident::bench::percentile(lat_us, 0.99)) / 1000.0;
  std::cout << "paced: " << total << " sagas at " << a.rate << "/s, " << ended2 << " ended, "
            << lat_us.size() << " measured, p50 " << p50 << " ms, p99 " << p99 << " ms\n";

  double ratio = sagas_per_s * 6 / base_appends_per_s;
  std::cout << "ratio: saga appends/s over baseline appends/s = " << ratio << "\n";
  bool tput_ok = sagas_per_s >= 10'000;
  bool p99_ok = lat_us.size() == total && p99 <= 100.0;
  std::cout << (tput_ok ? "PASS" : "MISS") << " sagas_per_s " << static_cast<uint64_t>(sagas_per_s)
            << " (target >= 10000)\n";
  std::cout << (p99_ok ? "PASS" : "MISS") << " saga_p99_ms " << p99 << " (target <= 100)\n";

  nlohmann::json j;
  j["sagas_per_s"] = static_cast<uint64_t>(sagas_per_s);
  j["saga_p99_ms"] = p99;
  j["saga_p50_ms"] = p50;
  j["accounts"] = a.accounts;
  j["burst_sagas"] = a.sagas;
  j["burst_ended"] = ended;
  j["paced_rate"] = a.rate;
  j["paced_measured"] = lat_us.size();
  j["baseline_appends_per_s"] = static_cast<uint64_t>(base_appends_per_s);
  j["ratio_saga_appends_to_baseline"] = ratio;
  j["sagas_per_s_pass"] = tput_ok;
  j["saga_p99_ms_pass"] = p99_ok;
  std::cout << j.dump() << std::endl;
  return 0;
}
