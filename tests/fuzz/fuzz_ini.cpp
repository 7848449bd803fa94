// libFuzzer target: the INI config loader, exactly as `sqbench run` uses it (load_config on a file, which
// runs check_ini_text and then Boost.program_options and the key-by-key validation), then the run's
// planning and the checks before any work (make_plan, check_outputs, check_outputs_before_work, check_memory:
// every distribution and quantizer built, every n checked, every table and plot built from the planned cells,
// every cell's memory estimated). Any input must load or throw sqb::Error; any other exception escaping
// (a std::logic_error, a Boost error that was not translated) aborts and counts as a finding.

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include <vector>

#include "checks.hpp"
#include "config.hpp"
#include "memory.hpp"
#include "plan.hpp"
#include "plot.hpp"
#include "sqb/error.hpp"

namespace {

// One file per fuzzing process, in a RAM-backed folder when there is one.
const std::filesystem::path& scratch_file() {
  static const std::filesystem::path p = [] {
    const std::filesystem::path dir = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    return dir / ("sqbench-fuzz-ini-" + std::to_string(::getpid()) + ".ini");
  }();
  return p;
}

struct Cleanup {
  ~Cleanup() {
    std::error_code ec;
    std::filesystem::remove(scratch_file(), ec);
  }
} cleanup;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path& path = scratch_file();
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return 0;
    if (size > 0) std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  try {
    const sqbench::Config c = sqbench::load_config(path);
    // A loaded config is complete: at least one sweep, and every list of every sweep has a value.
    if (c.sweeps.empty() || c.repeats < 1) {
      __builtin_printf("fuzz_ini: a loaded config has no sweep or no repeats\n");
      __builtin_trap();
    }
    for (const sqbench::SweepSpec& s : c.sweeps) {
      // A task sweep has tasks and modes instead of distributions and n, and quantizers unless it only
      // evaluates the float model.
      const bool task = !s.tasks.empty();
      const bool fp32_only = task && std::all_of(s.modes.begin(), s.modes.end(),
                                                 [](const std::string& m) { return m == "fp32"; });
      const bool data_ok = task ? !s.modes.empty() && s.distributions.empty() && s.n.empty()
                                : !s.distributions.empty() && !s.n.empty() && s.modes.empty();
      if (!data_ok || (!fp32_only && (s.quantizers.empty() || s.k.empty())) || s.granularities.empty() ||
          s.seeds.empty() || s.repeats < 0) {
        __builtin_printf("fuzz_ini: a loaded sweep has an empty list\n");
        __builtin_trap();
      }
    }
    // Plan the run as `sqbench run` does before any work: every distribution and quantizer built, every n
    // checked, every table and plot column checked against the results header, then every table and plot
    // built from the planned cells and every cell's memory estimated (nothing is allocated for the data).
    const sqbench::Plan plan = sqbench::make_plan(c);
    sqbench::check_outputs(c, plan.header);
    sqbench::check_references(c);
    sqbench::check_outputs_before_work(c, sqbench::planned_results(c, plan), sqbench::RowsKind::planned);
    std::vector<std::size_t> cells(plan.cells.size());
    for (std::size_t i = 0; i < cells.size(); ++i)
      cells[i] = i;
    sqbench::check_memory(c, plan, cells, 1, sqbench::memory_limits(c));
  } catch (const sqb::Error&) {
  }
  return 0;
}
