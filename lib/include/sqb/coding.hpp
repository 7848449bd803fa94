#pragma once
/// \file coding.hpp
/// Deployable code streams: fixed-width bit packing, and a static-frequency rANS entropy coder (J. Duda,
/// "Asymmetric numeral systems", arXiv:1311.2540; the byte-wise 32-bit-state variant popularised by F.
/// Giesen's public-domain ryg_rans) whose measured size is the `coded_bits` result figure.
///
/// ## Packed codes (pack_codes / unpack_codes)
/// n codes of b bits each (1 <= b <= 16) become ceil(n*b/8) bytes. Code i occupies bits [i*b, (i+1)*b) of the
/// stream, bits counted from the least significant bit of byte 0 upward (bit k is bit k%8 of byte k/8:
/// little- endian bit order), the code's least significant bit first. The pad bits after the last code are
/// zero. In numpy: `bits = np.unpackbits(buf, bitorder='little')[:n*b].reshape(n, b)`, `codes =
/// (bits.astype(np.uint32) << np.arange(b)).sum(axis=1)`.
///
/// ## rANS stream (rans_encode / rans_decode)
/// varint = unsigned LEB128 (7 bits per byte, least significant group first, high bit set on every byte but
/// the last; the shortest form). The stream is:
///  1. header: varint n (symbol count), varint S (alphabet size, 1 <= S <= 65536; every symbol is < S); if
///     n = 0 the stream ends here. Then one byte M (14 <= M <= 22): frequencies sum to 2^M.
///  2. frequency table, symbols in increasing order as runs: varint z (the number of absent symbols,
///  frequency
///     0, skipped), varint p >= 1 (the number of present symbols that follow), then p varints f - 1, one per
///     present symbol (f >= 1). Runs repeat until the frequencies sum to exactly 2^M; symbols after the last
///     run have frequency 0. Let c[s] be the cumulative frequency of the symbols before s.
///  3. payload: 4 bytes, the coder's state x as a little-endian uint32 (2^23 <= x < 2^31), then the
///     renormalisation bytes in the order the decoder reads them. Decoding, for each of the n symbols in
///     turn: slot = x mod 2^M; s = the symbol with c[s] <= slot < c[s] + f[s]; x = f[s] * (x >> M) + slot -
///     c[s]; while x < 2^23: x = (x << 8) | next byte. After the last symbol x is exactly 2^23 and every byte
///     has been read (the encoder starts from 2^23, encodes the symbols last to first, and writes its final
///     state).
/// Sizes: header_bytes counts item 1, table_bytes item 2, payload_bytes item 3.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace sqb {

// ---------------------------------------------------------------------------------------------------------
// Bit packing

/// ceil(n * bits / 8). Throws Error when bits is not in [1, 16] or the bit count overflows size_t.
std::size_t packed_bytes(std::size_t n, unsigned bits);

/// Packs codes at `bits` bits each (format above). Throws Error when bits is not in [1, 16] or a code does
/// not fit in `bits` bits (naming its index and value); nothing is truncated silently.
std::vector<std::uint8_t> pack_codes(std::span<const std::uint8_t> codes, unsigned bits);
std::vector<std::uint8_t> pack_codes(std::span<const std::uint16_t> codes, unsigned bits);

/// Unpacks out.size() codes of `bits` bits. Throws Error when bits is not in [1, 16], bytes.size() is not
/// packed_bytes(out.size(), bits), or a pad bit is set (a stream of another length or bit width).
void unpack_codes(std::span<const std::uint8_t> bytes, unsigned bits, std::span<std::uint16_t> out);
/// The same into bytes; bits must be <= 8.
void unpack_codes(std::span<const std::uint8_t> bytes, unsigned bits, std::span<std::uint8_t> out);
/// Convenience: n codes as a new vector.
std::vector<std::uint16_t> unpack_codes(std::span<const std::uint8_t> bytes, std::size_t n, unsigned bits);

// ---------------------------------------------------------------------------------------------------------
// rANS

/// rANS's normalisation bound: the state stays in [kRansLow, 256 * kRansLow) between symbols.
inline constexpr std::uint32_t kRansLow = std::uint32_t{1} << 23;
inline constexpr unsigned kRansMinScaleBits = 14;
inline constexpr unsigned kRansMaxScaleBits = 22;

struct RansOptions {
  /// M, the frequency precision (frequencies sum to 2^M): 0 chooses rans_choose_scale_bits(histogram);
  /// otherwise in [14, 22] and 2^M >= the number of distinct symbols present.
  unsigned scale_bits = 0;
};

/// An encoded stream and the sizes of its three parts (see the file comment), in bytes.
struct RansEncoded {
  std::vector<std::uint8_t> bytes;  ///< the whole stream
  std::size_t symbols = 0;          ///< n
  unsigned scale_bits = 0;          ///< M (0 when n = 0)
  std::size_t header_bytes = 0;
  std::size_t table_bytes = 0;
  std::size_t payload_bytes = 0;

  /// 8 * bytes.size(): what the stream costs in all.
  std::uint64_t total_bits() const { return 8 * static_cast<std::uint64_t>(bytes.size()); }
  /// Per symbol (0 when n = 0): the payload alone, and the header plus frequency table.
  double payload_bits_per_symbol() const;
  double table_bits_per_symbol() const;
};

/// The largest M rans_choose_scale_bits picks: above it the state's granularity starts to cost (measured on
/// 10^6 symbols of 16 levels: < 0.0002 bits per symbol up to M = 20, 0.0006 at 21, 0.0024 at 22).
inline constexpr unsigned kRansAutoMaxScaleBits = 20;

/// The M that rans_encode uses by default for a histogram `counts` (indexed by symbol): among M from
/// max(14, ceil(log2(present symbols))) to 20, the one minimising the stream's size estimate
/// sum_s counts[s] * (M - log2 f_M[s]) + 8 * (table bytes at M), f_M = rans_quantize_frequencies(counts, M)
/// (the ideal code length under the quantised frequencies plus the table; the smaller M on a tie). For a
/// small alphabet the choice moves the size by a few bits at most; for a large one on many symbols it
/// matters: a coarse M makes rare symbols take slots from frequent ones (4096 Gaussian-shaped levels, 10^6
/// symbols: 0.074 bits per symbol lost at M = 14, 0.0026 at the chosen 17). Throws Error when all counts are
/// 0 or more than 2^20 symbols are present.
unsigned rans_choose_scale_bits(std::span<const std::uint64_t> counts);

/// Quantises symbol counts to frequencies summing to exactly 2^scale_bits: a symbol with a count gets >= 1,
/// one without gets 0, and among all such integer vectors the result minimises the coded size
/// sum_s counts[s] * log2(2^M / f[s]) (greedy unit moves on a separable concave objective, so optimal).
/// scale_bits in [1, 30]. Throws Error when it is not, when the counts are all 0 or overflow uint64, or when
/// more symbols are present than 2^scale_bits.
std::vector<std::uint32_t> rans_quantize_frequencies(std::span<const std::uint64_t> counts,
                                                     unsigned scale_bits);

/// Encodes symbols (each < alphabet, 1 <= alphabet <= 65536) with frequencies from their own histogram.
/// Throws Error for a bad alphabet, a symbol >= alphabet (naming its index), or bad options.
RansEncoded rans_encode(std::span<const std::uint16_t> symbols, std::size_t alphabet,
                        const RansOptions& options = {});
RansEncoded rans_encode(std::span<const std::uint8_t> symbols, std::size_t alphabet,
                        const RansOptions& options = {});

/// Decodes a stream. Every malformed stream is an Error saying what is wrong (truncated, trailing bytes, a
/// non-canonical varint, an alphabet or M out of range, table runs beyond the alphabet or frequencies not
/// summing to 2^M, a state out of range, a final state other than 2^23) and never reads out of bounds. A
/// header announcing more than max_symbols symbols is an Error before anything is allocated (a one-symbol
/// stream costs no payload, so n itself cannot be checked against the length).
std::vector<std::uint16_t> rans_decode(std::span<const std::uint8_t> bytes, std::size_t max_symbols);

/// The `coded_bits` result figure before side values: total bits of the rANS stream (header + frequency table
/// + payload) coding `codes` over an alphabet of size `alphabet`. The stream is decoded and compared with the
/// codes; a mismatch throws std::logic_error (a coder bug, never bad input).
std::uint64_t rans_coded_bits(std::span<const std::uint16_t> codes, std::size_t alphabet);
std::uint64_t rans_coded_bits(std::span<const std::uint8_t> codes, std::size_t alphabet);

}  // namespace sqb
