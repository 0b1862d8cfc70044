#pragma once

// The pieces of the `evident` operator CLI: how a command reports its outcome, the
// JSON shapes it prints, and one function per subcommand. Internal to tools/evident.
//
// Contract of every command: stdout gets one JSON object per line (the command's
// results); on failure stderr gets exactly one JSON object {"error": name, "message":
// text, ...} and the process exits with `exit_code(name)`.

#include "codec.hpp"

#include "evident/persistence/journal.hpp"
#include "evident/persistence/lmdb_journal.hpp"

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

namespace evident::cli {

/// How a command ended. `err.code == errc::none` is success; otherwise `details` adds
/// fields to the error object on stderr (the input line, verify's problems, ...).
struct outcome {
  error err;
  json details = json::object();

  outcome() = default;
  outcome(error e) : err(std::move(e)) {
    // nop
  }
  outcome(errc code, std::string msg, json extra = json::object())
    : err(code, std::move(msg)), details(std::move(extra)) {
    // nop
  }
  explicit operator bool() const noexcept {
    return err.code != errc::none;
  }
};

/// Exit code for an error: 0 for none, 10 + the enum's value otherwise (so
/// wrong_expected_version = 11 ... timeout = 23). Stable: scripts may rely on them.
int exit_code(errc x) noexcept;

/// Exit code for a failure that is not an errc (an unexpected exception, a bug).
inline constexpr int internal_error_exit = 1;

/// The exit-code table for `evident --help`.
std::string exit_code_table();

/// Writes `j` as one line on stdout (invalid UTF-8 is replaced, never thrown on).
void print_line(const json& j);

/// Writes the error object of `x` as one line on stderr; returns its exit code.
int print_error(const outcome& x);

/// Writes {"error":"internal_error","message":what} on stderr; returns 1.
int print_internal_error(const std::string& what);

// -- opening ----------------------------------------------------------------------

enum class access : uint8_t {
  read,   ///< read-only, never creates: a missing journal is not_a_journal
  write,  ///< read-write, never creates
  create, ///< read-write, creates the journal if there is none
};

[[nodiscard]] expected<std::shared_ptr<lmdb_journal>> open_journal(const std::string& dir,
                                                                   access how);

// -- JSON shapes --------------------------------------------------------------------

/// An event as `read` and `read-all` print it.
json event_json(const recorded_event& e);

/// {"stream","version","state","truncate_before"}.
json head_json(const stream_head& h);

// -- commands -----------------------------------------------------------------------

struct append_args {
  std::string dir;
  std::string stream;
  std::string expected;
  std::string command_id;
};

struct read_args {
  std::string dir;
  std::string stream;
  std::optional<uint64_t> from;
  std::optional<uint64_t> to;
  std::optional<uint64_t> max;
  bool backward = false;
};

struct delete_args {
  std::string dir;
  std::string stream;
  std::optional<uint64_t> to;
  bool soft = false;
  bool tombstone = false;
};

outcome run_init(const std::string& dir);
outcome run_append(const append_args& args, std::istream& in);
outcome run_delete(const delete_args& args);
outcome run_truncate(const std::string& dir, const std::string& stream, uint64_t before);

outcome run_read(const read_args& args);
outcome run_read_all(const std::string& dir, uint64_t from, std::optional<uint64_t> max);
outcome run_streams(const std::string& dir);
outcome run_head(const std::string& dir, const std::string& stream);
outcome run_snapshots(const std::string& dir, const std::string& stream);
outcome run_verify(const std::string& dir);
outcome run_stats(const std::string& dir);

outcome run_export(const std::string& dir);
outcome run_import(const std::string& dir, std::istream& in);

/// Parses an --expected value: any, no-stream (no_stream), exists (stream-exists,
/// stream_exists) or a version number.
std::optional<expected_version> parse_expected(std::string_view text);

} // namespace evident::cli
