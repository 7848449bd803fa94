#pragma once
/// \file columns.hpp
/// The one schema of result columns. Every figure sqbench reports — a results.csv column, a table value, a
/// plot axis, a key of the Python module's `metrics` dict — is a row of this table: its name, what it means,
/// its unit, which direction is better and what kind of column it is. The CSV header, the tables' "best"
/// marks, the plots' axis labels and docs/running.md's column table are all generated from it; nothing else
/// spells a column's name. In C++ a column is the enum `Col` (a misspelt column does not compile); from text
/// (a config, `--where`, a Python key) `column_named` looks it up and throws for an unknown name.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sqb {

/// Which value of a column is better (drives the tables' bold "best" marks).
enum class Better : std::uint8_t { none, lower, higher };

/// What a column is; a results.csv holds its columns grouped in this order.
enum class ColumnKind : std::uint8_t {
  key,         ///< identifies a sweep cell (the plan's keys)
  shape,       ///< the tensor's shape and how many codebooks it got
  metric,      ///< computed by the library's quantize for every cell
  figure,      ///< added by a strategy, a data source or an evaluation step (empty where it does not apply)
  timing,      ///< seconds (or a count describing how the timing was taken); differs run to run
  provenance,  ///< where the row came from
};

/// Every column, in results.csv order within its kind. Add a column here and in kColumns (columns.cpp).
enum class Col : std::uint16_t {
  // keys
  quantizer,
  distribution,
  task,  // present only in configs with a task sweep (as are its figures below)
  mode,
  n,
  k,
  bits,
  granularity,
  seed,
  source,
  // shape
  rows,
  cols,
  blocks,
  // metrics
  mse,
  nmse,
  sqnr_db,
  max_abs_err,
  entropy_bits,
  storage_bits,
  coded_bits,
  wmse,
  iterations,
  converged,
  // figures: distance from the best possible codebook
  opt_ratio,
  // figures: phi_log's exponent stream
  exp_entropy_bits,
  exp_storage_bits,
  exp_coded_bits,
  // figures: the npy source
  dropped_nonfinite,
  // figures: the rotated source's TurboQuant evaluation
  dmse,
  dmse_se,
  dmse_exact,
  dmse_limit,
  dmse_paper,
  dmse_upper,
  dmse_lower,
  d_dprod,
  d_dprod_se,
  d_dprod_exact,
  d_dprod_limit,
  d_dprod_paper,
  prod_bias,
  prod_bias_se,
  mse_bias,
  mse_bias_se,
  mse_bias_exact,
  // figures: a task sweep's evaluation of the quantized network
  accuracy,
  test_loss,
  layer_mse,
  layer_sqnr_db,
  // timings
  fit_s,
  fit_s_min,
  fit_s_mad,
  encode_s,
  encode_s_min,
  encode_s_mad,
  decode_s,
  decode_s_min,
  decode_s_mad,
  quantize_s,
  quantize_s_min,
  quantize_s_mad,
  threads,
  // timings: a task sweep
  train_s,
  // provenance
  config_hash,
  count_  ///< not a column: the number of columns
};

inline constexpr std::size_t kColumnCount = static_cast<std::size_t>(Col::count_);

struct ColumnInfo {
  Col id;
  std::string_view name;  ///< the CSV header, config and Python spelling
  ColumnKind kind;
  Better better;
  std::string_view unit;     ///< "" when dimensionless or text; e.g. "s", "dB", "bits/element"
  std::string_view label;    ///< a plot axis label; "" = the name
  std::string_view brief;    ///< a short word for captions ("SQNR"); "" = the name
  std::string_view meaning;  ///< one or two sentences for the docs and `sqbench columns`
  bool numeric = true;       ///< false for text columns (quantizer, distribution, source, task, mode, ...)
};

/// Every column, in Col order.
std::span<const ColumnInfo> column_schema();
/// "key", "shape", "metric", "figure", "timing" or "provenance".
std::string_view kind_name(ColumnKind k);
const ColumnInfo& column_info(Col c);
std::string_view column_name(Col c);
/// The column called `name`, or nullopt.
std::optional<Col> find_column(std::string_view name);
/// The column called `name`; throws Error "unknown result column 'x'; the columns are: ..." otherwise.
Col column_named(std::string_view name);

/// A column's value for one quantized tensor (a metric, or a figure a strategy or source computed).
struct Figure {
  Col column;
  double value;  ///< NaN = not defined for this cell (an empty CSV field)
};

/// The schema as a markdown table (name, kind, unit, better, meaning), for docs/running.md and `sqbench
/// columns`.
std::string column_table_markdown();

}  // namespace sqb
