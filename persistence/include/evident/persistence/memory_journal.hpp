#pragma once

#include "evident/persistence/journal.hpp"
#include "evident/persistence/options.hpp"

#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace evident {

/// A journal in memory with the same contract as lmdb_journal (same limits, same
/// errors), for unit tests and the aggregate test kit. Nothing survives the object.
///
/// Thread: any thread; one mutex guards everything.
class memory_journal final : public journal {
public:
  /// Only the limits of `opts` are used (path, map size and durability are ignored).
  explicit memory_journal(journal_options opts = {});

  expected<append_result> append(const append_request& req) override;
  std::vector<expected<append_result>> append_batch(std::span<const append_request> reqs) override;
  /// False: a commit is in memory when it returns, and no flush would add anything.
  bool defers_durability() const noexcept override;
  status read_stream(const std::string& stream, const read_options& opts,
                     const event_visitor& f) override;
  status read_all(uint64_t from_position, uint64_t max_count, const event_visitor& f) override;
  expected<stream_head> head(const std::string& stream) override;
  expected<std::vector<stream_head>> streams() override;
  expected<uint64_t> last_position() override;
  expected<std::optional<append_result>> find_command(const std::string& stream,
                                                      const std::string& command_id) override;
  status delete_to(const std::string& stream, uint64_t n) override;
  status truncate_before(const std::string& stream, uint64_t n) override;
  status soft_delete(const std::string& stream) override;
  status tombstone(const std::string& stream) override;

  using journal::read_all;
  using journal::read_stream;

private:
  struct stream_entry {
    stream_head head;
    std::vector<uint64_t> positions; ///< positions[v - 1] = position of version v
  };

  /// The head of `stream` (version 0 and live when it was never written). Needs mtx_.
  stream_head head_of(const std::string& stream) const;

  /// One append under mtx_ (append and append_batch share it).
  expected<append_result> append_locked(const append_request& req);

  /// Replaces the head of a stream after a delete. Needs mtx_.
  void set_head(const stream_head& h);

  /// Visits `events` without holding mtx_, so a visitor may call back into the journal.
  static status visit(const std::vector<const recorded_event*>& events, const event_visitor& f);

  journal_options opts_;
  std::mutex mtx_;
  /// log_[i] has position i + 1. A deque because its elements never move: readers
  /// collect pointers under the lock and visit them after releasing it.
  std::deque<recorded_event> log_;
  std::map<std::string, stream_entry> streams_;
  std::map<std::pair<std::string, std::string>, append_result> dedup_;
};

} // namespace evident
