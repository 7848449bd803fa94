#pragma once
// What every importance reader's fuzz target checks on a parsed file (fuzz_gguf, fuzz_imatrix_dat): only
// non-empty vectors of finite, non-negative values, and the Llama name map never loses a vector.

#include <cmath>
#include <cstdlib>

#include "sqb/error.hpp"
#include "sqb/importance.hpp"

namespace fuzz {

[[noreturn]] inline void bug(const char* target, const char* what) {
  __builtin_printf("%s: invariant broken: %s\n", target, what);
  std::abort();
}

inline void check_importance(sqb::Importance imp, const char* target) {
  for (const auto& [name, v] : imp.vectors) {
    if (v.empty()) bug(target, "an empty vector parsed");
    for (const float x : v)
      if (!std::isfinite(x) || x < 0) bug(target, "a negative or non-finite entry parsed");
  }
  const std::size_t n = imp.vectors.size();
  try {
    sqb::rename_importance(imp, {});
    if (imp.vectors.size() != n) bug(target, "renaming lost a vector");
  } catch (const sqb::Error&) {
    // Two llama.cpp names that map to one Hugging Face name (e.g. both spellings present): refused.
  }
}

}  // namespace fuzz
