#pragma once
// Tight reductions over float32 blocks, written so GCC vectorises them at -O2/-O3 (no early exits, no
// branches that depend on the data).

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>

namespace sqb::detail {

/// (min, max) of a non-empty block of finite values.
// Eight independent accumulators: GCC turns them into packed min/max, and they stay in registers even when
// the caller keeps the result somewhere whose address is taken (a single accumulator was spilled to the stack
// in such a caller, costing 3 ns per value).
inline std::pair<float, float> min_max(std::span<const float> x) {
  constexpr std::size_t kLanes = 8;
  float lo[kLanes], hi[kLanes];
  for (std::size_t l = 0; l < kLanes; ++l)
    lo[l] = hi[l] = x[0];
  std::size_t i = 0;
  for (; i + kLanes <= x.size(); i += kLanes) {
    for (std::size_t l = 0; l < kLanes; ++l) {
      const float v = x[i + l];
      lo[l] = v < lo[l] ? v : lo[l];
      hi[l] = v > hi[l] ? v : hi[l];
    }
  }
  for (; i < x.size(); ++i) {
    lo[0] = x[i] < lo[0] ? x[i] : lo[0];
    hi[0] = x[i] > hi[0] ? x[i] : hi[0];
  }
  float a = lo[0], b = hi[0];
  for (std::size_t l = 1; l < kLanes; ++l) {
    a = lo[l] < a ? lo[l] : a;
    b = hi[l] > b ? hi[l] : b;
  }
  return {a, b};
}

/// max |x| of a block of finite values (0 for an empty block).
// As a max over the bit patterns with the sign cleared (non-negative as int32): for values that are not NaN
// the patterns of |x| order as the values do, and an integer max vectorises where GCC kept the float compares
// scalar (they were a third of the time inside absmax uniform's design() for a group of 64).
inline float abs_max(std::span<const float> x) {
  constexpr std::size_t kLanes = 16;
  std::int32_t m[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= x.size(); i += kLanes) {
    for (std::size_t l = 0; l < kLanes; ++l) {
      const std::int32_t a = std::bit_cast<std::int32_t>(x[i + l]) & 0x7FFFFFFF;
      m[l] = a > m[l] ? a : m[l];
    }
  }
  for (; i < x.size(); ++i) {
    const std::int32_t a = std::bit_cast<std::int32_t>(x[i]) & 0x7FFFFFFF;
    m[0] = a > m[0] ? a : m[0];
  }
  std::int32_t r = m[0];
  for (std::size_t l = 1; l < kLanes; ++l)
    r = m[l] > r ? m[l] : r;
  return std::bit_cast<float>(r);
}

/// Whether every value is finite: the largest |x| as a bit pattern (sign cleared) is below the pattern of
/// +Inf, which every NaN and infinity reaches. An unsigned max over the bits vectorises (no floating-point
/// compare, no count to widen), so the usual all-finite case costs one read of the data.
inline bool all_finite(std::span<const float> x) {
  constexpr std::size_t kLanes = 16;
  std::uint32_t m[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= x.size(); i += kLanes) {
    for (std::size_t l = 0; l < kLanes; ++l) {
      const std::uint32_t b = std::bit_cast<std::uint32_t>(x[i + l]) & 0x7fffffffu;
      m[l] = b > m[l] ? b : m[l];
    }
  }
  for (; i < x.size(); ++i) {
    const std::uint32_t b = std::bit_cast<std::uint32_t>(x[i]) & 0x7fffffffu;
    m[0] = b > m[0] ? b : m[0];
  }
  std::uint32_t r = 0;
  for (const std::uint32_t v : m)
    r = v > r ? v : r;
  return r < 0x7f800000u;
}

/// Number of NaN or +-Inf values.
inline std::size_t count_non_finite(std::span<const float> x) {
  std::size_t bad = 0;
  for (const float v : x)
    bad += !(std::fabs(v) <= std::numeric_limits<float>::max());
  return bad;
}

}  // namespace sqb::detail
