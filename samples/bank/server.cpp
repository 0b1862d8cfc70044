#include "server.hpp"

#include <exception>

namespace bank {

namespace {

// Compares in time independent of where the strings differ, so the token cannot be
// guessed byte by byte from response times.
bool same_secret(std::string_view x, std::string_view y) {
  unsigned char diff = x.size() == y.size() ? 0 : 1;
  for (size_t i = 0; i < x.size(); ++i)
    diff |= static_cast<unsigned char>(x[i] ^ (i < y.size() ? y[i] : 0));
  return diff == 0;
}

std::string_view default_error_code(int status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 404:
      return "not_found";
    case 413:
      return "payload_too_large";
    case 414:
      return "uri_too_long";
    case 416:
      return "range_not_satisfiable";
    default:
      return status < 500 ? "bad_request" : "internal_error";
  }
}

} // namespace

bank_server::bank_server(evident::runtime& rt, http_options opts,
                         std::initializer_list<route_group> groups)
    : ctx_{rt, std::move(opts), {}} {
  for (auto group : groups)
    group(routes_, ctx_);
  auto threads = ctx_.http.threads;
  svr_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // httplib's default closes a keep-alive connection after 5 requests; a client then
  // pays a new TCP handshake every 5 requests. Keep connections for as long as clients do.
  svr_.set_keep_alive_max_count(1'000'000);
  svr_.set_keep_alive_timeout(5);
  svr_.set_payload_max_length(ctx_.http.max_body);
  svr_.set_tcp_nodelay(true);
  svr_.set_read_timeout(5);
  svr_.set_write_timeout(5);

  svr_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (ctx_.http.token.empty())
      return httplib::Server::HandlerResponse::Unhandled;
    auto auth = req.get_header_value("Authorization");
    constexpr std::string_view scheme = "Bearer ";
    if (auth.size() > scheme.size() && auth.compare(0, scheme.size(), scheme) == 0
        && same_secret(std::string_view{auth}.substr(scheme.size()), ctx_.http.token))
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer realm=\"evident-bank\"");
    // Answered before the body was read: the connection cannot carry another request.
    res.set_header("Connection", "close");
    send_error(res, 401, "unauthorized", "send 'Authorization: Bearer <token>'");
    return httplib::Server::HandlerResponse::Handled;
  });

  // One catch-all pattern per method; the route table does the matching.
  auto dispatch
      = [this](const httplib::Request& req, httplib::Response& res) { routes_.dispatch(req, res); };
  svr_.Get(".*", dispatch);
  svr_.Post(".*", dispatch);
  svr_.Put(".*", dispatch);
  svr_.Patch(".*", dispatch);
  svr_.Delete(".*", dispatch);

  // httplib calls this for every answer >= 400, also the ones a route wrote itself:
  // only fill in what httplib produced without a body (parse errors, 413, ...).
  svr_.set_error_handler(
      httplib::Server::HandlerWithResponse{[](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty())
          return httplib::Server::HandlerResponse::Unhandled;
        send_error(res, res.status, default_error_code(res.status),
                   res.status == 400 ? "malformed HTTP request (a POST needs a Content-Length)"
                                     : std::string_view{});
        return httplib::Server::HandlerResponse::Handled;
      }});

  // Routes catch what they expect; anything else (bad_alloc, a bug) is a 500 for this
  // request, never the end of the process.
  svr_.set_exception_handler([](const auto&, auto& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep)
        std::rethrow_exception(ep);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
      // keep "unknown exception"
    }
    send_error(res, 500, "internal_error", what);
  });

  svr_.set_logger([this](const auto&, const auto& res) {
    auto cls = static_cast<size_t>(res.status / 100);
    if (cls < ctx_.responses.size())
      ctx_.responses[cls].fetch_add(1, std::memory_order_relaxed);
  });
}

bank_server::~bank_server() {
  stop();
}

evident::expected<int> bank_server::bind() {
  const auto& h = ctx_.http;
  if (h.port == 0) {
    auto port = svr_.bind_to_any_port(h.host);
    if (port <= 0)
      return evident::error{evident::errc::io_error, "cannot listen on " + h.host + ":0"};
    return port;
  }
  if (!svr_.bind_to_port(h.host, h.port))
    return evident::error{evident::errc::io_error, "cannot listen on " + h.host + ":"
                                                       + std::to_string(h.port)
                                                       + " (in use, or not a local address)"};
  return h.port;
}

bool bank_server::serve() {
  return svr_.listen_after_bind();
}

void bank_server::stop() {
  svr_.stop();
}

} // namespace bank
