// The pipeline's small kernels against the obvious loops: the code histogram (byte codes counted a value at a
// time, or by tables), the all-finite check of the input (an unsigned max over the bit patterns), abs_max (an
// integer max over the bit patterns) against a max of std::fabs, the
// branch-free float_at_or_below (against std::nextafter) and the symmetric uniform design's mirrored levels
// (against the formula, one division per level).

#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "detail/measure.hpp"
#include "detail/reduce.hpp"
#include "sqb/error.hpp"
#include "sqb/quantizer.hpp"
#include "sqb/registry.hpp"
#include "sqb/tensor.hpp"

TEST_CASE("count_codes: every k and length equals a counting loop, for byte and 16-bit codes",
          "[pipeline][kernels]") {
  std::mt19937 rng(7);
  // Lengths around the 64-wide rounds and the 255-round flush of the byte counters, and past it.
  for (const std::size_t n : {0u, 1u, 63u, 64u, 65u, 1000u, 255u * 64u - 1u, 255u * 64u, 255u * 64u + 1u,
                              3u * 255u * 64u + 17u, 32768u}) {
    for (const std::size_t k : {1u, 2u, 3u, 16u, 31u, 32u, 33u, 256u}) {
      std::vector<std::uint8_t> c8(n);
      std::vector<std::uint16_t> c16(n);
      std::uniform_int_distribution<std::size_t> code(0, k - 1);
      for (std::size_t i = 0; i < n; ++i) {
        // Long runs of one code too (a whole round of the same byte), not only scattered codes.
        c8[i] = static_cast<std::uint8_t>(i % 5000 < 4200 && k > 1 ? (i / 5000) % k : code(rng));
        c16[i] = c8[i];
      }
      std::vector<std::uint32_t> want(k, 3), got8(k, 3), got16(k, 3);  // counts are added to what is there
      for (const auto v : c8)
        ++want[v];
      sqb::detail::count_codes(std::span<const std::uint8_t>(c8), got8.data(), k);
      sqb::detail::count_codes(std::span<const std::uint16_t>(c16), got16.data(), k);
      INFO("n = " << n << ", k = " << k);
      CHECK(got8 == want);
      CHECK(got16 == want);
    }
  }
}

TEST_CASE("all_finite: false for any NaN or infinity at any position, true for every finite extreme",
          "[pipeline][kernels]") {
  const float big = std::numeric_limits<float>::max();
  const float tiny = std::numeric_limits<float>::denorm_min();
  for (const std::size_t n : {1u, 15u, 16u, 17u, 100u}) {
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i)
      x[i] = (i % 4 == 0) ? big : (i % 4 == 1) ? -big : (i % 4 == 2) ? -tiny : -0.0f;
    CHECK(sqb::detail::all_finite(x));
    for (const std::size_t at : {std::size_t{0}, n / 2, n - 1}) {
      for (const float bad :
           {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
        std::vector<float> y = x;
        y[at] = bad;
        INFO("n = " << n << ", at " << at << ", value " << bad);
        CHECK_FALSE(sqb::detail::all_finite(y));
        CHECK(sqb::detail::count_non_finite(y) == 1);
        CHECK_THROWS_AS(sqb::check_finite(y, "data"), sqb::Error);
      }
    }
  }
  CHECK(sqb::detail::all_finite({}));
}

TEST_CASE("abs_max: the largest |x| of finite values, as a loop over std::fabs gives it, at every length",
          "[pipeline][kernels]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  const float big = std::numeric_limits<float>::max();
  const float tiny = std::numeric_limits<float>::denorm_min();
  for (std::size_t n = 0; n <= 70; ++n) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> x(n);
      for (std::size_t i = 0; i < n; ++i) {
        const int kind = static_cast<int>(rng() % 8);
        x[i] = kind == 0   ? -0.0f
               : kind == 1 ? (rng() % 2 ? tiny : -tiny)
               : kind == 2 ? (rng() % 2 ? big : -big)
                           : normal(rng) * 1e3f;
      }
      float want = 0.0f;
      for (const float v : x)
        want = std::max(want, std::fabs(v));
      const float got = sqb::detail::abs_max(x);
      INFO("n = " << n << ", trial " << trial);
      CHECK(std::bit_cast<std::uint32_t>(got) == std::bit_cast<std::uint32_t>(want));
    }
  }
}

TEST_CASE("float_at_or_below: the largest float32 <= b, as std::nextafter after rounding gives it",
          "[pipeline][kernels]") {
  const auto reference = [](double b) {
    float f = static_cast<float>(b);
    if (static_cast<double>(f) > b) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
    return f;
  };
  const auto same = [](float a, float b) {
    return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
  };
  std::vector<double> cases = {0.0,
                               -0.0,
                               1e-50,
                               -1e-50,
                               1e-45,
                               -1e-45,
                               1.4e-45,
                               -1.4e-45,
                               1.0,
                               -1.0,
                               std::nextafter(1.0, 2.0),
                               std::nextafter(-1.0, -2.0),
                               3.4028235e38,
                               3.4028236e38,
                               3.5e38,
                               -3.4028236e38,
                               -3.5e38,
                               1e300,
                               -1e300,
                               static_cast<double>(std::numeric_limits<float>::min()) * 0.75};
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> mant(-1.0, 1.0);
  std::uniform_int_distribution<int> expo(-160, 130);
  for (int i = 0; i < 200000; ++i)
    cases.push_back(std::ldexp(mant(rng), expo(rng)));
  std::size_t mismatches = 0, moved = 0;
  for (const double b : cases) {
    const float got = sqb::float_at_or_below(b);
    mismatches += !same(got, reference(b));
    moved += static_cast<double>(static_cast<float>(b)) > b;
  }
  CHECK(mismatches == 0);
  CHECK(moved > 1000);  // the step-down branch ran (about half of the random cases round up)
}

TEST_CASE(
    "uniform symmetric=1: every level is float(absmax * j / q) bit for bit, j = -q..q, the spare code "
    "repeating the top",
    "[pipeline][kernels]") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-140, 120);
  for (const std::size_t k : {3u, 4u, 5u, 16u, 17u, 256u, 1000u}) {
    const auto q = sqb::make_quantizer("uniform symmetric=1", {k, 0});
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<float> block(1 + trial % 70);
      const int e = expo(rng);
      for (float& v : block)
        v = trial % 50 == 0 ? 0.0f : std::ldexp(u(rng), e);  // all-zero blocks too (absmax 0: levels +-0)
      float absmax = 0;
      for (const float v : block)
        absmax = std::max(absmax, std::fabs(v));
      const sqb::BlockDesign d = q->design(block, {});
      const std::size_t h = (k - 1) / 2;
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < k; ++i) {
        const double j = static_cast<double>(std::min(i, 2 * h)) - static_cast<double>(h);
        const float want = static_cast<float>(static_cast<double>(absmax) * j / static_cast<double>(h));
        wrong += std::bit_cast<std::uint32_t>(d.codebook.levels()[i]) != std::bit_cast<std::uint32_t>(want);
      }
      INFO("K = " << k << ", absmax = " << absmax);
      CHECK(wrong == 0);
      REQUIRE(d.side.size() == 1);
      CHECK(d.side[0] == absmax);
    }
  }
}
