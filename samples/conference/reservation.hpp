#pragma once

// The reservation saga: a reservation holds its seats only until the payment deadline.
// One instance per reservation (key "<conference>/<reservation>").
//
//   seats_reserved ──▶ waiting, deadline "payment" (payment_window)
//        │
//        ├── reservation_confirmed (paid) ─────────────────────────▶ completed
//        ├── reservation_cancelled (by the attendee) ──────────────▶ compensated
//        └── deadline "payment" ──▶ cancel(expired) to the conference
//                                       ├── ok ────────────────────▶ compensated (seats back)
//                                       └── already_confirmed ─────▶ completed (paid first)
//
// The deadline is durable: it is stored with the saga's progress and fires after a
// restart too (at the first tick when it fell due while the process was down). Ending
// cancels it, so a paid reservation never expires. The expiry command carries a
// deterministic command id, so sending it again after a restart cancels once.

#include "seat_availability.hpp"

#include "evident/sagas/saga.hpp"

#include <msgpack.hpp>

#include <chrono>
#include <string>
#include <type_traits>
#include <variant>

namespace conference {

/// How long a reservation waits for its payment, from when the saga handles its
/// seats_reserved: a moment after the aggregate accepted it, or later when the saga was
/// behind (a restart), which only gives the attendee more time.
inline constexpr std::chrono::minutes payment_window{15};

/// What the saga asks of the conference (kept in its durable outbox, so msgpack).
struct expire_reservation {
  std::string reservation;
  MSGPACK_DEFINE(reservation)
};

struct reservation_progress {
  std::string conference;
  std::string reservation;
  int32_t seats = 0;
  std::string outcome; // "paid", "expired", "cancelled" once it ended
  MSGPACK_DEFINE(conference, reservation, seats, outcome)
};

struct reservation_saga {
  using state = reservation_progress;
  using event = conference_event;
  using command = expire_reservation;
  using step = evident::saga_step<state, command>;
  static constexpr std::string_view name = "reservation"; // "saga:reservation:<key>"

  static void register_events(evident::type_registry<event>& r) {
    seat_availability_aggregate::register_events(r);
  }

  static std::string key_of(const std::string& conference, const std::string& reservation) {
    return conference + "/" + reservation;
  }

  static evident::saga_route route(const event& e) {
    return std::visit(
        [](const auto& ev) -> evident::saga_route {
          using T = std::decay_t<decltype(ev)>;
          if constexpr (std::is_same_v<T, seats_reserved>)
            return evident::starts(key_of(ev.conference, ev.reservation));
          else if constexpr (std::is_same_v<T, conference_created>)
            return evident::ignores();
          else
            return evident::continues(key_of(ev.conference, ev.reservation));
        },
        e);
  }

  static evident::command_box to_aggregate(const expire_reservation& x) {
    return evident::box_command(conference_command{cancel{x.reservation, true}});
  }

  static step handle(const state& s, const evident::saga_input<event>& in) {
    if (const auto* e = in.event_as<seats_reserved>()) {
      if (!s.reservation.empty()) // a start event seen before: nothing new
        return step{s};
      step next{state{e->conference, e->reservation, e->seats, {}}};
      next.set_deadline("payment", payment_window);
      return next;
    }
    if (in.event_as<reservation_confirmed>() != nullptr)
      return ended(s, "paid").complete();
    // Also the saga's own expiry: its event may arrive before the command's reply.
    if (const auto* e = in.event_as<reservation_cancelled>())
      return ended(s, e->expired ? "expired" : "cancelled").compensated();
    if (in.is_deadline("payment")) {
      step next{s};
      next.send("expire", std::string{seat_availability_aggregate::name}, s.conference,
                expire_reservation{s.reservation});
      return next;
    }
    if (in.is_outcome("expire")) {
      const auto* r = in.outcome.reply_as<seats_reply>();
      if (!in.outcome.ok() || r == nullptr)
        return ended(s, "expiry failed").fail();
      if (r->refused == refusal::already_confirmed)
        return ended(s, "paid").complete();
      // ok, or no_reservation: the attendee cancelled meanwhile; either way the seats
      // are back.
      return ended(s, r->ok() ? "expired" : "cancelled").compensated();
    }
    return step{s};
  }

private:
  static step ended(state s, const char* outcome) {
    s.outcome = outcome;
    return step{std::move(s)};
  }
};

} // namespace conference
