// libFuzzer target: llama.cpp's GGUF importance matrix reader (sqb::parse_gguf_imatrix). Every input must
// parse or throw sqb::Error (never crash, over-allocate or read out of bounds), and what parses must hold
// only non-empty vectors of finite, non-negative values, and survive the Llama name map (renaming never loses
// a vector).

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sqb/error.hpp"
#include "sqb/importance.hpp"

namespace {

[[noreturn]] void bug(const char* what) {
  __builtin_printf("fuzz_gguf: invariant broken: %s\n", what);
  std::abort();
}

void check(sqb::Importance imp) {
  for (const auto& [name, v] : imp.vectors) {
    if (v.empty()) bug("an empty vector parsed");
    for (const float x : v)
      if (!std::isfinite(x) || x < 0) bug("a negative or non-finite entry parsed");
  }
  const std::size_t n = imp.vectors.size();
  try {
    sqb::rename_importance(imp, {});
    if (imp.vectors.size() != n) bug("renaming lost a vector");
  } catch (const sqb::Error&) {
    // Two llama.cpp names that map to one Hugging Face name (e.g. both spellings present): refused.
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const unsigned char> bytes(data, size);
  try {
    check(sqb::parse_gguf_imatrix(bytes, "fuzz.gguf"));
  } catch (const sqb::Error&) {
  }
  return 0;
}
