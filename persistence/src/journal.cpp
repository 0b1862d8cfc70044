#include "evident/persistence/journal.hpp"

namespace evident {

journal::~journal() {
  // nop
}

std::vector<expected<append_result>>
journal::append_batch_deferred(std::span<const append_request> reqs) {
  return append_batch(reqs);
}

bool journal::defers_durability() const noexcept {
  return true;
}

status journal::sync() {
  return {};
}

std::string to_string(const expected_version& x) {
  switch (x.k) {
    case expected_version::kind::any:
      return "any";
    case expected_version::kind::no_stream:
      return "no_stream";
    case expected_version::kind::stream_exists:
      return "stream_exists";
    default:
      return std::to_string(x.version);
  }
}

std::string_view to_string(stream_state x) noexcept {
  switch (x) {
    case stream_state::live:
      return "live";
    case stream_state::soft_deleted:
      return "soft_deleted";
    default:
      return "tombstoned";
  }
}

expected<std::vector<recorded_event>> journal::read_stream(const std::string& stream,
                                                           const read_options& opts) {
  std::vector<recorded_event> result;
  auto err = read_stream(stream, opts, [&](const recorded_event& e) {
    result.push_back(e);
    return true;
  });
  if (err)
    return err;
  return result;
}

expected<std::vector<recorded_event>> journal::read_all(uint64_t from_position,
                                                        uint64_t max_count) {
  std::vector<recorded_event> result;
  auto err = read_all(from_position, max_count, [&](const recorded_event& e) {
    result.push_back(e);
    return true;
  });
  if (err)
    return err;
  return result;
}

} // namespace evident
