#pragma once

#include "evident/persistence/journal.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace evident {

/// Whether a failed append reached the wrapped journal before the error was reported.
enum class failure_point : uint8_t {
  /// Nothing is written; the caller gets the error (a commit that failed). Default.
  before_write,
  /// The append is written (and committed) by the wrapped journal, then the caller gets
  /// the error anyway: a commit whose acknowledgement was lost. The caller cannot tell
  /// the two apart, which is the point of `io_error` ("outcome unknown").
  after_write,
};

/// A journal decorator for fault tests: fails, rejects or delays the Nth append, or
/// holds every append until the test releases it (STYLE.md, "Tests").
///
/// Appends are numbered 1, 2, 3, ... in the order they enter this object, counting
/// both `append` calls and each request of an `append_batch` call (a batch of three
/// requests takes three numbers, in request order). `appends()` says how many were
/// numbered so far, so `fail_nth_append(j.appends() + 1)` targets the next one.
/// Every other member passes straight through to the wrapped journal.
///
/// What an append that matches a rule gets:
///
///   rule                     wrapped journal sees        caller gets
///   fail_nth_append          nothing (before_write)      the error (default io_error)
///                            the append (after_write)    the error
///   reject_nth_append        nothing                     the error (default too_large)
///   delay_nth_append         the append, after a sleep   the wrapped journal's answer
///
/// In a batch, rules act per request: the other requests of the batch are passed on in
/// one `append_batch` call and get the wrapped journal's answers (a request removed
/// from a batch is not seen by later requests, as if it had failed alone). A delay
/// holds the whole call, once, for the longest delay that matched any of its requests.
/// A rule fires once; a later rule for the same number replaces an earlier fail or
/// reject (delays are kept separately, so a delayed append may also fail).
///
/// `hold()` makes every append and append_batch call that enters afterwards wait until
/// `release()`, so a test can observe "nothing answered before the commit". A held call
/// has its numbers already (they are given on entry) but takes its rules only when the
/// hold ends, so a rule set while an append waits still applies to it. The wait is bounded by
/// `hold_timeout()` (default 10 s): a test that forgets to release is slowed down, never hung; the
/// call then goes on as if released and `expired_holds()` counts it.
///
/// Thread: any thread; one mutex guards the rules and counters. The wrapped journal is
/// called without holding it, so reads and held appends never block one another.
class failing_journal final : public journal {
public:
  /// Default bound of a hold.
  static constexpr std::chrono::milliseconds default_hold_timeout{10'000};

  /// Throws std::invalid_argument when `inner` is null.
  explicit failing_journal(std::shared_ptr<journal> inner);

  ~failing_journal() override;

  // -- rules ----------------------------------------------------------------------

  /// Append number `n` fails with `code` (io_error: "outcome unknown"). With
  /// `failure_point::after_write` the append is written first (a lost acknowledgement).
  failing_journal& fail_nth_append(uint64_t n, errc code = errc::io_error,
                                   failure_point at = failure_point::before_write);

  /// Append number `n` is refused with `code` and nothing is written (a refusal such as
  /// too_large or invalid_input: the caller must not retry it).
  failing_journal& reject_nth_append(uint64_t n, errc code = errc::too_large);

  /// The call carrying append number `n` sleeps `d` before it goes on (a slow fsync).
  failing_journal& delay_nth_append(uint64_t n, std::chrono::milliseconds d);

  /// Drops every rule that has not fired yet (holds are not affected).
  void clear_rules();

  // -- hold / release -------------------------------------------------------------

  /// Appends that enter from now on wait until `release()` (bounded by hold_timeout).
  void hold();

  /// Lets every waiting append go on and stops holding new ones.
  void release();

  /// Bound of one wait in `hold`; default 10 s.
  void hold_timeout(std::chrono::milliseconds d);
  std::chrono::milliseconds hold_timeout() const;

  /// Calls (append or append_batch) waiting in a hold right now.
  size_t held() const;

  /// Waits up to `timeout` until at least `n` calls wait in a hold. Returns whether
  /// they do (lets a test know the writer is "inside the commit").
  [[nodiscard]] bool wait_held(size_t n, std::chrono::milliseconds timeout);

  /// Waits up to `timeout` until at least `n` appends have been numbered (entered).
  [[nodiscard]] bool wait_appends(uint64_t n, std::chrono::milliseconds timeout);

  // -- counters -------------------------------------------------------------------

  /// Appends numbered so far (each request of a batch counts as one).
  uint64_t appends() const;
  /// Calls of `append`.
  uint64_t append_calls() const;
  /// Calls of `append_batch`.
  uint64_t batch_calls() const;
  /// Appends that got an injected error (fail or reject).
  uint64_t injected_failures() const;
  /// Holds that ended by hold_timeout instead of release().
  uint64_t expired_holds() const;

  const std::shared_ptr<journal>& inner() const noexcept {
    return inner_;
  }

  // -- journal --------------------------------------------------------------------

  expected<append_result> append(const append_request& req) override;
  std::vector<expected<append_result>> append_batch(std::span<const append_request> reqs) override;
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
  struct fault {
    errc code = errc::io_error;
    bool reject = false;
    failure_point at = failure_point::before_write;
  };

  /// What one numbered append is to get.
  struct plan {
    uint64_t number = 0;
    std::optional<fault> f;
  };

  /// Numbers `count` appends, waits out a hold, then takes their rules.
  /// Returns the plans and sets the delay to sleep.
  std::vector<plan> enter(size_t count, bool batch, std::chrono::milliseconds& delay);

  error injected(const plan& p) const;

  std::shared_ptr<journal> inner_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::map<uint64_t, fault> faults_;
  std::map<uint64_t, std::chrono::milliseconds> delays_;
  bool holding_ = false;
  /// Incremented by release(): a waiter leaves when the generation it saw is over.
  uint64_t generation_ = 0;
  std::chrono::milliseconds hold_timeout_ = default_hold_timeout;
  size_t held_ = 0;
  uint64_t appends_ = 0;
  uint64_t append_calls_ = 0;
  uint64_t batch_calls_ = 0;
  uint64_t injected_ = 0;
  uint64_t expired_holds_ = 0;
};

} // namespace evident
