// evident-bank end to end: the daemon as a child process on a loopback port with a
// temporary data directory, driven over HTTP with cpp-httplib's client.

#include "samples/bank_daemon.hpp"
#include "support/temp_dir.hpp"

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using evident::test::bank_daemon;
using evident::test::body_of;
using evident::test::raw_connection;
using evident::test::temp_dir;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const char* json_type = "application/json";

// Most tests do not need fsync; the kill test runs with the default (fsync).
const std::vector<std::string> fast{"--durability", "no_sync"};

struct daemon_fixture {
  temp_dir dir;
  bank_daemon bank{dir.sub("data"), fast};
  httplib::Client http = bank.client();

  httplib::Result post(const std::string& path, const std::string& body,
                       const httplib::Headers& headers = {}) {
    return http.Post(path.c_str(), headers, body, json_type);
  }
  httplib::Result post(const std::string& path, const json& body,
                       const httplib::Headers& headers = {}) {
    return post(path, body.dump(), headers);
  }
  json get_json(const std::string& path) {
    return body_of(http.Get(path.c_str()));
  }
  void open(const std::string& id) {
    auto r = post("/accounts", json{{"id", id}, {"owner", "ada"}});
    BOOST_REQUIRE(r);
    BOOST_REQUIRE_EQUAL(r->status, 201);
  }
};

int status(const httplib::Result& r) {
  return r ? r->status : -1;
}

/// Opens accounts prefix0 .. prefix(n-1); each must get its 201.
void open_accounts(httplib::Client& http, const std::string& prefix, int n) {
  for (int a = 0; a < n; ++a)
    BOOST_REQUIRE_EQUAL(
        status(http.Post("/accounts",
                         json{{"id", prefix + std::to_string(a)}, {"owner", "o"}}.dump(),
                         json_type)),
        201);
}

// The saga runs after the 202: poll its state until it is no longer pending, until
// `deadline`. A transfer never taken answers 404 (null here).
json wait_for_transfer(httplib::Client& http, const std::string& id,
                       std::chrono::steady_clock::time_point deadline) {
  json t;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = http.Get(("/transfers/" + id).c_str());
    if (status(r) == 404)
      return nullptr;
    t = body_of(r);
    if (t.is_object() && t.value("state", "") != "pending")
      return t;
    std::this_thread::sleep_for(20ms);
  }
  return t;
}

json wait_for_transfer(httplib::Client& http, const std::string& id) {
  return wait_for_transfer(http, id, std::chrono::steady_clock::now() + 10s);
}

std::string error_of(const httplib::Result& r) {
  auto b = body_of(r);
  return b.is_object() && b.contains("error") ? b["error"].get<std::string>() : "";
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(bank_daemon_routes, daemon_fixture)

BOOST_AUTO_TEST_CASE(account_commands_follow_the_account_rules) {
  auto created = post("/accounts", json{{"id", "a-1"}, {"owner", "ada"}});
  BOOST_TEST(status(created) == 201);
  BOOST_TEST(body_of(created) == (json{{"id", "a-1"}, {"version", 1}}));
  auto again = post("/accounts", json{{"id", "a-1"}, {"owner", "bob"}});
  BOOST_TEST(status(again) == 409);
  BOOST_TEST(error_of(again) == "account_exists");

  auto generated = post("/accounts", json{{"owner", "carol"}});
  BOOST_TEST(status(generated) == 201);
  auto gen_id = body_of(generated)["id"].get<std::string>();
  BOOST_TEST(gen_id.size() == 36u); // a UUID
  BOOST_TEST(get_json("/accounts/" + gen_id)["owner"] == "carol");

  auto dep = post("/accounts/a-1/deposits", json{{"amount", 100}});
  BOOST_TEST(status(dep) == 200);
  BOOST_TEST(body_of(dep) == (json{{"version", 2}, {"balance", 100}}));

  auto poor = post("/accounts/a-1/withdrawals", json{{"amount", 101}});
  BOOST_TEST(status(poor) == 409);
  BOOST_TEST(body_of(poor)["error"] == "insufficient_funds");
  BOOST_TEST(body_of(poor)["balance"] == 100);

  auto wd = post("/accounts/a-1/withdrawals", json{{"amount", 40}});
  BOOST_TEST(status(wd) == 200);
  BOOST_TEST(body_of(wd) == (json{{"version", 3}, {"balance", 60}}));

  auto not_zero = post("/accounts/a-1/close", json::object());
  BOOST_TEST(status(not_zero) == 409);
  BOOST_TEST(body_of(not_zero)["error"] == "balance_not_zero");
  BOOST_TEST(body_of(not_zero)["balance"] == 60);

  BOOST_TEST(status(post("/accounts/a-1/withdrawals", json{{"amount", 60}})) == 200);
  // close takes an empty body too.
  auto closed = post("/accounts/a-1/close", std::string{});
  BOOST_TEST(status(closed) == 200);
  BOOST_TEST(body_of(closed) == (json{{"version", 5}, {"balance", 0}}));

  auto late = post("/accounts/a-1/deposits", json{{"amount", 1}});
  BOOST_TEST(status(late) == 409);
  BOOST_TEST(error_of(late) == "not_open");

  auto acc = get_json("/accounts/a-1");
  BOOST_TEST(acc["id"] == "a-1");
  BOOST_TEST(acc["owner"] == "ada");
  BOOST_TEST(acc["balance"] == 0);
  BOOST_TEST(acc["version"] == 5);
  BOOST_TEST(acc["open"] == false);
}

BOOST_AUTO_TEST_CASE(commands_to_an_unknown_account_get_404) {
  BOOST_TEST(status(post("/accounts/nobody/deposits", json{{"amount", 1}})) == 404);
  BOOST_TEST(status(post("/accounts/nobody/withdrawals", json{{"amount", 1}})) == 404);
  BOOST_TEST(status(post("/accounts/nobody/close", json::object())) == 404);
  auto r = http.Get("/accounts/nobody");
  BOOST_TEST(status(r) == 404);
  BOOST_TEST(error_of(r) == "account_not_found");
  BOOST_TEST(status(http.Get("/accounts/nobody/events")) == 404);
}

BOOST_AUTO_TEST_CASE(past_states_by_version_and_by_time) {
  open("t-1");
  post("/accounts/t-1/deposits", json{{"amount", 10}});
  post("/accounts/t-1/deposits", json{{"amount", 20}});
  BOOST_TEST(get_json("/accounts/t-1?at_version=2")["balance"] == 10);
  BOOST_TEST(get_json("/accounts/t-1?at_version=1")["balance"] == 0);
  BOOST_TEST(get_json("/accounts/t-1?at_version=99")["balance"] == 30);

  auto events = get_json("/accounts/t-1/events")["events"];
  BOOST_REQUIRE_EQUAL(events.size(), 3u);
  auto t2 = events[1]["time"].get<std::string>();
  auto at = get_json("/accounts/t-1?at_time=" + t2);
  BOOST_TEST(at["balance"] == 10);
  BOOST_TEST(at["version"] == 2);
  BOOST_TEST(status(http.Get("/accounts/t-1?at_time=2000-01-01T00:00:00Z")) == 404);
  BOOST_TEST(get_json("/accounts/t-1?at_time=2200-01-01T00:00:00%2B02:00")["balance"] == 30);

  BOOST_TEST(status(http.Get("/accounts/t-1?at_version=x")) == 400);
  BOOST_TEST(status(http.Get("/accounts/t-1?at_version=-1")) == 400);
  BOOST_TEST(status(http.Get("/accounts/t-1?at_time=yesterday")) == 400);
  BOOST_TEST(status(http.Get("/accounts/t-1?at_time=2024-02-31T00:00:00Z")) == 400);
  BOOST_TEST(status(http.Get("/accounts/t-1?at_version=1&at_time=2024-01-01T00:00:00Z")) == 400);
}

BOOST_AUTO_TEST_CASE(transfers_complete_fail_or_are_compensated) {
  open("x-1");
  open("x-2");
  open("x-3");
  post("/accounts/x-1/deposits", json{{"amount", 100}});
  BOOST_REQUIRE_EQUAL(status(post("/accounts/x-3/close", json::object())), 200);

  auto ok = post("/transfers", json{{"id", "tr-1"}, {"from", "x-1"}, {"to", "x-2"}, {"amount", 30}});
  BOOST_REQUIRE_EQUAL(status(ok), 202);
  BOOST_TEST(body_of(ok)["id"] == "tr-1");
  auto done = wait_for_transfer(http, "tr-1");
  BOOST_TEST(done["state"] == "completed");
  BOOST_TEST(done["steps"].size() == 3u);
  BOOST_TEST(get_json("/accounts/x-1")["balance"] == 70);
  BOOST_TEST(get_json("/accounts/x-2")["balance"] == 30);

  // The same id again: the first answer (the id is the command id), nothing moves twice.
  auto retry = post("/transfers", json{{"id", "tr-1"}, {"from", "x-1"}, {"to", "x-2"}, {"amount", 30}});
  BOOST_TEST(status(retry) == 202);
  BOOST_TEST(get_json("/accounts/x-1")["balance"] == 70);

  post("/transfers", json{{"id", "tr-2"}, {"from", "x-2"}, {"to", "x-1"}, {"amount", 500}});
  auto poor = wait_for_transfer(http, "tr-2");
  BOOST_TEST(poor["state"] == "failed");
  BOOST_TEST(get_json("/accounts/x-2")["balance"] == 30);

  post("/transfers", json{{"id", "tr-3"}, {"from", "x-1"}, {"to", "x-3"}, {"amount", 20}});
  auto refunded = wait_for_transfer(http, "tr-3");
  BOOST_TEST(refunded["state"] == "compensated");
  BOOST_TEST(get_json("/accounts/x-1")["balance"] == 70);

  auto generated = post("/transfers", json{{"from", "x-1"}, {"to", "x-2"}, {"amount", 1}});
  BOOST_REQUIRE_EQUAL(status(generated), 202);
  BOOST_TEST(!body_of(generated)["id"].get<std::string>().empty());

  BOOST_TEST(status(http.Get("/transfers/nope")) == 404);
  BOOST_TEST(status(post("/transfers", json{{"from", "x-1"}, {"to", "x-2"}, {"amount", 0}})) == 400);
  BOOST_TEST(status(post("/transfers", json{{"from", "x-1"}, {"to", "x-1"}, {"amount", 5}})) == 400);
  BOOST_TEST(status(post("/transfers", json{{"from", "x-1"}, {"amount", 5}})) == 400);
  BOOST_TEST(status(post("/transfers", std::string{"{not json"})) == 400);
}

BOOST_AUTO_TEST_CASE(the_balances_report_is_a_view_of_every_account) {
  open("r-1");
  open("r-2");
  post("/accounts/r-1/deposits", json{{"amount", 40}});
  auto last = post("/accounts/r-2/deposits", json{{"amount", 60}});
  BOOST_REQUIRE_EQUAL(status(last), 200);
  // Poll until the view caught up (it is asynchronous), bounded.
  json report;
  for (int i = 0; i < 250; ++i) {
    report = get_json("/reports/balances");
    if (report.is_object() && report.value("total_balance", 0) == 100)
      break;
    std::this_thread::sleep_for(20ms);
  }
  BOOST_TEST(report["total_balance"] == 100);
  BOOST_TEST(report["open_accounts"] == 2);
  BOOST_REQUIRE_EQUAL(report["largest"].size(), 2u);
  BOOST_TEST(report["largest"][0]["id"] == "r-2");
  BOOST_TEST(report["largest"][0]["balance"] == 60);
  BOOST_TEST(report.contains("position"));
  BOOST_TEST(report.contains("lag"));
  BOOST_TEST(status(http.Get("/reports/balances?min_position=x")) == 400);
}

BOOST_AUTO_TEST_CASE(events_route_lists_the_history_in_pages) {
  open("e-1");
  post("/accounts/e-1/deposits", json{{"amount", 5}, {"command_id", "dep-1"}});
  post("/accounts/e-1/withdrawals", json{{"amount", 2}});
  auto all = get_json("/accounts/e-1/events");
  BOOST_REQUIRE_EQUAL(all["events"].size(), 3u);
  BOOST_TEST(all["events"][0]["type"] == "bank.opened");
  BOOST_TEST(all["events"][0]["data"]["owner"] == "ada");
  BOOST_TEST(all["events"][1]["type"] == "bank.deposited");
  BOOST_TEST(all["events"][1]["data"]["amount"] == 5);
  BOOST_TEST(all["events"][1]["command_id"] == "dep-1");
  BOOST_TEST(all["events"][2]["data"]["amount"] == 2);
  BOOST_TEST(all["next"].is_null());

  auto page = get_json("/accounts/e-1/events?from=2&limit=1");
  BOOST_REQUIRE_EQUAL(page["events"].size(), 1u);
  BOOST_TEST(page["events"][0]["version"] == 2);
  BOOST_TEST(page["next"] == 3);
  BOOST_TEST(status(http.Get("/accounts/e-1/events?limit=0")) == 400);
  BOOST_TEST(status(http.Get("/accounts/e-1/events?limit=100000")) == 400);
}

BOOST_AUTO_TEST_CASE(bad_input_gets_400_or_404_and_writes_nothing) {
  open("b-1");
  post("/accounts/b-1/deposits", json{{"amount", 50}});
  struct bad_case {
    std::string path;
    std::string body;
    int status;
  };
  std::string long_id(129, 'x');
  std::vector<bad_case> cases{
      {"/accounts/b-1/deposits", "{\"amount\":", 400},        // malformed JSON
      {"/accounts/b-1/deposits", "[1,2]", 400},               // not an object
      {"/accounts/b-1/deposits", "", 400},                    // empty body
      {"/accounts/b-1/deposits", "{}", 400},                  // missing amount
      {"/accounts/b-1/deposits", "{\"amount\":\"10\"}", 400}, // mistyped
      {"/accounts/b-1/deposits", "{\"amount\":1.5}", 400},    // not an integer
      {"/accounts/b-1/deposits", "{\"amount\":true}", 400},   // mistyped
      {"/accounts/b-1/deposits", "{\"amount\":0}", 400},      // zero
      {"/accounts/b-1/deposits", "{\"amount\":-5}", 400},     // negative
      {"/accounts/b-1/deposits", "{\"amount\":1e30}", 400},   // too large
      {"/accounts/b-1/deposits", "{\"amount\":18446744073709551615}", 400},
      {"/accounts/b-1/withdrawals", "{\"amount\":-1}", 400},
      {"/accounts/b-1/deposits", "{\"amount\":1,\"command_id\":7}", 400},
      {"/accounts/b-1/deposits", "{\"amount\":1,\"command_id\":\"\"}", 400},
      {"/accounts/b-1/deposits", "{\"amount\":1,\"command_id\":\"" + long_id + "\"}", 400},
      {"/accounts/" + long_id + "/deposits", "{\"amount\":1}", 400}, // id too long
      {"/accounts/b%01x/deposits", "{\"amount\":1}", 400},           // control character
      {"/accounts", "{\"id\":\"a\\u0001b\",\"owner\":\"x\"}", 400},  // control character
      {"/accounts", "{\"id\":\"" + long_id + "\",\"owner\":\"x\"}", 400},
      {"/accounts", "{\"id\":\"a/b\",\"owner\":\"x\"}", 400},
      {"/accounts", "{\"id\":5,\"owner\":\"x\"}", 400},
      {"/accounts", "{\"id\":\"new-1\"}", 400}, // missing owner
      {"/accounts", "{\"id\":\"new-1\",\"owner\":42}", 400},
      {"/accounts", "{\"id\":\"new-1\",\"owner\":\"\"}", 400},
      {"/accounts", "not json", 400},
      {"/accounts/b-1/transfers", "{}", 404}, // unknown route
      {"/nothing", "{}", 404},
      {"/accounts/b-1/deposits/", "{\"amount\":1}", 404},
  };
  for (const auto& c : cases) {
    auto r = post(c.path, c.body);
    BOOST_TEST_CONTEXT("POST " << c.path << " " << c.body) {
      BOOST_TEST(status(r) == c.status);
      BOOST_TEST(!error_of(r).empty()); // {"error": ...}
    }
  }
  BOOST_TEST(status(http.Get("/accounts/%01")) == 400);
  auto wrong_method = http.Delete("/accounts/b-1");
  BOOST_TEST(status(wrong_method) == 405);
  BOOST_TEST(error_of(wrong_method) == "method_not_allowed");
  BOOST_TEST(status(http.Get("/no/such/route")) == 404);
  auto bad_match = post("/accounts/b-1/deposits", json{{"amount", 1}}, {{"If-Match", "abc"}});
  BOOST_TEST(status(bad_match) == 400);

  // Nothing was written: the account is where it was, and no account new-1 appeared.
  auto acc = get_json("/accounts/b-1");
  BOOST_TEST(acc["version"] == 2);
  BOOST_TEST(acc["balance"] == 50);
  BOOST_TEST(status(http.Get("/accounts/new-1")) == 404);
  // ... and the daemon is alive.
  BOOST_TEST(status(http.Get("/healthz")) == 200);
}

BOOST_AUTO_TEST_CASE(if_match_refuses_a_stale_version_with_412) {
  open("m-1");
  auto ok = post("/accounts/m-1/deposits", json{{"amount", 10}}, {{"If-Match", "\"1\""}});
  BOOST_TEST(status(ok) == 200);
  BOOST_TEST(body_of(ok)["version"] == 2);
  auto stale = post("/accounts/m-1/withdrawals", json{{"amount", 5}}, {{"If-Match", "1"}});
  BOOST_TEST(status(stale) == 412);
  BOOST_TEST(body_of(stale)["error"] == "version_mismatch");
  BOOST_TEST(body_of(stale)["expected"] == 1);
  BOOST_TEST(body_of(stale)["actual"] == 2);
  BOOST_TEST(status(post("/accounts/m-1/close", json::object(), {{"If-Match", "7"}})) == 412);
  // The GET's ETag is what If-Match takes.
  auto got = http.Get("/accounts/m-1");
  BOOST_REQUIRE(got);
  BOOST_TEST(got->get_header_value("ETag") == "\"2\"");
  BOOST_TEST(get_json("/accounts/m-1")["balance"] == 10);
}

BOOST_AUTO_TEST_CASE(a_retried_command_id_gets_the_original_answer) {
  open("r-1");
  auto first = post("/accounts/r-1/deposits", json{{"amount", 25}, {"command_id", "pay-1"}});
  BOOST_TEST(status(first) == 200);
  post("/accounts/r-1/deposits", json{{"amount", 5}});
  auto retry = post("/accounts/r-1/deposits", json{{"amount", 25}, {"command_id", "pay-1"}});
  BOOST_TEST(status(retry) == 200);
  BOOST_TEST(body_of(retry) == body_of(first)); // version 2, balance 25: not redone
  BOOST_TEST(get_json("/accounts/r-1")["balance"] == 30);

  auto open_once = post("/accounts", json{{"id", "r-2"}, {"owner", "x"}, {"command_id", "o-1"}});
  auto open_twice = post("/accounts", json{{"id", "r-2"}, {"owner", "x"}, {"command_id", "o-1"}});
  BOOST_TEST(status(open_once) == 201);
  BOOST_TEST(status(open_twice) == 201);
  BOOST_TEST(body_of(open_twice) == body_of(open_once));
}

BOOST_AUTO_TEST_CASE(healthz_and_metrics_answer) {
  auto h = http.Get("/healthz");
  BOOST_TEST(status(h) == 200);
  BOOST_TEST(body_of(h)["status"] == "ok");
  open("x-1");
  auto m = http.Get("/metrics");
  BOOST_REQUIRE(m);
  BOOST_TEST(m->status == 200);
  BOOST_TEST(m->get_header_value("Content-Type").find("text/plain") == 0u);
  BOOST_TEST(m->body.find("# TYPE evident_") != std::string::npos);
  BOOST_TEST(m->body.find("evident_journal_commit_duration_seconds") != std::string::npos);
  BOOST_TEST(m->body.find("evident_bank_http_responses_total{class=\"2xx\"}") != std::string::npos);
  // Every answer written so far is in the latency histogram, once (both count at the
  // write; this test's client is the only one).
  auto value_of = [&](const std::string& name) {
    auto at = m->body.find("\n" + name + " ");
    BOOST_REQUIRE_MESSAGE(at != std::string::npos, name);
    return std::stod(m->body.substr(at + name.size() + 2));
  };
  double responses = 0;
  for (int cls = 1; cls <= 5; ++cls)
    responses += value_of("evident_bank_http_responses_total{class=\"" + std::to_string(cls)
                          + "xx\"}");
  BOOST_TEST(responses >= 2.0); // /healthz and the open
  BOOST_TEST(value_of("evident_bank_http_request_duration_seconds_count") == responses);
  BOOST_TEST(value_of("evident_bank_http_request_duration_seconds_bucket{le=\"+Inf\"}")
             == responses);
  BOOST_TEST(value_of("evident_journal_append_duration_seconds_count") >= 1.0);
}

// -- the HTTP layer ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(malformed_http_gets_a_json_400_and_the_connection_closes) {
  raw_connection c{bank.port()};
  BOOST_REQUIRE(c.send("NOT AN HTTP REQUEST AT ALL\r\n\r\n"));
  auto out = c.read_until_closed(10s);
  BOOST_TEST(out.rfind("HTTP/1.1 400", 0) == 0u);
  BOOST_TEST(out.find("\"error\":\"bad_request\"") != std::string::npos);
  BOOST_TEST(c.closed());
  BOOST_TEST(status(http.Get("/healthz")) == 200);
}

BOOST_AUTO_TEST_CASE(a_body_over_max_body_gets_413_without_being_read) {
  raw_connection c{bank.port()};
  // Only the headers: the answer comes from Content-Length alone.
  BOOST_REQUIRE(c.send("POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 1000000\r\n\r\n"));
  auto out = c.read_until_closed(10s);
  BOOST_TEST(out.rfind("HTTP/1.1 413", 0) == 0u);
  BOOST_TEST(out.find("payload_too_large") != std::string::npos);
  BOOST_TEST(c.closed());
}

BOOST_AUTO_TEST_CASE(expect_100_continue_gets_the_interim_answer_before_the_body_is_sent) {
  // curl sends `Expect: 100-continue` for large bodies and waits (1 s) for the interim
  // answer before it sends the body.
  raw_connection c{bank.port()};
  auto body = json{{"id", "x-1"}, {"owner", "ada"}, {"note", std::string(2000, 'n')}}.dump();
  BOOST_REQUIRE(c.send("POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Expect: 100-continue\r\nContent-Length: "
                       + std::to_string(body.size()) + "\r\n\r\n"));
  // Nothing of the body was sent: only the interim answer can come now.
  auto interim = c.read_response(5s);
  BOOST_TEST(interim.rfind("HTTP/1.1 100 Continue\r\n", 0) == 0u, interim);
  BOOST_REQUIRE(c.send(body));
  auto created = c.read_response(10s);
  BOOST_TEST(created.rfind("HTTP/1.1 201", 0) == 0u, created);
  BOOST_TEST(created.find("\"id\":\"x-1\"") != std::string::npos);
  // The connection goes on as usual.
  BOOST_REQUIRE(c.send("GET /accounts/x-1 HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto state = c.read_response(10s);
  BOOST_TEST(state.rfind("HTTP/1.1 200", 0) == 0u, state);
  BOOST_TEST(!c.closed());
}

BOOST_AUTO_TEST_CASE(expect_100_continue_with_a_body_over_max_body_gets_413_and_no_100) {
  raw_connection c{bank.port()};
  BOOST_REQUIRE(c.send("POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Expect: 100-continue\r\nContent-Length: 1000000\r\n\r\n"));
  auto out = c.read_until_closed(10s);
  BOOST_TEST(out.rfind("HTTP/1.1 413", 0) == 0u, out);
  BOOST_TEST(out.find("100 Continue") == std::string::npos);
  BOOST_TEST(c.closed());
}

BOOST_AUTO_TEST_CASE(an_expectation_other_than_100_continue_gets_417) {
  raw_connection c{bank.port()};
  BOOST_REQUIRE(c.send("POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Expect: something-else\r\nContent-Length: 2\r\n\r\n"));
  auto out = c.read_until_closed(10s);
  BOOST_TEST(out.rfind("HTTP/1.1 417", 0) == 0u, out);
  BOOST_TEST(out.find("expectation_failed") != std::string::npos);
  BOOST_TEST(c.closed());
  BOOST_TEST(status(http.Get("/healthz")) == 200);
}

BOOST_AUTO_TEST_CASE(pipelined_requests_are_answered_in_order) {
  open("p-1");
  raw_connection c{bank.port()};
  std::string deposit = "POST /accounts/p-1/deposits HTTP/1.1\r\nHost: x\r\n"
                        "Content-Type: application/json\r\nContent-Length: 12\r\n\r\n"
                        "{\"amount\":1}";
  BOOST_REQUIRE(c.send(deposit + deposit
                       + "GET /accounts/p-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  auto first = c.read_response(10s);
  auto second = c.read_response(10s);
  auto third = c.read_response(10s);
  BOOST_TEST(first.rfind("HTTP/1.1 200", 0) == 0u);
  BOOST_TEST(first.find("\"version\":2") != std::string::npos);
  BOOST_TEST(second.find("\"version\":3") != std::string::npos);
  BOOST_TEST(third.find("\"balance\":2") != std::string::npos);
  c.read_until_closed(10s);
  BOOST_TEST(c.closed()); // Connection: close is honoured
}

BOOST_AUTO_TEST_CASE(answers_speak_the_request_version_and_its_connection_rule) {
  // HTTP/1.0 closes unless the client asked for keep-alive, and then the answer says so.
  raw_connection c{bank.port()};
  BOOST_REQUIRE(c.send("GET /accounts/nobody HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto first = c.read_response(10s);
  BOOST_TEST(first.rfind("HTTP/1.0 404 Not Found\r\n", 0) == 0u, first);
  BOOST_TEST(first.find("\r\nConnection: keep-alive\r\n") != std::string::npos, first);
  BOOST_TEST(first.find("\r\nContent-Type: application/json\r\n") != std::string::npos, first);
  auto body = first.substr(first.find("\r\n\r\n") + 4);
  BOOST_TEST(first.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n")
             != std::string::npos, first);
  BOOST_TEST(body.find("\"error\"") != std::string::npos, body);
  BOOST_TEST(!c.closed());
  BOOST_REQUIRE(c.send("DELETE /healthz HTTP/1.0\r\n\r\n"));
  auto second = c.read_until_closed(10s);
  BOOST_TEST(second.rfind("HTTP/1.0 405 Method Not Allowed\r\n", 0) == 0u, second);
  BOOST_TEST(second.find("\r\nAllow: GET\r\n") != std::string::npos, second);
  BOOST_TEST(second.find("Connection:") == std::string::npos, second);
  BOOST_TEST(c.closed());
}

BOOST_AUTO_TEST_CASE(hundreds_of_keep_alive_connections_share_one_io_thread) {
  // One I/O thread (the default) and no thread per connection: 300 clients at once,
  // each served twice on its own connection.
  constexpr int clients = 300;
  std::vector<std::unique_ptr<raw_connection>> conns;
  for (int i = 0; i < clients; ++i)
    conns.push_back(std::make_unique<raw_connection>(bank.port()));
  const std::string get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  int ok = 0;
  for (int round = 0; round < 2; ++round) {
    for (auto& c : conns)
      BOOST_REQUIRE(c->send(get));
    for (auto& c : conns)
      if (c->read_response(10s).rfind("HTTP/1.1 200", 0) == 0 && !c->closed())
        ++ok;
  }
  BOOST_TEST(ok == 2 * clients);
}

BOOST_AUTO_TEST_CASE(percent_encoded_paths_and_queries_are_decoded) {
  open("a b");
  BOOST_TEST(status(post("/accounts/a%20b/deposits", json{{"amount", 7}})) == 200);
  auto now = get_json("/accounts/a%20b");
  BOOST_TEST(now["id"] == "a b");
  BOOST_TEST(now["balance"] == 7);
  auto then = get_json("/accounts/a%20b?at_version=%31");
  BOOST_TEST(then["version"] == 1);
  BOOST_TEST(then["balance"] == 0);
}

BOOST_AUTO_TEST_CASE(sigterm_stops_the_daemon_cleanly) {
  open("s-1");
  auto st = bank.stop(SIGTERM, std::chrono::seconds{20});
  BOOST_REQUIRE(st.has_value());
  BOOST_TEST(WIFEXITED(*st));
  BOOST_TEST(WEXITSTATUS(*st) == 0);
  BOOST_TEST(bank.rest_of_output().find("evident-bank stopped") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bank_daemon_process)

BOOST_AUTO_TEST_CASE(a_token_is_required_when_configured) {
  temp_dir dir;
  auto extra = fast;
  extra.insert(extra.end(), {"--token", "s3cret"});
  bank_daemon bank{dir.sub("data"), extra};
  auto http = bank.client();
  auto none = http.Get("/healthz");
  BOOST_TEST(status(none) == 401);
  BOOST_TEST(error_of(none) == "unauthorized");
  BOOST_TEST(status(http.Get("/healthz", {{"Authorization", "Bearer wrong"}})) == 401);
  BOOST_TEST(status(http.Get("/healthz", {{"Authorization", "Bearer s3cret"}})) == 200);
  BOOST_TEST(status(http.Post("/accounts", json{{"id", "k"}, {"owner", "o"}}.dump(), json_type))
             == 401);
  BOOST_TEST(status(http.Get("/accounts/k", {{"Authorization", "Bearer s3cret"}})) == 404);
}

BOOST_AUTO_TEST_CASE(bad_options_and_config_files_stop_the_start) {
  temp_dir dir;
  BOOST_CHECK_THROW(bank_daemon(dir.sub("data"), {"--bogus", "1"}), std::runtime_error);
  BOOST_CHECK_THROW(bank_daemon(dir.sub("data"), {"--config", dir.sub("missing.ini")}),
                    std::runtime_error);
  BOOST_CHECK_THROW(bank_daemon(dir.sub("data"), {"--http-threads", "0"}), std::runtime_error);
  BOOST_CHECK_THROW(bank_daemon(dir.sub("data"), {"--http-threads", "65"}), std::runtime_error);
}

// A journal at its size cap (as a full disk): commands get 507 storage_full and write
// nothing, reads go on, and every acknowledged deposit is in the balance.
BOOST_AUTO_TEST_CASE(a_full_journal_answers_507_and_keeps_what_it_acknowledged) {
  temp_dir dir;
  {
    std::ofstream ini{dir.sub("small.ini")};
    ini << "[storage]\nmap_size = 256KiB\nmap_size_cap = 512KiB\nfile_headroom = 0\n";
  }
  auto extra = fast;
  extra.insert(extra.end(), {"--config", dir.sub("small.ini")});
  bank_daemon bank{dir.sub("data"), extra};
  auto http = bank.client();
  open_accounts(http, "f-", 1);
  int64_t acked = 0;
  int last_status = 0;
  std::string last_error;
  for (int i = 0; i < 20'000; ++i) { // bounded; the cap is reached after a few thousand
    auto r = http.Post("/accounts/f-0/deposits", json{{"amount", 1}}.dump(), json_type);
    last_status = status(r);
    if (last_status != 200) {
      last_error = error_of(r);
      break;
    }
    ++acked;
  }
  BOOST_TEST(acked > 100);
  BOOST_TEST(last_status == 507);
  BOOST_TEST(last_error == "storage_full");
  auto account = body_of(http.Get("/accounts/f-0"));
  BOOST_TEST(account["balance"] == acked);
  BOOST_TEST(status(http.Get("/healthz")) == 200);
}

// A graceful stop under load: the server stops taking requests, answers every request it
// took (each only after its deposit is durable), and the runtime stops after that. A
// client sees 200, 503 (nothing taken) or a closed connection (nothing read), never a
// lost answer; after a restart every acknowledged deposit is there.
BOOST_AUTO_TEST_CASE(sigterm_under_load_answers_what_it_took_and_loses_nothing) {
  temp_dir dir;
  constexpr int clients = 4;
  constexpr int accounts = 4;
  std::map<std::string, int64_t> acked;
  std::map<std::string, int64_t> unknown;
  std::vector<int> last_status;
  std::mutex mtx;
  {
    bank_daemon bank{dir.sub("data"), fast};
    auto http = bank.client();
    open_accounts(http, "q-", accounts);
    std::atomic<int> total_acks{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t)
      threads.emplace_back([&, t] {
        auto c = bank.client();
        for (int i = 0; i < 50'000; ++i) {
          auto account = "q-" + std::to_string((t + i) % accounts);
          auto r = c.Post(
              ("/accounts/" + account + "/deposits").c_str(),
              json{{"amount", 1}, {"command_id", "t" + std::to_string(t) + "-" + std::to_string(i)}}
                  .dump(),
              json_type);
          std::lock_guard guard{mtx};
          if (r && r->status == 200) {
            acked[account] += 1;
            ++total_acks;
            continue;
          }
          unknown[account] += 1;
          last_status.push_back(status(r));
          return;
        }
      });
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (total_acks.load() < 300 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    BOOST_TEST(total_acks.load() >= 300);
    auto st = bank.stop(SIGTERM, 30s);
    for (auto& th : threads)
      th.join();
    BOOST_REQUIRE(st.has_value());
    BOOST_TEST(WIFEXITED(*st));
    BOOST_TEST(WEXITSTATUS(*st) == 0);
    BOOST_TEST(bank.rest_of_output().find("evident-bank stopped") != std::string::npos);
  }
  for (int s : last_status)
    BOOST_TEST((s == -1 || s == 503), "a client's last answer was HTTP " << s);
  bank_daemon bank{dir.sub("data"), fast};
  auto http = bank.client();
  for (int a = 0; a < accounts; ++a) {
    auto id = "q-" + std::to_string(a);
    auto balance = body_of(http.Get(("/accounts/" + id).c_str()))["balance"].get<int64_t>();
    BOOST_TEST_CONTEXT(id) {
      BOOST_TEST(balance >= acked[id]);
      BOOST_TEST(balance <= acked[id] + unknown[id]);
    }
  }
}

// A deposit load from several clients, each with one request in flight and unique
// command ids, plus a client starting transfers between the same accounts; SIGKILL in
// the middle; three times, each on the data the last kill left; then a restart.
// - Retrying the unacknowledged deposits with their command ids commits each exactly
//   once (a committed one is answered, not redone).
// - Every accepted transfer (202) is still known and ends (its saga resumes); one whose
//   answer was lost either ends too or was never taken (404).
// - Each balance is then exactly its deposits plus the completed transfers' net: an
//   acknowledged deposit that was lost would leave it short. The balances view
//   converges to the sum of the accounts.
BOOST_AUTO_TEST_CASE(sigkill_loses_no_acknowledged_deposit_or_transfer_and_the_view_converges) {
  temp_dir dir;
  constexpr int clients = 4;
  constexpr int accounts = 4;
  struct attempt {
    std::string account;
    std::string command_id;
    int64_t amount;
  };
  struct transfer_attempt {
    std::string id;
    std::string from;
    std::string to;
    int64_t amount;
    bool accepted;
  };
  std::map<std::string, int64_t> acked;
  std::vector<attempt> unacked;
  std::vector<transfer_attempt> transfers;
  std::mutex mtx;
  // Each cycle restarts on the data the last kill left: the later kills hit a daemon
  // whose sagas are still resuming and whose view is still catching up.
  for (int cycle = 0; cycle < 3; ++cycle) {
    bank_daemon bank{dir.sub("data")}; // default durability: fsync
    if (cycle == 0) {
      auto http = bank.client();
      open_accounts(http, "k-", accounts);
    }
    auto tag = std::to_string(cycle) + "-";
    std::atomic<int> total_acks{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t)
      threads.emplace_back([&, t] {
        auto c = bank.client();
        // Bounded: stops at the first failure (the kill) or after 20,000 requests.
        for (int i = 0; i < 20'000; ++i) {
          attempt at{"k-" + std::to_string((t + i) % accounts),
                     "c" + tag + std::to_string(t) + "-" + std::to_string(i), 1 + (i % 7)};
          auto r = c.Post(("/accounts/" + at.account + "/deposits").c_str(),
                          json{{"amount", at.amount}, {"command_id", at.command_id}}.dump(),
                          json_type);
          std::lock_guard guard{mtx};
          if (r && r->status == 200) {
            acked[at.account] += at.amount;
            ++total_acks;
            continue;
          }
          unacked.push_back(at); // outcome unknown: maybe committed, maybe not
          return;
        }
      });
    threads.emplace_back([&] {
      auto c = bank.client();
      for (int i = 0; i < 5'000; ++i) {
        transfer_attempt tr{"tk-" + tag + std::to_string(i), "k-" + std::to_string(i % accounts),
                            "k-" + std::to_string((i + 1) % accounts), 1 + (i % 5), false};
        auto r = c.Post("/transfers",
                        json{{"id", tr.id}, {"from", tr.from}, {"to", tr.to}, {"amount", tr.amount}}
                            .dump(),
                        json_type);
        tr.accepted = status(r) == 202;
        std::lock_guard guard{mtx};
        transfers.push_back(tr);
        if (!tr.accepted)
          return;
      }
    });
    // Kill once enough deposits were acknowledged (bounded wait), with requests in flight.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
    while (total_acks.load() < 400 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    BOOST_TEST(total_acks.load() >= 400);
    auto st = bank.stop(SIGKILL, std::chrono::seconds{10});
    for (auto& th : threads)
      th.join();
    BOOST_REQUIRE(st.has_value());
    BOOST_TEST(WIFSIGNALED(*st));
  }
  // Each cycle's transfer client stops at its first failure: more attempts than cycles
  // means some were accepted.
  BOOST_TEST(transfers.size() > 3u);
  bank_daemon bank{dir.sub("data")};
  auto http = bank.client();
  for (const auto& u : unacked) {
    auto r = http.Post(("/accounts/" + u.account + "/deposits").c_str(),
                       json{{"amount", u.amount}, {"command_id", u.command_id}}.dump(), json_type);
    BOOST_TEST(status(r) == 200);
    acked[u.account] += u.amount;
  }
  auto expected = acked;
  auto deadline = std::chrono::steady_clock::now() + 30s; // for all transfers together
  for (const auto& tr : transfers) {
    auto end = wait_for_transfer(http, tr.id, deadline);
    BOOST_TEST_CONTEXT(tr.id) {
      if (tr.accepted)
        BOOST_TEST(end.is_object()); // an accepted transfer survives the kill
      if (end.is_null())
        continue; // its answer was lost and it was never taken
      auto state = end.value("state", "");
      BOOST_TEST((state == "completed" || state == "failed" || state == "compensated"), state);
      if (state == "completed") {
        expected[tr.from] -= tr.amount;
        expected[tr.to] += tr.amount;
      }
    }
  }
  int64_t total = 0;
  for (int a = 0; a < accounts; ++a) {
    auto id = "k-" + std::to_string(a);
    auto balance = body_of(http.Get(("/accounts/" + id).c_str()))["balance"].get<int64_t>();
    BOOST_TEST(balance == expected[id], id << ": " << balance << " != " << expected[id]);
    total += balance;
  }
  // The view is asynchronous: poll until it has folded every event, bounded (10 s).
  json report;
  for (int i = 0; i < 500; ++i) {
    report = body_of(http.Get("/reports/balances"));
    if (report.is_object() && report.value("total_balance", int64_t{-1}) == total
        && report.value("lag", int64_t{-1}) == 0)
      break;
    std::this_thread::sleep_for(20ms);
  }
  BOOST_TEST(report.value("total_balance", int64_t{-1}) == total);
  BOOST_TEST(report.value("open_accounts", -1) == accounts);
}

BOOST_AUTO_TEST_SUITE_END()
