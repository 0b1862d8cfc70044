#include "options.hpp"

#include <charconv>
#include <fstream>
#include <sstream>

namespace bank {

using evident::errc;
using evident::error;

std::string usage() {
  return "usage: evident-bank [options]\n"
         "  --listen HOST:PORT    address to serve HTTP on (default 127.0.0.1:8080;\n"
         "                        port 0 picks a free one, printed on stdout)\n"
         "  --data DIR            the LMDB data directory (default ./data)\n"
         "  --config FILE         an INI file: the runtime's sections (see\n"
         "                        samples/evident.ini) plus [http] listen, token,\n"
         "                        threads, blocking_threads, max_body\n"
         "  --token T             require 'Authorization: Bearer T' on every request\n"
         "  --http-threads N      HTTP I/O threads (default 1; connections are\n"
         "                        multiplexed on them)\n"
         "  --durability MODE     fsync (default) | no_meta_sync | no_sync\n"
         "  --help                this text\n";
}

namespace {

error bad(std::string msg) {
  return error{errc::invalid_input, std::move(msg)};
}

evident::expected<uint64_t> parse_count(std::string_view what, std::string_view text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
    return bad(std::string{what} + ": '" + std::string{text} + "' is not a non-negative integer");
  return n;
}

evident::expected<uint64_t> parse_size(std::string_view what, std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  auto n = parse_count(what, text.substr(0, digits));
  if (!n)
    return n;
  auto unit = text.substr(digits);
  uint64_t mult = 1;
  if (unit == "KiB")
    mult = 1024;
  else if (unit == "MiB")
    mult = 1024 * 1024;
  else if (!unit.empty() && unit != "B")
    return bad(std::string{what} + ": unit '" + std::string{unit} + "' is not B, KiB or MiB");
  if (*n > (uint64_t{1} << 32) / mult)
    return bad(std::string{what} + ": '" + std::string{text} + "' is too large (at most 4GiB)");
  return *n * mult;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

evident::status set_http_key(http_options& http, std::string_view key, std::string_view value) {
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
    value = value.substr(1, value.size() - 2);
  if (key == "listen")
    return parse_listen(value, http);
  if (key == "token") {
    http.token = std::string{value};
    return {};
  }
  if (key == "threads") {
    auto n = parse_count("http.threads", value);
    if (!n)
      return n.err();
    if (*n < 1 || *n > 64)
      return bad("http.threads: must be between 1 and 64");
    http.threads = static_cast<size_t>(*n);
    return {};
  }
  if (key == "blocking_threads") {
    auto n = parse_count("http.blocking_threads", value);
    if (!n)
      return n.err();
    if (*n < 1 || *n > 256)
      return bad("http.blocking_threads: must be between 1 and 256");
    http.blocking_threads = static_cast<size_t>(*n);
    return {};
  }
  if (key == "max_body") {
    auto n = parse_size("http.max_body", value);
    if (!n)
      return n.err();
    if (*n < 1024)
      return bad("http.max_body: must be at least 1KiB");
    http.max_body = static_cast<size_t>(*n);
    return {};
  }
  return bad("http." + std::string{key}
             + ": unknown key (listen, token, threads, blocking_threads, max_body)");
}

// The file is the runtime's strict INI plus an [http] section. The [http] lines are taken
// out here and replaced by blank lines, so the runtime's parser still names the right
// line numbers for everything else.
evident::status load_file(bank_options& out, const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return error{errc::io_error, "cannot read the config file '" + path + "'"};
  std::ostringstream rest;
  std::string line;
  bool in_http = false;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    auto t = trim(line);
    if (!t.empty() && t.front() == '[') {
      in_http = t == "[http]";
      rest << (in_http ? "" : line) << '\n';
      continue;
    }
    if (!in_http || t.empty() || t.front() == '#' || t.front() == ';') {
      rest << (in_http ? "" : line) << '\n';
      continue;
    }
    auto eq = t.find('=');
    if (eq == std::string_view::npos)
      return bad(path + ":" + std::to_string(lineno) + ": expected 'key = value'");
    if (auto err = set_http_key(out.http, trim(t.substr(0, eq)), trim(t.substr(eq + 1)))) {
      err.message = path + ":" + std::to_string(lineno) + ": " + err.message;
      return err;
    }
    rest << '\n';
  }
  return evident::parse_config(out.runtime, rest.str(), path);
}

} // namespace

evident::status parse_listen(std::string_view text, http_options& out) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return bad("listen: '" + std::string{text} + "' is not HOST:PORT");
  auto port = parse_count("listen port", text.substr(colon + 1));
  if (!port)
    return port.err();
  if (*port > 65535)
    return bad("listen: port " + std::to_string(*port) + " is out of range");
  out.host = std::string{text.substr(0, colon)};
  out.port = static_cast<int>(*port);
  return {};
}

evident::expected<bank_options> parse_options(const std::vector<std::string>& args) {
  bank_options out;
  out.runtime.scheduler.threads = bank_scheduler_threads;
  out.runtime.scheduler.policy = bank_scheduler_policy;
  out.runtime.views.commit_interval = bank_view_commit_interval;
  // The config file first, wherever --config stands, so that flags override it.
  std::vector<std::pair<std::string, std::string>> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--help" || a == "-h") {
      out.help = true;
      return out;
    }
    if (a.rfind("--", 0) != 0)
      return bad("unexpected argument '" + a + "' (see --help)");
    std::string name;
    std::string value;
    if (auto eq = a.find('='); eq != std::string::npos) {
      name = a.substr(2, eq - 2);
      value = a.substr(eq + 1);
    } else {
      name = a.substr(2);
      if (i + 1 >= args.size())
        return bad("--" + name + " needs a value");
      value = args[++i];
    }
    flags.emplace_back(std::move(name), std::move(value));
  }
  for (const auto& [name, value] : flags)
    if (name == "config")
      if (auto err = load_file(out, value))
        return err;
  for (const auto& [name, value] : flags) {
    evident::status err;
    if (name == "config")
      continue;
    if (name == "listen")
      err = parse_listen(value, out.http);
    else if (name == "data")
      out.runtime.storage.data_dir = value;
    else if (name == "token")
      out.http.token = value;
    else if (name == "http-threads")
      err = set_http_key(out.http, "threads", value);
    else if (name == "durability")
      err = evident::set_option(out.runtime, "storage.durability", value);
    else
      err = bad("unknown option --" + name + " (see --help)");
    if (err)
      return err;
  }
  if (out.runtime.storage.data_dir.empty())
    out.runtime.storage.data_dir = "./data";
  return out;
}

} // namespace bank
