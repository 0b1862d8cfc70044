// export and import: a journal as JSON lines and back, without loss.
//
// The stream `export` writes (one JSON object per line):
//
//   {"kind":"header","export_format":1,"journal_format":2}
//   {"kind":"event","position":1,"stream":..,"version":..,"type":..,"schema":..,
//    "time_ns":..,"id":..,"correlation_id":..,"causation_id":..,"command_id":..,
//    "metadata":[[key,value],..],"payload_base64":..}          (every event, in order)
//   {"kind":"head","stream":..,"version":..,"state":..,"truncate_before":..}
//                                       (every stream that is not plain live-from-1)
//
// Strings that are not valid UTF-8 appear as {"base64": ..}. Deleted events are in the
// log and therefore in the export; the head lines delete them again on import.
//
// Import rebuilds the same log in an empty journal: positions are gap-free from 1, so
// appending the events in order lands each at its exported position (checked). Runs of
// events of one stream with one command id become one append with that id, so retries
// of those commands are still recognized afterwards.

#include "cli.hpp"

#include <iostream>
#include <unordered_map>

namespace evident::cli {

namespace {

constexpr int export_format = 1;

// Appends are sent in batches (one LMDB transaction, one fsync each) of about this
// many events or payload bytes.
constexpr size_t batch_events = 1000;
constexpr size_t batch_bytes = size_t{16} << 20;

// A run of command-less events of one stream is cut into appends of at most this many
// events; runs with a command id are never cut (the id names one atomic append).
constexpr size_t max_plain_run = 1000;
constexpr size_t max_plain_run_bytes = size_t{16} << 20;

json export_event(const recorded_event& e) {
  json j = json::object();
  j["kind"] = "event";
  j["position"] = e.position;
  j["stream"] = lossless(e.stream);
  j["version"] = e.version;
  j["type"] = lossless(e.type);
  j["schema"] = e.schema;
  j["time_ns"] = e.time_ns;
  j["id"] = e.event_id.to_string();
  j["correlation_id"] = lossless(e.correlation_id);
  j["causation_id"] = lossless(e.causation_id);
  j["command_id"] = lossless(e.command_id);
  json meta = json::array();
  for (const auto& [k, v] : e.meta)
    meta.push_back(json::array({lossless(k), lossless(v)}));
  j["metadata"] = std::move(meta);
  j["payload_base64"] = base64_encode(e.payload);
  return j;
}

json export_head(const stream_head& h) {
  json j = json::object();
  j["kind"] = "head";
  j["stream"] = lossless(h.stream);
  j["version"] = h.version;
  j["state"] = std::string{to_string(h.state)};
  j["truncate_before"] = h.truncate_before;
  return j;
}

outcome bad(uint64_t line, const std::string& msg) {
  outcome result{errc::invalid_input, "line " + std::to_string(line) + ": " + msg};
  result.details["line"] = line;
  return result;
}

// Field access for import lines; each throws `field_error` with a message.
struct field_error {
  std::string msg;
};

const json& field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end())
    throw field_error{std::string{"missing \""} + name + "\""};
  return *it;
}

uint64_t u64_field(const json& j, const char* name) {
  const auto& v = field(j, name);
  if (!v.is_number_unsigned())
    throw field_error{std::string{"\""} + name + "\" must be a non-negative integer"};
  return v.get<uint64_t>();
}

std::string text_field(const json& j, const char* name) {
  if (auto s = from_lossless(field(j, name)))
    return std::move(*s);
  throw field_error{std::string{"\""} + name + "\" must be a string or {\"base64\": ..}"};
}

void only_fields(const json& j, std::initializer_list<std::string_view> names) {
  for (const auto& [k, v] : j.items()) {
    bool known = false;
    for (auto n : names)
      known = known || k == n;
    if (!known)
      throw field_error{"unknown field '" + k + "'"};
  }
}

std::optional<stream_state> parse_state(std::string_view x) {
  for (auto s : {stream_state::live, stream_state::soft_deleted, stream_state::tombstoned})
    if (to_string(s) == x)
      return s;
  return std::nullopt;
}

class importer {
public:
  explicit importer(lmdb_journal& j) : j_(j) {
    // nop
  }

  outcome event_line(const json& j, uint64_t line) {
    only_fields(j, {"kind", "position", "stream", "version", "type", "schema", "time_ns", "id",
                    "correlation_id", "causation_id", "command_id", "metadata",
                    "payload_base64"});
    auto position = u64_field(j, "position");
    auto stream = text_field(j, "stream");
    auto version = u64_field(j, "version");
    event_data e;
    e.type = text_field(j, "type");
    auto schema = u64_field(j, "schema");
    if (schema > UINT32_MAX)
      throw field_error{"\"schema\" is out of range"};
    e.schema = static_cast<uint32_t>(schema);
    const auto& t = field(j, "time_ns");
    if (!t.is_number_integer() || t.get<int64_t>() == 0)
      throw field_error{"\"time_ns\" must be a non-zero integer"};
    e.time_ns = t.get<int64_t>();
    const auto& id = field(j, "id");
    auto parsed = id.is_string() ? uuid::parse(id.get<std::string>()) : std::nullopt;
    if (!parsed || parsed->is_nil())
      throw field_error{"\"id\" must be a non-nil UUID"};
    e.event_id = *parsed;
    e.correlation_id = text_field(j, "correlation_id");
    e.causation_id = text_field(j, "causation_id");
    auto command_id = text_field(j, "command_id");
    const auto& meta = field(j, "metadata");
    if (!meta.is_array())
      throw field_error{"\"metadata\" must be an array of [key, value] pairs"};
    for (const auto& kv : meta) {
      if (!kv.is_array() || kv.size() != 2)
        throw field_error{"\"metadata\" must be an array of [key, value] pairs"};
      auto k = from_lossless(kv[0]);
      auto v = from_lossless(kv[1]);
      if (!k || !v)
        throw field_error{"metadata keys and values must be strings or {\"base64\": ..}"};
      e.meta.emplace_back(std::move(*k), std::move(*v));
    }
    const auto& payload = field(j, "payload_base64");
    auto bytes = payload.is_string() ? base64_decode(payload.get<std::string>()) : std::nullopt;
    if (!bytes)
      throw field_error{"\"payload_base64\" must be a base64 string"};
    e.payload = std::move(*bytes);
    // The import must rebuild the same log: positions gap-free from 1, versions
    // consecutive per stream. Checked here so the error names the line.
    if (position != next_position_)
      return bad(line, "position " + std::to_string(position) + " where "
                         + std::to_string(next_position_) + " was due");
    auto& last = versions_[stream];
    if (version != last + 1)
      return bad(line, "stream version " + std::to_string(version) + " where "
                         + std::to_string(last + 1) + " was due");
    last = version;
    ++next_position_;
    bool joins = cur_ && cur_->req.stream == stream && cur_->req.command_id == command_id
                 && (!command_id.empty()
                     || (cur_->req.events.size() < max_plain_run
                         && cur_->bytes + e.payload.size() <= max_plain_run_bytes));
    if (!joins) {
      if (auto err = close_current())
        return err;
      cur_.emplace();
      cur_->req.stream = std::move(stream);
      cur_->req.command_id = std::move(command_id);
      cur_->req.expected = expected_version::exact(version - 1);
      cur_->first_position = position;
      cur_->line = line;
    }
    cur_->bytes += e.payload.size();
    cur_->req.events.push_back(std::move(e));
    return {};
  }

  outcome head_line(const json& j, uint64_t line) {
    only_fields(j, {"kind", "stream", "version", "state", "truncate_before"});
    stream_head h;
    h.stream = text_field(j, "stream");
    h.version = u64_field(j, "version");
    const auto& state = field(j, "state");
    auto s = state.is_string() ? parse_state(state.get<std::string>()) : std::nullopt;
    if (!s)
      throw field_error{"\"state\" must be live, soft_deleted or tombstoned"};
    h.state = *s;
    h.truncate_before = u64_field(j, "truncate_before");
    heads_.emplace_back(line, std::move(h));
    return {};
  }

  outcome finish() {
    if (auto err = close_current())
      return err;
    if (auto err = flush())
      return err;
    // Deletes come last: the events they delete had to be appended first.
    for (const auto& [line, h] : heads_) {
      auto it = versions_.find(h.stream);
      auto imported = it == versions_.end() ? uint64_t{0} : it->second;
      if (h.version != imported)
        return bad(line, "head of '" + h.stream + "' says version " + std::to_string(h.version)
                           + " but the input holds " + std::to_string(imported) + " events");
      status err;
      if (h.truncate_before != 0 && h.version > 0)
        err = j_.truncate_before(h.stream, h.truncate_before);
      if (!err && h.state == stream_state::soft_deleted)
        err = j_.soft_delete(h.stream);
      if (!err && h.state == stream_state::tombstoned)
        err = j_.tombstone(h.stream);
      if (err) {
        err.message = "line " + std::to_string(line) + ": " + err.message;
        outcome result{std::move(err)};
        result.details["line"] = line;
        return result;
      }
      auto now = j_.head(h.stream);
      if (!now)
        return now.err();
      if (now->version != h.version || now->state != h.state
          || now->truncate_before != h.truncate_before)
        return bad(line, "head of '" + h.stream + "' could not be restored: it is now "
                           + head_json(*now).dump());
    }
    json out = json::object();
    out["events"] = next_position_ - 1;
    out["streams"] = versions_.size();
    out["heads"] = heads_.size();
    out["last_position"] = next_position_ - 1;
    print_line(out);
    return {};
  }

private:
  struct pending {
    append_request req;
    uint64_t first_position = 0;
    uint64_t line = 0;
    size_t bytes = 0;
  };

  outcome close_current() {
    if (!cur_)
      return {};
    batch_events_ += cur_->req.events.size();
    batch_bytes_ += cur_->bytes;
    batch_.push_back(std::move(*cur_));
    cur_.reset();
    if (batch_events_ >= batch_events || batch_bytes_ >= batch_bytes)
      return flush();
    return {};
  }

  outcome flush() {
    if (batch_.empty())
      return {};
    std::vector<append_request> reqs;
    reqs.reserve(batch_.size());
    for (auto& p : batch_)
      reqs.push_back(std::move(p.req));
    auto results = j_.append_batch(reqs);
    for (size_t i = 0; i < batch_.size(); ++i) {
      const auto& p = batch_[i];
      auto where = "line " + std::to_string(p.line) + " (position "
                   + std::to_string(p.first_position) + "): ";
      if (i >= results.size() || !results[i]) {
        outcome result{i < results.size() ? results[i].err()
                                          : error{errc::io_error, "no result for an append"}};
        result.err.message = where + result.err.message
                             + "; the journal holds the events before this one";
        result.details["line"] = p.line;
        return result;
      }
      if (results[i]->duplicate || results[i]->first_position != p.first_position)
        return {errc::invalid_input,
                where + "the append landed at position "
                  + std::to_string(results[i]->first_position)
                  + (results[i]->duplicate ? " as a duplicate command" : "")};
    }
    batch_.clear();
    batch_events_ = 0;
    batch_bytes_ = 0;
    return {};
  }

  lmdb_journal& j_;
  std::optional<pending> cur_;
  std::vector<pending> batch_;
  size_t batch_events_ = 0;
  size_t batch_bytes_ = 0;
  uint64_t next_position_ = 1;
  std::unordered_map<std::string, uint64_t> versions_;
  std::vector<std::pair<uint64_t, stream_head>> heads_;
};

} // namespace

outcome run_export(const std::string& dir) {
  auto j = open_journal(dir, access::read);
  if (!j)
    return j.err();
  json header = json::object();
  header["kind"] = "header";
  header["export_format"] = export_format;
  header["journal_format"] = environment::format_version;
  print_line(header);
  auto err = (*j)->read_all(0, UINT64_MAX, [](const recorded_event& e) {
    print_line(export_event(e));
    return true;
  });
  if (err)
    return err;
  auto heads = (*j)->streams();
  if (!heads)
    return heads.err();
  for (const auto& h : *heads)
    if (h.state != stream_state::live || h.truncate_before != 0)
      print_line(export_head(h));
  return {};
}

outcome run_import(const std::string& dir, std::istream& in) {
  auto j = open_journal(dir, access::create);
  if (!j)
    return j.err();
  auto last = (*j)->last_position();
  if (!last)
    return last.err();
  auto streams = (*j)->streams();
  if (!streams)
    return streams.err();
  if (*last != 0 || !streams->empty())
    return {errc::invalid_input, "import needs an empty journal; '" + dir + "' holds "
                                   + std::to_string(*last) + " events"};
  importer imp{**j};
  std::string line;
  uint64_t line_no = 0;
  bool header_seen = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos)
      continue;
    if (json_depth(line) > max_depth)
      return bad(line_no, "JSON nested too deeply");
    json x;
    try {
      x = json::parse(line);
    } catch (const json::exception& e) {
      return bad(line_no, std::string{"not valid JSON: "} + e.what());
    }
    try {
      const auto& kind = x.is_object() ? field(x, "kind") : throw field_error{"expected an object"};
      if (!kind.is_string())
        throw field_error{"\"kind\" must be a string"};
      auto k = kind.get<std::string>();
      if (!header_seen) {
        if (k != "header")
          throw field_error{"the first line must be the export header"};
        only_fields(x, {"kind", "export_format", "journal_format"});
        if (u64_field(x, "export_format") != export_format)
          throw field_error{"unsupported export_format (this build reads "
                            + std::to_string(export_format) + ")"};
        header_seen = true;
        continue;
      }
      outcome r;
      if (k == "event")
        r = imp.event_line(x, line_no);
      else if (k == "head")
        r = imp.head_line(x, line_no);
      else
        throw field_error{"unknown kind '" + k + "'"};
      if (r)
        return r;
    } catch (const field_error& e) {
      return bad(line_no, e.msg);
    }
  }
  if (in.bad())
    return {errc::io_error, "reading stdin failed"};
  if (!header_seen)
    return {errc::invalid_input, "empty input: expected an export"};
  return imp.finish();
}

} // namespace evident::cli
