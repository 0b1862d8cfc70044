#pragma once

// HTTP plumbing shared by the route groups: the route table, JSON answers, the mapping
// from evident errors to status codes, and the bad-input rules for ids, amounts and
// times. Every error answer has the body {"error": "<code>", "message": "..."} (plus
// fields named by the route, e.g. "expected"/"actual" for 412).

#include "options.hpp"

#include "evident/actors/journal_writer.hpp"
#include "evident/persistence/errc.hpp"
#include "evident/runtime/runtime.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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

// -- requests and responses ------------------------------------------------------------

/// One HTTP request as the routes see it: the parsed message, its path and query
/// parameters percent-decoded. Owned by its connection, which reads nothing else until
/// the request is answered: valid until the route answers it, not after.
class request {
public:
  using message = boost::beast::http::request<boost::beast::http::string_body>;

  explicit request(message msg);

  const std::string& method() const noexcept {
    return method_;
  }
  /// The decoded path, without the query ("/accounts/a b/deposits").
  const std::string& path() const noexcept {
    return path_;
  }
  const std::string& body() const noexcept {
    return msg_.body();
  }
  bool has_header(std::string_view name) const;
  /// The header's value; empty when absent.
  std::string_view header(std::string_view name) const;
  bool has_param(std::string_view name) const;
  /// The first query parameter `name`, decoded; empty when absent.
  const std::string& param(std::string_view name) const;
  /// Whether the client keeps the connection open after the answer.
  bool keep_alive() const noexcept {
    return msg_.keep_alive();
  }
  unsigned version() const noexcept {
    return msg_.version();
  }

private:
  message msg_;
  std::string method_;
  std::string path_;
  std::vector<std::pair<std::string, std::string>> params_;
};

/// One answer. Routes fill it with send_json / send_error; the server adds
/// Content-Length, Connection and the HTTP version.
struct response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  void set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
  void set_content(std::string content, std::string type) {
    body = std::move(content);
    content_type = std::move(type);
  }
};

/// Answers one request, later and from any thread: call it once with the response.
/// Copies share one answer: the first call wins, later calls are ignored. When the last
/// copy goes away unanswered (a dropped callback, a bug), the client gets a 500, so no
/// connection ever waits forever.
class responder {
public:
  struct slot {
    virtual ~slot() = default;
    virtual void answer(response res) = 0;
  };

  responder() = default;
  explicit responder(std::shared_ptr<slot> s) : slot_(std::move(s)) {
    // nop
  }

  void operator()(response res) const {
    if (slot_)
      slot_->answer(std::move(res));
  }

private:
  std::shared_ptr<slot> slot_;
};

// -- what every route sees -------------------------------------------------------------

/// Shared by all route groups; lives as long as the server.
struct bank_context {
  evident::runtime& rt;
  http_options http;
  /// Answers by status class (index 1..5 = 1xx..5xx), for /metrics.
  std::array<std::atomic<uint64_t>, 6> responses{};
  /// Answers by the time from their request read to the answer handed to the socket
  /// (the daemon's part of a client's latency), for /metrics: per bucket of
  /// evident::latency_bounds_us, and the sum in nanoseconds.
  std::array<std::atomic<uint64_t>, evident::latency_bounds_us.size()> answer_latency{};
  std::atomic<uint64_t> answer_ns{0};
};

/// Path segments captured by a route's `{name}` placeholders, in order.
using route_params = std::vector<std::string>;

/// A route that may block (reads LMDB, asks the runtime synchronously): it runs on the
/// server's blocking pool (http.blocking_threads), never on an I/O thread.
using route_handler = std::function<void(const request&, const route_params&, response&)>;

/// A route that never blocks: it runs on the connection's I/O thread and answers through
/// the responder, now or from a callback (runtime::ask_async). The hot routes are of this
/// kind.
using async_route_handler
    = std::function<void(const request&, const route_params&, const responder&)>;

/// The daemon's routes. Patterns are literal segments and `{name}` placeholders
/// ("/accounts/{id}/deposits"); a placeholder matches one non-empty segment. Matching
/// splits the path once and compares segments: no regex per request.
/// Thread: fill it during setup; `match` may then run on any number of threads.
class route_table {
public:
  /// Adds a blocking route (see route_handler).
  void add(std::string method, std::string_view pattern, route_handler handler);

  /// Adds a non-blocking route (see async_route_handler).
  void add_async(std::string method, std::string_view pattern, async_route_handler handler);

  /// What `match` found: the route's handler (one of the two is set) and its
  /// parameters, or the answer to send when none matched (404, or 405 with Allow).
  struct match_result {
    const route_handler* blocking = nullptr;
    const async_route_handler* async = nullptr;
    route_params params;
    response error;
  };

  match_result match(const request& req) const;

private:
  struct route {
    std::string method;
    std::vector<std::string> segments; // "{}" marks a placeholder
    route_handler blocking;
    async_route_handler async;
  };
  std::vector<route> routes_;
};

/// A route group: adds its routes to the table. One file per group (account_routes.cpp,
/// system_routes.cpp, transfer_routes.cpp, report_routes.cpp).
using route_group = void (*)(route_table&, bank_context&);

void add_account_routes(route_table& routes, bank_context& ctx);
void add_system_routes(route_table& routes, bank_context& ctx);
void add_transfer_routes(route_table& routes, bank_context& ctx);
void add_report_routes(route_table& routes, bank_context& ctx);

// -- answers --------------------------------------------------------------------------

void send_json(response& res, int status, const nlohmann::json& body);

/// {"error": code, "message": message, ...extra}.
void send_error(response& res, int status, std::string_view code, std::string_view message = {},
                nlohmann::json extra = nlohmann::json::object());

/// The status for an evident error: invalid_input 400, too_large 413, stream_deleted
/// 410, wrong_expected_version 409, overloaded and unavailable 503 (with Retry-After),
/// timeout 504 (outcome unknown: retry with the same command_id), everything else 500.
int status_of(const evident::error& err);

/// send_error with status_of(err) and the errc's name as the code.
void send_failure(response& res, const evident::error& err);

// -- bad-input rules --------------------------------------------------------------------

/// Why `id` is not a valid id (empty, longer than max_id_bytes, a control character or
/// '/'), or nullopt when it is. `what` names it in the message ("account id").
std::optional<std::string> check_id(std::string_view id, std::string_view what);

/// The request body as a JSON object; an empty body counts as {} when `empty_ok`.
/// Fails with invalid_input: not JSON, not an object.
[[nodiscard]] evident::expected<nlohmann::json> parse_object(const request& req,
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
[[nodiscard]] evident::expected<std::optional<uint64_t>> if_match(const request& req);

/// A non-negative decimal integer. Fails with invalid_input naming `what`.
[[nodiscard]] evident::expected<uint64_t> parse_uint(std::string_view text, std::string_view what);

/// ISO 8601 / RFC 3339 date-time ("2024-05-01T12:00:00Z", "...T12:00:00.250+02:00") as
/// nanoseconds since the epoch. Fails with invalid_input.
[[nodiscard]] evident::expected<int64_t> parse_iso8601(std::string_view text);

/// Nanoseconds since the epoch as "2024-05-01T12:00:00.123456789Z".
std::string format_iso8601(int64_t ns);

} // namespace bank
