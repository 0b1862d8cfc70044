#pragma once

// The journal writer: the one actor per node that writes events (group commit).
//
// Protocol (untyped `caf::actor`; the atoms live in atoms.hpp):
//
//   (append_atom, append_request) -> append_result | caf::error
//       Appends one request's events atomically with its expected-version check.
//       Move the request into the message (`std::move(req)`): the writer moves it on
//       into the batch, so the event payloads are never copied.
//   (metrics_atom) -> journal_writer_metrics
//       The writer's counters (answered between two commits).
//
// and to its listener actor, once each commit is durable: committed_batch (see
// committed_batch.hpp).
//
// Request or send? `request(writer, timeout, ...)` is the simple way (finite timeout,
// the writer can die). A caller that keeps one append in flight may instead `send` the
// append and `monitor` the writer: an append_result then arrives as an ordinary message
// and the writer's death as a down_msg. An error, though, goes to the sender's error
// handler (`set_error_handler`), never to a behavior's caf::error handler, and the
// default error handler terminates the actor (CAF 0.17.6): install one. That saves CAF
// 0.17.6's per-request timeout, which stays in the actor clock until it expires even
// after the response arrived (measured by bench/journal_bench: ~180 bytes and several
// microseconds of CPU per request at 10^5 requests/s).
//
// How an append travels:
//
//   mailbox: [a1 a2 a3 commit a4 a5 commit ...]
//             |  |  |    |             |
//             v  v  v    v             v
//           queue     commit #1:      commit #2: append_batch_deferred(a4 a5); its flush
//           (bounded) append_batch_   also carries #1's last page to the disk, so #1 is
//                     deferred(a1..3) durable now: the listener hears #1, then a1..a3
//                     held            are answered (by a helper actor on CAF's workers,
//                                     so that the writer's thread goes on committing)
//
// The first append that finds no commit scheduled sends the writer a `commit` message,
// which queues behind every append already waiting in the mailbox; when it comes up,
// the writer commits what it holds (at most `max_batch_events` events; the rest go into
// the next commit). No timer: the batch is whatever arrived during the previous commit.
//
// An LMDB commit under fsync flushes twice, its data pages and then its meta page. The
// writer commits with the meta flush left out and holds the answers: the data flush of
// the next commit that stores events flushes the meta page too, and the writer then
// answers the commit before it. When no commit follows (the mailbox holds no append),
// the writer flushes once itself (journal::sync) and answers. Under load each commit
// thus waits for one flush, not two; an idle append still gets both before its answer.
// Nothing is answered or published before it is durable. A journal whose commits are as
// durable as they get when they return (journal::defers_durability() false: no_meta_sync,
// no_sync, the memory journal) is answered at once.

#include "evident/actors/atoms.hpp"
#include "evident/actors/committed_batch.hpp"
#include "evident/actors/defaults.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/fwd.hpp"
#include "evident/actors/message_types.hpp"
#include "evident/persistence/journal.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/meta/type_name.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>

namespace evident {

/// How the journal writer batches. Durability (fsync or not) is the journal's option
/// (`journal_options::sync`), not the writer's.
struct group_commit_options {
  /// Most events written in one transaction; a single append with more events than this
  /// still goes alone into one transaction. Bigger batches raise throughput and the wait
  /// of the first request in a batch. Default: defaults::group_commit::max_batch_events
  /// (4,096).
  size_t max_batch_events = defaults::group_commit::max_batch_events;
  /// Most appends held (received, not yet committed). When full, further appends are
  /// answered at once with `errc::overloaded` and nothing is written: retry later.
  /// Default: defaults::group_commit::max_pending (10,000).
  size_t max_pending = defaults::group_commit::max_pending;
};

/// Checks `x`: both limits must be at least 1. Fails with errc::invalid_input.
[[nodiscard]] status validate(const group_commit_options& x);

/// Who hears about committed events: a callback, an actor, both, or neither.
/// With a listener, the writer gives each event without an id a random one and each
/// event without a time the commit's time before writing (the journal would otherwise
/// choose them), so that what it publishes equals what is stored.
struct commit_listener {
  /// Runs on the writer's thread once a commit that stored events is durable, before
  /// any append of that commit is answered. It delays every append, so keep it short and
  /// non-blocking. Exceptions it throws are caught and dropped.
  std::function<void(const committed_batch&)> callback;
  /// Receives each non-empty `committed_batch` as an anonymous message (its replies go
  /// nowhere). The writer holds a strong reference until it stops: stop both.
  caf::actor actor;

  explicit operator bool() const noexcept {
    return callback || actor;
  }
};

/// Bucket bounds of the latency histograms (`journal_writer_metrics::commit_latency` and
/// `answer_latency`) in microseconds: bucket i counts what took at most
/// `latency_bounds_us[i]` (and more than the bound before); the last bucket counts the
/// rest.
inline constexpr std::array<uint64_t, 10> latency_bounds_us = {
  100, 250, 500, 1'000, 2'500, 5'000, 10'000, 25'000, 100'000,
  std::numeric_limits<uint64_t>::max()};

/// The bucket of `latency_bounds_us` that counts a latency of `ns` nanoseconds.
constexpr size_t latency_bucket(uint64_t ns) noexcept {
  size_t i = 0;
  while (i + 1 < latency_bounds_us.size() && ns / 1000 > latency_bounds_us[i])
    ++i;
  return i;
}

/// The writer's counters since it started.
struct journal_writer_metrics {
  /// Appends taken into the queue.
  uint64_t appends = 0;
  /// Appends refused with errc::overloaded.
  uint64_t overloaded = 0;
  /// Appends the journal answered with an error (conflicts included).
  uint64_t failed = 0;
  /// Calls of journal::append_batch_deferred, i.e. write transactions (commits).
  uint64_t batches = 0;
  /// Events stored by successful appends.
  uint64_t events = 0;
  /// Appends and events of the last batch, and the most events one batch held.
  uint64_t last_batch_appends = 0;
  uint64_t last_batch_events = 0;
  uint64_t largest_batch_events = 0;
  /// Appends waiting now (taken, not yet committed).
  uint64_t queued = 0;
  /// Time spent in append_batch_deferred (encode, write, commit, the data flush), total
  /// and per bucket.
  uint64_t commit_ns = 0;
  std::array<uint64_t, latency_bounds_us.size()> commit_latency{};
  /// Flushes the writer ran because no commit followed a commit (journal::sync), and
  /// the time spent in them.
  uint64_t flushes = 0;
  uint64_t flush_ns = 0;
  /// Answered appends (successful or not) by the time from the start of their commit
  /// to their answer: the commit plus the wait for the flush that made it durable (the
  /// next commit's, or the writer's own). Total and per bucket.
  uint64_t answer_ns = 0;
  std::array<uint64_t, latency_bounds_us.size()> answer_latency{};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, journal_writer_metrics& x) {
  return f(caf::meta::type_name("evident.journal_writer_metrics"), x.appends, x.overloaded,
           x.failed, x.batches, x.events, x.last_batch_appends, x.last_batch_events,
           x.largest_batch_events, x.queued, x.commit_ns, x.commit_latency, x.flushes,
           x.flush_ns, x.answer_ns, x.answer_latency);
}

/// Spawns the journal writer on its own OS thread (detached: the commit's fsync never
/// blocks CAF's cooperative workers). It is the only writer of `j`; `j` stays alive
/// while the writer runs.
///
/// Answers to an append (see errc.hpp for turning a caf::error back into an
/// evident::error with `from_caf_error`):
///   - append_result, sent only after the transaction holding it committed and is
///     durable (as durable as the journal's option promises);
///   - errc::wrong_expected_version, with expected ("any", "no_stream", "stream_exists"
///     or a number) and actual (the stream's version) in the error context: re-read,
///     decide again;
///   - errc::stream_deleted, too_large, invalid_input: this request will never succeed;
///   - errc::overloaded: the queue held `max_pending` appends; nothing written, retry;
///   - errc::storage_full: the map is at its cap; an operator must act;
///   - errc::io_error: the outcome is unknown (the commit failed or the journal threw);
///     the caller must stop and re-read.
/// A conflict or refusal of one append never fails the other appends of its batch.
///
/// Stopping: on an exit message other than `kill` (e.g. `user_shutdown`) the writer
/// first commits and answers every append it holds, then quits; appends still in its
/// mailbox are answered by CAF with sec::request_receiver_down (nothing written). After
/// `kill` the held appends get no answer: their requests time out.
///
/// Throws std::invalid_argument when `j` is null or `opts` is invalid.
caf::actor spawn_journal_writer(caf::actor_system& sys, std::shared_ptr<journal> j,
                                group_commit_options opts = {},
                                commit_listener listener = {});

} // namespace evident
