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

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "sqb/buffer.hpp"

namespace sqb {

/// A vector of floats that holds up to N of them inside itself and only goes to the heap beyond: a tensor in
/// groups of 64 designs tens of thousands of small codebooks, each of which would otherwise be a heap
/// allocation (and a free with the result). Contiguous, like std::vector<float>, and converts from one.
template <std::size_t N>
class SmallFloats {
 public:
  SmallFloats() noexcept {}
  SmallFloats(std::initializer_list<float> v) { assign(v.begin(), v.end()); }
  SmallFloats(const std::vector<float>& v) { assign(v.data(), v.data() + v.size()); }  // NOLINT(implicit)
  explicit SmallFloats(std::span<const float> v) { assign(v.data(), v.data() + v.size()); }
  SmallFloats(const SmallFloats& o) { assign(o.begin(), o.end()); }
  SmallFloats(SmallFloats&& o) noexcept { take(o); }
  SmallFloats& operator=(const SmallFloats& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  SmallFloats& operator=(SmallFloats&& o) noexcept {
    if (this != &o) {
      release();
      take(o);
    }
    return *this;
  }
  ~SmallFloats() { release(); }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  float* data() { return heap_ ? heap_ : inline_; }
  const float* data() const { return heap_ ? heap_ : inline_; }
  float* begin() { return data(); }
  float* end() { return data() + size_; }
  const float* begin() const { return data(); }
  const float* end() const { return data() + size_; }
  float& operator[](std::size_t i) { return data()[i]; }
  const float& operator[](std::size_t i) const { return data()[i]; }

  /// New elements are 0, as std::vector's.
  void resize(std::size_t n) {
    reserve(n);
    if (n > size_) std::fill(data() + size_, data() + n, 0.0f);
    size_ = n;
  }
  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    float* p = new float[n];
    std::copy(begin(), end(), p);
    release();
    heap_ = p;
    capacity_ = n;
  }
  template <class It>
  void assign(It first, It last) {
    const auto n = static_cast<std::size_t>(std::distance(first, last));
    if (n > capacity_) {
      float* p = new float[n];
      release();
      heap_ = p;
      capacity_ = n;
    }
    std::copy(first, last, data());
    size_ = n;
  }
  void push_back(float v) {
    if (size_ == capacity_) reserve(std::max<std::size_t>(1, 2 * capacity_));
    data()[size_++] = v;
  }
  void clear() { size_ = 0; }

  friend bool operator==(const SmallFloats& a, const SmallFloats& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  // Frees the heap storage (the size is the caller's to set).
  void release() {
    delete[] heap_;
    heap_ = nullptr;
    capacity_ = N;
  }
  void take(SmallFloats& o) {
    if (o.heap_) {
      heap_ = o.heap_;
      capacity_ = o.capacity_;
      o.heap_ = nullptr;
      o.capacity_ = N;
    } else {
      std::copy(o.inline_, o.inline_ + o.size_, inline_);
    }
    size_ = o.size_;
    o.size_ = 0;
  }

  float* heap_ = nullptr;  // the elements when there are more than N, else null
  std::size_t size_ = 0;
  std::size_t capacity_ = N;
  float inline_[N];  // left uninitialised: only [0, size_) is ever read
};

class Codebook {
 public:
  Codebook() = default;

  /// Nearest-level codebook: boundaries at the exact midpoints (l_i + l_{i+1}) / 2.
  /// Throws Error if `levels` is empty, holds a non-finite value or is not sorted ascending.
  static Codebook nearest(std::vector<float> levels);
  /// Same from double levels, each rounded to the nearest float32 first.
  static Codebook nearest(std::span<const double> levels);
  /// Same from float32 levels read in place (no copy of them is kept; checks as above).
  static Codebook nearest(std::span<const float> levels);

  /// A strategy's own boundaries (exact, in double): K-1 values with l_i <= b_i <= l_{i+1}, ascending.
  /// This is how a strategy declares a different assignment rule (phi_log's log-domain rounding puts b_i at
  /// the geometric mean of its neighbours) while encoding stays the shared threshold search. Throws Error
  /// otherwise.
  static Codebook with_boundaries(std::vector<float> levels, std::span<const double> boundaries);

  std::size_t size() const { return (values_.size() + 1) / 2; }
  std::span<const float> levels() const { return {values_.data(), size()}; }
  /// K-1 float32 thresholds (each the largest float32 <= the exact boundary).
  std::span<const float> thresholds() const {
    return values_.empty() ? std::span<const float>()
                           : std::span<const float>(values_.data() + size(), values_.size() - size());
  }

  friend bool operator==(const Codebook&, const Codebook&) = default;

 private:
  // The K levels, then the K-1 thresholds, inside the codebook up to K = 16 (every 4-bit codebook: a tensor
  // in groups of 64 holds hundreds of thousands of them, and their results are arrays of codebooks with no
  // heap allocation each), one allocation above.
  static constexpr std::size_t kInline = 31;
  static Codebook nearest_of(const float* levels, std::size_t k);
  SmallFloats<kInline> values_;
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
  Codes(std::size_t n, std::size_t k);  ///< n zero codes; throws Error if k is 0 or > kMaxCodes
  /// n codes whose values are unspecified until written (no clearing pass): for a caller that writes every
  /// one, as the pipeline's encoder does. Throws like the constructor.
  static Codes for_overwrite(std::size_t n, std::size_t k);

  std::size_t size() const;
  std::size_t code_count() const { return k_; }
  bool wide() const { return std::holds_alternative<Wide>(data_); }
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
  // Buffers (buffer.hpp): resize leaves the codes unset for the pass that writes them all.
  using Narrow = Buffer<std::uint8_t>;
  using Wide = Buffer<std::uint16_t>;
  std::size_t k_ = 0;
  std::variant<Narrow, Wide> data_;
};

}  // namespace sqb
