#pragma once
// The checks of a config's tables and plots that can be made before any cell runs: against the planned cells
// (`sqbench run`) or against finished results (`sqbench render`, `sqbench table`). Whatever would make a
// table or plot fail after the sweep (a mistyped where value, filters that select nothing, a text column on
// a numeric axis, rows that fall into one cell and differ in more than the seed) fails here instead, so a
// cluster job never computes for hours and then exits 2 without its figures.

#include <string>
#include <vector>

#include "config.hpp"
#include "csv.hpp"
#include "plan.hpp"

namespace sqbench {

/// The rows a run will write, as far as they are known before any cell runs: one row per planned cell with
/// the key columns exactly as results.csv will hold them and config_hash set. Every other column holds a
/// placeholder: a positive number, different in every row (so no two rows share an x by accident), or ""
/// where a strategy's or a source's own column does not apply to the cell. Only the key columns carry
/// meaning; the check below never filters on the placeholders.
CsvTable planned_results(const Config& config, const Plan& plan);

/// What `rows` are, for messages: the planned cells of a run, or the rows of finished results.
enum class RowsKind { planned, finished };

/// Checks a list of where filters against `t`: every filter on a key column (quantizer, distribution, n, k,
/// bits, granularity, seed) must match some row with each of its values (each `|` alternative; numbers
/// compare numerically, so n=1e6 matches 1000000), and all the filters together must select some row.
/// Filters on other columns (metrics) cannot be checked before the values exist and are not. Throws
/// sqb::Error "<prefix> <column>=<value>: no planned cell has <column> '<v>'; the values are: a, b, ..."
/// (`prefix` e.g. "c.ini: [table.mse] where" or "sqbench table: --where").
void check_where(const std::vector<Where>& where, const CsvTable& t, RowsKind kind,
                 const std::string& prefix);

/// Checks every [table.*] and [plot.*] of `config` against `rows` (planned_results of the plan, or finished
/// results): the columns exist, each where as check_where does, a line or scatter plot's x and y hold numbers
/// (a bar plot's x may hold text, its y must not), and then every table and plot is built in memory (with the
/// where filters on key columns only) so that rows falling into one cell or point and differing in more than
/// the seed without agg, or a plot with nothing drawable, fail now. Throws sqb::Error naming the config file
/// and the section.
void check_outputs_before_work(const Config& config, const CsvTable& rows, RowsKind kind);

}  // namespace sqbench
