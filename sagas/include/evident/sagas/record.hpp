#pragma once

// What a saga instance journals, and the pure rules that turn one input into the next
// record. The manager actor and the test kit run the same rules.
//
// Each instance has its own stream, "saga:<name>:<key>". Every handled input appends ONE
// event of type `saga_record_type` (one atomic append = one transaction) whose payload is
// a complete `saga_record`: the state after the input, the outbox (commands sent and not
// yet answered), the armed deadlines, the end, parking, and the highest source position
// applied. So recovery reads only the last event of each stream, and the stream as a
// whole is the instance's history.
//
//   input ──advance()──▶ next record ──append(expected = step - 1,
//                                             command id "step-<n>")──▶ journal
//                                               │ committed
//                                               ▼
//                                  dispatch new outbox entries, arm deadlines
//
// Dedup: an event whose position is <= `source_position` was applied already (the
// subscription re-delivers after a restart); it is skipped. Commands carry the id
// "<stream>/<step>/<index>", so a re-dispatch after a restart is answered from the
// aggregate's command-id record instead of being applied twice.

#include "evident/persistence/errc.hpp"
#include "evident/sagas/saga.hpp"

#include <msgpack.hpp>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace evident {

/// The event type of a saga's progress records.
inline constexpr std::string_view saga_record_type = "evident.saga";
/// Its schema.
inline constexpr uint32_t saga_record_schema = 1;

/// Where a saga instance is. `running`: commands are out (the outbox is not empty);
/// `waiting`: nothing is out, it waits for events or deadlines; `parked`: stopped with
/// an error until an operator retries it.
enum class saga_status : uint8_t {
  running = 0,
  waiting = 1,
  completed = 2,
  compensated = 3,
  failed = 4,
  parked = 5,
};

std::string_view to_string(saga_status x) noexcept;
std::optional<saga_status> saga_status_from_string(std::string_view x) noexcept;

inline std::ostream& operator<<(std::ostream& os, saga_status x) {
  return os << to_string(x);
}

inline std::ostream& operator<<(std::ostream& os, saga_end x) {
  return os << to_string(x);
}

/// True for completed, compensated and failed.
inline bool is_final(saga_status x) noexcept {
  return x == saga_status::completed || x == saga_status::compensated
         || x == saga_status::failed;
}

/// A command sent and not yet answered.
struct outbox_entry {
  std::string command_id;
  std::string tag;
  std::string target_type;
  std::string target_id;
  /// msgpack of the saga's `Spec::command`.
  std::string payload;
  MSGPACK_DEFINE(command_id, tag, target_type, target_id, payload)
  friend bool operator==(const outbox_entry&, const outbox_entry&) = default;
};

/// An armed deadline.
struct deadline_entry {
  std::string name;
  /// Saga-clock time (ns since the epoch) at which it expires.
  int64_t due_ns = 0;
  MSGPACK_DEFINE(name, due_ns)
  friend bool operator==(const deadline_entry&, const deadline_entry&) = default;
};

/// Which input parked a saga (what an operator's retry runs again).
enum class park_cause : uint8_t {
  none = 0,
  event = 1,    ///< the handler (or routing) failed on the event at `parked_ref` (a position)
  deadline = 2, ///< the handler failed on the deadline `parked_ref`
  outcome = 3,  ///< the handler failed on the outcome of command `parked_ref`
  dispatch = 4, ///< command `parked_ref` failed transiently `max_attempts` times
};

/// One progress record (the payload of one event in the saga's stream).
struct saga_record {
  /// The record's version in the saga stream (1 = first).
  uint64_t step = 0;
  /// Saga-clock time of the input; of the first record for `started_ns`.
  int64_t time_ns = 0;
  int64_t started_ns = 0;
  /// What was handled, for the history ("start bank.transfer_requested @12",
  /// "outcome debit ok", "deadline credit_timeout", "park: ...", "retry").
  std::string input;
  /// Highest source event position applied (or deferred); events at or below it are
  /// duplicates.
  uint64_t source_position = 0;
  /// msgpack of the saga's `Spec::state`.
  std::string state;
  std::vector<outbox_entry> outbox;
  std::vector<deadline_entry> deadlines;
  saga_end end = saga_end::none;
  /// Parking: cause none = not parked.
  park_cause parked = park_cause::none;
  std::string parked_ref;
  std::string error;
  /// Positions of events that arrived while parked (and, after a retry, those still to
  /// be replayed), in order.
  std::vector<uint64_t> deferred;

  saga_status status() const noexcept;

  template <class Packer>
  void msgpack_pack(Packer& pk) const {
    pk.pack_array(14);
    pk.pack(step), pk.pack(time_ns), pk.pack(started_ns), pk.pack(input);
    pk.pack(source_position), pk.pack(state), pk.pack(outbox), pk.pack(deadlines);
    pk.pack(static_cast<uint8_t>(end)), pk.pack(static_cast<uint8_t>(parked));
    pk.pack(parked_ref), pk.pack(error), pk.pack(deferred);
    pk.pack(uint8_t{1}); // record format, for later changes
  }
  void msgpack_unpack(const msgpack::object& o);
};

/// The event that stores `r` (type `saga_record_type`). Throws only what allocation throws.
event_data encode_record(const saga_record& r);

/// Decodes a stored record. Fails with corrupted (naming the position) when the type
/// or payload is not a saga record.
[[nodiscard]] expected<saga_record> decode_record(const recorded_event& e);

/// The deterministic id of the `index`-th command of record `step` of `stream`.
std::string saga_command_id(std::string_view stream, uint64_t step, size_t index);

/// Transient errors a dispatch retries (unavailable, overloaded, timeout, io_error,
/// storage_full, wrong_expected_version): the outcome is unknown or nothing happened.
bool is_transient(errc code) noexcept;

// -- the rules -------------------------------------------------------------------------

/// One input for `advance`. `replay` bypasses the dedup check (an operator's retry
/// replays a parked event whose position is recorded already).
struct saga_event_input {
  uint64_t position = 0;
  std::string stream;
  std::string type;
  routed_event routed;
  bool replay = false;
};

/// What `advance` produced.
struct advance_result {
  /// False when the input changed nothing (a duplicate, a stale outcome, an input for
  /// an ended saga): nothing to append.
  bool changed = false;
  /// Why nothing changed ("duplicate", "ended", "stale"), for metrics.
  std::string_view skipped;
  saga_record record;
  /// The state that goes with `record` (decoded).
  std::any state;
  /// True when the handler (not just bookkeeping) ran and failed: `record` is parked.
  bool parked_now = false;
  /// The aggregate commands of the outbox entries this input added, by command id, as
  /// the handler made them (`encoded_command::aggregate`): the first dispatch uses them
  /// instead of decoding the payloads. Not part of the record.
  std::vector<std::pair<std::string, command_box>> prepared;
};

/// The engine's view of one instance: its last record and decoded state.
struct saga_instance_view {
  std::string stream;
  const saga_record* record = nullptr; ///< nullptr: the instance does not exist yet
  const std::any* state = nullptr;     ///< nullptr with record
};

/// Applies an event. A new instance starts from the model's initial state (only a start
/// route creates one; a continue route for a missing instance is skipped as "unknown").
/// A parked instance defers the event; an ended one skips it. Never fails: a handler
/// error parks the instance.
advance_result advance_event(const saga_model& m, const saga_instance_view& inst,
                             const saga_event_input& in, int64_t now_ns);

/// Applies an expired deadline `name` (due at `due_ns`); skipped when the instance no
/// longer has that deadline with that due time, is parked or ended.
advance_result advance_deadline(const saga_model& m, const saga_instance_view& inst,
                                const std::string& name, int64_t due_ns, int64_t now_ns);

/// Applies a command's outcome. Skipped when the command is not in the outbox or the
/// instance is parked. After the saga ended, the entry is only removed.
advance_result advance_outcome(const saga_model& m, const saga_instance_view& inst,
                               command_outcome outcome, int64_t now_ns);

/// Parks the instance because command `command_id` kept failing with `err`.
advance_result park_dispatch(const saga_instance_view& inst, const std::string& command_id,
                             const error& err, int64_t now_ns);

/// Un-parks the instance (an operator's retry). A parked event goes back to the front
/// of `deferred`. Fails with invalid_input when the instance is not parked.
[[nodiscard]] expected<advance_result> unpark(const saga_instance_view& inst, int64_t now_ns);

} // namespace evident
