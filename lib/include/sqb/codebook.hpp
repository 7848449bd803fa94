#pragma once
/// \file codebook.hpp
/// A scalar codebook as a value, and the shared encode (value -> index) and decode (index -> level).
///
/// Assignment rule, the same for every strategy:
///
///     index(x) = number of thresholds t_j with t_j < x
///
/// i.e. `numpy.searchsorted(thresholds, x, side='left')` / `torch.bucketize(x, thresholds, right=False)`.
///  - A value exactly on a threshold goes to the **lower** level.
///  - Values below the first threshold get index 0 and values above the last get K-1 (clamping to the ends).
///  - With the default midpoint thresholds this is the nearest level; equal levels (degenerate data) are
///  allowed.
///  - NaN compares false with every threshold and gets index 0 (callers reject non-finite data before
///  encoding).
///
/// Levels are float32, as they are stored and deployed. A threshold is stored as the largest float32 that
/// does not exceed the exact boundary (computed in double): for every float32 x, `x > fl_down(b)` iff `x >
/// b`, so the float comparison reproduces the exact rule bit for bit.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace sqb {

class Codebook {
 public:
  Codebook() = default;

  /// Nearest-level codebook: boundaries at the exact midpoints (l_i + l_{i+1}) / 2.
  /// Throws Error if `levels` is empty, holds a non-finite value or is not sorted ascending.
  static Codebook nearest(std::vector<float> levels);
  /// Same from double levels, each rounded to the nearest float32 first.
  static Codebook nearest(std::span<const double> levels);

  /// A strategy's own boundaries (exact, in double): K-1 values with l_i <= b_i <= l_{i+1}, ascending.
  /// This is how a strategy declares a different assignment rule (phi_log's log-domain rounding puts b_i at
  /// the geometric mean of its neighbours) while encoding stays the shared threshold search. Throws Error
  /// otherwise.
  static Codebook with_boundaries(std::vector<float> levels, std::span<const double> boundaries);

  std::size_t size() const { return (values_.size() + 1) / 2; }
  std::span<const float> levels() const { return {values_.data(), size()}; }
  /// K-1 float32 thresholds (each the largest float32 <= the exact boundary).
  std::span<const float> thresholds() const {
    return values_.empty() ? std::span<const float>() : std::span<const float>(values_).subspan(size());
  }

  friend bool operator==(const Codebook&, const Codebook&) = default;

 private:
  // The K levels, then the K-1 thresholds: one allocation per codebook (a tensor in groups of 64 holds
  // hundreds of thousands of them). A caller that reserves 2K-1 floats in the levels it passes to nearest()
  // or with_boundaries() saves the reallocation too.
  std::vector<float> values_;
};

/// The largest float32 that is <= b (b finite).
float float_at_or_below(double b);

/// Encodes x.size() values into out (same size) with the rule above. Index must hold K-1.
/// Throws Error on size mismatch or when K does not fit the index type.
///
/// The kernels are SIMD (Google Highway), compiled for every target of the architecture (AVX-512, AVX2, SSE4,
/// SSSE3, NEON, ... and a portable fallback) and chosen at run time by the CPU; the result is the same bit
/// for bit on every target. A cost model (lib/src/encode_simd.cpp) picks how: up to K = 4 every value is
/// compared with every threshold; up to K = W^2 (W = 32 on AVX-512, 8 on AVX2, 4 on SSE4) the thresholds are
/// held in registers and searched with lane permutes; above that a uniform grid over [t_0, t_{K-2}] gives
/// each value a short window of thresholds, finished by a binary search with gathers (or a plain binary
/// search when the input is too short for a grid to pay). Safe to call from several threads at once.
/// Assumes IEEE subnormal arithmetic (no flush-to-zero / denormals-are-zero mode set by the caller).
/// Figures: docs/speed.md and experiments/microbench (encode/...).
void encode(const Codebook& cb, std::span<const float> x, std::span<std::uint8_t> out);
void encode(const Codebook& cb, std::span<const float> x, std::span<std::uint16_t> out);

/// Bit layouts of 16-bit inputs: IEEE 754 binary16 (1 sign, 5 exponent, 10 mantissa bits) and bfloat16 (the
/// top half of a float32).
enum class HalfFormat { float16, bfloat16 };

/// Encodes 16-bit floats given as bit patterns: out[i] == the encode() of bits[i] converted exactly to
/// float32, bit for bit (every half value is a float32), for every pattern (NaN patterns get 0, infinities
/// the end indices). Throws Error like encode().
///
/// For long inputs this builds the full table (bit pattern -> code, 65,536 entries, by one encode() of all
/// patterns) and then costs one table load per value, whatever K and however the levels are spread; other
/// inputs are converted (SIMD, exactly) and encoded a chunk at a time. half_table_pays(K, n) says which:
/// K > 64 and n >= 2^18 when K <= 256, n >= 2^17 when K > 256. Measured with experiments/microbench
/// (encode_half/..., AVX-512, one thread): the table path runs at 2.4-4 G values/s at n = 2^24 whatever K
/// (about 2x slower at n = 2^18, where building the table is still a large share); the direct path at
/// 3.6-5.5 G/s for K <= 64 (so the table never pays there), 1.0-1.8 G/s for K = 256 (the table wins from
/// n = 2^18) and 0.1-0.75 G/s for K >= 4096 (the table wins from n = 2^17).
void encode_half(const Codebook& cb, std::span<const std::uint16_t> bits, HalfFormat format,
                 std::span<std::uint8_t> out);
void encode_half(const Codebook& cb, std::span<const std::uint16_t> bits, HalfFormat format,
                 std::span<std::uint16_t> out);
bool half_table_pays(std::size_t k, std::size_t n);

/// out[i] = levels[codes[i]]. Throws Error on size mismatch or a code >= K (naming its position; out is then
/// partly written).
void decode(const Codebook& cb, std::span<const std::uint8_t> codes, std::span<float> out);
void decode(const Codebook& cb, std::span<const std::uint16_t> codes, std::span<float> out);

/// Convenience: indices of the nearest of `centroids` (sorted ascending, 1..65536 of them) for every value.
std::vector<std::uint16_t> nearest_centroid_indices(std::span<const float> values,
                                                    std::span<const float> centroids);

/// The largest number of codes K of any codebook: a code is stored in at most 16 bits.
inline constexpr std::size_t kMaxCodes = 65536;
/// "1..65536", for messages about K.
inline std::string k_range() {
  return "1.." + std::to_string(kMaxCodes);
}

/// Codes for a whole tensor: uint8 when K <= 256, uint16 up to kMaxCodes.
class Codes {
 public:
  Codes() = default;
  Codes(std::size_t n, std::size_t k);  ///< throws Error if k is 0 or > kMaxCodes

  std::size_t size() const;
  std::size_t code_count() const { return k_; }
  bool wide() const { return std::holds_alternative<std::vector<std::uint16_t>>(data_); }
  std::size_t operator[](std::size_t i) const;

  /// Calls f with a std::span of the right index type (std::uint8_t or std::uint16_t).
  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit([&](auto& v) { return f(std::span(v)); }, data_);
  }
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit([&](const auto& v) { return f(std::span(v)); }, data_);
  }

 private:
  std::size_t k_ = 0;
  std::variant<std::vector<std::uint8_t>, std::vector<std::uint16_t>> data_;
};

}  // namespace sqb
