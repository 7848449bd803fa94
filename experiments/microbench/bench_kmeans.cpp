// Exact 1-D k-means: the Lagrangian search (kmeans_optimal_dp) against the layered SMAWK and
// divide-and-conquer (the previous default) programmes on the same sorted block, on N(0,1) float32 data, on
// the same data rounded to float16 (few distinct values), and with weights; and the weighted Lloyd machinery
// against the unweighted one. Items/s counts input values; the sort (SortedBlock) is built once outside the
// timed loop except in the with_sort variants, which time what the kmeans_optimal strategy does per block.
//
// kmeans_optimal/design/* time what the strategy's design does per block (exact, and sketch=4096 with its
// opt_ratio counter); kmeans_sort/* the block sort alone (vqsort on order keys against std::sort; and
// kmeans_sort/tiny/*: 65,536 blocks of 64, the tiny path's rank sort against std::sort per block, floats and
// (value, weight) pairs);
// kmeans_groups/fit/* the pipeline's fit stage with one codebook per group of 64 (exact against Lloyd).
// kmeans_tiny/* the design of 65,536 blocks of 64 N(0,1) values (what kmeans_optimal does per group of 64),
// K = 4, 8, 16: the tiny-block path (kmeans_tiny) against the general one (kmeans_sketch with a run per
// distinct value), which give the same levels bit for bit, unweighted and /weighted (a log-normal importance
// weight per value). Items/s counts blocks. kmeans_groups/fit/kmeans_optimal/weighted/* is the fit stage with
// a log-normal weight per column (activation importance, as `sqbench quantize --importance` gives).
//
//   build/experiments/sqbench_micro --benchmark_filter=kmeans_ --benchmark_repetitions=5
//   (add --benchmark_report_aggregates_only=true for medians only)

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "detail/kmeans_dp.hpp"
#include "detail/sort_keys.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"

namespace {

// N(0,1) values; `half` rounds them to float16 (at most 65536 distinct values, as in a float16 checkpoint).
const std::vector<float>& data(std::size_t n, bool half) {
  static std::map<std::pair<std::size_t, bool>, std::vector<float>> cache;
  auto& v = cache[{n, half}];
  if (v.empty()) {
    v = sqb::make_source("gaussian")->draw(n, 0).values;
    if (half)
      for (float& x : v)
        x = sqb::npy::half_to_float(sqb::npy::float_to_half(x));
  }
  return v;
}

// Log-normal importance weights spanning about four decades, independent of the values.
const std::vector<float>& weights(std::size_t n) {
  static std::map<std::size_t, std::vector<float>> cache;
  auto& w = cache[n];
  if (w.empty()) {
    const std::vector<float> z = sqb::make_source("gaussian")->draw(n, 1).values;
    w.resize(n);
    for (std::size_t i = 0; i < n; ++i)
      w[i] = std::exp(2.0f * z[i]);
  }
  return w;
}

enum class Solver { lagrangian, smawk, dnc, sse_only };

void run(benchmark::State& state, Solver solver, bool half, bool weighted) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const std::size_t k = static_cast<std::size_t>(state.range(1));
  const auto& x = data(n, half);
  const sqb::detail::SortedBlock sorted(
      x, weighted ? std::span<const float>(weights(n)) : std::span<const float>{});
  for (auto _ : state) {
    double sse = 0;
    switch (solver) {
      case Solver::lagrangian:
        sse = sqb::detail::kmeans_optimal_dp(sorted, k).sse;
        break;
      case Solver::smawk:
        sse = sqb::detail::kmeans_optimal_smawk(sorted, k).sse;
        break;
      case Solver::dnc:
        sse = sqb::detail::kmeans_optimal_dnc(sorted, k).sse;
        break;
      case Solver::sse_only:
        sse = sqb::detail::optimal_sse(sorted, k);
        break;
    }
    benchmark::DoNotOptimize(sse);
  }
  state.counters["distinct"] = static_cast<double>(sorted.distinct_count());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// What the strategy pays per block: the sort and prefix sums, then the programme.
void run_with_sort(benchmark::State& state, bool half) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const std::size_t k = static_cast<std::size_t>(state.range(1));
  const auto& x = data(n, half);
  for (auto _ : state) {
    const sqb::detail::SortedBlock sorted(x);
    benchmark::DoNotOptimize(sqb::detail::kmeans_optimal_dp(sorted, k).sse);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// The weighted machinery against the unweighted one on N = 1e6: building the SortedBlock (sort and prefix
// sums), Lloyd from the quantile start (tol = 0, at most 20 iterations; the counter says how many ran),
// sorted and naive.
enum class LloydStep { block, sorted, naive };

void run_lloyd(benchmark::State& state, LloydStep what, bool weighted) {
  const std::size_t n = 1000000;
  const std::size_t k = static_cast<std::size_t>(state.range(0));
  const auto& x = data(n, false);
  const std::span<const float> w = weighted ? std::span<const float>(weights(n)) : std::span<const float>{};
  const sqb::detail::SortedBlock sorted(x, w);
  const std::vector<double> init = sqb::detail::init_quantile(sorted, k);
  const sqb::detail::LloydOptions opt{20, 0.0};
  int iterations = 0;
  for (auto _ : state) {
    switch (what) {
      case LloydStep::block: {
        const sqb::detail::SortedBlock b(x, w);
        benchmark::DoNotOptimize(b.values().data());
        break;
      }
      case LloydStep::sorted:
        iterations = sqb::detail::lloyd_sorted(sorted, init, opt).iterations;
        break;
      case LloydStep::naive:
        iterations = sqb::detail::lloyd_naive(x, init, opt, w).iterations;
        break;
    }
  }
  if (what != LloydStep::block) state.counters["iterations"] = iterations;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// What kmeans_optimal's design does per block, from the unsorted block: exact (every run of equal values a
// group: sort, run sums, the Lagrangian search, levels) or sketch=4096 (the same over at most ~2 x 4096
// groups). The counter opt_ratio is the sketch's SSE over the optimum.
void run_design(benchmark::State& state, std::size_t runs) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const std::size_t k = static_cast<std::size_t>(state.range(1));
  const auto& x = data(n, false);
  const std::size_t r = runs ? runs : n;
  double sse = 0;
  for (auto _ : state) {
    sse = sqb::detail::kmeans_sketch(x, {}, k, r).sse;
    benchmark::DoNotOptimize(sse);
  }
  if (runs) state.counters["opt_ratio"] = sse / sqb::detail::optimal_sse(x, {}, k);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// The block sort: Highway's vqsort on order keys (sort_floats) against std::sort on the floats, 1e6 N(0,1)
// values copied then sorted.
void run_sort(benchmark::State& state, bool vq) {
  const auto& x = data(static_cast<std::size_t>(state.range(0)), false);
  std::vector<float> v;
  for (auto _ : state) {
    v.assign(x.begin(), x.end());
    if (vq)
      sqb::detail::sort_floats(v);
    else
      std::sort(v.begin(), v.end());
    benchmark::DoNotOptimize(v.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * x.size()));
}

// 65,536 blocks of 64 N(0,1) values sorted one block at a time: sort_floats / sort_pairs (the rank sort on
// the CPU's widest SIMD target) or std::sort of the same blocks (pairs by value, then weight). Items/s counts
// blocks.
void run_tiny_sort(benchmark::State& state, bool rank, bool pairs) {
  const std::size_t n = 64, blocks = 65536;
  const auto& x = data(n * blocks, false);
  std::vector<float> w(x.size());
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = static_cast<float>(1 + i % 7);
  std::vector<float> v, vw;
  std::vector<std::pair<float, float>> p(n);
  for (auto _ : state) {
    v.assign(x.begin(), x.end());
    vw.assign(w.begin(), w.end());
    for (std::size_t b = 0; b < blocks; ++b) {
      const std::span<float> block(v.data() + b * n, n), bw(vw.data() + b * n, n);
      if (rank && pairs) {
        sqb::detail::sort_pairs(block, bw);
      } else if (rank) {
        sqb::detail::sort_floats(block);
      } else if (pairs) {
        for (std::size_t i = 0; i < n; ++i)
          p[i] = {block[i], bw[i]};
        std::sort(p.begin(), p.end());
        for (std::size_t i = 0; i < n; ++i)
          std::tie(block[i], bw[i]) = p[i];
      } else {
        std::sort(block.begin(), block.end());
      }
    }
    benchmark::DoNotOptimize(v.data());
    benchmark::DoNotOptimize(vw.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * blocks));
}

// Group codebooks: the fit stage of the pipeline (sqb::quantize_into's own timer; input check and measure
// stage off) for one codebook per group of 64 of a 1024 x 4096 N(0,1) tensor (65,536 blocks), K = 16, one
// thread. Items/s counts blocks.
void run_groups(benchmark::State& state, const char* spec, bool weighted = false) {
  const std::size_t rows = 1024, cols = 4096;
  static const std::vector<float> x = sqb::make_source("gaussian")->draw(rows * cols, 0).values;
  const sqb::Tensor t(rows, cols, x);
  const auto q = sqb::make_quantizer(spec, {16, 0});
  sqb::QuantizeOptions opt;
  opt.granularity = sqb::Granularity::parse("group:64");
  if (weighted) opt.column_weights = weights(cols);
  opt.check_input = false;
  opt.measure = false;
  sqb::Quantized scratch;
  for (auto _ : state) {
    sqb::StageTimes times;
    sqb::quantize_into(t, *q, opt, scratch, &times);
    state.SetIterationTime(times.fit);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * rows * cols / 64));
}

// The design of every block of 64 of a 65,536 x 64 N(0,1) matrix (the tensor of kmeans_groups, 1024 x 4096,
// cut the same way), tiny path or general path.
void run_tiny(benchmark::State& state, bool tiny, bool weighted) {
  const std::size_t n = 64, blocks = 65536;
  const std::size_t k = static_cast<std::size_t>(state.range(0));
  static const std::vector<float> x = sqb::make_source("gaussian")->draw(n * blocks, 0).values;
  const std::vector<float>& w = weights(n * blocks);
  std::vector<double> levels(k);
  for (auto _ : state) {
    double acc = 0;
    for (std::size_t b = 0; b < blocks; ++b) {
      const std::span<const float> block(x.data() + b * n, n);
      const std::span<const float> bw =
          weighted ? std::span<const float>(w.data() + b * n, n) : std::span<const float>();
      if (tiny) {
        sqb::detail::kmeans_tiny(block, bw, k, levels);
        acc += levels[0];
      } else {
        acc += sqb::detail::kmeans_sketch(block, bw, k, std::max(n, 2 * k)).centroids[0];
      }
    }
    benchmark::DoNotOptimize(acc);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * blocks));
}

void sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "k"})->Unit(benchmark::kMillisecond);
  for (const std::int64_t n : {100000, 1000000})
    for (const std::int64_t k : {16, 256})
      b->Args({n, k});
}

void big(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "k"})->Unit(benchmark::kMillisecond)->Args({1000000, 16})->Args({1000000, 256});
}

struct Entry {
  const char* name;
  Solver solver;
  bool half, weighted;
  void (*shape)(benchmark::internal::Benchmark*);
};

const Entry kEntries[] = {
    {"kmeans_dp/lagrangian", Solver::lagrangian, false, false, sizes},
    {"kmeans_dp/smawk", Solver::smawk, false, false, sizes},
    {"kmeans_dp/dnc", Solver::dnc, false, false, sizes},
    {"kmeans_dp/sse_only", Solver::sse_only, false, false, big},
    {"kmeans_dp/float16/lagrangian", Solver::lagrangian, true, false, big},
    {"kmeans_dp/float16/dnc", Solver::dnc, true, false, big},
    {"kmeans_dp/weighted/lagrangian", Solver::lagrangian, false, true, big},
    {"kmeans_dp/weighted/dnc", Solver::dnc, false, true, big},
};

// Registered at static initialisation, as BENCHMARK() does.
const bool registered = [] {
  for (const Entry& e : kEntries) {
    benchmark::RegisterBenchmark(e.name, [e](benchmark::State& s) {
      run(s, e.solver, e.half, e.weighted);
    })->Apply(e.shape);
  }
  for (const bool weighted : {false, true}) {
    const std::string suffix = weighted ? "/weighted" : "/unweighted";
    const auto add = [&](const char* name, LloydStep step, std::initializer_list<std::int64_t> ks) {
      auto* b = benchmark::RegisterBenchmark(
          (name + suffix).c_str(), [step, weighted](benchmark::State& s) { run_lloyd(s, step, weighted); });
      b->ArgName("k")->Unit(benchmark::kMillisecond);
      for (const std::int64_t k : ks)
        b->Arg(k);
    };
    add("kmeans_lloyd/sorted_block", LloydStep::block, {1});  // K plays no part
    add("kmeans_lloyd/sorted", LloydStep::sorted, {16, 256});
    add("kmeans_lloyd/naive", LloydStep::naive, {16});  // O(N K) per iteration: K = 256 takes seconds
  }
  benchmark::RegisterBenchmark("kmeans_optimal/design/exact", [](benchmark::State& s) {
    run_design(s, 0);
  })->Apply(big);
  benchmark::RegisterBenchmark("kmeans_optimal/design/sketch:4096", [](benchmark::State& s) {
    run_design(s, 4096);
  })->Apply(big);
  for (const char* spec : {"kmeans_optimal", "kmeans"}) {
    benchmark::RegisterBenchmark((std::string("kmeans_groups/fit/") + spec + "/group:64/k:16").c_str(),
                                 [spec](benchmark::State& s) { run_groups(s, spec); })
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime()
        ->Iterations(3);
  }
  benchmark::RegisterBenchmark("kmeans_groups/fit/kmeans_optimal/weighted/group:64/k:16",
                               [](benchmark::State& s) { run_groups(s, "kmeans_optimal", true); })
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime()
      ->Iterations(3);
  for (const bool weighted : {false, true}) {
    for (const bool tiny : {true, false}) {
      const std::string name = std::string("kmeans_tiny/") + (tiny ? "tiny" : "general") +
                               (weighted ? "/weighted" : "") + "/blocks:65536x64";
      benchmark::RegisterBenchmark(name.c_str(),
                                   [tiny, weighted](benchmark::State& s) { run_tiny(s, tiny, weighted); })
          ->ArgName("k")
          ->Arg(4)
          ->Arg(8)
          ->Arg(16)
          ->Unit(benchmark::kMillisecond);
    }
  }
  for (const bool vq : {true, false}) {
    benchmark::RegisterBenchmark(vq ? "kmeans_sort/vqsort_keys" : "kmeans_sort/std_sort",
                                 [vq](benchmark::State& s) { run_sort(s, vq); })
        ->Arg(1000000)
        ->Unit(benchmark::kMillisecond);
  }
  for (const bool pairs : {false, true}) {
    for (const bool rank : {true, false}) {
      const std::string name = std::string("kmeans_sort/tiny/") + (rank ? "rank" : "std_sort") +
                               (pairs ? "/pairs" : "/floats") + "/blocks:65536x64";
      benchmark::RegisterBenchmark(name.c_str(), [rank, pairs](benchmark::State& s) {
        run_tiny_sort(s, rank, pairs);
      })->Unit(benchmark::kMillisecond);
    }
  }
  for (const bool half : {false, true}) {
    benchmark::RegisterBenchmark(half ? "kmeans_dp/with_sort/float16" : "kmeans_dp/with_sort/float32",
                                 [half](benchmark::State& s) { run_with_sort(s, half); })
        ->Apply(big);
  }
  return true;
}();

}  // namespace
