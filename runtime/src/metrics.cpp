#include "evident/runtime/metrics.hpp"

#include <charconv>
#include <limits>

namespace evident {

namespace {

std::string format_double(double x) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::fixed);
  if (ec != std::errc{})
    return "NaN";
  return std::string{buf, end};
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            uint64_t value) {
  header(out, name, type, help);
  out += name;
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

void sample(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            double value) {
  header(out, name, type, help);
  out += name;
  out += ' ';
  out += format_double(value);
  out += '\n';
}

} // namespace

void append_latency_histogram(std::string& out, std::string_view name, std::string_view help,
                              const std::array<uint64_t, latency_bounds_us.size()>& counts,
                              uint64_t sum_ns) {
  // Prometheus buckets are cumulative; the counts are per bucket. The last bound is
  // the +Inf bucket every histogram must end with.
  static_assert(latency_bounds_us.back() == std::numeric_limits<uint64_t>::max());
  header(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < latency_bounds_us.size(); ++i) {
    cumulative += counts[i];
    auto bound = latency_bounds_us[i];
    std::string le = bound == std::numeric_limits<uint64_t>::max()
                         ? std::string{"+Inf"}
                         : format_double(static_cast<double>(bound) / 1e6);
    out.append(name).append("_bucket{le=\"").append(le).append("\"} ");
    out.append(std::to_string(cumulative)).append("\n");
  }
  out.append(name).append("_sum ").append(format_double(static_cast<double>(sum_ns) / 1e9));
  out.append("\n").append(name).append("_count ").append(std::to_string(cumulative)).append("\n");
}

std::string to_prometheus(const runtime_metrics& m) {
  std::string out;
  const auto& w = m.writer;
  sample(out, "evident_up", "gauge", "1 while the runtime takes requests, 0 once it stops.",
         uint64_t{m.running ? 1u : 0u});
  // -- journal writer
  sample(out, "evident_journal_appends_total", "counter", "Appends taken by the journal writer.",
         w.appends);
  sample(out, "evident_journal_appends_overloaded_total", "counter",
         "Appends refused because the writer's queue was full.", w.overloaded);
  sample(out, "evident_journal_appends_failed_total", "counter",
         "Appends the journal answered with an error (conflicts included).", w.failed);
  sample(out, "evident_journal_commits_total", "counter",
         "Write transactions (group commits) of the journal writer.", w.batches);
  sample(out, "evident_journal_events_total", "counter", "Events stored.", w.events);
  sample(out, "evident_journal_queued_appends", "gauge", "Appends taken and not yet committed.",
         w.queued);
  sample(out, "evident_journal_last_batch_appends", "gauge", "Appends in the last commit.",
         w.last_batch_appends);
  sample(out, "evident_journal_last_batch_events", "gauge", "Events in the last commit.",
         w.last_batch_events);
  sample(out, "evident_journal_largest_batch_events", "gauge",
         "Most events one commit held so far.", w.largest_batch_events);
  append_latency_histogram(out, "evident_journal_commit_duration_seconds",
                           "Time of one commit (encode, write, commit, fsync) in seconds.",
                           w.commit_latency, w.commit_ns);
  append_latency_histogram(out, "evident_journal_append_duration_seconds",
                           "Time from the start of an append's commit to its answer (the "
                           "commit and the wait for the flush that made it durable) in "
                           "seconds.",
                           w.answer_latency, w.answer_ns);
  sample(out, "evident_journal_flushes_total", "counter",
         "Flushes the journal writer ran because no commit followed a commit.", w.flushes);
  sample(out, "evident_journal_flush_duration_seconds_total", "counter",
         "Time spent in those flushes in seconds.", static_cast<double>(w.flush_ns) / 1e9);
  // -- aggregates
  const auto& a = m.aggregates;
  sample(out, "evident_aggregates_active", "gauge", "Aggregates alive on this node.", a.active);
  sample(out, "evident_aggregate_activations_total", "counter", "Aggregates spawned.",
         a.activations);
  sample(out, "evident_aggregate_passivations_total", "counter",
         "Aggregates that stopped because they were idle (timeout or max_active).", a.passivations);
  sample(out, "evident_aggregate_evictions_requested_total", "counter",
         "Passivation requests sent because of max_active.", a.evictions_requested);
  sample(out, "evident_aggregate_stops_total", "counter",
         "Aggregates that stopped for another reason (unknown outcome, conflict, failed "
         "recovery, shutdown).",
         a.stops);
  sample(out, "evident_aggregate_recoveries_total", "counter",
         "Aggregate recoveries finished (fence, snapshot, replay).", a.recoveries);
  sample(out, "evident_aggregate_recovery_failures_total", "counter",
         "Aggregate recoveries that failed.", a.recovery_failures);
  header(out, "evident_aggregate_recovery_seconds_total", "counter",
         "Total time spent in aggregate recoveries, in seconds.");
  out += "evident_aggregate_recovery_seconds_total "
         + format_double(static_cast<double>(a.recovery_ns_total) / 1e9) + "\n";
  header(out, "evident_aggregate_recovery_seconds_max", "gauge",
         "Longest aggregate recovery so far, in seconds.");
  out += "evident_aggregate_recovery_seconds_max "
         + format_double(static_cast<double>(a.recovery_ns_max) / 1e9) + "\n";
  sample(out, "evident_aggregate_events_replayed_total", "counter",
         "Events replayed by recoveries (after their snapshots).", a.events_replayed);
  sample(out, "evident_aggregate_commands_total", "counter",
         "Commands received by aggregates (retries included).", a.commands);
  sample(out, "evident_aggregate_duplicates_total", "counter",
         "Commands answered from an earlier command with the same id.", a.duplicates);
  sample(out, "evident_aggregate_stash_overflows_total", "counter",
         "Commands refused because an aggregate's stash was full.", a.stash_overflows);
  sample(out, "evident_aggregate_rejections_total", "counter",
         "Appends of aggregates that the journal refused (state kept).", a.rejections);
  sample(out, "evident_aggregate_conflicts_total", "counter",
         "Appends of aggregates that met someone else's write.", a.conflicts);
  sample(out, "evident_aggregate_decide_failures_total", "counter",
         "Commands whose decide or apply threw or failed.", a.decide_failures);
  sample(out, "evident_aggregate_events_total", "counter", "Events committed through aggregates.",
         a.events);
  sample(out, "evident_aggregate_snapshots_total", "counter",
         "Snapshots handed to the snapshot writer.", a.snapshots);
  sample(out, "evident_aggregate_queries_total", "counter", "Temporal state queries started.",
         a.queries);
  // -- views
  auto per_view = [&](std::string_view name, std::string_view type, std::string_view help,
                      auto value) {
    if (m.views.empty())
      return;
    header(out, name, type, help);
    for (const auto& v : m.views)
      out += std::string{name} + "{view=\"" + v.name + "\"} " + std::to_string(value(v)) + "\n";
  };
  per_view("evident_view_position", "gauge", "Last global position applied by the view.",
           [](const view_metrics& v) { return v.position; });
  per_view("evident_view_lag", "gauge", "Journal head position minus the view's position.",
           [](const view_metrics& v) { return v.lag; });
  per_view("evident_view_events_total", "counter", "Events projected by the view.",
           [](const view_metrics& v) { return v.events; });
  per_view("evident_view_events_per_second", "gauge",
           "Events projected per second over the last window (about 1 s).",
           [](const view_metrics& v) { return v.events_per_s; });
  per_view("evident_view_errors_total", "counter",
           "Projection or storage errors (the view stops at the first).",
           [](const view_metrics& v) { return v.errors; });
  per_view("evident_view_failed", "gauge", "1 when a projection error stopped the view.",
           [](const view_metrics& v) { return v.failed ? uint64_t{1} : uint64_t{0}; });
  sample(out, "evident_bus_events_total", "counter", "Events published by the event bus.",
         m.bus.events);
  sample(out, "evident_bus_subscribers", "gauge", "Live subscriptions on the event bus.",
         m.bus.subscribers);
  // -- sagas
  if (!m.sagas.empty()) {
    header(out, "evident_saga_instances", "gauge", "Saga instances per status.");
    for (const auto& x : m.sagas) {
      const auto& c = x.counters;
      const std::pair<std::string_view, uint64_t> per_status[] = {
        {"running", c.running},         {"waiting", c.waiting}, {"completed", c.completed},
        {"compensated", c.compensated}, {"failed", c.failed},   {"parked", c.parked}};
      for (const auto& [state, n] : per_status)
        out += "evident_saga_instances{saga=\"" + x.name + "\",status=\"" + std::string{state}
               + "\"} " + std::to_string(n) + "\n";
    }
  }
  auto per_saga = [&](std::string_view name, std::string_view help, auto value) {
    if (m.sagas.empty())
      return;
    header(out, name, "counter", help);
    for (const auto& x : m.sagas)
      out += std::string{name} + "{saga=\"" + x.name + "\"} " + std::to_string(value(x))
             + "\n";
  };
  per_saga("evident_saga_events_total", "Events handled by the saga manager.",
           [](const named_saga_metrics& x) { return x.counters.events; });
  per_saga("evident_saga_commands_total", "Commands dispatched by sagas (retries included).",
           [](const named_saga_metrics& x) { return x.counters.commands; });
  per_saga("evident_saga_retries_total", "Dispatches after a transient failure.",
           [](const named_saga_metrics& x) { return x.counters.retries; });
  per_saga("evident_saga_parkings_total", "Saga instances parked after failures.",
           [](const named_saga_metrics& x) { return x.counters.parkings; });
  per_saga("evident_saga_deadlines_fired_total", "Saga deadlines that expired and fired.",
           [](const named_saga_metrics& x) { return x.counters.deadlines_fired; });
  per_saga("evident_saga_manager_restarts_total",
           "Saga managers replaced after they stopped on an unknown append outcome.",
           [](const named_saga_metrics& x) { return x.restarts; });
  // -- runtime
  sample(out, "evident_runtime_requests_total", "counter", "Appends and asks taken by the runtime.",
         m.requests);
  sample(out, "evident_runtime_refused_unavailable_total", "counter",
         "Appends and asks refused because the runtime was stopping or stopped.",
         m.refused_unavailable);
  return out;
}

} // namespace evident
