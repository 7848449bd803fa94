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

#include <nlohmann/json.hpp>

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

nlohmann::ordered_json caches() {
  nlohmann::ordered_json items = nlohmann::ordered_json::array();
  for (int i = 0; i < 8; ++i) {
    const fs::path dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i);
    std::error_code ec;
    if (!fs::exists(dir, ec)) break;
    const auto level = parse_field_number(read_first_line(dir / "level"));
    items.push_back({{"level", level ? nlohmann::ordered_json(static_cast<int>(*level)) : nullptr},
                     {"type", read_first_line(dir / "type")},
                     {"size", read_first_line(dir / "size")},
                     {"shared_cpu_list", read_first_line(dir / "shared_cpu_list")}});
  }
  return items;
}

std::string memory_total() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("MemTotal:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 9));
  }
  return "unknown";
}

}  // namespace

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

  using J = nlohmann::ordered_json;
  J skipped = J::object();
  for (const auto& [reason, count] : run.skipped)
    skipped[reason] = count;
  // The BLAS behind Armadillo (what a task sweep's training runs on) and the threads it was given.
  const sqb::task::BlasInfo blas = sqb::task::blas_info();

  J j;
  j["date"] = date;
  j["host"] = {{"name", host},
               {"cpu_model", cpu_model()},
               {"cores", std::thread::hardware_concurrency()},
               {"caches", caches()},
               {"memory", memory_total()},
               {"kernel", read_first_line("/proc/sys/kernel/osrelease")}};
  j["sqbench"] = {{"version", sqb::version()},
                  {"git_sha", git_ok ? J(sha) : J(nullptr)},
                  {"git_dirty", git_ok && dirty_ok ? J(dirty.empty() ? false : true) : J(nullptr)},
                  {"built_from_sha", sqb::git_sha()},
                  {"build_type", sqb::build_type()},
                  {"debug_build", sqb::debug_build()},
                  {"compiler", sqb::compiler()},
                  {"flags", sqb::compile_flags()}};
  j["libraries"] = {
      {"boost", sqb::boost_version()},
      {"armadillo", sqb::armadillo_version()},
      {"google_benchmark", std::string(sqb::benchmark_version()) + " (micro-benchmarks only)"},
      {"blas", {{"library", blas.library}, {"config", blas.config}, {"threads", blas.threads}}}};
  j["config"] = {{"name", config.name},
                 {"path", config.path.string()},
                 {"hash", config.hash},
                 {"description", config.description}};
  j["seed_policy"] = seed_policy();
  j["timing"] = timing_policy(run.jobs, run.threads, config.repeats);
  j["inputs"] = inputs_json(run.inputs);
  J r;
  r["command"] = run.command;
  r["jobs"] = run.jobs;
  r["threads"] = run.threads;
  r["shard"] = run.shard;
  r["repeats"] = config.repeats;
  r["cells"] = run.cells_total;
  r["cells_done"] = run.cells_done;
  r["cells_resumed"] = run.cells_resumed;
  r["skipped"] = skipped;
  if (run.memory_estimate_bytes > 0) r["memory_estimate_bytes"] = run.memory_estimate_bytes;
  if (run.peak_resident_bytes > 0) r["peak_resident_bytes"] = run.peak_resident_bytes;
  if (run.float_models_trained + run.float_models_loaded > 0) {
    r["float_models_trained"] = run.float_models_trained;
    r["float_models_loaded"] = run.float_models_loaded;
    r["task_timing"] =
        "train_s: std::chrono::steady_clock wall time of each task cell's training, measured once; "
        "with --jobs J, J cells (or float models) train at once, each on one BLAS thread";
  }
  // Six significant digits, as the CSV's timing columns are written.
  r["wall_s"] = std::stod(format_number(run.wall_s, 6));
  r["complete"] = run.complete;
  j["run"] = r;
  // Invalid UTF-8 (a path or host name in another encoding) is replaced rather than refused: the context must
  // always be written.
  return j.dump(2, ' ', false, J::error_handler_t::replace) + "\n";
}

}  // namespace sqbench
