#pragma once

#include <cstddef>
#include <cstdint>

/// Default values of the actor floor's options, in one place (the persistence floor's
/// live in evident/persistence/defaults.hpp).
namespace evident::defaults::group_commit {

/// Most events the journal writer puts into one write transaction: 4,096. One commit
/// costs one fsync pair (about 1-2 ms on the reference machine) plus a few microseconds
/// per event, so a batch of 4,096 events stays below ~10 ms while 1,000 concurrent
/// writers with one event each still fit into a single commit.
inline constexpr size_t max_batch_events = 4'096;

/// Most appends the journal writer holds (received, not yet committed) before it answers
/// `errc::overloaded` at once: 10,000. Bounds the writer's memory (one queued append is
/// the request plus ~100 bytes) and the wait of the last request in line (a few commits).
inline constexpr size_t max_pending = 10'000;

} // namespace evident::defaults::group_commit

/// Defaults of the aggregate actors and their router (see aggregate_router.hpp).
namespace evident::defaults::aggregate {

/// Events an aggregate replays per handler invocation during recovery: 1,024. Between
/// two batches it gives its worker back (the next batch is a zero-delay message through
/// the actor clock), so one aggregate recovering a long stream neither blocks a worker
/// nor holds more than one batch of events in memory. Measured (Release, LMDB): a
/// 1,000,000-event stream recovers in 0.6 s with flat heap; one batch of 1,024 small
/// events takes ~0.6 ms.
inline constexpr size_t replay_batch = 1'024;

/// Commands one aggregate holds without deciding them (while it recovers, or while
/// `max_in_flight` commands are pending): 1,000. Further commands get errc::overloaded
/// at once.
inline constexpr size_t max_stash = 1'000;

/// Commands one aggregate has decided but not yet answered (their appends are at the
/// journal writer): 256. One commit takes ~1-2 ms with fsync, so a window of 256 lets a
/// single hot aggregate share each commit among many commands (measured, Release, LMDB
/// with fsync, 512 clients' commands outstanding: ~88,000 commands/s on one aggregate,
/// ~80 commands per commit), while CAF's per-response cost (linear in the outstanding
/// requests of one actor) stays small.
inline constexpr size_t max_in_flight = 256;

/// How long an aggregate waits for the writer's answer to one append: 10 s. An append
/// that takes longer has an unknown outcome: the aggregate stops and recovers on the
/// next command.
inline constexpr long long append_timeout_ms = 10'000;

/// An aggregate that received no message for this long passivates (stops; the next
/// command recovers it): 2 minutes, as Akka Cluster Sharding's default.
inline constexpr long long idle_timeout_ms = 120'000;

/// Most live aggregates per router (node): 100,000. One more activation asks the least
/// recently used one to passivate. About 1.5 KB per actor plus its state.
inline constexpr size_t max_active = 100'000;

/// Snapshot every this many events (0 = never): 1,000. Recovery then replays at most
/// ~1,000 events after the snapshot.
inline constexpr uint64_t snapshot_every = 1'000;

/// Snapshots kept per aggregate (older ones are removed after each save): 2.
inline constexpr size_t snapshot_keep_last = 2;

} // namespace evident::defaults::aggregate

/// Defaults of subscriptions and views (see subscription.hpp and view.hpp).
namespace evident::defaults::subscription {

/// Positions read from the journal per catch-up step, and most events merged into one
/// live delivery: 4,096. A durable view commits (fsyncs) once per delivery, so catch-up
/// pays one commit per 4,096 events: measured by bench/view_bench (fsync, 1,000,000
/// events), 1,024 gave ~170,000 projected events/s, 4,096 ~390,000. A batch of 4,096
/// small events is ~1 MB in memory and a few ms of work, short enough for queries.
inline constexpr size_t read_batch = 4'096;

/// Most live events a subscription buffers while its subscriber is busy: 65,536 (a few
/// MB). Past it the buffer is dropped and the subscription reads the journal again, so
/// a slow subscriber costs memory up to this bound, never the writer's or others' time.
inline constexpr size_t max_buffer_events = 65'536;

/// Managed checkpoints are saved after this many positions: 1,000 ...
inline constexpr uint64_t checkpoint_every = 1'000;

/// ... or this long after the first unsaved one: 1 s. Each save is one LMDB commit, so
/// these bound the commits a subscription adds and the events redelivered after a crash.
inline constexpr long long checkpoint_interval_ms = 1'000;

/// How long a subscription waits for its subscriber to answer one batch: 60 s. Past it
/// the subscription stops with errc::timeout (the subscriber is stuck, not slow).
inline constexpr long long deliver_timeout_ms = 60'000;

} // namespace evident::defaults::subscription

namespace evident::defaults::view {

/// Shortest time from one commit of a durable view to its next: 3 ms. Each commit is a
/// flush that holds LMDB's single write lock, so a view that committed every live
/// delivery (about one per journal commit under load) made the journal writer wait
/// for it about as often. In evident-bank under deposit load, view commits at least
/// 10 ms apart raised deposits/s by 15-27% (same-window A/B); the price is lag, up to
/// this interval on top of the commit.
inline constexpr long long commit_interval_ms = 3;

} // namespace evident::defaults::view
