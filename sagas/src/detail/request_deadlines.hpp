#pragma once

// Internal to evident_sagas: the deadlines of requests the saga manager sends without a
// CAF timeout (see "Timeouts" at the top of saga_manager.cpp).
//
// One list per request kind. Each kind has a single constant timeout, so the order of
// sending is the order of expiry: the head is always the next request to time out and
// the list needs no heap. An answer unlinks its entry wherever it is (O(1)), so a head
// that stays unanswered does not make the answered entries behind it pile up.
//
// Entries live in slots of one vector, reused through a free list: in steady state
// nothing is allocated, and the vector's size is the peak number of requests out at
// once (bounded by the manager's in-flight windows).
//
// Slot life:
//
//   add ──▶ linked ──expire_until──▶ unlinked (the timeout is on its way to the handler)
//             │                          │
//             └──────── release ◀────────┘   (the response handler ran: the slot is free)
//
// `release` is called exactly once per slot, by the request's response handler; CAF runs
// that handler exactly once (on the answer or on the timeout, whichever comes first), so
// a slot is never freed twice nor reused while its handler is pending.

#include <caf/actor_clock.hpp>
#include <caf/message_id.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

namespace evident::detail {

class request_deadlines {
public:
  using time_point = caf::actor_clock::time_point;

  /// Registers a request (its response id) due at `due`, which must be no earlier than
  /// the `due` of every linked entry. Returns its slot, for `release`.
  uint32_t add(time_point due, caf::message_id id) {
    uint32_t i;
    if (free_ != none) {
      i = free_;
      free_ = slots_[i].next;
    } else {
      i = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    auto& s = slots_[i];
    s.due = due;
    s.id = id;
    s.linked = true;
    s.prev = tail_;
    s.next = none;
    if (tail_ != none)
      slots_[tail_].next = i;
    else
      head_ = i;
    tail_ = i;
    return i;
  }

  /// The request in slot `i` is answered (or its timeout was handled): frees the slot.
  void release(uint32_t i) noexcept {
    auto& s = slots_[i];
    if (s.linked)
      unlink(i);
    s.next = free_;
    free_ = i;
  }

  /// When the oldest unanswered request expires; nullopt when none is out.
  std::optional<time_point> next_due() const noexcept {
    if (head_ == none)
      return std::nullopt;
    return slots_[head_].due;
  }

  /// Unlinks every request due at or before `now`, oldest first, and calls `f(id)` for
  /// each. Their slots stay taken until `release`.
  template <class F>
  void expire_until(time_point now, F&& f) {
    while (head_ != none && slots_[head_].due <= now) {
      auto i = head_;
      unlink(i);
      f(slots_[i].id);
    }
  }

  /// Requests out and not yet expired.
  bool empty() const noexcept {
    return head_ == none;
  }

private:
  static constexpr uint32_t none = std::numeric_limits<uint32_t>::max();

  struct entry {
    time_point due;
    caf::message_id id;
    uint32_t prev = none;
    uint32_t next = none; // the next linked slot, or the next free one
    bool linked = false;
  };

  void unlink(uint32_t i) noexcept {
    auto& s = slots_[i];
    if (s.prev != none)
      slots_[s.prev].next = s.next;
    else
      head_ = s.next;
    if (s.next != none)
      slots_[s.next].prev = s.prev;
    else
      tail_ = s.prev;
    s.linked = false;
    s.prev = s.next = none;
  }

  std::vector<entry> slots_;
  uint32_t head_ = none;
  uint32_t tail_ = none;
  uint32_t free_ = none;
};

} // namespace evident::detail
