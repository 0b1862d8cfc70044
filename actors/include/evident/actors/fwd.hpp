#pragma once

// Forward declarations of the actor floor (floor 2).

namespace evident {

struct commit_listener;
struct committed_batch;
struct group_commit_options;
struct journal_writer_metrics;

// aggregates
class aggregate_model;
class state_loader;
struct aggregate_env;
struct aggregate_options;
struct aggregate_state;
struct command_box;
struct decision;
struct reply_box;
struct router_metrics;
struct snapshot_policy;
struct snapshot_writer_metrics;
struct state_query;
template <class State, class Event, class Reply>
struct effect;

} // namespace evident
