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

// The grid search below pays O(K) to set up, so it is used only for inputs of at least this many values per
// bucket.
constexpr std::size_t kGridMinValuesPerBucket = 8;
// The grid search steps over at most this many thresholds (those in any three neighbouring buckets); beyond
// that, or when the binary search needs fewer than kGridOverheadLevels + steps levels, the binary search is
// used. Measured in experiments/microbench (encode/<shape>/...): a grid lookup costs about as much as four
// binary-search levels plus one per step, so a uniform codebook (1 step) gains from K = 32 on, a
// Gaussian-shaped one (2-3 steps) from K = 64 on, and a cosine one (ends crowded: 8 steps at K = 256) never.
constexpr std::size_t kGridMaxSteps = 4;
constexpr std::size_t kGridOverheadLevels = 4;

std::size_t grid_buckets(std::size_t thresholds) {
  return std::bit_ceil(4 * thresholds);
}

// The grid's per-value loop with the step count known at compile time (fully unrolled), eight values side by
// side so that their load chains overlap.
template <std::size_t Steps, class Index>
void grid_search(const float* pt, const std::uint32_t* ps, double t0, double inv, double buckets, float t1,
                 std::size_t last, std::span<const float> x, std::span<Index> out) {
  const std::size_t top = static_cast<std::size_t>(buckets) - 1;
  // Values outside [t0, t1] (and NaN) clamp to the end buckets; the steps then finish the count exactly.
  const auto bucket = [&](float v) {
    const double u = (static_cast<double>(v) - t0) * inv;
    return u > 0 ? (u < buckets ? static_cast<std::size_t>(u) : top) : std::size_t{0};
  };
  constexpr std::size_t kLanes = 8;
  const std::size_t n = x.size();
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    std::size_t pos[kLanes];
    for (std::size_t l = 0; l < kLanes; ++l)
      pos[l] = ps[bucket(x[i + l])];
    for (std::size_t k = 0; k < Steps; ++k) {
      for (std::size_t l = 0; l < kLanes; ++l)
        pos[l] += pt[pos[l]] < x[i + l];
    }
    for (std::size_t l = 0; l < kLanes; ++l)
      out[i + l] = static_cast<Index>(x[i + l] > t1 ? last : pos[l]);
  }
  for (; i < n; ++i) {
    const float v = x[i];
    std::size_t pos = ps[bucket(v)];
    for (std::size_t k = 0; k < Steps; ++k)
      pos += pt[pos] < v;
    out[i] = static_cast<Index>(v > t1 ? last : pos);
  }
}

// Encoding with a uniform grid of B = `buckets` over [t_first, t_last]: bucket j covers [t0 + j w, t0 + (j+1)
// w), and start[j] is the number of thresholds below the *previous* bucket's left edge, so even when rounding
// puts x in the bucket after its true one, start[j] <= #{t < x}. The count is then finished by at most
// kGridMaxSteps branch-free steps over the thresholds (padded with +inf). Exactly the same result as the
// binary search. Returns false (nothing written) when the thresholds are too unevenly spread for that.
template <class Index>
bool encode_grid(std::span<const float> t, std::span<const float> x, std::span<Index> out,
                 std::size_t buckets) {
  const double t0 = t.front(), t1 = t.back();
  if (!(t1 > t0)) return false;
  const double width = (t1 - t0) / static_cast<double>(buckets);
  const double inv = static_cast<double>(buckets) / (t1 - t0);
  if (!std::isfinite(inv) || !(width > 0)) return false;
  std::vector<std::uint32_t> start(buckets + 1, 0);
  std::size_t below = 0;  // thresholds < the left edge of bucket j - 1
  for (std::size_t j = 1; j <= buckets; ++j) {
    const double edge = t0 + static_cast<double>(j - 1) * width;
    while (below < t.size() && static_cast<double>(t[below]) < edge)
      ++below;
    start[j] = static_cast<std::uint32_t>(below);
  }
  std::size_t steps = 0;
  for (std::size_t j = 0; j < buckets; ++j) {
    // x found in bucket j lies in [edge(j - 1), edge(j + 2)) even if rounding moved it by one bucket either
    // way: the thresholds there are the most it can need to step over.
    const std::size_t until = j + 3 <= buckets ? start[j + 3] : t.size();
    steps = std::max(steps, until - start[j]);
  }
  const std::size_t binary_levels = std::bit_width(t.size());  // levels of the padded binary search
  if (steps > kGridMaxSteps || kGridOverheadLevels + steps > binary_levels) return false;
  std::vector<float> padded(t.size() + kGridMaxSteps + 1, std::numeric_limits<float>::infinity());
  std::copy(t.begin(), t.end(), padded.begin());
  const auto run = [&]<std::size_t S>(std::integral_constant<std::size_t, S>) {
    grid_search<S>(padded.data(), start.data(), t0, inv, static_cast<double>(buckets), t.back(), t.size(), x,
                   out);
  };
  static_assert(kGridMaxSteps == 4, "one case per step count below");
  switch (steps) {
    case 0:  // cannot happen (every threshold lies in some bucket); one step is still exact
    case 1:
      run(std::integral_constant<std::size_t, 1>{});
      break;
    case 2:
      run(std::integral_constant<std::size_t, 2>{});
      break;
    case 3:
      run(std::integral_constant<std::size_t, 3>{});
      break;
    default:
      run(std::integral_constant<std::size_t, 4>{});
      break;
  }
  return true;
}

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
  } else if (const std::size_t buckets = grid_buckets(t.size());
             n >= kGridMinValuesPerBucket * buckets && encode_grid(t, x, out, buckets)) {
    // done: a uniform grid narrowed every search to a few thresholds
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

namespace {

// |x - l| exactly, as an unevaluated sum hi + lo (Knuth's TwoSum of x and -l): a double alone cannot tell
// 1/6 - 2^-149 from 1/6, so plain double distances would tie where the true distances differ.
struct Distance {
  double hi, lo;
};

Distance distance(double x, double l) {
  const double s = x - l;
  const double bb = s - x;
  double err = (x - (s - bb)) + (-l - bb);
  double hi = s;
  if (hi < 0 || (hi == 0 && err < 0)) {
    hi = -hi;
    err = -err;
  }
  return {hi, err};
}

bool operator<(const Distance& a, const Distance& b) {
  return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}
bool operator==(const Distance& a, const Distance& b) {
  return a.hi == b.hi && a.lo == b.lo;
}

}  // namespace

std::size_t nearest_level_reference(std::span<const float> levels, float x) {
  std::size_t best = 0;
  Distance best_d = distance(x, levels[0]);
  for (std::size_t i = 1; i < levels.size(); ++i) {
    const Distance d = distance(x, levels[i]);
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
