// Task accuracy: one float training epoch of GR-PHI's TinyNet (784 -> 256 -> ReLU -> 10, no bias, AdamW,
// batch 64) on the real Fashion-MNIST training set, the 10,000-image evaluation and the Fisher diagonal.
// One iteration is one full pass; run with repetitions and report the median:
//
//   build/experiments/sqbench_micro --benchmark_filter=tinynet --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
//
// The BLAS and its threads are added to the context (OpenBLAS takes OPENBLAS_NUM_THREADS).

#include <benchmark/benchmark.h>

#include <filesystem>
#include <optional>

#include "sqb/task.hpp"

namespace {

const sqb::task::DataSplit* fashion_mnist() {
  static const std::optional<sqb::task::DataSplit> data = []() -> std::optional<sqb::task::DataSplit> {
    if (!std::filesystem::exists(std::filesystem::path(sqb::task::kFashionMnistDir) /
                                 "train-images-idx3-ubyte.gz"))
      return std::nullopt;
    return sqb::task::load_dataset();
  }();
  return data ? &*data : nullptr;
}

// The context is printed before the first benchmark runs, so it is filled at static initialisation.
const bool kBlasContext = [] {
  const sqb::task::BlasInfo b = sqb::task::blas_info();
  benchmark::AddCustomContext("blas", b.library);
  benchmark::AddCustomContext("blas_threads", std::to_string(b.threads));
  return true;
}();

void BM_tinynet_epoch(benchmark::State& state) {
  const auto* data = fashion_mnist();
  if (data == nullptr) {
    state.SkipWithError("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  sqb::task::TrainOptions o;
  o.epochs = 1;
  std::uint64_t seed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    sqb::task::Mlp m = sqb::task::init_mlp(sqb::task::ModelSpec{}, seed++);
    state.ResumeTiming();
    sqb::task::train(m, data->train, o);
    benchmark::DoNotOptimize(m.weights[0].values.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(data->train.count));
}
BENCHMARK(BM_tinynet_epoch)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

void BM_tinynet_evaluate(benchmark::State& state) {
  const auto* data = fashion_mnist();
  if (data == nullptr) {
    state.SkipWithError("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  const sqb::task::Mlp m = sqb::task::init_mlp(sqb::task::ModelSpec{}, 0);
  for (auto _ : state)
    benchmark::DoNotOptimize(sqb::task::evaluate(m, data->test).accuracy);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(data->test.count));
}
BENCHMARK(BM_tinynet_evaluate)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_tinynet_fisher(benchmark::State& state) {
  const auto* data = fashion_mnist();
  if (data == nullptr) {
    state.SkipWithError("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  const sqb::task::Mlp m = sqb::task::init_mlp(sqb::task::ModelSpec{}, 0);
  for (auto _ : state)
    benchmark::DoNotOptimize(sqb::task::fisher_diagonal(m, data->train)[0].values.data());
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(data->train.count));
}
BENCHMARK(BM_tinynet_fisher)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

}  // namespace
