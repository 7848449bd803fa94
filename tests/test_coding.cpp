// Deployable code streams (sqb/coding.hpp): bit packing against a bit-by-bit reference and hand-checked
// bytes, a numpy unpacker/packer written from the documented format alone, and the rANS coder: exact stream
// bytes for a hand-worked case, round trips over many distributions, alphabets and lengths, optimal frequency
// quantisation against brute force, payload within a derived bound of n H, and malformed streams.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

#include "npy_helpers.hpp"
#include "requirements.hpp"
#include "sqb/coding.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"

namespace fs = std::filesystem;
using sqbtest::TempDir;

namespace {

// Bit-by-bit reference packer: bit k of the stream is bit k % 8 of byte k / 8; code i's bit j is stream bit
// i * b + j.
std::vector<std::uint8_t> pack_reference(const std::vector<std::uint16_t>& codes, unsigned b) {
  std::vector<std::uint8_t> out((codes.size() * b + 7) / 8, 0);
  for (std::size_t i = 0; i < codes.size(); ++i) {
    for (unsigned j = 0; j < b; ++j) {
      const std::size_t k = i * b + j;
      if ((codes[i] >> j) & 1u) out[k / 8] = static_cast<std::uint8_t>(out[k / 8] | (1u << (k % 8)));
    }
  }
  return out;
}

std::vector<std::uint16_t> random_codes(std::size_t n, unsigned b, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<std::uint16_t> v(n);
  for (auto& c : v)
    c = static_cast<std::uint16_t>(gen() & ((1u << b) - 1));
  if (n > 0) v[0] = static_cast<std::uint16_t>((1u << b) - 1);  // the widest code, all bits set
  return v;
}

// Empirical entropy in bits per symbol.
double entropy(const std::vector<std::uint16_t>& v, std::size_t alphabet) {
  std::vector<double> c(alphabet, 0);
  for (const auto s : v)
    c[s] += 1;
  double h = 0;
  const double n = static_cast<double>(v.size());
  for (const double x : c) {
    if (x > 0) h -= x / n * std::log2(x / n);
  }
  return h;
}

// n draws from a distribution given by weights over [0, alphabet).
std::vector<std::uint16_t> draw(const std::vector<double>& weights, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::discrete_distribution<int> d(weights.begin(), weights.end());
  std::vector<std::uint16_t> v(n);
  for (auto& s : v)
    s = static_cast<std::uint16_t>(d(gen));
  return v;
}

// A Gaussian quantised to `k` equal cells over [-4, 4] (codes of a uniform quantizer on N(0, 1) data).
std::vector<double> gaussian_weights(std::size_t k) {
  std::vector<double> w(k);
  for (std::size_t i = 0; i < k; ++i) {
    const double lo = -4 + 8.0 * static_cast<double>(i) / static_cast<double>(k);
    const double hi = lo + 8.0 / static_cast<double>(k);
    w[i] = 0.5 * (std::erf(hi / std::sqrt(2.0)) - std::erf(lo / std::sqrt(2.0))) + 1e-9;
  }
  return w;
}

std::vector<std::uint16_t> roundtrip(const std::vector<std::uint16_t>& v, std::size_t alphabet,
                                     sqb::RansOptions opt = {}) {
  const sqb::RansEncoded e = sqb::rans_encode(v, alphabet, opt);
  CHECK(e.bytes.size() == e.header_bytes + e.table_bytes + e.payload_bytes);
  return sqb::rans_decode(e.bytes, v.size());
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Bit packing

TEST_CASE("pack_codes: hand-checked bytes", "[coding]") {
  // b = 3: codes 1 2 3 0 5 -> stream bits (LSB of byte 0 first) 100 010 110 000 101 -> 0xD1 0x50.
  CHECK(sqb::pack_codes(std::vector<std::uint16_t>{1, 2, 3, 0, 5}, 3) ==
        std::vector<std::uint8_t>{0xD1, 0x50});
  // b = 12: 0xABC then 0x123 -> BC, (3 << 4 | A), 12.
  CHECK(sqb::pack_codes(std::vector<std::uint16_t>{0xABC, 0x123}, 12) ==
        std::vector<std::uint8_t>{0xBC, 0x3A, 0x12});
  // b = 1: bit i is code i.
  CHECK(sqb::pack_codes(std::vector<std::uint8_t>{1, 0, 1, 1, 0, 0, 0, 0, 1}, 1) ==
        std::vector<std::uint8_t>{0x0D, 0x01});
  // b = 4: two codes per byte, the first in the low nibble.
  CHECK(sqb::pack_codes(std::vector<std::uint8_t>{0x1, 0xF, 0x7}, 4) ==
        std::vector<std::uint8_t>{0xF1, 0x07});
  // b = 16: little-endian uint16s.
  CHECK(sqb::pack_codes(std::vector<std::uint16_t>{0x1234, 0xFFFF}, 16) ==
        std::vector<std::uint8_t>{0x34, 0x12, 0xFF, 0xFF});
  CHECK(sqb::pack_codes(std::vector<std::uint16_t>{}, 5).empty());
  // Empty input at the full width (the plain-copy path; fuzz_rans found a memcpy from a null pointer here).
  CHECK(sqb::pack_codes(std::vector<std::uint16_t>{}, 16).empty());
  CHECK(sqb::pack_codes(std::vector<std::uint8_t>{}, 8).empty());
  CHECK(sqb::unpack_codes(std::vector<std::uint8_t>{}, 0, 16).empty());
  CHECK(sqb::packed_bytes(3, 3) == 2);
  CHECK(sqb::packed_bytes(8, 3) == 3);
  CHECK(sqb::packed_bytes(0, 16) == 0);
}

TEST_CASE("pack_codes and unpack_codes agree with a bit-by-bit reference for every width", "[coding]") {
  for (unsigned b = 1; b <= 16; ++b) {
    for (const std::size_t n : {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4097}) {
      INFO("b = " << b << ", n = " << n);
      const auto codes = random_codes(n, b, 1000 * b + n);
      const auto want = pack_reference(codes, b);
      const auto packed = sqb::pack_codes(codes, b);
      REQUIRE(packed == want);
      REQUIRE(packed.size() == sqb::packed_bytes(n, b));
      REQUIRE(sqb::unpack_codes(packed, n, b) == codes);
      if (b <= 8) {
        const std::vector<std::uint8_t> narrow(codes.begin(), codes.end());
        REQUIRE(sqb::pack_codes(narrow, b) == want);
        std::vector<std::uint8_t> back(n);
        sqb::unpack_codes(packed, b, std::span<std::uint8_t>(back));
        REQUIRE(back == narrow);
      }
    }
  }
}

TEST_CASE("pack_codes and unpack_codes reject what does not fit", "[coding]") {
  CHECK_THROWS_WITH(sqb::pack_codes(std::vector<std::uint8_t>{1}, 0),
                    Catch::Equals("pack_codes: bits per code must be in [1, 16], not 0"));
  CHECK_THROWS_WITH(sqb::pack_codes(std::vector<std::uint16_t>{1}, 17), Catch::Contains("not 17"));
  CHECK_THROWS_WITH(sqb::pack_codes(std::vector<std::uint16_t>{1, 7, 8, 9}, 3),
                    Catch::Equals("pack_codes: code 8 at index 2 does not fit in 3 bits (max 7)"));
  CHECK_THROWS_WITH(sqb::pack_codes(std::vector<std::uint8_t>{255, 0}, 7),
                    Catch::Contains("code 255 at index 0"));
  const auto packed = sqb::pack_codes(std::vector<std::uint16_t>{1, 2, 3}, 5);  // 15 bits in 2 bytes
  CHECK_THROWS_WITH(sqb::unpack_codes(packed, 4, 5),
                    Catch::Equals("unpack_codes: 4 codes of 5 bits need 3 bytes, given 2"));
  CHECK_THROWS_WITH(sqb::unpack_codes(packed, 2, 5), Catch::Contains("pad bits after the last of 2 codes"));
  auto dirty = packed;
  dirty[1] |= 0x80;  // the pad bit
  CHECK_THROWS_WITH(sqb::unpack_codes(dirty, 3, 5), Catch::Contains("pad bits"));
  std::vector<std::uint8_t> out(1);
  CHECK_THROWS_WITH(sqb::unpack_codes(std::vector<std::uint8_t>{0, 0}, 9, std::span<std::uint8_t>(out)),
                    Catch::Contains("9-bit codes do not fit in bytes"));
  CHECK_THROWS_WITH(sqb::packed_bytes(std::numeric_limits<std::size_t>::max() / 2, 3),
                    Catch::Contains("overflow"));
}

TEST_CASE("a numpy unpacker written from the documented format reads pack_codes' streams",
          "[coding][python]") {
  sqbtest::require_python("numpy");
  const std::string python = sqbtest::kPython;
  TempDir dir;
  // C++ packs random codes for each width; numpy unpacks them with the snippet from sqb/coding.hpp, and packs
  // its own codes with np.packbits(bitorder='little') for C++ to unpack.
  const std::size_t n = 1001;
  for (unsigned b = 1; b <= 16; ++b) {
    const auto codes = random_codes(n, b, 77 + b);
    const auto packed = sqb::pack_codes(codes, b);
    dir.write("packed_" + std::to_string(b) + ".bin", std::string(packed.begin(), packed.end()));
    const std::vector<std::int32_t> want(codes.begin(), codes.end());
    sqb::npy::write(dir.path / ("want_" + std::to_string(b) + ".npy"), std::vector<std::size_t>{n}, want,
                    {sqb::npy::DType::int32});
  }
  const std::string script = R"PY(
import sys
import numpy as np
root, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(3)
for b in range(1, 17):
    buf = np.fromfile(f"{root}/packed_{b}.bin", dtype=np.uint8)
    assert buf.size == (n * b + 7) // 8, (b, buf.size)
    bits = np.unpackbits(buf, bitorder='little')[:n*b].reshape(n, b)
    codes = (bits.astype(np.uint32) << np.arange(b)).sum(axis=1)
    want = np.load(f"{root}/want_{b}.npy")
    assert (codes == want).all(), b
    # The other direction: numpy packs, C++ unpacks.
    mine = rng.integers(0, 1 << b, size=n)
    mbits = ((mine[:, None] >> np.arange(b)) & 1).astype(np.uint8).reshape(-1)
    np.packbits(mbits, bitorder='little').tofile(f"{root}/np_packed_{b}.bin")
    np.save(f"{root}/np_codes_{b}.npy", mine.astype(np.int32))
print("numpy", np.__version__, "unpacked 16 widths")
)PY";
  const fs::path sp = dir.write("unpack.py", script);
  const auto r = sqbtest::shell(python + " " + sp.string() + " " + dir.path.string() + " " +
                                std::to_string(n) + " 2>&1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  for (unsigned b = 1; b <= 16; ++b) {
    INFO("b = " << b);
    const std::string bytes = sqbtest::slurp(dir.path / ("np_packed_" + std::to_string(b) + ".bin"));
    const std::vector<std::uint8_t> buf(bytes.begin(), bytes.end());
    const auto got = sqb::unpack_codes(buf, n, b);
    const auto want = sqb::npy::read(dir.path / ("np_codes_" + std::to_string(b) + ".npy")).ints;
    REQUIRE(std::equal(got.begin(), got.end(), want.begin(), want.end()));
  }
}

// ---------------------------------------------------------------------------------------------------------
// rANS

TEST_CASE("rans: the exact bytes of a hand-worked stream", "[coding][rans]") {
  // Three copies of the only symbol of a 1-symbol alphabet: n = 3, S = 1, M = 14; the table is one run
  // (0 absent, 1 present, f - 1 = 16383 = varint FF 7F); a symbol with f = 2^M leaves the state at 2^23, so
  // the payload is just that state, little-endian.
  const sqb::RansEncoded e = sqb::rans_encode(std::vector<std::uint16_t>{0, 0, 0}, 1);
  CHECK(e.bytes ==
        std::vector<std::uint8_t>{0x03, 0x01, 0x0E, 0x00, 0x01, 0xFF, 0x7F, 0x00, 0x00, 0x80, 0x00});
  CHECK(e.header_bytes == 3);
  CHECK(e.table_bytes == 4);
  CHECK(e.payload_bytes == 4);
  CHECK(e.scale_bits == 14);
  CHECK(sqb::rans_decode(e.bytes, 3) == std::vector<std::uint16_t>{0, 0, 0});
  // Symbols 1 and 3 of 5, equally often: table runs (1 absent, 1 present: 8191), (1 absent, 1 present: 8191).
  const sqb::RansEncoded t = sqb::rans_encode(std::vector<std::uint8_t>{1, 3, 3, 1}, 5);
  const std::vector<std::uint8_t> table(t.bytes.begin() + 3,
                                        t.bytes.begin() + 3 + static_cast<long>(t.table_bytes));
  CHECK(table == std::vector<std::uint8_t>{0x01, 0x01, 0xFF, 0x3F, 0x01, 0x01, 0xFF, 0x3F});
  // Hand decoding: with f = 2^13 each symbol is one bit; 4 symbols fit in the state without renormalisation.
  CHECK(t.payload_bytes == 4);
  CHECK(sqb::rans_decode(t.bytes, 4) == std::vector<std::uint16_t>{1, 3, 3, 1});
  // An empty stream is its header: n = 0, S.
  const sqb::RansEncoded z = sqb::rans_encode(std::vector<std::uint16_t>{}, 300);
  CHECK(z.bytes == std::vector<std::uint8_t>{0x00, 0xAC, 0x02});
  CHECK(z.total_bits() == 24);
  CHECK(sqb::rans_decode(z.bytes, 0).empty());
}

TEST_CASE("rans: round trips over distributions, alphabets and lengths", "[coding][rans]") {
  struct Case {
    std::string name;
    std::size_t alphabet;
    std::vector<double> weights;
  };
  std::vector<double> geometric_half(32), geometric_9(64), heavy(256, 1e-4), two(2, 1),
      gauss16 = gaussian_weights(16);
  for (std::size_t i = 0; i < geometric_half.size(); ++i)
    geometric_half[i] = std::pow(0.5, static_cast<double>(i));
  for (std::size_t i = 0; i < geometric_9.size(); ++i)
    geometric_9[i] = std::pow(0.9, static_cast<double>(i));
  heavy[17] = 1;
  const Case c = GENERATE_COPY(
      Case{"uniform 2", 2, std::vector<double>(2, 1)}, Case{"uniform 16", 16, std::vector<double>(16, 1)},
      Case{"uniform 256", 256, std::vector<double>(256, 1)},
      Case{"uniform 4096", 4096, std::vector<double>(4096, 1)}, Case{"geometric 0.5", 32, geometric_half},
      Case{"geometric 0.9", 64, geometric_9}, Case{"one heavy symbol of 256", 256, heavy},
      Case{"two symbols", 2, two}, Case{"gaussian 16 in a 65536 alphabet", 65536, gauss16},
      Case{"single symbol 5 of 9", 9, {0, 0, 0, 0, 0, 1, 0, 0, 0}});
  for (const std::size_t n : {1, 2, 3, 100, 5000, 200000}) {
    INFO(c.name << ", n = " << n);
    const auto v = draw(c.weights, n, n);
    REQUIRE(roundtrip(v, c.alphabet) == v);
    if (c.alphabet <= 256) {
      const std::vector<std::uint8_t> narrow(v.begin(), v.end());
      const sqb::RansEncoded e8 = sqb::rans_encode(narrow, c.alphabet);
      CHECK(e8.bytes == sqb::rans_encode(v, c.alphabet).bytes);  // the same stream from either index type
    }
  }
  // Every scale from 14 to 22 on one stream.
  const auto v = draw(c.weights, 20000, 9);
  for (unsigned m = sqb::kRansMinScaleBits; m <= sqb::kRansMaxScaleBits; ++m) {
    INFO(c.name << ", M = " << m);
    if (c.alphabet > (std::size_t{1} << m)) continue;
    REQUIRE(roundtrip(v, c.alphabet, {m}) == v);
  }
}

TEST_CASE("rans: all 65536 symbols, large n, and a symbol seen once", "[coding][rans]") {
  std::vector<std::uint16_t> v(70000);
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<std::uint16_t>((i * 40503u) & 0xFFFF);  // a permutation of all codes, then some again
  const sqb::RansEncoded e = sqb::rans_encode(v, 65536);
  CHECK(e.scale_bits >= 16);
  CHECK(sqb::rans_decode(e.bytes, v.size()) == v);
  // One rare symbol among 2^20 copies of another: both coded, the rare one with frequency 1.
  std::vector<std::uint16_t> w(1 << 20, 7);
  w[123456] = 65535;
  const sqb::RansEncoded ew = sqb::rans_encode(w, 65536);
  CHECK(sqb::rans_decode(ew.bytes, w.size()) == w);
  // log2(2^M / (2^M - 1)) bits for each of the 2^20 - 1 copies, M bits for the rare one, the 32-bit flush.
  const double t = std::ldexp(1.0, static_cast<int>(ew.scale_bits));
  CHECK(8.0 * static_cast<double>(ew.payload_bytes) <=
        static_cast<double>(w.size() - 1) * std::log2(t / (t - 1)) + ew.scale_bits + 32 + 8);
  // Large n of a skewed law round-trips and decodes with the slot table.
  const auto big = draw(gaussian_weights(256), 2'000'000, 4);
  CHECK(roundtrip(big, 256) == big);
}

TEST_CASE("rans: frequency quantisation is optimal (against brute force) and keeps every symbol",
          "[coding][rans]") {
  // Brute force: every vector of frequencies >= 1 for the present symbols summing to 2^M; the best
  // sum c log2 f must equal ours.
  std::mt19937_64 gen(11);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t k = 1 + gen() % 4;
    const unsigned m = 2 + static_cast<unsigned>(gen() % 4);  // 4 .. 32 slots
    std::vector<std::uint64_t> counts(k);
    for (auto& c : counts)
      c = gen() % 3 == 0 ? 0 : 1 + gen() % (trial % 2 ? 1000 : 10);
    const std::size_t present =
        static_cast<std::size_t>(std::count_if(counts.begin(), counts.end(), [](auto c) { return c > 0; }));
    if (present == 0 || present > (1u << m)) continue;
    const auto f = sqb::rans_quantize_frequencies(counts, m);
    const auto score = [&](const std::vector<std::uint64_t>& g) {
      double s = 0;
      for (std::size_t i = 0; i < k; ++i)
        if (counts[i] > 0) s += static_cast<double>(counts[i]) * std::log2(static_cast<double>(g[i]));
      return s;
    };
    REQUIRE(std::accumulate(f.begin(), f.end(), std::uint64_t{0}) == (1u << m));
    std::vector<std::uint64_t> ours(f.begin(), f.end());
    for (std::size_t i = 0; i < k; ++i)
      REQUIRE((counts[i] == 0) == (f[i] == 0));
    double best = -INFINITY;
    std::vector<std::uint64_t> g(k, 0);
    const std::uint64_t total = 1u << m;
    // Enumerate compositions of `total` over the present symbols.
    const auto rec = [&](auto&& self, std::size_t i, std::uint64_t left) -> void {
      if (i == k) {
        if (left == 0) best = std::max(best, score(g));
        return;
      }
      if (counts[i] == 0) {
        g[i] = 0;
        self(self, i + 1, left);
        return;
      }
      for (std::uint64_t x = 1; x <= left; ++x) {
        g[i] = x;
        self(self, i + 1, left - x);
      }
    };
    rec(rec, 0, total);
    INFO("trial " << trial);
    REQUIRE_THAT(score(ours), Catch::WithinAbs(best, 1e-9 * (1 + std::fabs(best))));
  }
  // Many tiny symbols next to a huge one: each keeps 1 slot, the huge one gets the rest.
  std::vector<std::uint64_t> counts(1000, 1);
  counts[0] = 1'000'000'000;
  const auto f = sqb::rans_quantize_frequencies(counts, 14);
  CHECK(f[0] == 16384 - 999);
  CHECK(std::all_of(f.begin() + 1, f.end(), [](std::uint32_t x) { return x == 1; }));
  CHECK_THROWS_WITH(sqb::rans_quantize_frequencies(std::vector<std::uint64_t>(3, 0), 14),
                    Catch::Contains("all counts are 0"));
  CHECK_THROWS_WITH(sqb::rans_quantize_frequencies(std::vector<std::uint64_t>(17, 1), 4),
                    Catch::Contains("17 present symbols"));
}

TEST_CASE("rans: the payload is within the derived bound of n times the entropy", "[coding][rans]") {
  // payload bits <= n (H + D(p || q)) + n log2(1 + 2^M / 2^23) + 32 + 8:
  //   H is the empirical entropy; D(p || q) the divergence from the quantised frequencies q = f / 2^M (what
  //   coding with q instead of p costs, exactly); each symbol's state step is exact up to the floor in x / f,
  //   which changes x' by less than 2^M where x' >= 2^23, i.e. by a factor < 1 + 2^M / 2^23; 32 bits are the
  //   flushed state and 8 the last partial byte.
  struct Case {
    std::string name;
    std::vector<double> weights;
  };
  std::vector<double> geometric(40);
  for (std::size_t i = 0; i < geometric.size(); ++i)
    geometric[i] = std::pow(0.7, static_cast<double>(i));
  const Case c =
      GENERATE_COPY(Case{"gaussian 16", gaussian_weights(16)}, Case{"gaussian 256", gaussian_weights(256)},
                    Case{"gaussian 4096", gaussian_weights(4096)}, Case{"geometric 0.7", geometric},
                    Case{"uniform 16", std::vector<double>(16, 1)});
  const std::size_t n = 1'000'000;
  const auto v = draw(c.weights, n, 21);
  const std::size_t alphabet = c.weights.size();
  const sqb::RansEncoded e = sqb::rans_encode(v, alphabet);
  REQUIRE(sqb::rans_decode(e.bytes, n) == v);
  std::vector<std::uint64_t> counts(alphabet, 0);
  for (const auto s : v)
    ++counts[s];
  const auto f = sqb::rans_quantize_frequencies(counts, e.scale_bits);
  const double h = entropy(v, alphabet);
  double kl = 0;
  for (std::size_t s = 0; s < alphabet; ++s) {
    if (counts[s] == 0) continue;
    const double p = static_cast<double>(counts[s]) / n,
                 q = f[s] / std::ldexp(1.0, static_cast<int>(e.scale_bits));
    kl += p * std::log2(p / q);
  }
  const double state_bound = std::log2(1 + std::ldexp(1.0, static_cast<int>(e.scale_bits) - 23));
  const double payload_bits = 8.0 * static_cast<double>(e.payload_bytes);
  const double bound = n * (h + kl + state_bound) + 40;
  INFO(c.name << ": H = " << h << " bits, D(p||q) = " << kl << ", payload = " << payload_bits / n
              << " bits/symbol, overhead = " << payload_bits / n - h
              << " bits/symbol, table = " << e.table_bits_per_symbol() << " bits/symbol");
  CHECK(payload_bits <= bound);
  CHECK(payload_bits >= n * h - 64);  // nothing codes below the entropy (up to the flush)
  // Measured, not derived: beyond the quantisation's D(p || q), the state costs < 0.001 bits per symbol at
  // the M the encoder picks (<= 20), and the total overhead stays within 0.2% of H plus 0.001 bits.
  CHECK(payload_bits / n - h - kl <= 0.001 + 40.0 / n);
  CHECK(payload_bits / n - h <= 0.002 * h + 0.001);
}

TEST_CASE("rans: malformed streams are Errors, never a crash", "[coding][rans]") {
  const auto v = draw(gaussian_weights(16), 3000, 5);
  const sqb::RansEncoded e = sqb::rans_encode(v, 16);
  const std::vector<std::uint8_t>& good = e.bytes;
  // Every truncation.
  for (std::size_t len = 0; len < good.size(); ++len) {
    INFO("truncated to " << len << " of " << good.size());
    const std::vector<std::uint8_t> cut(good.begin(), good.begin() + static_cast<long>(len));
    CHECK_THROWS_AS(sqb::rans_decode(cut, v.size()), sqb::Error);
  }
  // A byte more.
  auto longer = good;
  longer.push_back(0);
  CHECK_THROWS_WITH(sqb::rans_decode(longer, v.size()), Catch::Contains("1 bytes after the payload's end"));
  // Single-bit flips: an Error or a stream of the right length, and most are caught by the final-state check.
  std::size_t caught = 0, flips = 0;
  for (std::size_t i = 0; i < good.size(); i += 3) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = good;
      bad[i] ^= static_cast<std::uint8_t>(1 << bit);
      ++flips;
      try {
        const auto out = sqb::rans_decode(bad, v.size());
        CHECK(out.size() <= v.size());
      } catch (const sqb::Error&) {
        ++caught;
      }
    }
  }
  CHECK(caught > flips * 9 / 10);
}

TEST_CASE("rans: hand-made bad headers, tables and states", "[coding][rans]") {
  using B = std::vector<std::uint8_t>;
  struct Case {
    B bytes;
    std::string expect;
  };
  const Case c = GENERATE(
      Case{B{}, "truncated inside the symbol count"}, Case{B{0x80}, "truncated inside the symbol count"},
      Case{B{0x80, 0x00, 0x01}, "the symbol count is a non-canonical varint"},
      Case{B{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02},
           "the symbol count overflows 64 bits"},
      Case{B{0x05, 0x01}, "announces 5 symbols, more than the 4 expected"},
      Case{B{0x01, 0x00}, "alphabet size 0 is outside [1, 65536]"},
      Case{B{0x01, 0x81, 0x80, 0x04}, "alphabet size 65537 is outside"},
      Case{B{0x00, 0x01, 0x00}, "1 bytes after an empty stream's header"},
      Case{B{0x01, 0x01}, "truncated before the scale byte M"},
      Case{B{0x01, 0x01, 13}, "scale M = 13 is outside [14, 22]"}, Case{B{0x01, 0x01, 23}, "scale M = 23"},
      Case{B{0x01, 0x02, 14, 0x03, 0x01}, "skips past the alphabet's end"},
      Case{B{0x01, 0x02, 14, 0x00, 0x00}, "run of 0 present symbols"},
      Case{B{0x01, 0x02, 14, 0x01, 0x02}, "goes past the alphabet's end"},
      Case{B{0x01, 0x02, 14, 0x00, 0x02, 0xFF, 0x7F, 0x00}, "add up to more than 2^14"},
      Case{B{0x01, 0x02, 14, 0x00, 0x01, 0xFF, 0x3F}, "truncated inside a table run"},
      Case{B{0x01, 0x01, 14, 0x00, 0x01, 0xFF, 0x7F, 0x00, 0x00, 0x80}, "no room for the 4-byte state"},
      Case{B{0x01, 0x01, 14, 0x00, 0x01, 0xFF, 0x7F, 0xFF, 0xFF, 0x7F, 0x00},
           "the initial state 8388607 is outside"},
      Case{B{0x01, 0x01, 14, 0x00, 0x01, 0xFF, 0x7F, 0x00, 0x00, 0x00, 0x80},
           "the initial state 2147483648 is outside"},
      Case{B{0x01, 0x01, 14, 0x00, 0x01, 0xFF, 0x7F, 0x01, 0x00, 0x80, 0x00},
           "final state is 8388609, not 2^23"});
  INFO(c.expect);
  CHECK_THROWS_WITH(sqb::rans_decode(c.bytes, 4),
                    Catch::StartsWith("rANS stream: ") && Catch::Contains(c.expect));
}

TEST_CASE("rans: encoder input errors and coded_bits", "[coding][rans]") {
  CHECK_THROWS_WITH(sqb::rans_encode(std::vector<std::uint16_t>{0}, 0),
                    Catch::Contains("alphabet size must be in [1, 65536], not 0"));
  CHECK_THROWS_WITH(sqb::rans_encode(std::vector<std::uint16_t>{0}, 65537), Catch::Contains("not 65537"));
  CHECK_THROWS_WITH(sqb::rans_encode(std::vector<std::uint16_t>{0, 3, 4}, 4),
                    Catch::Equals("rans_encode: symbol 4 at index 2 is outside the alphabet [0, 4)"));
  CHECK_THROWS_WITH(sqb::rans_encode(std::vector<std::uint16_t>{0}, 4, {13}),
                    Catch::Contains("scale_bits must be 0"));
  CHECK_THROWS_WITH(sqb::rans_encode(std::vector<std::uint16_t>{0}, 4, {23}), Catch::Contains("not 23"));
  std::vector<std::uint16_t> all(65536);
  std::iota(all.begin(), all.end(), 0);
  CHECK_THROWS_WITH(sqb::rans_encode(all, 65536, {15}),
                    Catch::Contains("65536 distinct symbols do not fit in 2^15"));
  CHECK(sqb::rans_decode(sqb::rans_encode(all, 65536, {16}).bytes, all.size()) == all);
  // coded_bits is the whole stream, decoded and checked.
  const auto v = draw(gaussian_weights(16), 10000, 1);
  const std::vector<std::uint8_t> narrow(v.begin(), v.end());
  const sqb::RansEncoded e = sqb::rans_encode(v, 16);
  CHECK(sqb::rans_coded_bits(v, 16) == 8 * e.bytes.size());
  CHECK(sqb::rans_coded_bits(narrow, 16) == 8 * e.bytes.size());
  CHECK(e.table_bits_per_symbol() == Approx(8.0 * static_cast<double>(e.header_bytes + e.table_bytes) / 1e4));
  CHECK(e.payload_bits_per_symbol() == Approx(8.0 * static_cast<double>(e.payload_bytes) / 1e4));
  // The automatic M: 14 for a small alphabet; at least enough slots for every present symbol; the M whose
  // estimated size (ideal code length under the quantised frequencies + table) is smallest.
  CHECK(sqb::rans_choose_scale_bits(std::vector<std::uint64_t>{5, 1, 0, 3}) == 14);
  CHECK(sqb::rans_choose_scale_bits(std::vector<std::uint64_t>(65536, 1)) == 16);
  CHECK(sqb::rans_choose_scale_bits(std::vector<std::uint64_t>(16385, 1)) >= 15);
  CHECK_THROWS_WITH(sqb::rans_choose_scale_bits(std::vector<std::uint64_t>(4, 0)),
                    Catch::Contains("all counts are 0"));
  std::vector<std::uint64_t> counts(4096, 0);
  for (const auto s : draw(gaussian_weights(4096), 1'000'000, 3))
    ++counts[s];
  const unsigned m = sqb::rans_choose_scale_bits(counts);
  const auto estimate = [&](unsigned mm) {
    const auto f = sqb::rans_quantize_frequencies(counts, mm);
    double bits = 0;
    for (std::size_t s = 0; s < f.size(); ++s)
      if (counts[s] > 0) bits += static_cast<double>(counts[s]) * (mm - std::log2(static_cast<double>(f[s])));
    return bits;
  };
  CHECK(m > 14);                                   // rare symbols make a coarse M expensive here
  CHECK(estimate(m) < estimate(14) - 0.01 * 1e6);  // > 0.01 bits per symbol better
}

TEST_CASE("a Python rANS coder written from the documented format interoperates with rans_encode/decode",
          "[coding][rans][python]") {
  sqbtest::require_python();
  const std::string python = sqbtest::kPython;
  TempDir dir;
  // C++ streams for Python to decode (symbols alongside as text), over several alphabets and M.
  struct Stream {
    std::string name;
    std::vector<std::uint16_t> symbols;
    std::size_t alphabet;
    unsigned m;
  };
  std::vector<Stream> streams = {{"g16", draw(gaussian_weights(16), 3000, 1), 16, 0},
                                 {"g256", draw(gaussian_weights(256), 3000, 2), 256, 0},
                                 {"g4096m22", draw(gaussian_weights(4096), 3000, 3), 4096, 22},
                                 {"one", std::vector<std::uint16_t>(100, 3), 4, 0},
                                 {"empty", {}, 7, 0}};
  std::vector<std::uint16_t> sparse(2000);
  for (std::size_t i = 0; i < sparse.size(); ++i)
    sparse[i] = static_cast<std::uint16_t>(i % 3 == 0 ? 65535 : (i * 7919) % 40);
  streams.push_back({"sparse", sparse, 65536, 0});
  for (const Stream& st : streams) {
    const auto e = sqb::rans_encode(st.symbols, st.alphabet, {st.m});
    dir.write(st.name + ".rans", std::string(e.bytes.begin(), e.bytes.end()));
    std::string text;
    for (const auto x : st.symbols)
      text += std::to_string(x) + " ";
    dir.write(st.name + ".txt", text);
  }
  // The decoder and encoder below follow the stream description in sqb/coding.hpp, nothing else.
  const std::string script = R"PY(
import bisect, os, random, sys
root = sys.argv[1]
L = 1 << 23

def read_varint(b, i):
    v, shift = 0, 0
    while True:
        x = b[i]; i += 1
        v |= (x & 0x7F) << shift
        if x < 0x80:
            return v, i
        shift += 7

def decode(b):
    n, i = read_varint(b, 0)
    S, i = read_varint(b, i)
    if n == 0:
        assert i == len(b)
        return []
    M = b[i]; i += 1
    T = 1 << M
    freq, s, total = [0] * S, 0, 0
    while total < T:
        z, i = read_varint(b, i); s += z
        p, i = read_varint(b, i)
        for _ in range(p):
            f, i = read_varint(b, i)
            freq[s] = f + 1; total += f + 1; s += 1
    assert total == T
    cum, c = [0] * S, 0
    for k in range(S):
        cum[k] = c; c += freq[k]
    present = [k for k in range(S) if freq[k]]
    starts = [cum[k] for k in present]
    x = int.from_bytes(b[i:i + 4], "little"); i += 4
    out = []
    for _ in range(n):
        slot = x & (T - 1)
        k = present[bisect.bisect_right(starts, slot) - 1]
        out.append(k)
        x = freq[k] * (x >> M) + slot - cum[k]
        while x < L:
            x = (x << 8) | b[i]; i += 1
    assert x == L and i == len(b), (x, i, len(b))
    return out

def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80); v >>= 7
    out.append(v)
    return bytes(out)

def encode(symbols, S, M):
    n = len(symbols)
    out = varint(n) + varint(S)
    T = 1 << M
    counts = [0] * S
    for s in symbols:
        counts[s] += 1
    freq = [max(1, c * T // n) if c else 0 for c in counts]
    big = max(range(S), key=lambda k: freq[k]); freq[big] += T - sum(freq)
    out += bytes([M])
    s = 0
    while s < S:
        z = s
        while z < S and freq[z] == 0: z += 1
        if z == S: break
        p = z
        while p < S and freq[p]: p += 1
        out += varint(z - s) + varint(p - z) + b"".join(varint(freq[k] - 1) for k in range(z, p))
        s = p
    cum, c = [0] * S, 0
    for k in range(S):
        cum[k] = c; c += freq[k]
    x, emitted = L, []
    for s in reversed(symbols):
        f = freq[s]
        while x >= ((L >> M) << 8) * f:
            emitted.append(x & 0xFF); x >>= 8
        x = ((x // f) << M) + (x % f) + cum[s]
    return out + x.to_bytes(4, "little") + bytes(reversed(emitted))

names = sorted(f[:-5] for f in os.listdir(root) if f.endswith(".rans"))
for name in names:
    got = decode(open(os.path.join(root, name + ".rans"), "rb").read())
    want = [int(t) for t in open(os.path.join(root, name + ".txt")).read().split()]
    assert got == want, name
rng = random.Random(4)
for j, (S, M) in enumerate([(16, 14), (300, 17), (65536, 22)]):
    syms = [min(S - 1, int(rng.expovariate(0.05))) for _ in range(2500)]
    open(os.path.join(root, "py%d.rans" % j), "wb").write(encode(syms, S, M))
    open(os.path.join(root, "py%d.txt" % j), "w").write(" ".join(map(str, syms)))
print("python decoded", len(names), "streams")
)PY";
  const fs::path sp = dir.write("rans.py", script);
  const auto r = sqbtest::shell(python + " " + sp.string() + " " + dir.path.string() + " 2>&1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  for (int j = 0; j < 3; ++j) {
    INFO("py" << j);
    const std::string bytes = sqbtest::slurp(dir.path / ("py" + std::to_string(j) + ".rans"));
    std::istringstream text(sqbtest::slurp(dir.path / ("py" + std::to_string(j) + ".txt")));
    std::vector<std::uint16_t> want;
    for (unsigned x; text >> x;)
      want.push_back(static_cast<std::uint16_t>(x));
    CHECK(sqb::rans_decode(std::vector<std::uint8_t>(bytes.begin(), bytes.end()), want.size()) == want);
  }
}

TEST_CASE("rans figures: overhead over the entropy (hidden, run with [.figures])", "[.figures]") {
  // Prints, for each law and n: H, then per M (14 .. 22) the payload's overhead over n H and the header +
  // table, in bits per symbol; then the encoder's own choice of M with D(p || q) split out.
  std::vector<double> geometric(40);
  for (std::size_t i = 0; i < geometric.size(); ++i)
    geometric[i] = std::pow(0.7, static_cast<double>(i));
  const std::vector<std::pair<std::string, std::vector<double>>> laws = {
      {"gauss16", gaussian_weights(16)},     {"gauss256", gaussian_weights(256)},
      {"gauss4096", gaussian_weights(4096)}, {"gauss65536", gaussian_weights(65536)},
      {"geometric0.7", geometric},           {"uniform16", std::vector<double>(16, 1)}};
  for (const std::size_t n : {10000, 1000000}) {
    for (const auto& [name, w] : laws) {
      const auto v = draw(w, n, 21);
      const double h = entropy(v, w.size());
      std::printf("%-13s n=%-8zu H=%8.4f |", name.c_str(), n, h);
      for (unsigned m = 14; m <= 22; ++m) {
        try {
          const sqb::RansEncoded e = sqb::rans_encode(v, w.size(), {m});
          std::printf(" M%u %.4f+%.4f", m, e.payload_bits_per_symbol() - h, e.table_bits_per_symbol());
        } catch (const sqb::Error&) {
          std::printf(" M%u    -         ", m);
        }
      }
      const sqb::RansEncoded e = sqb::rans_encode(v, w.size());
      std::vector<std::uint64_t> counts(w.size(), 0);
      for (const auto x : v)
        ++counts[x];
      const auto f = sqb::rans_quantize_frequencies(counts, e.scale_bits);
      double kl = 0;
      for (std::size_t k = 0; k < w.size(); ++k) {
        if (counts[k] == 0) continue;
        const double p = static_cast<double>(counts[k]) / static_cast<double>(n);
        kl += p * std::log2(p / (f[k] / std::ldexp(1.0, static_cast<int>(e.scale_bits))));
      }
      std::printf(" | auto M%u: payload-H %.5f (D %.5f, rest %.5f) table %.5f\n", e.scale_bits,
                  e.payload_bits_per_symbol() - h, kl, e.payload_bits_per_symbol() - h - kl,
                  e.table_bits_per_symbol());
    }
  }
}
