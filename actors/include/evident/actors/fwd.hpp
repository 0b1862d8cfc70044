#pragma once

// Forward declarations of the actor floor (floor 2).

namespace evident {

struct commit_listener;
struct committed_batch;
struct group_commit_options;
struct journal_writer_metrics;

} // namespace evident
