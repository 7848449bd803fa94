// Per-column importance (QuantizeOptions::column_weights) is the full-size weights it stands for: every
// quantizer in the registry, at every granularity (blocks within a row and blocks spanning rows), gives the
// same codebooks, codes, reconstruction, metrics and optimal MSE bit for bit.

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <random>

#include "helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

namespace {

bool same_bits(double a, double b) {
  return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b) ||
         (std::isnan(a) && std::isnan(b));
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

TEST_CASE("column weights: measure chunks that begin inside a row and span many rows sum as full weights do",
          "[column-weights][quantize]") {
  // 1000 x 40 values: a measure chunk (2^15 values of whole blocks) at group:16 or tensor granularity ends
  // inside a row, so the next one's column weights are repeated from a column other than 0.
  const std::size_t rows = 1000, cols = 40;
  std::mt19937 rng(12);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(rows * cols), v(cols), full(rows * cols);
  for (float& a : x)
    a = g(rng);
  for (std::size_t c = 0; c < cols; ++c)
    v[c] = std::exp(g(rng));
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c)
      full[r * cols + c] = v[c];
  const sqb::TensorView t(rows, cols, x);
  for (const char* spec : {"uniform", "uniform symmetric=1", "lloyd_max"}) {
    for (const char* gran : {"tensor", "channel", "group:16"}) {
      INFO(spec << " at " << gran);
      sqb::QuantizeOptions a, b;
      a.granularity = b.granularity = sqb::Granularity::parse(gran);
      a.threads = 1;
      b.threads = 2;
      a.weights = full;
      b.column_weights = v;
      const sqb::Quantized qa = sqb::quantize(t, spec, 16, a), qb = sqb::quantize(t, spec, 16, b);
      CHECK(qa.decoded == qb.decoded);
      CHECK(same_bits(qa.metrics.wmse, qb.metrics.wmse));
      CHECK(same_bits(qa.metrics.mse, qb.metrics.mse));
    }
  }
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

TEST_CASE(
    "column weights: a wrong length, a negative or non-finite entry, or both kinds of weights is an error",
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

TEST_CASE(
    "keep_decoded = false: the same codes, codebooks and metrics bit for bit, and decode() from them "
    "gives the reconstruction",
    "[column-weights][quantize][keep-decoded]") {
  // 40 x 1000: tensor granularity is one block longer than a measure chunk (stage by stage), the others
  // whole blocks per chunk (one pass); group:16 blocks cross rows (1000 = 62.5 groups of 16).
  const std::size_t rows = 40, cols = 1000;
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(rows * cols), v(cols);
  for (float& a : x)
    a = g(rng);
  for (float& a : v)
    a = std::exp(g(rng));
  const sqb::TensorView t(rows, cols, x);
  for (const char* spec : {"kmeans", "uniform"}) {
    for (const char* gran : {"tensor", "channel", "group:8", "group:16"}) {
      for (const bool weighted : {false, true}) {
        INFO(spec << " at " << gran << (weighted ? " with column weights" : ""));
        sqb::QuantizeOptions a;
        a.granularity = sqb::Granularity::parse(gran);
        a.seed = 9;
        a.threads = 2;
        a.coded = true;
        if (weighted) a.column_weights = v;
        sqb::QuantizeOptions b = a;
        b.keep_decoded = false;
        const auto q = sqb::make_quantizer(spec, {16, 9});
        sqb::Quantized qa, qb;
        sqb::quantize_into(t, *q, a, qa);
        sqb::quantize_into(t, *q, b, qb);
        CHECK(qb.decoded.empty());
        REQUIRE(qa.designs.size() == qb.designs.size());
        bool same_codebooks = true;
        for (std::size_t i = 0; i < qa.designs.size(); ++i) {
          const auto la = qa.designs[i].codebook.levels(), lb = qb.designs[i].codebook.levels();
          same_codebooks = same_codebooks && std::equal(la.begin(), la.end(), lb.begin(), lb.end());
        }
        CHECK(same_codebooks);
        const auto codes_of = [](const sqb::Quantized& r) {
          std::vector<std::size_t> c(r.codes.size());
          for (std::size_t i = 0; i < c.size(); ++i)
            c[i] = r.codes[i];
          return c;
        };
        CHECK(codes_of(qa) == codes_of(qb));
        for (const auto& [fa, fb] : {std::pair{qa.metrics.mse, qb.metrics.mse},
                                     {qa.metrics.wmse, qb.metrics.wmse},
                                     {qa.metrics.nmse, qb.metrics.nmse},
                                     {qa.metrics.max_abs_err, qb.metrics.max_abs_err},
                                     {qa.metrics.coded_bits, qb.metrics.coded_bits},
                                     {qa.metrics.entropy_bits, qb.metrics.entropy_bits}})
          CHECK(same_bits(fa, fb));
        // The reconstruction a streaming caller decodes block by block is the kept one.
        std::vector<float> again(rows * cols);
        qb.codes.visit([&](auto c) {
          for (std::size_t i = 0; i < qb.blocks.size(); ++i) {
            const sqb::Block& blk = qb.blocks[i];
            sqb::decode(qb.designs[i].codebook, c.subspan(blk.offset, blk.length),
                        std::span<float>(again).subspan(blk.offset, blk.length));
          }
        });
        CHECK(again == sqbtest::vec(qa.decoded));
      }
    }
  }
}
