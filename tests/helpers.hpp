#pragma once
// Small shared helpers for the tests.

#include <cstdint>
#include <string>
#include <vector>

#include "sqb/distribution.hpp"
#include "sqb/tensor.hpp"

namespace sqbtest {

/// n draws of a registered distribution (e.g. "gaussian"), seeded.
inline std::vector<float> draw(const std::string& spec, std::size_t n, std::uint64_t seed) {
  return sqb::make_distribution(spec)->draw(n, seed).values;
}

inline sqb::Tensor tensor(std::size_t rows, std::size_t cols, std::uint64_t seed = 1) {
  return sqb::Tensor(rows, cols, draw("gaussian", rows * cols, seed));
}

}  // namespace sqbtest
