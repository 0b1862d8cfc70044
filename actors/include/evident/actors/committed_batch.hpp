#pragma once

#include "evident/actors/message_types.hpp"
#include "evident/persistence/envelope.hpp"

#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <vector>

namespace evident {

/// The events one journal commit stored, as the journal writer hands them to its
/// listener (the event bus) after the commit returned and before any append is answered.
/// Only successful appends contribute; refused or failed appends and command-id retries
/// (`append_result::duplicate`) contribute nothing.
struct committed_batch {
  /// In global order (strictly increasing positions), each with its stream version,
  /// event id and time exactly as stored.
  std::vector<recorded_event> events;

  bool empty() const noexcept {
    return events.empty();
  }
  /// 0 when empty.
  uint64_t first_position() const noexcept {
    return events.empty() ? 0 : events.front().position;
  }
  /// 0 when empty.
  uint64_t last_position() const noexcept {
    return events.empty() ? 0 : events.back().position;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, committed_batch& x) {
  return f(caf::meta::type_name("evident.committed_batch"), x.events);
}

} // namespace evident
