#pragma once
// A config expanded into its cells, with every spec built and checked before any work starts.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "sqb/columns.hpp"
#include "sqb/source.hpp"

namespace sqbench {

/// One cell: indices into Plan::quantizers / Plan::distributions plus the numeric keys.
struct Cell {
  std::size_t q = 0, d = 0;
  std::size_t n = 0, k = 0;
  std::string granularity;
  std::uint64_t seed = 0;
  std::string sweep;  ///< the sweep's id ("" for [sweep])
  int repeats = 1;    ///< timed repeats
};

struct Plan {
  std::vector<std::string> quantizers;  ///< distinct canonical quantizer specs, first-seen order
  /// Distinct source specs after expansion (sqb::expand_source_spec: globs expanded, label= removed), first-
  /// seen order: the results' `source` column.
  std::vector<std::string> distributions;
  std::vector<std::string> labels;  ///< their labels, one to one: the results' `distribution` column
  std::vector<std::unique_ptr<sqb::Source>> sources;  ///< built from `distributions`
  std::vector<Cell> cells;  ///< canonical order (sweep, distribution, n, seed, quantizer, k, granularity)
  std::map<std::string, std::size_t> skipped;  ///< reason -> number of cells skipped for it
  std::vector<std::string> warnings;  ///< for stderr, not fatal (a file whose tensor is one row, per channel)
  /// The results.csv columns, in schema order: every key, shape, metric, timing and provenance column, and
  /// the figure columns some planned quantizer or source declares.
  std::vector<sqb::Col> columns;
  std::vector<std::string> header;  ///< their names

  /// The values of the key columns of a cell (quantizer, distribution = the label, n, k, bits, granularity,
  /// seed, source = the full spec): the first fields of its row.
  std::vector<std::string> key_fields(const Cell& c) const;
  /// Where column c sits in a row; throws std::logic_error when this plan has no such column (a bug).
  std::size_t position(sqb::Col c) const;
};

/// The names of the key columns (the schema's kind key), in header order.
const std::vector<std::string>& key_columns();

/// Expands `config` into cells (a cell listed by several sweeps runs once, in the first). Every distribution
/// is expanded into its sources (sqb::expand_source_spec) and labelled; labels and specs must correspond one
/// to one across the config. Throws sqb::Error (naming the file and key) for a spec that cannot be built or
/// expanded, two sources with one label (naming both specs), one source with two labels, an n a source cannot
/// give (a sweep without `n` takes n = all, for file sources only), or a quantizer with no usable cell in a
/// sweep.
Plan make_plan(const Config& config);

/// A cell for people: "quantizer | distribution | n=... k=... granularity seed=...".
std::string cell_label(const Plan& plan, const Cell& c);

/// Checks that every column named by the config's tables and plots exists in `header`; throws sqb::Error
/// naming the section and the missing column (and listing the valid ones).
void check_outputs(const Config& config, const std::vector<std::string>& header);

}  // namespace sqbench
