#pragma once

// HTTP plumbing shared by the route groups: the route table, JSON answers, the mapping
// from evident errors to status codes, and the bad-input rules for ids, amounts and
// times. Every error answer has the body {"error": "<code>", "message": "..."} (plus
// fields named by the route, e.g. "expected"/"actual" for 412).

#include "options.hpp"

#include "evident/persistence/errc.hpp"
#include "evident/runtime/runtime.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bank {

// -- limits of the HTTP API -----------------------------------------------------------

/// Longest account id, transfer id and command id, in bytes. Stream ids are "account-"
/// + id, well within the journal's 250-byte limit.
inline constexpr size_t max_id_bytes = 128;
/// Longest owner name, in bytes.
inline constexpr size_t max_owner_bytes = 200;
/// Largest amount one command may move (minor units, e.g. cents).
inline constexpr int64_t max_amount = 1'000'000'000'000'000;
/// Most events one GET /accounts/{id}/events answer holds (and its default `limit`).
inline constexpr uint64_t max_events_page = 1'000;

// -- what every route sees -------------------------------------------------------------

/// Shared by all route groups; lives as long as the server.
struct bank_context {
  evident::runtime& rt;
  http_options http;
  /// Answers by status class (index 1..5 = 1xx..5xx), for /metrics.
  std::array<std::atomic<uint64_t>, 6> responses{};
};

/// Path segments captured by a route's `{name}` placeholders, in order.
using route_params = std::vector<std::string>;

using route_handler
    = std::function<void(const httplib::Request&, const route_params&, httplib::Response&)>;

/// The daemon's routes. Patterns are literal segments and `{name}` placeholders
/// ("/accounts/{id}/deposits"); a placeholder matches one non-empty segment. Matching
/// splits the path once and compares segments: no regex per request.
/// Thread: fill it during setup; `dispatch` may then run on any number of threads.
class route_table {
public:
  void add(std::string method, std::string_view pattern, route_handler handler);

  /// Runs the route that matches, or answers 404 (no such path) or 405 (the path
  /// exists for other methods, with an Allow header).
  void dispatch(const httplib::Request& req, httplib::Response& res) const;

private:
  struct route {
    std::string method;
    std::vector<std::string> segments; // "{}" marks a placeholder
    route_handler handler;
  };
  std::vector<route> routes_;
};

/// A route group: adds its routes to the table. One file per group (account_routes.cpp,
/// system_routes.cpp, and later report and transfer routes).
using route_group = void (*)(route_table&, bank_context&);

void add_account_routes(route_table& routes, bank_context& ctx);
void add_system_routes(route_table& routes, bank_context& ctx);

// -- answers --------------------------------------------------------------------------

void send_json(httplib::Response& res, int status, const nlohmann::json& body);

/// {"error": code, "message": message, ...extra}.
void send_error(httplib::Response& res, int status, std::string_view code,
                std::string_view message = {}, nlohmann::json extra = nlohmann::json::object());

/// The status for an evident error: invalid_input 400, too_large 413, stream_deleted
/// 410, wrong_expected_version 409, overloaded and unavailable 503 (with Retry-After),
/// timeout 504 (outcome unknown: retry with the same command_id), everything else 500.
int status_of(const evident::error& err);

/// send_error with status_of(err) and the errc's name as the code.
void send_failure(httplib::Response& res, const evident::error& err);

// -- bad-input rules --------------------------------------------------------------------

/// Why `id` is not a valid id (empty, longer than max_id_bytes, a control character or
/// '/'), or nullopt when it is. `what` names it in the message ("account id").
std::optional<std::string> check_id(std::string_view id, std::string_view what);

/// The request body as a JSON object; an empty body counts as {} when `empty_ok`.
/// Fails with invalid_input: not JSON, not an object.
[[nodiscard]] evident::expected<nlohmann::json> parse_object(const httplib::Request& req,
                                                             bool empty_ok = false);

/// `body[name]` as a positive integer amount of at most max_amount. Fails with
/// invalid_input: missing, not an integer (1.5, "10", true), zero, negative, too large.
[[nodiscard]] evident::expected<int64_t> amount_field(const nlohmann::json& body,
                                                      std::string_view name);

/// `body[name]` as an optional string id (check_id rules). Fails with invalid_input:
/// present but not a string, or not a valid id.
[[nodiscard]] evident::expected<std::optional<std::string>>
optional_id_field(const nlohmann::json& body, std::string_view name, std::string_view what);

/// The If-Match header as a version: `3` or `"3"` (an entity tag). nullopt when absent.
/// Fails with invalid_input when present and not a version.
[[nodiscard]] evident::expected<std::optional<uint64_t>> if_match(const httplib::Request& req);

/// A non-negative decimal integer. Fails with invalid_input naming `what`.
[[nodiscard]] evident::expected<uint64_t> parse_uint(std::string_view text, std::string_view what);

/// ISO 8601 / RFC 3339 date-time ("2024-05-01T12:00:00Z", "...T12:00:00.250+02:00") as
/// nanoseconds since the epoch. Fails with invalid_input.
[[nodiscard]] evident::expected<int64_t> parse_iso8601(std::string_view text);

/// Nanoseconds since the epoch as "2024-05-01T12:00:00.123456789Z".
std::string format_iso8601(int64_t ns);

} // namespace bank
