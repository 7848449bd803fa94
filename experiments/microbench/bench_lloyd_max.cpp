// Lloyd-Max solve times (the target: every b <= 12 to a 1e-12 residual in a few milliseconds).
// Each solve is cold: solve_lloyd_max() runs the whole chain b' = 1..b that the Newton finish starts from,
// with no cache; the counters report the last level's Lloyd and Newton steps and the final residual.
//
//   build/experiments/sqbench_micro --benchmark_filter=lloyd_max

#include <benchmark/benchmark.h>

#include <limits>
#include <string>

#include "sqb/lloyd_max.hpp"

namespace {

sqb::Law law_of(int which) {
  switch (which) {
    case 0:
      return sqb::Law::gaussian();
    case 1:
      return sqb::Law::sphere(128);
    case 2:
      return sqb::Law::laplace();
    default:
      return sqb::Law::student_t(5);
  }
}

void BM_lloyd_max_solve(benchmark::State& state) {
  const sqb::Law law = law_of(static_cast<int>(state.range(0)));
  const auto bits = static_cast<unsigned>(state.range(1));
  sqb::LloydMaxSolution sol;
  for (auto _ : state) {
    sol = sqb::solve_lloyd_max(law, bits);
    benchmark::DoNotOptimize(sol.levels.data());
  }
  state.SetLabel(law.to_string());
  state.counters["lloyd"] = sol.lloyd_iterations;
  state.counters["newton"] = sol.newton_iterations;
  state.counters["residual"] = sol.residual;
}

// A cached lookup: what a sweep pays per block once the table is solved.
void BM_lloyd_max_cached(benchmark::State& state) {
  const sqb::Law law = sqb::Law::sphere(128);
  sqb::lloyd_max_solution(law, 8);
  for (auto _ : state)
    benchmark::DoNotOptimize(sqb::lloyd_max_solution(law, 8).get());
}

void BM_gaussian_conditional_expectation(benchmark::State& state) {
  const double inf = std::numeric_limits<double>::infinity();
  double a = 0.25;
  for (auto _ : state) {
    benchmark::DoNotOptimize(sqb::gaussian_conditional_expectation(1.0, a, a + 0.01));
    benchmark::DoNotOptimize(sqb::gaussian_conditional_expectation(1.0, a, inf));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 2));
}

}  // namespace

BENCHMARK(BM_lloyd_max_solve)
    ->ArgsProduct({{0, 1, 2, 3}, {4, 8, 12}})
    ->ArgNames({"law", "b"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_lloyd_max_solve)
    ->Args({0, 16})
    ->Args({1, 16})
    ->ArgNames({"law", "b"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_lloyd_max_cached);
BENCHMARK(BM_gaussian_conditional_expectation);
