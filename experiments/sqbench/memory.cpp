#include "memory.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <string_view>

#include "sqb/error.hpp"
#include "sqb/granularity.hpp"
#include "sqb/npy.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "sqb/spec.hpp"
#include "sqb/task.hpp"

namespace sqbench {

namespace {

// A cell's estimate is the library's description of it (sqb::describe; a task cell's comes from its task).
MemoryEstimate estimate(const Plan& plan, const Cell& c, int threads) {
  try {
    return plan.describe(c, std::max(1, threads)).memory;
  } catch (const sqb::Error& e) {
    throw sqb::Error("cell " + cell_label(plan, c) + ": " + e.what());
  }
}

std::optional<std::uint64_t> meminfo_bytes(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(key.size() + 1));
    std::uint64_t kb = 0;
    if (fields >> kb) return kb * 1024;
  }
  return std::nullopt;
}

std::optional<std::uint64_t> read_limit_file(const std::string& path) {
  std::ifstream in(path);
  std::string v;
  if (!(in >> v) || v == "max") return std::nullopt;
  try {
    const unsigned long long x = std::stoull(v);
    if (x >= (1ull << 60)) return std::nullopt;  // cgroup v1 writes "no limit" as a huge number
    return x;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The tightest memory limit of this process's cgroup and its ancestors.
std::optional<MemoryLimit> cgroup_limit() {
  std::ifstream in("/proc/self/cgroup");
  std::optional<MemoryLimit> best;
  const auto consider = [&](const std::string& file, const char* what) {
    if (const auto v = read_limit_file(file); v && (!best || *v < best->bytes))
      best = MemoryLimit{*v, std::string("the cgroup's ") + what + " (" + file + ")"};
  };
  for (std::string line; std::getline(in, line);) {
    std::string path;
    std::string root, file;
    if (line.rfind("0::", 0) == 0) {
      path = line.substr(3);
      root = "/sys/fs/cgroup";
      file = "memory.max";
    } else if (const auto at = line.find(":memory:"); at != std::string::npos) {
      path = line.substr(at + 8);
      root = "/sys/fs/cgroup/memory";
      file = "memory.limit_in_bytes";
    } else {
      continue;
    }
    while (true) {
      consider(root + (path == "/" ? "" : path) + "/" + file, file.c_str());
      if (path.empty() || path == "/") break;
      const auto slash = path.rfind('/');
      path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
    }
  }
  return best;
}

}  // namespace

MemoryEstimate estimate_cell_memory(const Plan& plan, const Cell& cell, int threads) {
  return estimate(plan, cell, threads);
}

std::uint64_t address_space_overhead(int jobs) {
  return (256ull << 20) + (64ull << 20) * static_cast<std::uint64_t>(std::max(0, jobs - 1));
}

MemoryLimits memory_limits(const Config& config) {
  MemoryLimits l;
  if (config.max_memory) {
    l.physical = MemoryLimit{*config.max_memory, "max_memory"};
  } else if (const auto avail = meminfo_bytes("MemAvailable")) {
    l.physical = MemoryLimit{*avail, "the available memory (MemAvailable in /proc/meminfo)"};
  } else if (const auto total = meminfo_bytes("MemTotal")) {
    l.physical = MemoryLimit{*total, "the machine's memory (MemTotal in /proc/meminfo)"};
  } else if (const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
             pages > 0 && size > 0) {
    l.physical = MemoryLimit{static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(size),
                             "the machine's memory"};
  }
  l.cgroup = cgroup_limit();
  rlimit rl{};
  if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    l.address_space =
        MemoryLimit{static_cast<std::uint64_t>(rl.rlim_cur), "the address-space limit (ulimit -v)"};
  }
  return l;
}

std::uint64_t peak_resident_bytes() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    std::uint64_t kb = 0;
    if (fields >> kb) return kb * 1024;
  }
  return 0;
}

std::uint64_t check_memory(const Config& config, const Plan& plan, const std::vector<std::size_t>& cells,
                           int jobs, const MemoryLimits& limits, int threads) {
  if (cells.empty()) return 0;
  std::vector<std::pair<MemoryEstimate, std::size_t>> all;
  for (const std::size_t i : cells) {
    try {
      all.emplace_back(estimate(plan, plan.cells[i], threads), i);
    } catch (const sqb::Error& e) {
      throw sqb::Error(config.path.string() + ": " + e.what());
    }
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.first.bytes > b.first.bytes; });
  // What task cells share (their datasets and float models) is held once, whatever the jobs: it counts with
  // the largest cell alone and with the largest cells together.
  MemoryEstimate shared;
  try {
    std::vector<sqb::task::FloatModel> models;
    for (const std::size_t i : cells) {
      const Cell& c = plan.cells[i];
      if (c.is_task()) models.push_back({&plan.task_specs[c.d], c.seed});
    }
    shared = sqb::task::shared_memory(models);
  } catch (const sqb::Error& e) {
    throw sqb::Error(config.path.string() + ": " + e.what());
  }
  if (shared.bytes > 0) {
    all[0].first.bytes += shared.bytes;
    all[0].first.terms += " + shared by the task cells: " + shared.terms;
  }
  const std::size_t together = std::min<std::size_t>(static_cast<std::size_t>(std::max(jobs, 1)), all.size());
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < together; ++i)
    sum = std::min<std::uint64_t>(sum + all[i].first.bytes, std::uint64_t{1} << 63);
  const MemoryEstimate& top = all[0].first;
  const std::string top_label = cell_label(plan, plan.cells[all[0].second]);
  const auto check = [&](const std::optional<MemoryLimit>& limit, std::uint64_t overhead,
                         const std::string& hint) {
    if (!limit) return;
    const std::uint64_t room = limit->bytes > overhead ? limit->bytes - overhead : 0;
    const std::string head = config.path.string() + ": ";
    const std::string against = "but " + limit->source + " allows " + format_bytes(limit->bytes) +
                                " and sqbench itself takes about " + format_bytes(overhead) +
                                " of it, leaving " + format_bytes(room);
    if (top.bytes > room) {
      throw sqb::Error(head + "cell " + top_label + " needs about " + format_bytes(top.bytes) + " (" +
                       top.terms + "), " + against +
                       "; nothing was run. Use a smaller n, a finer granularity or a smaller K" + " for it" +
                       hint);
    }
    if (sum > room) {
      throw sqb::Error(head + "with --jobs " + std::to_string(jobs) + " the " + std::to_string(together) +
                       " largest cells may run at once and need about " + format_bytes(sum) +
                       " together (the largest: " + top_label + ", " + format_bytes(top.bytes) + "), " +
                       against + "; nothing was run. Use fewer --jobs" + hint);
    }
  };
  const std::string physical_hint = config.max_memory
                                        ? std::string(", or raise max_memory")
                                        : ", or set max_memory = ... in the config to choose the "
                                          "budget yourself";
  check(limits.physical, kProcessBytes, physical_hint);
  check(limits.cgroup, kProcessBytes, ", or ask the scheduler for more memory (e.g. sbatch --mem)");
  check(limits.address_space, address_space_overhead(jobs), ", or raise the limit (ulimit -v)");
  return sum;
}

}  // namespace sqbench
