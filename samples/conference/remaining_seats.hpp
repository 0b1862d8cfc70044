#pragma once

// The remaining-seats view: a durable read model over every conference's events, for
// pages that list conferences without asking each aggregate. Rows (LMDB DB
// "view.remaining_seats", written with the view's position in one transaction):
//
//   "c/<conference>" -> seat_counts of that conference
//   "totals"         -> seat_counts summed over all conferences
//
// It trails the aggregates by a moment (pass a position to `query` to read your own
// write); the aggregate, not the view, decides whether a reservation fits.

#include "seat_availability.hpp"

#include "evident/actors/view.hpp"

#include <msgpack.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace conference {

struct seat_counts {
  int64_t conferences = 0; // 1 for one conference's row
  int64_t capacity = 0;
  int64_t pending = 0;   // reserved, not paid yet
  int64_t confirmed = 0; // paid
  MSGPACK_DEFINE(conferences, capacity, pending, confirmed)
  bool operator==(const seat_counts&) const = default;

  int64_t remaining() const noexcept {
    return capacity - pending - confirmed;
  }
};

struct seats_query {
  /// One conference's counts; empty: the totals.
  std::string conference;
};

struct remaining_seats_view {
  using event = conference_event;
  using query = seats_query;
  using result = seat_counts; // all zero for an unknown conference
  static constexpr std::string_view name = "remaining_seats";

  static void register_events(evident::type_registry<event>& r) {
    seat_availability_aggregate::register_events(r);
  }

  static evident::subscription_filter filter() {
    evident::subscription_filter f;
    f.categories = {"conference"};
    return f;
  }

  static void project(evident::view_rows& rows, const evident::recorded_event&, const event& e) {
    seat_counts delta;
    std::visit(
        [&](const auto& ev) {
          using T = std::decay_t<decltype(ev)>;
          if constexpr (std::is_same_v<T, conference_created>) {
            delta.conferences = 1;
            delta.capacity = ev.seats;
          } else if constexpr (std::is_same_v<T, seats_reserved>) {
            delta.pending = ev.seats;
          } else if constexpr (std::is_same_v<T, reservation_confirmed>) {
            delta.pending = -ev.seats;
            delta.confirmed = ev.seats;
          } else if constexpr (std::is_same_v<T, reservation_cancelled>) {
            (ev.was_confirmed ? delta.confirmed : delta.pending) = -ev.seats;
          }
        },
        e);
    const auto& id
        = std::visit([](const auto& ev) -> const std::string& { return ev.conference; }, e);
    add(rows, "c/" + id, delta);
    add(rows, "totals", delta);
  }

  static seat_counts ask(const evident::view_rows& rows, const seats_query& q) {
    auto key = q.conference.empty() ? std::string{"totals"} : "c/" + q.conference;
    return rows.get_as<seat_counts>(key).value_or(seat_counts{});
  }

private:
  static void add(evident::view_rows& rows, const std::string& key, const seat_counts& d) {
    auto row = rows.get_as<seat_counts>(key).value_or(seat_counts{});
    row.conferences += d.conferences;
    row.capacity += d.capacity;
    row.pending += d.pending;
    row.confirmed += d.confirmed;
    rows.put_as(key, row);
  }
};

} // namespace conference
