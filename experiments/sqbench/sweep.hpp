#pragma once
// Running a config's sweep: every cell quantizes one tensor and measures quality and time.

#include <filesystem>
#include <string>
#include <vector>

#include "config.hpp"

namespace sqbench {

struct RunOptions {
  std::filesystem::path out_dir;  ///< empty: results/<name>
  bool quiet = false;             ///< no per-cell progress on stderr
};

/// The results.csv columns every run has, in order: the sweep keys, the tensor's shape, the metrics, the
/// timings. Strategy- and source-specific columns follow them (Quantizer/Distribution::extra_metric_names()).
const std::vector<std::string>& result_columns();

/// Runs every cell of `config` and writes <out>/results.csv and <out>/config.ini. Nothing is written when a
/// cell fails validation; each output file is replaced atomically. Returns the results folder.
std::filesystem::path run_sweep(const Config& config, const RunOptions& opt);

}  // namespace sqbench
