#pragma once
// Experiment configs: INI files read with Boost.program_options' config-file parser, validated key by key.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace sqbench {

/// One sweep: every combination of the listed values is a cell.
struct SweepSpec {
  std::vector<std::string> quantizers;     ///< spec strings, validated against the registry
  std::vector<std::string> distributions;  ///< spec strings, validated against the registry
  std::vector<std::size_t> n;
  std::vector<std::size_t> k;  ///< from k = ... or 2^bits for bits = ...
  bool k_from_bits = false;
  std::vector<std::string> granularities;  ///< canonical text
  std::vector<std::uint64_t> seeds;
};

struct Config {
  std::filesystem::path path;  ///< the file as given
  std::string text;            ///< its bytes, as run (copied into the results folder)
  std::string name;            ///< `name =`, default: the file's stem
  std::string description;
  int repeats = 3;  ///< timed repeats after one warm-up
  SweepSpec sweep;
};

/// Reads and validates a config. Throws sqb::Error naming the file, the key (and its line) and the problem:
/// unreadable file, unknown section or key (listing the valid ones), repeated single-valued key, an empty or
/// missing list, a non-numeric or out-of-range number (n < 1, k < 1, k > 65536, bits outside 1..16), an
/// unknown quantizer or distribution or a bad parameter, or both k and bits.
Config load_config(const std::filesystem::path& path);

}  // namespace sqbench
