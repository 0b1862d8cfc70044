#pragma once

// Internal to evident_actors: a FIFO that is one pointer and owns no memory while empty.
//
// Why not std::deque: libstdc++'s deque allocates its map and a 512-byte node at
// construction, so every idle aggregate paid ~1.2 KB for its two empty queues (the
// stash and the in-flight FIFO). Why not a bare vector plus a read index: that is 32
// bytes per queue inside every actor, idle or not. Here the vector and its read index
// live in a block that exists only while the FIFO holds something: pop_front only moves
// the index, and when the last element leaves the block is given back. An aggregate
// with one command at a time thus allocates twice per command and holds 8 bytes per
// queue while idle; a hot aggregate keeps its block as long as commands overlap.

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace evident::detail {

template <class T>
class fifo {
public:
  using iterator = typename std::vector<T>::iterator;

  bool empty() const noexcept {
    return body_ == nullptr; // invariant: no block while empty
  }

  size_t size() const noexcept {
    return body_ ? body_->items.size() - body_->head : 0;
  }

  T& front() noexcept {
    return body_->items[body_->head];
  }

  T& operator[](size_t i) noexcept {
    return body_->items[body_->head + i];
  }

  iterator begin() noexcept {
    return body_ ? body_->items.begin() + static_cast<std::ptrdiff_t>(body_->head) : iterator{};
  }

  iterator end() noexcept {
    return body_ ? body_->items.end() : iterator{};
  }

  template <class... Ts>
  T& emplace_back(Ts&&... xs) {
    if (!body_)
      body_ = std::make_unique<body>();
    auto& b = *body_;
    // Reuse the consumed prefix before the vector would grow: keeps a busy FIFO's
    // buffer bounded by the most elements it held at once.
    if (b.head > 0 && b.items.size() == b.items.capacity()) {
      b.items.erase(b.items.begin(), begin());
      b.head = 0;
    }
    return b.items.emplace_back(std::forward<Ts>(xs)...);
  }

  void push_back(T x) {
    emplace_back(std::move(x));
  }

  void pop_front() {
    auto& b = *body_;
    b.items[b.head] = T{}; // release what the element holds now, not at the next compaction
    if (++b.head == b.items.size())
      clear();
  }

  void clear() noexcept {
    body_.reset();
  }

private:
  struct body {
    std::vector<T> items;
    size_t head = 0;
  };

  std::unique_ptr<body> body_;
};

} // namespace evident::detail
