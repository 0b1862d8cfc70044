#pragma once

// Conversions the CLI needs between JSON text and what the journal stores: base64,
// UTF-8 checks, msgpack <-> JSON, ISO 8601 times and strict number parsing.
// Internal to tools/evident.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace evident::cli {

/// Every JSON object the CLI prints keeps its keys in the order they were set, so the
/// output is stable (export -> import -> export is byte-identical).
using json = nlohmann::ordered_json;

/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

/// Decodes standard base64 with padding; nullopt on any other character or length.
std::optional<std::string> base64_decode(std::string_view text);

/// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool valid_utf8(std::string_view s) noexcept;

/// A string that may hold any bytes, as JSON without loss: a JSON string when `s` is
/// valid UTF-8, otherwise {"base64": "..."}.
json lossless(std::string_view s);

/// The inverse of `lossless`; nullopt when `j` is neither form.
std::optional<std::string> from_lossless(const json& j);

/// "2024-05-01T12:00:00.123456789Z" for nanoseconds since the Unix epoch (UTC).
std::string format_time(int64_t time_ns);

/// The JSON form of a msgpack payload, or nullopt when `bytes` is not exactly one
/// msgpack value that maps to JSON. Mapping: nil, bool, int, float, array as
/// themselves; str must be valid UTF-8; map keys that are not strings become their
/// JSON text; bin -> {"$bin": base64}; ext -> {"$ext": type, "$bin": base64}.
/// Nesting deeper than `max_depth` is refused (the converter recurses).
std::optional<json> msgpack_to_json(std::string_view bytes);

/// The msgpack form of `j` (the inverse of `msgpack_to_json`, including the "$bin" and
/// "$ext" objects). Integers take their smallest encoding, floats are float64.
std::string json_to_msgpack(const json& j);

/// Deepest nesting `msgpack_to_json` and the JSON input parser accept.
inline constexpr size_t max_depth = 256;

/// The deepest nesting of arrays and objects in JSON text, without parsing it (so a
/// hostile line cannot exhaust the stack of the recursive encoders).
size_t json_depth(std::string_view text) noexcept;

/// Decimal digits only, no sign or spaces, within uint64_t.
std::optional<uint64_t> parse_u64(std::string_view text) noexcept;

} // namespace evident::cli
