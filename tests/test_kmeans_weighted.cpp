// Weighted 1-D k-means: the exact DP against an independent weighted brute force and an exhaustive
// enumeration of every assignment, the rules for zero and all-zero weights, and weighted Lloyd (sorted and
// naive give the same iterates; k-means++ samples by w * D^2).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <utility>

#include "detail/kmeans_dp.hpp"
#include "detail/lloyd_1d.hpp"
#include "helpers.hpp"
#include "sqb/error.hpp"

using Catch::Matchers::WithinRel;
using sqb::detail::SortedBlock;

namespace {

double unit(std::mt19937_64& g) {
  return static_cast<double>(g() >> 11) * 0x1.0p-53;
}

// Weighted SSE of elements [j, i) of sorted (x, w) about their weighted mean, summed directly in two passes
// (no prefix sums, nothing shared with the library). A run of zero weights costs 0.
double direct_cost(const std::vector<std::pair<float, float>>& p, std::size_t j, std::size_t i) {
  double sw = 0, swx = 0;
  for (std::size_t m = j; m < i; ++m) {
    sw += p[m].second;
    swx += static_cast<double>(p[m].second) * p[m].first;
  }
  if (sw == 0) return 0;
  const double mean = swx / sw;
  double c = 0;
  for (std::size_t m = j; m < i; ++m)
    c += p[m].second * (p[m].first - mean) * (p[m].first - mean);
  return c;
}

struct Brute {
  double sse = 0;
  std::vector<std::size_t> bounds;  // positions in the (value, weight)-sorted elements, zeros included
};

// The textbook weighted programme over every sorted element (zero weights included as ordinary members, no
// merging of equal values), with interval costs from direct_cost: O(N^3 + K N^2).
Brute brute_force(const std::vector<float>& x, const std::vector<float>& w, std::size_t k) {
  std::vector<std::pair<float, float>> p(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    p[i] = {x[i], w.empty() ? 1.0f : w[i]};
  std::sort(p.begin(), p.end());
  const std::size_t n = p.size();
  std::vector<std::vector<double>> cost(n + 1, std::vector<double>(n + 1, 0.0));
  for (std::size_t j = 0; j < n; ++j)
    for (std::size_t i = j + 1; i <= n; ++i)
      cost[j][i] = direct_cost(p, j, i);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> d(k, std::vector<double>(n + 1, inf));
  std::vector<std::vector<std::size_t>> arg(k, std::vector<std::size_t>(n + 1, 0));
  for (std::size_t i = 1; i <= n; ++i)
    d[0][i] = cost[0][i];
  for (std::size_t l = 1; l < k; ++l)
    for (std::size_t i = l + 1; i <= n; ++i)
      for (std::size_t j = l; j < i; ++j)
        if (d[l - 1][j] + cost[j][i] < d[l][i]) {
          d[l][i] = d[l - 1][j] + cost[j][i];
          arg[l][i] = j;
        }
  Brute b;
  b.sse = d[k - 1][n];
  b.bounds.assign(k + 1, 0);
  b.bounds[k] = n;
  for (std::size_t l = k - 1, i = n; l >= 1; --l) {
    i = arg[l][i];
    b.bounds[l] = i;
  }
  return b;
}

// The least weighted SSE over every assignment of the N elements to K labels (K^N of them; empty clusters
// allowed, a cluster of weight 0 costs 0): no contiguity assumed.
double exhaustive(const std::vector<float>& x, const std::vector<float>& w, std::size_t k) {
  const std::size_t n = x.size();
  std::vector<std::size_t> label(n, 0);
  double best = std::numeric_limits<double>::infinity();
  while (true) {
    double total = 0;
    for (std::size_t c = 0; c < k; ++c) {
      double sw = 0, swx = 0;
      for (std::size_t i = 0; i < n; ++i)
        if (label[i] == c) {
          sw += w[i];
          swx += static_cast<double>(w[i]) * x[i];
        }
      if (sw == 0) continue;
      const double mean = swx / sw;
      for (std::size_t i = 0; i < n; ++i)
        if (label[i] == c) total += w[i] * (x[i] - mean) * (x[i] - mean);
    }
    best = std::min(best, total);
    std::size_t i = 0;
    while (i < n && ++label[i] == k)
      label[i++] = 0;
    if (i == n) break;
  }
  return best;
}

// Random test data of a few kinds: continuous, coarse grid (duplicates and tied optima), symmetric integers.
std::vector<float> values(std::mt19937_64& g, std::size_t n, int kind) {
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double u = unit(g);
    x[i] = kind == 0   ? static_cast<float>(std::tan(3.0 * (u - 0.5)))
           : kind == 1 ? static_cast<float>(std::round(12.0 * (u - 0.5)) / 2.0)
                       : static_cast<float>(i % 7);
  }
  return x;
}

// Random weights of a few kinds: unit, small integers with zeros, heavy-tailed (log-normal, spread 1e5),
// uniform with a third of them zero.
std::vector<float> weights(std::mt19937_64& g, std::size_t n, int kind) {
  std::vector<float> w(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double u = unit(g);
    w[i] = kind == 0   ? 1.0f
           : kind == 1 ? static_cast<float>(std::floor(u * 4.0))
           : kind == 2 ? static_cast<float>(std::exp(12.0 * (u - 0.5)))
                       : (u < 1.0 / 3 ? 0.0f : static_cast<float>(u));
  }
  if (std::all_of(w.begin(), w.end(), [](float v) { return v == 0; })) w[0] = 1;
  return w;
}

double objective_slack(const std::vector<float>& x, const std::vector<float>& w) {
  return 1e-12 * sqb::detail::optimal_sse(x, w, 1);
}

}  // namespace

TEST_CASE("weighted optimal k-means equals a weighted brute force on many seeds", "[kmeans_weighted]") {
  std::mt19937_64 g(77);
  for (int trial = 0; trial < 240; ++trial) {
    const int vkind = trial % 3, wkind = (trial / 3) % 4;
    const std::size_t n = 1 + static_cast<std::size_t>(unit(g) * 120);
    const std::vector<float> x = values(g, n, vkind), w = weights(g, n, wkind);
    const SortedBlock d(x, w);
    const std::size_t m = d.distinct_count();
    const std::size_t k =
        1 + static_cast<std::size_t>(unit(g) * static_cast<double>(std::min<std::size_t>(m, 25)));
    INFO("trial " << trial << " values " << vkind << " weights " << wkind << " N=" << n << " M=" << m
                  << " K=" << k);
    const Brute b = brute_force(x, w, k);
    const double slack = objective_slack(x, w);
    for (const auto& r :
         {sqb::detail::kmeans_optimal_dp(d, k), sqb::detail::kmeans_optimal_smawk(d, k),
          sqb::detail::kmeans_optimal_dnc(d, k), sqb::detail::kmeans_optimal_reference(d, k)}) {
      CHECK(std::fabs(r.sse - b.sse) <= 1e-12 * b.sse + slack);
      REQUIRE(r.centroids.size() == k);
      CHECK(std::is_sorted(r.centroids.begin(), r.centroids.end()));
      // The reported SSE is the SSE of the reported partition, about its reported centroids.
      double sse = 0;
      for (std::size_t j = 0; j < k; ++j)
        for (std::size_t i = r.bounds[j]; i < r.bounds[j + 1]; ++i)
          sse += d.weights()[i] * (d.values()[i] - r.centroids[j]) * (d.values()[i] - r.centroids[j]);
      CHECK(std::fabs(sse - b.sse) <= 1e-9 * b.sse + slack);
    }
    CHECK(std::fabs(sqb::detail::optimal_sse(x, w, k) - b.sse) <= 1e-12 * b.sse + slack);
    // Continuous values and positive weights: the optimum is unique, so are its bounds.
    if (vkind == 0 && wkind != 1 && wkind != 3)
      CHECK(sqb::detail::kmeans_optimal_dp(d, k).bounds == b.bounds);
  }
}

TEST_CASE("weighted optimal k-means equals divide and conquer on larger blocks", "[kmeans_weighted]") {
  std::mt19937_64 g(2);
  const std::vector<float> x = sqbtest::draw("laplace", 20000, 41);
  const int wkind = GENERATE(1, 2, 3);
  const std::vector<float> w = weights(g, x.size(), wkind);
  const SortedBlock d(x, w);
  for (const std::size_t k : {2, 7, 64, 300}) {
    INFO("weights " << wkind << " K=" << k);
    const auto fast = sqb::detail::kmeans_optimal_dp(d, k);
    const auto dnc = sqb::detail::kmeans_optimal_dnc(d, k);
    CHECK(std::fabs(fast.sse - dnc.sse) <= 1e-12 * dnc.sse + objective_slack(x, w));
    CHECK(std::is_sorted(fast.centroids.begin(), fast.centroids.end()));
  }
}

TEST_CASE("weighted optimal k-means equals the best of all K^N assignments", "[kmeans_weighted]") {
  std::mt19937_64 g(5);
  for (int trial = 0; trial < 150; ++trial) {
    const std::size_t n = 1 + static_cast<std::size_t>(unit(g) * 8);
    const std::size_t k = 1 + static_cast<std::size_t>(unit(g) * 4);
    std::size_t pow = 1;
    for (std::size_t i = 0; i < n; ++i)
      pow *= k;
    if (pow > 70000) continue;
    const std::vector<float> x = values(g, n, trial % 3), w = weights(g, n, (trial / 3) % 4);
    const double best = exhaustive(x, w, k);
    const double sse = sqb::detail::optimal_sse(x, w, k);
    INFO("trial " << trial << " N=" << n << " K=" << k);
    CHECK(std::fabs(sse - best) <= 1e-12 * best + objective_slack(x, w));
    const SortedBlock d(x, w);
    if (k <= d.distinct_count()) {
      CHECK(std::fabs(sqb::detail::kmeans_optimal_dp(d, k).sse - best) <=
            1e-12 * best + objective_slack(x, w));
    } else {
      CHECK(best == 0);  // fewer distinct values of positive weight than levels: exact
      CHECK(sse == 0);
    }
  }
}

TEST_CASE("unit weights give the unweighted results bit for bit", "[kmeans_weighted]") {
  const std::vector<float> x = sqbtest::draw("student_t nu=2", 2000, 3);
  const std::vector<float> ones(x.size(), 1.0f);
  const SortedBlock plain(x), unit_w(x, ones);
  REQUIRE(unit_w.weighted());
  for (const std::size_t k : {1, 5, 64}) {
    const auto a = sqb::detail::kmeans_optimal_dp(plain, k);
    const auto b = sqb::detail::kmeans_optimal_dp(unit_w, k);
    CHECK(a.sse == b.sse);
    CHECK(a.bounds == b.bounds);
    CHECK(a.centroids == b.centroids);
    const auto init = sqb::detail::init_quantile(plain, k);
    CHECK(init == sqb::detail::init_quantile(unit_w, k));
    const auto la = sqb::detail::lloyd_sorted(plain, init, {1000, 0.0});
    const auto lb = sqb::detail::lloyd_sorted(unit_w, init, {1000, 0.0});
    CHECK(la.centroids == lb.centroids);
    CHECK(la.iterations == lb.iterations);
    const auto na = sqb::detail::lloyd_naive(x, init, {50, 0.0});
    const auto nb = sqb::detail::lloyd_naive(x, init, {50, 0.0}, ones);
    CHECK(na.centroids == nb.centroids);
    CHECK(na.sse == nb.sse);
  }
}

TEST_CASE("integer weights equal repeating each value that many times", "[kmeans_weighted]") {
  std::mt19937_64 g(11);
  const std::vector<float> x = sqbtest::draw("gaussian", 500, 21);
  std::vector<float> w(x.size()), rep;
  for (std::size_t i = 0; i < x.size(); ++i) {
    w[i] = static_cast<float>(1 + static_cast<int>(unit(g) * 4));
    for (int r = 0; r < static_cast<int>(w[i]); ++r)
      rep.push_back(x[i]);
  }
  const SortedBlock weighted(x, w), repeated(rep);
  for (const std::size_t k : {2, 9, 50}) {
    const auto a = sqb::detail::kmeans_optimal_dp(weighted, k);
    const auto b = sqb::detail::kmeans_optimal_dp(repeated, k);
    INFO("K=" << k);
    CHECK(std::fabs(a.sse - b.sse) <= 1e-12 * b.sse + objective_slack(x, w));
    for (std::size_t j = 0; j < k; ++j)
      CHECK_THAT(a.centroids[j], WithinRel(b.centroids[j], 1e-12));
  }
}

TEST_CASE("zero weights: those values are left out, all zero means unweighted", "[kmeans_weighted]") {
  std::vector<float> x = sqbtest::draw("laplace", 300, 4), w(x.size(), 1.0f);
  std::vector<float> kept;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (i % 3 == 0) {
      w[i] = 0;
      if (i % 2 == 0) x[i] = 1e6f;  // far outliers of weight 0 must not pull a level
    } else {
      kept.push_back(x[i]);
    }
  }
  const SortedBlock d(x, w), only_kept(kept);
  CHECK(d.size() == kept.size());
  CHECK(d.max() < 1e6f);
  for (const std::size_t k : {1, 4, 30}) {
    const auto a = sqb::detail::kmeans_optimal_dp(d, k);
    const auto b = sqb::detail::kmeans_optimal_dp(only_kept, k);
    CHECK(a.centroids == b.centroids);
    CHECK(a.sse == b.sse);
    CHECK(sqb::detail::optimal_sse(x, w, k) == b.sse);
  }
  // All weights 0: every codebook has weighted SSE 0, and the block is the unweighted one.
  const std::vector<float> zeros(x.size(), 0.0f);
  const SortedBlock z(x, zeros), plain(x);
  CHECK_FALSE(z.weighted());
  CHECK(z.size() == x.size());
  CHECK(sqb::detail::kmeans_optimal_dp(z, 7).centroids == sqb::detail::kmeans_optimal_dp(plain, 7).centroids);
  const auto init = sqb::detail::init_uniform(plain, 7);
  CHECK(sqb::detail::lloyd_naive(x, init, {100, 0.0}, zeros).centroids ==
        sqb::detail::lloyd_naive(x, init, {100, 0.0}).centroids);
}

TEST_CASE("weights must be finite, >= 0 and one per value", "[kmeans_weighted][bad-input]") {
  const std::vector<float> x = {1.0f, 2.0f, 3.0f};
  const auto bad = [&](std::vector<float> w, const std::string& what) {
    INFO(what);
    CHECK_THROWS_WITH(SortedBlock(x, w), Catch::Contains(what));
    CHECK_THROWS_AS(sqb::detail::lloyd_naive(x, {1.0, 2.0}, {}, w), sqb::Error);
    CHECK_THROWS_AS(sqb::detail::optimal_sse(x, w, 2), sqb::Error);
  };
  bad({1.0f, -1.0f, 1.0f}, "element 1");
  bad({1.0f, 1.0f, std::numeric_limits<float>::quiet_NaN()}, "element 2");
  bad({std::numeric_limits<float>::infinity(), 1.0f, 1.0f}, "element 0");
  bad({1.0f, 1.0f}, "2 weights for 3 values");
}

TEST_CASE("weighted Lloyd: sorted and naive give the same iterates", "[kmeans_weighted][kmeans]") {
  std::mt19937_64 g(3);
  const std::vector<float> x = sqbtest::draw("gaussian", 20000, 5);
  const int wkind = GENERATE(1, 2, 3);
  const std::vector<float> w = weights(g, x.size(), wkind);
  const SortedBlock d(x, w);
  const std::size_t k = GENERATE(4, 16, 64);
  for (int init_kind = 0; init_kind < 4; ++init_kind) {
    const std::vector<double> init = init_kind == 0   ? sqb::detail::init_quantile(d, k)
                                     : init_kind == 1 ? sqb::detail::init_uniform(d, k)
                                     : init_kind == 2 ? sqb::detail::init_kmeanspp(d, k, 9)
                                                      : sqb::detail::init_greedy(d, d.values()[0], k);
    INFO("weights " << wkind << " K=" << k << " init " << init_kind);
    const auto a = sqb::detail::lloyd_sorted(d, init, {2000, 0.0});
    const auto b = sqb::detail::lloyd_naive(x, init, {2000, 0.0}, w);
    CHECK(a.iterations == b.iterations);
    CHECK(a.converged == b.converged);
    for (std::size_t j = 0; j < k; ++j)
      CHECK_THAT(a.centroids[j], WithinRel(b.centroids[j], 1e-9));
    CHECK_THAT(a.sse, WithinRel(b.sse, 1e-9));
    const auto c = sqb::detail::lloyd_encoded(x, init, {5, 0.0}, w);
    const auto s5 = sqb::detail::lloyd_sorted(d, init, {5, 0.0});
    for (std::size_t j = 0; j < k; ++j)
      CHECK_THAT(c.centroids[j], WithinRel(s5.centroids[j], 1e-5));
  }
}

TEST_CASE("weighted Lloyd stops at weighted means and never beats the weighted optimum",
          "[kmeans_weighted]") {
  std::mt19937_64 g(8);
  const std::vector<float> x = sqbtest::draw("laplace", 5000, 6);
  const std::vector<float> w = weights(g, x.size(), 2);
  const SortedBlock d(x, w);
  for (const std::size_t k : {3, 16}) {
    const auto r = sqb::detail::lloyd_sorted(d, sqb::detail::init_kmeanspp(d, k, 1), {100000, 0.0});
    REQUIRE(r.converged);
    // Every centroid is the weighted mean of the values nearest to it (a fixed point of the weighted update).
    std::vector<double> sw(k, 0), swx(k, 0);
    double sse = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      std::size_t best = 0;
      for (std::size_t j = 1; j < k; ++j)
        if (std::fabs(x[i] - r.centroids[j]) < std::fabs(x[i] - r.centroids[best])) best = j;
      sw[best] += w[i];
      swx[best] += static_cast<double>(w[i]) * x[i];
      sse += w[i] * (x[i] - r.centroids[best]) * (x[i] - r.centroids[best]);
    }
    for (std::size_t j = 0; j < k; ++j)
      CHECK_THAT(r.centroids[j], WithinRel(swx[j] / sw[j], 1e-9));
    CHECK_THAT(r.sse, WithinRel(sse, 1e-9));
    CHECK(sqb::detail::optimal_sse(x, w, k) <= r.sse * (1 + 1e-12));
  }
}

TEST_CASE("weighted k-means++ draws the first centre by w and the next by w * D^2", "[kmeans_weighted]") {
  // Values 0, 1, 10 with weights 1, 2, 1. First draw: P(0) = 1/4, P(1) = 1/2, P(10) = 1/4. After a first
  // centre at 1 the masses w D^2 are 1, 0, 81: the second centre is 10 with probability 81/82.
  const std::vector<float> x = {10.0f, 0.0f, 1.0f};
  const std::vector<float> w = {1.0f, 1.0f, 2.0f};
  const SortedBlock d(x, w);
  const int trials = 4000;
  int first_is_1 = 0, with_1 = 0, pair_1_10 = 0;
  for (int s = 0; s < trials; ++s) {
    const auto one = sqb::detail::init_kmeanspp(d, 1, static_cast<std::uint64_t>(s));
    first_is_1 += one[0] == 1.0;
    if (one[0] != 1.0) continue;
    const auto two = sqb::detail::init_kmeanspp(d, 2, static_cast<std::uint64_t>(s));
    ++with_1;
    pair_1_10 += two == std::vector<double>{1.0, 10.0};
  }
  // Binomial standard errors: sqrt(0.25 / 4000) = 0.008 and sqrt(0.012 / 2000) = 0.0025; 5 sigma.
  CHECK(std::fabs(first_is_1 / static_cast<double>(trials) - 0.5) < 0.04);
  CHECK(std::fabs(pair_1_10 / static_cast<double>(with_1) - 81.0 / 82.0) < 0.0125);
  // Deterministic per seed; only values of positive weight are ever drawn.
  const std::vector<float> wz = {0.0f, 1.0f, 1.0f};
  const SortedBlock dz(x, wz);
  for (int s = 0; s < 200; ++s) {
    const auto c = sqb::detail::init_kmeanspp(dz, 2, static_cast<std::uint64_t>(s));
    CHECK(c == std::vector<double>{0.0, 1.0});
  }
  CHECK(sqb::detail::init_kmeanspp(d, 3, 5) == sqb::detail::init_kmeanspp(d, 3, 5));
}

TEST_CASE("weighted quantile init sits at the weighted quantiles", "[kmeans_weighted]") {
  // Values 0..9, weight 9 on the value 0 and 1 on the others: half the weight (9 of 18) is at 0.
  std::vector<float> x(10), w(10, 1.0f);
  std::iota(x.begin(), x.end(), 0.0f);
  w[0] = 9;
  const SortedBlock d(x, w);
  // Targets (j + 1/2) 18 / 3 = 3, 9, 15: cumulative weights 9, 10, ..., 18 -> values 0, 1, 7.
  CHECK(sqb::detail::init_quantile(d, 3) == std::vector<double>{0.0, 1.0, 7.0});
}
