#include "checks.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "plot.hpp"
#include "sqb/columns.hpp"
#include "sqb/error.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "sqb/spec.hpp"
#include "table.hpp"
#include "text.hpp"

namespace sqbench {

namespace {

using ColumnFills = std::function<bool(sqb::Col)>;

bool is_key_column(const std::string& column) {
  const auto& keys = key_columns();
  return std::find(keys.begin(), keys.end(), column) != keys.end();
}

// At most `limit` values, then how many there are in all (a glob over a folder of tensors has hundreds).
std::string list_some(const std::vector<std::string>& values, std::size_t limit = 20) {
  if (values.size() <= limit) return join(values);
  return join(std::vector<std::string>(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(limit))) +
         ", ... (" + std::to_string(values.size()) + " values in all)";
}

std::vector<Where> key_filters(const std::vector<Where>& where) {
  std::vector<Where> out;
  for (const Where& w : where) {
    if (is_key_column(w.column)) out.push_back(w);
  }
  return out;
}

std::string rows_noun(RowsKind kind, bool plural) {
  if (kind == RowsKind::planned) return plural ? "planned cells" : "planned cell";
  return plural ? "result rows" : "result row";
}

std::vector<std::size_t> all_rows(const CsvTable& t) {
  std::vector<std::size_t> out(t.rows.size());
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = i;
  return out;
}

// A line or scatter plot needs numbers on both axes, a bar plot on y; `rows` are the plot's selected rows.
void check_numeric_axis(const CsvTable& t, const PlotSpec& p, const std::string& key,
                        const std::string& column, const std::vector<std::size_t>& rows,
                        const std::string& where_text) {
  const auto c = t.column(column);
  if (!c) return;  // reported by check_outputs
  std::vector<std::string> text;
  for (const std::size_t r : rows) {
    const std::string& v = t.rows[r][*c];
    // An empty field is a figure that does not apply (not drawn); the hash is hex text even when all digits.
    const bool is_text = !v.empty() && (column == "config_hash" || !parse_field_number(v));
    if (!is_text) continue;
    if (std::find(text.begin(), text.end(), v) == text.end()) text.push_back(v);
  }
  if (text.empty()) return;
  std::string quoted;
  for (std::size_t i = 0; i < text.size() && i < 5; ++i)
    quoted += (i ? ", '" : "'") + text[i] + "'";
  if (text.size() > 5) quoted += ", ...";
  const std::string why = key == "x"
                              ? "a " + p.kind + " plot needs a numeric x (kind = bar takes a categorical x)"
                              : "y must be a number";
  throw sqb::Error(where_text + " key '" + key + "': column '" + column + "' holds text (" + quoted +
                   "), not numbers: " + why);
}

}  // namespace

namespace {

// A planned cell's fields after its keys: a placeholder number (its row number) where the cell will fill
// the column, text in the text columns (the per-layer lists) so that a plot of one fails now as it would
// later, "" where it will stay empty.
std::string planned_field(const ColumnFills& fills, sqb::Col id, const std::string& config_hash,
                          const std::string& placeholder) {
  if (id == sqb::Col::config_hash) return config_hash;
  if (!fills(id)) return "";
  return sqb::column_info(id).numeric ? placeholder : "layer values";
}

}  // namespace

CsvTable planned_results(const Config& config, const Plan& plan) {
  CsvTable t;
  t.header = plan.header;
  // What the library's description of each (task cell, quantizer, source or task, opt_ratio) says its cells
  // fill.
  std::map<std::tuple<bool, std::size_t, std::size_t, bool>, std::set<sqb::Col>> described;
  for (std::size_t i = 0; i < plan.cells.size(); ++i) {
    const Cell& c = plan.cells[i];
    std::vector<std::string> row = plan.key_fields(c);
    auto [it, added] = described.try_emplace({c.is_task(), c.q, c.d, c.opt_ratio});
    if (added) {
      const std::vector<sqb::Col> cols = plan.columns_of(c);
      it->second.insert(cols.begin(), cols.end());
    }
    const std::set<sqb::Col>& columns = it->second;
    // The row's writer fills the timings (a task cell: its training's train_s; any other: every other one)
    // and the provenance.
    const ColumnFills fills = [&](sqb::Col id) {
      const sqb::ColumnKind kind = sqb::column_info(id).kind;
      if (kind == sqb::ColumnKind::timing) return (id == sqb::Col::train_s) == c.is_task();
      return kind == sqb::ColumnKind::provenance || columns.contains(id);
    };
    for (std::size_t col = plan.keys.size(); col < t.header.size(); ++col)
      row.push_back(planned_field(fills, plan.columns[col], config.hash, std::to_string(i + 1)));
    t.rows.push_back(std::move(row));
  }
  return t;
}

void check_where(const std::vector<Where>& where, const CsvTable& t, RowsKind kind,
                 const std::string& prefix) {
  for (const Where& w : where) {
    const auto c = t.column(w.column);
    if (!c || !is_key_column(w.column)) continue;  // a missing column is reported by the caller's checks
    for (const std::string& v : split_alternatives(w.value)) {
      if (!select_rows(t, {Where{w.column, v}}, prefix).empty()) continue;
      throw sqb::Error(prefix + " " + w.column + "=" + w.value + ": no " + rows_noun(kind, false) + " has " +
                       w.column + " '" + v +
                       "'; the values are: " + list_some(distinct_values(t, *c, all_rows(t))));
    }
  }
  const std::vector<Where> keys = key_filters(where);
  if (keys.size() > 1 && select_rows(t, keys, prefix).empty()) {
    std::vector<std::string> texts;
    for (const Where& w : keys)
      texts.push_back(w.column + "=" + w.value);
    throw sqb::Error(prefix + " " + join(texts) + ": no " + rows_noun(kind, false) +
                     " matches all of these together, though each value exists on its own (so the table or "
                     "plot would be empty)");
  }
}

void check_outputs_before_work(const Config& config, const CsvTable& rows, RowsKind kind) {
  check_outputs(config, rows.header);
  const std::string file = config.path.string();
  const Provenance prov{config.name, config.hash};
  const std::string checked =
      kind == RowsKind::planned
          ? " (checked against the " + std::to_string(rows.rows.size()) + " planned cells before any work)"
          : "";
  for (const TableSpec& t : config.tables) {
    const std::string section = file + ": [table." + t.id + "]";
    check_where(t.where, rows, kind, section + " where");
    if (kind != RowsKind::planned)
      continue;  // finished results are rendered in full before anything is written
    TableSpec keys_only = t;
    keys_only.where = key_filters(t.where);
    try {
      render_table(rows, keys_only, TableFormat::md, prov);
    } catch (const sqb::Error& e) {
      throw sqb::Error(section + checked + ": " + e.what());
    }
  }
  for (const PlotSpec& p : config.plots) {
    const std::string section = file + ": [plot." + p.id + "]";
    check_where(p.where, rows, kind, section + " where");
    for (const std::vector<Where>& h : p.hlines)
      check_where(h, rows, kind, section + " hline");
    const std::vector<std::size_t> selected = select_rows(rows, key_filters(p.where), section);
    if (p.kind != "bar") check_numeric_axis(rows, p, "x", p.x, selected, section);
    check_numeric_axis(rows, p, "y", p.y, selected, section);
    if (kind != RowsKind::planned) continue;
    PlotSpec keys_only = p;
    keys_only.where = key_filters(p.where);
    // An hline filtering on a metric cannot be built before the values exist.
    std::erase_if(keys_only.hlines,
                  [](const std::vector<Where>& h) { return key_filters(h).size() != h.size(); });
    try {
      plot_script(rows, keys_only, prov);
    } catch (const sqb::Error& e) {
      throw sqb::Error(section + checked + ": " + e.what());
    }
  }
}

}  // namespace sqbench
