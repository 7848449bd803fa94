#pragma once
// Running a config: every cell quantizes one tensor, measures quality, then times fit/encode/decode.
//
// Files in the results folder (default results/<name>/, or results/<name>/shard-<i>-of-<n>/ for a shard):
//   results.partial.csv  while running: one line appended (and fsync'ed) per finished cell, for --resume
//   results.csv          when complete: every cell in canonical order, written together with
//   config.ini           the config as run, and
//   context.json         machine, build, config hash, seed and timing policy (context.hpp)
//                        (all three written to temporaries first, then renamed: a failed or interrupted run
//                        leaves the previous complete set untouched)
//   tables.md, tables.tex, plots/<id>.{png,svg,gp,dat}   from the config's [table.*] and [plot.*] sections

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"
#include "csv.hpp"

namespace sqbench {

struct RunOptions {
  std::filesystem::path out_dir;  ///< empty: the default folder
  bool quiet = false;             ///< no progress on stderr
  bool resume = false;            ///< keep the cells an earlier (interrupted) run of the same config finished
  bool fresh = false;           ///< discard an interrupted run's partial results instead of refusing to start
  int jobs = 1;                 ///< worker threads for quality metrics (timings never overlap other work)
  int threads = 1;              ///< threads inside each cell's quantize call (its blocks in parallel)
  std::size_t shard_index = 0;  ///< run cells with index % shard_count == shard_index
  std::size_t shard_count = 1;
  std::string command;  ///< the command line, for context.json
};

/// Outcome of run_sweep.
struct RunResult {
  std::filesystem::path out;
  bool interrupted = false;  ///< stopped by SIGINT/SIGTERM; the partial results can be resumed
};

/// Runs the config's cells (this shard's) and writes the results folder. Throws sqb::Error for a bad config,
/// a results folder that cannot be written, or --resume results from a different config; nothing is written
/// or overwritten in those cases.
RunResult run_sweep(const Config& config, const RunOptions& opt);

/// Combines shard folders: checks their configs are identical and every cell is present exactly once, then
/// writes results.csv, config.ini, context.json, tables and plots to `out` (default results/<name>/).
std::filesystem::path merge_results(const std::vector<std::filesystem::path>& dirs, std::filesystem::path out,
                                    bool quiet);

/// The config a results folder was produced by: its config.ini, named as the original run named it (the name
/// recorded in context.json; a config without `name =` takes its file's stem). Throws sqb::Error if missing.
Config load_results_config(const std::filesystem::path& dir);

/// Tables and plots written under staging names in their folder and checked complete; commit() gives them
/// their final names (and prints what was written), destruction without commit removes them.
struct StagedOutputs {
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> renames;  ///< staging -> final
  std::vector<std::string> notes, warnings;
  StagedOutputs() = default;
  StagedOutputs(StagedOutputs&&) = default;
  StagedOutputs& operator=(StagedOutputs&&) = default;
  ~StagedOutputs();
  void commit(bool quiet);
};

/// The config's tables and plots from complete results, staged in `out` (nothing replaced yet). Throws
/// sqb::Error naming the section, or the file that could not be written completely.
StagedOutputs stage_outputs(const Config& config, const CsvTable& results, const std::filesystem::path& out);

/// Renders the config's tables (tables.md, tables.tex) and plots (plots/) from complete results into `out`.
void render_outputs(const Config& config, const CsvTable& results, const std::filesystem::path& out,
                    bool quiet);

}  // namespace sqbench
