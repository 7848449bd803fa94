// Edge data read from .npy files through the `npy` source and quantized by every registered strategy: all
// zeros, a single element, subnormals, values at +-FLT_MAX. Nothing may overflow to Inf or become NaN:
// codebooks stay finite and sorted, reconstructions finite, and the metrics (accumulated in double) finite.

#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <limits>

#include "npy_helpers.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"

namespace {

struct Edge {
  std::string name;
  std::vector<std::size_t> shape;
  std::vector<float> values;
};

std::vector<Edge> edges() {
  const float dmin = std::numeric_limits<float>::denorm_min();
  std::vector<Edge> out;
  out.push_back({"zeros", {4, 8}, std::vector<float>(32, 0.0f)});
  out.push_back({"negative zeros and zeros", {2, 4}, {-0.0f, 0.0f, -0.0f, 0.0f, 0.0f, -0.0f, 0.0f, 0.0f}});
  out.push_back({"single element", {1}, {3.5f}});
  out.push_back({"0-D scalar", {}, {-1e-3f}});
  std::vector<float> sub;
  for (int i = -20; i < 20; ++i)
    sub.push_back(static_cast<float>(i) * dmin);
  out.push_back({"subnormals", {4, 10}, sub});
  std::vector<float> mixed = sub;
  for (float& v : mixed)
    v *= 1024.0f;
  mixed[0] = FLT_MIN;
  mixed[1] = -FLT_MIN;
  out.push_back({"subnormals and FLT_MIN", {4, 10}, mixed});
  out.push_back(
      {"+-FLT_MAX", {2, 4}, {FLT_MAX, -FLT_MAX, FLT_MAX, -FLT_MAX, -FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX}});
  std::vector<float> big;
  for (int i = 0; i < 40; ++i)
    big.push_back(FLT_MAX * (static_cast<float>(i) / 19.5f - 1.0f));
  big[7] = FLT_MAX;
  big[8] = -FLT_MAX;
  out.push_back({"spread over [-FLT_MAX, FLT_MAX]", {4, 10}, big});
  out.push_back({"FLT_MAX and its neighbour",
                 {1, 4},
                 {FLT_MAX, std::nextafter(FLT_MAX, 0.0f), FLT_MAX, std::nextafter(FLT_MAX, 0.0f)}});
  // Found by fuzz_spec: k-means at K = 5 on zeros, subnormals and values near 1e31 gave unsorted levels
  // (cluster means from differences of large prefix sums).
  out.push_back({"huge and tiny together (fuzz_spec finding)",
                 {1, 23},
                 {0.0f, 0.0f, 6.338253e29f, 7.5545857e31f, 9.314275e-39f, 2.3326216e-38f, 0.0f, 0.0f,
                  0.0f, 0.0f, 0.0f,         0.0f,          0.0f,          0.0f,           0.0f, 0.0f,
                  0.0f, 8.0f, 0.0f,         0.0f,          0.0f,          2.3507735e-38f, 0.0f}});
  return out;
}

}  // namespace

TEST_CASE("edge data from .npy files: every quantizer stays finite, metrics do not overflow", "[npy][edge]") {
  const auto all = edges();
  const auto e = GENERATE_COPY(from_range(all));
  sqbtest::ScratchDir dir;
  sqb::npy::write(dir.path / "e.npy", e.shape, e.values);
  const auto dist = sqb::make_source("npy path=e.npy", sqb::SourceContext{dir.path});
  const sqb::Tensor t = dist->draw(sqb::kWholeFile, 0);
  REQUIRE(t.size() == e.values.size());
  double lo = INFINITY, hi = -INFINITY;
  for (const float v : t.values) {
    lo = std::min(lo, static_cast<double>(v));
    hi = std::max(hi, static_cast<double>(v));
  }
  const bool constant = lo == hi;
  for (const sqb::QuantizerEntry& q : sqb::quantizer_registry()) {
    for (const std::size_t k : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{5},
                                std::size_t{16}, std::size_t{256}}) {
      for (const char* g : {"tensor", "channel"}) {
        INFO(e.name << " | " << q.name << " k=" << k << " " << g);
        std::unique_ptr<sqb::Quantizer> quant;
        try {
          quant = sqb::make_quantizer(std::string(q.name), {k, 0});
        } catch (const sqb::NotApplicable&) {
          continue;
        }
        const sqb::Quantized r = sqb::quantize(t, *quant, {.granularity = sqb::Granularity::parse(g)});
        for (const sqb::BlockDesign& b : r.designs) {
          const auto levels = b.codebook.levels();
          REQUIRE(levels.size() == k);
          for (const float l : levels)
            REQUIRE(std::isfinite(l));
          REQUIRE(std::is_sorted(levels.begin(), levels.end()));
        }
        for (const float v : r.decoded)
          REQUIRE(std::isfinite(v));
        const sqb::Metrics& m = r.metrics;
        CHECK(std::isfinite(m.mse));
        CHECK(m.mse >= 0);
        CHECK(std::isfinite(m.max_abs_err));
        CHECK(std::isfinite(m.variance));
        CHECK_FALSE(std::isnan(m.nmse));
        CHECK_FALSE(std::isnan(m.sqnr_db));
        CHECK(std::isfinite(m.entropy_bits));
        if (constant || t.size() == 1) CHECK(m.mse == 0);  // one distinct value is always exact
      }
    }
  }
}

TEST_CASE("kmeans sorted and naive agree on data spanning 1e-44 to 1e31 (fuzz_spec findings)",
          "[kmeans][edge]") {
  // Both found by fuzz_spec as unsorted codebooks: the sorted variant's prefix-sum means were swamped by the
  // rounding of the huge values' partial sums, and the naive variant sent 5.2e31 to the centroid 0 because
  // (x - 0)^2 == (x - 1608)^2 in double and the lower centroid won the tie.
  const std::vector<float> a = {0.0f, 0.0f, 6.338253e29f, 7.5545857e31f,  9.314275e-39f, 2.3326216e-38f,
                                0.0f, 0.0f, 0.0f,         0.0f,           0.0f,          0.0f,
                                0.0f, 0.0f, 0.0f,         0.0f,           0.0f,          8.0f,
                                0.0f, 0.0f, 0.0f,         2.3507735e-38f, 0.0f};
  const std::vector<float> b = {1.0f,         1.0f,          -9.147676e-41f, 0.0f,
                                8.82818e-44f, 8.96831e-44f,  2.0000153f,     2.0000153f,
                                2.0000153f,   5.1973984e31f, 1608.0089f,     5.0446745e-44f};
  for (const auto* x : {&a, &b}) {
    for (const std::size_t k : {std::size_t{3}, std::size_t{5}}) {
      for (const char* init : {"quantile", "uniform", "greedy", "kmeans++"}) {
        INFO("data " << (x == &a ? "a" : "b") << " k=" << k << " init=" << init);
        const sqb::Tensor t(1, x->size(), *x);
        std::vector<std::vector<float>> levels;
        for (const char* algo : {"sorted", "naive"}) {
          const auto q =
              sqb::make_quantizer(std::string("kmeans tol=0 algo=") + algo + " init=" + init, {k, 3});
          const sqb::Quantized r = sqb::quantize(t, *q, {.seed = 3});
          const auto l = r.designs[0].codebook.levels();
          levels.emplace_back(l.begin(), l.end());
        }
        REQUIRE(std::is_sorted(levels[0].begin(), levels[0].end()));
        REQUIRE(std::is_sorted(levels[1].begin(), levels[1].end()));
        for (std::size_t i = 0; i < k; ++i)
          CHECK_THAT(levels[0][i], Catch::Matchers::WithinRel(levels[1][i], 1e-6f));
      }
    }
  }
}
