// Google Benchmark micro-benchmarks. Registered at run time from the quantizer registry (every strategy is
// benchmarked without its name being spelled here); the shared encode/decode kernels are in bench_encode.cpp.
// Items/s counts elements.
//
//   build-bench/experiments/sqbench_micro --benchmark_filter=fit/

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
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

// Stages of the one pipeline, timed by sqb::quantize_into itself (input check and measure stage off): the fit
// alone, or fit + encode.
void time_pipeline(benchmark::State& state, const sqb::Quantizer& q, const sqb::Tensor& t,
                   sqb::QuantizeOptions opt, bool with_encode) {
  opt.check_input = false;
  opt.measure = false;
  sqb::Quantized scratch;
  for (auto _ : state) {
    sqb::StageTimes times;
    sqb::quantize_into(t, q, opt, scratch, &times);
    state.SetIterationTime(times.fit + (with_encode ? times.encode : 0.0));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * t.size()));
}

void time_fit(benchmark::State& state, const sqb::Quantizer& q, const sqb::Tensor& t, sqb::Granularity g) {
  sqb::QuantizeOptions opt;
  opt.granularity = g;
  time_pipeline(state, q, t, opt, false);
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
    benchmark::RegisterBenchmark(name.c_str(),
                                 [threads](benchmark::State& state) {
                                   const std::size_t side = 4096;
                                   const sqb::Tensor t(side, side, gaussian(side * side));
                                   const auto q = sqb::make_quantizer("kmeans", {16, 0});
                                   sqb::QuantizeOptions opt;
                                   opt.granularity = sqb::Granularity::parse("channel");
                                   opt.threads = threads;
                                   time_pipeline(state, *q, t, opt, true);
                                 })
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime()
        ->Iterations(3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_fit_benchmarks();
  register_scale_benchmarks();
  register_channel_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
