#pragma once
// Experiment configs: INI files tokenised by Boost.program_options' config-file parser, then validated key by
// key against the key tables of config_keys.hpp (so every message can name the file, line, section and key,
// and `sqbench list config` lists exactly what the parser accepts).
//
//   name = quick              top level: name, description, repeats, max_memory, opt_ratio, ...
//   [sweep] / [sweep.<id>]    one or more sweeps; every combination of a sweep's lists is a cell
//   [table.<id>]              tables `sqbench run` renders into tables.md / tables.tex
//   [plot.<id>]               plots rendered with gnuplot (PNG + SVG, with their .gp and .dat)

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sqb/spec.hpp"

namespace sqbench {

/// One sweep: every combination of the listed values is a cell. A sweep lists either distributions (tensors
/// to quantize) or tasks (networks to train, quantize and evaluate, in the listed modes).
struct SweepSpec {
  std::string id;                          ///< "" for [sweep], else the <id> of [sweep.<id>]
  std::vector<std::string> quantizers;     ///< canonical spec strings, validated against the registry
  std::vector<std::string> distributions;  ///< canonical spec strings, as written (expanded by make_plan)
  std::vector<std::string> tasks;  ///< canonical task specs (sqb::task::parse_task_spec validated them)
  std::vector<std::string> modes;  ///< a task sweep's modes: fp32, ptq, qat (kTaskModes)
  std::vector<std::size_t> n;      ///< {sqb::kWholeFile} (all) when the sweep has no `n`
  bool n_given = true;             ///< false: `n` was omitted (file sources only: make_plan)
  std::vector<std::size_t> k;      ///< from k = ... or 2^bits for bits = ...
  std::vector<std::string> granularities;  ///< canonical text
  std::vector<std::uint64_t> seeds;
  int repeats = 0;                ///< timed repeats for this sweep's cells; 0 = the top-level `repeats`
  std::optional<bool> opt_ratio;  ///< `opt_ratio = 1|0` for this sweep; unset: the top-level setting
};

/// A `column=value` filter on result rows.
struct Where {
  std::string column;
  std::string value;
};

/// How a table's cells are filled when several result rows fall into one cell.
enum class Agg { none, mean, median, min, max };

struct TableSpec {
  std::string id;
  std::string rows, cols;  ///< result columns; cols is empty when `value` lists several columns
  std::string value;  ///< a result column, or several separated by commas (then they are the table's columns)
  std::vector<Where> where;
  Agg agg = Agg::none;        ///< none: rows differing only in seed are averaged, anything else is an error
  std::string best = "auto";  ///< min | max | none | auto (max for sqnr_db, min otherwise)
  std::string best_along = "col";  ///< col: the best of each column is bold | row: the best of each row
  std::string title;
  int digits = 4;  ///< significant digits
  /// none | std: a cell of several rows (seeds) shows "mean ± std" (the sample standard deviation, n - 1);
  /// needs agg none or mean.
  std::string spread = "none";
};

/// A plot: `kind` is line (numeric x; the rows at one x of a series are combined into one point), scatter
/// (numeric x; every row is a point unless `agg` is given) or bar (categorical x: one group of bars per x
/// value, one bar per series value; the rows of a bar are combined like table cells).
struct PlotSpec {
  std::string id;
  std::string kind = "line";  ///< line | scatter | bar
  std::string x, y, series;   ///< result columns; series may be empty (one series)
  std::optional<Agg> agg;     ///< how the rows of a point or bar combine; unset: Agg::none, and for a
                              ///< scatter every row is its own point
  bool logx = false, logy = false;
  std::vector<Where> where;
  std::vector<std::string> references;
  std::string title, xlabel, ylabel;
  /// A result column whose values split every series into lines drawn solid, dashed, dotted, ... (line and
  /// scatter): in the order of the alternatives of a where filter on that column (where = mode=qat|ptq:
  /// qat solid, ptq dashed), else the order of the values in the results. Empty: none.
  std::string dash;
  /// Horizontal reference lines (line and scatter): each the y of the rows matching its filters
  /// ("mode=fp32", several separated by commas; the plot's own where does not apply), combined like a
  /// point (agg), drawn across the plot and named in the legend with its value.
  std::vector<std::vector<Where>> hlines;
};

struct Config {
  std::filesystem::path path;  ///< the file as given
  std::string text;            ///< its bytes, as run (copied into the results folder)
  std::string hash;            ///< 16 hex digits (FNV-1a 64) of `text`
  std::string name;            ///< `name =`, default: the file's stem
  std::string description;
  int repeats = 3;  ///< timed repeats after one warm-up
  /// `opt_ratio = 1`: every cell also reports its MSE over the exact optimum of a K-level codebook per block
  /// (sqb::optimal_mse), unless its sweep says opt_ratio = 0, for cells of at most `opt_ratio_max_n` values.
  bool opt_ratio = false;
  std::size_t opt_ratio_max_n = std::size_t{1} << 24;
  /// `max_memory =`: the bytes the cells of a run may use at once (replaces the machine's available memory
  /// in the check before any work; the address-space and cgroup limits still apply). Unset: not given.
  std::optional<std::uint64_t> max_memory;
  std::vector<SweepSpec> sweeps;
  std::vector<TableSpec> tables;
  std::vector<PlotSpec> plots;
};

/// FNV-1a 64-bit hash of `text` as 16 lowercase hex digits (sqb/spec.hpp).
using sqb::text_hash;

/// What a config is loaded for: a run needs at least one [sweep]; re-rendering (`sqbench render --config`)
/// uses only the [table.*] and [plot.*] sections, so a config of those alone is fine there.
enum class ConfigUse { run, outputs };

/// Reads and validates a config. Throws sqb::Error naming the file, line and key and the problem: unreadable
/// file, unknown section or key (listing the valid ones), repeated single-valued key, an empty or missing
/// list, a value listed twice, a non-numeric or out-of-range number (n < 1, k < 1, k > 65536, bits
/// outside 1..16), an unknown quantizer or distribution or a bad parameter, both k and bits, bad table/plot
/// settings, no [sweep] (for ConfigUse::run).
Config load_config(const std::filesystem::path& path, ConfigUse use = ConfigUse::run);

/// Same from text already read (`path` is used in messages and to resolve relative data paths).
Config parse_config(const std::filesystem::path& path, std::string text, ConfigUse use = ConfigUse::run);

/// Parses a byte count: an integer or decimal number with an optional binary suffix K, M, G or T (also
/// written KB/KiB, ...; 1K = 1024), e.g. "8G", "512M", "1.5T", "4096". std::nullopt when malformed, zero or
/// beyond 2^63.
std::optional<std::uint64_t> parse_bytes(const std::string& text);

/// Parses "column=value" (for --where and where = ...). Throws sqb::Error quoting `text`.
Where parse_where(const std::string& text);

/// Table options shared by [table.<id>] sections and `sqbench table`: the aggregate named `name`, if any, and
/// whether `name` is a valid `best` choice; the choices as users see them in errors.
std::optional<Agg> agg_named(const std::string& name);
bool is_best_choice(const std::string& name);
inline constexpr const char* kAggChoices = "none|mean|median|min|max";
inline constexpr const char* kBestChoices = "auto|min|max|none";
inline constexpr const char* kBestAlongChoices = "col|row";
inline constexpr const char* kPlotKinds = "line|scatter|bar";
inline constexpr const char* kTaskModes = "fp32|ptq|qat";
inline constexpr const char* kSpreadChoices = "none|std";
inline constexpr int kMaxDigits = 17;

}  // namespace sqbench
