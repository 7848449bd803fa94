#pragma once
// Tight reductions over float32 blocks, written so GCC vectorises them at -O2/-O3 (no early exits, no
// branches that depend on the data).

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <utility>

namespace sqb::detail {

/// (min, max) of a non-empty block of finite values.
inline std::pair<float, float> min_max(std::span<const float> x) {
  float lo = x[0], hi = x[0];
  for (const float v : x) {
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  return {lo, hi};
}

/// max |x| of a block of finite values (0 for an empty block).
inline float abs_max(std::span<const float> x) {
  float m = 0.0f;
  for (const float v : x) {
    const float a = std::fabs(v);
    m = a > m ? a : m;
  }
  return m;
}

/// Number of NaN or +-Inf values.
inline std::size_t count_non_finite(std::span<const float> x) {
  std::size_t bad = 0;
  for (const float v : x)
    bad += !(std::fabs(v) <= std::numeric_limits<float>::max());
  return bad;
}

}  // namespace sqb::detail
