// libFuzzer target: the code streams of sqb/coding.hpp. Byte 0 picks the mode:
//  - even: the rest is an rANS stream for rans_decode (at most 2^16 symbols). It must decode or throw
//    sqb::Error, never crash or read out of bounds; what decodes must survive re-encoding: encode(decoded)
//    decodes to the same symbols.
//  - odd: the rest is symbols for the encoder: byte 1 (with byte 0's upper bits) picks the alphabet size,
//  then
//    little-endian uint16s reduced into the alphabet. rans_encode -> rans_decode must give them back, and so
//    must pack_codes -> unpack_codes at the alphabet's bit width.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "sqb/coding.hpp"
#include "sqb/error.hpp"

namespace {

[[noreturn]] void bug(const char* what) {
  __builtin_printf("fuzz_rans: invariant broken: %s\n", what);
  std::abort();
}

constexpr std::size_t kMaxSymbols = 1 << 16;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if ((data[0] & 1) == 0) {
    std::vector<std::uint16_t> out;
    try {
      out = sqb::rans_decode(std::span<const std::uint8_t>(data + 1, size - 1), kMaxSymbols);
    } catch (const sqb::Error&) {
      return 0;
    }
    if (out.size() > kMaxSymbols) bug("decoded more than max_symbols");
    std::size_t alphabet = 1;
    for (const auto s : out)
      alphabet = std::max<std::size_t>(alphabet, s + std::size_t{1});
    const sqb::RansEncoded e = sqb::rans_encode(out, alphabet);
    if (sqb::rans_decode(e.bytes, out.size()) != out) bug("re-encoding a decoded stream does not round-trip");
    return 0;
  }
  if (size < 2) return 0;
  // Alphabet 1 .. 65536 (about half the inputs stay within 256): 2^sel, or one less.
  unsigned sel = (static_cast<unsigned>(data[0] >> 1 & 0x3F) << 8 | data[1]) % 17;  // 0 .. 16
  if (data[0] & 0x80) sel %= 9;
  const std::size_t alphabet = (std::size_t{1} << sel) - (sel > 1 ? data[1] % 2 : 0);
  std::vector<std::uint16_t> symbols;
  for (std::size_t i = 2; i + 1 < size; i += 2)
    symbols.push_back(static_cast<std::uint16_t>((data[i] | data[i + 1] << 8) % alphabet));
  const sqb::RansEncoded e = sqb::rans_encode(symbols, alphabet);
  if (e.bytes.size() != e.header_bytes + e.table_bytes + e.payload_bytes) bug("sizes do not add up");
  if (sqb::rans_decode(e.bytes, symbols.size()) != symbols) bug("encode -> decode does not round-trip");
  unsigned bits = 1;
  while ((std::size_t{1} << bits) < alphabet)
    ++bits;
  const auto packed = sqb::pack_codes(symbols, bits);
  if (sqb::unpack_codes(packed, symbols.size(), bits) != symbols) bug("pack -> unpack does not round-trip");
  return 0;
}
