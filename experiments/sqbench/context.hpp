#pragma once
// context.json: where a result came from (in the spirit of Google Benchmark's context block), so a number is
// never separated from the machine, build and config that produced it.

#include <cstdint>
#include <map>
#include <string>

#include "config.hpp"
#include "inputs.hpp"

namespace sqbench {

/// What a run adds to the context besides the machine and build.
struct RunInfo {
  std::string command;  ///< the command line
  int jobs = 1;
  int threads = 1;  ///< threads inside each cell
  std::string shard = "0/1";
  std::size_t cells_total = 0;                 ///< cells of this run (this shard)
  std::size_t cells_done = 0;                  ///< finished (including resumed)
  std::size_t cells_resumed = 0;               ///< taken from an earlier, interrupted run
  std::map<std::string, std::size_t> skipped;  ///< reason -> cells
  double wall_s = 0;
  bool complete = false;
  std::uint64_t memory_estimate_bytes = 0;  ///< what the check before any work estimated (0: not known)
  std::uint64_t peak_resident_bytes = 0;    ///< the process's peak resident memory, VmHWM (0: not known)
  std::size_t float_models_trained = 0;     ///< task sweeps: float models trained by this run
  std::size_t float_models_loaded = 0;      ///< and loaded from the results folder's models/
  std::vector<InputFingerprint> inputs;     ///< the files the run read (context.json's "inputs")
};

/// The context document: date (UTC, ISO 8601), host, CPU model, cores, caches, memory, compiler, flags, build
/// type, sqbench version, git SHA and dirty flag (read from the source tree now, and the SHA the binary was
/// configured from), Boost/Armadillo/Benchmark versions, the config's name, path and hash, the seed policy,
/// how timings were taken, and `run`.
std::string context_json(const Config& config, const RunInfo& run);

/// The seed policy in one sentence (also printed in docs/quantizers.md, "Conventions").
const std::string& seed_policy();

/// How timings are taken, given the number of parallel jobs.
std::string timing_policy(int jobs, int threads, int repeats);

}  // namespace sqbench
