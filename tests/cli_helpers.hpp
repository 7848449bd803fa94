#pragma once
// Running the built sqbench binary from tests, and throw-away folders.

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sqbtest {

namespace fs = std::filesystem;

struct Outcome {
  int status = -1;     ///< exit status, or -signal when killed by a signal
  std::string output;  ///< stdout and stderr together (or stdout only, see run_cli)
  double seconds = 0;  ///< wall time
};

/// Runs a shell command and captures what it prints (append "2>&1" to see stderr too).
inline Outcome shell(const std::string& cmd) {
  Outcome o;
  const auto t0 = std::chrono::steady_clock::now();
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return o;
  char buf[4096];
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0)
    o.output.append(buf, got);
  const int raw = ::pclose(p);
  o.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : (WIFSIGNALED(raw) ? -WTERMSIG(raw) : -1);
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return o;
}

/// Runs `sqbench ARGS` and captures stdout and stderr together, or stdout alone (a Debug build prints a
/// banner on stderr).
inline Outcome run_cli(const std::string& args, bool with_stderr = true) {
  return shell(std::string(SQBENCH_EXE) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null"));
}

/// A fresh folder, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/sqbench-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  fs::path write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path / name, std::ios::binary) << bytes;
    return path / name;
  }
};

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

}  // namespace sqbtest
