// Tables and plot scripts, byte for byte against golden files made by an earlier, independent rendering:
// every shipped table as CSV (the shipped tables.md/.tex and plots/*.gp/.dat are compared by the
// "shipped results folders render exactly as committed" test), and a made-up results table rendered with
// the settings the shipped configs do not use (best along rows, best = max, median, an unknown column,
// inf, missing cells, characters every format escapes; bar, scatter, dash, hline and reference curves).
// A rendering change that is meant shows up here as a diff: rewrite the golden files with
// SQB_WRITE_GOLDEN=1 build/tests/sqb_tests '[golden]' and review the diff before committing them.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <fstream>

#include "cli_helpers.hpp"
#include "config.hpp"
#include "plot.hpp"
#include "sqb/error.hpp"
#include "sweep.hpp"
#include "table.hpp"

using namespace sqbtest;

namespace {

const fs::path kGoldenDir = fs::path(SQB_SOURCE_DIR) / "tests" / "data" / "render_golden";

// Compares `text` with the golden file `name`, or writes it there when SQB_WRITE_GOLDEN is set.
void check_golden(const std::string& name, const std::string& text) {
  const fs::path file = kGoldenDir / name;
  if (std::getenv("SQB_WRITE_GOLDEN") != nullptr) {
    fs::create_directories(kGoldenDir);
    std::ofstream(file, std::ios::binary) << text;
    WARN("wrote " << file);
    return;
  }
  REQUIRE(fs::exists(file));
  const std::string golden = slurp(file);
  // On a difference, the first line that differs says more than two long texts.
  if (golden != text) {
    std::size_t at = 0;
    while (at < golden.size() && at < text.size() && golden[at] == text[at])
      ++at;
    const std::size_t line_start = golden.rfind('\n', at == 0 ? 0 : at - 1);
    const std::size_t from = line_start == std::string::npos ? 0 : line_start + 1;
    INFO(name << " differs at byte " << at << "\n golden: " << golden.substr(from, 160)
              << "\n    now: " << text.substr(from, 160));
    CHECK(golden == text);
  }
}

sqbench::TableSpec table(const std::string& id, const std::string& rows, const std::string& cols,
                         const std::string& value) {
  sqbench::TableSpec s;
  s.id = id;
  s.rows = rows;
  s.cols = cols;
  s.value = value;
  return s;
}

// A results table with seeds to average, a missing cell (c has no bits = 4), an inf, negative values,
// scientific and whole numbers, a column the schema does not know, and names every format must escape.
sqbench::CsvTable made_up_results() {
  sqbench::CsvTable t;
  t.header = {"quantizer", "distribution", "source", "bits",          "k",         "seed", "mse", "sqnr_db",
              "accuracy",  "iterations",   "fit_s",  "custom_metric", "layer_name"};
  t.rows = {
      {"a_x", "gauss", "gaussian", "2", "4", "0", "0.1175", "9.30", "88.1", "12", "0.0012", "-3.5",
       "model.layers.0.self_attn.q_proj.weight"},
      {"a_x", "gauss", "gaussian", "2", "4", "1", "0.1181", "9.28", "88.4", "14", "0.0011", "-2.5",
       "model.layers.0.self_attn.q_proj.weight"},
      {"a_x", "gauss", "gaussian", "4", "16", "0", "9.5e-3", "20.2", "90.2", "30", "0.0040", "1",
       "model.layers.0.self_attn.q_proj.weight"},
      {"a_x", "gauss", "gaussian", "4", "16", "1", "9.7e-3", "20.1", "90.0", "31", "0.0042", "2",
       "model.layers.0.self_attn.q_proj.weight"},
      {"b|y*", "gauss", "gaussian", "2", "4", "0", "0.1300", "8.86", "87.0", "3", "2e-4", "7",
       "model.layers.1.mlp.down_proj.weight"},
      {"b|y*", "gauss", "gaussian", "4", "16", "0", "1.2e-5", "49.2", "91.5", "5", "3.5e-4", "inf",
       "model.layers.1.mlp.down_proj.weight"},
      {"c%&#$", "gauss", "gaussian", "2", "4", "0", "0.1250", "9.03", "86.0", "1", "1234567", "0",
       "lm_head.weight \"tied\""},
      {"a_x", "lap~^\\{}", "laplace b=1", "2", "4", "0", "0.2200", "6.58", "70.5", "9", "0.0020", "-1",
       "model.layers.0.self_attn.q_proj.weight"},
      {"a_x", "lap~^\\{}", "laplace b=1", "4", "16", "0", "0.0210", "16.8", "75.0", "22", "0.0050", "-4",
       "model.layers.0.self_attn.q_proj.weight"},
      {"b|y*", "lap~^\\{}", "laplace b=1", "2", "4", "0", "inf", "-inf", "60.0", "2", "0.0001", "5",
       "model.layers.1.mlp.down_proj.weight"},
  };
  return t;
}

std::vector<sqbench::TableSpec> made_up_tables() {
  std::vector<sqbench::TableSpec> specs;
  specs.push_back(table("mse_by_bits", "quantizer", "bits", "mse"));
  specs.back().where = {{"distribution", "gauss"}};
  specs.push_back(table("sqnr_rows", "quantizer, distribution", "bits", "sqnr_db"));
  specs.back().best_along = "row";
  specs.back().digits = 3;
  specs.push_back(table("side_by_side", "quantizer", "", "mse, sqnr_db, iterations, accuracy"));
  specs.back().agg = sqbench::Agg::mean;
  specs.back().where = {{"bits", "2|4"}, {"distribution", "gaussian"}};
  specs.push_back(table("spread", "quantizer, distribution", "bits", "accuracy"));
  specs.back().spread = "std";
  specs.back().title = "Accuracy_with 50% & {braces} | pipes * stars";
  specs.push_back(table("spread_sci", "quantizer", "distribution", "mse"));
  specs.back().spread = "std";
  specs.back().where = {{"bits", "4"}};
  specs.back().digits = 2;
  specs.push_back(table("max_median", "distribution", "quantizer", "mse"));
  specs.back().best = "max";
  specs.back().agg = sqbench::Agg::median;
  specs.push_back(table("min_rows", "bits", "quantizer", "fit_s"));
  specs.back().agg = sqbench::Agg::min;
  specs.back().best = "min";
  specs.back().best_along = "row";
  specs.back().digits = 5;
  specs.push_back(table("unknown_col", "quantizer", "k", "custom_metric"));
  specs.back().agg = sqbench::Agg::max;
  specs.push_back(table("none_best", "k", "distribution", "iterations"));
  specs.back().best = "none";
  specs.back().agg = sqbench::Agg::mean;
  specs.push_back(table("multi_spread", "distribution", "", "accuracy, fit_s"));
  specs.back().spread = "std";
  specs.back().where = {{"quantizer", "a_x"}, {"bits", "2"}};
  return specs;
}

sqbench::PlotSpec plot(const std::string& id, const std::string& kind, const std::string& x,
                       const std::string& y, const std::string& series) {
  sqbench::PlotSpec p;
  p.id = id;
  p.kind = kind;
  p.x = x;
  p.y = y;
  p.series = series;
  return p;
}

std::vector<sqbench::PlotSpec> made_up_plots() {
  std::vector<sqbench::PlotSpec> specs;
  specs.push_back(plot("line_refs", "line", "bits", "mse", "quantizer"));
  specs.back().logy = true;
  specs.back().references = {"panter_dite", "shannon"};
  specs.back().where = {{"distribution", "gauss"}};
  specs.push_back(plot("scatter_guides", "scatter", "k", "fit_s", "quantizer"));
  specs.back().logx = true;
  specs.back().logy = true;
  specs.back().references = {"guide_linear", "guide_nlogn"};
  specs.back().title = "a \"quoted\" title";
  specs.push_back(plot("scatter_agg", "scatter", "k", "accuracy", "distribution"));
  specs.back().agg = sqbench::Agg::median;
  specs.back().xlabel = "codes";
  specs.back().ylabel = "acc";
  specs.push_back(plot("bars", "bar", "source", "custom_metric", "bits"));
  specs.back().agg = sqbench::Agg::mean;
  specs.push_back(plot("bars_rotated", "bar", "quantizer", "sqnr_db", "distribution"));
  specs.back().agg = sqbench::Agg::max;
  specs.back().where = {{"bits", "2|4"}};
  specs.push_back(plot("bars_long_labels", "bar", "layer_name", "mse", "bits"));
  specs.back().agg = sqbench::Agg::mean;
  specs.push_back(plot("bars_log", "bar", "quantizer", "accuracy", ""));
  specs.back().logy = true;
  specs.back().agg = sqbench::Agg::mean;
  specs.back().xlabel = "who";
  specs.push_back(plot("dashed", "line", "bits", "accuracy", "quantizer"));
  specs.back().dash = "distribution";
  specs.back().where = {{"distribution", "lap~^\\{}|gauss"}};
  specs.back().hlines = {{{"quantizer", "c%&#$"}},
                         {{"quantizer", "a_x"}, {"bits", "4"}, {"distribution", "gauss"}}};
  specs.back().agg = sqbench::Agg::mean;
  return specs;
}

// Settings every table or plot must refuse, each for its own reason, in the order the checks run.
std::vector<sqbench::TableSpec> bad_tables() {
  std::vector<sqbench::TableSpec> specs;
  specs.push_back(table("multi_and_cols", "quantizer", "bits", "mse, sqnr_db"));
  specs.push_back(table("no_cols", "quantizer", "", "mse"));
  specs.push_back(table("best_along", "quantizer", "bits", "mse"));
  specs.back().best_along = "diagonal";
  specs.push_back(table("multi_along_row", "quantizer", "", "mse, sqnr_db"));
  specs.back().best_along = "row";
  specs.push_back(table("no_row_col", "nope, quantizer", "bits", "mse"));
  specs.push_back(table("no_col_col", "quantizer", "bits, nope", "mse"));
  specs.push_back(table("no_value_col", "quantizer", "bits", "nope"));
  specs.push_back(table("no_where_col", "quantizer", "bits", "mse"));
  specs.back().where = {{"nope", "1"}};
  specs.push_back(table("no_rows", "quantizer", "bits", "mse"));
  specs.back().where = {{"bits", "3"}};
  specs.push_back(table("text_value", "quantizer", "bits", "distribution"));
  specs.push_back(table("keys_differ", "bits", "k", "mse"));
  return specs;
}

std::vector<sqbench::PlotSpec> bad_plots() {
  std::vector<sqbench::PlotSpec> specs;
  specs.push_back(plot("no_x", "line", "nope", "mse", ""));
  specs.push_back(plot("no_series", "line", "bits", "mse", "nope"));
  specs.push_back(plot("no_rows", "line", "bits", "mse", ""));
  specs.back().where = {{"bits", "3"}};
  specs.push_back(plot("text_x", "line", "quantizer", "mse", ""));
  specs.push_back(plot("keys_differ", "line", "bits", "mse", ""));
  specs.push_back(plot("nothing_drawable", "line", "bits", "custom_metric", "quantizer"));
  specs.back().logy = true;
  specs.back().where = {{"quantizer", "c%&#$"}};
  specs.push_back(plot("bars_nothing", "bar", "quantizer", "custom_metric", ""));
  specs.back().logy = true;
  specs.back().where = {{"quantizer", "c%&#$"}};
  specs.push_back(plot("no_dash", "line", "bits", "mse", "quantizer"));
  specs.back().dash = "nope";
  specs.back().agg = sqbench::Agg::mean;
  specs.push_back(plot("hline_inf", "line", "bits", "sqnr_db", "quantizer"));
  specs.back().hlines = {{{"source", "laplace b=1"}, {"bits", "2"}}};
  specs.back().agg = sqbench::Agg::min;
  return specs;
}

}  // namespace

TEST_CASE("every shipped table renders as CSV exactly as the golden file", "[table][golden]") {
  std::size_t tables = 0;
  for (const auto& e : fs::directory_iterator(fs::path(SQB_SOURCE_DIR) / "results")) {
    const fs::path dir = e.path();
    if (!fs::exists(dir / "config.ini")) continue;  // a script's output, not a sqbench run
    const sqbench::Config config = sqbench::load_results_config(dir);
    const sqbench::CsvTable results = sqbench::read_csv(dir / "results.csv");
    std::string csv;
    for (const sqbench::TableSpec& t : config.tables) {
      csv += "## " + t.id + "\n" +
             sqbench::render_table(results, t, sqbench::TableFormat::csv, {config.name, config.hash});
      ++tables;
    }
    if (!config.tables.empty()) check_golden("shipped_" + dir.filename().string() + ".csv.txt", csv);
  }
  CHECK(tables >= 20);
}

TEST_CASE("made-up tables render in markdown, LaTeX and CSV exactly as the golden files", "[table][golden]") {
  const sqbench::CsvTable t = made_up_results();
  const sqbench::Provenance prov{"made_up", "0123456789abcdef"};
  std::string md, tex, csv;
  for (const sqbench::TableSpec& spec : made_up_tables()) {
    INFO(spec.id);
    md += sqbench::render_table(t, spec, sqbench::TableFormat::md, prov) + "\n";
    tex += sqbench::render_table(t, spec, sqbench::TableFormat::latex, prov) + "\n";
    csv += "## " + spec.id + "\n" + sqbench::render_table(t, spec, sqbench::TableFormat::csv, prov);
  }
  for (const sqbench::TableSpec& spec : bad_tables()) {
    try {
      sqbench::render_table(t, spec, sqbench::TableFormat::md, prov);
      FAIL("table " << spec.id << " was not refused");
    } catch (const sqb::Error& e) {
      md += std::string("refused: ") + e.what() + "\n";
    }
  }
  check_golden("made_up_tables.md", md);
  check_golden("made_up_tables.tex", tex);
  check_golden("made_up_tables.csv.txt", csv);
}

TEST_CASE("made-up plots give gnuplot data and scripts exactly as the golden files", "[plot][golden]") {
  const sqbench::CsvTable t = made_up_results();
  std::string text;
  for (const sqbench::PlotSpec& spec : made_up_plots()) {
    INFO(spec.id);
    const sqbench::PlotScript s = sqbench::plot_script(t, spec, {"made_up", "0123456789abcdef"});
    text += "#### " + spec.id + ".dat\n" + s.dat + "#### " + spec.id + ".gp\n" + s.gp;
  }
  for (const sqbench::PlotSpec& spec : bad_plots()) {
    try {
      sqbench::plot_script(t, spec, {"made_up", "0123456789abcdef"});
      FAIL("plot " << spec.id << " was not refused");
    } catch (const sqb::Error& e) {
      text += std::string("refused: ") + e.what() + "\n";
    }
  }
  check_golden("made_up_plots.txt", text);
}

TEST_CASE("a table model holds the pivoted, combined and marked cells, with no output syntax", "[table]") {
  sqbench::CsvTable t;
  t.header = {"quantizer", "bits", "seed", "mse"};
  t.rows = {{"a", "2", "0", "0.10"}, {"a", "2", "1", "0.14"}, {"a", "4", "0", "0.01"},
            {"b", "2", "0", "0.11"}, {"b", "4", "0", "0.02"}, {"c", "2", "0", "0.30"}};
  sqbench::TableSpec spec = table("m", "quantizer", "bits", "mse");
  spec.spread = "std";
  const sqbench::TableModel m = sqbench::build_table(t, spec, {"cfg", "h"});
  CHECK(m.row_labels == std::vector<std::string>{"a", "b", "c"});
  CHECK(m.col_labels == std::vector<std::string>{"2", "4"});
  CHECK(m.col_title == "bits");
  REQUIRE(m.cells.size() == 3);
  // a at 2 bits: two seeds, mean 0.12, sample std sqrt(2 * 0.02^2 / 1) = 0.028284...
  REQUIRE(m.cells[0][0]);
  CHECK(m.cells[0][0]->value == Approx(0.12).epsilon(1e-12));
  CHECK(m.cells[0][0]->spread == Approx(std::sqrt(2 * 0.02 * 0.02)).epsilon(1e-9));
  CHECK(m.cells[0][0]->note == "mean ± std (n - 1) of 2 seeds");
  CHECK_FALSE(m.cells[0][0]->best);  // b's 0.11 is lower
  CHECK(m.cells[1][0]->best);
  CHECK(std::isnan(m.cells[1][0]->spread));  // one row: no spread
  CHECK(m.cells[0][1]->best);                // 0.01 < 0.02
  CHECK_FALSE(m.cells[2][1]);                // c has no 4-bit row
  CHECK(m.caption == "mse by quantizer and bits");
  CHECK(m.details.find("best per column in bold (lower is better)") != std::string::npos);
  CHECK(m.details.find("Config cfg (hash h).") != std::string::npos);
  // No renderer's syntax leaks into the model.
  for (const std::string& text : {m.caption, m.details})
    CHECK(text.find_first_of("*$\\|") == std::string::npos);
  // Along rows, each row's best: a's and b's at 4 bits, c's only cell.
  spec.best_along = "row";
  const sqbench::TableModel by_row = sqbench::build_table(t, spec, {"cfg", "h"});
  CHECK(by_row.cells[0][1]->best);
  CHECK_FALSE(by_row.cells[0][0]->best);
  CHECK(by_row.cells[1][1]->best);
  CHECK(by_row.cells[2][0]->best);
  // render_table is the model and the format's renderer.
  CHECK(sqbench::render_table(t, spec, sqbench::TableFormat::csv, {"cfg", "h"}) ==
        sqbench::render_csv(by_row));
  CHECK(sqbench::render_table(t, spec, sqbench::TableFormat::md, {"cfg", "h"}) ==
        sqbench::render_markdown(by_row));
  CHECK(sqbench::render_table(t, spec, sqbench::TableFormat::latex, {"cfg", "h"}) ==
        sqbench::render_latex(by_row));
}
