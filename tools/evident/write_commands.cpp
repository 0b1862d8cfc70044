// init, append, delete, truncate: the commands that change a journal.

#include "cli.hpp"

#include <filesystem>
#include <iostream>

namespace evident::cli {

namespace {

// The fields an input line of `append` may carry; anything else is a typo we refuse.
bool known_field(std::string_view k) {
  return k == "type" || k == "data" || k == "data_base64" || k == "metadata" || k == "id"
         || k == "correlation_id" || k == "causation_id" || k == "schema";
}

outcome bad(std::string msg) {
  return {errc::invalid_input, std::move(msg)};
}

// Turns one input line into an event. Metadata values that are JSON strings are stored
// as they are; other values are stored as their JSON text.
outcome parse_event(const std::string& line, event_data& out) {
  if (json_depth(line) > max_depth)
    return bad("JSON nested deeper than " + std::to_string(max_depth) + " levels");
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {
    return bad(std::string{"not valid JSON: "} + e.what());
  }
  if (!j.is_object())
    return bad("expected a JSON object");
  for (const auto& [k, v] : j.items())
    if (!known_field(k))
      return bad("unknown field '" + k + "'");
  auto type = j.find("type");
  if (type == j.end() || !type->is_string() || type->get_ref<const std::string&>().empty())
    return bad("\"type\" must be a non-empty string");
  out.type = type->get<std::string>();
  auto data = j.find("data");
  auto raw = j.find("data_base64");
  if ((data == j.end()) == (raw == j.end()))
    return bad("exactly one of \"data\" and \"data_base64\" is required");
  if (data != j.end()) {
    out.payload = json_to_msgpack(*data);
  } else {
    auto bytes = raw->is_string() ? base64_decode(raw->get<std::string>()) : std::nullopt;
    if (!bytes)
      return bad("\"data_base64\" must be a base64 string");
    out.payload = std::move(*bytes);
  }
  if (auto m = j.find("metadata"); m != j.end()) {
    if (!m->is_object())
      return bad("\"metadata\" must be an object");
    for (const auto& [k, v] : m->items())
      out.meta.emplace_back(k, v.is_string() ? v.get<std::string>() : v.dump());
  }
  if (auto id = j.find("id"); id != j.end()) {
    auto parsed = id->is_string() ? uuid::parse(id->get<std::string>()) : std::nullopt;
    if (!parsed || parsed->is_nil())
      return bad("\"id\" must be a non-nil UUID (8-4-4-4-12 hex)");
    out.event_id = *parsed;
  }
  for (auto [name, field] : {std::pair{"correlation_id", &out.correlation_id},
                             std::pair{"causation_id", &out.causation_id}}) {
    auto it = j.find(name);
    if (it == j.end())
      continue;
    if (!it->is_string())
      return bad(std::string{"\""} + name + "\" must be a string");
    *field = it->get<std::string>();
  }
  if (auto s = j.find("schema"); s != j.end()) {
    if (!s->is_number_unsigned() || s->get<uint64_t>() < 1
        || s->get<uint64_t>() > UINT32_MAX)
      return bad("\"schema\" must be an integer from 1 to 4294967295");
    out.schema = static_cast<uint32_t>(s->get<uint64_t>());
  }
  return {};
}

outcome print_head_of(lmdb_journal& j, const std::string& stream) {
  auto h = j.head(stream);
  if (!h)
    return h.err();
  print_line(head_json(*h));
  return {};
}

} // namespace

outcome run_init(const std::string& dir) {
  std::error_code ec;
  bool existed = std::filesystem::exists(std::filesystem::path{dir} / "data.mdb", ec);
  auto j = open_journal(dir, access::create);
  if (!j)
    return j.err();
  json out = json::object();
  out["path"] = std::filesystem::absolute(dir, ec).lexically_normal().string();
  out["format_version"] = environment::format_version;
  out["created"] = !existed;
  print_line(out);
  return {};
}

outcome run_append(const append_args& args, std::istream& in) {
  auto expected = parse_expected(args.expected);
  if (!expected)
    return bad("--expected must be any, no-stream, exists or a version number, not '"
               + args.expected + "'");
  auto j = open_journal(args.dir, access::write);
  if (!j)
    return j.err();
  append_request req;
  req.stream = args.stream;
  req.expected = *expected;
  req.command_id = args.command_id;
  // Every line is parsed before anything is written: the append is all or nothing.
  std::string line;
  uint64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos)
      continue; // blank lines separate nothing and carry nothing
    event_data e;
    if (auto err = parse_event(line, e)) {
      err.err.message = "line " + std::to_string(line_no) + ": " + err.err.message;
      err.details["line"] = line_no;
      return err;
    }
    req.events.push_back(std::move(e));
  }
  if (in.bad())
    return {errc::io_error, "reading stdin failed"};
  auto r = (*j)->append(req);
  if (!r)
    return r.err();
  json out = json::object();
  out["first_version"] = r->first_version;
  out["last_version"] = r->last_version;
  out["first_position"] = r->first_position;
  out["last_position"] = r->last_position;
  out["events"] = req.events.size();
  out["duplicate"] = r->duplicate;
  print_line(out);
  return {};
}

outcome run_delete(const delete_args& args) {
  int modes = int{args.to.has_value()} + int{args.soft} + int{args.tombstone};
  if (modes != 1)
    return bad("delete needs exactly one of --to N, --soft, --tombstone");
  auto j = open_journal(args.dir, access::write);
  if (!j)
    return j.err();
  status err;
  if (args.to)
    err = (*j)->delete_to(args.stream, *args.to);
  else if (args.soft)
    err = (*j)->soft_delete(args.stream);
  else
    err = (*j)->tombstone(args.stream);
  if (err)
    return err;
  return print_head_of(**j, args.stream);
}

outcome run_truncate(const std::string& dir, const std::string& stream, uint64_t before) {
  auto j = open_journal(dir, access::write);
  if (!j)
    return j.err();
  if (auto err = (*j)->truncate_before(stream, before))
    return err;
  return print_head_of(**j, stream);
}

} // namespace evident::cli
