#pragma once
// Paper-style tables from results.csv: a pivot of one value column by a row column and a column column.

#include <string>
#include <vector>

#include "config.hpp"
#include "csv.hpp"

namespace sqbench {

/// Where the results came from, named in every caption.
struct Provenance {
  std::string config_name;
  std::string config_hash;
};

/// Row indices of `t` matching every filter (column=value, or column=v1|v2|... for alternatives; numbers
/// compare numerically, so n=1e6 matches 1000000). A filter on `distribution` (a source's label) also accepts
/// the source's full spec (the `source` column). Throws sqb::Error naming a filter's column when `t` has no
/// such column.
std::vector<std::size_t> select_rows(const CsvTable& t, const std::vector<Where>& where,
                                     const std::string& context);

/// The distinct values of column `col` over `rows`: numeric columns ascending, others in first-seen order.
std::vector<std::string> distinct_values(const CsvTable& t, std::size_t col,
                                         const std::vector<std::size_t>& rows);

/// How messages spell a table's settings: as config keys (`agg = mean`) or as `sqbench table`'s options
/// (`--agg mean`).
enum class Syntax { config, command_line };

/// Combines the values that fall into one table cell or plot point. With Agg::none, rows that differ only in
/// `seed` are averaged; rows that differ in any other key column are an error (sqb::Error listing those
/// columns and suggesting a where filter or agg). `note` receives e.g. "mean of 3 seeds". When `spread` is
/// given it receives the sample standard deviation (n - 1) of the values, or NaN for a single value.
double combine(const CsvTable& t, const std::vector<std::size_t>& rows, std::size_t value_col, Agg agg,
               const std::string& context, std::string& note, double* spread = nullptr,
               Syntax syntax = Syntax::config);

enum class TableFormat { md, latex, csv };

/// The value columns of a table spec (`value` split at commas, trimmed).
std::vector<std::string> table_values(const TableSpec& spec);

/// Renders a table. Throws sqb::Error for a missing column, no matching rows, or a non-numeric value; its
/// messages start with `context` (default "table '<id>'"; `sqbench table` names itself) and spell settings
/// in `syntax`.
std::string render_table(const CsvTable& t, const TableSpec& spec, TableFormat fmt, const Provenance& prov,
                         const std::string& context = "", Syntax syntax = Syntax::config);

}  // namespace sqbench
