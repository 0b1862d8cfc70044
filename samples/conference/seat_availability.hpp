#pragma once

// SeatAvailability: the seats of one conference, as an evident aggregate spec (stream
// "conference-<id>"). It is the one place that decides who gets a seat, so it alone
// guards the rule "never more seats held than the conference has".
//
//   create(id, seats)                 -> conference_created     refused: conference_exists
//   reserve(reservation, seats)       -> seats_reserved         refused: not_enough_seats,
//                                                                 reservation_exists
//   confirm(reservation)  (paid)      -> reservation_confirmed  refused: no_reservation
//   cancel(reservation, expired)      -> reservation_cancelled  refused: no_reservation,
//                                                                 already_confirmed (expiry)
//   (all but create on an unknown conference -> no_conference; bad counts or empty ids ->
//    invalid_request)
//
// Held seats = pending + confirmed reservations; a reservation is accepted only when it
// fits in what is left. The aggregate decides one command at a time against a state that
// includes every accepted command before it, so concurrent reservations cannot overbook.
// A refusal persists nothing and its reply carries the seats still free.
//
// Expiry (reservation.hpp) cancels with `expired = true`, which a paid reservation
// refuses: payment and expiry may race, and whichever the aggregate sees first wins.

#include "evident/actors/aggregate.hpp"
#include "evident/actors/effect.hpp"

#include <msgpack.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>

namespace conference {

/// The most seats a conference may have (an input bound, so sums never overflow).
inline constexpr int32_t max_seats = 100'000;

// -- events (stored forever: names and shapes are a contract) --------------------------
// Each carries the conference id and the seat count, so that sagas and views need no
// lookup. (operator== only for the test kit's events_are.)

struct conference_created {
  std::string conference;
  int32_t seats = 0;
  MSGPACK_DEFINE(conference, seats)
  bool operator==(const conference_created&) const = default;
};

struct seats_reserved {
  std::string conference;
  std::string reservation;
  int32_t seats = 0;
  MSGPACK_DEFINE(conference, reservation, seats)
  bool operator==(const seats_reserved&) const = default;
};

struct reservation_confirmed {
  std::string conference;
  std::string reservation;
  int32_t seats = 0;
  MSGPACK_DEFINE(conference, reservation, seats)
  bool operator==(const reservation_confirmed&) const = default;
};

struct reservation_cancelled {
  std::string conference;
  std::string reservation;
  int32_t seats = 0;
  bool was_confirmed = false; // which count the seats come back from
  bool expired = false;       // by the payment deadline, not by the attendee
  MSGPACK_DEFINE(conference, reservation, seats, was_confirmed, expired)
  bool operator==(const reservation_cancelled&) const = default;
};

using conference_event = std::variant<conference_created, seats_reserved, reservation_confirmed,
                                      reservation_cancelled>;

// -- state ----------------------------------------------------------------------------

enum class reservation_status : uint8_t { pending = 0, confirmed = 1, cancelled = 2 };

} // namespace conference

MSGPACK_ADD_ENUM(conference::reservation_status);

namespace conference {

struct reservation {
  int32_t seats = 0;
  reservation_status status = reservation_status::pending;
  MSGPACK_DEFINE(seats, status)
  bool operator==(const reservation&) const = default;
};

struct seat_availability {
  std::string id; // empty until created
  int32_t capacity = 0;
  int32_t held = 0; // seats of pending and confirmed reservations
  /// Every reservation ever made, cancelled ones too, so that an id is never reused
  /// (it also keys a saga instance).
  std::map<std::string, reservation> reservations;
  MSGPACK_DEFINE(id, capacity, held, reservations)
  bool operator==(const seat_availability&) const = default;

  int32_t remaining() const noexcept {
    return capacity - held;
  }
};

// -- commands -------------------------------------------------------------------------

struct create {
  std::string id; // repeats the aggregate id: decide cannot see it, events carry it
  int32_t seats = 0;
};
struct reserve {
  std::string reservation;
  int32_t seats = 0;
};
struct confirm {
  std::string reservation;
};
struct cancel {
  std::string reservation;
  bool expired = false;
};

using conference_command = std::variant<create, reserve, confirm, cancel>;

// -- reply ----------------------------------------------------------------------------

enum class refusal : uint8_t {
  none = 0,
  conference_exists,
  no_conference,
  not_enough_seats,
  reservation_exists,
  no_reservation,
  already_confirmed,
  invalid_request,
};

} // namespace conference

MSGPACK_ADD_ENUM(conference::refusal);

namespace conference {

constexpr std::string_view to_string(refusal x) noexcept {
  switch (x) {
    case refusal::none:
      return "none";
    case refusal::conference_exists:
      return "conference_exists";
    case refusal::no_conference:
      return "no_conference";
    case refusal::not_enough_seats:
      return "not_enough_seats";
    case refusal::reservation_exists:
      return "reservation_exists";
    case refusal::no_reservation:
      return "no_reservation";
    case refusal::already_confirmed:
      return "already_confirmed";
    case refusal::invalid_request:
      return "invalid_request";
  }
  return "unknown";
}

/// The answer to every command, refusals included: the seats as they are after it.
struct seats_reply {
  refusal refused = refusal::none;
  int32_t capacity = 0;
  int32_t remaining = 0;
  MSGPACK_DEFINE(refused, capacity, remaining)
  bool operator==(const seats_reply&) const = default;

  bool ok() const noexcept {
    return refused == refusal::none;
  }
};

// -- the spec -------------------------------------------------------------------------

struct seat_availability_aggregate {
  using state = seat_availability;
  using command = conference_command;
  using event = conference_event;
  using reply = seats_reply;
  using effect = evident::effect<state, event, reply>;

  static constexpr std::string_view name = "conference"; // streams "conference-<id>"

  static void register_events(evident::type_registry<event>& r) {
    r.add<conference_created>("conference.created")
        .add<seats_reserved>("conference.seats_reserved")
        .add<reservation_confirmed>("conference.reservation_confirmed")
        .add<reservation_cancelled>("conference.reservation_cancelled");
  }

  static effect decide(const state& s, const command& c) {
    return std::visit([&](const auto& x) { return on(s, x); }, c);
  }

  static state apply(state s, const event& e) {
    std::visit([&](const auto& x) { on_event(s, x); }, e);
    return s;
  }

  static seats_reply reply_of(const state& s) {
    return {refusal::none, s.capacity, s.remaining()};
  }

private:
  static effect refuse(const state& s, refusal why) {
    auto r = reply_of(s);
    r.refused = why;
    return evident::reply(r);
  }

  /// The reservation `id` unless it is unknown or cancelled.
  static const reservation* live(const state& s, const std::string& id) {
    auto i = s.reservations.find(id);
    if (i == s.reservations.end() || i->second.status == reservation_status::cancelled)
      return nullptr;
    return &i->second;
  }

  static effect on(const state& s, const create& c) {
    if (!s.id.empty())
      return refuse(s, refusal::conference_exists);
    if (c.id.empty() || c.seats <= 0 || c.seats > max_seats)
      return refuse(s, refusal::invalid_request);
    return evident::persist(conference_created{c.id, c.seats}).then_reply(reply_of);
  }

  static effect on(const state& s, const reserve& c) {
    if (s.id.empty())
      return refuse(s, refusal::no_conference);
    if (c.reservation.empty() || c.seats <= 0 || c.seats > max_seats)
      return refuse(s, refusal::invalid_request);
    if (s.reservations.contains(c.reservation))
      return refuse(s, refusal::reservation_exists);
    if (c.seats > s.remaining())
      return refuse(s, refusal::not_enough_seats);
    return evident::persist(seats_reserved{s.id, c.reservation, c.seats}).then_reply(reply_of);
  }

  static effect on(const state& s, const confirm& c) {
    if (s.id.empty())
      return refuse(s, refusal::no_conference);
    const auto* r = live(s, c.reservation);
    if (r == nullptr)
      return refuse(s, refusal::no_reservation);
    if (r->status == reservation_status::confirmed) // paid twice: nothing new
      return evident::reply(reply_of(s));
    return evident::persist(reservation_confirmed{s.id, c.reservation, r->seats})
        .then_reply(reply_of);
  }

  static effect on(const state& s, const cancel& c) {
    if (s.id.empty())
      return refuse(s, refusal::no_conference);
    const auto* r = live(s, c.reservation);
    if (r == nullptr)
      return refuse(s, refusal::no_reservation);
    bool paid = r->status == reservation_status::confirmed;
    if (c.expired && paid)
      return refuse(s, refusal::already_confirmed);
    return evident::persist(reservation_cancelled{s.id, c.reservation, r->seats, paid, c.expired})
        .then_reply(reply_of);
  }

  static void on_event(state& s, const conference_created& e) {
    s.id = e.conference;
    s.capacity = e.seats;
  }
  static void on_event(state& s, const seats_reserved& e) {
    s.reservations[e.reservation] = reservation{e.seats, reservation_status::pending};
    s.held += e.seats;
  }
  static void on_event(state& s, const reservation_confirmed& e) {
    s.reservations[e.reservation].status = reservation_status::confirmed;
  }
  static void on_event(state& s, const reservation_cancelled& e) {
    s.reservations[e.reservation].status = reservation_status::cancelled;
    s.held -= e.seats;
  }
};

} // namespace conference
