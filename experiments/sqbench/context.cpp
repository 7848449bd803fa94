#include "context.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "csv.hpp"
#include "sqb/task.hpp"
#include "sqb/version.hpp"

namespace sqbench {

namespace fs = std::filesystem;

namespace {

std::string read_first_line(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  return line;
}

// Runs a shell command and returns its trimmed stdout, or "" if it failed.
std::string command_output(const std::string& cmd, bool* ok = nullptr) {
  FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r");
  std::string out;
  if (p == nullptr) {
    if (ok) *ok = false;
    return out;
  }
  char buf[256];
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, got);
  const int status = ::pclose(p);
  if (ok) *ok = status == 0;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto c = line.find(':');
      return c == std::string::npos ? line : line.substr(line.find_first_not_of(" \t", c + 1));
    }
  }
  return "unknown";
}

std::string caches_json() {
  std::vector<std::string> items;
  for (int i = 0; i < 8; ++i) {
    const fs::path dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i);
    std::error_code ec;
    if (!fs::exists(dir, ec)) break;
    items.push_back("{\"level\": " + read_first_line(dir / "level") +
                    ", \"type\": " + json_string(read_first_line(dir / "type")) +
                    ", \"size\": " + json_string(read_first_line(dir / "size")) +
                    ", \"shared_cpu_list\": " + json_string(read_first_line(dir / "shared_cpu_list")) + "}");
  }
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i)
    out += (i ? ", " : "") + items[i];
  return out + "]";
}

std::string memory_total() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("MemTotal:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 9));
  }
  return "unknown";
}

}  // namespace

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

const std::string& seed_policy() {
  static const std::string policy =
      "data: the cell's seed seeds Boost.Random mt19937_64 for the distribution; quantizers: block b of a "
      "cell draws "
      "from SplitMix64(seed, b), or from SplitMix64(spec seed=, b) when the spec sets seed=";
  return policy;
}

std::string timing_policy(int jobs, int threads, int repeats) {
  return "fit, encode and decode of the whole tensor, each timed separately with std::chrono::steady_clock; "
         "one "
         "untimed warm-up, then " +
         std::to_string(repeats) +
         " timed repeats summarised as median, min and MAD (median absolute deviation); " +
         (threads > 1 ? "each cell's blocks designed, encoded and decoded on " + std::to_string(threads) +
                            " threads; "
                      : std::string("single-threaded kernels; ")) +
         (jobs > 1
              ? "quality metrics ran on " + std::to_string(jobs) +
                    " threads, but timed repeats ran exclusively (every other worker paused at a gate), so "
                    "timings never overlapped other work"
              : "one job, so nothing else of sqbench ran during timings");
}

std::string context_json(const Config& config, const RunInfo& run) {
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);

  const std::string src(sqb::source_dir());
  bool git_ok = false;
  const std::string sha = command_output("git -C '" + src + "' rev-parse --short=12 HEAD", &git_ok);
  // Dirty means a tracked input changed: sources, configs, scripts. Committed outputs under results/ do not
  // count (a run that rewrites one folder would otherwise mark every later run as dirty).
  bool dirty_ok = false;
  const std::string dirty = command_output(
      "git -C '" + src + "' status --porcelain --untracked-files=no -- . ':(exclude)results'", &dirty_ok);

  std::string skipped = "{";
  for (const auto& [reason, count] : run.skipped) {
    skipped += (skipped.size() > 1 ? ", " : "") + json_string(reason) + ": " + std::to_string(count);
  }
  skipped += "}";

  std::ostringstream j;
  j << "{\n";
  j << "  \"date\": " << json_string(date) << ",\n";
  j << "  \"host\": {\n";
  j << "    \"name\": " << json_string(host) << ",\n";
  j << "    \"cpu_model\": " << json_string(cpu_model()) << ",\n";
  j << "    \"cores\": " << std::thread::hardware_concurrency() << ",\n";
  j << "    \"caches\": " << caches_json() << ",\n";
  j << "    \"memory\": " << json_string(memory_total()) << ",\n";
  j << "    \"kernel\": " << json_string(read_first_line("/proc/sys/kernel/osrelease")) << "\n";
  j << "  },\n";
  j << "  \"sqbench\": {\n";
  j << "    \"version\": " << json_string(std::string(sqb::version())) << ",\n";
  j << "    \"git_sha\": " << (git_ok ? json_string(sha) : "null") << ",\n";
  j << "    \"git_dirty\": " << (git_ok && dirty_ok ? (dirty.empty() ? "false" : "true") : "null") << ",\n";
  j << "    \"built_from_sha\": " << json_string(std::string(sqb::git_sha())) << ",\n";
  j << "    \"build_type\": " << json_string(std::string(sqb::build_type())) << ",\n";
  j << "    \"debug_build\": " << (sqb::debug_build() ? "true" : "false") << ",\n";
  j << "    \"compiler\": " << json_string(std::string(sqb::compiler())) << ",\n";
  j << "    \"flags\": " << json_string(std::string(sqb::compile_flags())) << "\n";
  j << "  },\n";
  j << "  \"libraries\": {\n";
  j << "    \"boost\": " << json_string(std::string(sqb::boost_version())) << ",\n";
  j << "    \"armadillo\": " << json_string(std::string(sqb::armadillo_version())) << ",\n";
  j << "    \"google_benchmark\": "
    << json_string(std::string(sqb::benchmark_version()) + " (micro-benchmarks only)") << ",\n";
  // The BLAS behind Armadillo (what a task sweep's training runs on) and the threads it was given.
  const sqb::task::BlasInfo blas = sqb::task::blas_info();
  j << "    \"blas\": {\"library\": " << json_string(blas.library)
    << ", \"config\": " << json_string(blas.config) << ", \"threads\": " << blas.threads << "}\n";
  j << "  },\n";
  j << "  \"config\": {\n";
  j << "    \"name\": " << json_string(config.name) << ",\n";
  j << "    \"path\": " << json_string(config.path.string()) << ",\n";
  j << "    \"hash\": " << json_string(config.hash) << ",\n";
  j << "    \"description\": " << json_string(config.description) << "\n";
  j << "  },\n";
  j << "  \"seed_policy\": " << json_string(seed_policy()) << ",\n";
  j << "  \"timing\": " << json_string(timing_policy(run.jobs, run.threads, config.repeats)) << ",\n";
  j << "  \"inputs\": " << inputs_json(run.inputs, 2) << ",\n";
  j << "  \"run\": {\n";
  j << "    \"command\": " << json_string(run.command) << ",\n";
  j << "    \"jobs\": " << run.jobs << ",\n";
  j << "    \"threads\": " << run.threads << ",\n";
  j << "    \"shard\": " << json_string(run.shard) << ",\n";
  j << "    \"repeats\": " << config.repeats << ",\n";
  j << "    \"cells\": " << run.cells_total << ",\n";
  j << "    \"cells_done\": " << run.cells_done << ",\n";
  j << "    \"cells_resumed\": " << run.cells_resumed << ",\n";
  j << "    \"skipped\": " << skipped << ",\n";
  if (run.memory_estimate_bytes > 0)
    j << "    \"memory_estimate_bytes\": " << run.memory_estimate_bytes << ",\n";
  if (run.peak_resident_bytes > 0) j << "    \"peak_resident_bytes\": " << run.peak_resident_bytes << ",\n";
  if (run.float_models_trained + run.float_models_loaded > 0) {
    j << "    \"float_models_trained\": " << run.float_models_trained << ",\n";
    j << "    \"float_models_loaded\": " << run.float_models_loaded << ",\n";
    j << "    \"task_timing\": "
      << json_string(
             "train_s: std::chrono::steady_clock wall time of each task cell's training, measured once; "
             "with --jobs J, J cells (or float models) train at once, each on one BLAS thread")
      << ",\n";
  }
  j << "    \"wall_s\": " << format_number(run.wall_s, 6) << ",\n";
  j << "    \"complete\": " << (run.complete ? "true" : "false") << "\n";
  j << "  }\n";
  j << "}\n";
  return j.str();
}

}  // namespace sqbench
