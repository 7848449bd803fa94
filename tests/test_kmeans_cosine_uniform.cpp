// The foundation's strategies against published/computed numbers (tests/data/REFERENCE.md) and against their
// slow references.

#include <catch2/catch.hpp>

#include <cmath>

#include "detail/lloyd_1d.hpp"
#include "helpers.hpp"
#include "sqb/metrics.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

using Catch::Matchers::WithinRel;

namespace {

using Run = sqbtest::Run;
using sqbtest::quantize;

}  // namespace

TEST_CASE("cosine on N(0,1), N = 1e6, K = 256: MSE within 10% of 2.65e-4 (REFERENCE.md)",
          "[cosine][reference]") {
  const sqb::Tensor t = sqbtest::tensor(1, 1000000, 0);
  const Run r = quantize("cosine", 256, t);
  CHECK_THAT(r.metrics.mse, WithinRel(2.65e-4, 0.10));
}

TEST_CASE("cosine levels are the Chebyshev nodes mapped onto [min, max]", "[cosine]") {
  const sqb::Tensor t(1, 3, {-2.0f, 0.0f, 6.0f});
  const Run r = quantize("cosine", 4, t);
  const auto levels = r.designs[0].codebook.levels();
  for (std::size_t i = 0; i < 4; ++i) {
    const double node = std::cos((2.0 * static_cast<double>(4 - i) - 1) * M_PI / 8.0);  // ascending order
    CHECK_THAT(levels[i], WithinRel(static_cast<float>(2.0 + 4.0 * node), 1e-6f));
  }
}

TEST_CASE("cosine refine=R lowers the MSE and runs R Lloyd steps", "[cosine]") {
  const sqb::Tensor t = sqbtest::tensor(1, 100000, 2);
  const Run r0 = quantize("cosine", 64, t);
  const Run r1 = quantize("cosine refine=1", 64, t);
  const Run r2 = quantize("cosine refine=2", 64, t);
  CHECK(r1.metrics.mse < r0.metrics.mse);
  CHECK(r2.metrics.mse < r1.metrics.mse);
  CHECK(r1.max_iterations() == 1);
  CHECK(r2.max_iterations() == 2);
}

TEST_CASE("kmeans sorted, quantile init, N = 1e6, K = 16: MSE within 0.5% of Lloyd-Max 0.009501",
          "[kmeans][reference]") {
  const sqb::Tensor t = sqbtest::tensor(1, 1000000, 0);
  const Run r = quantize("kmeans init=quantile max_iter=100000 tol=0", 16, t);
  CHECK(r.designs[0].converged);
  CHECK_THAT(r.metrics.mse, WithinRel(0.009501008008, 0.005));
}

TEST_CASE("kmeans naive and sorted give the same codebook on the same data and init", "[kmeans]") {
  const std::string init = GENERATE("quantile", "uniform", "cosine", "greedy", "kmeans++");
  const std::size_t k = GENERATE(4, 16, 64);
  const sqb::Tensor t = sqbtest::tensor(1, 20000, 5);
  const Run sorted = quantize("kmeans algo=sorted tol=0 max_iter=2000 init=" + init, k, t, "tensor", 9);
  const Run naive = quantize("kmeans algo=naive tol=0 max_iter=2000 init=" + init, k, t, "tensor", 9);
  const auto a = sorted.designs[0].codebook.levels();
  const auto b = naive.designs[0].codebook.levels();
  INFO("init=" << init << " k=" << k);
  CHECK(sorted.designs[0].iterations == naive.designs[0].iterations);
  CHECK(sorted.designs[0].converged == naive.designs[0].converged);
  for (std::size_t i = 0; i < k; ++i)
    CHECK_THAT(a[i], WithinRel(b[i], 1e-6f));
}

TEST_CASE("greedy init on sorted data equals the O(N K) farthest-point reference", "[kmeans]") {
  const std::size_t k = GENERATE(1, 2, 7, 64, 300);
  const std::vector<float> x = sqbtest::draw("laplace", 5000, k);
  const sqb::detail::SortedBlock sorted(x);
  CHECK(sqb::detail::init_greedy(sorted, x.front(), k) == sqb::detail::init_greedy_reference(x, k));
}

TEST_CASE("kmeans++ init: distinct data values, sorted, deterministic per seed", "[kmeans]") {
  const std::vector<float> x = sqbtest::draw("gaussian", 10000, 4);
  const sqb::detail::SortedBlock sorted(x);
  const auto a = sqb::detail::init_kmeanspp(sorted, 32, 7);
  CHECK(a == sqb::detail::init_kmeanspp(sorted, 32, 7));
  CHECK(a != sqb::detail::init_kmeanspp(sorted, 32, 8));
  REQUIRE(a.size() == 32);
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(std::adjacent_find(a.begin(), a.end()) == a.end());
  for (const double c : a)
    CHECK(std::binary_search(sorted.values().begin(), sorted.values().end(), static_cast<float>(c)));
}

TEST_CASE("kmeans records iterations and whether it converged", "[kmeans]") {
  const sqb::Tensor t = sqbtest::tensor(1, 50000, 3);
  const Run capped = quantize("kmeans init=uniform max_iter=3 tol=0", 64, t);
  CHECK(capped.designs[0].iterations == 3);
  CHECK_FALSE(capped.designs[0].converged);
  const Run full = quantize("kmeans init=uniform max_iter=100000", 64, t);
  CHECK(full.designs[0].converged);
  CHECK(full.designs[0].iterations > 3);
  CHECK(full.metrics.mse < capped.metrics.mse);
}

TEST_CASE("kmeans re-seeds empty clusters deterministically", "[kmeans]") {
  // Two far clusters and a quantile init that puts several centroids in one of them.
  std::vector<float> x;
  for (int i = 0; i < 1000; ++i)
    x.push_back(static_cast<float>(i) * 1e-3f);
  for (int i = 0; i < 10; ++i)
    x.push_back(1000.0f + static_cast<float>(i));
  const sqb::Tensor t(1, x.size(), x);
  const std::string algo = GENERATE("sorted", "naive");
  const Run r = quantize("kmeans init=uniform tol=0 algo=" + algo, 8, t);
  const auto levels = r.designs[0].codebook.levels();
  CHECK(std::adjacent_find(levels.begin(), levels.end()) == levels.end());  // every centroid in use
  CHECK(r.designs[0].converged);
  CHECK(r.metrics.mse < 1.0);
}

TEST_CASE("uniform levels span [min, max] and symmetric=1 is the absmax int-b grid", "[uniform]") {
  const sqb::Tensor t(1, 4, {-1.0f, 0.0f, 0.5f, 3.0f});
  const Run r = quantize("uniform", 5, t);
  CHECK(std::vector<float>(r.designs[0].codebook.levels().begin(), r.designs[0].codebook.levels().end()) ==
        std::vector<float>{-1.0f, 0.0f, 1.0f, 2.0f, 3.0f});
  const Run s = quantize("uniform symmetric=1", 16, t);  // int4: -7..7 times 3/7
  const auto lv = s.designs[0].codebook.levels();
  CHECK(lv.front() == -3.0f);
  CHECK(lv[7] == 0.0f);
  CHECK(lv[14] == 3.0f);
  CHECK(lv[15] == 3.0f);  // the unused 16th code repeats the top level
  CHECK_THAT(lv[8], WithinRel(3.0f / 7.0f, 1e-6f));
  CHECK_THROWS_AS(sqb::make_quantizer("uniform symmetric=1", {2, 0}), sqb::NotApplicable);
}

TEST_CASE("uniform on N(0,1), N = 1e6, K = 256 gives about 1.1e-4 (REFERENCE.md)", "[uniform][reference]") {
  const sqb::Tensor t = sqbtest::tensor(1, 1000000, 0);
  CHECK_THAT(quantize("uniform", 256, t).metrics.mse, WithinRel(1.1e-4, 0.15));
}

TEST_CASE("Lloyd steps by encode-and-average match the sorted Lloyd iterates", "[cosine][kmeans]") {
  const std::vector<float> x = sqbtest::draw("gaussian", 50000, 31);
  const sqb::detail::SortedBlock sorted(x);
  const std::size_t k = GENERATE(4, 64, 300);
  const auto init = sqb::detail::init_cosine(sorted, k);
  const auto a = sqb::detail::lloyd_encoded(x, init, {5, 0.0});
  const auto b = sqb::detail::lloyd_sorted(sorted, init, {5, 0.0});
  INFO("K=" << k);
  CHECK(a.iterations == b.iterations);
  // The encoded version assigns with float32 levels; the sorted one with double centroids.
  for (std::size_t i = 0; i < k; ++i)
    CHECK_THAT(a.centroids[i], WithinRel(b.centroids[i], 1e-5));
  CHECK_THAT(a.sse, WithinRel(b.sse, 1e-6));
}
