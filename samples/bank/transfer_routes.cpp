// Transfers: POST /transfers records the request on a transfer aggregate and answers 202
// at once; the transfer saga (transfer.hpp) then debits, credits or refunds. GET
// /transfers/{id} shows the saga's state and its steps. Both run on the blocking pool:
// they ask the runtime synchronously, and transfers are not the hot path.

#include "http.hpp"
#include "transfer.hpp"

#include "evident/persistence/uuid.hpp"

namespace bank {

namespace {

using nlohmann::json;

/// "pending" until the saga ends; a parked saga is still pending (an operator retries
/// it), with its error shown.
std::string_view state_name(evident::saga_status s) {
  switch (s) {
    case evident::saga_status::completed:
      return "completed";
    case evident::saga_status::compensated:
      return "compensated";
    case evident::saga_status::failed:
      return "failed";
    default:
      return "pending";
  }
}

std::string_view refusal_name(transfer_refusal x) {
  switch (x) {
    case transfer_refusal::exists:
      return "transfer_exists";
    case transfer_refusal::invalid_amount:
      return "invalid_amount";
    case transfer_refusal::same_account:
      return "same_account";
    case transfer_refusal::none:
      break;
  }
  return "none";
}

std::optional<std::string> string_id(const json& body, std::string_view name, response& res) {
  auto it = body.find(std::string{name});
  if (it == body.end() || !it->is_string()) {
    send_error(res, 400, "invalid_input", "'" + std::string{name} + "' must be a string");
    return std::nullopt;
  }
  auto id = it->get<std::string>();
  if (auto why = check_id(id, "account id")) {
    send_error(res, 400, "invalid_input", *why);
    return std::nullopt;
  }
  return id;
}

void start_transfer(bank_context& ctx, const request& req, response& res) {
  auto body = parse_object(req);
  if (!body) {
    send_failure(res, body.err());
    return;
  }
  auto id = optional_id_field(*body, "id", "transfer id");
  if (!id) {
    send_failure(res, id.err());
    return;
  }
  auto from = string_id(*body, "from", res);
  if (!from)
    return;
  auto to = string_id(*body, "to", res);
  if (!to)
    return;
  auto amount = amount_field(*body, "amount");
  if (!amount) {
    send_failure(res, amount.err());
    return;
  }
  auto transfer_id = id->value_or(evident::uuid::random().to_string());
  // The transfer id doubles as the command id: a retried POST with the same id gets the
  // first answer instead of "transfer_exists".
  auto r = ctx.rt.ask<transfer_aggregate>(
    transfer_id, request_transfer{transfer_id, *from, *to, *amount}, "request-" + transfer_id);
  if (!r) {
    send_failure(res, r.err());
    return;
  }
  if (!r->ok()) {
    int status = r->refused == transfer_refusal::exists ? 409 : 400;
    send_error(res, status, refusal_name(r->refused), "transfer '" + transfer_id + "' refused",
               json{{"id", transfer_id}});
    return;
  }
  send_json(res, 202, json{{"id", transfer_id}});
}

void get_transfer(bank_context& ctx, const route_params& p, response& res) {
  const auto& id = p[0];
  if (auto why = check_id(id, "transfer id")) {
    send_error(res, 400, "invalid_input", *why);
    return;
  }
  auto detail = ctx.rt.saga_show(std::string{transfer_saga::name}, id);
  if (!detail) {
    if (detail.err().code != evident::errc::invalid_input) {
      send_failure(res, detail.err());
      return;
    }
    // No saga yet: either no such transfer, or its saga has not seen the request.
    auto t = ctx.rt.state_of<transfer_aggregate>(id);
    if (!t) {
      send_failure(res, t.err());
      return;
    }
    if (!t->state.requested) {
      send_error(res, 404, "not_found", "no transfer '" + id + "'");
      return;
    }
    send_json(res, 200, json{{"id", id}, {"state", "pending"}, {"steps", json::array()}});
    return;
  }
  json steps = json::array();
  for (const auto& rec : detail->history)
    steps.push_back(json{{"step", rec.step},
                         {"input", rec.input},
                         {"status", std::string{evident::to_string(rec.status())}},
                         {"time", format_iso8601(rec.time_ns)}});
  json out{{"id", id},
           {"state", std::string{state_name(detail->summary.status)}},
           {"status", std::string{evident::to_string(detail->summary.status)}},
           {"steps", std::move(steps)}};
  if (!detail->history.empty()) {
    if (auto st = evident::from_msgpack<transfer_progress>(detail->history.back().state)) {
      out["from"] = st->from;
      out["to"] = st->to;
      out["amount"] = st->amount;
      if (!st->reason.empty())
        out["reason"] = st->reason;
    }
  }
  if (!detail->summary.error.empty())
    out["error"] = detail->summary.error;
  send_json(res, 200, out);
}

} // namespace

void add_transfer_routes(route_table& routes, bank_context& ctx) {
  routes.add("POST", "/transfers",
             [&ctx](const auto& req, const auto&, auto& res) { start_transfer(ctx, req, res); });
  routes.add("GET", "/transfers/{id}",
             [&ctx](const auto&, const auto& p, auto& res) { get_transfer(ctx, p, res); });
}

} // namespace bank
