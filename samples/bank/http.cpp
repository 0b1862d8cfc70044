#include "http.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>

namespace bank {

using evident::errc;
using evident::error;
using nlohmann::json;

// -- requests -------------------------------------------------------------------------

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// %XX -> the byte; a malformed escape stays as written (the id rules then see '%').
// In a query, '+' is a space (HTML forms); in a path it is a '+'.
std::string percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

const std::string empty_string;

} // namespace

request::request(message msg) : msg_(std::move(msg)) {
  method_ = std::string{msg_.method_string()};
  std::string_view target{msg_.target().data(), msg_.target().size()};
  auto q = target.find('?');
  path_ = percent_decode(target.substr(0, q), false);
  if (q == std::string_view::npos)
    return;
  auto query = target.substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      params_.emplace_back(
          percent_decode(pair.substr(0, eq), true),
          eq == std::string_view::npos ? std::string{} : percent_decode(pair.substr(eq + 1), true));
    }
    if (amp == std::string_view::npos)
      break;
    query.remove_prefix(amp + 1);
  }
}

bool request::has_header(std::string_view name) const {
  return msg_.find(boost::beast::string_view{name.data(), name.size()}) != msg_.end();
}

std::string_view request::header(std::string_view name) const {
  auto it = msg_.find(boost::beast::string_view{name.data(), name.size()});
  if (it == msg_.end())
    return {};
  return {it->value().data(), it->value().size()};
}

bool request::has_param(std::string_view name) const {
  for (const auto& [k, v] : params_)
    if (k == name)
      return true;
  return false;
}

const std::string& request::param(std::string_view name) const {
  for (const auto& [k, v] : params_)
    if (k == name)
      return v;
  return empty_string;
}

// -- route table --------------------------------------------------------------------

namespace {

// Splits "/a/b/c" into {"a","b","c"}; a trailing slash yields an empty last segment,
// which no route matches (no implicit redirects).
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path.front() != '/')
    return out;
  path.remove_prefix(1);
  for (;;) {
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos)
      break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

std::vector<std::string> pattern_segments(std::string_view pattern) {
  std::vector<std::string> out;
  for (auto seg : split_path(pattern))
    out.emplace_back(seg.size() > 1 && seg.front() == '{' ? std::string_view{"{}"} : seg);
  return out;
}

} // namespace

void route_table::add(std::string method, std::string_view pattern, route_handler handler) {
  routes_.push_back(route{std::move(method), pattern_segments(pattern), std::move(handler), {}});
}

void route_table::add_async(std::string method, std::string_view pattern,
                            async_route_handler handler) {
  routes_.push_back(route{std::move(method), pattern_segments(pattern), {}, std::move(handler)});
}

route_table::match_result route_table::match(const request& req) const {
  match_result out;
  auto segs = split_path(req.path());
  std::string allow;
  for (const auto& r : routes_) {
    if (r.segments.size() != segs.size())
      continue;
    out.params.clear();
    bool match = true;
    for (size_t i = 0; i < segs.size() && match; ++i) {
      if (r.segments[i] == "{}") {
        match = !segs[i].empty();
        out.params.emplace_back(segs[i]);
      } else {
        match = r.segments[i] == segs[i];
      }
    }
    if (!match)
      continue;
    if (r.method == req.method()) {
      if (r.async)
        out.async = &r.async;
      else
        out.blocking = &r.blocking;
      return out;
    }
    allow += allow.empty() ? r.method : ", " + r.method;
  }
  out.params.clear();
  if (!allow.empty()) {
    out.error.set_header("Allow", allow);
    send_error(out.error, 405, "method_not_allowed",
               req.method() + " is not allowed on " + req.path());
    return out;
  }
  send_error(out.error, 404, "not_found", "no route " + req.method() + " " + req.path());
  return out;
}

// -- answers ------------------------------------------------------------------------

void send_json(response& res, int status, const json& body) {
  res.status = status;
  // Invalid UTF-8 in a stored string (ids are bytes) is replaced, never thrown on.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(response& res, int status, std::string_view code, std::string_view message,
                json extra) {
  json body = std::move(extra);
  body["error"] = code;
  if (!message.empty())
    body["message"] = message;
  send_json(res, status, body);
}

int status_of(const error& err) {
  switch (err.code) {
    case errc::invalid_input:
      return 400;
    case errc::too_large:
      return 413;
    case errc::stream_deleted:
      return 410;
    case errc::stream_not_found:
      return 404;
    case errc::wrong_expected_version:
      return 409;
    case errc::overloaded:
    case errc::unavailable:
      return 503;
    case errc::timeout:
      return 504;
    case errc::storage_full:
      return 507;
    default:
      return 500;
  }
}

void send_failure(response& res, const error& err) {
  int status = status_of(err);
  if (status == 503)
    res.set_header("Retry-After", "1");
  send_error(res, status, evident::to_string(err.code), err.message);
}

// -- bad-input rules ----------------------------------------------------------------

std::optional<std::string> check_id(std::string_view id, std::string_view what) {
  if (id.empty())
    return std::string{what} + " is empty";
  if (id.size() > max_id_bytes)
    return std::string{what} + " is longer than " + std::to_string(max_id_bytes) + " bytes";
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7f)
      return std::string{what} + " contains a control character";
    if (c == '/')
      return std::string{what} + " contains '/'";
  }
  return std::nullopt;
}

evident::expected<json> parse_object(const request& req, bool empty_ok) {
  if (req.body().empty()) {
    if (empty_ok)
      return json::object();
    return error{errc::invalid_input, "the request body is empty; a JSON object is expected"};
  }
  auto body = json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded())
    return error{errc::invalid_input, "the request body is not valid JSON"};
  if (!body.is_object())
    return error{errc::invalid_input, "the request body is not a JSON object"};
  return body;
}

evident::expected<int64_t> amount_field(const json& body, std::string_view name) {
  auto it = body.find(name);
  auto field = "'" + std::string{name} + "'";
  if (it == body.end())
    return error{errc::invalid_input, field + " is missing"};
  if (!it->is_number_integer())
    return error{errc::invalid_input, field + " must be an integer (minor units)"};
  if (it->is_number_unsigned()) {
    if (it->get<uint64_t>() > static_cast<uint64_t>(max_amount))
      return error{errc::invalid_input, field + " must be at most " + std::to_string(max_amount)};
    return it->get<int64_t>();
  }
  auto v = it->get<int64_t>();
  if (v <= 0)
    return error{errc::invalid_input, field + " must be positive"};
  if (v > max_amount)
    return error{errc::invalid_input, field + " must be at most " + std::to_string(max_amount)};
  return v;
}

evident::expected<std::optional<std::string>>
optional_id_field(const json& body, std::string_view name, std::string_view what) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null())
    return std::optional<std::string>{};
  if (!it->is_string())
    return error{errc::invalid_input, "'" + std::string{name} + "' must be a string"};
  auto s = it->get<std::string>();
  if (auto why = check_id(s, what))
    return error{errc::invalid_input, *why};
  return std::optional<std::string>{std::move(s)};
}

evident::expected<uint64_t> parse_uint(std::string_view text, std::string_view what) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
    return error{errc::invalid_input, std::string{what} + " must be a non-negative integer, got '"
                                          + std::string{text.substr(0, 40)} + "'"};
  return n;
}

evident::expected<std::optional<uint64_t>> if_match(const request& req) {
  if (!req.has_header("If-Match"))
    return std::optional<uint64_t>{};
  std::string_view v = req.header("If-Match");
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"')
    v = v.substr(1, v.size() - 2);
  auto n = parse_uint(v, "If-Match");
  if (!n)
    return n.err();
  return std::optional<uint64_t>{*n};
}

evident::expected<int64_t> parse_iso8601(std::string_view s) {
  auto bad = [&] {
    return error{errc::invalid_input, "at_time must be an ISO 8601 date-time such as "
                                      "2024-05-01T12:00:00Z, got '"
                                          + std::string{s.substr(0, 40)} + "'"};
  };
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
  auto num = [&](size_t pos, size_t len, int& out) {
    if (pos + len > s.size())
      return false;
    out = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9')
        return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, sec;
  if (s.size() < 20 || !num(0, 4, y) || s[4] != '-' || !num(5, 2, mo) || s[7] != '-'
      || !num(8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !num(11, 2, h)
      || s[13] != ':' || !num(14, 2, mi) || s[16] != ':' || !num(17, 2, sec))
    return bad();
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return bad();
  size_t pos = 19;
  int64_t frac_ns = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 9) {
        frac_ns = frac_ns * 10 + (s[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0)
      return bad();
    for (; digits < 9; ++digits)
      frac_ns *= 10;
  }
  int64_t offset_s = 0;
  if (pos == s.size() - 1 && (s[pos] == 'Z' || s[pos] == 'z')) {
    // UTC
  } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
    int oh, om;
    if (!num(pos + 1, 2, oh) || !num(pos + 4, 2, om) || oh > 23 || om > 59)
      return bad();
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
  } else {
    return bad();
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  auto t = ::timegm(&tm);
  if (tm.tm_mday != d) // 2024-02-31 normalizes to March: not a date
    return bad();
  auto secs = static_cast<int64_t>(t) - offset_s;
  // int64 nanoseconds reach the year 2262.
  if (secs < 0 || secs > 9'000'000'000)
    return bad();
  return secs * 1'000'000'000 + frac_ns;
}

std::string format_iso8601(int64_t ns) {
  auto secs = static_cast<std::time_t>(ns / 1'000'000'000);
  auto frac = ns % 1'000'000'000;
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac));
  return buf;
}

} // namespace bank
