#pragma once

// What a subscription hands its subscriber: the contract between the event bus side
// (subscriptions, actors/) and the consumers (views here, sagas on floor 3).
//
// Protocol, from the subscription to its subscriber actor:
//
//   (deliver_atom, event_batch) -> uint64_t handled_through | caf::error
//
// One batch is in flight at a time: the subscription sends the next batch only after
// the subscriber answered the previous one, so a slow subscriber slows nobody but
// itself (the subscription drops back to reading the journal when it falls behind).
// The answer is the position through which the subscriber has handled everything
// (normally `batch.through`); the subscription may checkpoint it. An error answer
// stops the subscription with that error.

#include "evident/actors/message_types.hpp"
#include "evident/persistence/envelope.hpp"

#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace evident {

/// A run of committed events for one subscription, in global order.
struct event_batch {
  /// The subscription's name (its checkpoint key).
  std::string subscription;
  /// The events that passed the subscription's filter, strictly increasing positions.
  std::vector<recorded_event> events;
  /// Every position up to and including `through` is covered by this batch and the
  /// earlier ones: events the filter skipped count as covered. So a subscriber that
  /// handled the batch may store `through` as its checkpoint even when `events` is
  /// empty. Always >= the last event's position.
  uint64_t through = 0;
  /// True when the events came from the bus (live), false when read from the journal
  /// (catch-up).
  bool live = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_batch& x) {
  return f(caf::meta::type_name("evident.event_batch"), x.subscription, x.events, x.through,
           x.live);
}

} // namespace evident
