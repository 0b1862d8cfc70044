#include "evident/persistence/uuid.hpp"

#include <random>

namespace evident {

uuid uuid::random() {
  // One generator per thread: no lock on the append path, and seeded from the OS.
  thread_local std::mt19937_64 gen{std::random_device{}()};
  uuid result;
  for (size_t i = 0; i < 16; i += 8) {
    auto x = gen();
    for (size_t j = 0; j < 8; ++j)
      result.bytes[i + j] = static_cast<uint8_t>(x >> (j * 8));
  }
  result.bytes[6] = static_cast<uint8_t>((result.bytes[6] & 0x0f) | 0x40); // version 4
  result.bytes[8] = static_cast<uint8_t>((result.bytes[8] & 0x3f) | 0x80); // RFC 4122
  return result;
}

bool uuid::is_nil() const noexcept {
  for (auto b : bytes)
    if (b != 0)
      return false;
  return true;
}

std::string uuid::to_string() const {
  static constexpr char hex[] = "0123456789abcdef";
  std::string result;
  result.reserve(36);
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      result += '-';
    result += hex[bytes[i] >> 4];
    result += hex[bytes[i] & 0x0f];
  }
  return result;
}

std::optional<uuid> uuid::parse(std::string_view text) {
  if (text.size() != 36)
    return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  uuid result;
  size_t out = 0;
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-')
        return std::nullopt;
      ++i;
      continue;
    }
    auto hi = nibble(text[i]);
    auto lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    result.bytes[out++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return result;
}

} // namespace evident
