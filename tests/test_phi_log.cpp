// phi_log (the "GR-PHI" proposal): hand examples, tie sides, clipping, round=log vs round=nearest, exponent
// sharing against a transcription of the seed's cluster_exponents, the exponent-stream entropy and storage
// figures, base=2 against a direct log2 implementation, level counts, zeros/denormals and bad parameters.

#include <catch2/catch.hpp>

#include <algorithm>
#include <boost/math/constants/constants.hpp>
#include <boost/random/mersenne_twister.hpp>
#include <boost/random/uniform_real_distribution.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/metrics.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

namespace {

const double kPhi = boost::math::constants::phi<double>();
constexpr float kDenormMin = std::numeric_limits<float>::denorm_min();
constexpr float kFloatMin = std::numeric_limits<float>::min();

using Run = sqbtest::Run;
using sqbtest::quantize;

sqb::Tensor row_tensor(std::vector<float> x) {
  const std::size_t n = x.size();
  return sqb::Tensor(1, n, std::move(x));
}

float phi_pow(int e) {
  return static_cast<float>(std::pow(kPhi, e));
}

// The exponent of a decoded value on a base-b ladder with scale s (the value must be a ladder level).
int exponent_of(float v, double base, double s = 1.0) {
  return static_cast<int>(std::lround(std::log(std::abs(static_cast<double>(v)) / s) / std::log(base)));
}

// GR-PHI's quantize_magnitudes_to_phi and export_packed, transcribed for one value of w / s:
//   e = round(log(max(|w|, eps)) / log(base)), torch.round = half to even; clamp(e, e_min, e_max);
//   sign bit 1 for w >= 0 (export_packed), so w = 0 becomes +base^e_min.
struct SeedCode {
  bool nonneg;
  int e;
};
SeedCode seed_quantize(double w, double base, int e_min, int e_max) {
  const double eps = 1e-12;
  const double e = std::nearbyint(std::log(std::max(std::abs(w), eps)) / std::log(base));
  return {w >= 0, static_cast<int>(std::clamp(e, static_cast<double>(e_min), static_cast<double>(e_max)))};
}

// GR-PHI's cluster_exponents along one row, transcribed: pad with zeros to a multiple of C, average each
// group of C (float32, as torch), round half to even (torch.round), expand, drop the padding.
std::vector<float> seed_cluster_exponents(std::vector<float> e, int cluster) {
  if (cluster == 0 || cluster == 1) return e;
  const std::size_t c = static_cast<std::size_t>(cluster);
  const std::size_t n = e.size();
  const std::size_t pad = (c - (n % c)) % c;
  e.resize(n + pad, 0.0f);
  std::vector<float> out(e.size());
  for (std::size_t g = 0; g < e.size(); g += c) {
    float sum = 0.0f;
    for (std::size_t j = 0; j < c; ++j)
      sum += e[g + j];
    const float avg = std::nearbyint(sum / static_cast<float>(c));
    for (std::size_t j = 0; j < c; ++j)
      out[g + j] = avg;
  }
  out.resize(n);
  return out;
}

}  // namespace

TEST_CASE("phi_log: hand examples with s = 1 give the seed's exponents and signs", "[phi_log]") {
  // 1 -> e 0, phi -> 1, phi^-3 -> -3, -phi^2 -> 2 negative, 0 and -0 -> e_min with sign bit 1 (seed export).
  const sqb::Tensor t = row_tensor({1.0f, phi_pow(1), phi_pow(-3), -phi_pow(2), 0.0f, -0.0f});
  const Run r = quantize("phi_log scale=none e_min=-8 e_max=4", 26, t);
  CHECK(r.side.per_block == 0);
  const int expected_e[] = {0, 1, -3, 2, -8, -8};
  const bool expected_nonneg[] = {true, true, true, false, true, true};
  for (std::size_t i = 0; i < t.size(); ++i) {
    INFO("element " << i << " = " << t.values[i] << " -> " << r.decoded[i]);
    CHECK(exponent_of(r.decoded[i], kPhi) == expected_e[i]);
    CHECK((r.decoded[i] > 0) == expected_nonneg[i]);
    CHECK_THAT(std::abs(r.decoded[i]), Catch::Matchers::WithinRel(phi_pow(expected_e[i]), 1e-6f));
    const SeedCode seed = seed_quantize(t.values[i], kPhi, -8, 4);
    CHECK(seed.e == expected_e[i]);
    CHECK(seed.nonneg == expected_nonneg[i]);
  }
  // The codebook is exactly -phi^4 .. -phi^-8, phi^-8 .. phi^4.
  const auto lv = r.designs[0].codebook.levels();
  REQUIRE(lv.size() == 26);
  for (int j = 0; j < 13; ++j) {
    CHECK(lv[static_cast<std::size_t>(13 + j)] == phi_pow(-8 + j));
    CHECK(lv[static_cast<std::size_t>(12 - j)] == -phi_pow(-8 + j));
  }

  // scale=absmax (default): the same values relative to s = max|w| = phi^2, so every exponent drops by 2.
  const Run a = quantize("phi_log e_min=-10 e_max=0", 22, t);
  CHECK(a.side.per_block == 1);
  const int expected_rel[] = {-2, -1, -5, 0, -10, -10};
  for (std::size_t i = 0; i < t.size(); ++i) {
    INFO("element " << i);
    CHECK(exponent_of(a.decoded[i], kPhi, phi_pow(2)) == expected_rel[i]);
    CHECK((a.decoded[i] > 0) == expected_nonneg[i]);
  }
}

TEST_CASE("phi_log: a value on a boundary goes to the level of smaller magnitude, for both signs",
          "[phi_log]") {
  SECTION("round=log, base 4: the geometric midpoints 2*4^e are floats") {
    const Run r = quantize("phi_log base=4 scale=none e_min=-3 e_max=3", 14, row_tensor({1.0f}));
    const sqb::Codebook& cb = r.designs[0].codebook;
    std::vector<float> x;
    std::vector<float> expected;
    for (int e = -3; e < 3; ++e) {
      const float lo = std::ldexp(1.0f, 2 * e), hi = std::ldexp(1.0f, 2 * e + 2),
                  g = std::ldexp(1.0f, 2 * e + 1);
      const float above = std::nextafter(g, 1e30f);
      x.insert(x.end(), {g, above, -g, -above});
      expected.insert(expected.end(), {lo, hi, -lo, -hi});
    }
    std::vector<std::uint8_t> codes(x.size());
    sqb::encode(cb, x, std::span<std::uint8_t>(codes));
    for (std::size_t i = 0; i < x.size(); ++i) {
      INFO("x = " << x[i]);
      CHECK(cb.levels()[codes[i]] == expected[i]);
    }
  }
  SECTION("round=nearest, base 2: the arithmetic midpoints 1.5*2^e are floats") {
    const Run r =
        quantize("phi_log base=2 round=nearest scale=none e_min=-3 e_max=3", 14, row_tensor({1.0f}));
    const sqb::Codebook& cb = r.designs[0].codebook;
    for (int e = -3; e < 3; ++e) {
      const float lo = std::ldexp(1.0f, e), a = 1.5f * lo;
      const float x[] = {a, std::nextafter(a, 1e30f), -a, -std::nextafter(a, 1e30f)};
      const float expected[] = {lo, 2 * lo, -lo, -2 * lo};
      std::uint8_t codes[4];
      sqb::encode(cb, x, std::span<std::uint8_t>(codes));
      for (std::size_t i = 0; i < 4; ++i) {
        INFO("x = " << x[i]);
        CHECK(cb.levels()[codes[i]] == expected[i]);
      }
    }
  }
  SECTION("phi: floats on either side of the geometric midpoint") {
    const Run r = quantize("phi_log scale=none e_min=-6 e_max=2", 18, row_tensor({1.0f}));
    const sqb::Codebook& cb = r.designs[0].codebook;
    const auto lv = cb.levels();
    for (std::size_t i = 9; i + 1 < 18; ++i) {
      const double g = std::sqrt(static_cast<double>(lv[i]) * lv[i + 1]);
      const float below = sqb::float_at_or_below(g), above = std::nextafter(below, 1e30f);
      const float x[] = {below, above, -below, -above};
      const float expected[] = {lv[i], lv[i + 1], -lv[i], -lv[i + 1]};
      std::uint8_t codes[4];
      sqb::encode(cb, x, std::span<std::uint8_t>(codes));
      for (std::size_t j = 0; j < 4; ++j) {
        INFO("x = " << x[j]);
        CHECK(lv[codes[j]] == expected[j]);
      }
    }
  }
  SECTION("zero=1: |x| <= half the smallest magnitude becomes 0") {
    const Run r = quantize("phi_log zero=1 scale=none e_min=-3 e_max=0", 9, row_tensor({1.0f}));
    const sqb::Codebook& cb = r.designs[0].codebook;
    const float m = phi_pow(-3);
    REQUIRE(cb.levels()[4] == 0.0f);
    REQUIRE(cb.levels()[5] == m);
    const float h = m / 2;
    const float x[] = {h, std::nextafter(h, 1.0f), -h, std::nextafter(-h, -1.0f), 0.0f, -0.0f};
    const float expected[] = {0.0f, m, 0.0f, -m, 0.0f, 0.0f};
    std::uint8_t codes[6];
    sqb::encode(cb, x, std::span<std::uint8_t>(codes));
    for (std::size_t j = 0; j < 6; ++j) {
      INFO("x = " << x[j]);
      CHECK(cb.levels()[codes[j]] == expected[j]);
    }
  }
  SECTION("without a zero level, 0 and -0 go to +s*base^e_min and the smallest negative float to -") {
    const Run r = quantize("phi_log scale=none e_min=-3 e_max=0", 8, row_tensor({1.0f}));
    const sqb::Codebook& cb = r.designs[0].codebook;
    const float m = phi_pow(-3);
    const float x[] = {0.0f, -0.0f, kDenormMin, -kDenormMin};
    const float expected[] = {m, m, m, -m};
    std::uint8_t codes[4];
    sqb::encode(cb, x, std::span<std::uint8_t>(codes));
    for (std::size_t j = 0; j < 4; ++j) {
      INFO("x = " << x[j]);
      CHECK(cb.levels()[codes[j]] == expected[j]);
    }
  }
}

TEST_CASE("phi_log: exponents clip at e_min and e_max, and spare codes are never emitted", "[phi_log]") {
  const sqb::Tensor t =
      row_tensor({phi_pow(5), phi_pow(-6), -phi_pow(3), 1e30f, 1e-30f, -1e-30f, -1e30f, phi_pow(1), 3.0f});
  // 2 * 4 levels, K = 16: eight spare codes repeat the top level.
  const Run r = quantize("phi_log scale=none e_min=-2 e_max=1", 16, t);
  const float expected[] = {phi_pow(1),   phi_pow(-2), -phi_pow(1), phi_pow(1), phi_pow(-2),
                            -phi_pow(-2), -phi_pow(1), phi_pow(1),  phi_pow(1)};
  for (std::size_t i = 0; i < t.size(); ++i) {
    INFO("element " << i << " = " << t.values[i]);
    CHECK(r.decoded[i] == expected[i]);
    CHECK(r.codes[i] < 8);
  }
  // absmax with e_max = -1: the largest magnitudes clip down to s / phi.
  const Run a = quantize("phi_log e_min=-4 e_max=-1", 8, row_tensor({2.0f, -2.0f, 1.9f, 0.5f}));
  CHECK_THAT(a.decoded[0], Catch::Matchers::WithinRel(2.0f / phi_pow(1), 1e-6f));
  CHECK_THAT(a.decoded[1], Catch::Matchers::WithinRel(-2.0f / phi_pow(1), 1e-6f));
  CHECK_THAT(a.decoded[2], Catch::Matchers::WithinRel(2.0f / phi_pow(1), 1e-6f));
}

TEST_CASE("phi_log: round=log and round=nearest differ exactly where g < |x| <= a", "[phi_log]") {
  const char* base = GENERATE("phi", "2", "sqrt2", "3.7");
  const std::string tail = std::string(" base=") + base + " scale=none e_min=-4 e_max=3";
  const Run lg = quantize("phi_log round=log" + tail, 16, row_tensor({1.0f}));
  const Run nr = quantize("phi_log round=nearest" + tail, 16, row_tensor({1.0f}));
  const sqb::Codebook& cl = lg.designs[0].codebook;
  const sqb::Codebook& cn = nr.designs[0].codebook;
  REQUIRE(std::equal(cl.levels().begin(), cl.levels().end(), cn.levels().begin()));
  const auto lv = cl.levels();
  // Magnitudes phi^-4 .. phi^3 are lv[8..15].
  std::vector<float> x;
  boost::random::mt19937_64 rng(7);
  boost::random::uniform_real_distribution<double> u(std::log(lv[8]) - 1.0, std::log(lv[15]) + 1.0);
  for (int i = 0; i < 20000; ++i) {
    const float v = static_cast<float>(std::exp(u(rng)));
    x.push_back(i % 2 ? v : -v);
  }
  for (std::size_t i = 8; i + 1 < 16; ++i) {
    const double g = std::sqrt(static_cast<double>(lv[i]) * lv[i + 1]);
    const double a = 0.5 * (static_cast<double>(lv[i]) + lv[i + 1]);
    for (const double edge : {g, a}) {
      const float f = sqb::float_at_or_below(edge);
      for (const float v : {std::nextafter(f, 0.0f), f, std::nextafter(f, 1e30f)}) {
        x.push_back(v);
        x.push_back(-v);
      }
    }
  }
  std::vector<std::uint8_t> cl_codes(x.size()), cn_codes(x.size());
  sqb::encode(cl, x, std::span<std::uint8_t>(cl_codes));
  sqb::encode(cn, x, std::span<std::uint8_t>(cn_codes));
  std::size_t differ = 0;
  for (std::size_t j = 0; j < x.size(); ++j) {
    const double m = std::abs(static_cast<double>(x[j]));
    bool between = false;
    std::size_t hi = 0;
    for (std::size_t i = 8; i + 1 < 16; ++i) {
      const double g = std::sqrt(static_cast<double>(lv[i]) * lv[i + 1]);
      const double a = 0.5 * (static_cast<double>(lv[i]) + lv[i + 1]);
      if (g < m && m <= a) {
        between = true;
        hi = i + 1;
      }
    }
    INFO("x = " << x[j]);
    CHECK((cl_codes[j] != cn_codes[j]) == between);
    if (between) {
      ++differ;
      // log rounds the magnitude up, nearest down.
      CHECK(std::abs(lv[cl_codes[j]]) == lv[hi]);
      CHECK(std::abs(lv[cn_codes[j]]) == lv[hi - 1]);
      CHECK((lv[cl_codes[j]] > 0) == (x[j] > 0));
    }
  }
  CHECK(differ > 100);
}

TEST_CASE("phi_log: base=2 equals a direct log2 implementation element by element", "[phi_log]") {
  struct Case {
    std::string spec;
    std::size_t k;
    std::string dist, granularity;
    int e_min, e_max;
    bool absmax;
  };
  const Case cases[] = {
      {"phi_log base=2", 16, "gaussian rows=8", "channel", -7, 0, true},
      {"phi_log base=2 bits=5", 32, "laplace rows=4", "group:64", -15, 0, true},
      {"phi_log base=2 scale=none e_min=-12 e_max=2", 30, "student_t nu=3 rows=2", "tensor", -12, 2, false},
  };
  for (const Case& c : cases) {
    const auto d = sqb::make_source(c.dist);
    const sqb::Tensor t = d->draw(4000, 3);
    const Run r = quantize(c.spec, c.k, t, c.granularity);
    std::size_t mismatches = 0;
    for (std::size_t b = 0; b < r.blocks.size(); ++b) {
      const sqb::Block& blk = r.blocks[b];
      double s = 1.0;
      if (c.absmax) {
        s = 0.0;
        for (std::size_t i = 0; i < blk.length; ++i)
          s = std::max(s, std::abs(static_cast<double>(t.values[blk.offset + i])));
      }
      for (std::size_t i = blk.offset; i < blk.offset + blk.length; ++i) {
        const double w = t.values[i];
        const double e = std::clamp(std::round(std::log2(std::max(std::abs(w) / s, 1e-300))),
                                    static_cast<double>(c.e_min), static_cast<double>(c.e_max));
        const float direct = static_cast<float>((w >= 0 ? 1.0 : -1.0) * s * std::exp2(e));
        mismatches += r.decoded[i] != direct;
      }
    }
    INFO(c.spec << " on " << c.dist);
    CHECK(mismatches == 0);
  }
}

TEST_CASE("phi_log: any base agrees with the seed's quantize_magnitudes_to_phi away from midpoints",
          "[phi_log]") {
  const char* base_text = GENERATE("phi", "sqrt2", "3.7");
  const double base = std::string(base_text) == "phi"     ? kPhi
                      : std::string(base_text) == "sqrt2" ? std::sqrt(2.0)
                                                          : 3.7;
  const sqb::Tensor t = sqbtest::tensor(1, 5000, 4);
  const Run r = quantize(std::string("phi_log scale=none e_min=-9 e_max=2 base=") + base_text, 24, t);
  std::size_t near_midpoint = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const double w = t.values[i];
    const SeedCode seed = seed_quantize(w, base, -9, 2);
    const double le = std::log(std::abs(w)) / std::log(base);
    const bool near = std::abs(le - std::floor(le) - 0.5) < 1e-6;
    near_midpoint += near;
    if (near) continue;
    INFO("w = " << w);
    CHECK(exponent_of(r.decoded[i], base) == seed.e);
    CHECK((r.decoded[i] > 0) == seed.nonneg);
  }
  CHECK(near_midpoint < 5);
}

TEST_CASE("phi_log: cluster=C reproduces the seed's cluster_exponents on hand-made rows", "[phi_log]") {
  // The transcription rounds half to even, as torch.round does.
  CHECK(seed_cluster_exponents({3, 4, 1, 2, -4, 3}, 4) == std::vector<float>{2, 2, 2, 2, 0, 0});
  CHECK(seed_cluster_exponents({-1, -2, 0, -1, -2, -3, -3}, 2) ==
        std::vector<float>{-2, -2, 0, 0, -2, -2, -2});

  const std::vector<std::vector<int>> rows = {
      {-1, -2, 0, -1, -2, -3, -3},      // length 7
      {3, 4, 1, 2, -4, 3},              // ties at .5 in both directions
      {-8, -8, 4, 4, -5, 2, -7, 1, 0},  // the range ends; -8 is also where w = 0 lands
      {-3},                             // a single short group
  };
  const std::vector<std::vector<int>> signs = {
      {1, -1, 1, 1, -1, -1, 1}, {-1, 1, 1, -1, 1, 1}, {1, -1, 1, 1, -1, 1, -1, -1, 1}, {-1}};
  const int cluster = GENERATE(0, 1, 2, 3, 4, 5, 7, 8);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::vector<float> w, e;
    for (std::size_t j = 0; j < rows[r].size(); ++j) {
      w.push_back(static_cast<float>(signs[r][j]) * phi_pow(rows[r][j]));
      e.push_back(static_cast<float>(rows[r][j]));
    }
    if (r == 2) w.back() = 0.0f;  // 0 -> exponent e_min = -8, sign bit 1 (the seed's export)
    if (r == 2) e.back() = -8.0f;
    const std::vector<float> expected = seed_cluster_exponents(e, cluster);
    const Run run = quantize("phi_log scale=none e_min=-8 e_max=4 cluster=" + std::to_string(cluster), 26,
                             row_tensor(w), "channel");
    for (std::size_t j = 0; j < w.size(); ++j) {
      INFO("row " << r << " cluster " << cluster << " element " << j);
      CHECK(exponent_of(run.decoded[j], kPhi) == static_cast<int>(expected[j]));
      CHECK((run.decoded[j] > 0) == (w[j] >= 0));  // signs are kept
      CHECK_THAT(std::abs(run.decoded[j]),
                 Catch::Matchers::WithinRel(phi_pow(static_cast<int>(expected[j])), 1e-6f));
    }
  }
}

TEST_CASE("phi_log: cluster groups never cross rows, at granularity=tensor too", "[phi_log]") {
  // 3 rows of 7: clusters of 3 start at every row start (tensor), or at every block start (group:5).
  std::vector<float> x;
  const int e[] = {-1, -3, 0, -2, -2, -4, -1, 0, -5, -1, -2, -3, -3, -1, -4, 0, 0, -1, -2, -3, -3};
  for (int i = 0; i < 21; ++i)
    x.push_back((i % 3 ? 1.0f : -1.0f) * phi_pow(e[i]));
  const sqb::Tensor t(3, 7, x);
  const std::string spec = "phi_log scale=none e_min=-6 e_max=0 cluster=3";
  const Run whole = quantize(spec, 14, t, "tensor");
  for (std::size_t r = 0; r < 3; ++r) {
    const Run one = quantize(spec, 14, row_tensor({x.begin() + 7 * r, x.begin() + 7 * r + 7}), "tensor");
    for (std::size_t j = 0; j < 7; ++j)
      CHECK(whole.decoded[7 * r + j] == one.decoded[j]);
  }
  // A flat 1 x 21 tensor would group across the row ends, and gives a different result here.
  const Run flat = quantize(spec, 14, row_tensor(x), "tensor");
  CHECK(flat.decoded != whole.decoded);
  // group:5 restarts the clusters at each block: elements 0-2, 3-4 | 5-6 (row end) ...
  const Run grouped = quantize(spec, 14, t, "group:5");
  for (std::size_t r = 0; r < 3; ++r) {
    for (const std::size_t start : {std::size_t{0}, std::size_t{5}}) {
      const std::size_t len = start == 0 ? 5 : 2;
      const auto first = x.begin() + static_cast<std::ptrdiff_t>(7 * r + start);
      const Run part = quantize(spec, 14, row_tensor({first, first + static_cast<std::ptrdiff_t>(len)}));
      for (std::size_t j = 0; j < len; ++j)
        CHECK(grouped.decoded[7 * r + start + j] == part.decoded[j]);
    }
  }
}

TEST_CASE("phi_log: with zero=1, zero codes stay 0 inside a cluster and do not enter its mean", "[phi_log]") {
  // Groups of 3: {0, phi^-2, -phi^-3} -> mean of -2, -3 = -2.5 -> -2 (half to even), zero kept;
  // {0, 0, 0} unchanged; {phi^-1, 0} short: seed padding counts, (-1 + 0) / 2 = -0.5 -> 0.
  const sqb::Tensor t = row_tensor({0.0f, phi_pow(-2), -phi_pow(-3), 0.0f, 0.0f, 0.0f, phi_pow(-1), 0.0f});
  const Run r = quantize("phi_log zero=1 scale=none e_min=-4 e_max=0 cluster=3", 11, t);
  const float expected[] = {0.0f, phi_pow(-2), -phi_pow(-2), 0.0f, 0.0f, 0.0f, 1.0f, 0.0f};
  for (std::size_t i = 0; i < t.size(); ++i) {
    INFO("element " << i);
    CHECK(r.decoded[i] == expected[i]);
  }
}

TEST_CASE("phi_log: a short group's mean below e_min is clipped (the seed would leave the ladder)",
          "[phi_log]") {
  // Range [2, 6]: the last group {phi^2} padded with one 0 averages to 1, outside the ladder; the seed's
  // cluster_exponents gives 1, phi_log clips to e_min = 2.
  const sqb::Tensor t = row_tensor({phi_pow(5), phi_pow(5), phi_pow(2)});
  CHECK(seed_cluster_exponents({5, 5, 2}, 2) == std::vector<float>{5, 5, 1});
  const Run r = quantize("phi_log scale=none e_min=2 e_max=6 cluster=2", 10, t);
  CHECK(exponent_of(r.decoded[0], kPhi) == 5);
  CHECK(exponent_of(r.decoded[2], kPhi) == 2);
}

TEST_CASE("phi_log: exponent-stream entropy and storage equal the closed forms", "[phi_log]") {
  SECTION("exponent counts 8, 4, 2, 2: 1.75 bits") {
    // Two rows of {0 x4, -1 x2, -2, -3}, each with max |w| = 1.
    std::vector<float> x;
    const int e[] = {0, 0, 0, 0, -1, -1, -2, -3, 0, 0, 0, 0, -1, -1, -2, -3};
    for (int i = 0; i < 16; ++i)
      x.push_back((i % 3 ? -1.0f : 1.0f) * phi_pow(e[i]));
    const Run r = quantize("phi_log scale=none e_min=-3 e_max=0", 8, row_tensor(x));
    CHECK_THAT(r.extra.at("exp_entropy_bits"), Catch::Matchers::WithinAbs(1.75, 1e-12));
    CHECK_THAT(r.extra.at("exp_storage_bits"), Catch::Matchers::WithinAbs(1.0 + 1.75, 1e-12));
    // absmax: s = 1 here, the same exponents, plus one float32 scale per block (2 rows, channel).
    const Run a = quantize("phi_log e_min=-3 e_max=0", 8, sqb::Tensor(2, 8, x), "channel");
    CHECK_THAT(a.extra.at("exp_entropy_bits"), Catch::Matchers::WithinAbs(1.75, 1e-12));
    CHECK_THAT(a.extra.at("exp_storage_bits"), Catch::Matchers::WithinAbs(1.0 + 1.75 + 2 * 32.0 / 16, 1e-12));
  }
  SECTION("zero=1: the zero is an exponent symbol and carries no sign bit") {
    // zero x4, e=0 x4, e=-1 x8: H = 1.5 bits; sign bits for 12 of 16.
    std::vector<float> x(4, 0.0f);
    for (int i = 0; i < 4; ++i)
      x.push_back(i % 2 ? 1.0f : -1.0f);
    for (int i = 0; i < 8; ++i)
      x.push_back(i % 3 ? phi_pow(-1) : -phi_pow(-1));
    const Run r = quantize("phi_log zero=1 scale=none e_min=-2 e_max=0", 7, row_tensor(x));
    CHECK_THAT(r.extra.at("exp_entropy_bits"), Catch::Matchers::WithinAbs(1.5, 1e-12));
    CHECK_THAT(r.extra.at("exp_storage_bits"), Catch::Matchers::WithinAbs(12.0 / 16 + 1.5, 1e-12));
  }
  SECTION("cluster=4: one exponent per group") {
    // 2 rows x 8, groups of 4 with exponents 0, 0 | -1, -3 (already shared).
    std::vector<float> x;
    const int ge[] = {0, 0, -1, -3};
    for (int g = 0; g < 4; ++g)
      for (int j = 0; j < 4; ++j)
        x.push_back((j % 2 ? -1.0f : 1.0f) * phi_pow(ge[g]));
    const Run r = quantize("phi_log scale=none e_min=-3 e_max=0 cluster=4", 8, sqb::Tensor(2, 8, x));
    // Per element: 8 x e=0, 4 x -1, 4 x -3 -> 1.5 bits. Groups: {0, 0, -1, -3} -> 1.5 bits per group of 4.
    CHECK_THAT(r.extra.at("exp_entropy_bits"), Catch::Matchers::WithinAbs(1.5, 1e-12));
    CHECK_THAT(r.extra.at("exp_storage_bits"), Catch::Matchers::WithinAbs(1.0 + 1.5 * 4 / 16, 1e-12));
  }
  SECTION("cluster=4 with zero=1: zero flags at their entropy, all-zero groups store no exponent") {
    // Groups: {0, 1, 1, -1} (e 0), {phi^-1 x4}, {0 x4}.
    const float p = phi_pow(-1);
    const sqb::Tensor t = row_tensor({0.0f, 1.0f, 1.0f, -1.0f, p, -p, p, p, 0.0f, 0.0f, 0.0f, 0.0f});
    const Run r = quantize("phi_log zero=1 scale=none e_min=-2 e_max=0 cluster=4", 7, t);
    // Per element: zero x5, e=0 x3, e=-1 x4.
    const auto h = [](std::vector<double> c) {
      double n = 0, s = 0;
      for (double v : c)
        n += v;
      for (double v : c)
        s -= v / n * std::log2(v / n);
      return s;
    };
    CHECK_THAT(r.extra.at("exp_entropy_bits"), Catch::Matchers::WithinAbs(h({5, 3, 4}), 1e-12));
    const double expected = 7.0 / 12 + h({5, 7}) + h({1, 1}) * 2 / 12;
    CHECK_THAT(r.extra.at("exp_storage_bits"), Catch::Matchers::WithinAbs(expected, 1e-12));
  }
}

TEST_CASE("phi_log: level counts per setting, spare codes and K that cannot hold the ladder", "[phi_log]") {
  const sqb::Tensor t = sqbtest::tensor(1, 300, 5);
  const auto distinct = [](const Run& r) {
    const auto lv = r.designs[0].codebook.levels();
    std::vector<float> v(lv.begin(), lv.end());
    return static_cast<std::size_t>(std::unique(v.begin(), v.end()) - v.begin());
  };
  struct Case {
    std::string spec;
    std::size_t k;
    std::size_t levels;  // 0: not applicable
    bool has_zero;
  };
  const Case cases[] = {
      {"phi_log bits=3", 8, 8, false},
      {"phi_log bits=3", 16, 8, false},
      {"phi_log bits=3", 4, 0, false},
      {"phi_log bits=3 zero=1", 8, 7, true},
      {"phi_log bits=2 zero=1", 4, 3, true},
      {"phi_log", 16, 16, false},
      {"phi_log", 2, 2, false},
      {"phi_log", 15, 0, false},
      {"phi_log", 1, 0, false},
      {"phi_log zero=1", 15, 15, true},
      {"phi_log zero=1", 16, 15, true},
      {"phi_log zero=1", 2, 0, true},
      {"phi_log e_min=-3 e_max=1", 10, 10, false},
      {"phi_log e_min=-3 e_max=1", 9, 0, false},
      {"phi_log e_min=-3 e_max=1 zero=1", 16, 11, true},
  };
  for (const Case& c : cases) {
    INFO(c.spec << " K=" << c.k);
    if (c.levels == 0) {
      CHECK_THROWS_AS(sqb::make_quantizer(c.spec, {c.k, 0}), sqb::NotApplicable);
      continue;
    }
    const Run r = quantize(c.spec, c.k, t);
    CHECK(distinct(r) == c.levels);
    const auto lv = r.designs[0].codebook.levels();
    CHECK(std::count(lv.begin(), lv.end(), 0.0f) == (c.has_zero ? 1 : 0));
    for (std::size_t i = c.levels; i < c.k; ++i)
      CHECK(lv[i] == lv[c.levels - 1]);  // spare codes repeat the top level
  }
  // The range: e_max anchors bits=B and a one-sided range takes its length from K.
  const auto exps = [&](const std::string& spec, std::size_t k) {
    const Run r = quantize(spec, k, row_tensor({1.0f}));
    const auto lv = r.designs[0].codebook.levels();
    return std::pair{exponent_of(lv[k / 2], kPhi), exponent_of(lv.back(), kPhi)};
  };
  CHECK(exps("phi_log scale=none e_max=2", 8) == std::pair{-1, 2});
  CHECK(exps("phi_log scale=none e_min=-2", 8) == std::pair{-2, 1});
  CHECK(exps("phi_log scale=none bits=3 e_max=2", 8) == std::pair{-1, 2});
  CHECK(exps("phi_log scale=none", 8) == std::pair{-3, 0});
}

TEST_CASE("phi_log: several settings keep the codebook contract", "[phi_log][contract]") {
  const std::string spec = GENERATE("phi_log base=2", "phi_log zero=1", "phi_log round=nearest",
                                    "phi_log base=sqrt2 scale=none e_min=-20 e_max=3", "phi_log bits=3",
                                    "phi_log cluster=4", "phi_log zero=1 cluster=5 round=nearest");
  const std::size_t k = GENERATE(4, 8, 16, 64, 256);
  const std::string g = GENERATE("channel", "group:40");
  const sqb::Tensor t = sqbtest::tensor(4, 200, 9);
  std::unique_ptr<sqb::Quantizer> probe;
  try {
    probe = sqb::make_quantizer(spec, {k, 0});
  } catch (const sqb::NotApplicable& e) {
    WARN("skipped (not applicable): " << e.what());
    return;
  }
  const Run r = quantize(spec, k, t, g);
  INFO(spec << " K=" << k << " " << g);
  for (const sqb::BlockDesign& d : r.designs) {
    const auto lv = d.codebook.levels();
    const auto th = d.codebook.thresholds();
    REQUIRE(lv.size() == k);
    CHECK(std::is_sorted(lv.begin(), lv.end()));
    for (std::size_t i = 0; i + 1 < k; ++i) {
      CHECK(th[i] >= lv[i]);
      CHECK(th[i] <= lv[i + 1]);
    }
  }
  // Decode, re-encode with the same codebooks (full clusters: 200 and 40 are multiples of 4 and 5), decode.
  CHECK(sqbtest::reencode(r, *r.q, r.decoded) == sqbtest::vec(r.decoded));
  for (const auto& [name, v] : r.extra)
    CHECK(std::isfinite(v));
}

TEST_CASE("phi_log: zeros and denormals never give NaN or Inf", "[phi_log]") {
  const std::string spec = GENERATE("phi_log", "phi_log zero=1", "phi_log base=2 round=nearest",
                                    "phi_log scale=none e_min=-200 e_max=200", "phi_log bits=8 cluster=3",
                                    "phi_log scale=none bits=16 e_max=32767");
  const std::vector<std::vector<float>> data = {
      {0.0f, -0.0f, kDenormMin, -kDenormMin, kFloatMin, -kFloatMin / 3, 1e-40f, 1.0f, -2.5f},
      {kDenormMin, -3 * kDenormMin, 7 * kDenormMin, -kDenormMin, kDenormMin, 0.0f, -0.0f, 2 * kDenormMin,
       0.0f},
      std::vector<float>(9, 0.0f),
      {std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 1.0f, 0.0f, kDenormMin, -1e38f,
       3e38f, -0.0f, 1e-38f},
  };
  const bool has_zero = spec.find("zero=1") != std::string::npos;
  for (std::size_t d = 0; d < data.size(); ++d) {
    const sqb::Tensor t(3, 3, data[d]);
    for (const std::size_t k : {4, 16, 256, 65536}) {
      std::unique_ptr<sqb::Quantizer> q;
      try {
        q = sqb::make_quantizer(spec, {k, 0});
      } catch (const sqb::NotApplicable&) {
        continue;
      }
      for (const std::string g : {"tensor", "channel"}) {
        INFO(spec << " data " << d << " K=" << k << " " << g);
        const Run r = quantize(spec, k, t, g);
        for (const sqb::BlockDesign& bd : r.designs) {
          for (const float v : bd.codebook.levels())
            CHECK(std::isfinite(v));
        }
        for (std::size_t i = 0; i < t.size(); ++i) {
          CHECK(std::isfinite(r.decoded[i]));
          if (has_zero && t.values[i] == 0.0f) CHECK(r.decoded[i] == 0.0f);
        }
        for (const auto& [name, v] : r.extra)
          CHECK(std::isfinite(v));
        CHECK(std::isfinite(r.metrics.mse));
      }
    }
  }
}

TEST_CASE("phi_log: bad parameters are errors naming the parameter", "[phi_log][badinput]") {
  const auto make = [](const std::string& spec) { return sqb::make_quantizer(spec, {16, 0}); };
  CHECK_THROWS_WITH(make("phi_log base=1"), Catch::Contains("'base'") && Catch::Contains("phi|sqrt2"));
  CHECK_THROWS_WITH(make("phi_log base=0.5"), Catch::Contains("'base'"));
  CHECK_THROWS_WITH(make("phi_log base=-2"), Catch::Contains("'base'"));
  CHECK_THROWS_WITH(make("phi_log base=gold"), Catch::Contains("'base'"));
  CHECK_THROWS_WITH(make("phi_log e_min=2 e_max=1"), Catch::Contains("'e_min'") && Catch::Contains("e_max"));
  CHECK_THROWS_WITH(make("phi_log bits=1"), Catch::Contains("'bits'"));
  CHECK_THROWS_WITH(make("phi_log bits=0"), Catch::Contains("'bits'"));
  CHECK_THROWS_WITH(make("phi_log cluster=-1"), Catch::Contains("'cluster'"));
  CHECK_THROWS_WITH(make("phi_log bits=3 e_min=-2"), Catch::Contains("'e_min'") && Catch::Contains("bits"));
  CHECK_THROWS_WITH(make("phi_log round=up"), Catch::Contains("'round'") && Catch::Contains("log|nearest"));
  CHECK_THROWS_WITH(make("phi_log scale=max"), Catch::Contains("'scale'") && Catch::Contains("absmax|none"));
  CHECK_THROWS_WITH(make("phi_log zero=2"), Catch::Contains("'zero'"));
  // Valid specs whose ladder does not fit K say so and which parameter sets the count.
  CHECK_THROWS_WITH(sqb::make_quantizer("phi_log bits=5", {16, 0}), Catch::Contains("bits"));
  CHECK_THROWS_AS(sqb::make_quantizer("phi_log bits=5", {16, 0}), sqb::NotApplicable);
  CHECK_THROWS_WITH(sqb::make_quantizer("phi_log", {7, 0}), Catch::Contains("zero=1"));
}

TEST_CASE("phi_log: SQNR on log-uniform data equals the closed form of the ladder ratio", "[phi_log]") {
  // x = +-exp(U), U uniform over whole bins [e_lo - 1/2, e_hi + 1/2] * ln(base): with round=log every bin's
  // log-offset u = ln(x / level) is uniform on [-a, a], a = ln(base) / 2, independent of the bin, so
  //   mse / mean(x^2) = E[(e^u - 1)^2] / E[e^2u] = (sinh(2a)/2a - 2 sinh(a)/a + 1) / (sinh(2a)/2a).
  const char* base_text = GENERATE("phi", "2", "sqrt2");
  const double base = std::string(base_text) == "phi"     ? kPhi
                      : std::string(base_text) == "sqrt2" ? std::sqrt(2.0)
                                                          : 2.0;
  const double a = std::log(base) / 2;
  const double e2u = std::sinh(2 * a) / (2 * a);
  const double expected_db = -10 * std::log10((e2u - 2 * std::sinh(a) / a + 1) / e2u);
  boost::random::mt19937_64 rng(11);
  boost::random::uniform_real_distribution<double> u((-12 - 0.5) * std::log(base),
                                                     (-2 + 0.5) * std::log(base));
  std::vector<float> x(200000);
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>((i % 2 ? 1 : -1) * std::exp(u(rng)));
  const sqb::Tensor t = row_tensor(x);
  const Run r = quantize(std::string("phi_log scale=none e_min=-16 e_max=0 base=") + base_text, 34, t);
  const sqb::Metrics& m = r.metrics;
  INFO("base " << base_text << ": expected " << expected_db << " dB");
  CHECK_THAT(m.sqnr_db,
             Catch::Matchers::WithinAbs(expected_db, 0.05));  // Monte Carlo, N = 2e5: measured within 0.02 dB
}
