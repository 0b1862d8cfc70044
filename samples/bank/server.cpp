#include "server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace bank {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using beast::error_code;

namespace {

// Compares in time independent of where the strings differ, so the token cannot be
// guessed byte by byte from response times.
bool same_secret(std::string_view x, std::string_view y) {
  unsigned char diff = x.size() == y.size() ? 0 : 1;
  for (size_t i = 0; i < x.size(); ++i)
    diff |= static_cast<unsigned char>(x[i] ^ (i < y.size() ? y[i] : 0));
  return diff == 0;
}

bool authorized(const request& req, const std::string& token) {
  if (token.empty())
    return true;
  auto auth = req.header("Authorization");
  constexpr std::string_view scheme = "Bearer ";
  return auth.size() > scheme.size() && auth.substr(0, scheme.size()) == scheme
         && same_secret(auth.substr(scheme.size()), token);
}

std::string what_of(std::exception_ptr ep) {
  try {
    if (ep)
      std::rethrow_exception(ep);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    // keep the generic text
  }
  return "unknown exception";
}

// `d` comes from the steady clock: never negative.
void record_latency(bank_context& ctx, std::chrono::steady_clock::duration d) {
  auto ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  ctx.answer_ns.fetch_add(ns, std::memory_order_relaxed);
  ctx.answer_latency[evident::latency_bucket(ns)].fetch_add(1, std::memory_order_relaxed);
}

response internal_error(std::string_view why) {
  response res;
  send_error(res, 500, "internal_error", why);
  return res;
}

// Idle keep-alive connections and slow clients are closed after this (reading a request,
// or writing an answer). As cpp-httplib's defaults were: 5 s.
constexpr auto io_timeout = std::chrono::seconds{5};
// Request line plus headers; more gets 431.
constexpr uint32_t max_header_bytes = 16 * 1024;

// Appends "HTTP/1.x <status> <reason>\r\n" to `out`.
void append_status_line(int status, unsigned version, std::string& out) {
  auto reason = http::obsolete_reason(static_cast<http::status>(status));
  out.append("HTTP/").append(1, static_cast<char>('0' + version / 10)).append(1, '.');
  out.append(1, static_cast<char>('0' + version % 10)).append(1, ' ');
  out.append(std::to_string(status)).append(1, ' ');
  out.append(reason.data(), reason.size()).append("\r\n");
}

// Appends `res` as HTTP/1.x to `out`: status line, Content-Type, the route's headers,
// Connection when it differs from the version's default, Content-Length, the body. One
// buffer and one write: Beast's serializer costs the I/O thread an allocation per
// header field and a buffer sequence of up to seven pieces per answer.
void serialize(const response& res, unsigned version, bool keep_alive, std::string& out) {
  auto length = std::to_string(res.body.size());
  size_t size = 96 + res.content_type.size() + length.size() + res.body.size();
  for (const auto& [name, value] : res.headers)
    size += name.size() + value.size() + 4;
  out.reserve(out.size() + size);
  auto line = [&out](std::string_view name, std::string_view value) {
    out.append(name).append(": ").append(value).append("\r\n");
  };
  append_status_line(res.status, version, out);
  if (!res.content_type.empty())
    line("Content-Type", res.content_type);
  for (const auto& [name, value] : res.headers)
    line(name, value);
  if (version >= 11 && !keep_alive)
    line("Connection", "close");
  else if (version < 11 && keep_alive)
    line("Connection", "keep-alive");
  line("Content-Length", length);
  out.append("\r\n").append(res.body);
}

} // namespace

// -- the server's shared state --------------------------------------------------------

class session;

struct bank_server::impl {
  impl(evident::runtime& rt, http_options opts)
      : ctx{rt, std::move(opts), {}}, acceptor{ioc}, blocking{ctx.http.blocking_threads} {
    // nop
  }

  void accept();
  void close_sessions();

  // Declared so that they go in a safe order: the pool first, then the io_context, whose
  // leftover handlers may still destroy sessions, which unregister themselves from
  // `sessions`.
  bank_context ctx;
  route_table routes;
  /// Open connections, so that stop() can close the idle ones.
  std::mutex sessions_mtx;
  std::unordered_map<session*, std::weak_ptr<session>> sessions;
  std::atomic<bool> stopping{false};
  bool bound = false;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  /// Where blocking routes run, so that no I/O thread ever waits on LMDB or the runtime.
  asio::thread_pool blocking;
};

// -- one connection -------------------------------------------------------------------

// Reads a request, routes it, writes the answer, reads the next. Every member runs on
// the connection's strand (its stream's executor), so no locking is needed; answers
// computed elsewhere (CAF workers, the blocking pool) are posted to it.
//
//   read --request--> dispatch --answer (posted)--> write --keep-alive--> read
//     |                                               |
//     '-- EOF, timeout, error, stopping --> close <---'-- Connection: close, stopping
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket socket, bank_server::impl& srv) : stream_(std::move(socket)), srv_(srv) {
    // nop
  }

  ~session() {
    std::lock_guard guard{srv_.sessions_mtx};
    srv_.sessions.erase(this);
  }

  void start() {
    {
      std::lock_guard guard{srv_.sessions_mtx};
      srv_.sessions.emplace(this, weak_from_this());
    }
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

  /// From stop(): closes the connection now if it waits for a request; a busy one closes
  /// after its answer is written.
  void stop() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->busy_)
        self->close();
    });
  }

  /// Writes `res` as the answer to the current request. On the strand.
  void write(response res) {
    if (closed_)
      return;
    auto cls = static_cast<size_t>(res.status / 100);
    if (cls < srv_.ctx.responses.size())
      srv_.ctx.responses[cls].fetch_add(1, std::memory_order_relaxed);
    record_latency(srv_.ctx, std::chrono::steady_clock::now() - read_at_);
    keep_alive_ = keep_alive_ && !srv_.stopping.load(std::memory_order_relaxed);
    out_.clear();
    serialize(res, version_, keep_alive_, out_);
    stream_.expires_after(io_timeout);
    asio::async_write(stream_, asio::buffer(out_),
                      [self = shared_from_this()](error_code ec, size_t) { self->on_write(ec); });
  }

  asio::any_io_executor executor() {
    return stream_.get_executor();
  }

private:
  void read() {
    busy_ = false;
    req_.reset();
    if (srv_.stopping.load(std::memory_order_relaxed)) {
      close();
      return;
    }
    parser_.emplace();
    parser_->body_limit(srv_.ctx.http.max_body);
    parser_->header_limit(max_header_bytes);
    stream_.expires_after(io_timeout);
    // The header first: a client that sent `Expect: 100-continue` waits for our interim
    // answer before it sends the body (curl waits 1 s, then sends it anyway).
    http::async_read_header(
        stream_, buf_, *parser_,
        [self = shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
  }

  // A request was read (or found malformed): an answer is owed from now on, and its
  // latency counts from here.
  void start_answer() {
    busy_ = true;
    read_at_ = std::chrono::steady_clock::now();
  }

  void on_header(error_code ec) {
    if (ec || parser_->is_done()) {
      on_read(ec); // an error, or a request without a body
      return;
    }
    auto expect = parser_->get()[http::field::expect];
    // An HTTP/1.0 client cannot take a 1xx answer (RFC 9110 10.1.1: ignore it).
    if (expect.empty() || parser_->get().version() < 11) {
      read_body();
      return;
    }
    if (!beast::iequals(expect, "100-continue")) {
      // RFC 9110 10.1.1: an expectation we cannot meet gets 417. The body was not read,
      // so the connection's framing is lost: close after the answer.
      start_answer();
      keep_alive_ = false;
      version_ = parser_->get().version();
      response res;
      send_error(res, 417, "expectation_failed",
                 "only 'Expect: 100-continue' is supported, not '" + std::string{expect} + "'");
      write(std::move(res));
      return;
    }
    // The limits were checked with the header (a Content-Length over max_body failed
    // it with body_limit: 413 without a 100), so the body is welcome.
    // No answer is being written before the body is read, so out_ is free for the
    // interim answer (a 1xx has no header fields here, and no Content-Length).
    out_.clear();
    append_status_line(100, parser_->get().version(), out_);
    out_.append("\r\n");
    stream_.expires_after(io_timeout);
    asio::async_write(stream_, asio::buffer(out_),
                      [self = shared_from_this()](error_code wec, size_t) {
                        if (wec) {
                          self->close();
                          return;
                        }
                        self->read_body();
                      });
  }

  void read_body() {
    // The body usually came in the same segment as the header: parse what is buffered
    // first, so that such a request costs no second asynchronous step (what
    // http::async_read does, minus the posted completion).
    error_code ec;
    while (!parser_->is_done() && buf_.size() > 0) {
      auto used = parser_->put(buf_.data(), ec);
      buf_.consume(used);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec || used == 0)
        break;
    }
    if (ec || parser_->is_done()) {
      on_read(ec);
      return;
    }
    stream_.expires_after(io_timeout);
    http::async_read(stream_, buf_, *parser_,
                     [self = shared_from_this()](error_code rec, size_t) { self->on_read(rec); });
  }

  void on_read(error_code ec) {
    if (ec) {
      on_read_error(ec);
      return;
    }
    start_answer();
    stream_.expires_never();
    req_.emplace(parser_->release());
    version_ = req_->version();
    keep_alive_ = req_->keep_alive();
    try {
      dispatch();
    } catch (...) {
      // Routes catch what they expect; anything else (bad_alloc, a bug) is a 500 for
      // this request, never the end of the process.
      write(internal_error(what_of(std::current_exception())));
    }
  }

  // A request that cannot be parsed gets a JSON answer and the connection closes (its
  // framing is lost). EOF, timeouts and socket errors just close.
  void on_read_error(error_code ec) {
    static const auto& http_category = http::make_error_code(http::error::bad_target).category();
    if (ec.category() != http_category || ec == http::error::end_of_stream
        || ec == http::error::partial_message) {
      close();
      return;
    }
    start_answer();
    keep_alive_ = false;
    response res;
    if (ec == http::error::body_limit)
      send_error(res, 413, "payload_too_large",
                 "the body is larger than " + std::to_string(srv_.ctx.http.max_body) + " bytes");
    else if (ec == http::error::header_limit)
      send_error(res, 431, "headers_too_large",
                 "the request line and headers are larger than " + std::to_string(max_header_bytes)
                     + " bytes");
    else
      send_error(res, 400, "bad_request", "malformed HTTP request: " + ec.message());
    write(std::move(res));
  }

  void dispatch() {
    const auto& req = *req_;
    if (!authorized(req, srv_.ctx.http.token)) {
      response res;
      res.set_header("WWW-Authenticate", "Bearer realm=\"evident-bank\"");
      send_error(res, 401, "unauthorized", "send 'Authorization: Bearer <token>'");
      write(std::move(res));
      return;
    }
    auto m = srv_.routes.match(req);
    if (m.async != nullptr) {
      (*m.async)(req, m.params, make_responder());
      return;
    }
    if (m.blocking == nullptr) {
      write(std::move(m.error));
      return;
    }
    asio::post(srv_.blocking, [self = shared_from_this(), handler = m.blocking,
                               params = std::move(m.params), done = make_responder()] {
      response res;
      try {
        (*handler)(*self->req_, params, res);
      } catch (...) {
        res = internal_error(what_of(std::current_exception()));
      }
      done(std::move(res));
    });
  }

  responder make_responder();

  void on_write(error_code ec) {
    if (ec || !keep_alive_) {
      close();
      return;
    }
    read();
  }

  void close() {
    if (closed_)
      return;
    closed_ = true;
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  bank_server::impl& srv_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<request> req_;
  /// The answer being written (status line, headers and body in one buffer), or the
  /// interim `100 Continue`.
  std::string out_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  /// A request was read and its answer is not written yet.
  bool busy_ = false;
  /// When the current request was read (or found malformed).
  std::chrono::steady_clock::time_point read_at_;
  bool closed_ = false;
};

namespace {

// The one answer to one request. Holds the connection and keeps the io_context from
// running out of work while the answer is computed elsewhere (serve() must not return
// before it is written).
class reply_slot final : public responder::slot {
public:
  reply_slot(std::shared_ptr<session> s, asio::io_context& ioc)
      : session_(std::move(s)), work_(asio::make_work_guard(ioc)) {
    // nop
  }

  ~reply_slot() override {
    if (answered_.load(std::memory_order_relaxed))
      return;
    try {
      answer(internal_error("the request was dropped without an answer"));
    } catch (...) {
      // Out of memory while answering: the connection closes when the session goes.
    }
  }

  void answer(response res) override {
    if (answered_.exchange(true))
      return;
    auto ex = session_->executor();
    asio::post(ex, [s = session_, res = std::move(res)]() mutable { s->write(std::move(res)); });
  }

private:
  std::shared_ptr<session> session_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::atomic<bool> answered_{false};
};

} // namespace

responder session::make_responder() {
  return responder{std::make_shared<reply_slot>(shared_from_this(), srv_.ioc)};
}

// -- the server -----------------------------------------------------------------------

void bank_server::impl::accept() {
  // With one I/O thread every handler runs on it: the io_context is an implicit strand,
  // and a strand per connection would only add an indirection per handler.
  auto ex = ctx.http.threads > 1 ? asio::any_io_executor{asio::make_strand(ioc)}
                                 : asio::any_io_executor{ioc.get_executor()};
  acceptor.async_accept(ex, [this](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open())
      return; // stopped
    if (!ec && !stopping.load()) {
      error_code ignored;
      // Answers are small and written at once: Nagle would hold them for the client's
      // delayed ACK (40 ms).
      socket.set_option(tcp::no_delay{true}, ignored);
      std::make_shared<session>(std::move(socket), *this)->start();
    }
    // Errors of one accept (EMFILE, a reset before accept) do not stop the server.
    accept();
  });
}

void bank_server::impl::close_sessions() {
  std::vector<std::shared_ptr<session>> open;
  {
    std::lock_guard guard{sessions_mtx};
    for (auto& [ptr, weak] : sessions)
      if (auto s = weak.lock())
        open.push_back(std::move(s));
  }
  for (auto& s : open)
    s->stop();
}

bank_server::bank_server(evident::runtime& rt, http_options opts,
                         std::initializer_list<route_group> groups)
    : impl_(std::make_unique<impl>(rt, std::move(opts))) {
  for (auto group : groups)
    group(impl_->routes, impl_->ctx);
}

bank_server::~bank_server() {
  stop();
  impl_->blocking.join();
}

bank_context& bank_server::context() noexcept {
  return impl_->ctx;
}

evident::expected<int> bank_server::bind() {
  const auto& h = impl_->ctx.http;
  auto fail = [&](const std::string& why) {
    return evident::error{evident::errc::io_error, "cannot listen on " + h.host + ":"
                                                       + std::to_string(h.port) + " (" + why + ")"};
  };
  error_code ec;
  tcp::resolver resolver{impl_->ioc};
  auto endpoints = resolver.resolve(h.host, std::to_string(h.port),
                                    tcp::resolver::numeric_service | tcp::resolver::passive, ec);
  if (ec || endpoints.empty())
    return fail(ec ? ec.message() : "no such address");
  auto ep = endpoints.begin()->endpoint();
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec)
    a.set_option(tcp::acceptor::reuse_address{true}, ec);
  if (!ec)
    a.bind(ep, ec);
  if (!ec)
    a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    a.close(ignored);
    return fail(ec == asio::error::address_in_use ? "in use" : ec.message());
  }
  impl_->bound = true;
  return static_cast<int>(a.local_endpoint().port());
}

bool bank_server::serve() {
  auto& s = *impl_;
  if (!s.bound)
    return false;
  s.accept();
  // A handler that throws (it should not) is logged nowhere and skipped; the server goes
  // on rather than take the process down.
  auto run = [&s] {
    for (;;) {
      try {
        s.ioc.run();
        return;
      } catch (...) {
        // keep serving
      }
    }
  };
  std::vector<std::thread> more;
  for (size_t i = 1; i < s.ctx.http.threads; ++i)
    more.emplace_back(run);
  run();
  for (auto& t : more)
    t.join();
  return true;
}

void bank_server::stop() {
  auto& s = *impl_;
  if (s.stopping.exchange(true))
    return;
  // On an I/O thread: the acceptor is not thread-safe. Posted before serve() runs, it
  // waits in the io_context and runs first thing.
  asio::post(s.ioc, [&s] {
    error_code ignored;
    s.acceptor.close(ignored);
    s.close_sessions();
  });
}

} // namespace bank
