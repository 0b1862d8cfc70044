// The `evident` operator CLI: argument parsing and the top-level error boundary.
// Every command lives in its own file (write_commands, read_commands, transfer); this
// file turns arguments into calls and every failure into one JSON object on stderr.

#include "cli.hpp"

#include <CLI/CLI.hpp>

#include <iostream>
#include <new>

namespace evident::cli {

namespace {

// Numbers are parsed here rather than by CLI11, which would accept "-1" for unsigned.
struct number_option {
  std::string text;
  CLI::Option* opt = nullptr;

  void add(CLI::App* app, const std::string& name, const std::string& help) {
    opt = app->add_option(name, text, help);
  }
  bool given() const {
    return opt != nullptr && opt->count() > 0;
  }
};

outcome number(const number_option& x, const char* name, std::optional<uint64_t>& out) {
  if (!x.given())
    return {};
  out = parse_u64(x.text);
  if (!out)
    return {errc::invalid_input,
            std::string{name} + " must be a non-negative integer, not '" + x.text + "'"};
  return {};
}

int run(int argc, char** argv) {
  CLI::App app{"evident: inspect and repair an evident journal (JSON lines in and out)",
               "evident"};
  app.require_subcommand(1);
  app.footer("\n" + exit_code_table());

  std::string dir;
  std::string stream;
  auto add_dir = [&](CLI::App* sub) {
    sub->add_option("dir", dir, "the journal directory (data.mdb, lock.mdb)")->required();
  };
  auto add_stream = [&](CLI::App* sub) {
    sub->add_option("stream", stream, "the stream id")->required();
  };

  auto* init = app.add_subcommand("init", "create an empty journal in DIR");
  add_dir(init);

  append_args append;
  auto* app_append = app.add_subcommand(
    "append", "append the events on stdin (one JSON object per line) as one atomic append");
  add_dir(app_append);
  add_stream(app_append);
  app_append->add_option("--expected", append.expected, "any | no-stream | exists | VERSION")
    ->required();
  app_append->add_option("--command-id", append.command_id,
                         "retries with the same command id write nothing twice");

  read_args read;
  number_option read_from, read_to, read_max;
  auto* app_read = app.add_subcommand("read", "print the events of one stream");
  add_dir(app_read);
  add_stream(app_read);
  read_from.add(app_read, "--from", "first version to visit");
  read_to.add(app_read, "--to", "last version to visit");
  read_max.add(app_read, "--max", "most events to print");
  app_read->add_flag("--backward", read.backward, "walk from newest to oldest");

  number_option all_from, all_max;
  auto* app_read_all = app.add_subcommand("read-all", "print events in global order");
  add_dir(app_read_all);
  all_from.add(app_read_all, "--from", "first global position (default 1)");
  all_max.add(app_read_all, "--max", "most events to print");

  auto* app_streams = app.add_subcommand("streams", "print every stream's head");
  add_dir(app_streams);

  auto* app_head = app.add_subcommand("head", "print one stream's head");
  add_dir(app_head);
  add_stream(app_head);

  delete_args del;
  number_option del_to;
  auto* app_delete = app.add_subcommand("delete", "delete events of a stream");
  add_dir(app_delete);
  add_stream(app_delete);
  del_to.add(app_delete, "--to", "delete events with version <= N");
  app_delete->add_flag("--soft", del.soft, "soft delete: reads as not found, numbering goes on");
  app_delete->add_flag("--tombstone", del.tombstone, "delete for good: no more reads or appends");

  number_option trunc_before;
  auto* app_truncate = app.add_subcommand("truncate", "delete events with version < N");
  add_dir(app_truncate);
  add_stream(app_truncate);
  trunc_before.add(app_truncate, "--before", "first version to keep");
  trunc_before.opt->required();

  auto* app_snapshots = app.add_subcommand("snapshots", "list a stream's snapshots");
  add_dir(app_snapshots);
  add_stream(app_snapshots);

  auto* app_verify = app.add_subcommand(
    "verify", "check every record's checksum, the index and the heads (full scan)");
  add_dir(app_verify);

  auto* app_stats = app.add_subcommand("stats", "print counts and sizes");
  add_dir(app_stats);

  auto* app_export = app.add_subcommand("export", "write the whole journal as JSON lines");
  add_dir(app_export);

  auto* app_import = app.add_subcommand(
    "import", "read an export from stdin into an empty journal (created if needed)");
  add_dir(app_import);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, std::cout, std::cerr);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, std::cout, std::cerr);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e, std::cout, std::cerr);
  } catch (const CLI::ParseError& e) {
    return print_error({errc::invalid_input, e.what()});
  }

  outcome result;
  if (*init) {
    result = run_init(dir);
  } else if (*app_append) {
    append.dir = dir;
    append.stream = stream;
    result = run_append(append, std::cin);
  } else if (*app_read) {
    read.dir = dir;
    read.stream = stream;
    if (!(result = number(read_from, "--from", read.from))
        && !(result = number(read_to, "--to", read.to))
        && !(result = number(read_max, "--max", read.max)))
      result = run_read(read);
  } else if (*app_read_all) {
    std::optional<uint64_t> from;
    std::optional<uint64_t> max;
    if (!(result = number(all_from, "--from", from)) && !(result = number(all_max, "--max", max)))
      result = run_read_all(dir, from.value_or(0), max);
  } else if (*app_streams) {
    result = run_streams(dir);
  } else if (*app_head) {
    result = run_head(dir, stream);
  } else if (*app_delete) {
    del.dir = dir;
    del.stream = stream;
    if (!(result = number(del_to, "--to", del.to)))
      result = run_delete(del);
  } else if (*app_truncate) {
    std::optional<uint64_t> before;
    if (!(result = number(trunc_before, "--before", before)))
      result = run_truncate(dir, stream, *before);
  } else if (*app_snapshots) {
    result = run_snapshots(dir, stream);
  } else if (*app_verify) {
    result = run_verify(dir);
  } else if (*app_stats) {
    result = run_stats(dir);
  } else if (*app_export) {
    result = run_export(dir);
  } else if (*app_import) {
    result = run_import(dir, std::cin);
  }
  std::cout.flush();
  if (result)
    return print_error(result);
  if (!std::cout)
    return print_error({errc::io_error, "writing to stdout failed"});
  return 0;
}

} // namespace

} // namespace evident::cli

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  try {
    return evident::cli::run(argc, argv);
  } catch (const std::bad_alloc&) {
    return evident::cli::print_internal_error("out of memory");
  } catch (const std::exception& e) {
    return evident::cli::print_internal_error(e.what());
  } catch (...) {
    return evident::cli::print_internal_error("unknown exception");
  }
}
