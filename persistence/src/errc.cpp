#include "evident/persistence/errc.hpp"

#include <array>

namespace evident {

namespace {

constexpr std::array<std::string_view, 15> errc_names = {
  "none",          "wrong_expected_version", "stream_deleted", "stream_not_found",
  "corrupted",     "storage_full",           "too_large",      "invalid_input",
  "not_a_journal", "unsupported_format",     "unknown_event_type", "io_error",
  "overloaded",    "timeout",                "unavailable",
};

} // namespace

std::string_view to_string(errc x) noexcept {
  auto i = static_cast<size_t>(x);
  return i < errc_names.size() ? errc_names[i] : std::string_view{"unknown_error"};
}

std::optional<errc> errc_from_string(std::string_view name) noexcept {
  for (size_t i = 0; i < errc_names.size(); ++i)
    if (errc_names[i] == name)
      return static_cast<errc>(i);
  return std::nullopt;
}

std::string to_string(const error& x) {
  std::string result{to_string(x.code)};
  if (!x.message.empty()) {
    result += ": ";
    result += x.message;
  }
  return result;
}

} // namespace evident
