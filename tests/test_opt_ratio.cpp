// The exact optimum a K-level codebook can reach (sqb::optimal_mse) and the opt_ratio column it gives sweeps.

#include <catch2/catch.hpp>

#include <cmath>

#include "cli_helpers.hpp"
#include "csv.hpp"
#include "helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/quantize.hpp"

using Catch::Matchers::WithinRel;

TEST_CASE("optimal_mse is the exact k-means optimum per block, weighted with weights, for any thread count",
          "[opt_ratio]") {
  const sqb::Tensor t = sqbtest::tensor(6, 3000, 51);
  for (const char* g : {"tensor", "channel", "group:500"}) {
    INFO(g);
    const sqb::QuantizeOptions opt{.granularity = sqb::Granularity::parse(g)};
    const double best = sqb::optimal_mse(t, 16, opt);
    // kmeans_optimal reaches it (up to its float32 levels); every other design is at or above it.
    CHECK_THAT(sqb::quantize(t, "kmeans_optimal", 16, opt).metrics.mse, WithinRel(best, 1e-6));
    for (const char* spec : {"kmeans", "lloyd_max", "uniform", "nf4", "cosine refine=3"})
      CHECK(sqb::quantize(t, spec, 16, opt).metrics.mse >= best * (1 - 1e-9));
    CHECK(sqb::optimal_mse(t, 16, {.granularity = opt.granularity, .threads = 3}) == best);
  }
  // Weighted: the optimum of sum w e^2 / sum w, reached by the weighted DP and not beaten by anything.
  std::vector<float> w(t.size());
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = t.values[i] * t.values[i];
  const sqb::QuantizeOptions wopt{.granularity = sqb::Granularity::parse("channel"), .weights = w};
  const double wbest = sqb::optimal_mse(t, 8, wopt);
  CHECK_THAT(sqb::quantize(t, "kmeans_optimal", 8, wopt).metrics.wmse, WithinRel(wbest, 1e-6));
  CHECK(sqb::quantize(t, "kmeans", 8, wopt).metrics.wmse >= wbest * (1 - 1e-9));
  CHECK(sqb::quantize(t, "kmeans_optimal", 8, wopt).metrics.mse >
        sqb::optimal_mse(t, 8, {.granularity = wopt.granularity}));
  // K at least the distinct values: 0; bad K and data are errors.
  CHECK(sqb::optimal_mse(sqb::Tensor(1, 4, {1, 2, 2, 3}), 3) == 0);
  CHECK_THROWS_AS(sqb::optimal_mse(t, 0), sqb::Error);
  CHECK_THROWS_WITH(sqb::optimal_mse(sqb::Tensor(1, 2, {1, NAN}), 2), Catch::Contains("non-finite"));
}

TEST_CASE(
    "opt_ratio = 1 adds mse / optimum to every cell, weighted with weights, empty above opt_ratio_max_n",
    "[opt_ratio][cli]") {
  sqbtest::TempDir dir;
  const auto cfg = dir.write("o.ini", R"(opt_ratio = 1
opt_ratio_max_n = 5000
[sweep]
quantizer = kmeans_optimal
quantizer = nf4
distribution = gaussian rows=2
distribution = gaussian rows=2 weights=square
n = 4000, 8000
k = 16
granularity = channel
[sweep.off]
opt_ratio = 0
quantizer = uniform
distribution = gaussian
n = 1000
k = 16
)");
  const sqbtest::Outcome o =
      sqbtest::run_cli("run " + cfg.string() + " --quiet --out " + (dir.path / "out").string());
  REQUIRE(o.status == 0);
  CHECK_THAT(o.output, Catch::Contains("opt_ratio is empty for 4 cells larger than opt_ratio_max_n = 5000"));
  const sqbench::CsvTable t = sqbench::read_csv(dir.path / "out" / "results.csv");
  const std::size_t q = *t.column("quantizer"), n = *t.column("n"), r = *t.column("opt_ratio");
  for (const auto& row : t.rows) {
    INFO(row[q] << " n=" << row[n]);
    if (row[q] == "uniform" || row[n] == "8000") {
      CHECK(row[r].empty());
    } else if (row[q] == "kmeans_optimal") {
      CHECK_THAT(std::stod(row[r]), WithinRel(1.0, 1e-6));
    } else {
      CHECK(std::stod(row[r]) > 1.0);
    }
  }
  CHECK_THAT(sqbtest::run_cli("run " + dir.write("b.ini",
                                                 "opt_ratio = maybe\n[sweep]\nquantizer = uniform\n"
                                                 "distribution = gaussian\nn = 10\nk = 2\n")
                                           .string())
                 .output,
             Catch::Contains("key 'opt_ratio'") && Catch::Contains("1|0|true|false|yes|no"));
}

TEST_CASE("kmeans and kmeans_optimal honour the call's weights, weighted=0 ignores them",
          "[opt_ratio][weights]") {
  const sqb::Tensor t = sqbtest::tensor(3, 2000, 52);
  std::vector<float> w(t.size());
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = std::exp(t.values[i]);  // importance rising with x
  const sqb::QuantizeOptions plain{.granularity = sqb::Granularity::parse("channel"), .seed = 4};
  sqb::QuantizeOptions weighted = plain;
  weighted.weights = w;
  for (const char* spec : {"kmeans", "kmeans algo=naive init=greedy", "kmeans_optimal"}) {
    INFO(spec);
    const sqb::Quantized a = sqb::quantize(t, spec, 8, weighted);
    const sqb::Quantized b = sqb::quantize(t, std::string(spec) + " weighted=0", 8, weighted);
    const sqb::Quantized c = sqb::quantize(t, spec, 8, plain);
    CHECK(b.decoded == c.decoded);  // weighted=0: the weights only enter the wmse column
    CHECK(a.metrics.wmse < b.metrics.wmse);
    CHECK(a.metrics.mse > b.metrics.mse);
    CHECK(std::isnan(c.metrics.wmse));
  }
}
