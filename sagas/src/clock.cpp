#include "evident/sagas/clock.hpp"

namespace evident {

saga_clock::~saga_clock() = default;

int64_t system_saga_clock::now_ns() const noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::shared_ptr<const saga_clock> default_saga_clock() {
  static const auto clock = std::make_shared<const system_saga_clock>();
  return clock;
}

} // namespace evident
