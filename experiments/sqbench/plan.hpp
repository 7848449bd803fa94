#pragma once
// A config expanded into its cells, with every spec built and checked before any work starts.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "sqb/cell.hpp"
#include "sqb/columns.hpp"
#include "sqb/source.hpp"
#include "sqb/task.hpp"

namespace sqbench {

/// What a cell does: quantize a tensor (none: a distribution sweep's cell), or, in a task sweep, evaluate the
/// float model (fp32), the float model fine-tuned as long as QAT (fp32_ft, planned with every fp32 cell
/// whose task has qat_epochs > 0), quantize its weights (ptq) or fine-tune it through the quantizer (qat).
using Mode = sqb::TaskMode;
/// "fp32", "fp32_ft", "ptq", "qat" ("" for none): the mode column.
inline std::string mode_name(Mode m) {
  return std::string(sqb::task_mode_name(m));
}

/// Cell::q of a cell without a quantizer (modes fp32 and fp32_ft).
inline constexpr std::size_t kNoQuantizer = static_cast<std::size_t>(-1);

/// One cell: indices into Plan::quantizers and Plan::distributions (or Plan::tasks) plus the numeric keys.
struct Cell {
  std::size_t q = 0, d = 0;  ///< d indexes Plan::tasks for a task cell; q is kNoQuantizer for fp32 modes
  std::size_t n = 0, k = 0;  ///< n = 0 for a task cell; k = 0 without a quantizer
  std::string granularity;   ///< "" without a quantizer
  std::uint64_t seed = 0;
  std::string sweep;  ///< the sweep's id ("" for [sweep])
  int repeats = 1;    ///< timed repeats
  Mode mode = Mode::none;
  bool opt_ratio =
      false;  ///< report mse / the exact optimum (the sweep's or the config's opt_ratio; never a task cell)

  bool is_task() const { return mode != Mode::none; }
  bool quantized() const { return q != kNoQuantizer; }
};

struct Plan {
  std::vector<std::string> quantizers;  ///< distinct canonical quantizer specs, first-seen order
  /// Distinct source specs after expansion (sqb::expand_source_spec: globs expanded, label= removed), first-
  /// seen order: the results' `source` column.
  std::vector<std::string> distributions;
  std::vector<std::string> labels;  ///< their labels, one to one: the results' `distribution` column
  std::vector<std::unique_ptr<sqb::Source>> sources;  ///< built from `distributions`
  std::vector<std::string> tasks;                     ///< distinct canonical task specs, first-seen order
  /// Parsed from `tasks`, a relative data= folder resolved against the config's folder (its files checked).
  std::vector<sqb::task::TaskSpec> task_specs;
  /// Canonical order: sweep, distribution, n, seed, quantizer, k, granularity; in a task sweep: sweep, task,
  /// seed, the fp32 modes, then quantizer, k, granularity, mode (in the order the sweep lists its modes).
  std::vector<Cell> cells;
  std::map<std::string, std::size_t> skipped;  ///< reason -> number of cells skipped for it
  std::vector<std::string> warnings;  ///< for stderr, not fatal (a file whose tensor is one row, per channel)
  /// The results.csv columns, in schema order: the key columns (distribution, n and source only when a sweep
  /// lists distributions, task and mode only when one lists tasks), every shape, metric, timing and
  /// provenance column, and the figure columns some planned quantizer, source or task declares.
  std::vector<sqb::Col> columns;
  std::vector<std::string> header;  ///< their names
  std::vector<sqb::Col> keys;       ///< the key columns among them (the first keys.size() columns)
  /// Some table or plot of the config reads coded_bits, so cells measure it (a rANS pass over the codes);
  /// otherwise the column stays empty.
  bool coded_bits = false;

  /// The values of the key columns of a cell: the first fields of its row (distribution = the source's label,
  /// source = its full spec). A task cell has no distribution, n and source; an fp32 or fp32_ft cell has
  /// quantizer "none", no k or granularity, and bits 32.
  std::vector<std::string> key_fields(const Cell& c) const;
  /// Where column c sits in a row; throws std::logic_error when this plan has no such column (a bug).
  std::size_t position(sqb::Col c) const;
  /// A cell as the library's value: a distribution cell's source and quantizer specs (coded = coded_bits), or
  /// a task cell's task spec, mode and quantizer ("" in modes fp32 and fp32_ft).
  sqb::Cell library_cell(const Cell& c) const;
  /// sqb::describe of a cell, with the plan's built source or parsed task; `threads` blocks designed at once.
  sqb::CellDescription describe(const Cell& c, int threads = 1) const;
  /// The result columns a cell fills: a distribution cell's description's columns without the memory
  /// estimate; a task cell's description's (its task's columns).
  std::vector<sqb::Col> columns_of(const Cell& c) const;
};

/// The names of the key columns (the schema's kind key), in schema order; a results.csv holds some of them.
const std::vector<std::string>& key_columns();
/// How many of `header`'s columns are key columns (they come first).
std::size_t key_count(const std::vector<std::string>& header);

/// Expands `config` into cells (a cell listed by several sweeps runs once, in the first). Every distribution
/// is expanded into its sources (sqb::expand_source_spec) and labelled; labels and specs must correspond one
/// to one across the config. Throws sqb::Error (naming the file and key) for a spec that cannot be built or
/// expanded, two sources with one label (naming both specs), one source with two labels, an n a source cannot
/// give (a sweep without `n` takes n = all, for file sources only), or a quantizer with no usable cell in a
/// sweep.
Plan make_plan(const Config& config);

/// A cell for people: "quantizer | distribution | n=... k=... granularity seed=..." ("quantizer | task |
/// mode k=... granularity seed=..." for a task cell).
std::string cell_label(const Plan& plan, const Cell& c);

/// Checks that every column named by the config's tables and plots exists in `header`; throws sqb::Error
/// naming the section and the missing column (and listing the valid ones).
void check_outputs(const Config& config, const std::vector<std::string>& header);
/// Whether a table or plot of the config reads the result column `column` (rows, cols, value, where, x, y,
/// series, dash or hline).
bool config_reads_column(const Config& config, std::string_view column);

}  // namespace sqbench
