#pragma once

// A live node for the event bus, subscription and view tests: an LMDB journal in a
// temporary directory (no_sync: the tests check order and atomicity, not power loss),
// CAF's real scheduler (2 threads), the detached journal writer and the event bus as its
// listener. Subscribers record what they got in a `collector` that the test thread waits
// on (condition variable with a deadline: no sleeps).
//
// The destructor kills everything the test spawned, so a failed test never hangs
// ~actor_system.

#include "account_aggregate.hpp"
#include "checks.hpp"
#include "temp_dir.hpp"

#include "evident/actors/atoms.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/event_batch.hpp"
#include "evident/actors/event_bus.hpp"
#include "evident/actors/journal_writer.hpp"
#include "evident/actors/message_types.hpp"
#include "evident/persistence/lmdb_journal.hpp"

#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace evident::test {

using namespace std::chrono_literals;

constexpr auto wait_bound = 20s; // a stuck test fails instead of hanging

inline const type_registry<bank::account_event>& bank_registry() {
  static const auto reg = [] {
    type_registry<bank::account_event> r;
    bank::account_aggregate::register_events(r);
    return r;
  }();
  return reg;
}

inline event_data bank_event(bank::account_event e) {
  auto d = bank_registry().encode(e);
  BOOST_REQUIRE(d);
  return std::move(*d);
}

// -- what a subscriber saw ---------------------------------------------------------

struct collector {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<recorded_event> events;
  std::vector<event_batch> batches; // without their events (kept in `events`)
  uint64_t through = 0;
  size_t live_batches = 0;
  bool held = false; // while true, answers wait (a stuck subscriber)

  void add(const event_batch& b) {
    std::lock_guard guard{mtx};
    events.insert(events.end(), b.events.begin(), b.events.end());
    event_batch copy;
    copy.subscription = b.subscription;
    copy.through = b.through;
    copy.live = b.live;
    batches.push_back(std::move(copy));
    if (b.live)
      ++live_batches;
    through = b.through;
    cv.notify_all();
  }

  /// Waits until the subscriber handled everything through `pos`.
  bool wait_through(uint64_t pos) {
    std::unique_lock guard{mtx};
    return cv.wait_for(guard, wait_bound, [&] { return through >= pos; });
  }

  /// Waits until `n` batches arrived.
  bool wait_batches(size_t n) {
    std::unique_lock guard{mtx};
    return cv.wait_for(guard, wait_bound, [&] { return batches.size() >= n; });
  }

  std::vector<uint64_t> positions() {
    std::lock_guard guard{mtx};
    std::vector<uint64_t> out;
    for (const auto& e : events)
      out.push_back(e.position);
    return out;
  }
};

using release_atom = caf::atom_constant<caf::atom("t_release")>;

struct subscriber_state {
  std::shared_ptr<collector> col;
  std::vector<std::pair<caf::typed_response_promise<uint64_t>, uint64_t>> held;
};

/// Answers each batch with its `through` after recording it. While `col->held` is set
/// (at spawn), answers wait until (release_atom).
inline caf::behavior recording_subscriber(caf::stateful_actor<subscriber_state>* self,
                                          std::shared_ptr<collector> col) {
  self->state.col = std::move(col);
  return {
      [=](deliver_atom, const event_batch& b) -> caf::result<uint64_t> {
        auto& st = self->state;
        st.col->add(b);
        bool hold;
        {
          std::lock_guard guard{st.col->mtx};
          hold = st.col->held;
        }
        if (!hold)
          return b.through;
        auto rp = self->make_response_promise<uint64_t>();
        st.held.emplace_back(rp, b.through);
        return rp;
      },
      [=](release_atom) {
        auto& st = self->state;
        {
          std::lock_guard guard{st.col->mtx};
          st.col->held = false;
        }
        for (auto& [rp, through] : st.held)
          rp.deliver(through);
        st.held.clear();
      },
  };
}

// -- the node ----------------------------------------------------------------------

struct bus_fixture {
  temp_dir dir;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<lmdb_journal> jnl;
  caf::actor bus;
  caf::actor writer;
  std::vector<caf::actor> spawned;

  bus_fixture() {
    cfg.set("scheduler.max-threads", 2);
    add_message_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
    journal_options opts;
    opts.path = dir.str();
    opts.sync = durability::no_sync;
    auto j = lmdb_journal::open(opts);
    BOOST_REQUIRE_MESSAGE(j, why(j));
    jnl = *j;
    start_node();
  }

  void start_node() {
    auto last = jnl->last_position();
    BOOST_REQUIRE(last);
    bus = spawn_event_bus(*sys, *last);
    commit_listener listener;
    listener.actor = bus;
    writer = spawn_journal_writer(*sys, jnl, {}, listener);
  }

  ~bus_fixture() {
    caf::scoped_actor self{*sys};
    for (auto& a : spawned)
      stop(a);
    stop(writer);
    stop(bus);
  }

  /// Stops `a` and waits (bounded) until it is gone.
  void stop(const caf::actor& a) {
    if (!a)
      return;
    caf::scoped_actor self{*sys};
    self->monitor(a);
    self->send_exit(a, caf::exit_reason::user_shutdown);
    bool down = false;
    self->receive([&](caf::down_msg&) { down = true; }, caf::after(wait_bound) >> [] {});
    if (!down) {
      self->send_exit(a, caf::exit_reason::kill);
      self->receive([&](caf::down_msg&) {}, caf::after(5s) >> [] {});
    }
  }

  caf::actor track(caf::actor a) {
    spawned.push_back(a);
    return a;
  }

  /// Appends through the writer and waits for the commit.
  append_result append(const std::string& stream, std::vector<event_data> events) {
    append_request req;
    req.stream = stream;
    req.events = std::move(events);
    caf::scoped_actor self{*sys};
    append_result result;
    bool ok = false;
    self->request(writer, wait_bound, append_atom::value, std::move(req))
        .receive(
            [&](append_result& r) {
              result = r;
              ok = true;
            },
            [&](caf::error& err) {
              BOOST_FAIL("append failed: " << to_string(from_caf_error(err)));
            });
    BOOST_REQUIRE(ok);
    return result;
  }

  /// `n` deposits of 1..n to `stream`, one event per append.
  uint64_t deposits(const std::string& stream, int n) {
    uint64_t last = 0;
    for (int i = 1; i <= n; ++i)
      last = append(stream, {bank_event(bank::deposited{i})}).last_position;
    return last;
  }

  template <class T>
  T ask_metrics(const caf::actor& a) {
    caf::scoped_actor self{*sys};
    T result;
    self->request(a, wait_bound, metrics_atom::value)
        .receive([&](T& m) { result = std::move(m); },
                 [&](caf::error& err) {
                   BOOST_FAIL("metrics failed: " << to_string(from_caf_error(err)));
                 });
    return result;
  }

  /// Polls `pred` (each poll is a message round trip) until it holds or the bound ends.
  bool eventually(const std::function<bool()>& pred) {
    auto deadline = std::chrono::steady_clock::now() + wait_bound;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred())
        return true;
      std::this_thread::yield();
    }
    return pred();
  }
};

/// Every element once, strictly increasing, exactly `first..last`.
inline bool is_gap_free(const std::vector<uint64_t>& xs, uint64_t first, uint64_t last) {
  if (xs.size() != last - first + 1)
    return false;
  for (size_t i = 0; i < xs.size(); ++i)
    if (xs[i] != first + i)
      return false;
  return true;
}

} // namespace evident::test
