#pragma once
// Slow, obviously correct references for the shared encoder (sqb/codebook.hpp), for tests and benchmarks
// only.

#include <cstddef>
#include <span>

namespace sqb::detail {

/// The nearest-level rule by brute force: scans all levels computing |x - l| exactly (a double plus its
/// rounding error); a tie between distinct levels (x on their midpoint) keeps the lower one; among equal
/// levels x goes to the first of them when x <= level and to the last when x > level (what the threshold
/// search does). Only meaningful for midpoint codebooks (Codebook::nearest); levels non-empty and ascending.
std::size_t nearest_level_reference(std::span<const float> levels, float x);

}  // namespace sqb::detail
