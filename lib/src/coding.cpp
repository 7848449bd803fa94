// Fixed-width bit packing. Packing streams codes through a 64-bit accumulator and stores 32 bits at a time;
// unpacking reads each code with one unaligned 32-bit load (a code at bit offset <= 7 spans at most 23 bits),
// falling back to byte loads for the last few codes.

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <string>

#include "sqb/coding.hpp"
#include "sqb/error.hpp"

namespace sqb {

namespace {

void check_bits(unsigned bits, const char* what) {
  if (bits < 1 || bits > 16) {
    throw Error(std::string(what) + ": bits per code must be in [1, 16], not " + std::to_string(bits));
  }
}

void store_le32(std::uint8_t* p, std::uint32_t v) {
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
}

std::uint32_t load_le32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}

template <class Code>
std::vector<std::uint8_t> pack_any(std::span<const Code> codes, unsigned bits) {
  check_bits(bits, "pack_codes");
  // One OR over all codes finds whether any is too wide; only then is the first offender searched for.
  Code all = 0;
  for (const Code c : codes)
    all = static_cast<Code>(all | c);
  if (bits < 8 * sizeof(Code) && (all >> bits) != 0) {
    for (std::size_t i = 0; i < codes.size(); ++i) {
      if ((codes[i] >> bits) != 0) {
        throw Error("pack_codes: code " + std::to_string(codes[i]) + " at index " + std::to_string(i) +
                    " does not fit in " + std::to_string(bits) + " bits (max " +
                    std::to_string((1u << bits) - 1) + ")");
      }
    }
  }
  std::vector<std::uint8_t> out(packed_bytes(codes.size(), bits));
  if (bits == 8 * sizeof(Code) && std::endian::native == std::endian::little) {
    if (!out.empty()) std::memcpy(out.data(), codes.data(), out.size());  // empty spans may hold nullptr
    return out;
  }
  std::uint64_t acc = 0;
  unsigned fill = 0;  // bits in acc, < 32 between codes
  std::uint8_t* dst = out.data();
  for (const Code c : codes) {
    acc |= static_cast<std::uint64_t>(c) << fill;
    fill += bits;
    if (fill >= 32) {
      store_le32(dst, static_cast<std::uint32_t>(acc));
      dst += 4;
      acc >>= 32;
      fill -= 32;
    }
  }
  for (; fill > 0; fill = fill > 8 ? fill - 8 : 0) {
    *dst++ = static_cast<std::uint8_t>(acc);
    acc >>= 8;
  }
  return out;
}

template <class Code>
void unpack_any(std::span<const std::uint8_t> bytes, unsigned bits, std::span<Code> out) {
  check_bits(bits, "unpack_codes");
  const std::size_t n = out.size();
  const std::size_t need = packed_bytes(n, bits);
  if (bytes.size() != need) {
    throw Error("unpack_codes: " + std::to_string(n) + " codes of " + std::to_string(bits) + " bits need " +
                std::to_string(need) + " bytes, given " + std::to_string(bytes.size()));
  }
  const std::uint32_t mask = (std::uint32_t{1} << bits) - 1;
  // Codes whose 4-byte window lies inside the stream: (i * bits) / 8 + 4 <= size.
  std::size_t fast = 0;
  if (bytes.size() >= 4) fast = std::min(n, ((bytes.size() - 4) * 8) / bits + 1);
  for (std::size_t i = 0; i < fast; ++i) {
    const std::size_t bit = i * bits;
    out[i] = static_cast<Code>((load_le32(bytes.data() + bit / 8) >> (bit % 8)) & mask);
  }
  for (std::size_t i = fast; i < n; ++i) {
    const std::size_t bit = i * bits;
    std::uint32_t window = 0;
    for (std::size_t k = 0; k < 4 && bit / 8 + k < bytes.size(); ++k)
      window |= static_cast<std::uint32_t>(bytes[bit / 8 + k]) << (8 * k);
    out[i] = static_cast<Code>((window >> (bit % 8)) & mask);
  }
  const std::size_t used = n * bits;
  if (used % 8 != 0 && (bytes.back() >> (used % 8)) != 0) {
    throw Error("unpack_codes: the pad bits after the last of " + std::to_string(n) + " codes of " +
                std::to_string(bits) + " bits are not zero (a stream of another length or bit width?)");
  }
}

}  // namespace

std::size_t packed_bytes(std::size_t n, unsigned bits) {
  check_bits(bits, "packed_bytes");
  std::size_t total = 0;
  if (__builtin_mul_overflow(n, static_cast<std::size_t>(bits), &total))
    throw Error("packed_bytes: " + std::to_string(n) + " codes of " + std::to_string(bits) +
                " bits overflow size_t");
  return total / 8 + (total % 8 != 0);
}

std::vector<std::uint8_t> pack_codes(std::span<const std::uint8_t> codes, unsigned bits) {
  return pack_any(codes, bits);
}
std::vector<std::uint8_t> pack_codes(std::span<const std::uint16_t> codes, unsigned bits) {
  return pack_any(codes, bits);
}

void unpack_codes(std::span<const std::uint8_t> bytes, unsigned bits, std::span<std::uint16_t> out) {
  unpack_any(bytes, bits, out);
}
void unpack_codes(std::span<const std::uint8_t> bytes, unsigned bits, std::span<std::uint8_t> out) {
  if (bits > 8) {
    throw Error("unpack_codes: " + std::to_string(bits) +
                "-bit codes do not fit in bytes; unpack into uint16");
  }
  unpack_any(bytes, bits, out);
}
std::vector<std::uint16_t> unpack_codes(std::span<const std::uint8_t> bytes, std::size_t n, unsigned bits) {
  check_bits(bits, "unpack_codes");
  // Check the length before allocating n codes.
  if (bytes.size() != packed_bytes(n, bits)) {
    throw Error("unpack_codes: " + std::to_string(n) + " codes of " + std::to_string(bits) + " bits need " +
                std::to_string(packed_bytes(n, bits)) + " bytes, given " + std::to_string(bytes.size()));
  }
  std::vector<std::uint16_t> out(n);
  unpack_any(bytes, bits, std::span<std::uint16_t>(out));
  return out;
}

}  // namespace sqb
