// evident-conference: a scripted tour of the conference sample on an embedded runtime.
//
//   evident-conference [--data DIR]     (default ./conference-data)
//
// It creates a conference, reserves seats until one reservation is refused, pays one,
// lets another run past its payment deadline, prints the remaining-seats view and stops
// the runtime. The saga clock is virtual so that the 15-minute payment window passes at
// once; a daemon passes no clock (the system clock). Each run adds a new conference to
// the data directory. Exit codes: 0 done, 1 a step went wrong, 2 bad options or start.

#include "conference.hpp"

#include "evident/runtime/runtime.hpp"
#include "evident/sagas/clock.hpp"

#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

namespace {

constexpr std::string_view usage = "usage: evident-conference [--data DIR]\n";

/// Prints what failed and returns false, so that a step reads `if (!ok(x, "...")) ...`.
template <class T>
bool ok(const evident::expected<T>& x, const char* what) {
  if (!x)
    std::fprintf(stderr, "evident-conference: %s: %s\n", what, evident::to_string(x.err()).c_str());
  return x.has_value();
}

/// Asks the conference and prints the answer; false when the ask itself failed.
bool say(evident::runtime& rt, const std::string& conf, const conference::conference_command& c,
         const std::string& what) {
  auto r = rt.ask<conference::seat_availability_aggregate>(conf, c);
  if (!ok(r, what.c_str()))
    return false;
  std::printf("%-28s -> %s, %d of %d seats left\n", what.c_str(),
              r->ok() ? "ok" : std::string{to_string(r->refused)}.c_str(), r->remaining,
              r->capacity);
  return true;
}

bool show_saga(evident::runtime& rt, const std::string& conf, const std::string& reservation) {
  auto s
      = rt.saga_wait("reservation", conference::reservation_saga::key_of(conf, reservation), 10s);
  if (!ok(s, "waiting for a reservation saga"))
    return false;
  std::printf("  saga %-22s %s\n", s->key.c_str(), std::string{to_string(s->status)}.c_str());
  return true;
}

bool show_view(evident::runtime& rt, const std::string& conf) {
  // Wait until the view has every event written so far: it then agrees with the aggregate.
  auto head = rt.journal()->last_position();
  if (!ok(head, "reading the journal head"))
    return false;
  auto one = rt.query<conference::remaining_seats_view>({conf}, *head);
  auto all = rt.query<conference::remaining_seats_view>({}, *head);
  if (!ok(one, "querying the view") || !ok(all, "querying the view"))
    return false;
  std::printf("view %s: %lld seats, %lld paid, %lld pending, %lld remaining\n", conf.c_str(),
              static_cast<long long>(one->capacity), static_cast<long long>(one->confirmed),
              static_cast<long long>(one->pending), static_cast<long long>(one->remaining()));
  std::printf("view, all %lld conferences: %lld seats, %lld remaining\n",
              static_cast<long long>(all->conferences), static_cast<long long>(all->capacity),
              static_cast<long long>(all->remaining()));
  return true;
}

bool scenario(evident::runtime& rt, evident::virtual_saga_clock& clock) {
  using namespace conference;
  // A new conference per run: the view says how many the data directory holds.
  auto head = rt.journal()->last_position();
  if (!ok(head, "reading the journal head"))
    return false;
  auto before = rt.query<remaining_seats_view>({}, *head);
  if (!ok(before, "querying the view"))
    return false;
  auto conf = "devconf-" + std::to_string(before->conferences + 1);

  bool steps = say(rt, conf, create{conf, 10}, "create " + conf + " (10 seats)")
               && say(rt, conf, reserve{"ada", 4}, "reserve ada: 4 seats")
               && say(rt, conf, reserve{"bob", 3}, "reserve bob: 3 seats")
               && say(rt, conf, reserve{"eve", 5}, "reserve eve: 5 seats")
               && say(rt, conf, confirm{"ada"}, "ada pays") && show_saga(rt, conf, "ada");
  if (!steps)
    return false;
  // ada's saga has ended, so the saga manager has also seen bob's earlier reservation
  // (events reach it in order) and armed its deadline before the clock moves.
  std::printf("... %lld minutes pass; bob has not paid\n",
              static_cast<long long>((payment_window + 1min).count()));
  clock.advance(payment_window + 1min);
  return show_saga(rt, conf, "bob") && say(rt, conf, reserve{"eve", 5}, "reserve eve again")
         && show_view(rt, conf);
}

} // namespace

int main(int argc, char** argv) {
  std::string data = "./conference-data";
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage.data(), stdout);
      return 0;
    }
    if (arg == "--data" && i + 1 < argc && argv[i + 1][0] != '\0') {
      data = argv[++i];
      continue;
    }
    std::fprintf(stderr, "evident-conference: bad argument '%s'\n%s", argv[i], usage.data());
    return 2;
  }

  evident::runtime_config cfg;
  cfg.storage.data_dir = data;
  auto rt = evident::runtime::start(cfg);
  if (!ok(rt, "start"))
    return 2;
  // Starts at the real time, so that deadlines left by earlier runs keep their meaning.
  auto clock = std::make_shared<evident::virtual_saga_clock>(evident::system_saga_clock{}.now_ns());
  try {
    conference::register_conference(**rt, clock);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "evident-conference: %s\n", ex.what());
    return 2;
  }
  std::printf("evident-conference: data in %s\n", data.c_str());
  bool done = scenario(**rt, *clock);
  // Graceful: the saga, the aggregates, the view, the writer, then LMDB (runtime.hpp).
  auto err = (*rt)->stop();
  if (err) {
    std::fprintf(stderr, "evident-conference: stop: %s\n", evident::to_string(err).c_str());
    return 1;
  }
  std::printf("runtime stopped\n");
  return done ? 0 : 1;
}
