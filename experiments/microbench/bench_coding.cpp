// Code streams and checkpoint reading: bit packing and unpacking, rANS encoding and decoding, and a
// safetensors tensor read (BF16/F16 -> float32). Items/s counts codes (or tensor elements); bytes/s counts
// the codes at their in-memory width (1 byte for K <= 256, else 2) or the tensor's bytes in the file.
//
//   build-bench/experiments/sqbench_micro --benchmark_filter='pack|rans|safetensors'

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "sqb/coding.hpp"
#include "sqb/safetensors.hpp"

namespace {

// n codes of a uniform quantiser with k cells over [-4, 4] applied to N(0, 1) draws (clamped).
template <class Code>
std::vector<Code> gaussian_codes(std::size_t n, std::size_t k) {
  std::mt19937_64 gen(1);
  std::normal_distribution<double> d;
  std::vector<Code> v(n);
  for (auto& c : v) {
    const double cell = std::floor((d(gen) + 4) / 8 * static_cast<double>(k));
    c = static_cast<Code>(std::clamp(cell, 0.0, static_cast<double>(k - 1)));
  }
  return v;
}

void BM_pack(benchmark::State& state) {
  const auto bits = static_cast<unsigned>(state.range(0));
  const std::size_t n = 1 << 20;
  const auto codes = gaussian_codes<std::uint16_t>(n, std::size_t{1} << bits);
  for (auto _ : state) {
    auto packed = sqb::pack_codes(codes, bits);
    benchmark::DoNotOptimize(packed.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * 2));
}

void BM_unpack(benchmark::State& state) {
  const auto bits = static_cast<unsigned>(state.range(0));
  const std::size_t n = 1 << 20;
  const auto packed = sqb::pack_codes(gaussian_codes<std::uint16_t>(n, std::size_t{1} << bits), bits);
  std::vector<std::uint16_t> out(n);
  for (auto _ : state) {
    sqb::unpack_codes(packed, bits, std::span<std::uint16_t>(out));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * 2));
}

template <class Code>
void BM_rans_encode(benchmark::State& state) {
  const auto k = static_cast<std::size_t>(state.range(0));
  const std::size_t n = 1 << 20;
  const auto codes = gaussian_codes<Code>(n, k);
  double bits = 0;
  for (auto _ : state) {
    const sqb::RansEncoded e = sqb::rans_encode(codes, k);
    bits = static_cast<double>(e.total_bits()) / static_cast<double>(n);
    benchmark::DoNotOptimize(e.bytes.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(Code)));
  state.counters["bits_per_code"] = bits;
}

template <class Code>
void BM_rans_decode(benchmark::State& state) {
  const auto k = static_cast<std::size_t>(state.range(0));
  const std::size_t n = 1 << 20;
  const sqb::RansEncoded e = sqb::rans_encode(gaussian_codes<Code>(n, k), k);
  for (auto _ : state) {
    auto out = sqb::rans_decode(e.bytes, n);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(Code)));
}

// A file in memory holding one [4096, 4096] tensor of a 16-bit dtype (random bit patterns of finite values).
void BM_safetensors_read(benchmark::State& state, const std::string& dtype) {
  const std::size_t n = std::size_t{4096} * 4096;
  const std::size_t item = 2;
  std::string header = "{\"w\":{\"dtype\":\"" + dtype + "\",\"shape\":[4096,4096],\"data_offsets\":[0," +
                       std::to_string(n * item) + "]}}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  const std::uint64_t len = header.size();
  std::memcpy(file.data(), &len, 8);
  file += header;
  std::mt19937 gen(3);
  std::string data(n * item, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    const auto h = static_cast<std::uint16_t>((gen() & 0x3FFF) | 0x2000);  // exponent bits never all ones
    std::memcpy(data.data() + i * item, &h, 2);
  }
  file += data;
  const auto f = sqb::safetensors::File::parse(
      {reinterpret_cast<const unsigned char*>(file.data()), file.size()}, "bench.safetensors");
  for (auto _ : state) {
    auto a = f.read("w");
    benchmark::DoNotOptimize(a.values.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * item));
}

BENCHMARK(BM_pack)->Arg(1)->Arg(3)->Arg(4)->Arg(8)->Arg(12)->Arg(16)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_unpack)->Arg(1)->Arg(3)->Arg(4)->Arg(8)->Arg(12)->Arg(16)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_rans_encode<std::uint8_t>)
    ->Name("rans_encode/u8")
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_rans_decode<std::uint8_t>)
    ->Name("rans_decode/u8")
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_rans_encode<std::uint16_t>)
    ->Name("rans_encode/u16")
    ->Arg(4096)
    ->Arg(65536)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_rans_decode<std::uint16_t>)
    ->Name("rans_decode/u16")
    ->Arg(4096)
    ->Arg(65536)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_safetensors_read, bf16, std::string("BF16"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_safetensors_read, f16, std::string("F16"))->Unit(benchmark::kMillisecond);

}  // namespace
