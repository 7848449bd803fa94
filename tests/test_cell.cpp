// sqb::describe and sqb::evaluate: what a cell says before any work agrees with what its evaluation does,
// and the CLI's plan takes its columns and memory estimates from them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include "config.hpp"
#include "memory.hpp"
#include "plan.hpp"
#include "sqb/cell.hpp"
#include "sqb/error.hpp"
#include "sqb/granularity.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/registry.hpp"

namespace {

const std::string kData = std::string(SQB_SOURCE_DIR) + "/tests/data/";

std::set<sqb::Col> filled(const sqb::CellFigures& f) {
  std::set<sqb::Col> out;
  for (const sqb::Figure& x : f.figures) {
    if (!std::isnan(x.value)) out.insert(x.column);
  }
  return out;
}

// The memory estimate's data-dependent terms from the drawn tensor itself (make_blocks on its real shape).
double reference_bytes(const sqb::Cell& c, const sqb::Tensor& t, const sqb::Quantizer& q, bool evaluates) {
  const auto blocks = sqb::make_blocks(t.rows, t.cols, sqb::Granularity::parse(c.granularity));
  std::size_t largest = 0;
  for (const sqb::Block& b : blocks)
    largest = std::max(largest, b.length);
  const double n = static_cast<double>(t.size()), k = static_cast<double>(c.k),
               nb = static_cast<double>(blocks.size());
  // coded_bits' rANS stream when measured; phi_log's own streams always; the larger of the two.
  const double b4 = sqb::index_bits(c.k) / 4.0;
  const double entropy_bytes =
      std::max(c.coded ? 0.5 + b4 : 0.0, c.quantizer.starts_with("phi_log") ? 6.5 + b4 : 0.0);
  double total = 9 * n + (c.k > 256 ? n : 0) + nb * (12 * k + 96) +
                 q.design_bytes_per_value() * static_cast<double>(largest) + n * entropy_bytes;
  if (evaluates) total += 6 * n + nb * (12 * k + 96);
  return total;
}

}  // namespace

TEST_CASE("describe's shape, columns and memory agree with the cell's evaluation", "[cell]") {
  const std::vector<std::string> sources = {
      "gaussian rows=4 weights=square", "laplace", "npy path=" + kData + "conv_oihw.npy layout=oihw",
      "npy path=" + kData + "kernel_hwio.npy layout=hwio", "rotated d=8"};
  const std::vector<std::string> quantizers = {"kmeans", "phi_log", "nf4", "uniform symmetric=1"};
  for (const std::string& src : sources) {
    const auto source = sqb::make_source(src);
    const bool file = src.starts_with("npy");
    for (const std::size_t n : {file ? sqb::kWholeFile : std::size_t{512}, std::size_t{64}}) {
      for (const char* g : {"tensor", "channel", "group:3"}) {
        for (const std::string& qs : quantizers) {
          for (const bool opt : {false, true}) {
            const sqb::Cell cell{src, qs, n, 16, g, 7, opt, opt};
            CAPTURE(src, n, g, qs, opt);
            const sqb::CellDescription d = sqb::describe(cell);
            REQUIRE(d.applies);
            const sqb::Tensor t = source->draw(n, cell.seed);
            CHECK(d.shape.rows == t.rows);
            CHECK(d.shape.cols == t.cols);
            CHECK(d.shape.weighted == !t.weights.empty());
            CHECK(d.shape.from_file() == file);
            const sqb::CellFigures f = sqb::evaluate(cell, t);
            const std::set<sqb::Col> described(d.columns.begin(), d.columns.end());
            // Every filled column is described; a described one stays empty only where the source's
            // evaluation has no value for this quantizer (the rotated source's exact D_mse needs Lloyd-Max).
            for (const sqb::Col col : filled(f))
              CHECK(described.contains(col));
            const auto* e = sqb::part_of<sqb::EvaluatesResult>(*source);
            for (const sqb::Col col : described) {
              if (filled(f).contains(col)) continue;
              CHECK(e != nullptr);
              if (e == nullptr) continue;
              const std::vector<sqb::Col> ev = e->evaluation_columns();
              CHECK(std::find(ev.begin(), ev.end(), col) != ev.end());
            }
            CHECK(std::is_sorted(d.columns.begin(), d.columns.end()));
            const auto q = sqb::make_quantizer(qs, {16, 7});
            const double ref =
                reference_bytes(cell, t, *q, sqb::part_of<sqb::EvaluatesResult>(*source) != nullptr);
            const double read =
                file ? 16.0 * static_cast<double>(d.shape.file_values) + 4.0 * static_cast<double>(t.size())
                     : 0.0;
            CHECK(d.memory.bytes == static_cast<std::uint64_t>(std::max(ref, read)));
          }
        }
      }
    }
  }
}

TEST_CASE("evaluate equals quantize plus the exact optimum, and leaves opt_ratio empty above the limit",
          "[cell]") {
  const auto source = sqb::make_source("gaussian rows=8");
  const sqb::Tensor t = source->draw(4096, 3);
  const sqb::Cell cell{"gaussian rows=8", "kmeans", 4096, 8, "channel", 3, true, false};
  const sqb::CellFigures f = sqb::evaluate(cell, t);
  sqb::QuantizeOptions o = sqb::cell_options(cell, t);
  const sqb::Quantized r = sqb::quantize(t, "kmeans", 8, o);
  const auto value = [&](sqb::Col c) {
    for (const sqb::Figure& x : f.figures) {
      if (x.column == c) return x.value;
    }
    FAIL("no column " << sqb::column_name(c));
    return 0.0;
  };
  CHECK(value(sqb::Col::mse) == r.metrics.mse);
  CHECK(value(sqb::Col::blocks) == 8);
  CHECK(value(sqb::Col::opt_ratio) == r.metrics.mse / sqb::optimal_mse(t, 8, o));
  CHECK(value(sqb::Col::opt_ratio) >= 1.0);
  CHECK(std::isnan(value(sqb::Col::coded_bits)));
  CHECK_FALSE(f.opt_ratio_skipped);

  sqb::EvaluateOptions small;
  small.opt_ratio_max_n = 4095;
  const sqb::CellFigures g = sqb::evaluate(cell, t, small);
  CHECK(g.opt_ratio_skipped);
  for (const sqb::Figure& x : g.figures) {
    if (x.column == sqb::Col::opt_ratio) CHECK(std::isnan(x.value));
  }
}

TEST_CASE("describe says when a quantizer does not apply, and refuses a block the strategy would refuse",
          "[cell]") {
  const sqb::CellDescription nf4 = sqb::describe({"gaussian", "nf4", 1000, 4});
  CHECK_FALSE(nf4.applies);
  CHECK(nf4.why_not == sqb::not_applicable("nf4", 4));
  CHECK_FALSE(nf4.why_not.empty());
  CHECK(sqb::not_applicable("nf4", 16).empty());
  CHECK_THROWS_WITH(sqb::describe({"gaussian", "kmeans_optimal max_table_gib=0.001", 200000, 256}),
                    Catch::EndsWith("(it would stop the run when the cell starts)"));
  CHECK_THROWS_AS(sqb::describe({"gaussian rows=3", "kmeans", 1000, 4}), sqb::Error);  // n % rows
}

TEST_CASE("the plan's columns and memory estimates are the cells' descriptions", "[cell]") {
  for (const char* name : {"quick", "grphi", "weighted", "turboquant", "real", "coded", "phi_rho"}) {
    CAPTURE(name);
    const sqbench::Config config =
        sqbench::load_config(std::string(SQB_SOURCE_DIR) + "/configs/" + name + ".ini");
    const sqbench::Plan plan = sqbench::make_plan(config);
    std::set<sqb::Col> figures;
    for (const sqbench::Cell& c : plan.cells) {
      if (c.is_task()) continue;
      const sqb::CellDescription d = plan.describe(c, 2);
      CHECK(d.applies);
      for (const sqb::Col col : d.columns) {
        CHECK(std::find(plan.columns.begin(), plan.columns.end(), col) != plan.columns.end());
        if (sqb::column_info(col).kind == sqb::ColumnKind::figure) figures.insert(col);
      }
      CHECK(sqbench::estimate_cell_memory(plan, c, 2).bytes == d.memory.bytes);
    }
    for (const sqb::Col col : plan.columns) {
      if (sqb::column_info(col).kind == sqb::ColumnKind::figure) CHECK(figures.contains(col));
    }
  }
}
