#pragma once

#include "evident/persistence/errc.hpp"
#include "evident/persistence/uuid.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evident {

/// Event metadata: string keys to string values, in the order given.
using metadata = std::vector<std::pair<std::string, std::string>>;

/// An event as a writer hands it to the journal.
struct event_data {
  /// The registered type name, e.g. "bank.deposited".
  std::string type;
  /// The schema version of `payload` (starts at 1; upcasters lift old ones on read).
  uint32_t schema = 1;
  /// The event itself, msgpack-encoded by the type registry (opaque to the journal).
  std::string payload;
  /// Defaults to a random id when nil.
  uuid event_id;
  std::string correlation_id;
  std::string causation_id;
  evident::metadata meta;
  /// Nanoseconds since the Unix epoch; 0 means "when the journal writes it".
  int64_t time_ns = 0;
};

/// An event as stored and read back.
struct recorded_event {
  uint64_t position = 0;
  std::string stream;
  uint64_t version = 0;
  std::string type;
  uint32_t schema = 1;
  int64_t time_ns = 0;
  uuid event_id;
  std::string correlation_id;
  std::string causation_id;
  /// The command id of the append that wrote this event (empty when none was given).
  std::string command_id;
  evident::metadata meta;
  std::string payload;
};

/// The stored form of one event, the value of the `events` DB (see docs/format.md):
///
///   body    = msgpack array [format, stream, version, type, schema, time_ns,
///                            event_id (bin 16), correlation_id, causation_id,
///                            command_id, metadata (map str->str), payload (bin)]
///   trailer = 0xce + CRC32C(position as 8 bytes big-endian ++ body), big-endian
///
/// The position is the key, not part of the body, and is folded into the checksum so a
/// record that lands under the wrong key is caught.
namespace envelope {

/// Format tag stored as the first element of every body.
inline constexpr uint32_t record_format = 1;
/// Length of the checksum trailer.
inline constexpr size_t trailer_size = 5;

/// Appends the stored form of `e` (whose position, stream and version are set) to `out`.
void encode(const recorded_event& e, std::string& out);

/// Appends the stored form of an event given by parts (the append path: no copy of the
/// payload into a recorded_event first).
void encode(uint64_t position, std::string_view stream, uint64_t version,
            std::string_view command_id, const event_data& e, int64_t time_ns,
            const uuid& event_id, std::string& out);

/// Size in bytes `encode` would produce; used for limit checks before encoding.
size_t encoded_size(const recorded_event& e) noexcept;

/// Upper bound of the stored size of `e` appended to `stream` (any version or time).
size_t encoded_size_bound(std::string_view stream, std::string_view command_id,
                          const event_data& e) noexcept;

/// Verifies the checksum of a stored record and decodes it.
/// Fails with: corrupted (bad checksum, truncated, or not our layout), naming `position`.
[[nodiscard]] expected<recorded_event> decode(uint64_t position, std::string_view stored);

/// Decodes into `out`, reusing its buffers (the replay hot path).
[[nodiscard]] status decode_into(uint64_t position, std::string_view stored, recorded_event& out);

/// The fields an index rebuild needs, without copying the payload.
struct header {
  std::string_view stream;
  uint64_t version = 0;
  std::string_view command_id;
};

/// Verifies the checksum and extracts stream, version and command id. The views point
/// into `stored`.
[[nodiscard]] status decode_header(uint64_t position, std::string_view stored, header& out);

} // namespace envelope

/// CRC32C (Castagnoli) of `data`, continuing from `crc` (0 to start). Uses SSE4.2
/// when the CPU has it.
uint32_t crc32c(std::string_view data, uint32_t crc = 0) noexcept;

} // namespace evident
