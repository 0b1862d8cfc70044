// read, read-all, streams, head, snapshots, verify, stats: the commands that only look.
// Each opens the journal read-only and never creates one.

#include "cli.hpp"

#include "evident/persistence/environment.hpp"
#include "evident/persistence/snapshot_store.hpp"

#include <filesystem>

namespace evident::cli {

namespace {

bool print_event(const recorded_event& e) {
  print_line(event_json(e));
  return true;
}

// verify's problems are lines like "position 17: checksum mismatch"; the first position
// named becomes the error's `position` field.
std::optional<uint64_t> first_position_in(const std::vector<std::string>& problems) {
  static constexpr std::string_view tag = "position ";
  for (const auto& p : problems) {
    auto at = p.find(tag);
    if (at == std::string::npos)
      continue;
    auto begin = at + tag.size();
    auto end = begin;
    while (end < p.size() && p[end] >= '0' && p[end] <= '9')
      ++end;
    if (auto n = parse_u64(std::string_view{p}.substr(begin, end - begin)))
      return n;
  }
  return std::nullopt;
}

} // namespace

outcome run_read(const read_args& args) {
  auto j = open_journal(args.dir, access::read);
  if (!j)
    return j.err();
  read_options opts;
  opts.dir = args.backward ? direction::backward : direction::forward;
  opts.from = args.from;
  opts.to = args.to;
  if (args.max)
    opts.max_count = *args.max;
  return (*j)->read_stream(args.stream, opts, print_event);
}

outcome run_read_all(const std::string& dir, uint64_t from, std::optional<uint64_t> max) {
  auto j = open_journal(dir, access::read);
  if (!j)
    return j.err();
  return (*j)->read_all(from, max.value_or(UINT64_MAX), print_event);
}

outcome run_streams(const std::string& dir) {
  auto j = open_journal(dir, access::read);
  if (!j)
    return j.err();
  auto all = (*j)->streams();
  if (!all)
    return all.err();
  for (const auto& h : *all) {
    json out = json::object();
    out["stream"] = h.stream;
    out["version"] = h.version;
    out["state"] = std::string{to_string(h.state)};
    print_line(out);
  }
  return {};
}

outcome run_head(const std::string& dir, const std::string& stream) {
  auto j = open_journal(dir, access::read);
  if (!j)
    return j.err();
  auto h = (*j)->head(stream);
  if (!h)
    return h.err();
  print_line(head_json(*h));
  return {};
}

outcome run_snapshots(const std::string& dir, const std::string& stream) {
  auto j = open_journal(dir, access::read);
  if (!j)
    return j.err();
  lmdb_snapshot_store store{(*j)->env()};
  auto list = store.list(stream);
  if (!list)
    return list.err();
  for (const auto& s : *list) {
    json out = json::object();
    out["stream"] = s.stream;
    out["version"] = s.version;
    out["type"] = s.type;
    out["schema"] = s.schema;
    out["time"] = format_time(s.time_ns);
    out["time_ns"] = s.time_ns;
    out["size"] = s.state_size;
    print_line(out);
  }
  return {};
}

outcome run_verify(const std::string& dir) {
  auto j = open_journal(dir, access::read);
  if (!j)
    return j.err();
  auto rep = (*j)->verify();
  if (!rep)
    return rep.err();
  json problems = json::array();
  for (const auto& p : rep->problems)
    problems.push_back(p);
  json out = json::object();
  out["ok"] = rep->ok();
  out["events"] = rep->events;
  out["streams"] = rep->streams;
  out["indexed_entries"] = rep->indexed_entries;
  out["snapshots"] = rep->snapshots;
  out["last_position"] = rep->last_position;
  out["problems"] = problems;
  print_line(out);
  if (rep->ok())
    return {};
  outcome result{errc::corrupted,
                 "verify found " + std::to_string(rep->problems.size()) + " problem(s)"};
  result.err.position = first_position_in(rep->problems);
  result.details["problems"] = std::move(problems);
  return result;
}

outcome run_stats(const std::string& dir) {
  auto j = open_journal(dir, access::read);
  if (!j)
    return j.err();
  auto s = (*j)->stats();
  if (!s)
    return s.err();
  std::error_code ec;
  json out = json::object();
  out["path"] = std::filesystem::absolute(dir, ec).lexically_normal().string();
  out["format_version"] = s->format_version;
  out["node_id"] = s->node_id;
  out["created_at"] = format_time(s->created_at_ns);
  out["created_at_ns"] = s->created_at_ns;
  out["events"] = s->events;
  out["streams"] = s->streams;
  out["snapshots"] = s->snapshots;
  out["checkpoints"] = s->checkpoints;
  out["last_position"] = s->last_position;
  out["indexed_through"] = s->indexed_through;
  out["map_size"] = s->map_size;
  out["map_used"] = s->map_used;
  out["page_size"] = s->page_size;
  print_line(out);
  return {};
}

} // namespace evident::cli
