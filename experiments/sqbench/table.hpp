#pragma once
// Paper-style tables from results.csv: a pivot of one value column by a row column and a column column, or
// several value columns side by side. build_table makes a TableModel (no output syntax in it); one renderer
// per format (markdown, LaTeX, CSV) writes it.

#include <limits>
#include <optional>
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

/// Whether two result fields are equal as text or as numbers ("1e6" and "1000000"), as where filters compare.
bool same_value(const std::string& a, const std::string& b);

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

/// A table before any output syntax: its row and column labels, one cell per (row, column) and the text of
/// its caption. build_table makes it; one renderer per format writes it.
struct TableModel {
  struct Cell {
    double value = 0;  ///< the cell's rows combined (agg)
    /// The sample standard deviation of the cell's rows when the table shows spread = std (NaN for a
    /// single row, or when it does not).
    double spread = std::numeric_limits<double>::quiet_NaN();
    std::string note;   ///< how the rows were combined ("mean of 3 seeds"), or empty
    bool best = false;  ///< the best of its column (or row, with best_along = row)
  };
  std::string id;
  std::string row_title;  ///< the result column(s) labelling the rows ("quantizer", "distribution, bits")
  std::string col_title;  ///< the same for the columns; empty when the columns are several values
  std::vector<std::string> row_labels, col_labels;
  std::vector<std::vector<std::optional<Cell>>> cells;  ///< [row][column]; nullopt where no result row falls
  int digits = 4;                                       ///< significant digits for human formats
  std::string caption;                                  ///< the title, or "<value> by <rows> and <cols>"
  /// What the table shows, as prose: rows, columns, where filters, how cells combine, how the best is
  /// marked, and the config it came from.
  std::string details;
  Provenance provenance;
};

/// Checks `spec` against the results and builds its table: selects the rows (where), pivots them by rows
/// and cols, combines each cell's rows (agg, spread) and marks the best cells. Throws sqb::Error for a
/// missing column, no matching rows, a non-numeric value or rows that may not be combined; its messages start
/// with `context` (default "table '<id>'"; `sqbench table` names itself) and spell settings in `syntax`.
TableModel build_table(const CsvTable& t, const TableSpec& spec, const Provenance& prov,
                       const std::string& context = "", Syntax syntax = Syntax::config);

/// A markdown table with its caption in bold above it, the best cells in bold.
std::string render_markdown(const TableModel& m);
/// A LaTeX table (booktabs rules), the best cells in bold.
std::string render_latex(const TableModel& m);
/// The cells at full precision, without caption or marks, for programs.
std::string render_csv(const TableModel& m);

/// build_table, then the renderer of `fmt`.
std::string render_table(const CsvTable& t, const TableSpec& spec, TableFormat fmt, const Provenance& prov,
                         const std::string& context = "", Syntax syntax = Syntax::config);

}  // namespace sqbench
