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

bool same_value(const std::string& a, const std::string& b) {
  if (a == b) return true;
  const auto x = parse_field_number(a), y = parse_field_number(b);
  return x && y && *x == *y;
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

std::string as_md(const Formatted& f) {
  if (f.special || !f.scientific) return f.mantissa;
  return f.mantissa + "e" + std::to_string(f.exponent);
}

std::string as_latex(const Formatted& f, bool bold) {
  std::string body;
  if (f.special) {
    body = f.mantissa == "inf" ? "\\infty" : "-\\infty";
  } else if (f.scientific) {
    body = f.mantissa + "\\times 10^{" + std::to_string(f.exponent) + "}";
  } else {
    body = f.mantissa;
  }
  return bold ? "$\\mathbf{" + body + "}$" : "$" + body + "$";
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
  if (spread != nullptr) {
    *spread = std::numeric_limits<double>::quiet_NaN();
    if (values.size() > 1) {
      double mean = 0;
      for (const double v : values)
        mean += v;
      mean /= static_cast<double>(values.size());
      double ss = 0;
      for (const double v : values)
        ss += (v - mean) * (v - mean);
      *spread = std::sqrt(ss / static_cast<double>(values.size() - 1));
    }
  }
  if (values.size() == 1) return values[0];
  if (agg == Agg::none) {
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

std::string render_table(const CsvTable& t, const TableSpec& spec, TableFormat fmt, const Provenance& prov,
                         const std::string& context_name, Syntax syntax) {
  const std::string context = context_name.empty() ? "table '" + spec.id + "'" : context_name;
  // Either one value pivoted by `cols`, or several values side by side (the columns are the values).
  const std::vector<std::string> values = table_values(spec);
  const bool multi = values.size() > 1;
  if (multi && !spec.cols.empty()) {
    throw sqb::Error(context + ": with several values (" + spec.value +
                     ") the columns are the values; drop " +
                     (syntax == Syntax::command_line ? "--cols" : "cols"));
  }
  if (!multi && spec.cols.empty()) {
    throw sqb::Error(context + ": " + (syntax == Syntax::command_line ? "--cols" : "cols") +
                     " is required for a single value");
  }
  const bool along_rows = spec.best_along == "row";
  if (spec.best_along != "col" && !along_rows) {
    throw sqb::Error(context + ": best_along '" + spec.best_along + "' must be one of " + kBestAlongChoices);
  }
  if (multi && along_rows) {
    throw sqb::Error(context + ": best along a row compares its columns, but with several values (" +
                     spec.value + ") they are different quantities; mark the best per column");
  }
  // rows and cols may each name several columns ("distribution, bits"): one row/column per combination,
  // labelled "a / b".
  const CompositeKey row_key(t, spec.rows, context + " rows");
  const CompositeKey col_key(t, multi ? std::string() : spec.cols, context + " cols");
  std::map<std::string, std::size_t> value_col;
  for (const std::string& v : values)
    value_col[v] = need_column(t, v, context + " value");
  const std::vector<std::size_t> rows = select_rows(t, spec.where, context);
  if (rows.empty()) throw sqb::Error(context + ": no result rows match the where filters");
  const std::vector<std::string> row_keys = row_key.distinct(rows);
  const std::vector<std::string> col_keys = multi ? values : col_key.distinct(rows);
  const std::string cols_name = multi ? "value" : spec.cols;

  // (row label, column label) -> the rows that fall there, and the value column to read.
  std::map<std::pair<std::string, std::string>, std::vector<std::size_t>> cells;
  for (const std::size_t r : rows) {
    if (multi) {
      for (const std::string& v : values)
        cells[{row_key.label(r), v}].push_back(r);
    } else {
      cells[{row_key.label(r), col_key.label(r)}].push_back(r);
    }
  }
  std::map<std::pair<std::string, std::string>, double> value, spread;
  std::set<std::string> notes;
  const bool with_spread = spec.spread == "std";
  for (const auto& [key, members] : cells) {
    std::string note;
    double sd = 0;
    value[key] =
        combine(t, members, multi ? value_col[key.second] : value_col[values[0]], spec.agg,
                context + " cell (" + spec.rows + "=" + key.first + ", " + cols_name + "=" + key.second + ")",
                note, &sd, syntax);
    spread[key] = sd;
    if (with_spread && members.size() > 1) {
      // "mean of 3 seeds" -> "mean ± std of 3 seeds"
      note = note.rfind("mean of ", 0) == 0
                 ? "mean ± std (n - 1) of " + note.substr(8)
                 : "mean ± std (n - 1) of " + std::to_string(members.size()) + " rows";
    }
    if (!note.empty()) notes.insert(note);
  }
  // A cell's text: the value, or with spread = std "mean ± std" (the std to the mean's last decimal place).
  const auto cell_md = [&](const std::pair<std::string, std::string>& key) {
    const Formatted f = format_sig(value.at(key), spec.digits);
    const double sd = spread.at(key);
    if (!with_spread || std::isnan(sd) || f.special) return as_md(f);
    const std::string s = spread_text(f, sd);
    return f.scientific ? "(" + f.mantissa + " ± " + s + ")e" + std::to_string(f.exponent)
                        : f.mantissa + " ± " + s;
  };
  const auto cell_latex = [&](const std::pair<std::string, std::string>& key, bool bold) {
    const Formatted f = format_sig(value.at(key), spec.digits);
    const double sd = spread.at(key);
    if (!with_spread || std::isnan(sd) || f.special) return as_latex(f, bold);
    const std::string s = spread_text(f, sd);
    const std::string body =
        f.scientific ? "(" + f.mantissa + " \\pm " + s + ")\\times 10^{" + std::to_string(f.exponent) + "}"
                     : f.mantissa + " \\pm " + s;
    return bold ? "$\\mathbf{" + body + "}$" : "$" + body + "$";
  };

  // Best per column: the direction the column schema gives (auto), or the spec's.
  std::set<std::string> higher_better;  // brief names of the higher-is-better columns marked
  const auto direction = [&](const std::string& column_value) {
    if (spec.best != "auto") return spec.best;
    const std::optional<sqb::Col> col = sqb::find_column(column_value);
    if (!col) return std::string("none");  // a column this sqbench does not know has no known direction
    const sqb::ColumnInfo& info = sqb::column_info(*col);
    if (info.better == sqb::Better::higher) {
      higher_better.insert(std::string(info.brief.empty() ? info.name : info.brief));
      return std::string("max");
    }
    return info.better == sqb::Better::lower ? std::string("min") : std::string("none");
  };
  std::map<std::string, double> best_in_col;
  std::set<std::string> directions;
  for (const std::string& c : col_keys) {
    const std::string dir = direction(multi ? c : values[0]);
    if (dir == "none") continue;
    directions.insert(dir);
    for (const std::string& r : row_keys) {
      const auto it = value.find({r, c});
      if (it == value.end()) continue;
      const auto b = best_in_col.find(c);
      if (b == best_in_col.end() || (dir == "min" ? it->second < b->second : it->second > b->second)) {
        best_in_col[c] = it->second;
      }
    }
  }
  // Best per row: one value pivoted, so every cell of a row holds the same quantity and its cells compare.
  std::map<std::string, double> best_in_row;
  if (along_rows && !directions.empty()) {
    const std::string dir = *directions.begin();
    for (const std::string& r : row_keys) {
      for (const std::string& c : col_keys) {
        const auto it = value.find({r, c});
        if (it == value.end()) continue;
        const auto b = best_in_row.find(r);
        if (b == best_in_row.end() || (dir == "min" ? it->second < b->second : it->second > b->second)) {
          best_in_row[r] = it->second;
        }
      }
    }
  }
  const auto is_best = [&](const std::string& r, const std::string& c, double v) {
    if (along_rows) return best_in_row.contains(r) && best_in_row.at(r) == v;
    return best_in_col.contains(c) && best_in_col.at(c) == v;
  };
  const std::string along = along_rows ? "row" : "column";

  std::string caption = spec.title.empty() ? (multi ? spec.value + " by " + spec.rows
                                                    : spec.value + " by " + spec.rows + " and " + spec.cols)
                                           : spec.title;
  std::string details =
      "Rows: " + spec.rows + "; columns: " + (multi ? spec.value : spec.cols + "; value: " + spec.value);
  for (const Where& w : spec.where)
    details += "; " + w.column + " = " + w.value;
  for (const std::string& n : notes)
    details += "; " + n;
  if (directions.size() == 1) {
    details += "; best per " + along + " in bold (" + (*directions.begin() == "min" ? "lower" : "higher") +
               " is better)";
  } else if (!directions.empty()) {
    std::vector<std::string> names(higher_better.begin(), higher_better.end());
    details += "; best per column in bold (higher " + join(names) + ", lower everything else)";
  }
  details += ". Config " + prov.config_name + " (hash " + prov.config_hash + ").";

  std::string out;
  if (fmt == TableFormat::csv) {
    std::vector<std::string> header = {spec.rows};
    header.insert(header.end(), col_keys.begin(), col_keys.end());
    std::vector<std::vector<std::string>> body;
    for (const std::string& r : row_keys) {
      std::vector<std::string> line = {r};
      for (const std::string& c : col_keys) {
        const auto it = value.find({r, c});
        line.push_back(it == value.end() ? "" : format_number(it->second));
      }
      body.push_back(line);
    }
    return csv_text(header, body);
  }
  if (fmt == TableFormat::md) {
    out += "**Table " + md_escape(spec.id) + ": " + md_escape(caption) + ".** " + md_escape(details) + "\n\n";
    out += "| " + md_escape(spec.rows) + (multi ? "" : " \\ " + md_escape(spec.cols)) + " |";
    for (const std::string& c : col_keys)
      out += " " + md_escape(c) + " |";
    out += "\n|---|";
    for (std::size_t i = 0; i < col_keys.size(); ++i)
      out += "---:|";
    out += "\n";
    for (const std::string& r : row_keys) {
      out += "| " + md_escape(r) + " |";
      for (const std::string& c : col_keys) {
        const auto it = value.find({r, c});
        if (it == value.end()) {
          out += " – |";
          continue;
        }
        const std::string text = cell_md({r, c});
        const bool bold = is_best(r, c, it->second);
        out += " " + (bold ? "**" + text + "**" : text) + " |";
      }
      out += "\n";
    }
    return out;
  }
  // LaTeX with booktabs.
  out += "% Generated by sqbench from results.csv (config " + prov.config_name + ", hash " +
         prov.config_hash + "). Needs \\usepackage{booktabs}.\n";
  out += "\\begin{table}[t]\n\\centering\n\\caption{" + latex_escape(caption) + ". " + latex_escape(details) +
         "}\n";
  out += "\\label{tab:" + spec.id + "}\n\\begin{tabular}{l" + std::string(col_keys.size(), 'r') +
         "}\n\\toprule\n";
  out += latex_escape(spec.rows) + (multi ? "" : " / " + latex_escape(spec.cols));
  for (const std::string& c : col_keys)
    out += " & " + latex_escape(c);
  out += " \\\\\n\\midrule\n";
  for (const std::string& r : row_keys) {
    out += "\\texttt{" + latex_escape(r) + "}";
    for (const std::string& c : col_keys) {
      const auto it = value.find({r, c});
      if (it == value.end()) {
        out += " & --";
        continue;
      }
      const bool bold = is_best(r, c, it->second);
      out += " & " + cell_latex({r, c}, bold);
    }
    out += " \\\\\n";
  }
  out += "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
  return out;
}

}  // namespace sqbench
