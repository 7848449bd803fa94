// Per-column importance (QuantizeOptions::column_weights) is the full-size weights it stands for: every
// quantizer in the registry, at every granularity (blocks within a row and blocks spanning rows), gives the
// same codebooks, codes, reconstruction, metrics and optimal MSE bit for bit.

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <random>

#include "sqb/error.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

namespace {

bool same_bits(double a, double b) {
  return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b) || (std::isnan(a) && std::isnan(b));
}

}  // namespace

TEST_CASE("column weights: equal to the equivalent full-shape weights for every quantizer and granularity",
          "[column-weights][quantize]") {
  const std::size_t rows = 6, cols = 40;
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(rows * cols), v(cols), full(rows * cols);
  for (float& a : x)
    a = g(rng);
  for (std::size_t c = 0; c < cols; ++c)
    v[c] = std::exp(g(rng));  // heavy-ish tail, as activation statistics are
  v[3] = 0.0f;                // a dead channel
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c)
      full[r * cols + c] = v[c];
  const sqb::TensorView t(rows, cols, x);
  std::size_t compared = 0;
  for (const sqb::QuantizerEntry& e : sqb::quantizer_registry()) {
    // group:16 crosses rows (40 = 2.5 groups) and group:8 does not; tensor spans every row.
    for (const char* gran : {"tensor", "channel", "group:8", "group:16"}) {
      INFO(e.name << " at " << gran);
      sqb::QuantizeOptions a, b;
      a.granularity = b.granularity = sqb::Granularity::parse(gran);
      a.seed = b.seed = 5;
      a.weights = full;
      b.column_weights = v;
      sqb::Quantized qa, qb;
      try {
        qa = sqb::quantize(t, std::string(e.name), 4, a);
      } catch (const sqb::Error&) {
        // A quantizer that cannot serve K = 4 here must refuse column weights the same way.
        CHECK_THROWS_AS(sqb::quantize(t, std::string(e.name), 4, b), sqb::Error);
        continue;
      }
      qb = sqb::quantize(t, std::string(e.name), 4, b);
      REQUIRE(qa.designs.size() == qb.designs.size());
      for (std::size_t i = 0; i < qa.designs.size(); ++i) {
        const auto la = qa.designs[i].codebook.levels(), lb = qb.designs[i].codebook.levels();
        CHECK(std::equal(la.begin(), la.end(), lb.begin(), lb.end()));
      }
      CHECK(qa.decoded == qb.decoded);
      CHECK(same_bits(qa.metrics.wmse, qb.metrics.wmse));
      CHECK(same_bits(qa.metrics.mse, qb.metrics.mse));
      CHECK(same_bits(sqb::optimal_mse(t, 4, a), sqb::optimal_mse(t, 4, b)));
      ++compared;
    }
  }
  CHECK(compared >= 20);
}

TEST_CASE("column weights: the weighting changes a weighted design exactly as per-element weights do",
          "[column-weights][quantize]") {
  const std::size_t rows = 4, cols = 32;
  std::vector<float> x(rows * cols), v(cols, 1.0f);
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = std::sin(static_cast<float>(i) * 0.7f);
  for (std::size_t c = 0; c < 4; ++c)
    v[c] = 1000.0f;
  sqb::QuantizeOptions plain, weighted;
  weighted.column_weights = v;
  const sqb::TensorView t(rows, cols, x);
  const auto qa = sqb::quantize(t, "kmeans", 4, plain);
  const auto qb = sqb::quantize(t, "kmeans", 4, weighted);
  CHECK(qa.decoded != qb.decoded);  // the heavy columns pull the codebook
  CHECK(std::isnan(qa.metrics.wmse));
  CHECK(std::isfinite(qb.metrics.wmse));
}

TEST_CASE("column weights: a wrong length, a negative or non-finite entry, or both kinds of weights is an error",
          "[column-weights][quantize]") {
  std::vector<float> x(3 * 4, 1.0f), x2(12);
  for (std::size_t i = 0; i < x2.size(); ++i)
    x2[i] = static_cast<float>(i);
  const sqb::TensorView t(3, 4, x2);
  sqb::QuantizeOptions o;
  std::vector<float> three = {1, 1, 1};
  o.column_weights = three;
  CHECK_THROWS_WITH(sqb::quantize(t, "kmeans", 2, o),
                    Catch::Contains("column weights: 3 values for a tensor of 4 columns"));
  std::vector<float> neg = {1, -1, 1, 1};
  o.column_weights = neg;
  CHECK_THROWS_WITH(sqb::quantize(t, "kmeans", 2, o), Catch::Contains("weight of column 1 is negative"));
  std::vector<float> nan = {1, 1, NAN, 1};
  o.column_weights = nan;
  CHECK_THROWS_WITH(sqb::quantize(t, "kmeans", 2, o), Catch::Contains("column weights"));
  std::vector<float> ok = {1, 1, 1, 1};
  o.column_weights = ok;
  o.weights = x;
  CHECK_THROWS_WITH(sqb::quantize(t, "kmeans", 2, o), Catch::Contains("not both"));
}
