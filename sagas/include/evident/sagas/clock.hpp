#pragma once

// The time sagas see: deadlines are due at saga-clock times, and every input carries the
// saga clock's `now`. Production uses the system clock; tests use a virtual clock that
// moves only when told, so "a deadline that expired while the process was down" is a
// line of test code, not a sleep.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

namespace evident {

/// Thread: `now_ns` may be called from any thread at once.
class saga_clock {
public:
  virtual ~saga_clock();
  /// Nanoseconds since the Unix epoch.
  virtual int64_t now_ns() const noexcept = 0;
};

/// std::chrono::system_clock.
class system_saga_clock final : public saga_clock {
public:
  int64_t now_ns() const noexcept override;
};

/// A clock that stands still until `advance` or `set` moves it. Starts at `start_ns`.
class virtual_saga_clock final : public saga_clock {
public:
  explicit virtual_saga_clock(int64_t start_ns = 1'700'000'000'000'000'000) : now_(start_ns) {
    // nop
  }
  int64_t now_ns() const noexcept override {
    return now_.load();
  }
  void advance(std::chrono::nanoseconds d) noexcept {
    now_ += d.count();
  }
  void set(int64_t t) noexcept {
    now_ = t;
  }

private:
  std::atomic<int64_t> now_;
};

/// A shared system clock.
std::shared_ptr<const saga_clock> default_saga_clock();

} // namespace evident
