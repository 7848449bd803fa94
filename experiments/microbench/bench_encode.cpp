// Google Benchmark micro-benchmarks of the shared encoder and decoder (lib/src/encode_simd.cpp) against the
// memory floor `encode/stream` (read float32, write one byte per value) in the same binary, so a ratio to it
// is measured on the same machine, build and SIMD target. Items/s counts values. Each benchmark's label names
// the Highway target the dispatcher chose and the encoder's plan; the context block has the target too.
//
//   build/experiments/sqbench_micro --benchmark_filter='^(encode|decode)' --benchmark_repetitions=5
//   (add --benchmark_report_aggregates_only=true for medians only)

#include <benchmark/benchmark.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "detail/encode_simd.hpp"
#include "detail/nearest_reference.hpp"
#include "sqb/codebook.hpp"

namespace {

// N(0, 1) values, seeded, one cached vector per length (2^24 floats are 64 MB: drawn once).
const std::vector<float>& gaussian(std::size_t n) {
  static std::map<std::size_t, std::vector<float>> cache;
  auto& v = cache[n];
  if (v.size() != n) {
    std::mt19937_64 rng(n);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    v.resize(n);
    for (auto& x : v)
      x = normal(rng);
  }
  return v;
}

// Codebook shapes: which search wins depends on how the levels are spread, not only on K.
// uniform: evenly spaced over [-4, 4]; gaussian: N(0, 1) quantiles at (i + 1/2) / K (where k-means and
// Lloyd-Max put levels on Gaussian data: crowded in the middle); cosine: 4 cos(pi (i + 1/2) / K) (crowded at
// both ends, the cosine strategy's shape).
enum class Shape { uniform, gaussian, cosine };
constexpr const char* kShapeNames[] = {"uniform", "gaussian", "cosine"};

sqb::Codebook codebook_for(std::size_t k, Shape shape) {
  static const std::vector<float> sorted = [] {
    std::vector<float> v = gaussian(std::size_t{1} << 20);
    std::sort(v.begin(), v.end());
    return v;
  }();
  std::vector<double> levels(k);
  const double kd = static_cast<double>(k);
  for (std::size_t i = 0; i < k; ++i) {
    const double u = (static_cast<double>(i) + 0.5) / kd;
    if (shape == Shape::gaussian) {
      levels[i] = sorted[static_cast<std::size_t>(u * static_cast<double>(sorted.size()))];
    } else {
      levels[i] = shape == Shape::uniform ? -4.0 + 8.0 * u : -4.0 * std::cos(std::numbers::pi * u);
    }
  }
  return sqb::Codebook::nearest(levels);
}

std::string plan_label(const sqb::Codebook& cb, std::size_t n) {
  const auto p = sqb::detail::encode_plan(cb.thresholds(), n);
  std::string s = sqb::detail::active_target();
  if (p.tier == sqb::detail::EncodeTier::count) return s + " count";
  if (p.tier == sqb::detail::EncodeTier::tree)
    return s + " tree block=" + std::to_string(p.block_size) + " steps=" + std::to_string(p.steps);
  if (p.buckets == 1) return s + " binary steps=" + std::to_string(p.steps);
  return s + " grid B=" + std::to_string(p.buckets) + " S=" + std::to_string(p.window) +
         " steps=" + std::to_string(p.steps);
}

void set_items(benchmark::State& state, std::size_t n) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(n));
}

void BM_stream(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const auto& x = gaussian(n);
  std::vector<std::uint8_t> out(n);
  for (auto _ : state) {
    sqb::detail::stream_floor(x, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_items(state, n);
  state.SetLabel(sqb::detail::active_target());
}

template <class Index>
void BM_encode(benchmark::State& state, Shape shape) {
  const std::size_t k = static_cast<std::size_t>(state.range(0));
  const std::size_t n = static_cast<std::size_t>(state.range(1));
  const auto& x = gaussian(n);
  const sqb::Codebook cb = codebook_for(k, shape);
  std::vector<Index> out(n);
  for (auto _ : state) {
    sqb::encode(cb, x, std::span<Index>(out));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_items(state, n);
  state.SetLabel(plan_label(cb, n));
}

// encode/<shape>/<index type>/k:K/n:N for every shape: N(0, 1) values.
void register_encode() {
  benchmark::RegisterBenchmark("encode/stream", BM_stream)
      ->ArgName("n")
      ->Arg(std::int64_t{1} << 20)
      ->Arg(std::int64_t{1} << 24);
  for (const Shape shape : {Shape::uniform, Shape::gaussian, Shape::cosine}) {
    const std::string prefix = std::string("encode/") + kShapeNames[static_cast<int>(shape)];
    auto* u8 = benchmark::RegisterBenchmark(
        (prefix + "/u8").c_str(), [shape](benchmark::State& st) { BM_encode<std::uint8_t>(st, shape); });
    auto* u16 = benchmark::RegisterBenchmark(
        (prefix + "/u16").c_str(), [shape](benchmark::State& st) { BM_encode<std::uint16_t>(st, shape); });
    u8->ArgNames({"k", "n"});
    u16->ArgNames({"k", "n"});
    for (const std::int64_t n : {std::int64_t{1} << 20, std::int64_t{1} << 24}) {
      for (const std::int64_t k : {2, 4, 16, 17, 64, 256})
        u8->Args({k, n});
      for (const std::int64_t k : {4096, 65536})
        u16->Args({k, n});
    }
  }
}

// The slow nearest-level reference, for scale.
void BM_encode_reference(benchmark::State& state) {
  const std::size_t k = static_cast<std::size_t>(state.range(0));
  const std::size_t n = 1 << 16;
  const auto& x = gaussian(n);
  const sqb::Codebook cb = codebook_for(k, Shape::uniform);
  std::vector<std::uint16_t> out(n);
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = static_cast<std::uint16_t>(sqb::detail::nearest_level_reference(cb.levels(), x[i]));
    benchmark::DoNotOptimize(out.data());
  }
  set_items(state, n);
}

// encode_half/<format>/<path>/k:K/n:N: the same N(0, 1) values truncated to float16 / bfloat16 (bit patterns
// in), through the 65,536-entry table or converted and encoded directly; encode_half picks by
// half_table_pays (the label says which it would pick).
void BM_encode_half(benchmark::State& state, sqb::HalfFormat format, sqb::detail::HalfPath path) {
  const std::size_t k = static_cast<std::size_t>(state.range(0));
  const std::size_t n = static_cast<std::size_t>(state.range(1));
  const auto& x = gaussian(n);
  std::vector<std::uint16_t> bits(n);
  for (std::size_t i = 0; i < n; ++i) {
    // Truncated towards zero (the rounding does not matter here); N(0, 1) values are far inside float16's
    // range.
    const std::uint32_t b = std::bit_cast<std::uint32_t>(x[i]);
    if (format == sqb::HalfFormat::bfloat16) {
      bits[i] = static_cast<std::uint16_t>(b >> 16);
    } else {
      const float a = std::abs(x[i]);
      std::uint32_t h = 0;
      if (a < 0x1p-14f) {
        h = static_cast<std::uint32_t>(a * 0x1p24f);  // subnormal: mantissa * 2^-24
      } else {
        const int e = std::ilogb(a);
        h = (static_cast<std::uint32_t>(e + 15) << 10) |
            (static_cast<std::uint32_t>(std::ldexp(a, 10 - e)) - 1024u);
      }
      bits[i] = static_cast<std::uint16_t>(((b >> 16) & 0x8000u) | h);
    }
  }
  const sqb::Codebook cb = codebook_for(k, Shape::gaussian);
  std::vector<std::uint16_t> out(n);
  for (auto _ : state) {
    sqb::detail::encode_half_bits(cb.thresholds(), bits, format == sqb::HalfFormat::bfloat16, path,
                                  std::span<std::uint16_t>(out));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_items(state, n);
  state.SetLabel(sqb::detail::active_target() +
                 (sqb::half_table_pays(k, n) ? " (encode_half: table)" : " (encode_half: direct)"));
}

void register_encode_half() {
  for (const auto& [name, format] :
       {std::pair{"float16", sqb::HalfFormat::float16}, std::pair{"bfloat16", sqb::HalfFormat::bfloat16}}) {
    for (const auto& [path_name, path] : {std::pair{"table", sqb::detail::HalfPath::table},
                                          std::pair{"direct", sqb::detail::HalfPath::direct}}) {
      auto* b = benchmark::RegisterBenchmark(
          (std::string("encode_half/") + name + "/" + path_name).c_str(),
          [format = format, path = path](benchmark::State& st) { BM_encode_half(st, format, path); });
      b->ArgNames({"k", "n"});
      for (const int log_n : {16, 17, 18, 19, 20, 24}) {
        for (const std::int64_t k : {16, 64, 256, 4096, 65536})
          b->Args({k, std::int64_t{1} << log_n});
      }
    }
  }
}

template <class Index>
void BM_decode(benchmark::State& state) {
  const std::size_t k = static_cast<std::size_t>(state.range(0));
  const std::size_t n = static_cast<std::size_t>(state.range(1));
  const auto& x = gaussian(n);
  const sqb::Codebook cb = codebook_for(k, Shape::gaussian);
  std::vector<Index> codes(n);
  sqb::encode(cb, x, std::span<Index>(codes));
  std::vector<float> out(n);
  for (auto _ : state) {
    sqb::decode(cb, std::span<const Index>(codes), out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_items(state, n);
  state.SetLabel(sqb::detail::active_target());
}

// The decoder before the SIMD gather (a checked scalar loop), for comparison.
void BM_decode_scalar(benchmark::State& state) {
  const std::size_t k = static_cast<std::size_t>(state.range(0));
  const std::size_t n = static_cast<std::size_t>(state.range(1));
  const auto& x = gaussian(n);
  const sqb::Codebook cb = codebook_for(k, Shape::gaussian);
  std::vector<std::uint8_t> codes(n);
  sqb::encode(cb, x, std::span<std::uint8_t>(codes));
  std::vector<float> out(n);
  const auto levels = cb.levels();
  for (auto _ : state) {
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t c = codes[i];
      const bool ok = c < k;
      bad |= !ok;
      out[i] = levels[ok ? c : 0];
    }
    benchmark::DoNotOptimize(bad);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_items(state, n);
}

void register_decode() {
  auto* u8 = benchmark::RegisterBenchmark("decode/u8", BM_decode<std::uint8_t>);
  auto* scalar = benchmark::RegisterBenchmark("decode/u8_scalar_loop", BM_decode_scalar);
  auto* u16 = benchmark::RegisterBenchmark("decode/u16", BM_decode<std::uint16_t>);
  for (auto* b : {u8, scalar, u16})
    b->ArgNames({"k", "n"});
  for (const std::int64_t n : {std::int64_t{1} << 20, std::int64_t{1} << 24}) {
    for (const std::int64_t k : {16, 32, 64, 256}) {
      u8->Args({k, n});
      scalar->Args({k, n});
    }
    u16->Args({4096, n});
  }
}

// SQB_BENCH_TARGET=AVX2 (a Highway target name: AVX3, AVX2, SSE4, SSSE3, EMU128/SCALAR) runs every encode and
// decode benchmark on that target instead of the CPU's best, to compare targets in one build.
void force_target_from_environment() {
  const char* want = std::getenv("SQB_BENCH_TARGET");
  if (want == nullptr || *want == 0) return;
  for (const auto& t : sqb::detail::compiled_targets()) {
    if (t.name == want && sqb::detail::cpu_supports(t.bit)) {
      sqb::detail::force_target(t.bit);
      return;
    }
  }
  std::fprintf(stderr, "SQB_BENCH_TARGET=%s: not a compiled target this CPU supports; using %s\n", want,
               sqb::detail::active_target().c_str());
}

const bool registered = [] {
  force_target_from_environment();
  register_encode();
  benchmark::RegisterBenchmark("encode/reference", BM_encode_reference)->ArgName("k")->Arg(16)->Arg(256);
  register_encode_half();
  register_decode();
  benchmark::AddCustomContext("simd_target", sqb::detail::active_target());
  return true;
}();

}  // namespace
