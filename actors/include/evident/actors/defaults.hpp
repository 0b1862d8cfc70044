#pragma once

#include <cstddef>

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
