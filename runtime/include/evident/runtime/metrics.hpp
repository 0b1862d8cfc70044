#pragma once

#include "evident/actors/aggregate_router.hpp"
#include "evident/actors/journal_writer.hpp"

#include "evident/actors/event_bus.hpp"
#include "evident/actors/view.hpp"
#include "evident/sagas/saga_manager.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace evident {

/// The counters of one saga type's manager.
struct named_saga_metrics {
  std::string name;
  saga_metrics counters;
  /// Times the runtime replaced this saga type's manager after it stopped on its own
  /// (an unknown append outcome; the new one recovers from the journal).
  uint64_t restarts = 0;
};

/// A snapshot of a node's counters, taken by `runtime::metrics()`. Counters count since
/// the runtime started; gauges say how things are now.
struct runtime_metrics {
  /// True from start until `stop()` begins.
  bool running = false;

  // -- journal writer ---------------------------------------------------------------

  /// The journal writer's counters: appends, refusals, commits (batches), batch sizes,
  /// commit latency histogram (see journal_writer_metrics). After `stop()`: the values
  /// from just before the writer drained its queue.
  journal_writer_metrics writer;

  // -- aggregates -------------------------------------------------------------------

  /// The aggregate router's counters: live aggregates, activations, passivations,
  /// recoveries and their durations, stash overflows, rejections, conflicts, ... (see
  /// router_metrics). All 0 while no aggregate command was asked yet (the router starts
  /// with the first ask). After `stop()`: the values from just before the router stopped.
  router_metrics aggregates;

  // -- views ------------------------------------------------------------------------

  /// One entry per registered view: position, head, lag (head - position), events,
  /// events/s, errors, failed (see view_metrics). After `stop()`: the values from just
  /// before the views stopped.
  std::vector<view_metrics> views;

  /// The event bus: batches and events published, subscribers, head.
  event_bus_metrics bus;

  // -- sagas ------------------------------------------------------------------------

  /// One entry per registered saga type: instances per status and counters (see
  /// saga_metrics). After `stop()`: the values from just before the sagas stopped.
  std::vector<named_saga_metrics> sagas;

  // -- runtime ----------------------------------------------------------------------

  /// Appends (and asks) taken by the runtime, and those it refused with
  /// errc::unavailable because it was stopping or stopped.
  uint64_t requests = 0;
  uint64_t refused_unavailable = 0;
};

/// `m` in the Prometheus text exposition format (version 0.0.4): one `# HELP`/`# TYPE`
/// pair per metric, names prefixed `evident_` (`evident_journal_*` for the writer,
/// `evident_aggregate*` for the router, `evident_view_*` with a `view` label per view,
/// `evident_bus_*`, `evident_saga_*` with a `saga` label, `evident_runtime_*`), the
/// writer's latencies as histograms in seconds (`evident_journal_commit_duration_seconds`,
/// `evident_journal_append_duration_seconds`).
std::string to_prometheus(const runtime_metrics& m);

/// Appends one histogram in the Prometheus text format to `out`: `# HELP`, `# TYPE`, the
/// cumulative `_bucket` lines on `latency_bounds_us` (in seconds, then `+Inf`), `_sum`
/// and `_count`. `counts[i]` counts the observations of bucket i alone; `sum_ns` is the
/// sum of all observations in nanoseconds. For a daemon's own latencies beside the
/// runtime's.
void append_latency_histogram(std::string& out, std::string_view name, std::string_view help,
                              const std::array<uint64_t, latency_bounds_us.size()>& counts,
                              uint64_t sum_ns);

} // namespace evident
