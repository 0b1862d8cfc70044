// Reports: GET /reports/balances reads the durable balances view (balances.hpp): total
// balance, open accounts, the ten largest accounts, and the view's position and lag
// (journal head minus position). `?min_position=N` waits until the view has applied
// position N (read your own writes). On the blocking pool: the view is asked
// synchronously.

#include "balances.hpp"
#include "http.hpp"

namespace bank {

namespace {

using nlohmann::json;

void balances(bank_context& ctx, const request& req, response& res) {
  uint64_t min_position = 0;
  if (req.has_param("min_position")) {
    auto n = parse_uint(req.param("min_position"), "min_position");
    if (!n) {
      send_failure(res, n.err());
      return;
    }
    min_position = *n;
  }
  auto r = ctx.rt.query_boxed(std::string{balances_view::name},
                              evident::view_query{std::any{balances_query{10}}}, min_position,
                              ctx.rt.config().requests.ask_timeout);
  if (!r) {
    send_failure(res, r.err());
    return;
  }
  const auto* report = std::any_cast<balances_report>(&r->value);
  if (report == nullptr) {
    send_error(res, 500, "internal", "the balances view answered with another type");
    return;
  }
  uint64_t head = r->position;
  if (auto j = ctx.rt.journal())
    if (auto last = j->last_position())
      head = std::max(head, *last);
  json largest = json::array();
  for (const auto& a : report->largest)
    largest.push_back(json{{"id", a.id}, {"balance", a.balance}});
  send_json(res, 200,
            json{{"total_balance", report->total_balance},
                 {"open_accounts", report->open_accounts},
                 {"largest", std::move(largest)},
                 {"position", r->position},
                 {"lag", head - r->position}});
}

} // namespace

void add_report_routes(route_table& routes, bank_context& ctx) {
  routes.add("GET", "/reports/balances",
             [&ctx](const auto& req, const auto&, auto& res) { balances(ctx, req, res); });
}

} // namespace bank
