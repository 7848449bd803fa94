// Exactly optimal 1-D k-means: the Lagrangian search (kmeans_optimal_dp) and the layered SMAWK and
// divide-and-conquer programmes against the O(K N^2) textbook one and against Lloyd, duplicate values, ties,
// extreme data, the memory guard, and the tests/data/REFERENCE.md numbers.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <random>

#include "detail/kmeans_dp.hpp"
#include "helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

using Catch::Matchers::WithinRel;

namespace {

// Two optimal SSEs agree to 1e-12 relative, with an absolute slack of 1e-12 of the one-cluster SSE (the
// prefix sums round relative to the whole block, so an optimum near 0 is known to that much only).
void check_same_sse(double a, double b, const sqb::detail::SortedBlock& d) {
  const double slack = 1e-12 * sqb::detail::optimal_sse(d, 1);
  CHECK(std::fabs(a - b) <= 1e-12 * std::max(std::fabs(a), std::fabs(b)) + slack);
}

// Every invariant a clustering of `d` into k clusters must satisfy, whichever optimum it is.
void check_shape(const sqb::detail::OptimalClustering& r, const sqb::detail::SortedBlock& d, std::size_t k) {
  REQUIRE(r.bounds.size() == k + 1);
  REQUIRE(r.centroids.size() == k);
  CHECK(r.bounds.front() == 0);
  CHECK(r.bounds.back() == d.size());
  const auto v = d.values();
  for (std::size_t j = 0; j < k; ++j) {
    REQUIRE(r.bounds[j] < r.bounds[j + 1]);
    CHECK(r.centroids[j] >= v[r.bounds[j]]);
    CHECK(r.centroids[j] <= v[r.bounds[j + 1] - 1]);
  }
  CHECK(std::is_sorted(r.centroids.begin(), r.centroids.end()));
}

// Uniform in [0, 1) from the top 53 bits: the same numbers with every standard library.
double unit(std::mt19937_64& g) {
  return static_cast<double>(g() >> 11) * 0x1.0p-53;
}

}  // namespace

TEST_CASE("optimal k-means: Lagrangian, SMAWK and divide and conquer equal the O(K N^2) programme",
          "[kmeans_optimal]") {
  const std::string law = GENERATE("gaussian", "laplace", "student_t nu=2", "uniform");
  const std::size_t k = GENERATE(1, 2, 3, 7, 16, 40);
  const std::vector<float> x = sqbtest::draw(law, 300, k + 17);
  const sqb::detail::SortedBlock sorted(x);
  const auto fast = sqb::detail::kmeans_optimal_dp(sorted, k);
  const auto smawk = sqb::detail::kmeans_optimal_smawk(sorted, k);
  const auto dnc = sqb::detail::kmeans_optimal_dnc(sorted, k);
  const auto slow = sqb::detail::kmeans_optimal_reference(sorted, k);
  INFO(law << " K=" << k);
  for (const auto* r : {&fast, &smawk, &dnc}) {
    CHECK_THAT(r->sse, WithinRel(slow.sse, 1e-12));
    check_shape(*r, sorted, k);
    // Continuous data: the optimum is unique, so are its bounds.
    CHECK(r->bounds == slow.bounds);
  }
}

TEST_CASE("optimal k-means on many seeds, sizes and K, with duplicate values and ties", "[kmeans_optimal]") {
  std::mt19937_64 g(20240611);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t n = 1 + static_cast<std::size_t>(unit(g) * 250);
    // Kinds: continuous; rounded to a coarse grid (many duplicates, many tied optima); a few distinct values
    // repeated; equally spaced integers (symmetric ties); two identical far blobs (ties between the halves).
    const int kind = trial % 5;
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) {
      const double u = unit(g);
      switch (kind) {
        case 0:
          x[i] = static_cast<float>(std::tan(3.0 * (u - 0.5)));
          break;
        case 1:
          x[i] = static_cast<float>(std::round(20.0 * (u - 0.5)) / 4.0);
          break;
        case 2:
          x[i] = static_cast<float>(std::floor(u * 4.0));
          break;
        case 3:
          x[i] = static_cast<float>(i % 17);
          break;
        default:
          x[i] = static_cast<float>((i % 2 ? 1000.0 : 0.0) + std::floor(u * 6.0));
          break;
      }
    }
    const sqb::detail::SortedBlock sorted(x);
    const std::size_t m = sorted.distinct_count();
    const std::size_t k =
        1 + static_cast<std::size_t>(unit(g) * static_cast<double>(std::min<std::size_t>(m, 40)));
    INFO("trial " << trial << " kind " << kind << " N=" << n << " M=" << m << " K=" << k);
    const auto fast = sqb::detail::kmeans_optimal_dp(sorted, k);
    const auto smawk = sqb::detail::kmeans_optimal_smawk(sorted, k);
    const auto dnc = sqb::detail::kmeans_optimal_dnc(sorted, k);
    const auto slow = sqb::detail::kmeans_optimal_reference(sorted, k);
    for (const auto* r : {&fast, &smawk, &dnc}) {
      check_same_sse(r->sse, slow.sse, sorted);
      check_shape(*r, sorted, k);
    }
    // Runs of equal values are never split.
    for (std::size_t j = 1; j < k; ++j)
      CHECK(sorted.values()[fast.bounds[j] - 1] < sorted.values()[fast.bounds[j]]);
    CHECK(sqb::detail::optimal_sse(sorted, k) == fast.sse);
  }
}

TEST_CASE("optimal k-means: each value repeated r times has r times the SSE and the same levels",
          "[kmeans_optimal]") {
  const std::vector<float> x = sqbtest::draw("laplace", 400, 8);
  const std::size_t r = GENERATE(2, 5);
  std::vector<float> xr;
  for (const float v : x)
    for (std::size_t i = 0; i < r; ++i)
      xr.push_back(v);
  const sqb::detail::SortedBlock once(x), rep(xr);
  REQUIRE(rep.distinct_count() == once.distinct_count());
  for (const std::size_t k : {1, 4, 33}) {
    const auto a = sqb::detail::kmeans_optimal_dp(once, k);
    const auto b = sqb::detail::kmeans_optimal_dp(rep, k);
    INFO("r=" << r << " K=" << k);
    check_same_sse(b.sse, static_cast<double>(r) * a.sse, rep);
    for (std::size_t j = 0; j < k; ++j) {
      CHECK(b.bounds[j] == r * a.bounds[j]);
      CHECK_THAT(b.centroids[j], WithinRel(a.centroids[j], 1e-12));
    }
  }
}

TEST_CASE("optimal k-means on float16-rounded data equals divide and conquer and the reference",
          "[kmeans_optimal]") {
  std::vector<float> x = sqbtest::draw("gaussian", 3000, 12);
  for (float& v : x)
    v = sqb::npy::half_to_float(sqb::npy::float_to_half(v * 0.25f));
  const sqb::detail::SortedBlock sorted(x);
  CHECK(sorted.distinct_count() < x.size());
  for (const std::size_t k : {2, 16, 64, 256}) {
    INFO("K=" << k << " M=" << sorted.distinct_count());
    const auto fast = sqb::detail::kmeans_optimal_dp(sorted, k);
    check_shape(fast, sorted, k);
    check_same_sse(fast.sse, sqb::detail::kmeans_optimal_dnc(sorted, k).sse, sorted);
    check_same_sse(fast.sse, sqb::detail::kmeans_optimal_smawk(sorted, k).sse, sorted);
    if (k <= 16) check_same_sse(fast.sse, sqb::detail::kmeans_optimal_reference(sorted, k).sse, sorted);
  }
}

TEST_CASE("optimal k-means where D(K) is linear in K: the Lagrangian search splices two partitions",
          "[kmeans_optimal]") {
  // Two mirrored blobs of 4 integers: every cluster cost is exact in double, D(2) = 10, D(4) = 2, and D(3) =
  // 6 lies on the line between them, so no penalty lambda makes a 3-cluster partition the unique optimum; the
  // search must splice the 2- and 4-cluster ones. Same for 5 = between 4 and 6 on six blobs.
  const std::vector<float> two = {-1003, -1002, -1001, -1000, 1000, 1001, 1002, 1003};
  const sqb::detail::SortedBlock d2(two);
  const auto r3 = sqb::detail::kmeans_optimal_dp(d2, 3);
  CHECK_THAT(r3.sse, WithinRel(6.0, 1e-15));
  CHECK((r3.bounds == std::vector<std::size_t>{0, 2, 4, 8} ||
         r3.bounds == std::vector<std::size_t>{0, 4, 6, 8}));
  std::vector<float> six;
  for (const float centre : {-20000.0f, -10000.0f, -5000.0f, 5000.0f, 10000.0f, 20000.0f})
    for (const float off : {-3.0f, -1.0f, 1.0f, 3.0f})
      six.push_back(centre + off);
  const sqb::detail::SortedBlock d6(six);
  for (std::size_t k = 2; k <= 12; ++k) {
    INFO("K=" << k);
    check_same_sse(sqb::detail::kmeans_optimal_dp(d6, k).sse,
                   sqb::detail::kmeans_optimal_reference(d6, k).sse, d6);
    check_shape(sqb::detail::kmeans_optimal_dp(d6, k), d6, k);
  }
}

TEST_CASE("optimal k-means: Lagrangian search equals divide and conquer on larger blocks",
          "[kmeans_optimal]") {
  const std::string law = GENERATE("gaussian", "laplace", "student_t nu=2", "uniform");
  const bool half = GENERATE(false, true);
  std::vector<float> x = sqbtest::draw(law, 20000, 40);
  if (half)
    for (float& v : x)
      v = sqb::npy::half_to_float(sqb::npy::float_to_half(v));
  const sqb::detail::SortedBlock sorted(x);
  for (const std::size_t k : {2, 3, 5, 31, 200}) {
    INFO(law << (half ? " float16" : "") << " K=" << k);
    const auto fast = sqb::detail::kmeans_optimal_dp(sorted, k);
    check_shape(fast, sorted, k);
    check_same_sse(fast.sse, sqb::detail::kmeans_optimal_dnc(sorted, k).sse, sorted);
  }
}

TEST_CASE("optimal k-means keeps sorted, finite levels on data spanning 1e-44 to 1e31",
          "[kmeans_optimal][edge]") {
  // The fuzz_spec findings of the Lloyd tests, plus +-FLT_MAX and subnormals.
  const std::vector<std::vector<float>> blocks = {
      {0.0f, 0.0f, 6.338253e29f, 7.5545857e31f, 9.314275e-39f, 2.3326216e-38f, 0.0f, 0.0f,
       0.0f, 0.0f, 0.0f,         0.0f,          0.0f,          0.0f,           0.0f, 0.0f,
       0.0f, 8.0f, 0.0f,         0.0f,          0.0f,          2.3507735e-38f, 0.0f},
      {1.0f, 1.0f, -9.147676e-41f, 0.0f, 8.82818e-44f, 8.96831e-44f, 2.0000153f, 2.0000153f, 2.0000153f,
       5.1973984e31f, 1608.0089f, 5.0446745e-44f},
      {FLT_MAX, -FLT_MAX, 0.0f, FLT_MIN, -FLT_MIN, 1e-45f, 3.0f, -3.0f, FLT_MAX, 1e30f, -1e-30f}};
  for (const auto& x : blocks) {
    const sqb::detail::SortedBlock sorted(x);
    for (std::size_t k = 1; k <= sorted.distinct_count(); ++k) {
      INFO("N=" << x.size() << " K=" << k);
      for (const auto& r :
           {sqb::detail::kmeans_optimal_dp(sorted, k), sqb::detail::kmeans_optimal_dnc(sorted, k)}) {
        check_shape(r, sorted, k);
        for (const double c : r.centroids)
          CHECK(std::isfinite(c));
        CHECK(r.sse >= 0);
      }
    }
  }
}

TEST_CASE("optimal k-means refuses K = 0 and K above the number of distinct values", "[kmeans_optimal]") {
  const std::vector<float> x = {1.0f, 2.0f, 2.0f, 3.0f};
  const sqb::detail::SortedBlock sorted(x);
  CHECK_THROWS_AS(sqb::detail::kmeans_optimal_dp(sorted, 0), sqb::Error);
  CHECK_THROWS_WITH(sqb::detail::kmeans_optimal_dp(sorted, 4), Catch::Contains("3 distinct"));
  CHECK_THROWS_AS(sqb::detail::kmeans_optimal_dnc(sorted, 4), sqb::Error);
  CHECK_THROWS_AS(sqb::detail::kmeans_optimal_smawk(sorted, 4), sqb::Error);
  CHECK_THROWS_AS(sqb::detail::optimal_sse(sorted, 0), sqb::Error);
  CHECK(sqb::detail::optimal_sse(sorted, 3) == 0);
  CHECK(sqb::detail::optimal_sse(sorted, 7) == 0);
  CHECK_THAT(sqb::detail::optimal_sse(x, {}, 1), WithinRel(2.0, 1e-15));  // mean 2: 1 + 0 + 0 + 1
  CHECK_THROWS_AS(sqb::detail::optimal_sse(std::vector<float>{}, {}, 1), sqb::Error);
}

TEST_CASE("optimal k-means is never worse than Lloyd from any initialisation", "[kmeans_optimal]") {
  const sqb::Tensor t = sqbtest::tensor(1, 20000, 33);
  const std::size_t k = GENERATE(4, 16, 64);
  const auto mse = [&](const std::string& spec) { return sqb::quantize(t, spec, k).metrics.mse; };
  const double optimal = mse("kmeans_optimal");
  for (const std::string init : {"quantile", "kmeans++", "greedy", "uniform"}) {
    INFO("K=" << k << " init=" << init);
    // float32 levels can move the optimum by a few ulps of the MSE
    CHECK(optimal <= mse("kmeans tol=0 max_iter=100000 init=" + init) * (1 + 1e-9));
  }
}

TEST_CASE("optimal k-means on N(0,1), N = 1e6, K = 16 reaches the Lloyd-Max MSE (REFERENCE.md)",
          "[kmeans_optimal][reference]") {
  // tests/data/REFERENCE.md: a widely used DP returns 9.97e-3 on such a sample, while plain Lloyd from
  // Gaussian quantiles reaches 9.52e-3 (on its own sample). The exact optimum must be at or below Lloyd on
  // the same data.
  const std::vector<float> x = sqbtest::draw("gaussian", 1000000, 0);
  const sqb::detail::SortedBlock sorted(x);
  const auto r = sqb::detail::kmeans_optimal_dp(sorted, 16);
  const double mse = r.sse / static_cast<double>(x.size());
  const auto lloyd = sqb::detail::lloyd_sorted(sorted, sqb::detail::init_quantile(sorted, 16), {100000, 0.0});
  CHECK(lloyd.converged);
  CHECK(mse <= lloyd.sse / static_cast<double>(x.size()) * (1 + 1e-12));
  CHECK(mse < 9.97e-3 * 0.99);
  CHECK_THAT(mse, WithinRel(0.009501008008, 0.005));
  CHECK(sqb::detail::optimal_sse(x, {}, 16) == r.sse);
}

TEST_CASE("optimal k-means refuses a block above its memory budget", "[kmeans_optimal]") {
  // 100000 distinct values need about 7 MB (72 bytes each), above 1 MiB.
  const sqb::Tensor t = sqbtest::tensor(1, 100000, 3);
  const auto q = sqb::make_quantizer("kmeans_optimal max_table_gib=0.001", {256, 0});
  CHECK_THROWS_WITH(sqb::quantize(t, *q), Catch::Contains("max_table_gib"));
  // The memory is sized by the distinct values: 100000 values on 1000 distinct ones fit.
  std::vector<float> few(100000);
  for (std::size_t i = 0; i < few.size(); ++i)
    few[i] = static_cast<float>(i % 1000);
  CHECK_NOTHROW(sqb::quantize(sqb::Tensor(1, few.size(), few), *q));
}
