// Operational routes: GET /healthz (answered on the I/O thread: it measures the HTTP
// layer alone) and GET /metrics (Prometheus text format; on the blocking pool, because
// the runtime's metrics are asked synchronously).

#include "http.hpp"

#include "evident/runtime/metrics.hpp"

namespace bank {

namespace {

void healthz(bank_context& ctx, const responder& done) {
  response res;
  if (!ctx.rt.running())
    send_error(res, 503, "unavailable", "the daemon is stopping");
  else
    send_json(res, 200, nlohmann::json{{"status", "ok"}});
  done(std::move(res));
}

void metrics(bank_context& ctx, response& res) {
  // The runtime's metrics ask the writer and the router (each bounded by
  // requests.ask_timeout); the HTTP counters are this process's own.
  auto text = evident::to_prometheus(ctx.rt.metrics());
  text += "# HELP evident_bank_http_responses_total HTTP responses sent, by status class.\n"
          "# TYPE evident_bank_http_responses_total counter\n";
  for (size_t i = 1; i < ctx.responses.size(); ++i)
    text += "evident_bank_http_responses_total{class=\"" + std::to_string(i) + "xx\"} "
            + std::to_string(ctx.responses[i].load(std::memory_order_relaxed)) + "\n";
  std::array<uint64_t, evident::latency_bounds_us.size()> latency{};
  for (size_t i = 0; i < latency.size(); ++i)
    latency[i] = ctx.answer_latency[i].load(std::memory_order_relaxed);
  evident::append_latency_histogram(
      text, "evident_bank_http_request_duration_seconds",
      "Time from a request read to its answer handed to the socket, in seconds.", latency,
      ctx.answer_ns.load(std::memory_order_relaxed));
  res.status = 200;
  res.set_content(text, "text/plain; version=0.0.4");
}

} // namespace

void add_system_routes(route_table& routes, bank_context& ctx) {
  routes.add_async("GET", "/healthz",
                   [&ctx](const auto&, const auto&, const auto& done) { healthz(ctx, done); });
  routes.add("GET", "/metrics", [&ctx](const auto&, const auto&, auto& res) { metrics(ctx, res); });
}

} // namespace bank
