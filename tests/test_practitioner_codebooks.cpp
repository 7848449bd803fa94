// The codebooks practitioners ship (nf4, fp4, normal_quantile, quantile) and their block scales, against
// published numbers (tests/data/REFERENCE.md, bitsandbytes, OCP MX v1.0) and against slow references:
// Boost.Math quantiles, a brute-force empirical quantile, a brute-force fine grid over the scale.

#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <boost/math/distributions/normal.hpp>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "detail/scale_search.hpp"
#include "helpers.hpp"
#include "quantizers/table_codebook.hpp"
#include "sqb/metrics.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {

using Run = sqbtest::Run;
using sqbtest::quantize;

std::vector<double> as_double(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}

// MSE of a block quantized with the float32 levels float(T_i * s), through the shared encoder/decoder: the
// brute-force reference evaluation (no sorting, no cell walk).
double mse_at_scale(const std::vector<float>& block, const std::vector<float>& table, double s) {
  std::vector<float> levels(table.size());
  for (std::size_t i = 0; i < table.size(); ++i)
    levels[i] =
        static_cast<float>(static_cast<double>(table[i]) * static_cast<double>(static_cast<float>(s)));
  const sqb::Codebook cb = sqb::Codebook::nearest(levels);
  std::vector<std::uint16_t> codes(block.size());
  sqb::encode(cb, block, std::span<std::uint16_t>(codes));
  double sse = 0;
  for (std::size_t i = 0; i < block.size(); ++i) {
    const double d = static_cast<double>(block[i]) - static_cast<double>(cb.levels()[codes[i]]);
    sse += d * d;
  }
  return sse / static_cast<double>(block.size());
}

// bitsandbytes' published NF4 values (bitsandbytes/functional.py, the NF4 code; tests/data/REFERENCE.md):
// the float32 values printed as doubles, so parsing then rounding to float32 is exact.
const double kNf4Published[16] = {-1.0,
                                  -0.6961928009986877,
                                  -0.5250730514526367,
                                  -0.39491748809814453,
                                  -0.28444138169288635,
                                  -0.18477343022823334,
                                  -0.09105003625154495,
                                  0.0,
                                  0.07958029955625534,
                                  0.16093020141124725,
                                  0.24611230194568634,
                                  0.33791524171829224,
                                  0.44070982933044434,
                                  0.5626170039176941,
                                  0.7229568362236023,
                                  1.0};

}  // namespace

TEST_CASE("nf4 table built from Boost.Math's normal quantile equals bitsandbytes' values bit for bit",
          "[nf4][reference]") {
  const std::vector<float> t = sqb::quantizers::nf4_table();
  REQUIRE(t.size() == 16);
  for (std::size_t i = 0; i < 16; ++i) {
    INFO("i = " << i << ": built " << t[i] << ", published " << kNf4Published[i]);
    CHECK(std::bit_cast<std::uint32_t>(t[i]) ==
          std::bit_cast<std::uint32_t>(static_cast<float>(kNf4Published[i])));
  }
}

TEST_CASE("linspace_f32 matches torch.linspace float32 semantics", "[nf4]") {
  // Exact small cases: both ends hit exactly, the halves are computed from their own end.
  const std::vector<float> a = sqb::quantizers::linspace_f32(0.0f, 1.0f, 5);
  CHECK(a == std::vector<float>{0.0f, 0.25f, 0.5f, 0.75f, 1.0f});
  const std::vector<float> b = sqb::quantizers::linspace_f32(0.9677083f, 0.5f, 9);
  CHECK(b.front() == 0.9677083f);
  CHECK(b.back() == 0.5f);
  const float step = (0.5f - 0.9677083f) / 8.0f;
  CHECK(b[3] == 0.9677083f + step * 3.0f);
  CHECK(b[6] == 0.5f - step * 2.0f);
}

TEST_CASE("fp4 is the OCP MX E2M1 value set: 16 codes, 15 distinct values, reproduced exactly at scale 6",
          "[fp4][reference]") {
  const std::vector<float> v = sqb::quantizers::e2m1_values();
  const std::vector<float> expected = {-6, -4, -3, -2, -1.5, -1, -0.5, -0.0f, 0, 0.5, 1, 1.5, 2, 3, 4, 6};
  REQUIRE(v.size() == 16);
  for (std::size_t i = 0; i < 16; ++i)
    CHECK(std::bit_cast<std::uint32_t>(v[i]) == std::bit_cast<std::uint32_t>(expected[i]));
  CHECK(std::set<float>(v.begin(), v.end()).size() == 15);  // -0 == +0
  const std::vector<float> t = sqb::quantizers::fp4_table();
  CHECK(t.back() == 1.0f);
  CHECK(t.front() == -1.0f);
  // A block whose absmax is 6 gets exactly the E2M1 values as levels.
  const sqb::Tensor data(1, 4, {6.0f, -1.2f, 0.7f, 2.9f});
  const Run r = quantize("fp4", 16, data);
  const auto lv = r.designs[0].codebook.levels();
  for (std::size_t i = 0; i < 16; ++i)
    CHECK(lv[i] == expected[i]);
  // and reconstructs each value to its nearest E2M1 value, sign of zero kept: -0.2 -> -0, 0.2 -> +0.
  const sqb::Tensor small(1, 3, {6.0f, -0.2f, 0.2f});
  const sqb::Quantized s = sqb::quantize(small, "fp4", 16);
  CHECK(s.codes[1] == 7);
  CHECK(s.codes[2] == 8);
}

TEST_CASE("nf4 and fp4 serve only K = 16 and say so", "[nf4][fp4]") {
  const std::string name = GENERATE("nf4", "fp4");
  for (const std::size_t k : {1, 2, 4, 8, 15, 17, 32, 256}) {
    INFO(name << " K=" << k);
    CHECK_THROWS_AS(sqb::make_quantizer(name, {k, 0}), sqb::NotApplicable);
    CHECK_THROWS_WITH(sqb::make_quantizer(name, {k, 0}),
                      Catch::Contains("K = 16") && Catch::Contains("K = " + std::to_string(k)));
  }
  CHECK_NOTHROW(sqb::make_quantizer(name, {16, 0}));
  CHECK_THROWS_AS(sqb::make_quantizer("normal_quantile", {1, 0}), sqb::NotApplicable);
}

TEST_CASE("scale parameters: valid choices per entry, errors list them", "[nf4][quantile]") {
  CHECK_NOTHROW(sqb::make_quantizer("nf4 scale=mse", {16, 0}));
  CHECK_NOTHROW(sqb::make_quantizer("fp4 scale=std", {16, 0}));
  CHECK_NOTHROW(sqb::make_quantizer("normal_quantile scale=absmax", {8, 0}));
  CHECK_NOTHROW(sqb::make_quantizer("quantile scale=none", {8, 0}));
  CHECK_THROWS_WITH(sqb::make_quantizer("nf4 scale=max", {16, 0}),
                    Catch::Contains("scale") && Catch::Contains("absmax|std|mse"));
  CHECK_THROWS_WITH(sqb::make_quantizer("quantile scale=std", {16, 0}),
                    Catch::Contains("scale") && Catch::Contains("none|absmax|mse"));
}

TEST_CASE("block-wise absmax (bitsandbytes' default NF4, group:64): levels are table * max|w| per block",
          "[nf4][fp4][normal_quantile]") {
  const std::string name = GENERATE("nf4", "fp4", "normal_quantile");
  const std::size_t k = 16;
  const std::vector<float> table = name == "nf4"   ? sqb::quantizers::nf4_table()
                                   : name == "fp4" ? sqb::quantizers::fp4_table()
                                                   : sqb::quantizers::normal_quantile_table(k);
  const sqb::Tensor t = sqbtest::tensor(3, 200, 31);  // 4 groups per row, the last one 8 long
  const Run r = quantize(name, k, t, "group:64");
  REQUIRE(r.blocks.size() == 12);
  CHECK(r.side.per_block == 1);
  // storage: 4 index bits + one float32 scale per block (12 * 32 bits over 600 values)
  CHECK_THAT(r.metrics.storage_bits, WithinRel(4.0 + 12.0 * 32.0 / 600.0, 1e-12));
  for (std::size_t b = 0; b < r.blocks.size(); ++b) {
    const sqb::Block& blk = r.blocks[b];
    float absmax = 0;
    for (std::size_t i = 0; i < blk.length; ++i)
      absmax = std::max(absmax, std::fabs(t.values[blk.offset + i]));
    const auto lv = r.designs[b].codebook.levels();
    INFO(name << " block " << b);
    for (std::size_t i = 0; i < k; ++i)
      CHECK(lv[i] == static_cast<float>(static_cast<double>(table[i]) * static_cast<double>(absmax)));
    CHECK(std::max(std::fabs(lv.front()), std::fabs(lv.back())) == absmax);
  }
}

TEST_CASE("normal_quantile levels are Boost.Math's N(0,1) quantiles at the bin middles (i + 1/2) / K",
          "[normal_quantile][reference]") {
  const std::size_t k = GENERATE(2, 3, 4, 15, 16, 255, 256, 4096);
  const boost::math::normal n01;
  const std::vector<float> t = sqb::quantizers::normal_quantile_table(k);
  REQUIRE(t.size() == k);
  const double kd = static_cast<double>(k);
  const double top = boost::math::quantile(n01, (kd - 0.5) / kd);
  for (std::size_t i = 0; i < k; ++i) {
    const double expected = boost::math::quantile(n01, (static_cast<double>(i) + 0.5) / kd) / top;
    INFO("K=" << k << " i=" << i);
    CHECK_THAT(t[i], WithinAbs(expected, 1e-7) || WithinRel(expected, 2e-7));
    CHECK(t[i] == -t[k - 1 - i]);  // exactly antisymmetric
  }
  CHECK(t.back() == 1.0f);
  if (k % 2 == 1) CHECK(t[k / 2] == 0.0f);
}

TEST_CASE("quantile levels equal a brute-force empirical quantile (numpy's linear method)", "[quantile]") {
  const std::size_t n = GENERATE(1, 2, 3, 7, 100, 1001);
  const std::size_t k = GENERATE(1, 2, 3, 16, 256);
  std::vector<float> x = sqbtest::draw("laplace", n, 40 + n);
  // Ties on purpose: a quarter of the values repeated.
  for (std::size_t i = 0; i + 4 <= n; i += 4)
    x[i + 1] = x[i];
  const sqb::Tensor t(1, n, x);
  const Run r = quantize("quantile", k, t);
  const auto lv = r.designs[0].codebook.levels();
  REQUIRE(lv.size() == k);
  // Reference: the j-th order statistic by counting (the value with fewer than j+1 values below it and at
  // least j+1 at or below), then interpolation at h = (N - 1) p, p = (i + 1/2) / K.
  auto order_stat = [&](std::size_t j) {
    for (const float v : x) {
      std::size_t below = 0, at_or_below = 0;
      for (const float w : x) {
        below += w < v;
        at_or_below += w <= v;
      }
      if (below <= j && j < at_or_below) return static_cast<double>(v);
    }
    FAIL("no order statistic " << j);
    return 0.0;
  };
  float span = 0;
  for (const float v : x)
    span = std::max(span, std::fabs(v));
  for (std::size_t i = 0; i < k; ++i) {
    const double h = static_cast<double>(n - 1) * (static_cast<double>(i) + 0.5) / static_cast<double>(k);
    const auto lo = static_cast<std::size_t>(std::floor(h));
    const double frac = h - static_cast<double>(lo);
    const double expected =
        lo + 1 < n ? order_stat(lo) + frac * (order_stat(lo + 1) - order_stat(lo)) : order_stat(lo);
    INFO("N=" << n << " K=" << k << " i=" << i);
    CHECK_THAT(lv[i], WithinAbs(expected, 1e-6 * span));
  }
  CHECK(r.side.per_block == k);  // a learned codebook: K float32 values per block
}

TEST_CASE("gaussian_table_mse reproduces Lloyd-Max distortions of N(0,1) (REFERENCE.md)",
          "[scale][reference]") {
  // b = 1: levels +-sqrt(2/pi), MSE 1 - 2/pi exactly.
  const std::vector<double> one = {-1.0, 1.0};
  CHECK_THAT(sqb::detail::gaussian_table_mse(one, std::sqrt(2.0 / M_PI)), WithinRel(1.0 - 2.0 / M_PI, 1e-13));
  // and the best scale of {-1, 1} is sqrt(2/pi).
  const sqb::detail::ScaleFit fit1 = sqb::detail::best_gaussian_scale(one);
  CHECK_THAT(fit1.scale, WithinRel(std::sqrt(2.0 / M_PI), 1e-7));
  CHECK_THAT(fit1.value, WithinRel(1.0 - 2.0 / M_PI, 1e-12));
  // b = 2 and b = 4 Lloyd-Max levels (../shared/reference/lloyd_max_tables.txt), at scale 1.
  const std::vector<double> b2 = {-1.5104176085, -0.452780034636, 0.452780034636, 1.5104176085};
  CHECK_THAT(sqb::detail::gaussian_table_mse(b2, 1.0), WithinRel(0.117481847829329, 1e-9));
  const double pos4[8] = {0.128395029851, 0.38804829949, 0.656759118532, 0.942340456487,
                          1.25623119735,  1.61804638602, 2.06901722653,  2.732589571};
  std::vector<double> b4;
  for (int i = 7; i >= 0; --i)
    b4.push_back(-pos4[i]);
  for (const double v : pos4)
    b4.push_back(v);
  CHECK_THAT(sqb::detail::gaussian_table_mse(b4, 1.0), WithinRel(0.00950100800819189, 1e-8));
  // A Lloyd-Max codebook is a fixed point for its own scale: the best scale of the b = 4 table is 1.
  const sqb::detail::ScaleFit fit4 = sqb::detail::best_gaussian_scale(b4);
  CHECK_THAT(fit4.scale, WithinRel(1.0, 1e-5));
}

TEST_CASE("best Gaussian scale: NF4 0.0098993 and FP4 0.0126849 (REFERENCE.md), analytic",
          "[nf4][fp4][scale][reference]") {
  const sqb::detail::ScaleFit nf4 = sqb::detail::best_gaussian_scale(as_double(sqb::quantizers::nf4_table()));
  CHECK_THAT(nf4.value, WithinRel(0.0098993, 1e-5));
  const sqb::detail::ScaleFit fp4 = sqb::detail::best_gaussian_scale(as_double(sqb::quantizers::fp4_table()));
  CHECK_THAT(fp4.value, WithinRel(0.0126849, 1e-5));
}

TEST_CASE("scale=mse on 1e6 N(0,1) samples: NF4 and FP4 within 1% of REFERENCE.md's best-scale MSE",
          "[nf4][fp4][scale][reference]") {
  const sqb::Tensor t = sqbtest::tensor(1, 1000000, 0);
  CHECK_THAT(quantize("nf4 scale=mse", 16, t).metrics.mse, WithinRel(0.0098993, 0.01));
  CHECK_THAT(quantize("fp4 scale=mse", 16, t).metrics.mse, WithinRel(0.0126849, 0.01));
  // scale=std is sigma times the table's Gaussian-optimal scale: on Gaussian data it reaches the same MSE.
  CHECK_THAT(quantize("nf4 scale=std", 16, t).metrics.mse, WithinRel(0.0098993, 0.01));
  CHECK_THAT(quantize("fp4 scale=std", 16, t).metrics.mse, WithinRel(0.0126849, 0.01));
}

TEST_CASE("scale=std: levels are table * (RMS of the block * the table's Gaussian-optimal scale)",
          "[scale]") {
  const std::string name = GENERATE("nf4", "fp4", "normal_quantile");
  const std::size_t k = 16;
  const std::vector<float> table = name == "nf4"   ? sqb::quantizers::nf4_table()
                                   : name == "fp4" ? sqb::quantizers::fp4_table()
                                                   : sqb::quantizers::normal_quantile_table(k);
  const double c = sqb::detail::best_gaussian_scale(as_double(table)).scale;
  std::vector<float> x = sqbtest::draw("gaussian mean=0.3 std=2", 500, 7);
  const Run r = quantize(name + " scale=std", k, sqb::Tensor(1, x.size(), x));
  double ss = 0;
  for (const float v : x)
    ss += static_cast<double>(v) * v;
  const float s = static_cast<float>(std::sqrt(ss / static_cast<double>(x.size())) * c);
  const auto lv = r.designs[0].codebook.levels();
  for (std::size_t i = 0; i < k; ++i)
    CHECK(lv[i] == static_cast<float>(static_cast<double>(table[i]) * static_cast<double>(s)));
}

TEST_CASE("scale=mse search is never beaten by a brute-force fine grid over the scale", "[scale]") {
  const std::string law = GENERATE("gaussian", "laplace", "student_t nu=2", "uniform");
  const std::size_t n = GENERATE(8, 64, 300);
  const std::string name = GENERATE("nf4", "fp4", "normal_quantile");
  const std::size_t k = name == "normal_quantile" ? GENERATE(4, 16, 64) : 16;
  const std::vector<double> table = as_double(name == "nf4"   ? sqb::quantizers::nf4_table()
                                              : name == "fp4" ? sqb::quantizers::fp4_table()
                                                              : sqb::quantizers::normal_quantile_table(k));
  for (std::uint64_t seed = 0; seed < 3; ++seed) {
    std::vector<float> x = sqbtest::draw(law, n, 100 + seed);
    std::sort(x.begin(), x.end());
    const double absmax = std::max(std::fabs(double{x.front()}), std::fabs(double{x.back()}));
    const sqb::detail::ScaleFit fit = sqb::detail::best_block_scale(x, table);
    // Brute force: 10000 scales, geometric over [absmax / 64, 4 absmax] (neighbours 1.00055 apart), each
    // assigning every value to its nearest level (ties to the lower one) in double.
    double grid_best = INFINITY, grid_scale = 0;
    for (int j = 0; j <= 10000; ++j) {
      const double s = absmax * std::exp2(-6.0 + 8.0 * j / 10000);
      double sse = 0;
      for (const float v : x) {
        const auto it =
            std::lower_bound(table.begin(), table.end(), v, [&](double t, float y) { return s * t < y; });
        double d = INFINITY;
        if (it != table.end()) d = s * *it - v;
        if (it != table.begin()) d = std::min(d, v - s * *(it - 1));
        sse += d * d;
      }
      if (sse < grid_best) grid_best = sse, grid_scale = s;
    }
    INFO(law << " n=" << n << " " << name << " K=" << k << " seed=" << seed << ": search " << fit.value
             << " at " << fit.scale / absmax << " absmax, grid " << grid_best << " at "
             << grid_scale / absmax);
    // The sweep is exact: no grid point may beat it beyond rounding of the sums.
    CHECK(fit.value <= grid_best * (1 + 1e-12));
    CHECK_THAT(fit.value, WithinRel(sqb::detail::scaled_table_sse(x, table, fit.scale), 1e-15));
  }
}

TEST_CASE(
    "scale=mse on large blocks (binned sweep, then the exact sweep near it) equals the full exact sweep",
    "[scale]") {
  const std::string law = GENERATE("gaussian", "laplace", "student_t nu=1.5", "uniform");
  const std::size_t k = GENERATE(16, 64);
  const std::vector<double> table =
      as_double(k == 16 ? sqb::quantizers::nf4_table() : sqb::quantizers::normal_quantile_table(k));
  for (std::uint64_t seed = 0; seed < 3; ++seed) {
    std::vector<float> x = sqbtest::draw(law, 20000, 200 + seed);
    std::sort(x.begin(), x.end());
    // A budget of 20000 events forces the large-block path (20000 * (K-1) breakpoints are far more).
    const sqb::detail::ScaleFit approx = sqb::detail::best_block_scale(x, table, 20000);
    const sqb::detail::ScaleFit exact = sqb::detail::best_block_scale(x, table, SIZE_MAX);
    INFO(law << " K=" << k << " seed=" << seed << ": " << approx.scale << " vs " << exact.scale);
    CHECK(approx.value <= exact.value * (1 + 1e-12));
  }
}

TEST_CASE("scale=mse: the quantizer's levels are the table times the searched scale, in float32", "[scale]") {
  const std::string name = GENERATE("nf4", "fp4", "normal_quantile");
  const std::size_t k = 16;
  const std::vector<float> table = name == "nf4"   ? sqb::quantizers::nf4_table()
                                   : name == "fp4" ? sqb::quantizers::fp4_table()
                                                   : sqb::quantizers::normal_quantile_table(k);
  const sqb::Tensor t = sqbtest::tensor(2, 150, 9);
  const Run r = quantize(name + " scale=mse", k, t, "group:64");
  for (std::size_t b = 0; b < r.blocks.size(); ++b) {
    const sqb::Block& blk = r.blocks[b];
    std::vector<float> x(t.values.begin() + static_cast<std::ptrdiff_t>(blk.offset),
                         t.values.begin() + static_cast<std::ptrdiff_t>(blk.offset + blk.length));
    std::sort(x.begin(), x.end());
    const auto s = static_cast<float>(sqb::detail::best_block_scale(x, as_double(table)).scale);
    const auto lv = r.designs[b].codebook.levels();
    for (std::size_t i = 0; i < k; ++i)
      CHECK(lv[i] == static_cast<float>(static_cast<double>(table[i]) * static_cast<double>(s)));
    // and it beats the absmax scale of the same block.
    CHECK(mse_at_scale(x, table, s) <=
          mse_at_scale(x, table, std::max(std::fabs(x.front()), std::fabs(x.back()))));
  }
}

TEST_CASE("scale=mse: degenerate blocks (constant, zero, a single value) are reproduced exactly", "[scale]") {
  const std::string spec = GENERATE("nf4 scale=mse", "fp4 scale=mse", "normal_quantile scale=mse",
                                    "quantile scale=mse", "quantile scale=absmax");
  for (const float v : {0.0f, 1.0f, -3.25f, 1e-30f, 7e30f}) {
    for (const std::size_t n : {1, 5}) {
      const sqb::Tensor t(1, n, std::vector<float>(n, v));
      const Run r = quantize(spec, 16, t);
      INFO(spec << " value " << v << " n=" << n);
      CHECK(r.metrics.mse == 0.0);
    }
  }
}

TEST_CASE("scales near the float32 limit saturate at FLT_MAX instead of producing infinite levels",
          "[scale]") {
  const std::string spec =
      GENERATE("nf4 scale=std", "fp4 scale=std", "normal_quantile scale=std", "nf4 scale=mse",
               "normal_quantile scale=mse", "quantile scale=mse", "quantile scale=absmax");
  const float big = 3e38f;
  const sqb::Tensor t(1, 6, {big, -big, big, 2e38f, -1e38f, big});
  const Run r = quantize(spec, 16, t);
  INFO(spec);
  for (const float v : r.designs[0].codebook.levels())
    CHECK(std::isfinite(v));
  CHECK(std::isfinite(r.metrics.mse));
}

TEST_CASE("quantile: scale options rescale the empirical shape, storage stays K floats", "[quantile]") {
  const std::vector<float> x = sqbtest::draw("gaussian", 4000, 3);
  const sqb::Tensor t(1, x.size(), x);
  const Run none = quantize("quantile", 16, t);
  const Run absmax = quantize("quantile scale=absmax", 16, t);
  const Run mse = quantize("quantile scale=mse", 16, t);
  CHECK(absmax.side.per_block == 16);
  CHECK(mse.side.per_block == 16);
  const auto a = none.designs[0].codebook.levels();
  const auto b = absmax.designs[0].codebook.levels();
  float xmax = 0;
  for (const float v : x)
    xmax = std::max(xmax, std::fabs(v));
  CHECK(std::max(std::fabs(b.front()), std::fabs(b.back())) == xmax);
  const double ratio = static_cast<double>(b[12]) / a[12];
  for (std::size_t i = 0; i < 16; ++i)
    CHECK_THAT(b[i], WithinAbs(a[i] * ratio, 1e-6 * xmax));
  // The MSE-optimal rescaling of the quantile shape is never worse than the unscaled shape.
  CHECK(mse.metrics.mse <= none.metrics.mse * (1 + 1e-9));
}
