#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace evident {

/// A 16-byte id (RFC 4122 version 4 when generated here). Stored as 16 raw bytes,
/// shown in the canonical 8-4-4-4-12 hex form.
struct uuid {
  std::array<uint8_t, 16> bytes{};

  /// A random version-4 id. Thread-safe.
  static uuid random();
  static std::optional<uuid> parse(std::string_view text);
  bool is_nil() const noexcept;
  std::string to_string() const;
  friend bool operator==(const uuid&, const uuid&) = default;
  friend auto operator<=>(const uuid&, const uuid&) = default;
};

} // namespace evident
