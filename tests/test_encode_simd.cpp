// The SIMD encoder and decoder (lib/src/encode_simd.cpp) on every Highway target this machine can run: every
// tier (compare-all count, grid + binary search, plain binary search) bit-identical to a plain count of the
// thresholds below each value, at every threshold and its float neighbours, signed zeros, subnormals,
// +-FLT_MAX, infinities, NaN, values outside the codebook, repeated levels, tails and unaligned spans; the
// float16/bfloat16 table over all 65,536 patterns; decode and its error position.

#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "detail/encode_simd.hpp"
#include "sqb/codebook.hpp"
#include "sqb/error.hpp"

namespace {

using sqb::Codebook;
using sqb::detail::EncodeOptions;
using sqb::detail::EncodeTier;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kMax = std::numeric_limits<float>::max();
constexpr float kMinNormal = std::numeric_limits<float>::min();
constexpr float kMinSub = std::numeric_limits<float>::denorm_min();

// The reference: the number of thresholds strictly below x, by a plain loop.
std::size_t count_below(const std::vector<float>& t, float x) {
  std::size_t c = 0;
  for (const float tj : t)
    c += tj < x ? 1 : 0;
  return c;
}

// The same count for many values at once by a merge: sort the values, walk the thresholds once. Used where
// the plain loop would take minutes (K = 65536); checked against the plain loop below.
std::vector<std::size_t> count_below_all(const std::vector<float>& t, const std::vector<float>& x) {
  std::vector<std::size_t> order(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    order[i] = i;
  std::vector<std::size_t> out(x.size(), 0);  // NaN: 0
  order.erase(std::remove_if(order.begin(), order.end(), [&](std::size_t i) { return std::isnan(x[i]); }),
              order.end());
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
  std::size_t j = 0;
  for (const std::size_t i : order) {
    while (j < t.size() && t[j] < x[i])
      ++j;
    out[i] = j;
  }
  return out;
}

// Runs f on every compiled target this CPU supports (then restores the CPU's best); returns their names.
template <class F>
std::vector<std::string> on_every_target(F&& f) {
  struct Restore {
    ~Restore() { sqb::detail::force_target(0); }
  } restore;
  std::vector<std::string> ran;
  for (const auto& target : sqb::detail::compiled_targets()) {
    if (!sqb::detail::cpu_supports(target.bit)) continue;
    sqb::detail::force_target(target.bit);
    REQUIRE(sqb::detail::active_target() == target.name);
    INFO("SIMD target " << target.name);
    f(target.name);
    ran.push_back(target.name);
  }
  return ran;
}

std::vector<float> with_neighbours(std::vector<float> x, const std::vector<float>& points) {
  for (const float p : points) {
    x.push_back(p);
    x.push_back(std::nextafter(p, -kInf));
    x.push_back(std::nextafter(p, kInf));
  }
  return x;
}

// The values every encoder must get right: signed zeros, subnormals, the smallest normals, +-FLT_MAX,
// infinities and NaN, plus whatever the caller adds.
std::vector<float> special_values() {
  return {0.0f,          -0.0f,          kMinSub, -kMinSub, 2 * kMinSub, -2 * kMinSub, kMinNormal,
          -kMinNormal,   1e-40f,         -1e-40f, kMax,     -kMax,       kInf,         -kInf,
          std::nanf(""), -std::nanf(""), 1e30f,   -1e30f,   1.0f,        -1.0f};
}

// Levels for a codebook shape; sorted, possibly with repeats.
std::vector<float> shaped_levels(const std::string& shape, std::size_t k, std::uint64_t seed) {
  std::vector<float> levels(k);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (std::size_t i = 0; i < k; ++i) {
    const double u = (static_cast<double>(i) + 0.5) / static_cast<double>(k);
    double v = 0;
    if (shape == "uniform") v = -4.0 + 8.0 * u;
    if (shape == "cosine") v = -4.0 * std::cos(std::numbers::pi * u);  // crowded at both ends
    if (shape == "geometric") v = (u < 0.5 ? -1.0 : 1.0) * std::pow(1.618, -60.0 * std::abs(u - 0.5));
    if (shape == "random") v = normal(rng);
    if (shape == "repeated") v = std::round(normal(rng) * 3.0) / 3.0;      // long runs of equal levels
    if (shape == "tiny") v = (u - 0.5) * 1e-36;                            // thresholds among subnormals
    if (shape == "huge") v = (u - 0.5) * 1.9 * static_cast<double>(kMax);  // the grid's span near overflow
    if (shape == "constant") v = 0.75;
    levels[i] = static_cast<float>(v);
  }
  std::sort(levels.begin(), levels.end());
  return levels;
}

// Values for a codebook: random ones around and beyond its range, every threshold and level with their
// float neighbours, and the special values.
std::vector<float> probe_values(const Codebook& cb, std::size_t random_count, std::uint64_t seed) {
  std::vector<float> x = special_values();
  const auto levels = cb.levels();
  const double lo = levels.front(), hi = levels.back();
  const double mid = 0.5 * (lo + hi), half = std::max(0.5 * (hi - lo), 1e-30);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.5, 1.5);
  for (std::size_t i = 0; i < random_count; ++i)
    x.push_back(static_cast<float>(mid + half * u(rng)));
  x = with_neighbours(x, std::vector<float>(cb.thresholds().begin(), cb.thresholds().end()));
  x = with_neighbours(x, std::vector<float>(levels.begin(), levels.end()));
  return x;
}

template <class Index>
std::vector<std::size_t> run(const Codebook& cb, const std::vector<float>& x, const EncodeOptions& options) {
  std::vector<Index> out(x.size(), Index{0x5a});
  sqb::detail::encode_thresholds(cb.thresholds(), x, std::span<Index>(out), options);
  return std::vector<std::size_t>(out.begin(), out.end());
}

std::size_t mismatches(const std::vector<std::size_t>& a, const std::vector<std::size_t>& b) {
  std::size_t m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m += a[i] != b[i];
  return m + (a.size() != b.size());
}

// Every tier the encoder has, with a few grid sizes each, for a codebook of T thresholds.
std::vector<EncodeOptions> tiers(std::size_t nt) {
  std::vector<EncodeOptions> out = {{EncodeTier::automatic, 0}, {EncodeTier::search, 1}};
  if (nt <= 300) out.push_back({EncodeTier::count, 0});  // correct for any T, but slow beyond that
  if (sqb::detail::tree_fits(nt)) out.push_back({EncodeTier::tree, 0});  // depends on the target's lanes
  const std::size_t base = std::bit_ceil(std::max<std::size_t>(nt, 1));
  for (const std::size_t b : {std::size_t{2}, base, 4 * base, 64 * base}) {
    const std::size_t capped = std::min<std::size_t>(b, std::size_t{1} << 18);
    if (out.back().tier != EncodeTier::search || out.back().buckets != capped)
      out.push_back({EncodeTier::search, capped});
  }
  return out;
}

std::string describe(const EncodeOptions& o) {
  std::ostringstream s;
  s << (o.tier == EncodeTier::count    ? "count"
        : o.tier == EncodeTier::tree   ? "tree"
        : o.tier == EncodeTier::search ? "search"
                                       : "automatic");
  if (o.tier == EncodeTier::search) s << " B=" << o.buckets;
  return s.str();
}

}  // namespace

TEST_CASE("the reference merge count equals the plain loop", "[encode]") {
  const Codebook cb = Codebook::nearest(shaped_levels("repeated", 300, 3));
  const std::vector<float> t(cb.thresholds().begin(), cb.thresholds().end());
  const std::vector<float> x = probe_values(cb, 3000, 4);
  const auto merged = count_below_all(t, x);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    bad += merged[i] != count_below(t, x[i]);
  CHECK(bad == 0);
}

TEST_CASE("SIMD targets: the encoder runs on each one this CPU supports", "[encode]") {
  std::string compiled, skipped;
  bool fallback = false;
  for (const auto& target : sqb::detail::compiled_targets()) {
    compiled += " " + target.name;
    if (!sqb::detail::cpu_supports(target.bit)) skipped += " " + target.name;
    fallback = fallback || target.name == "EMU128" || target.name == "SCALAR";
  }
  const Codebook cb = Codebook::nearest(shaped_levels("random", 5, 1));
  const std::vector<float> x = probe_values(cb, 100, 2);
  const std::vector<float> t(cb.thresholds().begin(), cb.thresholds().end());
  const auto ran = on_every_target([&](const std::string&) {
    CHECK(mismatches(run<std::uint8_t>(cb, x, {}), count_below_all(t, x)) == 0);
  });
  std::string ran_names;
  for (const auto& r : ran)
    ran_names += " " + r;
  WARN("SIMD targets compiled:" << compiled << "; tested on this CPU:" << ran_names);
  if (!skipped.empty())
    WARN("SKIPPED: compiled SIMD targets this CPU lacks, so not tested here:"
         << skipped << " (a CPU with those instruction sets runs them)");
  if (!fallback)
    WARN(
        "SKIPPED: no portable target (EMU128 or SCALAR) is compiled in: Highway dispatches only to targets "
        "at least as good as the compile flags' baseline, and this build's flags (-march=native from "
        "SQB_NATIVE=ON?) guarantee a SIMD one; a build without SQB_NATIVE (the release and debug presets) "
        "tests the portable code");
  CHECK(!ran.empty());
  CHECK(sqb::detail::active_target() == ran.front());  // restored: the best one again
}

TEST_CASE("every tier on every SIMD target equals the plain count", "[encode]") {
  const std::size_t k = GENERATE(1, 2, 3, 16, 17, 255, 256, 257, 4096, 65536);
  const std::string shape = GENERATE(as<std::string>{}, "uniform", "cosine", "random", "repeated",
                                     "geometric", "tiny", "huge", "constant");
  if (k == 65536 && shape != "random" && shape != "uniform") return;  // the two large ones cover it
  const Codebook cb = Codebook::nearest(shaped_levels(shape, k, k));
  const std::vector<float> t(cb.thresholds().begin(), cb.thresholds().end());
  const std::vector<float> x = probe_values(cb, k > 4096 ? 2000 : 3000, k + 1);
  const auto expect = count_below_all(t, x);
  if (k <= 4096) {
    std::size_t checked = 0, bad = 0;  // the merge against the plain loop on a sample
    for (std::size_t i = 0; i < x.size(); i += 7, ++checked)
      bad += expect[i] != count_below(t, x[i]);
    REQUIRE(bad == 0);
  }
  INFO("K=" << k << " shape " << shape);
  on_every_target([&](const std::string&) {
    for (const EncodeOptions& o : tiers(t.size())) {
      INFO(describe(o));
      const auto info = sqb::detail::encode_plan(t, x.size(), o);
      INFO("plan: buckets " << info.buckets << ", window " << info.window << ", steps " << info.steps);
      if (k <= 256) CHECK(mismatches(run<std::uint8_t>(cb, x, o), expect) == 0);
      CHECK(mismatches(run<std::uint16_t>(cb, x, o), expect) == 0);
    }
  });
}

TEST_CASE("tails and unaligned spans on every SIMD target, nothing written outside", "[encode]") {
  const std::size_t k = GENERATE(3, 17, 256, 4096);
  const Codebook cb = Codebook::nearest(shaped_levels("random", k, 7));
  const std::vector<float> t(cb.thresholds().begin(), cb.thresholds().end());
  const std::vector<float> x = probe_values(cb, 200, 8);
  const auto expect = count_below_all(t, x);
  INFO("K=" << k);
  on_every_target([&](const std::string&) {
    for (const EncodeOptions& o : tiers(t.size())) {
      INFO(describe(o));
      const sqb::detail::ThresholdEncoder encoder(t, 70, o);  // planned once, run on every span
      for (std::size_t offset = 0; offset < 4; ++offset) {
        for (std::size_t len = 0; len <= 70; ++len) {
          std::vector<std::uint16_t> out(len + 8, 0xbeef);
          encoder.encode(std::span<const float>(x).subspan(offset + 3, len),
                         std::span<std::uint16_t>(out).subspan(offset, len));
          std::size_t bad = 0;
          for (std::size_t i = 0; i < out.size(); ++i) {
            const bool inside = i >= offset && i < offset + len;
            bad += inside ? out[i] != expect[offset + 3 + i - offset] : out[i] != 0xbeef;
          }
          INFO("offset " << offset << " length " << len);
          CHECK(bad == 0);
          if (k <= 256) {
            std::vector<std::uint8_t> narrow(len + 8, 0xa5);
            encoder.encode(std::span<const float>(x).subspan(offset + 1, len),
                           std::span<std::uint8_t>(narrow).subspan(offset + 2, len));
            std::size_t bad8 = 0;
            for (std::size_t i = 0; i < narrow.size(); ++i) {
              const bool inside = i >= offset + 2 && i < offset + 2 + len;
              bad8 += inside ? narrow[i] != expect[offset + 1 + i - offset - 2] : narrow[i] != 0xa5;
            }
            CHECK(bad8 == 0);
          }
        }
      }
    }
  });
}

TEST_CASE("public encode on every SIMD target equals the nearest-level rule's count", "[encode]") {
  // The public entry point with codebooks from both constructors, long enough for the grid to be chosen.
  const std::size_t k = GENERATE(2, 16, 64, 256, 1000);
  std::vector<float> levels = shaped_levels("uniform", k, 1);
  std::vector<double> geometric(k - 1);
  for (std::size_t i = 0; i + 1 < k; ++i)
    geometric[i] = levels[i] + 0.3 * (static_cast<double>(levels[i + 1]) - levels[i]);  // not midpoints
  for (const Codebook& cb : {Codebook::nearest(levels), Codebook::with_boundaries(levels, geometric)}) {
    const std::vector<float> t(cb.thresholds().begin(), cb.thresholds().end());
    std::vector<float> x = probe_values(cb, 40000, k);
    const auto expect = count_below_all(t, x);
    on_every_target([&](const std::string&) {
      std::vector<std::uint16_t> out(x.size());
      sqb::encode(cb, x, std::span<std::uint16_t>(out));
      CHECK(mismatches(std::vector<std::size_t>(out.begin(), out.end()), expect) == 0);
    });
  }
}

TEST_CASE("the cost model picks the tiers the header documents", "[encode]") {
  // Not a speed test: the plans the documentation promises, on the CPU's best target.
  const std::size_t n = std::size_t{1} << 20;
  for (const std::size_t k : {2, 4, 16, 17}) {
    const Codebook cb = Codebook::nearest(shaped_levels("uniform", k, 0));
    CHECK(sqb::detail::encode_plan(cb.thresholds(), n).tier != EncodeTier::search);  // no gathers
  }
  for (const std::string shape : {"uniform", "cosine"}) {
    const Codebook cb = Codebook::nearest(shaped_levels(shape, 256, 0));
    const auto p = sqb::detail::encode_plan(cb.thresholds(), n);
    INFO(shape << " K=256 on " << sqb::detail::active_target());
    if (sqb::detail::tree_fits(255)) {
      CHECK(p.tier == EncodeTier::tree);
    } else {
      CHECK(p.tier == EncodeTier::search);
      CHECK(p.buckets > 1);
      CHECK(p.steps <= 2);
    }
  }
  // Too few values to pay for a grid's table: the plain binary search.
  const Codebook big = Codebook::nearest(shaped_levels("uniform", 4096, 0));
  const auto few = sqb::detail::encode_plan(big.thresholds(), 10);
  CHECK(few.tier == EncodeTier::search);
  CHECK(few.buckets == 1);
  CHECK(few.steps == 12);
  const auto many = sqb::detail::encode_plan(big.thresholds(), n);
  CHECK(many.tier == EncodeTier::search);
  CHECK(many.buckets > 1);
  CHECK(many.steps == 1);
}

namespace {

// The test's own conversions: binary16 by its definition (in double), bfloat16 as the top half of a float.
float f16(std::uint16_t b) {
  const int e = (b >> 10) & 0x1f, m = b & 0x3ff;
  const double mag = e == 0    ? std::ldexp(m, -24)
                     : e == 31 ? (m ? NAN : INFINITY)
                               : std::ldexp(1024 + m, e - 25);
  return static_cast<float>((b & 0x8000) ? -mag : mag);
}
float bf16(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

}  // namespace

TEST_CASE("half conversions on every SIMD target equal the definitions for all 65,536 patterns", "[encode]") {
  std::vector<std::uint16_t> all(65536 + 5);
  for (std::size_t b = 0; b < all.size(); ++b)
    all[b] = static_cast<std::uint16_t>(b < 65536 ? b : b * 977);  // a few more at the end, for odd tails
  on_every_target([&](const std::string&) {
    for (const bool is16 : {true, false}) {
      for (const std::size_t offset : {std::size_t{0}, std::size_t{3}}) {
        const auto in = std::span<const std::uint16_t>(all).subspan(offset);
        std::vector<float> out(in.size());
        if (is16) {
          sqb::detail::float16_to_float(in, out);
        } else {
          sqb::detail::bfloat16_to_float(in, out);
        }
        std::size_t bad = 0;
        for (std::size_t i = 0; i < in.size(); ++i) {
          const float want = is16 ? f16(in[i]) : bf16(in[i]);
          const float scalar =
              is16 ? sqb::detail::float16_to_float(in[i]) : sqb::detail::bfloat16_to_float(in[i]);
          if (std::isnan(want)) {
            bad += !std::isnan(out[i]) + !std::isnan(scalar);
          } else {
            bad += std::bit_cast<std::uint32_t>(out[i]) != std::bit_cast<std::uint32_t>(want);
            bad += std::bit_cast<std::uint32_t>(scalar) != std::bit_cast<std::uint32_t>(want);
          }
        }
        INFO((is16 ? "float16" : "bfloat16") << " offset " << offset);
        CHECK(bad == 0);
      }
    }
  });
}

TEST_CASE("encode_half equals encode of the converted values for all 65,536 patterns", "[encode]") {
  for (const sqb::HalfFormat format : {sqb::HalfFormat::float16, sqb::HalfFormat::bfloat16}) {
    const bool is16 = format == sqb::HalfFormat::float16;
    std::vector<std::uint16_t> bits;
    std::vector<float> values;
    std::size_t conversion_mismatches = 0;
    for (std::uint32_t b = 0; b < 65536; ++b) {
      const float v = is16 ? f16(static_cast<std::uint16_t>(b)) : bf16(static_cast<std::uint16_t>(b));
      const float lib = is16 ? sqb::detail::float16_to_float(static_cast<std::uint16_t>(b))
                             : sqb::detail::bfloat16_to_float(static_cast<std::uint16_t>(b));
      if (std::isnan(v)) {
        conversion_mismatches += !std::isnan(lib);
        continue;
      }
      conversion_mismatches += std::bit_cast<std::uint32_t>(v) != std::bit_cast<std::uint32_t>(lib);
      bits.push_back(static_cast<std::uint16_t>(b));
      values.push_back(v);
    }
    CHECK(conversion_mismatches == 0);
    const double scale = is16 ? 1.0 : 1e3;  // bfloat16 covers float32's range: spread the levels wider too
    for (const std::size_t k : {2, 16, 17, 256, 4096, 65536}) {
      std::vector<float> levels = shaped_levels(k > 256 ? "random" : "cosine", k, k);
      for (auto& l : levels)
        l = static_cast<float>(l * scale);
      const Codebook cb = Codebook::nearest(levels);
      const std::vector<float> t(cb.thresholds().begin(), cb.thresholds().end());
      const auto expect = count_below_all(t, values);
      INFO((is16 ? "float16" : "bfloat16") << " K=" << k);
      for (const auto path : {sqb::detail::HalfPath::table, sqb::detail::HalfPath::direct}) {
        INFO((path == sqb::detail::HalfPath::table ? "table" : "direct"));
        std::vector<std::uint16_t> out(bits.size());
        sqb::detail::encode_half_bits(t, bits, !is16, path, std::span<std::uint16_t>(out));
        CHECK(mismatches(std::vector<std::size_t>(out.begin(), out.end()), expect) == 0);
        if (k <= 256) {
          std::vector<std::uint8_t> narrow(bits.size());
          sqb::detail::encode_half_bits(t, bits, !is16, path, std::span<std::uint8_t>(narrow));
          CHECK(std::equal(narrow.begin(), narrow.end(), out.begin()));
        }
      }
      // The public call (either path) equals encode() of the converted values.
      std::vector<std::uint16_t> out(bits.size()), direct(bits.size());
      sqb::encode_half(cb, bits, format, std::span<std::uint16_t>(out));
      sqb::encode(cb, values, std::span<std::uint16_t>(direct));
      CHECK(out == direct);
    }
  }
  // The documented choice.
  CHECK_FALSE(sqb::half_table_pays(2, std::size_t{1} << 30));
  CHECK_FALSE(sqb::half_table_pays(64, std::size_t{1} << 30));
  CHECK_FALSE(sqb::half_table_pays(65, (std::size_t{1} << 18) - 1));
  CHECK(sqb::half_table_pays(65, std::size_t{1} << 18));
  CHECK(sqb::half_table_pays(256, std::size_t{1} << 18));
  CHECK_FALSE(sqb::half_table_pays(257, (std::size_t{1} << 17) - 1));
  CHECK(sqb::half_table_pays(257, std::size_t{1} << 17));
  CHECK(sqb::half_table_pays(65536, std::size_t{1} << 17));
  // NaN patterns get 0, like encode().
  const Codebook cb = Codebook::nearest(std::vector<float>{-1.0f, 0.0f, 1.0f});
  const std::vector<std::uint16_t> nans = {0x7e00, 0xfe00, 0x7c01, 0x7fc0};
  std::vector<std::uint8_t> out(nans.size(), 9);
  sqb::encode_half(cb, std::span<const std::uint16_t>(nans).first(3), sqb::HalfFormat::float16,
                   std::span<std::uint8_t>(out).first(3));
  sqb::encode_half(cb, std::span<const std::uint16_t>(nans).last(1), sqb::HalfFormat::bfloat16,
                   std::span<std::uint8_t>(out).last(1));
  CHECK(out == std::vector<std::uint8_t>{0, 0, 0, 0});
  std::vector<std::uint8_t> short_out(1);
  CHECK_THROWS_AS(sqb::encode_half(cb, nans, sqb::HalfFormat::float16, std::span<std::uint8_t>(short_out)),
                  sqb::Error);
}

TEST_CASE("encode_half on every SIMD target: the table and the direct path", "[encode]") {
  const Codebook cb = Codebook::nearest(shaped_levels("geometric", 256, 2));
  const std::vector<float> t(cb.thresholds().begin(), cb.thresholds().end());
  std::vector<std::uint16_t> bits(70001);
  std::mt19937 rng(5);
  for (auto& b : bits) {
    do {
      b = static_cast<std::uint16_t>(rng());
    } while ((b & 0x7c00) == 0x7c00 && (b & 0x3ff) != 0);  // no NaN
  }
  std::vector<float> values(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i)
    values[i] = f16(bits[i]);
  const auto expect = count_below_all(t, values);
  on_every_target([&](const std::string&) {
    for (const auto path : {sqb::detail::HalfPath::table, sqb::detail::HalfPath::direct}) {
      for (const std::size_t offset : {std::size_t{0}, std::size_t{1}}) {
        const auto in = std::span<const std::uint16_t>(bits).subspan(offset);
        std::vector<std::uint8_t> out(in.size());
        sqb::detail::encode_half_bits(t, in, false, path, std::span<std::uint8_t>(out));
        INFO((path == sqb::detail::HalfPath::table ? "table" : "direct") << " offset " << offset);
        CHECK(mismatches(std::vector<std::size_t>(out.begin(), out.end()),
                         std::vector<std::size_t>(expect.begin() + offset, expect.end())) == 0);
      }
    }
  });
}

TEST_CASE("decode on every SIMD target: levels[code], and the first bad code's position", "[encode]") {
  const std::size_t k = GENERATE(1, 2, 4, 5, 8, 9, 16, 17, 32, 33, 256, 257, 4096, 65536);
  const Codebook cb = Codebook::nearest(shaped_levels("random", k, k));
  const auto levels = cb.levels();
  std::mt19937_64 rng(k);
  std::vector<std::uint16_t> codes(3000);
  for (auto& c : codes)
    c = static_cast<std::uint16_t>(rng() % k);
  codes[0] = 0;
  codes[1] = static_cast<std::uint16_t>(k - 1);
  INFO("K=" << k);
  on_every_target([&](const std::string&) {
    for (std::size_t offset = 0; offset < 3; ++offset) {
      for (const std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{17},
                                    std::size_t{63}, std::size_t{2997}}) {
        const auto in = std::span<const std::uint16_t>(codes).subspan(offset, len);
        std::vector<float> out(len + 2, -7.0f);
        sqb::decode(cb, in, std::span<float>(out).subspan(1, len));
        std::size_t bad = (out.front() != -7.0f) + (out.back() != -7.0f);
        for (std::size_t i = 0; i < len; ++i)
          bad += std::bit_cast<std::uint32_t>(out[1 + i]) != std::bit_cast<std::uint32_t>(levels[in[i]]);
        CHECK(bad == 0);
        if (k <= 256) {
          std::vector<std::uint8_t> narrow(in.begin(), in.end());
          std::vector<float> out8(len);
          sqb::decode(cb, std::span<const std::uint8_t>(narrow), out8);
          CHECK(std::equal(out8.begin(), out8.end(), out.begin() + 1));
        }
      }
    }
    if (k < 65536) {
      for (const std::size_t pos : {std::size_t{0}, std::size_t{5}, std::size_t{16}, std::size_t{2999}}) {
        std::vector<std::uint16_t> broken = codes;
        broken[pos] = static_cast<std::uint16_t>(k);
        broken[2999 - (pos == 2999 ? 1 : 0)] = static_cast<std::uint16_t>(k + (pos == 2999 ? 1 : 0));
        std::vector<float> out(broken.size());
        INFO("bad code at " << pos);
        CHECK_THROWS_WITH(sqb::decode(cb, std::span<const std::uint16_t>(broken), out),
                          Catch::Contains("at index " + std::to_string(pos == 2999 ? 2998 : pos) + " "));
      }
    }
  });
}

TEST_CASE("stream_floor writes each float's top byte on every SIMD target", "[encode]") {
  std::vector<float> x = special_values();
  std::mt19937 rng(1);
  for (int i = 0; i < 1000; ++i)
    x.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(rng())));
  on_every_target([&](const std::string&) {
    std::vector<std::uint8_t> out(x.size());
    sqb::detail::stream_floor(x, out);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
      bad += out[i] != (std::bit_cast<std::uint32_t>(x[i]) >> 24);
    CHECK(bad == 0);
  });
}
