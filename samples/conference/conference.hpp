#pragma once

// The conference sample on a runtime: what a daemon registers, in the order it must.

#include "remaining_seats.hpp"
#include "reservation.hpp"
#include "seat_availability.hpp"

#include "evident/runtime/runtime.hpp"
#include "evident/sagas/clock.hpp"

#include <memory>
#include <utility>

namespace conference {

/// Registers the SeatAvailability aggregate, the remaining-seats view and the
/// reservation saga on `rt`. The saga goes last: registering it starts the router (which
/// ends aggregate registration) and recovers unfinished reservations, whose deadlines
/// are armed again. `clock` is the time the saga's deadlines follow (null: the system
/// clock; tests and the demo pass a virtual_saga_clock).
/// Throws what the runtime's register_* throw (std::invalid_argument when called twice,
/// std::logic_error when the runtime is not running, view_store_error).
inline void register_conference(evident::runtime& rt,
                                std::shared_ptr<const evident::saga_clock> clock = nullptr,
                                evident::saga_options opts = {}) {
  rt.register_aggregate<seat_availability_aggregate>();
  rt.register_view<remaining_seats_view>();
  rt.register_saga(evident::make_saga_model<reservation_saga>(), std::move(opts), std::move(clock));
}

} // namespace conference
