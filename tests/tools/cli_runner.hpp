#pragma once

// Runs the `evident` binary (or any program) as a child process with a given stdin and
// collects its exit code, stdout and stderr. Files, not pipes, carry the streams, so
// a child that writes a lot can never block on a full pipe.

#include "temp_dir.hpp"

#include <nlohmann/json.hpp>

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace evident::test {

using json = nlohmann::json;

inline std::string read_text(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << text;
}

struct run_result {
  /// The exit code; -N when killed by signal N.
  int code = -1;
  std::string out;
  std::string err;

  /// stdout, one parsed JSON value per line.
  std::vector<json> lines() const {
    std::vector<json> result;
    std::istringstream in{out};
    std::string line;
    while (std::getline(in, line))
      result.push_back(json::parse(line));
    return result;
  }
  /// The one JSON object on stderr (fails the test when there is not exactly one line).
  json error() const {
    auto nl = err.find('\n');
    BOOST_TEST_REQUIRE((nl != std::string::npos && nl + 1 == err.size()), "stderr: " << err);
    return json::parse(err.substr(0, nl));
  }
};

/// A started child process; `wait()` collects it.
class child {
public:
  child(const std::string& program, const std::vector<std::string>& args,
        const std::string& input) {
    static int counter = 0;
    auto stem = std::to_string(counter++);
    in_ = dir_.sub(stem + ".in");
    out_ = dir_.sub(stem + ".out");
    err_ = dir_.sub(stem + ".err");
    write_text(in_, input);
    std::vector<std::string> all{program};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in_.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    auto rc = posix_spawn(&pid_, program.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    BOOST_TEST_REQUIRE(rc == 0, "posix_spawn " << program << " failed: " << rc);
  }

  run_result wait() {
    run_result r;
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      // retry
    }
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    r.out = read_text(out_);
    r.err = read_text(err_);
    return r;
  }

private:
  temp_dir dir_;
  pid_t pid_ = -1;
  std::string in_;
  std::string out_;
  std::string err_;
};

/// Runs `evident args...` with `input` on stdin.
inline run_result cli(const std::vector<std::string>& args, const std::string& input = "") {
  return child{EVIDENT_CLI_PATH, args, input}.wait();
}

/// Runs `evident args...`, requires exit code 0 and returns the parsed stdout lines.
inline std::vector<json> cli_ok(const std::vector<std::string>& args,
                                const std::string& input = "") {
  auto r = cli(args, input);
  BOOST_TEST_REQUIRE(r.code == 0, "evident failed: " << r.err);
  return r.lines();
}

/// The exit codes `evident --help` lists (10 + the errc value).
namespace exit_codes {
inline constexpr int wrong_expected_version = 11;
inline constexpr int stream_deleted = 12;
inline constexpr int stream_not_found = 13;
inline constexpr int corrupted = 14;
inline constexpr int invalid_input = 17;
inline constexpr int not_a_journal = 18;
} // namespace exit_codes

/// A temp dir holding a fresh journal in `<tmp>/j`.
struct journal_fixture {
  temp_dir tmp;
  std::string dir = tmp.sub("j");
  journal_fixture() {
    cli_ok({"init", dir});
  }
  /// Appends JSON lines to `stream` (expected any) and returns the result object.
  json append(const std::string& stream, const std::string& lines,
              const std::string& expected = "any") {
    return cli_ok({"append", dir, stream, "--expected", expected}, lines).at(0);
  }
};

} // namespace evident::test
