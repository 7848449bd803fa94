#include "sqb/codebook.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <string>

#include "sqb/error.hpp"

namespace sqb {

float float_at_or_below(double b) {
  float f = static_cast<float>(b);  // round to nearest
  if (static_cast<double>(f) > b) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

namespace {

void check_levels(const std::vector<float>& levels) {
  if (levels.empty()) throw Error("codebook: no levels (K must be >= 1)");
  if (levels.size() > 65536)
    throw Error("codebook: " + std::to_string(levels.size()) + " levels (at most 65536)");
  for (std::size_t i = 0; i < levels.size(); ++i) {
    if (!std::isfinite(levels[i])) throw Error("codebook: level " + std::to_string(i) + " is not finite");
    if (i > 0 && levels[i] < levels[i - 1]) {
      throw Error("codebook: levels not sorted ascending at index " + std::to_string(i));
    }
  }
}

}  // namespace

Codebook Codebook::nearest(std::vector<float> levels) {
  check_levels(levels);
  Codebook cb;
  cb.thresholds_.resize(levels.size() - 1);
  for (std::size_t i = 0; i + 1 < levels.size(); ++i) {
    // The sum of two floats is exact in double unless their exponents differ by more than 29, in which case
    // the smaller one cannot move the midpoint by a float32 ulp anyway.
    const double mid = (static_cast<double>(levels[i]) + static_cast<double>(levels[i + 1])) * 0.5;
    cb.thresholds_[i] = float_at_or_below(mid);
  }
  cb.levels_ = std::move(levels);
  return cb;
}

Codebook Codebook::nearest(std::span<const double> levels) {
  std::vector<float> f(levels.size());
  for (std::size_t i = 0; i < levels.size(); ++i)
    f[i] = static_cast<float>(levels[i]);
  return nearest(std::move(f));
}

Codebook Codebook::with_boundaries(std::vector<float> levels, std::span<const double> boundaries) {
  check_levels(levels);
  if (boundaries.size() + 1 != levels.size()) {
    throw Error("codebook: " + std::to_string(levels.size()) + " levels need " +
                std::to_string(levels.size() - 1) + " boundaries, got " + std::to_string(boundaries.size()));
  }
  Codebook cb;
  cb.thresholds_.resize(boundaries.size());
  for (std::size_t i = 0; i < boundaries.size(); ++i) {
    const double b = boundaries[i];
    if (!(b >= levels[i] && b <= levels[i + 1])) {
      throw Error("codebook: boundary " + std::to_string(i) + " (" + std::to_string(b) +
                  ") is not between its levels");
    }
    cb.thresholds_[i] = float_at_or_below(b);
  }
  cb.levels_ = std::move(levels);
  return cb;
}

namespace {

// Below this many thresholds a branch-free linear count (which the compiler vectorises: one compare and add
// per threshold per 8 elements) beats a binary search; measured in experiments/microbench (encode kernels).
constexpr std::size_t kLinearMaxThresholds = 16;

template <class Index>
void encode_impl(const Codebook& cb, std::span<const float> x, std::span<Index> out) {
  if (out.size() != x.size()) {
    throw Error("encode: " + std::to_string(x.size()) + " values but " + std::to_string(out.size()) +
                " outputs");
  }
  const std::size_t k = cb.size();
  if (k == 0) throw Error("encode: empty codebook");
  if (k - 1 > std::numeric_limits<Index>::max()) {
    throw Error("encode: K = " + std::to_string(k) + " does not fit the index type");
  }
  const std::span<const float> t = cb.thresholds();
  const std::size_t n = x.size();
  if (t.empty()) {
    std::fill(out.begin(), out.end(), Index{0});
  } else if (t.size() <= kLinearMaxThresholds) {
    // Count thresholds below each value, a chunk at a time; 32-bit counters keep the compare-and-add in one
    // vector lane width (float compares produce 32-bit masks).
    constexpr std::size_t kChunk = 256;
    for (std::size_t base = 0; base < n; base += kChunk) {
      const std::size_t m = std::min(kChunk, n - base);
      std::int32_t count[kChunk] = {};
      const float* xb = x.data() + base;
      for (const float tj : t) {
        for (std::size_t i = 0; i < m; ++i)
          count[i] += xb[i] > tj ? 1 : 0;
      }
      for (std::size_t i = 0; i < m; ++i)
        out[base + i] = static_cast<Index>(count[i]);
    }
  } else {
    // Branch-free binary search over the thresholds padded to 2^p - 1 entries with +inf (never below a
    // value). Eight values are searched side by side: their load chains are independent, so their latencies
    // overlap.
    const std::size_t p2 = std::bit_ceil(t.size() + 1);
    std::vector<float> padded(p2 - 1, std::numeric_limits<float>::infinity());
    std::copy(t.begin(), t.end(), padded.begin());
    const float* pt = padded.data();
    constexpr std::size_t kLanes = 8;
    std::size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      std::size_t pos[kLanes] = {};
      for (std::size_t half = p2 / 2; half > 0; half /= 2) {
        for (std::size_t l = 0; l < kLanes; ++l)
          pos[l] += (pt[pos[l] + half - 1] < x[i + l]) ? half : 0;
      }
      for (std::size_t l = 0; l < kLanes; ++l)
        out[i + l] = static_cast<Index>(pos[l]);
    }
    for (; i < n; ++i) {
      std::size_t pos = 0;  // thresholds known to be < x[i]
      for (std::size_t half = p2 / 2; half > 0; half /= 2)
        pos += (pt[pos + half - 1] < x[i]) ? half : 0;
      out[i] = static_cast<Index>(pos);
    }
  }
}

template <class Index>
void decode_impl(const Codebook& cb, std::span<const Index> codes, std::span<float> out) {
  if (out.size() != codes.size()) {
    throw Error("decode: " + std::to_string(codes.size()) + " codes but " + std::to_string(out.size()) +
                " outputs");
  }
  const std::span<const float> levels = cb.levels();
  const std::size_t k = levels.size();
  std::size_t bad = 0;
  for (std::size_t i = 0; i < codes.size(); ++i) {
    const std::size_t c = codes[i];
    const bool ok = c < k;
    bad |= !ok;
    out[i] = levels[ok ? c : 0];
  }
  if (bad) {
    for (std::size_t i = 0; i < codes.size(); ++i) {
      if (codes[i] >= k) {
        throw Error("decode: code " + std::to_string(codes[i]) + " at index " + std::to_string(i) +
                    " is out of range for a codebook of " + std::to_string(k) + " levels");
      }
    }
  }
}

}  // namespace

void encode(const Codebook& cb, std::span<const float> x, std::span<std::uint8_t> out) {
  encode_impl(cb, x, out);
}
void encode(const Codebook& cb, std::span<const float> x, std::span<std::uint16_t> out) {
  encode_impl(cb, x, out);
}
void decode(const Codebook& cb, std::span<const std::uint8_t> codes, std::span<float> out) {
  decode_impl(cb, codes, out);
}
void decode(const Codebook& cb, std::span<const std::uint16_t> codes, std::span<float> out) {
  decode_impl(cb, codes, out);
}

std::size_t nearest_level_reference(std::span<const float> levels, float x) {
  std::size_t best = 0;
  double best_d = std::abs(static_cast<double>(x) - levels[0]);
  for (std::size_t i = 1; i < levels.size(); ++i) {
    const double d = std::abs(static_cast<double>(x) - levels[i]);
    if (d < best_d || (d == best_d && levels[i] == levels[best] && x > levels[i])) {
      best = i;
      best_d = d;
    }
  }
  return best;
}

std::vector<std::uint16_t> nearest_centroid_indices(std::span<const float> values,
                                                    std::span<const float> centroids) {
  const Codebook cb = Codebook::nearest(std::vector<float>(centroids.begin(), centroids.end()));
  std::vector<std::uint16_t> out(values.size());
  encode(cb, values, std::span<std::uint16_t>(out));
  return out;
}

Codes::Codes(std::size_t n, std::size_t k) : k_(k) {
  if (k == 0 || k > 65536) throw Error("codes: K = " + std::to_string(k) + " is outside 1..65536");
  if (k <= 256) {
    data_ = std::vector<std::uint8_t>(n);
  } else {
    data_ = std::vector<std::uint16_t>(n);
  }
}

std::size_t Codes::size() const {
  return std::visit([](const auto& v) { return v.size(); }, data_);
}

std::size_t Codes::operator[](std::size_t i) const {
  return std::visit([i](const auto& v) { return static_cast<std::size_t>(v[i]); }, data_);
}

}  // namespace sqb
