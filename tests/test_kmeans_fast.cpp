// The fast paths of exact 1-D k-means against slow, obviously-correct references: the vqsort-based block
// sort against std::sort in the same total order, and the Lagrangian search with its coarse first penalty
// (blocks of 32768 distinct values and more) against the layered programmes.

#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>

#include "detail/encode_simd.hpp"
#include "detail/kmeans_dp.hpp"
#include "detail/lloyd_1d.hpp"
#include "detail/sort_keys.hpp"
#include "helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

namespace {

double unit(std::mt19937_64& g) {
  return static_cast<double>(g() >> 11) * 0x1.0p-53;
}

// Floats with many duplicates, both zeros, subnormals, infinities and extremes.
std::vector<float> nasty(std::mt19937_64& g, std::size_t n) {
  const float specials[] = {0.0f,    -0.0f,    FLT_MIN,  -FLT_MIN,  1e-45f, -1e-45f,
                            FLT_MAX, -FLT_MAX, INFINITY, -INFINITY, 1.0f,   -1.0f};
  std::vector<float> x(n);
  for (float& v : x) {
    const double u = unit(g);
    if (u < 0.2)
      v = specials[g() % std::size(specials)];
    else if (u < 0.5)
      v = static_cast<float>(std::round(8 * (unit(g) - 0.5)));
    else
      v = static_cast<float>(std::tan(3.0 * (unit(g) - 0.5)));
  }
  return x;
}

// The reference order: std::sort on the order keys (IEEE totalOrder), ties by weight.
bool key_less(float a, float b) {
  return sqb::detail::float_order_key(std::bit_cast<std::uint32_t>(a)) <
         sqb::detail::float_order_key(std::bit_cast<std::uint32_t>(b));
}

// sort_pairs' reference order on (value, weight) pairs: by value in the order above, then by weight.
bool pair_less(const std::pair<float, float>& a, const std::pair<float, float>& b) {
  if (key_less(a.first, b.first)) return true;
  if (key_less(b.first, a.first)) return false;
  return a.second < b.second;
}

std::vector<std::uint32_t> bits(const std::vector<float>& v) {
  std::vector<std::uint32_t> b(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    b[i] = std::bit_cast<std::uint32_t>(v[i]);
  return b;
}

}  // namespace

TEST_CASE("block sort: vqsort on order keys equals std::sort in IEEE total order, bit for bit",
          "[kmeans_fast][sort]") {
  std::mt19937_64 g(11);
  for (const std::size_t n :
       {0, 1, 2, 3, 17, 47, 48, 49, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 1000, 65537}) {
    for (int rep = 0; rep < 3; ++rep) {
      const std::vector<float> x = nasty(g, n);
      std::vector<float> fast = x, slow = x;
      sqb::detail::sort_floats(fast);
      std::stable_sort(slow.begin(), slow.end(), key_less);
      INFO("n=" << n);
      CHECK(bits(fast) == bits(slow));
      // -0 before +0
      for (std::size_t i = 1; i < fast.size(); ++i)
        if (fast[i] == 0 && fast[i - 1] == 0) CHECK(!(std::signbit(fast[i]) && !std::signbit(fast[i - 1])));
    }
  }
}

TEST_CASE("block sort: the tiny blocks' rank sort equals std::sort on every SIMD target",
          "[kmeans_fast][sort]") {
  // Keys drawn from a few values (many ties, including the top bit set and clear: the signed-compare trick),
  // or from all 32-bit patterns, at every length up to the rank sort's maximum.
  std::mt19937_64 g(14);
  const std::uint32_t few[] = {0u, 1u, 0x7fffffffu, 0x80000000u, 0x80000001u, 0xffffffffu, 12345u};
  std::size_t targets = 0;
  for (const auto& target : sqb::detail::compiled_targets()) {
    if (!sqb::detail::cpu_supports(target.bit)) continue;
    sqb::detail::force_target(target.bit);
    ++targets;
    for (std::size_t n = 0; n <= sqb::detail::kRankSortMax; ++n) {
      for (int rep = 0; rep < 4; ++rep) {
        // (Equal keys are equal bits, so the order among them cannot show; a tie counted twice or not at
        // all leaves a place empty and another written twice.)
        std::vector<std::uint32_t> keys(n);
        for (std::uint32_t& key : keys)
          key = rep % 2 ? few[g() % std::size(few)] : static_cast<std::uint32_t>(g());
        std::vector<std::uint32_t> ref = keys;
        std::sort(ref.begin(), ref.end());
        sqb::detail::rank_sort_keys(keys.data(), n);
        INFO("target " << target.name << ", n = " << n << ", rep " << rep);
        CHECK(keys == ref);
        // 64-bit keys (sort_pairs'): the same draws in the high half, a few values in the low half.
        std::vector<std::uint64_t> wide(n);
        for (std::size_t i = 0; i < n; ++i)
          wide[i] = static_cast<std::uint64_t>(ref[(i * 7) % n]) << 32 | few[g() % std::size(few)];
        std::vector<std::uint64_t> wide_ref = wide;
        std::sort(wide_ref.begin(), wide_ref.end());
        sqb::detail::rank_sort_keys(wide.data(), n);
        CHECK(wide == wide_ref);
      }
    }
    // Through sort_floats too, on the nasty values (zeros of both signs, infinities, subnormals).
    for (const std::size_t n : {2, 17, 33, 63, 64}) {
      const std::vector<float> x = nasty(g, n);
      std::vector<float> fast = x, slow = x;
      sqb::detail::sort_floats(fast);
      std::stable_sort(slow.begin(), slow.end(), key_less);
      INFO("target " << target.name << ", sort_floats n = " << n);
      CHECK(bits(fast) == bits(slow));
      // And sort_pairs: by value, ties by weight.
      std::vector<float> pv = x, pw(n);
      for (std::size_t i = 0; i < n; ++i)
        pw[i] = static_cast<float>(1 + g() % 3);
      std::vector<std::pair<float, float>> pref(n);
      for (std::size_t i = 0; i < n; ++i)
        pref[i] = {pv[i], pw[i]};
      std::stable_sort(pref.begin(), pref.end(), pair_less);
      sqb::detail::sort_pairs(pv, pw);
      bool same = true;
      for (std::size_t i = 0; i < n; ++i)
        same = same && std::bit_cast<std::uint32_t>(pv[i]) == std::bit_cast<std::uint32_t>(pref[i].first) &&
               pw[i] == pref[i].second;
      CHECK(same);
    }
  }
  sqb::detail::force_target(0);
  CHECK(targets >= 1);
}

TEST_CASE("block sort: (value, weight) pairs sort by value, then weight, bit for bit",
          "[kmeans_fast][sort]") {
  std::mt19937_64 g(12);
  for (const std::size_t n : {1, 2, 5, 47, 48, 64, 65, 127, 128, 200, 256, 257, 5000, 70000}) {
    std::vector<float> x = nasty(g, n), w(n);
    for (float& v : w)
      v = unit(g) < 0.3 ? 1.0f : static_cast<float>(std::exp(6 * (unit(g) - 0.5)));
    std::vector<std::pair<float, float>> ref(n);
    for (std::size_t i = 0; i < n; ++i)
      ref[i] = {x[i], w[i]};
    std::stable_sort(ref.begin(), ref.end(), pair_less);
    sqb::detail::sort_pairs(x, w);
    INFO("n=" << n);
    for (std::size_t i = 0; i < n; ++i) {
      REQUIRE(std::bit_cast<std::uint32_t>(x[i]) == std::bit_cast<std::uint32_t>(ref[i].first));
      REQUIRE(std::bit_cast<std::uint32_t>(w[i]) == std::bit_cast<std::uint32_t>(ref[i].second));
    }
  }
}

TEST_CASE("SortedBlock does not depend on the input order, weighted or not", "[kmeans_fast][sort]") {
  std::mt19937_64 g(13);
  std::vector<float> x = sqbtest::draw("laplace", 30000, 5), w(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (i % 3 == 0) x[i] = std::round(x[i]);  // duplicates with different weights
    w[i] = static_cast<float>(0.5 + unit(g));
  }
  std::vector<std::size_t> perm(x.size());
  for (std::size_t i = 0; i < perm.size(); ++i)
    perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), g);
  std::vector<float> xp(x.size()), wp(x.size());
  for (std::size_t i = 0; i < perm.size(); ++i) {
    xp[i] = x[perm[i]];
    wp[i] = w[perm[i]];
  }
  for (const bool weighted : {false, true}) {
    const sqb::detail::SortedBlock a(x, weighted ? std::span<const float>(w) : std::span<const float>{});
    const sqb::detail::SortedBlock b(xp, weighted ? std::span<const float>(wp) : std::span<const float>{});
    INFO("weighted=" << weighted);
    CHECK(std::equal(a.values().begin(), a.values().end(), b.values().begin(), b.values().end()));
    CHECK(std::equal(a.weights().begin(), a.weights().end(), b.weights().begin(), b.weights().end()));
    CHECK(a.sum(0, a.size()) == b.sum(0, b.size()));
    CHECK(a.sum_sq(0, a.size()) == b.sum_sq(0, b.size()));
  }
}

TEST_CASE("optimal k-means on blocks large enough for the coarse first penalty equals divide and conquer",
          "[kmeans_fast]") {
  // 40000 values: above the 8 * 4096 distinct values where the search starts from a penalty estimated on
  // 4096 runs of groups. Divide and conquer does not use it: it is the reference.
  const std::string law = GENERATE("gaussian", "laplace", "student_t nu=2", "uniform");
  const int kind = GENERATE(0, 1, 2);  // float32, float16-rounded (duplicates), weighted
  std::vector<float> x = sqbtest::draw(law, 40000, 77);
  std::vector<float> w;
  if (kind == 1)
    for (float& v : x)
      v = sqb::npy::half_to_float(sqb::npy::float_to_half(v));
  if (kind == 2) {
    std::mt19937_64 g(3);
    for (std::size_t i = 0; i < x.size(); ++i)
      w.push_back(static_cast<float>(std::exp(3 * (unit(g) - 0.5))));
  }
  const sqb::detail::SortedBlock d(x, w);
  for (const std::size_t k : {2, 3, 4, 16, 63}) {
    if (k > d.distinct_count()) continue;
    INFO(law << " kind " << kind << " M=" << d.distinct_count() << " K=" << k);
    const auto fast = sqb::detail::kmeans_optimal_dp(d, k);
    const auto dnc = sqb::detail::kmeans_optimal_dnc(d, k);
    const double slack = 1e-12 * sqb::detail::optimal_sse(d, 1);
    CHECK(std::fabs(fast.sse - dnc.sse) <= 1e-12 * dnc.sse + slack);
    // Continuous unweighted data: the optimum is unique, so are its bounds and levels.
    if (kind == 0) {
      CHECK(fast.bounds == dnc.bounds);
      CHECK(fast.centroids == dnc.centroids);
    }
    REQUIRE(fast.bounds.size() == k + 1);
    for (std::size_t j = 0; j + 1 < k; ++j)
      CHECK(fast.centroids[j] <= fast.centroids[j + 1]);
  }
}

TEST_CASE("optimal k-means at K too large for a coarser first-penalty problem equals SMAWK",
          "[kmeans_fast]") {
  // About 33000 distinct values: the first penalty is estimated on about 16 (K + 1) runs of groups, which at
  // K = 2100 is no fewer than the block itself: there is nothing coarser to solve (a search that tried
  // recursed without end: configs/phi_rho.ini's K = 4096 on 1e6 values overflowed the stack). K = 2000 still
  // coarsens once (stride 2), its nested problems not at all.
  const std::vector<float> x = sqbtest::draw("gaussian", 33000, 5);
  const sqb::detail::SortedBlock d(x, {});
  REQUIRE(d.distinct_count() >= 8 * 4096);
  REQUIRE(d.distinct_count() <= 16 * 2101);
  for (const std::size_t k : {2000, 2100}) {
    INFO("K=" << k);
    const auto fast = sqb::detail::kmeans_optimal_dp(d, k);
    const auto smawk = sqb::detail::kmeans_optimal_smawk(d, k);
    CHECK(std::fabs(fast.sse - smawk.sse) <= 1e-12 * smawk.sse);
    CHECK(fast.bounds == smawk.bounds);
    CHECK(fast.centroids == smawk.centroids);
  }
}

TEST_CASE("k-means sketch with at least as many runs as distinct values is the exact programme, bit for bit",
          "[kmeans_fast][sketch]") {
  // Small blocks, float16-rounded blocks with many duplicates, weighted blocks (zero weights included), and
  // a block above the 32768 distinct values where the search starts from the coarse penalty.
  std::mt19937_64 g(21);
  for (int trial = 0; trial < 60; ++trial) {
    const std::size_t n = trial < 40 ? 2 + static_cast<std::size_t>(unit(g) * 300) : 40000;
    std::vector<float> x = sqbtest::draw(trial % 2 ? "laplace" : "gaussian", n, 100 + trial);
    if (trial % 3 == 1)
      for (float& v : x)
        v = sqb::npy::half_to_float(sqb::npy::float_to_half(v * 0.1f));
    std::vector<float> w;
    if (trial % 4 == 2)
      for (std::size_t i = 0; i < n; ++i)
        w.push_back(unit(g) < 0.1 ? 0.0f : static_cast<float>(std::exp(2 * (unit(g) - 0.5))));
    const sqb::detail::SortedBlock d(x, w);
    const std::size_t m = d.distinct_count();
    for (const std::size_t k : {1, 2, 5, 16}) {
      INFO("trial " << trial << " N=" << n << " M=" << m << " K=" << k);
      const auto s = sqb::detail::kmeans_sketch(x, w, k, std::max<std::size_t>(m, 2 * k));
      CHECK(s.distinct == m);
      if (k >= m) {
        CHECK(s.centroids == d.levels_if_few_distinct(k));
        continue;
      }
      const auto exact = sqb::detail::kmeans_optimal_dp(d, k);
      CHECK(s.groups == m);
      CHECK(s.centroids == exact.centroids);
      CHECK(s.sse == exact.sse);
    }
  }
}

TEST_CASE("k-means sketch on 4096 runs is within 0.1% of the optimum, never below it",
          "[kmeans_fast][sketch]") {
  const std::string law = GENERATE("gaussian", "laplace", "student_t nu=2", "uniform");
  const bool weighted = GENERATE(false, true);
  const std::vector<float> x = sqbtest::draw(law, 200000, 9);
  std::vector<float> w;
  if (weighted) {
    std::mt19937_64 g(4);
    for (std::size_t i = 0; i < x.size(); ++i)
      w.push_back(static_cast<float>(std::exp(4 * (unit(g) - 0.5))));
  }
  const sqb::detail::SortedBlock d(x, w);
  for (const std::size_t k : {2, 4, 16}) {
    const double opt = sqb::detail::kmeans_optimal_dp(d, k).sse;
    const auto s = sqb::detail::kmeans_sketch(x, w, k, 4096);
    INFO(law << (weighted ? " weighted" : "") << " K=" << k << " groups " << s.groups << " ratio "
             << s.sse / opt);
    CHECK(s.groups <= 2 * 4096 + 1);
    CHECK(s.sse >= opt * (1 - 1e-12));
    CHECK(s.sse <= opt * 1.001);
    // The reported SSE is the partition's about its levels: recompute it by nearest level (which can only
    // be lower) and within 0.1% of the optimum too.
    double enc = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      double best = INFINITY;
      for (const double c : s.centroids)
        best = std::min(best, (x[i] - c) * (x[i] - c));
      enc += (w.empty() ? 1.0 : w[i]) * best;
    }
    CHECK(enc <= s.sse * (1 + 1e-9));
    CHECK(enc >= opt * (1 - 1e-9));
    CHECK(std::is_sorted(s.centroids.begin(), s.centroids.end()));
  }
}

TEST_CASE("k-means sketch: long runs of equal values, refusals", "[kmeans_fast][sketch]") {
  // 99% of the values one number, the rest spread: the groups shrink until the programme has enough.
  std::vector<float> x(100000, 0.5f);
  const std::vector<float> spread = sqbtest::draw("gaussian", 1000, 2);
  std::copy(spread.begin(), spread.end(), x.begin());
  const sqb::detail::SortedBlock d(x);
  const auto s = sqb::detail::kmeans_sketch(x, {}, 64, 128);
  CHECK(s.groups >= 128);
  CHECK(s.sse >= sqb::detail::kmeans_optimal_dp(d, 64).sse * (1 - 1e-12));
  CHECK(s.centroids.size() == 64);
  CHECK_THROWS_WITH(sqb::detail::kmeans_sketch(x, {}, 64, 100), Catch::Contains("at least 2 K"));
  CHECK_THROWS_AS(sqb::detail::kmeans_sketch({}, {}, 4, 100), sqb::Error);
  CHECK_THROWS_WITH(sqb::detail::kmeans_sketch(x, std::vector<float>(3, 1.0f), 4, 100),
                    Catch::Contains("3 weights"));
}

TEST_CASE("kmeans_optimal sketch=S through the pipeline: near the exact MSE, exact on few distinct values",
          "[kmeans_fast][sketch]") {
  const sqb::Tensor t = sqbtest::tensor(4, 50000, 8);
  sqb::QuantizeOptions opt;
  opt.granularity = sqb::Granularity::parse("channel");
  const auto exact = sqb::quantize(t, "kmeans_optimal", 16, opt);
  const auto sketch = sqb::quantize(t, "kmeans_optimal sketch=4096", 16, opt);
  CHECK(sketch.metrics.mse >= exact.metrics.mse * (1 - 1e-9));
  CHECK(sketch.metrics.mse <= exact.metrics.mse * 1.001);
  // Groups of 64: never more than 64 distinct values, so the sketch is the exact programme.
  opt.granularity = sqb::Granularity::parse("group:64");
  const auto e64 = sqb::quantize(t, "kmeans_optimal", 16, opt);
  const auto s64 = sqb::quantize(t, "kmeans_optimal sketch=64", 16, opt);
  CHECK(e64.decoded == s64.decoded);
  CHECK(!e64.decoded.empty());
  CHECK_THROWS_WITH(sqb::make_quantizer("kmeans_optimal sketch=20", {16, 0}),
                    Catch::Contains("at least 2 K"));
}

namespace {

// The levels kmeans_optimal's general path gives an unweighted block: the sketch with a run per distinct
// value (the exact programme).
std::vector<double> general_levels(const std::vector<float>& x, std::size_t k) {
  return sqb::detail::kmeans_sketch(x, {}, k, std::max(x.size(), 2 * k)).centroids;
}

std::vector<double> tiny_levels(const std::vector<float>& x, std::size_t k) {
  std::vector<double> out(k);
  sqb::detail::kmeans_tiny(x, k, out);
  return out;
}

std::vector<std::uint64_t> bits(const std::vector<double>& v) {
  std::vector<std::uint64_t> b(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    b[i] = std::bit_cast<std::uint64_t>(v[i]);
  return b;
}

// Blocks of the kinds the tiny path must get exactly right: continuous, small integers (many exactly tied
// partitions), constant, both zeros, subnormals, huge magnitudes, and the nasty mix (infinities excluded:
// the pipeline refuses them before any design).
std::vector<float> tiny_block(std::mt19937_64& g, std::size_t n, int kind) {
  std::vector<float> x(n);
  for (float& v : x) {
    const double u = unit(g);
    switch (kind) {
      case 0:  // N(0,1)-like
        v = static_cast<float>(std::tan(3.0 * (unit(g) - 0.5)));
        break;
      case 1:  // small integers: exact ties between partitions
        v = static_cast<float>(static_cast<int>(g() % 7) - 3);
        break;
      case 2:  // two values, or one
        v = u < 0.5 ? 1.0f : (n % 3 == 0 ? 1.0f : 2.0f);
        break;
      case 3:  // both zeros and subnormals
        v = u < 0.3 ? 0.0f : u < 0.6 ? -0.0f : static_cast<float>((unit(g) - 0.5) * 1e-40);
        break;
      case 4:  // huge magnitudes next to small ones
        v = u < 0.3 ? FLT_MAX * static_cast<float>(unit(g) - 0.5) : u < 0.5 ? 1e30f : static_cast<float>(u);
        break;
      default: {  // the nasty mix without infinities
        const float specials[] = {0.0f,    -0.0f,   FLT_MIN,  -FLT_MIN, 1e-45f,
                                  -1e-45f, FLT_MAX, -FLT_MAX, 1.0f,     -1.0f};
        v = u < 0.3   ? specials[g() % std::size(specials)]
            : u < 0.6 ? static_cast<float>(std::round(8 * (unit(g) - 0.5)))
                      : static_cast<float>(std::tan(3.0 * (unit(g) - 0.5)));
      }
    }
  }
  return x;
}

}  // namespace

namespace {

// The (weighted) SSE of a block against its levels (each value to its nearest level), and of the block as one
// cluster; no weights means all 1.
double nearest_sse(const std::vector<float>& x, const std::vector<double>& levels,
                   const std::vector<float>& w = {}) {
  double s = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double best = INFINITY;
    for (const double l : levels)
      best = std::min(best, (x[i] - l) * (x[i] - l));
    s += (w.empty() ? 1.0 : static_cast<double>(w[i])) * best;
  }
  return s;
}

double one_cluster_sse(const std::vector<float>& x, const std::vector<float>& w = {}) {
  double mean = 0, total = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double wi = w.empty() ? 1.0 : static_cast<double>(w[i]);
    mean += wi * x[i];
    total += wi;
  }
  mean /= total;
  double s = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    s += (w.empty() ? 1.0 : static_cast<double>(w[i])) * (x[i] - mean) * (x[i] - mean);
  return s;
}

// Two codebooks of the same block are both optimal: the same (weighted) SSE to the rounding of the
// programmes' sums (a few eps of the one-cluster SSE per cluster).
void check_same_sse(const std::vector<float>& x, const std::vector<double>& a, const std::vector<double>& b,
                    const std::vector<float>& w = {}) {
  const double tol = 16.0 * static_cast<double>(a.size()) * DBL_EPSILON * one_cluster_sse(x, w);
  CHECK(std::fabs(nearest_sse(x, a, w) - nearest_sse(x, b, w)) <= tol);
  CHECK(std::is_sorted(a.begin(), a.end()));
}

}  // namespace

TEST_CASE(
    "tiny-block k-means: the general path's levels where the optimum is unique, the same SSE where optima "
    "tie",
    "[kmeans_fast][tiny]") {
  // The unweighted tiny path's scan (m <= 8 K) costs a cluster with a reciprocal and scans fewer splits;
  // both paths find an optimal partition, the same one unless several tie (exactly, as small integers do, or
  // within rounding, as the small values next to 1e30 do), and then both have the optimum's SSE.
  std::mt19937_64 g(31);
  std::size_t checked = 0, tied = 0, differ_continuous = 0, differ = 0;
  for (std::size_t n = 1; n <= 300; ++n) {
    for (int kind = 0; kind < 6; ++kind) {
      const std::vector<float> x = tiny_block(g, n, kind);
      if (n > sqb::detail::kTinyBlock) {  // the strategy keeps such blocks on the general path
        std::vector<double> out(4);
        CHECK_THROWS_AS(sqb::detail::kmeans_tiny(x, 4, out), sqb::Error);
        continue;
      }
      // Every K up to N + 1 for the sizes of groups, a sample beyond.
      std::vector<std::size_t> ks;
      if (n <= 70) {
        for (std::size_t k = 1; k <= n + 1; ++k)
          ks.push_back(k);
      } else {
        ks = {1, 2, 3, 4, 8, 16, 17, 32, 64, n - 1, n, n + 1};
      }
      for (const std::size_t k : ks) {
        if (k == 0 || k > sqb::detail::kTinyBlock) continue;
        INFO("N=" << n << " kind " << kind << " K=" << k);
        const std::vector<double> slow = general_levels(x, k), fast = tiny_levels(x, k);
        REQUIRE(fast.size() == k);
        if (bits(fast) != bits(slow)) {
          ++differ;
          differ_continuous += kind == 0;
          check_same_sse(x, fast, slow);
        }
        ++checked;
        tied += kind == 1 || kind == 2;
      }
    }
  }
  CHECK(checked > 25000);
  CHECK(tied > 8000);
  CHECK(differ_continuous == 0);  // continuous data: no ties, the same partition
  CHECK(differ < checked / 20);   // and ties are the exception
}

TEST_CASE("tiny-block k-means: the scan's pass is the exhaustive pass on blocks without ties",
          "[kmeans_fast][tiny]") {
  // The scan looks only at the splits from the previous row's on (the leftmost optimal split is monotone in
  // a Monge problem); the exhaustive pass looks at every split. On continuous data the two are the same
  // programme's output, bit for bit: the least penalised cost and the partition, at penalties around every
  // K's.
  std::mt19937_64 g(43);
  std::size_t passes = 0;
  for (const std::size_t n : {2, 3, 5, 17, 64, 128, 256}) {
    for (int rep = 0; rep < 8; ++rep) {
      const std::vector<float> x = tiny_block(g, n, 0);
      const double sse1 = one_cluster_sse(x);
      for (const double k : {1.5, 2.0, 4.0, 7.0, 16.0, 33.0, 64.0}) {
        const double lambda = 2 * sse1 / (k * k * k);
        INFO("N=" << n << " lambda " << lambda);
        const auto scan = sqb::detail::tiny_scan_pass(x, lambda, false);
        const auto all = sqb::detail::tiny_scan_pass(x, lambda, true);
        CHECK(std::bit_cast<std::uint64_t>(scan.f) == std::bit_cast<std::uint64_t>(all.f));
        CHECK(scan.bounds == all.bounds);
        ++passes;
      }
    }
  }
  CHECK(passes == 7 * 8 * 7);
  // On ties the two may pick different partitions; the least penalised cost is the same to rounding.
  for (const std::size_t n : {10, 64, 200}) {
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i)
      x[i] = static_cast<float>(i % 5);
    for (const double lambda : {0.05, 0.3, 1.0, 4.0}) {
      const auto scan = sqb::detail::tiny_scan_pass(x, lambda, false);
      const auto all = sqb::detail::tiny_scan_pass(x, lambda, true);
      CHECK(scan.f == Approx(all.f).epsilon(1e-12));
    }
  }
  CHECK_THROWS_AS(sqb::detail::tiny_scan_pass({}, 1.0, false), sqb::Error);
  const std::vector<float> three = {0, 1, 2};
  CHECK_THROWS_AS(sqb::detail::tiny_scan_pass(three, 0.0, false), sqb::Error);
}

TEST_CASE("tiny-block k-means: exactly tied optima", "[kmeans_fast][tiny]") {
  // {0, 1, 2} in two clusters: {0}{1, 2} and {0, 1}{2} both cost 1/2. The scan keeps, at equal penalised
  // cost and count, the leftmost split, so {0}{1, 2}: levels 0 and 1.5 (the general path's pick too).
  const std::vector<float> three = {2, 0, 1};
  CHECK(tiny_levels(three, 2) == std::vector<double>{0.0, 1.5});
  CHECK(tiny_levels(three, 2) == general_levels(three, 2));
  // Symmetric integer blocks of every small size and K: many tied optima; an optimum either way.
  for (std::size_t n = 2; n <= 64; ++n) {
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i)
      x[i] = static_cast<float>(i % 5);
    for (std::size_t k = 1; k <= 6; ++k) {
      INFO("N=" << n << " K=" << k);
      check_same_sse(x, tiny_levels(x, k), general_levels(x, k));
      // The same input in another order gives the same levels (the block is sorted first).
      std::vector<float> r(x.rbegin(), x.rend());
      CHECK(bits(tiny_levels(r, k)) == bits(tiny_levels(x, k)));
    }
  }
}

TEST_CASE("tiny-block k-means refuses what it cannot take", "[kmeans_fast][tiny]") {
  std::vector<double> out(4);
  CHECK_THROWS_AS(sqb::detail::kmeans_tiny({}, 4, out), sqb::Error);
  const std::vector<float> big(sqb::detail::kTinyBlock + 1, 1.0f), x = {1, 2, 3};
  CHECK_THROWS_AS(sqb::detail::kmeans_tiny(big, 4, out), sqb::Error);
  CHECK_THROWS_AS(sqb::detail::kmeans_tiny(x, 0, std::span<double>()), sqb::Error);
  CHECK_THROWS_AS(sqb::detail::kmeans_tiny(x, 3, out), sqb::Error);  // levels.size() != K
  // The memory guard sees the distinct count before the programme, as kmeans_sketch's does.
  std::size_t seen = 0;
  sqb::detail::kmeans_tiny(x, 2, std::span<double>(out.data(), 2), [&](std::size_t d) { seen = d; });
  CHECK(seen == 3);
}

TEST_CASE("kmeans_optimal per group of 64 through the pipeline: each block's levels are the tiny path's",
          "[kmeans_fast][tiny]") {
  // Rows of N(0,1) (where the tiny path's levels are also the general path's, bit for bit) and rows of small
  // integers (tied optima), K = 4 and 16.
  sqb::Tensor t = sqbtest::tensor(6, 256, 9);
  for (std::size_t i = 3 * 256; i < 6 * 256; ++i)
    t.values[i] = std::round(t.values[i] * 2);
  for (const std::size_t k : {4, 16}) {
    sqb::QuantizeOptions opt;
    opt.granularity = sqb::Granularity::parse("group:64");
    const auto q = sqb::quantize(t, "kmeans_optimal", k, opt);
    REQUIRE(q.designs.size() == 24);
    for (std::size_t b = 0; b < q.designs.size(); ++b) {
      const std::vector<float> block(t.values.begin() + static_cast<std::ptrdiff_t>(64 * b),
                                     t.values.begin() + static_cast<std::ptrdiff_t>(64 * (b + 1)));
      INFO("block " << b << " K=" << k);
      const std::vector<double> tiny = tiny_levels(block, k), general = general_levels(block, k);
      CHECK(q.designs[b].codebook == sqb::Codebook::nearest(std::span<const double>(tiny)));
      if (b < 12)
        CHECK(bits(tiny) == bits(general));
      else
        check_same_sse(block, tiny, general);
    }
  }
}

namespace {

// The levels kmeans_optimal's general path gives a weighted block (what its design called for every weighted
// block before the tiny path took the small ones).
std::vector<double> general_levels(const std::vector<float>& x, const std::vector<float>& w, std::size_t k) {
  return sqb::detail::kmeans_sketch(x, w, k, std::max(x.size(), 2 * k)).centroids;
}

std::vector<double> tiny_levels(const std::vector<float>& x, const std::vector<float>& w, std::size_t k) {
  std::vector<double> out(k);
  sqb::detail::kmeans_tiny(x, w, k, out);
  return out;
}

// Weights of the kinds the weighted tiny path must get exactly right: all 1 (the unweighted optimum through
// the weighted sums), small integers (exactly tied weighted partitions), some zero (dropped elements), all
// zero (the weights ignored), widely varying (1e-13..1e13), and huge next to denormal (a cluster's weight
// that rounds to nothing in the prefix sums).
std::vector<float> tiny_weights(std::mt19937_64& g, std::size_t n, int kind) {
  std::vector<float> w(n);
  for (float& v : w) {
    const double u = unit(g);
    switch (kind) {
      case 0:
        v = 1.0f;
        break;
      case 1:
        v = static_cast<float>(1 + g() % 3);
        break;
      case 2:
        v = u < 0.4 ? 0.0f : static_cast<float>(0.5 + unit(g));
        break;
      case 3:
        v = 0.0f;
        break;
      case 4:
        v = static_cast<float>(std::exp(60 * (u - 0.5)));
        break;
      default:
        v = u < 0.3 ? 1e30f : u < 0.6 ? 1e-45f : u < 0.7 ? 0.0f : static_cast<float>(unit(g));
    }
  }
  return w;
}

}  // namespace

TEST_CASE(
    "weighted tiny-block k-means: the general weighted path's levels where the optimum is unique, the same "
    "SSE where optima tie",
    "[kmeans_fast][tiny][weighted]") {
  std::mt19937_64 g(37);
  std::size_t checked = 0, tied = 0, dropped = 0, differ = 0, differ_continuous = 0;
  for (std::size_t n = 1; n <= 300; ++n) {
    for (int kind = 0; kind < 6; ++kind) {
      for (int wkind = 0; wkind < 6; ++wkind) {
        if ((kind + wkind + n) % 3 != 0 && n > 70) continue;  // every pair for group sizes, a third beyond
        std::vector<float> x = tiny_block(g, n, kind);
        if (wkind == 1 && n > 2) x[n / 2] = x[0];  // a duplicate value with another weight
        const std::vector<float> w = tiny_weights(g, n, wkind);
        if (n > sqb::detail::kTinyBlock) {
          std::vector<double> out(4);
          CHECK_THROWS_AS(sqb::detail::kmeans_tiny(x, w, 4, out), sqb::Error);
          continue;
        }
        std::vector<std::size_t> ks;
        if (n <= 70) {
          for (std::size_t k = 1; k <= std::min<std::size_t>(n + 1, 20); ++k)
            ks.push_back(k);
          for (const std::size_t k : {32, 64})
            if (k <= n + 1) ks.push_back(k);
        } else {
          ks = {1, 2, 3, 4, 8, 15, 16, 17, 32, 64, n - 1, n, n + 1};
        }
        for (const std::size_t k : ks) {
          if (k > sqb::detail::kTinyBlock) continue;
          INFO("N=" << n << " kind " << kind << " weights " << wkind << " K=" << k);
          const std::vector<double> slow = general_levels(x, w, k), fast = tiny_levels(x, w, k);
          REQUIRE(fast.size() == k);
          if (bits(fast) != bits(slow)) {  // the scan picked another of tied optima (see above)
            ++differ;
            differ_continuous += kind == 0 && wkind <= 2;
            check_same_sse(x, fast, slow, wkind == 3 ? std::vector<float>() : w);
          }
          ++checked;
          tied += kind == 1 || kind == 2 || wkind == 1;
          dropped += wkind == 2 || wkind == 5;
        }
      }
    }
  }
  CHECK(checked > 60000);
  CHECK(tied > 20000);
  CHECK(dropped > 15000);
  CHECK(differ_continuous == 0);  // continuous values under weights of a moderate range (none 1e13 or 1e30)
  CHECK(differ < checked / 20);
}

TEST_CASE("weighted tiny-block k-means: tied optima and weights that vanish in the sums",
          "[kmeans_fast][tiny][weighted]") {
  // {0, 1, 2}, weights 1: the unweighted tie, broken the same way ({0}{1, 2}).
  const std::vector<float> three = {2, 0, 1}, ones = {1, 1, 1};
  CHECK(tiny_levels(three, ones, 2) == general_levels(three, ones, 2));
  CHECK(tiny_levels(three, ones, 2) == std::vector<double>{0.0, 1.5});
  // {0 (w 2), 1 (w 1), 2 (w 2)}: {0}{1, 2} and {0, 1}{2} again tie (2/3 each).
  const std::vector<float> sym = {0, 1, 2}, w212 = {2, 1, 2};
  CHECK(bits(tiny_levels(sym, w212, 2)) == bits(general_levels(sym, w212, 2)));
  // Zero weights: those values pull no level (and with all zero the block is unweighted).
  const std::vector<float> x = {0, 1, 10, 11, 100}, w = {1, 1, 0, 1, 0}, zero(5, 0.0f);
  CHECK(tiny_levels(x, w, 2) == general_levels(x, w, 2));
  CHECK(tiny_levels(x, w, 3) == std::vector<double>{0.0, 1.0, 11.0});  // 3 values of positive weight
  CHECK(bits(tiny_levels(x, zero, 2)) == bits(tiny_levels(x, 2)));
  // A denormal weight after a huge one: the prefix weight does not move, the cluster costs 0.
  const std::vector<float> y = {0, 1, 2, 3, 4, 5}, wy = {1e30f, 1e-45f, 1e-45f, 1e30f, 1e-45f, 1};
  for (std::size_t k = 1; k <= 6; ++k) {
    INFO("K=" << k);
    CHECK(bits(tiny_levels(y, wy, k)) == bits(general_levels(y, wy, k)));
  }
  // Symmetric integer blocks with symmetric integer weights: many tied optima.
  for (std::size_t n = 2; n <= 64; ++n) {
    std::vector<float> v(n), wv(n);
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = static_cast<float>(i % 5);
      wv[i] = static_cast<float>(1 + (i % 5 == 0 || i % 5 == 4));
    }
    for (std::size_t k = 1; k <= 6; ++k) {
      INFO("N=" << n << " K=" << k);
      CHECK(bits(tiny_levels(v, wv, k)) == bits(general_levels(v, wv, k)));
    }
  }
}

TEST_CASE("weighted tiny-block k-means refuses what the general path refuses",
          "[kmeans_fast][tiny][weighted]") {
  std::vector<double> out(2);
  const std::vector<float> x = {1, 2, 3};
  const std::vector<float> bad_size = {1, 1}, negative = {1, -1, 1}, nan = {1, NAN, 1},
                           inf = {1, INFINITY, 1};
  for (const auto* w : {&bad_size, &negative, &nan, &inf}) {
    CHECK_THROWS_AS(sqb::detail::kmeans_tiny(x, *w, 2, out), sqb::Error);
    CHECK_THROWS_AS(general_levels(x, *w, 2), sqb::Error);
  }
  // The same message as the general path's, naming the element.
  CHECK_THROWS_WITH(sqb::detail::kmeans_tiny(x, negative, 2, out), Catch::Contains("element 1"));
  // The memory guard sees the distinct values of positive weight.
  std::size_t seen = 0;
  const std::vector<float> y = {1, 2, 3, 4}, wy = {1, 0, 1, 1};
  sqb::detail::kmeans_tiny(y, wy, 2, out, [&](std::size_t d) { seen = d; });
  CHECK(seen == 3);
}

TEST_CASE(
    "kmeans_optimal per group of 64 with importance weights: each block's levels and codes are the tiny "
    "path's",
    "[kmeans_fast][tiny][weighted]") {
  sqb::Tensor t = sqbtest::tensor(6, 256, 11);
  for (std::size_t i = 3 * 256; i < 6 * 256; ++i)
    t.values[i] = std::round(t.values[i] * 2);
  std::mt19937_64 g(5);
  std::vector<float> w(t.values.size()), cw(256);
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = i % 7 == 0 ? 0.0f : static_cast<float>(std::exp(8 * (unit(g) - 0.5)));
  for (float& v : cw)
    v = static_cast<float>(std::exp(8 * (unit(g) - 0.5)));
  for (const bool per_column : {false, true}) {
    for (const std::size_t k : {4, 16}) {
      sqb::QuantizeOptions opt;
      opt.granularity = sqb::Granularity::parse("group:64");
      if (per_column)
        opt.column_weights = cw;
      else
        opt.weights = w;
      const auto q = sqb::quantize(t, "kmeans_optimal", k, opt);
      REQUIRE(q.designs.size() == 24);
      for (std::size_t b = 0; b < q.designs.size(); ++b) {
        const auto at = static_cast<std::ptrdiff_t>(64 * b);
        const std::vector<float> block(t.values.begin() + at, t.values.begin() + at + 64);
        std::vector<float> bw(64);
        for (std::size_t i = 0; i < 64; ++i)
          bw[i] = per_column ? cw[(64 * b + i) % 256] : w[64 * b + i];
        INFO("block " << b << " K=" << k << (per_column ? " column weights" : " element weights"));
        const std::vector<double> tiny = tiny_levels(block, bw, k);
        if (b < 12)  // N(0,1) rows: the general weighted path's levels too
          CHECK(bits(tiny) == bits(general_levels(block, bw, k)));
        const auto expect = sqb::Codebook::nearest(std::span<const double>(tiny));
        REQUIRE(q.designs[b].codebook == expect);
        std::vector<std::uint8_t> codes(64);
        sqb::encode(expect, block, codes);
        for (std::size_t i = 0; i < 64; ++i)
          REQUIRE(std::bit_cast<std::uint32_t>(q.decoded[64 * b + i]) ==
                  std::bit_cast<std::uint32_t>(expect.levels()[codes[i]]));
      }
    }
  }
}
