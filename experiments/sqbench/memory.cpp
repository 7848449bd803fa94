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
#include "task_cells.hpp"

namespace sqbench {

namespace {

// A source that reads a file takes n = kWholeFile (synthetic laws refuse it).
bool is_file_source(const sqb::Source& source) {
  try {
    source.check_n(sqb::kWholeFile);
    return true;
  } catch (const sqb::Error&) {
    return false;
  }
}

// The number of values of a file source: the largest n its check_n accepts (the interface says no more).
std::size_t file_values(const sqb::Source& source) {
  const auto fits = [&](std::size_t n) {
    try {
      source.check_n(n);
      return true;
    } catch (const sqb::Error&) {
      return false;
    }
  };
  if (!fits(1)) return 0;
  std::size_t lo = 1, hi = std::size_t{1} << 62;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

struct Shape {
  std::size_t rows = 1, cols = 0;
  bool known = true;  ///< false: a file whose shape was not read (cols = n is then an upper bound)
};

// What the estimates of one run share: each file source's whole-file size and shape, found once.
struct SourceFacts {
  bool file = false;
  std::size_t file_values = 0;
  std::optional<Shape> file_shape;  // read only when a cell needs it (granularity channel)
};

class Estimator {
 public:
  Estimator(const Plan& plan, int threads) : plan_(plan), threads_(std::max(1, threads)) {}

  MemoryEstimate estimate(const Cell& c);

 private:
  SourceFacts& facts(std::size_t d) {
    auto it = facts_.find(d);
    if (it != facts_.end()) return it->second;
    SourceFacts f;
    f.file = is_file_source(*plan_.sources[d]);
    if (f.file) f.file_values = file_values(*plan_.sources[d]);
    return facts_.emplace(d, f).first->second;
  }

  // rows x cols of the cell's tensor, as the source will lay it out.
  Shape shape(const Cell& c, std::size_t n, const std::string& granularity) {
    // Synthetic laws declare rows= (n / rows values each); the rotated source d= (one vector per row).
    const sqb::SpecText spec = sqb::SpecText::parse(plan_.distributions[c.d], "distribution");
    const auto& decl = sqb::find_source(spec.name).params;
    const sqb::Params p(decl, spec.args, "distribution");
    const auto integer_param = [&](const char* name) {
      return std::any_of(decl.begin(), decl.end(),
                         [&](const sqb::ParamSpec& d) {
                           return d.name == name && d.kind == sqb::ParamSpec::Kind::integer;
                         }) &&
             p.has(name);
    };
    if (integer_param("d") && p.integer("d") > 0) {
      const auto d = static_cast<std::size_t>(p.integer("d"));
      return {n / d, d, true};
    }
    if (integer_param("rows") && p.integer("rows") > 0) {
      const auto r = static_cast<std::size_t>(p.integer("rows"));
      return {r, n / r, true};
    }
    SourceFacts& f = facts(c.d);
    if (!f.file) return {1, n, true};
    if (granularity != "channel") return {1, n, false};  // blocks of tensor and group:G do not depend on it
    if (!f.file_shape) {
      // Planning read the whole file once already, so reading it again to learn its rows x cols fits too.
      const sqb::Tensor t = plan_.sources[c.d]->draw(sqb::kWholeFile, 0);
      f.file_shape = Shape{t.rows, t.cols, true};
    }
    const Shape whole = *f.file_shape;
    // A subsample is n / cols whole rows when n is a multiple of the row length, else one row (npy_source).
    if (n == whole.rows * whole.cols) return whole;
    if (whole.cols > 0 && n % whole.cols == 0) return {n / whole.cols, whole.cols, true};
    return {1, n, true};
  }

  const Plan& plan_;
  int threads_;
  std::map<std::size_t, SourceFacts> facts_;
};

MemoryEstimate Estimator::estimate(const Cell& c) {
  if (c.is_task()) return estimate_task_cell(plan_, c);
  const Plan& plan = plan_;
  SourceFacts& f = facts(c.d);
  const std::size_t n = c.n == sqb::kWholeFile ? f.file_values : c.n;
  const Shape s = shape(c, n, c.granularity);
  const sqb::Granularity g = sqb::Granularity::parse(c.granularity);
  double blocks = 1, largest = static_cast<double>(n);
  switch (g.kind) {
    case sqb::Granularity::Kind::tensor:
      break;
    case sqb::Granularity::Kind::channel:
      blocks = static_cast<double>(s.rows);
      largest = static_cast<double>(s.cols);
      break;
    case sqb::Granularity::Kind::group: {
      const double per_row = std::ceil(static_cast<double>(s.cols) / static_cast<double>(g.group));
      blocks = static_cast<double>(s.rows) * per_row;
      largest = static_cast<double>(std::min(g.group, s.cols));
      break;
    }
  }
  const std::unique_ptr<sqb::Quantizer> q = sqb::make_quantizer(plan.quantizers[c.q], {c.k, 0});
  const double k = static_cast<double>(c.k);
  const double nd = static_cast<double>(n);

  if (const auto* limit = sqb::part_of<sqb::LimitsBlocks>(*q); limit && s.known && !f.file) {
    // The strategy would refuse such a block when the cell starts; say so before any work instead. (A file
    // with at most K distinct values may need no design at all, so file sources are left to the strategy.)
    try {
      limit->check_block(static_cast<std::size_t>(largest));
    } catch (const sqb::Error& e) {
      throw sqb::Error("cell " + cell_label(plan, c) + ": " + e.what() +
                       " (it would stop the run when the cell starts)");
    }
  }

  struct Term {
    const char* what;
    double bytes;
  };
  const double codebooks = blocks * (12 * k + 96);
  std::vector<Term> terms = {{"data", 4 * nd},
                             {"reconstruction", 4 * nd},
                             {"codes", (c.k <= 256 ? 1 : 2) * nd},
                             {"codebooks", codebooks},
                             {"design workspace", q->design_bytes_per_value() * largest *
                                                      std::min(blocks, static_cast<double>(threads_))},
                             // coded_bits: the rANS stream, built then copied into place (2 b/8 a value
                             // and the encoder's first reserve, 1/2); phi_log's exponent and sign streams
                             // before coding (3).
                             {"entropy coding", nd * (3.5 + sqb::index_bits(c.k) / 4.0)}};
  if (sqb::part_of<sqb::EvaluatesResult>(*plan.sources[c.d]) != nullptr)
    terms.push_back({"the source's evaluation", 6 * nd + codebooks});
  double total = 0;
  for (const Term& t : terms)
    total += t.bytes;
  std::string text = "n = " + std::to_string(n) + " (" + std::to_string(s.rows) + " x " +
                     std::to_string(s.cols) + (s.known ? "" : ", shape not read") +
                     "), K = " + std::to_string(c.k) + ", " + c.granularity + ": ";
  for (std::size_t i = 0; i < terms.size(); ++i)
    text += (i ? " + " : "") + std::string(terms[i].what) + " " +
            format_bytes(static_cast<std::uint64_t>(terms[i].bytes));
  if (f.file) {
    const double read = 16 * static_cast<double>(f.file_values) + 4 * nd;
    if (read > total) {
      total = read;
      text += "; reading the file (" + std::to_string(f.file_values) + " values) peaks higher, at " +
              format_bytes(static_cast<std::uint64_t>(read));
    }
  }
  // Beyond 2^63 bytes the number only has to say "too much".
  const std::uint64_t bytes = total >= 0x1p63 ? (std::uint64_t{1} << 63) : static_cast<std::uint64_t>(total);
  return {bytes, text};
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

std::string format_bytes(std::uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f %s" : "%.3g %s", v, kUnits[u]);
  }
  return buf;
}

MemoryEstimate estimate_cell_memory(const Plan& plan, const Cell& cell, int threads) {
  return Estimator(plan, threads).estimate(cell);
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
  Estimator est(plan, threads);
  std::vector<std::pair<MemoryEstimate, std::size_t>> all;
  for (const std::size_t i : cells) {
    try {
      all.emplace_back(est.estimate(plan.cells[i]), i);
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
    shared = task_shared_memory(plan, cells);
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
