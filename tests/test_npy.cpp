// The .npy reader and writer: exact float16 conversion (exhaustive), round trips over every dtype x order x
// byte order x version x rank, hand-made files in every legal spelling, and every malformed file giving an
// Error that names the file and the reason.

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "npy_helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/layout.hpp"
#include "sqb/npy.hpp"

namespace fs = std::filesystem;
using sqb::npy::DType;
using sqbtest::bytes_of;
using sqbtest::le_doubles;
using sqbtest::le_floats;
using sqbtest::raw_npy;
using sqbtest::slurp;
using TempDir = sqbtest::ScratchDir;

namespace {

const DType kAllDTypes[] = {DType::float16, DType::float32, DType::float64, DType::int8,
                            DType::uint8,   DType::int16,   DType::uint16,  DType::int32};

// Slow, obviously correct binary16 value: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024.
double half_reference(std::uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  const double sign = s ? -1.0 : 1.0;
  if (e == 31) return m ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(m / 1024.0, -14);
  return sign * std::ldexp(1.0 + m / 1024.0, e - 15);
}

// Slow reference for float -> half: the nearest of all finite halves (ties to the even bit pattern), Inf
// from 65520 on.
std::uint16_t half_nearest_reference(float f, const std::vector<std::uint16_t>& positive) {
  const double a = std::fabs(static_cast<double>(f));
  const std::uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  if (a >= 65520.0) return sign | 0x7C00;
  // positive: 0x0000 .. 0x7BFF, increasing in value.
  const auto it = std::lower_bound(positive.begin(), positive.end(), a,
                                   [](std::uint16_t h, double x) { return half_reference(h) < x; });
  if (it == positive.end()) return sign | positive.back();  // (65504, 65520): down to 65504
  std::uint16_t best = *it;
  if (it != positive.begin()) {
    const std::uint16_t lo = *(it - 1);
    const double dlo = a - half_reference(lo), dhi = half_reference(*it) - a;
    if (dlo < dhi || (dlo == dhi && (lo & 1) == 0)) best = lo;
  }
  return sign | best;
}

bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) ||
         std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

// Values a dtype holds exactly, including its edge values, for a flat array of n.
std::vector<float> float_values(DType t, std::size_t n) {
  std::vector<float> special;
  if (t == DType::float16) {
    special = {0.0f,
               -0.0f,
               65504.0f,
               -65504.0f,
               std::ldexp(1.0f, -24),
               -std::ldexp(1.0f, -24),
               std::ldexp(1.0f, -14),
               std::ldexp(1023.0f, -24),
               INFINITY,
               -INFINITY,
               NAN,
               1.0f / 3.0f};
    special.back() = sqb::npy::half_to_float(sqb::npy::float_to_half(1.0f / 3.0f));
  } else {
    special = {0.0f,
               -0.0f,
               FLT_MAX,
               -FLT_MAX,
               FLT_MIN,
               std::numeric_limits<float>::denorm_min(),
               -std::numeric_limits<float>::denorm_min(),
               INFINITY,
               -INFINITY,
               NAN,
               1.0f / 3.0f,
               1e-40f};
  }
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = i < special.size() ? special[i] : static_cast<float>(static_cast<double>(i) * 0.375 - 7.0);
  return v;
}

std::vector<std::int32_t> int_values(DType t, std::size_t n) {
  std::int32_t lo = 0, hi = 0;
  switch (t) {
    case DType::int8:
      lo = -128, hi = 127;
      break;
    case DType::uint8:
      lo = 0, hi = 255;
      break;
    case DType::int16:
      lo = -32768, hi = 32767;
      break;
    case DType::uint16:
      lo = 0, hi = 65535;
      break;
    default:
      lo = std::numeric_limits<std::int32_t>::min(), hi = std::numeric_limits<std::int32_t>::max();
  }
  std::vector<std::int32_t> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = i == 0 ? lo : i == 1 ? hi : lo + static_cast<std::int32_t>((i * 37) % 100);
  return v;
}

}  // namespace

TEST_CASE("float16 to float32 is exact for all 65536 bit patterns", "[npy]") {
  for (std::uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float got = sqb::npy::half_to_float(static_cast<std::uint16_t>(h));
    const double want = half_reference(static_cast<std::uint16_t>(h));
    if (std::isnan(want)) {
      REQUIRE(std::isnan(got));
      // Payload and sign survive: the float's top mantissa bits are the half's.
      REQUIRE((std::bit_cast<std::uint32_t>(got) >> 13) == ((h & 0x8000u) << 3 | 0x3FC00u | (h & 0x3FFu)));
    } else {
      REQUIRE(static_cast<double>(got) == want);
      REQUIRE(std::signbit(got) == std::signbit(want));
    }
  }
}

TEST_CASE("float32 to float16 rounds to nearest even, against a slow reference", "[npy]") {
  std::vector<std::uint16_t> positive;
  for (std::uint16_t h = 0; h < 0x7C00; ++h)
    positive.push_back(h);
  // Every half round-trips, and NaN stays NaN.
  for (std::uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float f = sqb::npy::half_to_float(static_cast<std::uint16_t>(h));
    const std::uint16_t back = sqb::npy::float_to_half(f);
    if (std::isnan(f)) {
      REQUIRE(std::isnan(sqb::npy::half_to_float(back)));
    } else {
      REQUIRE(back == h);
    }
  }
  // Midpoints between neighbours (exact in float32) and the floats just beside them: the tie cases.
  for (std::size_t i = 0; i + 1 < positive.size(); ++i) {
    const float mid =
        static_cast<float>(0.5 * (half_reference(positive[i]) + half_reference(positive[i + 1])));
    for (const float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY), -mid}) {
      REQUIRE(sqb::npy::float_to_half(f) == half_nearest_reference(f, positive));
    }
  }
  // A million random float32 bit patterns across the whole range (non-NaN).
  std::mt19937_64 gen(42);
  for (int i = 0; i < 1'000'000; ++i) {
    const auto bits = static_cast<std::uint32_t>(gen());
    float f = std::bit_cast<float>(bits);
    if (!std::isfinite(f)) continue;
    // Concentrate half the draws on half's range (2^-26 .. 2^17), where rounding matters.
    if (i % 2) {
      int e = 0;
      const float m = std::frexp(f, &e);
      f = std::ldexp(m, static_cast<int>(bits % 43) - 25);
    }
    INFO(std::hexfloat << f);
    REQUIRE(sqb::npy::float_to_half(f) == half_nearest_reference(f, positive));
  }
  CHECK(sqb::npy::float_to_half(65519.996f) == 0x7BFF);  // just below the midpoint to 65536: 65504
  CHECK(sqb::npy::float_to_half(65520.0f) == 0x7C00);    // the tie goes to the even pattern, Inf
  CHECK(sqb::npy::float_to_half(std::ldexp(1.0f, -25)) == 0);
  CHECK(sqb::npy::float_to_half(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 1);
  CHECK(sqb::npy::float_to_half(-0.0f) == 0x8000);
}

TEST_CASE("npy round trip for every dtype, order, byte order, version and rank", "[npy]") {
  const DType t = GENERATE(from_range(std::begin(kAllDTypes), std::end(kAllDTypes)));
  const bool big = GENERATE(false, true);
  const bool fortran = GENERATE(false, true);
  const int version = GENERATE(1, 2, 3);
  const std::vector<std::size_t> shape =
      GENERATE(std::vector<std::size_t>{}, std::vector<std::size_t>{1}, std::vector<std::size_t>{13},
               std::vector<std::size_t>{3, 5}, std::vector<std::size_t>{2, 3, 4},
               std::vector<std::size_t>{4, 2, 3, 3});
  std::size_t n = 1;
  for (const auto d : shape)
    n *= d;
  INFO(sqb::npy::dtype_name(t) << (big ? " big" : " little") << (fortran ? " F" : " C") << " v" << version
                               << " shape " << sqb::npy::shape_text(shape));
  const sqb::npy::Format f{t, big, fortran, version};
  const std::string bytes = sqb::npy::is_floating(t) ? sqb::npy::serialize(shape, float_values(t, n), f)
                                                     : sqb::npy::serialize(shape, int_values(t, n), f);
  // The layout NumPy writes: version byte, data aligned to 64 bytes, header ending in a newline.
  REQUIRE(bytes.substr(0, 6) == "\x93NUMPY");
  CHECK(bytes[6] == version);
  const std::size_t pre = version == 1 ? 10 : 12;
  const std::size_t hlen = static_cast<unsigned char>(bytes[8]) + 256u * static_cast<unsigned char>(bytes[9]);
  CHECK((pre + hlen) % 64 == 0);
  CHECK(bytes[pre + hlen - 1] == '\n');
  CHECK(bytes.size() == pre + hlen + n * sqb::npy::dtype_bytes(t));

  const sqb::npy::Array a = sqb::npy::parse(bytes_of(bytes), "mem.npy");
  CHECK(a.shape == shape);
  CHECK(a.format.dtype == t);
  CHECK(a.format.version == version);
  CHECK(a.format.fortran_order == fortran);
  CHECK(a.format.big_endian == (big && sqb::npy::dtype_bytes(t) > 1));
  CHECK(a.size() == n);
  if (sqb::npy::is_floating(t)) {
    const auto want = float_values(t, n);
    REQUIRE(a.values.size() == n);
    CHECK(a.ints.empty());
    for (std::size_t i = 0; i < n; ++i) {
      INFO("index " << i);
      REQUIRE(same_float(a.values[i], want[i]));
    }
  } else {
    CHECK(a.values.empty());
    CHECK(a.ints == int_values(t, n));
  }
}

TEST_CASE("npy writer: Fortran order and big endian change the bytes as specified", "[npy]") {
  const std::vector<std::size_t> shape = {2, 3};
  const std::vector<float> v = {0, 1, 2, 3, 4, 5};  // C order: row 0 = 0 1 2, row 1 = 3 4 5
  const std::string c = sqb::npy::serialize(shape, v, {DType::float32, false, false, 1});
  const std::string f = sqb::npy::serialize(shape, v, {DType::float32, false, true, 1});
  const std::string b = sqb::npy::serialize(shape, v, {DType::float32, true, false, 1});
  CHECK(c.find("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") == 10);
  CHECK(f.find("'fortran_order': True") != std::string::npos);
  CHECK(b.find("'descr': '>f4'") != std::string::npos);
  const std::size_t data = c.find('\n') + 1;
  CHECK(data % 64 == 0);
  CHECK(c.substr(data) == le_floats({0, 1, 2, 3, 4, 5}));
  CHECK(f.substr(data) == le_floats({0, 3, 1, 4, 2, 5}));  // column-major: first axis fastest
  std::string swapped = c.substr(data);
  for (std::size_t i = 0; i < swapped.size(); i += 4)
    std::reverse(swapped.begin() + static_cast<long>(i), swapped.begin() + static_cast<long>(i) + 4);
  CHECK(b.substr(data) == swapped);
  // 1-byte dtypes have no byte order: '|'.
  const std::vector<std::int32_t> codes = {1, 2, 3, 4, 5, 6};
  CHECK(sqb::npy::serialize(shape, codes, {DType::uint8, true, false, 1}).find("'descr': '|u1'") !=
        std::string::npos);
  // Version 0 picks 1.0 unless the header needs more than 65535 bytes.
  CHECK(sqb::npy::serialize(shape, v, {})[6] == 1);
}

TEST_CASE("npy reader accepts every legal spelling of a header", "[npy]") {
  const std::string data = le_floats({1.5f, -2.0f});
  const std::string header =
      GENERATE(std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"),
               std::string("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,)}"),
               std::string("{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}"),
               std::string("{'descr':'<f4','fortran_order':False,'shape':(2L,)}      \n"),
               std::string("  {\n 'descr' : '<f4' ,\n 'fortran_order' : False ,\n 'shape' : ( 2 , ) ,\n }\n"),
               std::string("{'descr': 'f4', 'fortran_order': False, 'shape': (2,), }"),
               std::string("{'descr': '=f4', 'fortran_order': False, 'shape': (2,), }"),
               std::string("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }"),
               std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 1), }"));
  for (const int major : {1, 2, 3}) {
    INFO(header << " v" << major);
    const sqb::npy::Array a = sqb::npy::parse(bytes_of(raw_npy(header, data, major)), "h.npy");
    REQUIRE(a.values.size() == 2);
    CHECK(a.values[0] == 1.5f);
    CHECK(a.values[1] == -2.0f);
  }
  // Big-endian float64, Fortran-ordered 2 x 2: the file holds column-major [[1, 2], [3, 4]] -> 1 3 2 4.
  std::string be;
  for (const double d : {1.0, 3.0, 2.0, 4.0}) {
    auto u = std::bit_cast<std::uint64_t>(d);
    for (int b = 7; b >= 0; --b)
      be += static_cast<char>((u >> (8 * b)) & 0xFF);
  }
  const auto a = sqb::npy::parse(
      bytes_of(raw_npy("{'descr': '>f8', 'fortran_order': True, 'shape': (2, 2), }", be)), "be.npy");
  CHECK(a.values == std::vector<float>{1, 2, 3, 4});
  // A 0-D scalar, and float64 values that round to float32.
  const auto s = sqb::npy::parse(
      bytes_of(raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", le_doubles({0.1}))),
      "s.npy");
  CHECK(s.shape.empty());
  CHECK(s.values == std::vector<float>{0.1f});
}

TEST_CASE("float64 beyond float32's range is an error naming the index, never a silent Inf", "[npy]") {
  const double over = static_cast<double>(FLT_MAX) * (1 + std::ldexp(1.0, -24));  // rounds to Inf in float32
  const std::string h = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
  CHECK_THROWS_WITH(sqb::npy::parse(bytes_of(raw_npy(h, le_doubles({0, 1, over, 3}))), "w.npy"),
                    Catch::Contains("w.npy") && Catch::Contains("at index (1, 0) (flat 2)") &&
                        Catch::Contains("outside float32's range"));
  // Fortran order: the index is still the C (logical) index.
  const std::string hf = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }";
  CHECK_THROWS_WITH(sqb::npy::parse(bytes_of(raw_npy(hf, le_doubles({0, -1e300, 2, 3}))), "w.npy"),
                    Catch::Contains("at index (1, 0) (flat 2)"));
  // FLT_MAX itself and values that round down to it are fine; +-Inf and NaN pass through as such.
  const double below = static_cast<double>(FLT_MAX) * (1 + std::ldexp(1.0, -25));
  const auto ok =
      sqb::npy::parse(bytes_of(raw_npy(h, le_doubles({FLT_MAX, below, -INFINITY, NAN}))), "ok.npy");
  CHECK(ok.values[0] == FLT_MAX);
  CHECK(ok.values[1] == FLT_MAX);
  CHECK(ok.values[2] == -INFINITY);
  CHECK(std::isnan(ok.values[3]));
}

TEST_CASE("malformed .npy files give an Error naming the file and the reason", "[npy]") {
  struct Case {
    std::string bytes;
    std::string expect;
  };
  const std::string f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const std::string two = le_floats({1, 2});
  const auto with_descr = [&](const std::string& d) {
    return raw_npy("{'descr': " + d + ", 'fortran_order': False, 'shape': (2,), }", two);
  };
  const auto with_shape = [&](const std::string& s, const std::string& data = "") {
    return raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': " + s + ", }", data);
  };
  std::string v2_huge = raw_npy(f4 + std::string(2 << 20, ' '), two, 2);
  const Case c = GENERATE_COPY(
      Case{"", "empty file (0 bytes), not a .npy file"}, Case{"hello world, not numpy", "not a .npy file"},
      Case{"PK\x03\x04 zip", "perhaps an .npz"}, Case{"\x93NUM", "truncated .npy file"},
      Case{"\x93NUMPY", "no version bytes"}, Case{"\x93NUMPY\x01", "no version bytes"},
      Case{std::string("\x93NUMPY\x04\x00\x10\x00", 10), "unsupported .npy format version 4.0"},
      Case{std::string("\x93NUMPY\x01\x01\x10\x00", 10), "unsupported .npy format version 1.1"},
      Case{std::string("\x93NUMPY\x01\x00\x10", 9), "no header length"},
      Case{std::string("\x93NUMPY\x02\x00\x10\x00\x00", 11), "no header length"},
      Case{std::string("\x93NUMPY\x01\x00\x40\x00{'descr'", 17),
           "truncated .npy header: the header length says 64"},
      Case{raw_npy("[1, 2]", two), "the header is a list, not a dict"},
      Case{raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ", two), "expected a value"},
      Case{raw_npy("{'descr': '<f4' 'fortran_order': False}", two), "expected '}' or ','"},
      Case{raw_npy("{'descr: '<f4'}", two), "expected ':'"},
      Case{raw_npy("{'descr': '<f4\n', 'fortran_order': False, 'shape': (2,)}", two), "unterminated string"},
      Case{raw_npy("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,)}", two), "escape sequences"},
      Case{raw_npy("{'descr': '<f4', 'fortran_order': false, 'shape': (2,)}", two),
           "unexpected name 'false'"},
      Case{raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} trailing", two),
           "after the closing"},
      Case{raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,)}", two), "plain integer"},
      Case{raw_npy("{'descr': 'caf\xe9', 'fortran_order': False, 'shape': (2,)}", two),
           "byte 0xE9 in a string"},
      Case{raw_npy("{'descr': '<f4', \x01 'shape': (2,)}", two), "unexpected byte 0x01"},
      Case{raw_npy(std::string(100, '(') + std::string(100, ')'), two), "nested deeper than 32"},
      Case{raw_npy("{'descr': '<f4', 'shape': (2,), }", two), "no 'fortran_order' key"},
      Case{raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", two),
           "unexpected key 'extra'"},
      Case{raw_npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", two),
           "gives the key 'descr' twice"},
      Case{raw_npy("{1: '<f4', 'fortran_order': False, 'shape': (2,)}", two), "a key is an integer"},
      Case{with_descr("'<i8'"), "unsupported dtype '<i8' (int64)"},
      Case{with_descr("'<u4'"), "unsupported dtype '<u4' (uint32)"},
      Case{with_descr("'<c8'"), "unsupported dtype '<c8' (complex)"},
      Case{with_descr("'|b1'"), "unsupported dtype '|b1' (bool)"},
      Case{with_descr("'<U5'"), "unsupported dtype '<U5' (strings)"},
      Case{with_descr("'<M8[ns]'"), "(datetime64)"},
      Case{with_descr("'<f3'"), "unsupported dtype '<f3'; sqbench reads float16"},
      Case{with_descr("'|O'"), "object array (dtype '|O')"},
      Case{with_descr("[('x', '<f4'), ('y', '<f4')]"), "structured dtype"},
      Case{with_descr("None"), "'descr' is None, not a dtype string"},
      Case{raw_npy("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", two),
           "'fortran_order' is an integer"},
      Case{with_shape("[2]", two), "'shape' is a list, not a tuple"},
      Case{with_shape("(2)", two), "'shape' is an integer, not a tuple"},
      Case{with_shape("('2',)", two), "a dimension in 'shape' is a string"},
      Case{with_shape("(-2,)", two), "negative dimension -2"},
      Case{with_shape("(99999999999999999999999,)"),
           "dimension 99999999999999999999999 in 'shape' is too large"},
      Case{with_shape("(4294967296, 4294967296)"), "more elements than size_t can count"},
      Case{with_shape("(4611686018427387904,)"), "needs more bytes than size_t can count"},
      Case{with_shape("(0, 3)"), "empty array (shape (0, 3))"},
      Case{with_shape("(0,)"), "empty array (shape (0,))"},
      Case{with_shape("(3,)", two),
           "truncated .npy file: shape (3,) of float32 needs 12 bytes of data but only 8"},
      Case{with_shape("(1,)", two), "4 unexpected bytes after the data"},
      Case{v2_huge, "larger than any numeric array's"});
  INFO(c.bytes.substr(0, 120));
  CHECK_THROWS_WITH(sqb::npy::parse(bytes_of(c.bytes), "bad.npy"),
                    Catch::StartsWith("bad.npy: ") && Catch::Contains(c.expect));
}

TEST_CASE("npy: more than 64 dimensions is an error", "[npy]") {
  std::string shape = "(";
  for (int i = 0; i < 65; ++i)
    shape += "1, ";
  shape += ")";
  CHECK_THROWS_WITH(
      sqb::npy::parse(bytes_of(raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + "}",
                                       le_floats({1}))),
                      "d.npy"),
      Catch::Contains("65 dimensions; at most 64"));
}

TEST_CASE("npy read: missing files, folders and FIFOs are errors, never a hang", "[npy]") {
  TempDir dir;
  CHECK_THROWS_WITH(sqb::npy::read(dir.path / "nope.npy"),
                    Catch::Contains("nope.npy: cannot open the .npy file (No such file or directory)"));
  CHECK_THROWS_WITH(sqb::npy::read(dir.path), Catch::Contains("is a directory, not a .npy file"));
  const fs::path fifo = dir.path / "fifo.npy";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  CHECK_THROWS_WITH(sqb::npy::read(fifo), Catch::Contains("fifo.npy: is not a regular file"));
  CHECK_THROWS_WITH(sqb::npy::read("/dev/zero"), Catch::Contains("/dev/zero: is not a regular file"));
  // And a real file round-trips through write() and read().
  const std::vector<std::size_t> shape = {2, 2};
  sqb::npy::write(dir.path / "ok.npy", shape, std::vector<float>{1, 2, 3, 4});
  CHECK(sqb::npy::read(dir.path / "ok.npy").values == std::vector<float>{1, 2, 3, 4});
}

TEST_CASE("npy writer rejects what it cannot store, naming the index", "[npy]") {
  const std::vector<std::size_t> shape = {2, 2};
  const std::vector<float> big = {1, 2, 65520.0f, 3};
  CHECK_THROWS_WITH(sqb::npy::serialize(shape, big, {DType::float16}),
                    Catch::Contains("value 65520 at index (1, 0) (flat 2) is outside float16's range"));
  const std::vector<float> max_half = {1, 2, 65519.0f, -INFINITY};
  const auto a = sqb::npy::parse(bytes_of(sqb::npy::serialize(shape, max_half, {DType::float16})), "h.npy");
  CHECK(a.values[2] == 65504.0f);
  CHECK(a.values[3] == -INFINITY);
  const std::vector<std::int32_t> codes = {0, 1, -129, 3};
  CHECK_THROWS_WITH(
      sqb::npy::serialize(shape, codes, {DType::int8}),
      Catch::Contains("value -129 at index (1, 0) (flat 2) is outside int8's range [-128, 127]"));
  CHECK_THROWS_WITH(sqb::npy::serialize(shape, std::vector<std::int32_t>{0, 1, 2, 65536}, {DType::uint16}),
                    Catch::Contains("outside uint16's range"));
  CHECK_THROWS_WITH(sqb::npy::serialize(shape, std::vector<float>{1, 2, 3, 4}, {DType::int32}),
                    Catch::Contains("float data cannot be stored as int32"));
  CHECK_THROWS_WITH(sqb::npy::serialize(shape, codes, {DType::float32}),
                    Catch::Contains("integer codes cannot be stored as float32"));
  CHECK_THROWS_WITH(sqb::npy::serialize(shape, std::vector<float>{1, 2, 3}, {}),
                    Catch::Contains("shape (2, 2) has 4 elements, given 3"));
  const std::vector<std::size_t> empty = {0, 2};
  CHECK_THROWS_WITH(sqb::npy::serialize(empty, std::vector<float>{}, {}), Catch::Contains("empty array"));
  CHECK_THROWS_WITH(
      sqb::npy::serialize(shape, std::vector<float>{1, 2, 3, 4}, {DType::float32, false, false, 4}),
      Catch::Contains("format version 4"));
}

TEST_CASE("npy write is atomic: a failed write leaves the previous file byte-identical and no temporary",
          "[npy]") {
  TempDir dir;
  const fs::path p = dir.path / "t.npy";
  const std::vector<std::size_t> shape = {3};
  sqb::npy::write(p, shape, std::vector<float>{1, 2, 3});
  const std::string before = slurp(p);
  // A value error is found before the disk is touched.
  CHECK_THROWS_WITH(sqb::npy::write(p, shape, std::vector<float>{1, 1e6f, 3}, {DType::float16}),
                    Catch::Contains("outside float16's range"));
  CHECK(slurp(p) == before);
  // An unwritable place: a path under a regular file (root may write anywhere else).
  CHECK_THROWS_WITH(sqb::npy::write(p / "x.npy", shape, std::vector<float>{1, 2, 3}),
                    Catch::Contains("creating the temporary file") && Catch::Contains("Not a directory"));
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path))
    ++files;
  CHECK(files == 1);
}

TEST_CASE("npy layouts: rows, oihw and hwio give rows = output channels", "[npy]") {
  // W[o][i][h][w] = 1000 o + 100 i + 10 h + w, shape (4, 3, 2, 2).
  const std::size_t O = 4, I = 3, H = 2, W = 2;
  std::vector<float> oihw, hwio(O * I * H * W);
  for (std::size_t o = 0; o < O; ++o)
    for (std::size_t i = 0; i < I; ++i)
      for (std::size_t h = 0; h < H; ++h)
        for (std::size_t w = 0; w < W; ++w) {
          const float v = static_cast<float>(1000 * o + 100 * i + 10 * h + w);
          oihw.push_back(v);
          hwio[((h * W + w) * I + i) * O + o] = v;  // TensorFlow's [h, w, i, o]
        }
  const std::vector<std::size_t> s_oihw = {O, I, H, W}, s_hwio = {H, W, I, O};
  const sqb::Tensor a = sqb::to_tensor(s_oihw, oihw, sqb::Layout::oihw, "a");
  const sqb::Tensor b = sqb::to_tensor(s_hwio, hwio, sqb::Layout::hwio, "b");
  const sqb::Tensor r = sqb::to_tensor(s_oihw, oihw, sqb::Layout::rows, "r");
  CHECK(a.rows == O);
  CHECK(a.cols == I * H * W);
  CHECK(a.values == oihw);
  CHECK(b.rows == a.rows);
  CHECK(b.cols == a.cols);
  CHECK(b.values == a.values);  // the same weight in TensorFlow's layout gives the same tensor
  CHECK(r.values == a.values);
  // Dense/Linear: [in, out] in TensorFlow is the transpose of [out, in].
  const std::vector<std::size_t> s2 = {3, 2};
  const sqb::Tensor d = sqb::to_tensor(s2, std::vector<float>{0, 1, 2, 3, 4, 5}, sqb::Layout::hwio, "d");
  CHECK(d.rows == 2);
  CHECK(d.values == std::vector<float>{0, 2, 4, 1, 3, 5});
  // 0-D and 1-D are one row with layout=rows, and an error with the weight layouts.
  const std::vector<std::size_t> s0 = {}, s1 = {5};
  CHECK(sqb::to_tensor(s0, std::vector<float>{7}, sqb::Layout::rows, "s").rows == 1);
  const sqb::Tensor v = sqb::to_tensor(s1, std::vector<float>{1, 2, 3, 4, 5}, sqb::Layout::rows, "v");
  CHECK((v.rows == 1 && v.cols == 5));
  CHECK_THROWS_WITH(sqb::to_tensor(s1, std::vector<float>{1, 2, 3, 4, 5}, sqb::Layout::oihw, "bias.npy"),
                    Catch::Contains("bias.npy: layout=oihw needs a weight of rank >= 2") &&
                        Catch::Contains("the shape is (5,)"));
  CHECK_THROWS_WITH(sqb::to_tensor(s0, std::vector<float>{7}, sqb::Layout::hwio, "s.npy"),
                    Catch::Contains("layout=hwio needs a weight of rank >= 2"));
}
