#pragma once
// The SIMD kernels behind sqb::encode / sqb::decode (lib/src/encode_simd.cpp), compiled for every Highway
// target (AVX-512, AVX2, SSE4, SSSE3, NEON, ... and the portable EMU128 fallback) and chosen at run time by
// the CPU (HWY_DYNAMIC_DISPATCH). Every kernel computes the exact rule of sqb/codebook.hpp,
//
//     index(x) = #{j : t_j < x}     (thresholds t ascending, equal entries allowed; NaN -> 0),
//
// bit for bit on every target. The tier (how the count is found) is chosen by a cost model, or forced by
// tests.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sqb::detail {

/// How the count of thresholds below each value is found.
///  - count:  compare every value with every threshold (T compares per value; for T of 1 to 3, and on
///            one-lane targets);
///  - tree:   the thresholds held in registers as tables of W entries read by lane permutes (W = the vector's
///            lanes, 2 x 16 on AVX-512): a binary search over block pivots, then a count inside the block;
///            no memory gathers. Available when T + 1 <= W^2 (K <= 256 on AVX-512, 64 on AVX2, 16 on SSE4).
///  - search: a uniform grid of B buckets over [t_0, t_{T-1}] gives each value a window of at most S
///            thresholds that contains its answer (a table lookup), then a branch-free binary search over the
///            window (bit_width(S) gathers). B = 1 is the plain binary search over all thresholds.
enum class EncodeTier { automatic, count, tree, search };

struct EncodeOptions {
  EncodeTier tier = EncodeTier::automatic;
  /// search tier: the grid's bucket count B (1 = plain binary search; 0 = chosen by the cost model).
  std::size_t buckets = 0;
};

/// What the cost model picks (for tests and the benchmark's label).
struct EncodePlanInfo {
  EncodeTier tier = EncodeTier::count;
  std::size_t block_size = 0;  ///< tree tier: thresholds per block
  std::size_t buckets = 1;     ///< search tier: B
  std::size_t window = 0;      ///< search tier: S, the most thresholds any bucket's window holds
  std::size_t steps = 0;  ///< binary-search steps per value: over the pivots (tree) or the window (search)
};

/// The encoder for one threshold set, planned once (tier and tables) for about n values, then run on any
/// number of spans: out[i] = #{j : t[j] < x[i]} for ascending thresholds t (at most 65535 of them; the count
/// must fit the output type: not checked here, sqb::encode checks it). x and out must have the same size
/// (not checked). The thresholds are not copied: they must outlive the encoder. Plans with the target the
/// dispatcher uses at construction; if the target changes before a run (tests), the run re-plans.
class ThresholdEncoder {
 public:
  /// Throws std::invalid_argument when the tree tier is forced but the target's tables cannot hold T.
  ThresholdEncoder(std::span<const float> t, std::size_t n, const EncodeOptions& options = {});
  void encode(std::span<const float> x, std::span<std::uint8_t> out) const;
  void encode(std::span<const float> x, std::span<std::uint16_t> out) const;
  const EncodePlanInfo& plan() const { return info_; }

 private:
  template <class Index>
  void run(std::span<const float> x, std::span<Index> out) const;

  std::span<const float> t_;
  std::size_t n_ = 0;
  EncodeOptions options_;
  EncodePlanInfo info_;
  std::size_t tree_width_ = 0;       // the target table width the tree tables were laid out for
  std::vector<float> tables_;        // tree: its tables
  std::vector<float> padded_;        // search, when a window can reach past T: the thresholds, then +inf
  std::vector<std::int32_t> start_;  // search with a grid: each bucket's window start
  float t0_ = 0, inv_width_ = 0, top_ = 0;
};

/// One-shot: ThresholdEncoder(t, x.size(), options).encode(x, out).
void encode_thresholds(std::span<const float> t, std::span<const float> x, std::span<std::uint8_t> out,
                       const EncodeOptions& options = {});
void encode_thresholds(std::span<const float> t, std::span<const float> x, std::span<std::uint16_t> out,
                       const EncodeOptions& options = {});

EncodePlanInfo encode_plan(std::span<const float> t, std::size_t n, const EncodeOptions& options = {});
/// Whether the active target's tree tier can hold T thresholds.
bool tree_fits(std::size_t thresholds);

/// The grid's bucket of x, exactly as every SIMD target computes it (float32 subtract, multiply, clamp to
/// [0, top], truncate). It is monotone non-decreasing in x (NaN -> 0), which makes the windows exact.
inline std::int32_t grid_bucket(float x, float t0, float inv_width, float top) {
  float u = (x - t0) * inv_width;
  u = u > 0.0f ? u : 0.0f;
  u = u < top ? u : top;
  return static_cast<std::int32_t>(u);
}

/// out[i] = levels[codes[i]] for codes < levels.size(); returns the position of the first code >= K (then the
/// output is unspecified), or codes.size() when all are valid. Sizes must match (not checked).
std::size_t decode_levels(std::span<const float> levels, std::span<const std::uint8_t> codes,
                          std::span<float> out);
std::size_t decode_levels(std::span<const float> levels, std::span<const std::uint16_t> codes,
                          std::span<float> out);

/// The memory floor for the benchmarks: reads x and writes one byte per value (the float's top byte), with
/// the same loads, stores and dispatch as the encoder but no search.
void stream_floor(std::span<const float> x, std::span<std::uint8_t> out);

/// Exact float16 / bfloat16 -> float32 conversions (every bit pattern, subnormals and NaN payloads included).
float float16_to_float(std::uint16_t bits);
float bfloat16_to_float(std::uint16_t bits);
/// The same for many values, SIMD (sizes must match; not checked). Relies on IEEE subnormal arithmetic (no
/// flush-to-zero / denormals-are-zero mode), like the rest of the encoder.
void float16_to_float(std::span<const std::uint16_t> bits, std::span<float> out);
void bfloat16_to_float(std::span<const std::uint16_t> bits, std::span<float> out);

/// sqb::encode_half's two paths, the same result bit for bit: `table` converts all 65,536 patterns, encodes
/// them and looks every value up; `direct` converts and encodes a chunk at a time. Sizes must match (not
/// checked).
enum class HalfPath { table, direct };
void encode_half_bits(std::span<const float> t, std::span<const std::uint16_t> bits, bool bfloat16,
                      HalfPath path, std::span<std::uint8_t> out);
void encode_half_bits(std::span<const float> t, std::span<const std::uint16_t> bits, bool bfloat16,
                      HalfPath path, std::span<std::uint16_t> out);

/// Dispatch control, for tests and benchmark labels. A target is one Highway target bit (HWY_AVX2, ...).
struct SimdTarget {
  std::int64_t bit = 0;
  std::string name;
};
/// The targets the encoder was compiled for (best first; the last is the portable fallback).
std::vector<SimdTarget> compiled_targets();
/// Whether this CPU can run the target (detected once, ignoring any forced target).
bool cpu_supports(std::int64_t target_bit);
/// Makes every following dispatch use this target (it must be compiled and supported); 0 restores the
/// CPU's best. Not thread-safe: tests only.
void force_target(std::int64_t target_bit);
/// The name of the target the dispatcher uses now ("AVX3" = AVX-512, "AVX2", "SSE4", "EMU128", ...).
std::string active_target();

}  // namespace sqb::detail
