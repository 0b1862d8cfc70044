#pragma once

// A journal decorator for tests on CAF's real scheduler: holds every append_batch that
// enters while closed until the test opens the gate, so that a test can check that
// nothing was answered before the commit; and fails the next batch on demand (a commit
// whose outcome is unknown). Every wait is bounded (10 s): a broken test fails, it does
// not hang.

#include "evident/persistence/journal.hpp"
#include "evident/persistence/memory_journal.hpp"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace evident::test {

class gated_journal final : public journal {
public:
  static constexpr std::chrono::seconds max_wait{10};

  explicit gated_journal(std::shared_ptr<journal> inner = nullptr)
    : inner_(inner ? std::move(inner) : std::make_shared<memory_journal>()) {
    // nop
  }

  // -- controls ---------------------------------------------------------------------

  /// Batches that enter from now on wait until `open`.
  void close() {
    std::lock_guard guard{mtx_};
    closed_ = true;
  }
  void open() {
    std::lock_guard guard{mtx_};
    closed_ = false;
    cv_.notify_all();
  }
  /// Waits until `n` batches have entered append_batch since construction.
  bool wait_entered(size_t n) {
    std::unique_lock guard{mtx_};
    return cv_.wait_for(guard, max_wait, [&] { return entered_ >= n; });
  }
  size_t entered() const {
    std::lock_guard guard{mtx_};
    return entered_;
  }
  /// The next batch fails as a whole with `code`; nothing is written.
  void fail_next_batch(errc code) {
    std::lock_guard guard{mtx_};
    fail_next_ = code;
  }
  journal& inner() {
    return *inner_;
  }

  // -- journal ----------------------------------------------------------------------

  expected<append_result> append(const append_request& req) override {
    return inner_->append(req);
  }

  std::vector<expected<append_result>>
  append_batch(std::span<const append_request> reqs) override {
    std::optional<errc> fail;
    {
      std::unique_lock guard{mtx_};
      ++entered_;
      cv_.notify_all();
      cv_.wait_for(guard, max_wait, [&] { return !closed_; });
      std::swap(fail, fail_next_);
    }
    if (fail) {
      std::vector<expected<append_result>> result;
      for (size_t i = 0; i < reqs.size(); ++i)
        result.emplace_back(error{*fail, "injected failure"});
      return result;
    }
    return inner_->append_batch(reqs);
  }

  status read_stream(const std::string& stream, const read_options& opts,
                     const event_visitor& f) override {
    return inner_->read_stream(stream, opts, f);
  }
  status read_all(uint64_t from, uint64_t max_count, const event_visitor& f) override {
    return inner_->read_all(from, max_count, f);
  }
  expected<stream_head> head(const std::string& stream) override {
    return inner_->head(stream);
  }
  expected<std::vector<stream_head>> streams() override {
    return inner_->streams();
  }
  expected<uint64_t> last_position() override {
    return inner_->last_position();
  }
  expected<std::optional<append_result>> find_command(const std::string& stream,
                                                      const std::string& command_id) override {
    return inner_->find_command(stream, command_id);
  }
  status delete_to(const std::string& stream, uint64_t n) override {
    return inner_->delete_to(stream, n);
  }
  status truncate_before(const std::string& stream, uint64_t n) override {
    return inner_->truncate_before(stream, n);
  }
  status soft_delete(const std::string& stream) override {
    return inner_->soft_delete(stream);
  }
  status tombstone(const std::string& stream) override {
    return inner_->tombstone(stream);
  }

  using journal::read_all;
  using journal::read_stream;

private:
  std::shared_ptr<journal> inner_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  bool closed_ = false;
  size_t entered_ = 0;
  std::optional<errc> fail_next_;
};

} // namespace evident::test
