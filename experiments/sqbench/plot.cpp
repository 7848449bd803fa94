#include "plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include "files.hpp"
#include "sqb/columns.hpp"
#include "sqb/error.hpp"
#include "text.hpp"

namespace sqbench {

namespace fs = std::filesystem;

const std::vector<ReferenceCurve>& reference_curves() {
  static const std::vector<ReferenceCurve> refs = {
      {"panter_dite",
       "sqrt(3)*pi/2 * 4^-x: high-rate MSE of the optimal quantizer of a unit-variance Gaussian at x bits "
       "(TurboQuant's upper bound); plot against bits with y = nmse or a unit-variance mse"},
      {"shannon",
       "4^-x: the rate-distortion bound of a unit-variance Gaussian at x bits (TurboQuant's lower bound)"},
      {"guide_linear",
       "a line proportional to x through the lowest series at the smallest x (O(N) on time vs N, "
       "O(N K) on time vs K)"},
      {"guide_nlogn", "proportional to x log x, through the lowest series at the smallest x (O(N log N))"},
  };
  return refs;
}

void check_references(const Config& config) {
  for (const PlotSpec& p : config.plots) {
    for (const std::string& r : p.references) {
      const auto& refs = reference_curves();
      if (std::none_of(refs.begin(), refs.end(), [&](const ReferenceCurve& c) { return c.name == r; })) {
        std::vector<std::string> names;
        for (const auto& c : refs)
          names.push_back(c.name);
        const std::string valid = join(names);
        throw sqb::Error(config.path.string() + ": [plot." + p.id +
                         "] key 'reference': unknown reference curve '" + r + "'; valid: " + valid);
      }
    }
  }
}

std::string axis_label(const std::string& column) {
  const std::optional<sqb::Col> c = sqb::find_column(column);
  if (!c || sqb::column_info(*c).label.empty()) return column;
  return std::string(sqb::column_info(*c).label);
}

namespace {

// A string as a gnuplot double-quoted literal.
std::string gp_quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string num(double v) {
  return format_number(v, 12);
}

}  // namespace

PlotFiles render_plot(const CsvTable& t, const PlotSpec& spec, const Provenance& prov, const fs::path& dir) {
  const std::string context = "plot '" + spec.id + "'";
  const auto col = [&](const std::string& name, const std::string& key) {
    if (const auto c = t.column(name)) return *c;
    throw sqb::Error(context + " " + key + ": no column '" + name + "' in the results");
  };
  const std::size_t xc = col(spec.x, "x"), yc = col(spec.y, "y");
  const std::vector<std::size_t> rows = select_rows(t, spec.where, context);
  if (rows.empty()) throw sqb::Error(context + ": no result rows match the where filters");

  std::vector<std::string> series = {""};
  std::map<std::string, std::vector<std::size_t>> by_series;
  if (!spec.series.empty()) {
    const std::size_t sc = col(spec.series, "series");
    series = distinct_values(t, sc, rows);
    for (const std::size_t r : rows)
      by_series[t.rows[r][sc]].push_back(r);
  } else {
    by_series[""] = rows;
  }

  // Data: one gnuplot index block per series; points with several rows are combined like table cells.
  std::string dat = "# sqbench plot data: plot " + spec.id + ", config " + prov.config_name + " (hash " +
                    prov.config_hash + ")\n# columns: " + spec.x + " " + spec.y + "\n";
  std::set<std::string> notes;
  double x0 = INFINITY, y_at_x0 = INFINITY;
  bool any = false;
  for (std::size_t s = 0; s < series.size(); ++s) {
    const auto& members = by_series[series[s]];
    std::map<double, std::vector<std::size_t>> at_x;
    for (const std::size_t r : members) {
      const auto xv = parse_field_number(t.rows[r][xc]);
      if (!xv)
        throw sqb::Error(context + ": column '" + spec.x + "' holds '" + t.rows[r][xc] + "', not a number");
      at_x[*xv].push_back(r);
    }
    dat += "\n\n# series " + std::to_string(s) + ": " + series[s] + "\n";
    for (const auto& [xv, rs] : at_x) {
      std::string note;
      const double yv =
          combine(t, rs, yc, Agg::none,
                  context + " point (" + (spec.series.empty() ? "" : spec.series + "=" + series[s] + ", ") +
                      spec.x + "=" + num(xv) + ")",
                  note);
      if (!note.empty()) notes.insert(note);
      if ((spec.logx && xv <= 0) || (spec.logy && yv <= 0) || !std::isfinite(yv)) continue;  // not drawable
      dat += num(xv) + " " + num(yv) + "\n";
      any = true;
      if (xv < x0 || (xv == x0 && yv < y_at_x0)) {
        x0 = xv;
        y_at_x0 = yv;
      }
    }
  }
  if (!any) throw sqb::Error(context + ": no drawable points (log axes need positive values)");

  const std::string title =
      spec.title.empty() ? axis_label(spec.y) + " vs " + axis_label(spec.x) : spec.title;
  std::string subtitle = "config " + prov.config_name + " (hash " + prov.config_hash + ")";
  for (const Where& w : spec.where) {
    // A list of alternatives would run off the image: say how many.
    const auto alternatives = static_cast<std::size_t>(std::count(w.value.begin(), w.value.end(), '|')) + 1;
    subtitle += ", " + w.column +
                (alternatives > 1 ? ": " + std::to_string(alternatives) + " selected" : "=" + w.value);
  }
  for (const std::string& n : notes)
    subtitle += ", " + n;

  PlotFiles files;
  files.gp = dir / (spec.id + ".gp");
  files.dat = dir / (spec.id + ".dat");
  files.png = dir / (spec.id + ".png");
  files.svg = dir / (spec.id + ".svg");
  std::string gp;
  gp += "# Generated by sqbench: plot " + spec.id + " of config " + prov.config_name + " (hash " +
        prov.config_hash + ").\n# Edit freely and run `gnuplot " + spec.id +
        ".gp` in this folder to re-render the PNG and SVG.\n";
  // The legend goes below the plot (long spec strings would squeeze the plot to a strip beside it); the image
  // grows with the number of legend entries.
  const std::size_t entries = series.size() + spec.references.size();
  const std::string size = "1000," + std::to_string(560 + 22 * entries);
  gp += "set terminal pngcairo size " + size + " enhanced font 'DejaVu Sans,11'\n";
  gp += "set output '" + spec.id + ".png'\n";
  gp += "set title " + gp_quote(title + "\n" + subtitle) + " noenhanced\n";
  gp += "set xlabel " + gp_quote(spec.xlabel.empty() ? axis_label(spec.x) : spec.xlabel) + " noenhanced\n";
  gp += "set ylabel " + gp_quote(spec.ylabel.empty() ? axis_label(spec.y) : spec.ylabel) + " noenhanced\n";
  gp += "set key outside below center vertical noenhanced spacing 1.1 samplen 3\n";
  // Twelve colours, each with its own marker, so series stay apart in print and in greyscale.
  static const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8"};
  static const int kMarkers[] = {7, 5, 9, 11, 13, 15, 4, 6, 8, 10, 12, 14};
  for (int i = 0; i < 12; ++i) {
    gp += "set linetype " + std::to_string(i + 1) + " lc rgb '" + kPalette[i] + "' pt " +
          std::to_string(kMarkers[i]) + "\n";
  }
  gp += "set linetype cycle 12\n";
  gp += "set grid xtics ytics mxtics mytics lc rgb '#dddddd'\n";
  gp += "set border lw 1.2\n";
  if (spec.logx) gp += "set logscale x 10\nset format x '10^{%L}'\n";
  if (spec.logy) gp += "set logscale y 10\nset format y '10^{%L}'\n";
  if (!spec.logx && (spec.x == "bits" || spec.x == "k")) gp += "set xtics 1\n";
  gp += "set samples 400\n";
  const std::string style = spec.kind == "scatter" ? "points ps 1.6" : "linespoints lw 2 ps 1.1";
  std::string plot;
  for (std::size_t s = 0; s < series.size(); ++s) {
    if (!plot.empty()) plot += ", \\\n     ";
    plot += "'" + spec.id + ".dat' index " + std::to_string(s) + " using 1:2 with " + style + " title " +
            gp_quote(series[s].empty() ? spec.y : series[s]);
  }
  std::size_t ref_index = 0;
  for (const std::string& r : spec.references) {
    std::string expr, label;
    if (r == "panter_dite") {
      expr = "sqrt(3)*pi/2*4**(-x)";
      label = "Panter-Dite sqrt(3)pi/2 4^-b";
    } else if (r == "shannon") {
      expr = "4**(-x)";
      label = "Shannon bound 4^-b";
    } else if (r == "guide_linear") {
      expr = num(y_at_x0) + "*(x/" + num(x0) + ")";
      label = "slope 1 guide (O(N))";
    } else if (r == "guide_nlogn") {
      expr = num(y_at_x0) + "*(x*log(x))/(" + num(x0) + "*log(" + num(x0) + "))";
      label = "N log N guide";
    }
    static const char* kRefStyles[] = {"dt 2 lw 1.5 lc rgb '#444444'", "dt 4 lw 1.5 lc rgb '#888888'",
                                       "dt 3 lw 1.8 lc rgb '#aa3333'", "dt 5 lw 1.5 lc rgb '#3333aa'"};
    plot += ", \\\n     " + expr + " with lines " + kRefStyles[ref_index++ % 4] + " title " + gp_quote(label);
  }
  gp += "plot " + plot + "\n";
  gp += "set terminal svg size " + size + " dynamic enhanced font 'DejaVu Sans,11'\n";
  gp += "set output '" + spec.id + ".svg'\nreplot\nset output\n";

  write_file_atomic(files.dat, dat);
  write_file_atomic(files.gp, gp);
  const std::string cmd = "cd '" + dir.string() + "' && gnuplot '" + spec.id + ".gp' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string output;
  if (p != nullptr) {
    char buf[512];
    std::size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, p)) > 0)
      output.append(buf, got);
    const int status = ::pclose(p);
    files.rendered = status == 0 && fs::exists(files.png) && fs::exists(files.svg);
  }
  if (!files.rendered) {
    files.message =
        output.find("not found") != std::string::npos || output.find("No such file") != std::string::npos
            ? "gnuplot is not installed (scripts/setup installs gnuplot-nox)"
            : "gnuplot failed: " + output;
  }
  return files;
}

}  // namespace sqbench
