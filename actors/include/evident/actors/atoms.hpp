#pragma once

#include <caf/atom.hpp>

/// The atoms of the actor floor's message protocols (CAF 0.17: 64-bit values of at most
/// 10 characters from [A-Za-z0-9_ ]; `x_atom::value` is what you send).
namespace evident {

/// (append_atom, append_request) -> append_result | caf::error; see journal_writer.hpp.
using append_atom = caf::atom_constant<caf::atom("append")>;

/// (metrics_atom) -> a component's metrics, e.g. journal_writer_metrics.
using metrics_atom = caf::atom_constant<caf::atom("metrics")>;

/// (command_atom, type, id, command_id, command_box) -> reply_box | caf::error to the
/// aggregate router; (command_atom, command_id, command_box) to one aggregate. See
/// aggregate_router.hpp.
using command_atom = caf::atom_constant<caf::atom("command")>;

/// (state_atom, type, id, state_query) -> aggregate_state | caf::error: a temporal query.
using state_atom = caf::atom_constant<caf::atom("state")>;

/// Router -> aggregate: stop if idle (nothing stashed or in flight).
using passivate_atom = caf::atom_constant<caf::atom("passivate")>;

/// (snapshot_atom, snapshot, keep_last) to the snapshot writer; see snapshot_writer.hpp.
using snapshot_atom = caf::atom_constant<caf::atom("snapshot")>;

/// (deliver_atom, event_batch) -> uint64_t: a subscription to its subscriber; see
/// event_batch.hpp.
using deliver_atom = caf::atom_constant<caf::atom("deliver")>;

/// (subscribe_atom, caf::actor) -> uint64_t to the event bus; see event_bus.hpp.
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;

/// (unsubscribe_atom, caf::actor) to the event bus; see event_bus.hpp.
using unsubscribe_atom = caf::atom_constant<caf::atom("unsub")>;

/// (query_atom, view_query, ...) -> view_result to a view; see view.hpp.
using query_atom = caf::atom_constant<caf::atom("query")>;

/// (reset_atom) -> uint64_t to a view: drop its rows and rebuild; see view.hpp.
using reset_atom = caf::atom_constant<caf::atom("reset")>;

} // namespace evident
