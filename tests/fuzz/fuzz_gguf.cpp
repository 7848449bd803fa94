// libFuzzer target: llama.cpp's GGUF importance matrix reader (sqb::parse_gguf_imatrix). Every input must
// parse or throw sqb::Error (never crash, over-allocate or read out of bounds), and what parses must hold
// only non-empty vectors of finite, non-negative values, and survive the Llama name map (renaming never loses
// a vector).

#include <cstdint>
#include <span>

#include "importance_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const unsigned char> bytes(data, size);
  try {
    fuzz::check_importance(sqb::parse_gguf_imatrix(bytes, "fuzz.gguf"), "fuzz_gguf");
  } catch (const sqb::Error&) {
  }
  return 0;
}
