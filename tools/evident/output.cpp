#include "cli.hpp"

#include <iostream>

namespace evident::cli {

int exit_code(errc x) noexcept {
  return x == errc::none ? 0 : 10 + static_cast<int>(x);
}

std::string exit_code_table() {
  std::string result = "Exit codes:\n  0   ok\n  1   internal_error (a bug: please report)\n";
  for (int i = 1; i <= static_cast<int>(errc::unavailable); ++i) {
    auto code = static_cast<errc>(i);
    auto num = std::to_string(exit_code(code));
    result += "  " + num + std::string(4 - num.size(), ' ') + std::string{to_string(code)}
              + "\n";
  }
  result += "Errors are one JSON object on stderr: "
            "{\"error\": name, \"message\": text, ...}.\n";
  return result;
}

void print_line(const json& j) {
  std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
}

int print_error(const outcome& x) {
  json j = json::object();
  j["error"] = std::string{to_string(x.err.code)};
  j["message"] = x.err.message;
  if (x.err.code == errc::wrong_expected_version || !x.err.expected.empty()) {
    j["expected"] = x.err.expected;
    if (x.err.actual)
      j["actual"] = *x.err.actual;
  }
  if (x.err.position)
    j["position"] = *x.err.position;
  for (const auto& [k, v] : x.details.items())
    j[k] = v;
  std::cout.flush();
  std::cerr << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
  return exit_code(x.err.code);
}

int print_internal_error(const std::string& what) {
  json j = json::object();
  j["error"] = "internal_error";
  j["message"] = what;
  std::cerr << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
  return internal_error_exit;
}

expected<std::shared_ptr<lmdb_journal>> open_journal(const std::string& dir, access how) {
  journal_options opts;
  opts.path = dir;
  opts.create = how == access::create;
  opts.read_only = how == access::read;
  // Durability stays at its default (fsync per commit): an operator's write is on disk
  // when the command returns.
  return lmdb_journal::open(opts);
}

json event_json(const recorded_event& e) {
  json j = json::object();
  j["position"] = e.position;
  j["stream"] = e.stream;
  j["version"] = e.version;
  j["type"] = e.type;
  j["schema"] = e.schema;
  j["time"] = format_time(e.time_ns);
  j["time_ns"] = e.time_ns;
  j["id"] = e.event_id.to_string();
  j["correlation_id"] = e.correlation_id;
  j["causation_id"] = e.causation_id;
  j["command_id"] = e.command_id;
  json meta = json::object();
  for (const auto& [k, v] : e.meta)
    meta[k] = v;
  j["metadata"] = std::move(meta);
  if (auto data = msgpack_to_json(e.payload))
    j["data"] = std::move(*data);
  else
    j["data_base64"] = base64_encode(e.payload);
  return j;
}

json head_json(const stream_head& h) {
  json j = json::object();
  j["stream"] = h.stream;
  j["version"] = h.version;
  j["state"] = std::string{to_string(h.state)};
  j["truncate_before"] = h.truncate_before;
  return j;
}

std::optional<expected_version> parse_expected(std::string_view text) {
  if (text == "any")
    return expected_version::any();
  if (text == "no-stream" || text == "no_stream")
    return expected_version::no_stream();
  if (text == "exists" || text == "stream-exists" || text == "stream_exists")
    return expected_version::stream_exists();
  if (auto n = parse_u64(text))
    return expected_version::exact(*n);
  return std::nullopt;
}

} // namespace evident::cli
