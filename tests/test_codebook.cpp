// The shared codebook, encoder and decoder: the nearest-level rule with its documented tie and clamp
// behaviour, and the fast kernels bit-identical to the slow reference.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <numbers>
#include <random>

#include "detail/nearest_reference.hpp"
#include "helpers.hpp"
#include "sqb/codebook.hpp"
#include "sqb/error.hpp"

using sqb::Codebook;

namespace {

std::vector<std::uint16_t> enc16(const Codebook& cb, const std::vector<float>& x) {
  std::vector<std::uint16_t> out(x.size());
  sqb::encode(cb, x, std::span<std::uint16_t>(out));
  return out;
}

}  // namespace

TEST_CASE("nearest rule on hand-made examples", "[codebook]") {
  const Codebook cb = Codebook::nearest(std::vector<float>{-1.0f, 0.0f, 2.0f});
  REQUIRE(cb.size() == 3);
  REQUIRE(cb.thresholds().size() == 2);
  CHECK(cb.thresholds()[0] == -0.5f);
  CHECK(cb.thresholds()[1] == 1.0f);
  const std::vector<float> x = {-1.0f, -0.6f, 0.1f, 0.99f, 1.01f, 2.0f, 1.5f};
  CHECK(enc16(cb, x) == std::vector<std::uint16_t>{0, 0, 1, 1, 2, 2, 2});
}

TEST_CASE("a value exactly on a threshold goes to the lower level", "[codebook]") {
  const Codebook cb = Codebook::nearest(std::vector<float>{0.0f, 1.0f, 3.0f, 4.0f});
  // midpoints 0.5, 2.0, 3.5 are exact float32 values
  CHECK(enc16(cb, {0.5f, 2.0f, 3.5f}) == std::vector<std::uint16_t>{0, 1, 2});
  // one ulp above goes up
  CHECK(enc16(cb, {std::nextafter(0.5f, 1.0f), std::nextafter(2.0f, 3.0f)}) ==
        std::vector<std::uint16_t>{1, 2});
}

TEST_CASE("midpoints that are not float32 values are rounded down and still exact", "[codebook]") {
  // Levels 1 and 1 + 2^-23 (adjacent floats): the midpoint is not a float32. Every float32 x must go to the
  // nearer level, and nothing lies strictly between them.
  const float a = 1.0f, b = std::nextafter(1.0f, 2.0f);
  const Codebook cb = Codebook::nearest(std::vector<float>{a, b});
  CHECK(cb.thresholds()[0] == a);
  CHECK(enc16(cb, {a, b}) == std::vector<std::uint16_t>{0, 1});
}

TEST_CASE("values beyond either end clamp to the end levels", "[codebook]") {
  const Codebook cb = Codebook::nearest(std::vector<float>{-1.0f, 1.0f});
  const float big = std::numeric_limits<float>::max();
  CHECK(enc16(cb, {-big, -1e30f, 1e30f, big}) == std::vector<std::uint16_t>{0, 0, 1, 1});
}

TEST_CASE("equal levels (degenerate data) are allowed", "[codebook]") {
  const Codebook cb = Codebook::nearest(std::vector<float>{2.0f, 2.0f, 2.0f});
  CHECK(enc16(cb, {1.0f, 2.0f, 3.0f}) == std::vector<std::uint16_t>{0, 0, 2});
  std::vector<float> out(3);
  const std::vector<std::uint16_t> codes = {0, 1, 2};
  sqb::decode(cb, std::span<const std::uint16_t>(codes), out);
  CHECK(out == std::vector<float>{2.0f, 2.0f, 2.0f});
}

TEST_CASE("K = 1 maps everything to index 0", "[codebook]") {
  const Codebook cb = Codebook::nearest(std::vector<float>{0.25f});
  CHECK(cb.thresholds().empty());
  CHECK(enc16(cb, {-5.0f, 0.25f, 7.0f}) == std::vector<std::uint16_t>{0, 0, 0});
}

TEST_CASE("fast encoder is bit-identical to the reference (every kernel, both index widths)", "[codebook]") {
  const std::size_t k = GENERATE(2, 3, 4, 16, 17, 18, 33, 64, 255, 256, 257, 1000, 4096, 65536);
  std::mt19937_64 rng(k);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<float> levels(k);
  for (auto& l : levels)
    l = static_cast<float>(normal(rng));
  std::sort(levels.begin(), levels.end());
  if (k > 3) levels[k / 2] = levels[k / 2 + 1];  // one tie between equal levels
  const Codebook cb = Codebook::nearest(levels);

  // Random values, every level, every threshold and its float neighbours.
  // The reference is O(K) per value: fewer random values for large K.
  std::vector<float> x = sqbtest::draw("gaussian std=1.5", k > 1000 ? 2000 : 20000, k);
  const std::size_t stride = k > 1000 ? 37 : 1;  // for large K, every 37th level and threshold
  for (std::size_t i = 0; i < k; i += stride)
    x.push_back(levels[i]);
  for (std::size_t i = 0; i + 1 < k; i += stride) {
    const float t = cb.thresholds()[i];
    x.push_back(t);
    x.push_back(std::nextafter(t, -INFINITY));
    x.push_back(std::nextafter(t, INFINITY));
  }
  std::vector<std::uint16_t> fast(x.size());
  sqb::encode(cb, x, std::span<std::uint16_t>(fast));
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    mismatches += fast[i] != sqb::detail::nearest_level_reference(levels, x[i]);
  CHECK(mismatches == 0);
  if (k <= 256) {
    std::vector<std::uint8_t> narrow(x.size());
    sqb::encode(cb, x, std::span<std::uint8_t>(narrow));
    CHECK(std::equal(narrow.begin(), narrow.end(), fast.begin()));
  }
}

TEST_CASE("batch encode equals element-by-element encode", "[codebook]") {
  const Codebook cb = Codebook::nearest(std::vector<float>{-2.0f, -0.5f, 0.0f, 0.3f, 1.0f, 4.0f});
  const std::vector<float> x = sqbtest::draw("gaussian std=2", 1000, 3);
  const auto batch = enc16(cb, x);
  for (std::size_t i = 0; i < x.size(); ++i)
    CHECK(enc16(cb, {x[i]})[0] == batch[i]);
}

TEST_CASE("decode(encode(decode(c))) == decode(c)", "[codebook]") {
  const Codebook cb = Codebook::nearest(std::vector<float>{-3.0f, -1.0f, -1.0f, 0.5f, 2.0f});
  const std::vector<std::uint8_t> codes = {0, 1, 2, 3, 4};
  std::vector<float> y(codes.size()), z(codes.size());
  sqb::decode(cb, std::span<const std::uint8_t>(codes), y);
  std::vector<std::uint8_t> again(codes.size());
  sqb::encode(cb, y, std::span<std::uint8_t>(again));
  sqb::decode(cb, std::span<const std::uint8_t>(again), z);
  CHECK(y == z);
}

TEST_CASE("codebook construction rejects bad levels and boundaries", "[codebook]") {
  CHECK_THROWS_AS(Codebook::nearest(std::vector<float>{}), sqb::Error);
  CHECK_THROWS_AS(Codebook::nearest(std::vector<float>{1.0f, 0.0f}), sqb::Error);
  CHECK_THROWS_AS(Codebook::nearest(std::vector<float>{0.0f, NAN}), sqb::Error);
  const std::vector<double> outside = {5.0};
  CHECK_THROWS_AS(Codebook::with_boundaries({0.0f, 1.0f}, outside), sqb::Error);
  const std::vector<double> geometric = {std::sqrt(2.0)};
  const Codebook g = Codebook::with_boundaries({1.0f, 2.0f}, geometric);
  CHECK(enc16(g, {1.41f, 1.42f}) == std::vector<std::uint16_t>{0, 1});
}

TEST_CASE("decode rejects a code outside the codebook, naming its position", "[codebook]") {
  const Codebook cb = Codebook::nearest(std::vector<float>{0.0f, 1.0f});
  const std::vector<std::uint8_t> codes = {0, 1, 7};
  std::vector<float> out(3);
  CHECK_THROWS_WITH(sqb::decode(cb, std::span<const std::uint8_t>(codes), out),
                    Catch::Contains("code 7 at index 2"));
}

TEST_CASE("nearest_centroid_indices is the shared encoder", "[codebook]") {
  const std::vector<float> c = {-1.5f, -0.5f, 0.5f, 1.5f};
  const std::vector<float> v = {-9.0f, -1.0f, 0.0f, 0.2f, 1.0f, 9.0f};
  // -1.0 and 0.0 and 1.0 are midpoints: they go to the lower side
  CHECK(sqb::nearest_centroid_indices(v, c) == std::vector<std::uint16_t>{0, 0, 1, 2, 2, 3});
}

TEST_CASE("Codes picks uint8 up to K = 256 and uint16 beyond", "[codebook]") {
  CHECK_FALSE(sqb::Codes(10, 256).wide());
  CHECK(sqb::Codes(10, 257).wide());
  CHECK_THROWS_AS(sqb::Codes(10, 0), sqb::Error);
  CHECK_THROWS_AS(sqb::Codes(10, 65537), sqb::Error);
}

TEST_CASE("large inputs: the grid-accelerated encoder is bit-identical to the reference", "[codebook]") {
  // Long inputs take the grid path when the thresholds are evenly enough spread (uniform and Gaussian-like
  // codebooks: 1 to 4 steps after the bucket lookup) and the binary search otherwise (a cosine codebook
  // crowds its ends, a geometric ladder crowds 0): both must give exactly the reference's indices, including
  // on every threshold and its float neighbours.
  const std::string shape = GENERATE("uniform", "gaussian", "cosine", "geometric");
  const std::size_t k = GENERATE(18, 32, 64, 256, 1024);
  std::vector<float> levels(k);
  for (std::size_t i = 0; i < k; ++i) {
    const double u = (static_cast<double>(i) + 0.5) / static_cast<double>(k);  // in (0, 1)
    double v = 0;
    if (shape == std::string("uniform")) v = -3.0 + 6.0 * u;
    if (shape == std::string("gaussian")) v = 2.0 * std::tan(3.0 * (u - 0.5));      // dense in the middle
    if (shape == std::string("cosine")) v = -2.0 * std::cos(std::numbers::pi * u);  // dense at both ends
    if (shape == std::string("geometric"))
      v = (u < 0.5 ? -1.0 : 1.0) * std::pow(1.618, -40.0 * std::abs(u - 0.5));
    levels[i] = static_cast<float>(v);
  }
  std::sort(levels.begin(), levels.end());
  const Codebook cb = Codebook::nearest(levels);
  std::vector<float> x = sqbtest::draw("gaussian std=2", 200000, k + 7);
  for (const float t : cb.thresholds()) {
    x.push_back(t);
    x.push_back(std::nextafter(t, -INFINITY));
    x.push_back(std::nextafter(t, INFINITY));
  }
  const auto fast = enc16(cb, x);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    mismatches += fast[i] != sqb::detail::nearest_level_reference(levels, x[i]);
  INFO(shape << " K=" << k);
  CHECK(mismatches == 0);
  // At +-FLT_MAX every distance rounds to the same double, so the reference cannot be used there: the ends
  // clamp.
  const float big = std::numeric_limits<float>::max();
  std::vector<float> ends(20000, big);
  ends[0] = -big;
  const auto e = enc16(cb, ends);
  CHECK(e[0] == 0);
  CHECK(e[1] == k - 1);
  CHECK(e.back() == k - 1);
}
