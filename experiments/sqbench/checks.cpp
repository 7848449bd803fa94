#include "checks.hpp"

#include <algorithm>
#include <set>

#include "plot.hpp"
#include "sqb/columns.hpp"
#include "sqb/error.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "sqb/spec.hpp"
#include "table.hpp"
#include "task_cells.hpp"
#include "text.hpp"

namespace sqbench {

namespace {

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

CsvTable planned_results(const Config& config, const Plan& plan) {
  CsvTable t;
  t.header = plan.header;
  // Which figure columns each quantizer and source fills (the others are empty in its rows).
  std::vector<std::set<sqb::Col>> q_fig(plan.quantizers.size()), d_fig(plan.distributions.size());
  std::vector<bool> q_done(plan.quantizers.size(), false);
  for (const Cell& c : plan.cells) {
    if (c.is_task() || q_done[c.q]) continue;  // a task cell fills no strategy figure
    q_done[c.q] = true;
    const auto q = sqb::make_quantizer(plan.quantizers[c.q], {c.k, 0});
    if (const auto* f = sqb::part_of<sqb::ReportsFigures>(*q)) {
      for (const sqb::Col col : f->figure_columns())
        q_fig[c.q].insert(col);
    }
  }
  for (std::size_t d = 0; d < plan.sources.size(); ++d) {
    if (const auto* f = sqb::part_of<sqb::DescribesData>(*plan.sources[d])) {
      for (const sqb::Col col : f->data_columns())
        d_fig[d].insert(col);
    }
    if (const auto* f = sqb::part_of<sqb::EvaluatesResult>(*plan.sources[d])) {
      for (const sqb::Col col : f->evaluation_columns())
        d_fig[d].insert(col);
    }
  }
  // A source with weights= gives its cells a wmse.
  std::vector<bool> weighted(plan.distributions.size(), false);
  for (std::size_t d = 0; d < plan.distributions.size(); ++d) {
    for (const auto& [key, value] : sqb::SpecText::parse(plan.distributions[d], "distribution").args)
      weighted[d] = weighted[d] || key == "weights";
  }
  const std::size_t keys = plan.keys.size();
  for (std::size_t i = 0; i < plan.cells.size(); ++i) {
    const Cell& c = plan.cells[i];
    std::vector<std::string> row = plan.key_fields(c);
    const std::string placeholder = std::to_string(i + 1);
    for (std::size_t col = keys; col < t.header.size(); ++col) {
      const sqb::Col id = plan.columns[col];
      if (id == sqb::Col::config_hash) {
        row.push_back(config.hash);
      } else if (c.is_task()) {
        // Text columns (the per-layer lists) get text, so that a plot of one fails now as it would later.
        row.push_back(!task_cell_fills(plan, c, id)  ? ""
                      : sqb::column_info(id).numeric ? placeholder
                                                     : "layer values");
      } else if (id == sqb::Col::train_s) {
        row.push_back("");  // trained only in task cells
      } else if ((id == sqb::Col::wmse && !weighted[c.d]) || (id == sqb::Col::opt_ratio && !c.opt_ratio) ||
                 (sqb::column_info(id).kind == sqb::ColumnKind::figure && id != sqb::Col::opt_ratio &&
                  !q_fig[c.q].contains(id) && !d_fig[c.d].contains(id))) {
        row.push_back("");  // wmse: no importance weights in this cell
      } else {
        row.push_back(placeholder);
      }
    }
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
