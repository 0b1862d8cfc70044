#pragma once

// CAF inspection for the persistence types that travel in floor-2 messages, and the one
// call that registers every floor-2 message type with an actor system.
//
// With these `inspect` overloads the types can be sent locally without registration
// (messages to the journal writer never leave the process). `add_message_types` gives
// them wire names for the day they do; registering means: identical names on every node.

#include "evident/persistence/envelope.hpp"
#include "evident/persistence/journal.hpp"
#include "evident/persistence/uuid.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/meta/type_name.hpp>

namespace evident {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, uuid& x) {
  return f(caf::meta::type_name("evident.uuid"), x.bytes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, expected_version& x) {
  return f(caf::meta::type_name("evident.expected_version"), x.k, x.version);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_data& x) {
  return f(caf::meta::type_name("evident.event_data"), x.type, x.schema, x.payload, x.event_id,
           x.correlation_id, x.causation_id, x.meta, x.time_ns);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, append_request& x) {
  return f(caf::meta::type_name("evident.append_request"), x.stream, x.expected, x.events,
           x.command_id);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, append_result& x) {
  return f(caf::meta::type_name("evident.append_result"), x.first_version, x.last_version,
           x.first_position, x.last_position, x.duplicate);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, recorded_event& x) {
  return f(caf::meta::type_name("evident.recorded_event"), x.position, x.stream, x.version,
           x.type, x.schema, x.time_ns, x.event_id, x.correlation_id, x.causation_id,
           x.command_id, x.meta, x.payload);
}

/// Registers every floor-2 message type (append_request, append_result, recorded_event,
/// committed_batch, journal_writer_metrics, state_query, router_metrics, snapshot,
/// snapshot_writer_metrics) under an "evident." name, and the error
/// renderer of `add_error_category`. Call once per config, on every node.
void add_message_types(caf::actor_system_config& cfg);

} // namespace evident
