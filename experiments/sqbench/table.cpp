#include "table.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "plan.hpp"
#include "sqb/columns.hpp"
#include "sqb/error.hpp"
#include "text.hpp"

namespace sqbench {

namespace {

std::size_t need_column(const CsvTable& t, const std::string& name, const std::string& context) {
  if (const auto c = t.column(name)) return *c;
  throw sqb::Error(context + ": no column '" + name + "' in the results; the columns are: " + join(t.header));
}

// Significant-digit formatting for humans: fixed notation for moderate magnitudes, scientific otherwise.
struct Formatted {
  std::string mantissa;  // "2.650" or "12.34"
  int exponent = 0;      // power of ten when scientific, else 0
  bool scientific = false;
  bool special = false;  // inf
};

Formatted format_sig(double v, int digits) {
  Formatted f;
  if (std::isinf(v)) {
    f.special = true;
    f.mantissa = v > 0 ? "inf" : "-inf";
    return f;
  }
  const double a = std::abs(v);
  char buf[64];
  if (a != 0 && (a < 1e-3 || a >= 1e6)) {
    std::snprintf(buf, sizeof buf, "%.*e", digits - 1, v);
    const std::string s = buf;
    const auto e = s.find('e');
    f.mantissa = s.substr(0, e);
    f.exponent = std::stoi(s.substr(e + 1));
    f.scientific = true;
  } else if (v == std::floor(v) && a < 1e6) {
    std::snprintf(buf, sizeof buf, "%.0f", v);  // whole numbers (iterations, counts) as integers
    f.mantissa = buf;
  } else {
    const int magnitude = a == 0 ? 0 : static_cast<int>(std::floor(std::log10(a)));
    const int decimals = std::max(0, digits - 1 - magnitude);
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    f.mantissa = buf;
  }
  return f;
}

// A standard deviation written to the same decimal place as the mean `f` (in the mean's power of ten when
// it is scientific), so "88.24" gets "0.31" and "1.234e-5" gets "0.012" (read: (1.234 ± 0.012)e-5).
std::string spread_text(const Formatted& f, double sd) {
  const auto dot = f.mantissa.find('.');
  const int decimals = dot == std::string::npos ? 0 : static_cast<int>(f.mantissa.size() - dot - 1);
  const double scaled = f.scientific ? sd / std::pow(10.0, f.exponent) : sd;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, scaled);
  return buf;
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '_':
      case '%':
      case '&':
      case '#':
      case '$':
      case '{':
      case '}':
        out += '\\';
        out += c;
        break;
      case '~':
        out += "\\textasciitilde{}";
        break;
      case '^':
        out += "\\textasciicircum{}";
        break;
      case '\\':
        out += "\\textbackslash{}";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string md_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '|' || c == '*' || c == '_') out += '\\';
    out += c;
  }
  return out;
}

// One or several result columns ("distribution, bits") whose values together label a table row or column.
class CompositeKey {
 public:
  CompositeKey(const CsvTable& t, const std::string& list, const std::string& context) : t_(t) {
    for (const std::string& name : split_list(list))
      cols_.push_back(need_column(t, name, context));
  }
  std::string label(std::size_t r) const {
    std::string out;
    for (std::size_t i = 0; i < cols_.size(); ++i)
      out += (i ? " / " : "") + t_.rows[r][cols_[i]];
    return out;
  }
  // The labels present in `rows`, ordered by their components (numbers ascending, text first-seen), the first
  // component varying slowest.
  std::vector<std::string> distinct(const std::vector<std::size_t>& rows) const;

 private:
  const CsvTable& t_;
  std::vector<std::size_t> cols_;
};

}  // namespace

bool same_value(const std::string& a, const std::string& b) {
  if (a == b) return true;
  const auto x = parse_field_number(a), y = parse_field_number(b);
  return x && y && *x == *y;
}

std::vector<std::size_t> select_rows(const CsvTable& t, const std::vector<Where>& where,
                                     const std::string& context) {
  struct Filter {
    std::size_t column;
    std::string value;
    std::optional<std::size_t> also;  // distribution=: the source's full spec matches too
  };
  std::vector<Filter> filters;
  for (const Where& w : where) {
    filters.push_back({need_column(t, w.column, context + " where " + w.column), w.value,
                       w.column == "distribution" ? t.column("source") : std::nullopt});
  }
  std::vector<std::size_t> out;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    bool ok = true;
    for (const auto& [c, v, also] : filters) {
      // "a|b|c" accepts any of the alternatives.
      bool any = false;
      std::size_t start = 0;
      while (!any) {
        const std::size_t bar = v.find('|', start);
        const std::string alt = v.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
        any = same_value(t.rows[r][c], alt) || (also && t.rows[r][*also] == alt);
        if (bar == std::string::npos) break;
        start = bar + 1;
      }
      ok = ok && any;
    }
    if (ok) out.push_back(r);
  }
  return out;
}

std::vector<std::string> distinct_values(const CsvTable& t, std::size_t col,
                                         const std::vector<std::size_t>& rows) {
  std::vector<std::string> out;
  bool numeric = true;
  for (const std::size_t r : rows) {
    const std::string& v = t.rows[r][col];
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    numeric = numeric && parse_field_number(v).has_value();
  }
  if (numeric) {
    std::stable_sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
      return *parse_field_number(a) < *parse_field_number(b);
    });
  }
  return out;
}

std::vector<std::string> CompositeKey::distinct(const std::vector<std::size_t>& rows) const {
  std::vector<std::vector<std::string>> orders;
  for (const std::size_t c : cols_)
    orders.push_back(distinct_values(t_, c, rows));
  std::vector<std::pair<std::vector<std::size_t>, std::string>> combos;
  std::set<std::string> seen;
  for (const std::size_t r : rows) {
    std::string l = label(r);
    if (!seen.insert(l).second) continue;
    std::vector<std::size_t> rank;
    for (std::size_t i = 0; i < cols_.size(); ++i) {
      rank.push_back(static_cast<std::size_t>(
          std::find(orders[i].begin(), orders[i].end(), t_.rows[r][cols_[i]]) - orders[i].begin()));
    }
    combos.emplace_back(std::move(rank), std::move(l));
  }
  std::sort(combos.begin(), combos.end());
  std::vector<std::string> out;
  for (auto& [rank, l] : combos)
    out.push_back(std::move(l));
  return out;
}

namespace {

// A setting as `syntax` spells it: "agg = mean" or "--agg mean".
std::string setting(Syntax syntax, const std::string& key, const std::string& value) {
  return syntax == Syntax::command_line ? "--" + key + " " + value : key + " = " + value;
}

// The sample standard deviation (n - 1) of `values`; NaN for a single value.
double sample_std(const std::vector<double>& values) {
  if (values.size() < 2) return std::numeric_limits<double>::quiet_NaN();
  double mean = 0;
  for (const double v : values)
    mean += v;
  mean /= static_cast<double>(values.size());
  double ss = 0;
  for (const double v : values)
    ss += (v - mean) * (v - mean);
  return std::sqrt(ss / static_cast<double>(values.size() - 1));
}

// Without agg, the rows of one cell are averaged only when they are repeats that differ in their seed:
// averaging over another key column (two quantizers, two sizes) would print a number nobody asked for.
void check_only_seeds_differ(const CsvTable& t, const std::vector<std::size_t>& rows,
                             const std::string& context, Syntax syntax) {
  std::vector<std::string> differing;
  for (const std::string& key : key_columns()) {
    const auto c = t.column(key);
    if (!c || key == "seed") continue;
    // A source's spec differs exactly when its label does: naming both says nothing more.
    if (key == "source" && std::find(differing.begin(), differing.end(), "distribution") != differing.end())
      continue;
    for (const std::size_t r : rows) {
      if (t.rows[r][*c] != t.rows[rows[0]][*c]) {
        differing.push_back(key);
        break;
      }
    }
  }
  if (!differing.empty()) {
    throw sqb::Error(context + ": " + std::to_string(rows.size()) +
                     " result rows fall into one cell and differ in " + join(differing) +
                     "; add a where filter (e.g. " + setting(syntax, "where", differing[0] + "=...") +
                     ") or " + setting(syntax, "agg", "mean|median|min|max"));
  }
}

}  // namespace

double combine(const CsvTable& t, const std::vector<std::size_t>& rows, std::size_t value_col, Agg agg,
               const std::string& context, std::string& note, double* spread, Syntax syntax) {
  std::vector<double> values;
  for (const std::size_t r : rows) {
    const auto v = parse_field_number(t.rows[r][value_col]);
    if (!v) {
      throw sqb::Error(context + ": column '" + t.header[value_col] + "' holds '" + t.rows[r][value_col] +
                       "', not a number");
    }
    values.push_back(*v);
  }
  if (spread != nullptr) *spread = sample_std(values);
  if (values.size() == 1) return values[0];
  if (agg == Agg::none) {
    check_only_seeds_differ(t, rows, context, syntax);
    agg = Agg::mean;
    note = "mean of " + std::to_string(values.size()) + " seeds";
  }
  std::sort(values.begin(), values.end());
  switch (agg) {
    case Agg::min:
      return values.front();
    case Agg::max:
      return values.back();
    case Agg::median:
      return median_of_sorted(values);
    default: {
      double s = 0;
      for (const double v : values)
        s += v;
      return s / static_cast<double>(values.size());
    }
  }
}

std::vector<std::string> table_values(const TableSpec& spec) {
  // An empty value is one (missing) column name, reported as such by the caller.
  return spec.value.empty() ? std::vector<std::string>{""} : split_list(spec.value);
}

namespace {

// What the settings make of a table, checked before any result is read: one value pivoted by `cols`, or
// several values side by side (then the columns are the values).
struct Shape {
  std::vector<std::string> values;
  bool multi = false;
  bool along_rows = false;  // the best is marked per row, not per column
};

Shape check_shape(const TableSpec& spec, const std::string& context, Syntax syntax) {
  Shape s;
  s.values = table_values(spec);
  s.multi = s.values.size() > 1;
  const std::string cols = syntax == Syntax::command_line ? "--cols" : "cols";
  if (s.multi && !spec.cols.empty()) {
    throw sqb::Error(context + ": with several values (" + spec.value +
                     ") the columns are the values; drop " + cols);
  }
  if (!s.multi && spec.cols.empty())
    throw sqb::Error(context + ": " + cols + " is required for a single value");
  s.along_rows = spec.best_along == "row";
  if (spec.best_along != "col" && !s.along_rows) {
    throw sqb::Error(context + ": best_along '" + spec.best_along + "' must be one of " + kBestAlongChoices);
  }
  if (s.multi && s.along_rows) {
    throw sqb::Error(context + ": best along a row compares its columns, but with several values (" +
                     spec.value + ") they are different quantities; mark the best per column");
  }
  return s;
}

using CellKey = std::pair<std::string, std::string>;  // (row label, column label)

// The selected result rows sorted into cells, and the labels of the table's rows and columns in order.
struct Pivot {
  std::vector<std::string> row_labels, col_labels;
  std::map<CellKey, std::vector<std::size_t>> members;
  std::map<std::string, std::size_t> value_col;  // each value's result column
};

Pivot pivot(const CsvTable& t, const TableSpec& spec, const Shape& shape, const std::string& context) {
  // rows and cols may each name several columns ("distribution, bits"): one row/column per combination,
  // labelled "a / b".
  const CompositeKey row_key(t, spec.rows, context + " rows");
  const CompositeKey col_key(t, shape.multi ? std::string() : spec.cols, context + " cols");
  Pivot p;
  for (const std::string& v : shape.values)
    p.value_col[v] = need_column(t, v, context + " value");
  const std::vector<std::size_t> rows = select_rows(t, spec.where, context);
  if (rows.empty()) throw sqb::Error(context + ": no result rows match the where filters");
  p.row_labels = row_key.distinct(rows);
  p.col_labels = shape.multi ? shape.values : col_key.distinct(rows);
  for (const std::size_t r : rows) {
    if (shape.multi) {
      for (const std::string& v : shape.values)
        p.members[{row_key.label(r), v}].push_back(r);
    } else {
      p.members[{row_key.label(r), col_key.label(r)}].push_back(r);
    }
  }
  return p;
}

// Every cell's rows combined into one value, with its spread when the table shows one and a note on how
// the rows were combined (for the caption).
std::map<CellKey, TableModel::Cell> aggregate(const CsvTable& t, const TableSpec& spec, const Shape& shape,
                                              const Pivot& p, const std::string& context, Syntax syntax) {
  const std::string cols_name = shape.multi ? "value" : spec.cols;
  std::map<CellKey, TableModel::Cell> cells;
  for (const auto& [key, members] : p.members) {
    TableModel::Cell cell;
    double sd = 0;
    const std::size_t col = p.value_col.at(shape.multi ? key.second : shape.values[0]);
    cell.value =
        combine(t, members, col, spec.agg,
                context + " cell (" + spec.rows + "=" + key.first + ", " + cols_name + "=" + key.second + ")",
                cell.note, &sd, syntax);
    if (spec.spread == "std") {
      cell.spread = sd;
      // "mean of 3 seeds" -> "mean ± std of 3 seeds"
      if (members.size() > 1) {
        cell.note = cell.note.rfind("mean of ", 0) == 0
                        ? "mean ± std (n - 1) of " + cell.note.substr(8)
                        : "mean ± std (n - 1) of " + std::to_string(members.size()) + " rows";
      }
    }
    cells[key] = cell;
  }
  return cells;
}

// Which way the best of a value lies: the spec's min|max|none, or with auto the column schema's direction
// (a column this sqbench does not know has none). The higher-is-better columns go into `higher` by the
// name the caption gives them.
std::string direction(const TableSpec& spec, const std::string& value, std::set<std::string>& higher) {
  if (spec.best != "auto") return spec.best;
  const std::optional<sqb::Col> col = sqb::find_column(value);
  if (!col) return "none";
  const sqb::ColumnInfo& info = sqb::column_info(*col);
  if (info.better == sqb::Better::higher) {
    higher.insert(std::string(info.brief.empty() ? info.name : info.brief));
    return "max";
  }
  return info.better == sqb::Better::lower ? "min" : "none";
}

// The best of a row's or column's cells in direction `dir` (the first-seen one on ties); nullopt for none.
std::optional<double> best_of(const std::vector<const TableModel::Cell*>& cells, const std::string& dir) {
  std::optional<double> best;
  for (const TableModel::Cell* c : cells) {
    if (c != nullptr && (!best || (dir == "min" ? c->value < *best : c->value > *best))) best = c->value;
  }
  return best;
}

// How the best cells were chosen, for the caption.
struct BestRule {
  std::set<std::string> directions;  // "min", "max": one when every column compares the same way
  std::set<std::string> higher;      // the higher-is-better columns, by their brief names
};

// Marks the best cell of every column (with best_along = row: of every row, in the one direction its cells
// share, since one value is pivoted).
BestRule mark_best(TableModel& m, const TableSpec& spec, const Shape& shape) {
  BestRule rule;
  const std::size_t nr = m.row_labels.size(), nc = m.col_labels.size();
  const auto at = [&](std::size_t r, std::size_t c) { return m.cells[r][c] ? &*m.cells[r][c] : nullptr; };
  std::vector<std::optional<double>> best_in_col(nc), best_in_row(nr);
  for (std::size_t c = 0; c < nc; ++c) {
    const std::string dir = direction(spec, shape.multi ? m.col_labels[c] : shape.values[0], rule.higher);
    if (dir == "none") continue;
    rule.directions.insert(dir);
    std::vector<const TableModel::Cell*> column;
    for (std::size_t r = 0; r < nr; ++r)
      column.push_back(at(r, c));
    best_in_col[c] = best_of(column, dir);
  }
  if (shape.along_rows && !rule.directions.empty()) {
    for (std::size_t r = 0; r < nr; ++r) {
      std::vector<const TableModel::Cell*> row;
      for (std::size_t c = 0; c < nc; ++c)
        row.push_back(at(r, c));
      best_in_row[r] = best_of(row, *rule.directions.begin());
    }
  }
  for (std::size_t r = 0; r < nr; ++r) {
    for (std::size_t c = 0; c < nc; ++c) {
      const std::optional<double>& best = shape.along_rows ? best_in_row[r] : best_in_col[c];
      if (m.cells[r][c]) m.cells[r][c]->best = best && *best == m.cells[r][c]->value;
    }
  }
  return rule;
}

// The caption's second part: what the rows and columns are, the filters, how cells combine, the best
// marks, and where the results came from.
std::string details_of(const TableSpec& spec, const Shape& shape, const std::set<std::string>& notes,
                       const BestRule& rule, const Provenance& prov) {
  std::string details = "Rows: " + spec.rows +
                        "; columns: " + (shape.multi ? spec.value : spec.cols + "; value: " + spec.value);
  for (const Where& w : spec.where)
    details += "; " + w.column + " = " + w.value;
  for (const std::string& n : notes)
    details += "; " + n;
  if (rule.directions.size() == 1) {
    details += "; best per " + std::string(shape.along_rows ? "row" : "column") + " in bold (" +
               (*rule.directions.begin() == "min" ? "lower" : "higher") + " is better)";
  } else if (!rule.directions.empty()) {
    const std::vector<std::string> names(rule.higher.begin(), rule.higher.end());
    details += "; best per column in bold (higher " + join(names) + ", lower everything else)";
  }
  return details + ". Config " + prov.config_name + " (hash " + prov.config_hash + ").";
}

}  // namespace

TableModel build_table(const CsvTable& t, const TableSpec& spec, const Provenance& prov,
                       const std::string& context_name, Syntax syntax) {
  const std::string context = context_name.empty() ? "table '" + spec.id + "'" : context_name;
  const Shape shape = check_shape(spec, context, syntax);
  const Pivot p = pivot(t, spec, shape, context);
  const std::map<CellKey, TableModel::Cell> cells = aggregate(t, spec, shape, p, context, syntax);
  TableModel m;
  m.id = spec.id;
  m.row_title = spec.rows;
  m.col_title = shape.multi ? std::string() : spec.cols;
  m.row_labels = p.row_labels;
  m.col_labels = p.col_labels;
  m.digits = spec.digits;
  m.provenance = prov;
  std::set<std::string> notes;
  for (const std::string& r : m.row_labels) {
    m.cells.emplace_back();
    for (const std::string& c : m.col_labels) {
      const auto it = cells.find({r, c});
      m.cells.back().push_back(it == cells.end() ? std::nullopt : std::optional(it->second));
    }
  }
  for (const auto& [key, cell] : cells) {
    if (!cell.note.empty()) notes.insert(cell.note);
  }
  const BestRule rule = mark_best(m, spec, shape);
  m.caption = !spec.title.empty() ? spec.title
              : shape.multi       ? spec.value + " by " + spec.rows
                                  : spec.value + " by " + spec.rows + " and " + spec.cols;
  m.details = details_of(spec, shape, notes, rule, prov);
  return m;
}

namespace {

// How a format writes a cell's number: "±", a power of ten, infinity, and the value's (bold) frame.
struct Notation {
  std::string plus_minus;
  std::string (*power)(int exponent);
  std::string (*infinity)(bool positive);
  std::string (*frame)(const std::string& body, bool bold);
};

const Notation kMarkdown = {
    " ± ", [](int e) { return "e" + std::to_string(e); },
    [](bool positive) { return std::string(positive ? "inf" : "-inf"); },
    [](const std::string& body, bool bold) { return bold ? "**" + body + "**" : body; }};

const Notation kLatex = {
    " \\pm ", [](int e) { return "\\times 10^{" + std::to_string(e) + "}"; },
    [](bool positive) { return std::string(positive ? "\\infty" : "-\\infty"); },
    [](const std::string& body, bool bold) { return bold ? "$\\mathbf{" + body + "}$" : "$" + body + "$"; }};

// A cell's text: the value to `digits` significant digits, with a spread "mean ± std" (the std to the mean's
// last decimal place; "(m ± s)e-5" when scientific).
std::string cell_text(const TableModel::Cell& cell, int digits, const Notation& n) {
  const Formatted f = format_sig(cell.value, digits);
  if (f.special) return n.frame(n.infinity(cell.value > 0), cell.best);
  const bool spread = !std::isnan(cell.spread);
  std::string body = f.mantissa;
  if (spread) body += n.plus_minus + spread_text(f, cell.spread);
  if (f.scientific) body = (spread ? "(" + body + ")" : body) + n.power(f.exponent);
  return n.frame(body, cell.best);
}

}  // namespace

std::string render_markdown(const TableModel& m) {
  std::string out =
      "**Table " + md_escape(m.id) + ": " + md_escape(m.caption) + ".** " + md_escape(m.details) + "\n\n";
  out += "| " + md_escape(m.row_title) + (m.col_title.empty() ? "" : " \\ " + md_escape(m.col_title)) + " |";
  for (const std::string& c : m.col_labels)
    out += " " + md_escape(c) + " |";
  out += "\n|---|";
  for (std::size_t i = 0; i < m.col_labels.size(); ++i)
    out += "---:|";
  out += "\n";
  for (std::size_t r = 0; r < m.row_labels.size(); ++r) {
    out += "| " + md_escape(m.row_labels[r]) + " |";
    for (const std::optional<TableModel::Cell>& cell : m.cells[r]) {
      out += ' ';  // (not " " + cell_text(): GCC 12 warns falsely about that temporary, -Wrestrict)
      out += cell ? cell_text(*cell, m.digits, kMarkdown) : "–";
      out += " |";
    }
    out += "\n";
  }
  return out;
}

std::string render_latex(const TableModel& m) {
  // booktabs rules: the preamble needs \usepackage{booktabs}, as the first line says.
  std::string out = "% Generated by sqbench from results.csv (config " + m.provenance.config_name +
                    ", hash " + m.provenance.config_hash + "). Needs \\usepackage{booktabs}.\n";
  out += "\\begin{table}[t]\n\\centering\n\\caption{" + latex_escape(m.caption) + ". " +
         latex_escape(m.details) + "}\n";
  out += "\\label{tab:" + m.id + "}\n\\begin{tabular}{l" + std::string(m.col_labels.size(), 'r') +
         "}\n\\toprule\n";
  out += latex_escape(m.row_title) + (m.col_title.empty() ? "" : " / " + latex_escape(m.col_title));
  for (const std::string& c : m.col_labels)
    out += " & " + latex_escape(c);
  out += " \\\\\n\\midrule\n";
  for (std::size_t r = 0; r < m.row_labels.size(); ++r) {
    out += "\\texttt{" + latex_escape(m.row_labels[r]) + "}";
    for (const std::optional<TableModel::Cell>& cell : m.cells[r])
      out += " & " + (cell ? cell_text(*cell, m.digits, kLatex) : "--");
    out += " \\\\\n";
  }
  return out + "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
}

std::string render_csv(const TableModel& m) {
  // Full precision, no marks: a CSV table is read by programs.
  std::vector<std::string> header = {m.row_title};
  header.insert(header.end(), m.col_labels.begin(), m.col_labels.end());
  std::vector<std::vector<std::string>> body;
  for (std::size_t r = 0; r < m.row_labels.size(); ++r) {
    std::vector<std::string> line = {m.row_labels[r]};
    for (const std::optional<TableModel::Cell>& cell : m.cells[r])
      line.push_back(cell ? format_number(cell->value) : "");
    body.push_back(std::move(line));
  }
  return csv_text(header, body);
}

std::string render_table(const CsvTable& t, const TableSpec& spec, TableFormat fmt, const Provenance& prov,
                         const std::string& context, Syntax syntax) {
  const TableModel m = build_table(t, spec, prov, context, syntax);
  switch (fmt) {
    case TableFormat::md:
      return render_markdown(m);
    case TableFormat::latex:
      return render_latex(m);
    default:
      return render_csv(m);
  }
}

}  // namespace sqbench
