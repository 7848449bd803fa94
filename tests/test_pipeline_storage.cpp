// The pipeline's storage without a heap allocation per block, and its finite check inside the pass, against
// the obvious references: SmallFloats against std::vector<float> (sizes across the inline capacity), the
// inline codebooks against thresholds computed one std::nextafter at a time, Codes::for_overwrite against
// the zero-filled constructor, the pipeline's designs against every registered strategy's design() called
// block by block (every granularity, weighted and not), and the fused finite check against the up-front
// check's Error (every position of the bad value, every thread count, with other errors present).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "helpers.hpp"
#include "sqb/codebook.hpp"
#include "sqb/error.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

namespace {

template <std::size_t N>
bool same(const sqb::SmallFloats<N>& s, const std::vector<float>& v) {
  return s.size() == v.size() && s.empty() == v.empty() &&
         std::equal(s.begin(), s.end(), v.begin(), v.end()) &&
         (v.empty() || std::memcmp(s.data(), v.data(), v.size() * sizeof(float)) == 0);
}

// The first K a strategy serves among 16, 4, 256 (nf4 and fp4 are K = 16 only).
std::unique_ptr<sqb::Quantizer> first_quantizer(const std::string& name, std::uint64_t seed) {
  for (const std::size_t k : {16, 4, 256}) {
    try {
      return sqb::make_quantizer(name, {k, seed});
    } catch (const sqb::NotApplicable&) {
    }
  }
  return nullptr;
}

std::string error_of(const auto& f) {
  try {
    f();
  } catch (const sqb::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("SmallFloats behaves as std::vector<float> across its inline capacity", "[storage]") {
  for (std::size_t n = 0; n <= 40; ++n) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i)
      v[i] = static_cast<float>(i) * 0.5f - 3.0f;
    sqb::SmallFloats<8> a(v);  // from a vector
    CHECK(same(a, v));
    sqb::SmallFloats<8> b;
    for (const float f : v)
      b.push_back(f);
    CHECK(same(b, v));
    CHECK(a == b);
    const sqb::SmallFloats<8> c(a);  // copy
    CHECK(same(c, v));
    sqb::SmallFloats<8> d(std::move(b));  // move
    CHECK(same(d, v));
    CHECK(b.empty());
    sqb::SmallFloats<8> e{1.0f, 2.0f};
    e = c;  // copy-assign over a smaller one
    CHECK(same(e, v));
    e = sqb::SmallFloats<8>{7.0f};  // move-assign a smaller one over it
    CHECK(same(e, {7.0f}));
    // resize zero-fills the new elements, as std::vector's does, and keeps the old ones.
    sqb::SmallFloats<8> r(v);
    std::vector<float> rv = v;
    r.resize(n + 11);
    rv.resize(n + 11);
    CHECK(same(r, rv));
    r.resize(n / 2);
    rv.resize(n / 2);
    CHECK(same(r, rv));
    const std::span<const float> s(c);  // reads as a span
    CHECK(s.size() == n);
    sqb::SmallFloats<8> g;
    g.assign(v.begin(), v.end());
    CHECK(same(g, v));
    g.clear();
    CHECK(g.empty());
  }
}

TEST_CASE("codebooks held inline (K <= 16) and on the heap: the same levels and thresholds as the reference",
          "[storage]") {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (std::size_t k = 1; k <= 40; ++k) {
    std::vector<float> levels(k);
    for (float& l : levels)
      l = nd(rng);
    std::sort(levels.begin(), levels.end());
    if (k > 3) levels[2] = levels[1];  // equal neighbours are allowed
    std::vector<double> dl(levels.begin(), levels.end());
    const sqb::Codebook a = sqb::Codebook::nearest(levels);
    const sqb::Codebook b = sqb::Codebook::nearest(std::span<const float>(levels));
    const sqb::Codebook c = sqb::Codebook::nearest(std::span<const double>(dl));
    CHECK(a == b);
    CHECK(a == c);
    REQUIRE(a.size() == k);
    REQUIRE(a.thresholds().size() == k - 1);
    for (std::size_t i = 0; i < k; ++i)
      CHECK(a.levels()[i] == levels[i]);
    for (std::size_t i = 0; i + 1 < k; ++i) {
      const double mid = (static_cast<double>(levels[i]) + levels[i + 1]) / 2;
      float t = static_cast<float>(mid);
      if (static_cast<double>(t) > mid) t = std::nextafter(t, -std::numeric_limits<float>::infinity());
      CHECK(a.thresholds()[i] == t);
    }
    std::vector<double> bounds(k - 1);
    for (std::size_t i = 0; i + 1 < k; ++i)
      bounds[i] = (static_cast<double>(levels[i]) + levels[i + 1]) / 2;
    CHECK(sqb::Codebook::with_boundaries(levels, bounds) == a);
    // A copy and a move keep the values wherever they live.
    sqb::Codebook copy = a;
    CHECK(copy == a);
    const sqb::Codebook moved = std::move(copy);
    CHECK(moved == a);
  }
  CHECK_THROWS_AS(sqb::Codebook::nearest(std::span<const float>()), sqb::Error);
  const std::vector<float> unsorted{1.0f, 0.0f};
  CHECK_THROWS_AS(sqb::Codebook::nearest(std::span<const float>(unsorted)), sqb::Error);
}

TEST_CASE("Codes::for_overwrite: the size and width of the constructor's, whose codes are zero",
          "[storage]") {
  for (const std::size_t k : {1, 16, 256, 257, 65536}) {
    for (const std::size_t n : {0, 1, 1000, 3 << 20}) {
      const sqb::Codes z(n, k);
      sqb::Codes o = sqb::Codes::for_overwrite(n, k);
      CHECK(o.size() == n);
      CHECK(o.code_count() == k);
      CHECK(o.wide() == z.wide());
      std::size_t nonzero = 0;
      z.visit([&](auto c) {
        for (const auto v : c)
          nonzero += v != 0;
      });
      CHECK(nonzero == 0);
      o.visit([&](auto c) {
        for (std::size_t i = 0; i < c.size(); ++i)
          c[i] = static_cast<std::remove_reference_t<decltype(c[i])>>(i % k);
      });
      for (std::size_t i = 0; i < n; i += 997)
        CHECK(o[i] == i % k);
    }
  }
  CHECK_THROWS_AS(sqb::Codes::for_overwrite(10, 0), sqb::Error);
  CHECK_THROWS_AS(sqb::Codes::for_overwrite(10, 65537), sqb::Error);
}

TEST_CASE("every strategy: the pipeline's designs, codes and reconstruction are its design() block by block",
          "[storage][pass]") {
  const std::string name = GENERATE(from_range(sqbtest::registry_names()));
  const std::string g = GENERATE("tensor", "channel", "group:64", "group:100");
  const bool weighted = GENERATE(false, true);
  INFO(name << " " << g << (weighted ? " weighted" : ""));
  const std::size_t rows = 12, cols = 300;
  const sqb::Tensor x(rows, cols, sqbtest::draw("laplace", rows * cols, 21));
  std::vector<float> w;
  if (weighted) {
    w = sqbtest::draw("uniform", rows * cols, 22);
    for (float& v : w)
      v = std::fabs(v);
  }
  const auto q = first_quantizer(name, 9);
  REQUIRE(q);
  sqb::QuantizeOptions o;
  o.granularity = sqb::Granularity::parse(g);
  o.seed = 9;
  o.weights = w;
  for (const int threads : {1, 2}) {
    o.threads = threads;
    const sqb::Quantized r = sqb::quantize(x, *q, o);
    const auto blocks = sqb::make_blocks(rows, cols, o.granularity);
    REQUIRE(r.designs.size() == blocks.size());
    std::size_t differ = 0, bad_codes = 0, bad_decoded = 0;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const auto& b = blocks[i];
      const auto block = std::span<const float>(x.values).subspan(b.offset, b.length);
      sqb::BlockDesign d = q->design(
          block,
          {i, sqb::block_seed(9, i),
           w.empty() ? std::span<const float>() : std::span<const float>(w).subspan(b.offset, b.length)});
      if (d.side.empty() && r.side.per_block == q->code_count())
        d.side.assign(d.codebook.levels().begin(), d.codebook.levels().end());
      const sqb::BlockDesign& p = r.designs[i];
      differ += !(d.codebook == p.codebook) || !(d.side == p.side) || d.iterations != p.iterations ||
                d.converged != p.converged;
      std::vector<float> xhat(b.length);
      r.codes.visit([&](auto c) {
        sqb::decode(p.codebook, c.subspan(b.offset, b.length), xhat);
        if (!sqb::part_of<sqb::RefinesCodes>(*q)) {
          std::vector<std::uint16_t> e(b.length);
          sqb::encode(p.codebook, block, e);
          for (std::size_t j = 0; j < b.length; ++j)
            bad_codes += e[j] != c[b.offset + j];
        }
      });
      bad_decoded += std::memcmp(xhat.data(), r.decoded.data() + b.offset, b.length * sizeof(float)) != 0;
    }
    CHECK(differ == 0);
    CHECK(bad_codes == 0);
    CHECK(bad_decoded == 0);
  }
}

TEST_CASE("the finite check inside the pass: the up-front check's Error for every position and thread count",
          "[storage][baddata]") {
  const std::string g = GENERATE("channel", "group:64", "group:100", "tensor");
  const std::size_t rows = 40, cols = 3000;  // 120,000 values: several chunks of whole blocks
  const auto q = sqb::make_quantizer("uniform symmetric=1", {16, 0});
  for (const std::size_t at : {std::size_t{0}, std::size_t{1}, std::size_t{32767}, std::size_t{32768},
                               std::size_t{70001}, rows * cols - 1}) {
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()}) {
      std::vector<float> v = sqbtest::draw("gaussian", rows * cols, 5);
      v[at] = bad;
      if (at + 5000 < v.size()) v[at + 5000] = bad;  // a second one, maybe in another chunk
      const sqb::Tensor x(rows, cols, v);
      std::string want;
      try {
        sqb::check_finite(x.values, "data", cols);
      } catch (const sqb::Error& e) {
        want = e.what();
      }
      REQUIRE_FALSE(want.empty());
      for (const int threads : {1, 2, 3}) {
        INFO(g << " at " << at << " threads " << threads);
        sqb::QuantizeOptions o;
        o.granularity = sqb::Granularity::parse(g);
        o.threads = threads;
        CHECK(error_of([&] { sqb::quantize(x, *q, o); }) == want);
        // Into an earlier result, reusing its buffers; and with bad weights too: the data error comes first.
        sqb::Quantized into = sqb::quantize(sqbtest::tensor(rows, cols, 3), *q, o);
        CHECK(error_of([&] { sqb::quantize_into(x, *q, o, into); }) == want);
        std::vector<float> w(rows * cols, 1.0f);
        w[7] = -1.0f;
        o.weights = w;
        CHECK(error_of([&] { sqb::quantize(x, *q, o); }) == want);
        o.weights = {};
        // reuse_design with a result of another shape: still the data error.
        sqb::Quantized other = sqb::quantize(sqbtest::tensor(4, 64, 3), *q, o);
        o.reuse_design = true;
        CHECK(error_of([&] { sqb::quantize_into(x, *q, o, other); }) == want);
      }
    }
  }
  // Finite data with bad weights: the weights' Error, as before.
  const sqb::Tensor x = sqbtest::tensor(rows, cols, 4);
  std::vector<float> w(rows * cols, 1.0f);
  w[9] = -2.0f;
  sqb::QuantizeOptions o;
  o.granularity = sqb::Granularity::parse(g);
  o.weights = w;
  CHECK_THROWS_WITH(sqb::quantize(x, *q, o), Catch::Contains("weights: the weight at index 9 is negative"));
}
