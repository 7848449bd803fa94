// libFuzzer target: the INI config loader, exactly as `sqbench run` uses it (load_config on a file, which
// runs check_ini_text and then Boost.program_options and the key-by-key validation), then the sweep's
// planning (every distribution and quantizer built, every n checked). Any input must load or throw
// sqb::Error; any other exception escaping (a std::logic_error, a Boost error that was not translated)
// aborts and counts as a finding.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "config.hpp"
#include "sqb/distribution.hpp"
#include "sqb/error.hpp"
#include "sqb/registry.hpp"

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
    // A loaded config is complete: every list has a value.
    if (c.sweep.quantizers.empty() || c.sweep.distributions.empty() || c.sweep.n.empty() ||
        c.sweep.k.empty() || c.sweep.granularities.empty() || c.sweep.seeds.empty() || c.repeats < 1) {
      __builtin_printf("fuzz_ini: a loaded config has an empty list\n");
      __builtin_trap();
    }
    // Plan the sweep as `sqbench run` does before any work: build every distribution (files relative to
    // the config's folder) and check every n, build every quantizer for every K.
    const sqb::DistributionContext ctx{path.parent_path()};
    for (const std::string& d : c.sweep.distributions) {
      try {
        const auto dist = sqb::make_distribution(d, ctx);
        for (const std::size_t n : c.sweep.n) {
          try {
            dist->check_n(n);
          } catch (const sqb::Error&) {
          }
        }
      } catch (const sqb::Error&) {
      }
    }
    for (const std::string& q : c.sweep.quantizers) {
      for (const std::size_t k : c.sweep.k) {
        try {
          sqb::make_quantizer(q, {k, 0});
        } catch (const sqb::Error&) {
        }
      }
    }
  } catch (const sqb::Error&) {
  }
  return 0;
}
