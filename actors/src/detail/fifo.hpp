#pragma once

// Internal to evident_actors: a FIFO that owns no memory while it is empty.
//
// Why not std::deque: libstdc++'s deque allocates its map and a 512-byte node at
// construction, so every idle aggregate paid ~1.2 KB for its two empty queues (the
// stash and the in-flight FIFO). This one is a vector plus a read index: pop_front
// only moves the index, and when the last element leaves, the storage is given back.
// An aggregate with one command at a time thus allocates once per command and holds
// nothing while idle; a hot aggregate keeps its buffer as long as commands overlap.

#include <cstddef>
#include <utility>
#include <vector>

namespace evident::detail {

template <class T>
class fifo {
public:
  using iterator = typename std::vector<T>::iterator;

  bool empty() const noexcept {
    return head_ == items_.size();
  }

  size_t size() const noexcept {
    return items_.size() - head_;
  }

  T& front() noexcept {
    return items_[head_];
  }

  T& operator[](size_t i) noexcept {
    return items_[head_ + i];
  }

  iterator begin() noexcept {
    return items_.begin() + static_cast<std::ptrdiff_t>(head_);
  }

  iterator end() noexcept {
    return items_.end();
  }

  template <class... Ts>
  T& emplace_back(Ts&&... xs) {
    // Reuse the consumed prefix before the vector would grow: keeps a busy FIFO's
    // buffer bounded by the most elements it held at once.
    if (head_ > 0 && items_.size() == items_.capacity()) {
      items_.erase(items_.begin(), begin());
      head_ = 0;
    }
    return items_.emplace_back(std::forward<Ts>(xs)...);
  }

  void push_back(T x) {
    emplace_back(std::move(x));
  }

  void pop_front() {
    items_[head_] = T{}; // release what the element holds now, not at the next compaction
    if (++head_ == items_.size())
      clear();
  }

  void clear() noexcept {
    std::vector<T>{}.swap(items_);
    head_ = 0;
  }

private:
  std::vector<T> items_;
  size_t head_ = 0;
};

} // namespace evident::detail
