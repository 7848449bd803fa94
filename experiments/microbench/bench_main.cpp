// Google Benchmark micro-benchmarks. Registered at run time from the quantizer registry (every strategy is
// benchmarked without its name being spelled here) plus the shared encode/decode kernels against the slow
// reference. Items/s counts elements.
//
//   build-bench/experiments/sqbench_micro --benchmark_filter=encode/

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include "sqb/codebook.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"

namespace {

const std::vector<float>& gaussian(std::size_t n) {
  static std::vector<float> cache;
  if (cache.size() != n) cache = sqb::make_source("gaussian")->draw(n, 0).values;
  return cache;
}

// Codebook shapes for the encode kernels: which search wins depends on how the levels are spread, not only
// on K (the grid search needs thresholds spread evenly enough; see lib/src/codebook.cpp).
enum class Shape { uniform, gaussian, cosine };
constexpr const char* kShapeNames[] = {"uniform", "gaussian", "cosine"};

// uniform: evenly spaced over [-4, 4]; gaussian: the sample's quantiles at (i + 1/2) / K (where k-means and
// Lloyd-Max put levels on Gaussian data: crowded in the middle); cosine: 4 cos(pi (i + 1/2) / K) (crowded at
// both ends, the cosine strategy's shape).
sqb::Codebook codebook_for(std::size_t k, Shape shape = Shape::uniform) {
  std::vector<double> levels(k);
  const double kd = static_cast<double>(k);
  if (shape == Shape::gaussian) {
    static const std::vector<float> sorted = [] {
      std::vector<float> v = gaussian(1 << 20);
      std::sort(v.begin(), v.end());
      return v;
    }();
    for (std::size_t i = 0; i < k; ++i)
      levels[i] = sorted[static_cast<std::size_t>((static_cast<double>(i) + 0.5) / kd *
                                                  static_cast<double>(sorted.size()))];
  } else {
    for (std::size_t i = 0; i < k; ++i) {
      const double u = (static_cast<double>(i) + 0.5) / kd;
      levels[i] = shape == Shape::uniform ? -4.0 + 8.0 * u : -4.0 * std::cos(std::numbers::pi * u);
    }
  }
  levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
  return sqb::Codebook::nearest(levels);
}

template <class Index>
void BM_encode(benchmark::State& state, Shape shape) {
  const std::size_t k = static_cast<std::size_t>(state.range(0));
  const std::size_t n = 1 << 20;
  const auto& x = gaussian(n);
  const sqb::Codebook cb = codebook_for(k, shape);
  std::vector<Index> out(n);
  for (auto _ : state) {
    sqb::encode(cb, x, std::span<Index>(out));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// encode/<shape>/<index type>/K for every shape: N(0,1) values, 2^20 of them.
void register_encode_benchmarks() {
  for (const Shape shape : {Shape::uniform, Shape::gaussian, Shape::cosine}) {
    const std::string prefix = std::string("encode/") + kShapeNames[static_cast<int>(shape)];
    benchmark::RegisterBenchmark((prefix + "/u8").c_str(),
                                 [shape](benchmark::State& st) { BM_encode<std::uint8_t>(st, shape); })
        ->Arg(2)
        ->Arg(4)
        ->Arg(16)
        ->Arg(17)
        ->Arg(32)
        ->Arg(64)
        ->Arg(256);
    benchmark::RegisterBenchmark((prefix + "/u16").c_str(),
                                 [shape](benchmark::State& st) { BM_encode<std::uint16_t>(st, shape); })
        ->Arg(256)
        ->Arg(4096)
        ->Arg(65536);
  }
}

void BM_encode_reference(benchmark::State& state) {
  const std::size_t k = static_cast<std::size_t>(state.range(0));
  const std::size_t n = 1 << 16;
  const auto& x = gaussian(n);
  const sqb::Codebook cb = codebook_for(k);
  std::vector<std::uint16_t> out(n);
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = static_cast<std::uint16_t>(sqb::nearest_level_reference(cb.levels(), x[i]));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

void BM_decode(benchmark::State& state) {
  const std::size_t k = static_cast<std::size_t>(state.range(0));
  const std::size_t n = 1 << 20;
  const auto& x = gaussian(n);
  const sqb::Codebook cb = codebook_for(k);
  std::vector<std::uint8_t> codes(n);
  sqb::encode(cb, x, std::span<std::uint8_t>(codes));
  std::vector<float> out(n);
  for (auto _ : state) {
    sqb::decode(cb, std::span<const std::uint8_t>(codes), out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// The fit stage of the one pipeline (sqb::quantize_into times its stages; the others are not counted).
void time_fit(benchmark::State& state, const sqb::Quantizer& q, const sqb::Tensor& t, sqb::Granularity g) {
  sqb::QuantizeOptions opt;
  opt.granularity = g;
  opt.check_input = false;
  opt.measure = false;
  sqb::Quantized scratch;
  for (auto _ : state) {
    sqb::StageTimes times;
    sqb::quantize_into(t, q, opt, scratch, &times);
    state.SetIterationTime(times.fit);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * t.size()));
}

// Codebook design (fit) for every registered quantizer with default parameters, tensor granularity.
void register_fit_benchmarks() {
  for (const sqb::QuantizerEntry& e : sqb::quantizer_registry()) {
    for (const std::size_t k : {16, 256}) {
      for (const std::size_t n : {std::size_t{1} << 16, std::size_t{1000000}}) {
        std::unique_ptr<sqb::Quantizer> q;
        try {
          q = sqb::make_quantizer(std::string(e.name), {k, 0});
        } catch (const sqb::NotApplicable&) {
          continue;
        }
        const std::string name =
            "fit/" + std::string(e.name) + "/k:" + std::to_string(k) + "/n:" + std::to_string(n);
        benchmark::RegisterBenchmark(
            name.c_str(),
            [q = std::shared_ptr<sqb::Quantizer>(std::move(q)), n](benchmark::State& state) {
              const sqb::Tensor t(1, n, gaussian(n));
              time_fit(state, *q, t, {});
            })
            ->Unit(benchmark::kMillisecond)
            ->UseManualTime();
      }
    }
  }
}

// Block scales: every entry with a `scale` parameter, each of its choices, K = 16 on N = 1e6, per tensor and
// per group of 64 (bitsandbytes' block-wise layout). Found through the parameter declarations, so no name is
// spelled here.
void register_scale_benchmarks() {
  const std::size_t k = 16, n = 1000000;
  for (const sqb::QuantizerEntry& e : sqb::quantizer_registry()) {
    for (const sqb::ParamSpec& p : e.params) {
      if (p.name != "scale" || p.kind != sqb::ParamSpec::Kind::choice) continue;
      for (const std::string& choice : p.choices) {
        const std::string spec = std::string(e.name) + " scale=" + choice;
        std::shared_ptr<sqb::Quantizer> q;
        try {
          q = sqb::make_quantizer(spec, {k, 0});
        } catch (const sqb::NotApplicable&) {
          continue;
        }
        for (const std::string g : {"tensor", "group:64"}) {
          const std::string name = "fit/" + std::string(e.name) + "/scale:" + choice +
                                   "/k:" + std::to_string(k) + "/n:" + std::to_string(n) + "/" + g;
          const sqb::Granularity gran = sqb::Granularity::parse(g);
          benchmark::RegisterBenchmark(name.c_str(),
                                       [q, gran, n](benchmark::State& state) {
                                         const sqb::Tensor t(1, n, gaussian(n));
                                         time_fit(state, *q, t, gran);
                                       })
              ->Unit(benchmark::kMillisecond)
              ->UseManualTime();
        }
      }
    }
  }
}

// Per-channel k-means of a 4096 x 4096 weight (SqueezeLLM's unit of work), K = 16, at 1 and 2 threads: fit +
// encode through the pipeline (its measure stage off), blocks in parallel.
void register_channel_benchmarks() {
  for (const int threads : {1, 2}) {
    const std::string name = "quantize/kmeans/channel/4096x4096/k:16/threads:" + std::to_string(threads);
    benchmark::RegisterBenchmark(name.c_str(), [threads](benchmark::State& state) {
      const std::size_t side = 4096;
      const sqb::Tensor t(side, side, gaussian(side * side));
      const auto q = sqb::make_quantizer("kmeans", {16, 0});
      sqb::QuantizeOptions opt;
      opt.granularity = sqb::Granularity::parse("channel");
      opt.threads = threads;
      opt.check_input = false;
      opt.measure = false;
      sqb::Quantized scratch;
      for (auto _ : state) {
        sqb::StageTimes times;
        sqb::quantize_into(t, *q, opt, scratch, &times);
        state.SetIterationTime(times.fit + times.encode);
      }
      state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * t.size()));
    })->Unit(benchmark::kMillisecond)->UseManualTime()->Iterations(3);
  }
}

}  // namespace

BENCHMARK(BM_encode_reference)->Arg(16)->Arg(256);
BENCHMARK(BM_decode)->Arg(16)->Arg(256);

int main(int argc, char** argv) {
  register_encode_benchmarks();
  register_fit_benchmarks();
  register_scale_benchmarks();
  register_channel_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
