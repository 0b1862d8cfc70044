#pragma once

// The event bus: the journal writer's listener actor. It hands every committed batch, in
// global position order, to the live subscribers (subscriptions, see subscription.hpp).
//
// Protocol (untyped `caf::actor`; atoms in atoms.hpp):
//
//   committed_batch                       from the writer (its `commit_listener::actor`)
//   (subscribe_atom, caf::actor sub) -> uint64_t
//       Registers `sub` and monitors it. Every batch the bus receives after this message
//       goes to `sub`; the answer is the last position the bus published before (0 when
//       none yet). Subscribing twice is harmless.
//   (unsubscribe_atom, caf::actor sub)    Forgets `sub`.
//   (metrics_atom) -> event_bus_metrics
//
// and to each subscriber, per committed batch: the writer's message itself (one
// `committed_batch` element). The bus forwards the one caf::message it received, so N
// subscribers share one copy of the events (CAF messages are copy-on-write); a
// subscriber that only reads the batch (`const committed_batch&`) never copies it.
//
// The bus never waits for a subscriber: a send is a mailbox push. Backpressure is the
// subscriptions' business (bounded buffers, fall back to the journal). A subscriber
// that terminates is dropped when its down message arrives.
//
// Why a seam needs no lock: the writer publishes batch k only after batch k committed,
// and the bus handles messages in order. So a subscriber that got the answer to
// `subscribe` receives every batch published after it, and every batch published
// before it is already readable from the journal.

#include "evident/actors/committed_batch.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>

namespace evident {

/// The bus's counters since it started.
struct event_bus_metrics {
  /// Batches and events received from the writer (and fanned out).
  uint64_t batches = 0;
  uint64_t events = 0;
  /// Messages sent to subscribers (one per batch and subscriber).
  uint64_t deliveries = 0;
  /// Live subscribers now.
  uint64_t subscribers = 0;
  /// Subscribers dropped because they terminated without unsubscribing.
  uint64_t dropped = 0;
  /// The last position published (the journal head as far as the bus knows).
  uint64_t head = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_bus_metrics& x) {
  return f(caf::meta::type_name("evident.event_bus_metrics"), x.batches, x.events, x.deliveries,
           x.subscribers, x.dropped, x.head);
}

/// Spawns the bus (a cooperative actor: it never blocks). `head` is the journal's last
/// position when the bus starts (what `subscribe` answers until the first batch).
/// Give it to the writer as `commit_listener{.actor = bus}`.
///
/// Stopping: any exit message stops it; subscribers are not told (they notice nothing
/// but the silence; a subscription monitors the bus and stops with it).
caf::actor spawn_event_bus(caf::actor_system& sys, uint64_t head = 0);

} // namespace evident
