// The safetensors reader (C++-written files; the Python- and torch-written ones are in
// test_safetensors_python.cpp): exact conversion of every readable dtype, listing and lookup, every malformed
// header giving an Error that names the file and the tensor, paths that are not files, memory mapping
// (reading one tensor of a file with a 2 GiB tensor in it), sharded checkpoints, and tensor-name globs
// (against glibc's fnmatch as the reference).

#include <catch2/catch.hpp>

#include <fnmatch.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cfloat>
#include <cmath>
#include <limits>
#include <optional>
#include <random>

#include "npy_helpers.hpp"
#include "safetensors_helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"
#include "sqb/safetensors.hpp"

namespace fs = std::filesystem;
namespace st = sqb::safetensors;
using sqbtest::bytes_of;
using sqbtest::f32_bytes;
using sqbtest::f64_bytes;
using sqbtest::le_bytes;
using sqbtest::st_file;
using sqbtest::st_raw;
using sqbtest::StTensor;
using sqbtest::TempDir;
using namespace std::string_literals;

namespace {

bool same(float a, float b) {
  return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

// Slow, obviously correct bfloat16 value: the bits are the top half of a float32.
float bf16_reference(std::uint16_t h) {
  std::uint32_t u = static_cast<std::uint32_t>(h) * 65536u;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Every bit pattern of a 16-bit type, in order, as the data of a [256, 256] tensor.
std::vector<std::uint16_t> all_halves() {
  std::vector<std::uint16_t> v(65536);
  for (std::uint32_t i = 0; i < 65536; ++i)
    v[i] = static_cast<std::uint16_t>(i);
  return v;
}

}  // namespace

TEST_CASE("safetensors: every readable dtype converts exactly (F16 and BF16 over all 65536 patterns)",
          "[safetensors]") {
  const auto halves = all_halves();
  const std::vector<float> f32 = {0.0f,    -0.0f,  1.5f,     -2.25f,    FLT_MAX, -FLT_MAX,
                                  FLT_MIN, 1e-45f, INFINITY, -INFINITY, NAN,     1.0f / 3.0f};
  const std::vector<double> f64 = {0.1,
                                   -1e300 / 1e300,
                                   3.4028234663852886e38,
                                   1e-50,
                                   -5e-324,
                                   INFINITY,
                                   NAN,
                                   static_cast<double>(FLT_MAX) * (1 + std::ldexp(1.0, -25)),
                                   2.0 / 3.0};
  const std::string bytes = st_file({{"bf16", "BF16", {256, 256}, le_bytes(halves)},
                                     {"f16", "F16", {256, 256}, le_bytes(halves)},
                                     {"f32", "F32", {3, 4}, f32_bytes(f32)},
                                     {"f64", "F64", {9}, f64_bytes(f64)},
                                     {"scalar", "F32", {}, f32_bytes({7.5f})}});
  const st::File f = st::File::parse(bytes_of(bytes), "mem.safetensors");
  const st::Array bf = f.read("bf16");
  const st::Array hf = f.read("f16");
  CHECK(bf.shape == std::vector<std::size_t>{256, 256});
  CHECK(bf.dtype == st::DType::BF16);
  REQUIRE(bf.values.size() == 65536);
  REQUIRE(hf.values.size() == 65536);
  for (std::size_t i = 0; i < 65536; ++i) {
    INFO("pattern " << i);
    REQUIRE(same(bf.values[i], bf16_reference(halves[i])));  // NaN payloads and signs too
    REQUIRE(same(hf.values[i], sqb::npy::half_to_float(halves[i])));
  }
  const st::Array a32 = f.read("f32");
  CHECK(a32.shape == std::vector<std::size_t>{3, 4});
  for (std::size_t i = 0; i < f32.size(); ++i)
    CHECK(same(a32.values[i], f32[i]));
  const st::Array a64 = f.read("f64");
  for (std::size_t i = 0; i < f64.size(); ++i) {
    INFO(i);
    CHECK(same(a64.values[i], static_cast<float>(f64[i])));  // round to nearest, as the C++ cast does
  }
  CHECK(a64.values[7] == FLT_MAX);  // just below the overflow threshold: rounds down to FLT_MAX
  CHECK(same(a64.values[3], 0.0f));
  CHECK(same(a64.values[4], -0.0f));
  const st::Array s = f.read("scalar");
  CHECK(s.shape.empty());
  CHECK(s.size() == 1);
  CHECK(s.values == std::vector<float>{7.5f});
}

TEST_CASE("safetensors: listing, lookup, metadata and raw bytes", "[safetensors]") {
  // Written in a non-sorted order, offsets in that order; listing is sorted by name.
  const std::string bytes = st_file({{"model.layers.1.w", "F32", {2}, f32_bytes({1, 2})},
                                     {"model.layers.0.w", "F32", {1}, f32_bytes({3})},
                                     {"caf\xC3\xA9", "F16", {1}, le_bytes<std::uint16_t>({0x3C00})},
                                     {"ids", "I64", {2}, le_bytes<std::uint64_t>({5, 6})}},
                                    R"({"format": "pt", "note": "a \"quoted\" word"})");
  const st::File f = st::File::parse(bytes_of(bytes), "m.safetensors");
  CHECK(f.name() == "m.safetensors");
  CHECK(f.names() == std::vector<std::string>{"caf\xC3\xA9", "ids", "model.layers.0.w", "model.layers.1.w"});
  REQUIRE(f.tensors().size() == 4);
  const st::TensorInfo& t = f.tensors()[3];
  CHECK(t.name == "model.layers.1.w");
  CHECK(t.begin == 0);
  CHECK(t.end == 8);
  CHECK(f.tensors()[0].dtype == st::DType::F16);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "a \"quoted\" word");
  CHECK(f.data_offset() ==
        8 + sqbtest::st_header({{"model.layers.1.w", "F32", {2}, f32_bytes({1, 2})},
                                {"model.layers.0.w", "F32", {1}, f32_bytes({3})},
                                {"caf\xC3\xA9", "F16", {1}, le_bytes<std::uint16_t>({0x3C00})},
                                {"ids", "I64", {2}, le_bytes<std::uint64_t>({5, 6})}},
                               R"({"format": "pt", "note": "a \"quoted\" word"})")
                .size());
  CHECK(f.data_offset() % 8 == 0);
  CHECK(f.find("nope") == nullptr);
  CHECK(f.find("ids")->shape == std::vector<std::size_t>{2});
  const auto raw = f.raw("ids");
  CHECK(std::string(reinterpret_cast<const char*>(raw.data()), raw.size()) ==
        le_bytes<std::uint64_t>({5, 6}));
  CHECK(f.read("caf\xC3\xA9").values == std::vector<float>{1.0f});
  CHECK(f.read("model.layers.0.w").values == std::vector<float>{3});
  CHECK_THROWS_WITH(
      f.info("model.layers.2.w"),
      Catch::StartsWith("m.safetensors: no tensor \"model.layers.2.w\"; the file has 4 tensors, e.g.") &&
          Catch::Contains("\"model.layers.1.w\""));
  // An int64 buffer is listed and validated, and only reading it as data is an error naming it.
  CHECK_THROWS_WITH(f.read("ids"),
                    Catch::StartsWith("m.safetensors: tensor \"ids\": dtype I64 is not data") &&
                        Catch::Contains("F32, F16, BF16 and F64"));
  // No tensors at all (and no data) is a valid, empty file.
  const std::string empty = st_raw("{}");
  CHECK(st::File::parse(bytes_of(empty), "e").tensors().empty());
  const std::string meta_only = st_raw(R"({"__metadata__": {}})");
  CHECK_THROWS_WITH(st::File::parse(bytes_of(meta_only), "e").info("w"),
                    Catch::Contains("no tensor \"w\"; the file has no tensors"));
}

TEST_CASE("safetensors: every dtype of the format opens with the right byte size", "[safetensors]") {
  struct D {
    std::string name;
    st::DType type;
    std::size_t bits;
  };
  const D d = GENERATE(
      D{"F64", st::DType::F64, 64}, D{"F32", st::DType::F32, 32}, D{"F16", st::DType::F16, 16},
      D{"BF16", st::DType::BF16, 16}, D{"I64", st::DType::I64, 64}, D{"I32", st::DType::I32, 32},
      D{"I16", st::DType::I16, 16}, D{"I8", st::DType::I8, 8}, D{"U64", st::DType::U64, 64},
      D{"U32", st::DType::U32, 32}, D{"U16", st::DType::U16, 16}, D{"U8", st::DType::U8, 8},
      D{"BOOL", st::DType::BOOL, 8}, D{"F8_E4M3", st::DType::F8_E4M3, 8}, D{"F8_E5M2", st::DType::F8_E5M2, 8},
      D{"F8_E8M0", st::DType::F8_E8M0, 8}, D{"F6_E2M3", st::DType::F6_E2M3, 6},
      D{"F6_E3M2", st::DType::F6_E3M2, 6}, D{"F4", st::DType::F4, 4}, D{"C64", st::DType::C64, 64});
  INFO(d.name);
  CHECK(st::dtype_name(d.type) == d.name);
  CHECK(st::dtype_bits(d.type) == d.bits);
  CHECK(st::is_readable(d.type) ==
        (d.name == "F32" || d.name == "F16" || d.name == "BF16" || d.name == "F64"));
  // 8 elements always fill whole bytes.
  const std::string bytes = st_file({{"t", d.name, {2, 4}, std::string(d.bits, 'x')}});
  const st::File f = st::File::parse(bytes_of(bytes), "d.safetensors");
  CHECK(f.info("t").dtype == d.type);
  CHECK(f.info("t").end == d.bits);
  // One element too few bytes is always caught.
  const std::string short_one =
      st_raw(sqbtest::st_header({{"t", d.name, {2, 4}, std::string(d.bits - 1, 'x')}}),
             std::string(d.bits - 1, 'x'));
  CHECK_THROWS_WITH(
      st::File::parse(bytes_of(short_one), "d.safetensors"),
      Catch::Contains("tensor \"t\": data_offsets [0, " + std::to_string(d.bits - 1) + "] hold"));
}

TEST_CASE("safetensors: a tensor with no elements is valid in the header but not as data", "[safetensors]") {
  const std::string bytes = st_file({{"a", "F32", {2}, f32_bytes({1, 2})},
                                     {"empty", "BF16", {0, 4096}, ""},
                                     {"b", "F32", {1}, f32_bytes({3})}});
  const st::File f = st::File::parse(bytes_of(bytes), "z.safetensors");
  CHECK(f.info("empty").size() == 0);
  CHECK(f.info("empty").begin == 8);
  CHECK_THROWS_WITH(
      f.read("empty"),
      Catch::Equals("z.safetensors: tensor \"empty\": shape [0, 4096] has no elements: there is nothing "
                    "to read"));
  CHECK(f.read("b").values == std::vector<float>{3});
}

TEST_CASE("safetensors: read_into on threads gives read()'s values bit for bit, and its errors",
          "[safetensors]") {
  // Tensors of several conversion pieces (2^20 values each) and a partial one, every 16-bit pattern many
  // times in a shuffled order, and random 32- and 64-bit patterns (NaNs and infinities among them).
  const std::size_t n = 3 * (std::size_t{1} << 20) + 77;
  std::mt19937_64 rng(21);
  std::vector<std::uint16_t> halves(n);
  for (std::size_t i = 0; i < n; ++i)
    halves[i] = static_cast<std::uint16_t>((i * 40503u) ^ (rng() & 0x8001u));
  std::vector<float> f32(n);
  for (float& v : f32)
    v = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));
  std::vector<double> f64(n);
  for (double& v : f64)  // within float32's range: random signs, mantissas and exponents
    v = std::ldexp(static_cast<double>(rng() >> 11) / 9007199254740992.0,
                   static_cast<int>(rng() % 250) - 150) *
        ((rng() & 1) ? -1 : 1);
  f64[5] = NAN;
  f64[6] = -INFINITY;
  const std::string bytes = st_file({{"bf16", "BF16", {n}, le_bytes(halves)},
                                     {"f16", "F16", {n}, le_bytes(halves)},
                                     {"f32", "F32", {n}, f32_bytes(f32)},
                                     {"f64", "F64", {n}, f64_bytes(f64)}});
  const st::File f = st::File::parse(bytes_of(bytes), "mem.safetensors");
  for (const char* name : {"bf16", "f16", "f32", "f64"}) {
    const st::Array ref = f.read(name);
    for (const int threads : {1, 2, 3}) {
      INFO(name << ", " << threads << " threads");
      std::vector<float> out(n, 12345.0f);
      f.read_into(name, out, threads);
      bool all_same = true;
      for (std::size_t i = 0; i < n; ++i)
        all_same = all_same && same(out[i], ref.values[i]);
      CHECK(all_same);
    }
  }
  std::vector<float> short_out(n - 1);
  CHECK_THROWS_AS(f.read_into("bf16", short_out, 2), std::logic_error);

  // An F64 value beyond float32's range: the error read() gives, naming the first such index, even when a
  // later piece holds another.
  const double over = static_cast<double>(FLT_MAX) * (1 + std::ldexp(1.0, -24));
  f64[(std::size_t{1} << 20) + 3] = -over;
  f64[2 * (std::size_t{1} << 20) + 9] = over;
  const std::string bad = st_file({{"w", "F64", {n}, f64_bytes(f64)}});
  const st::File g = st::File::parse(bytes_of(bad), "w.safetensors");
  std::string message;
  try {
    (void)g.read("w");
  } catch (const sqb::Error& e) {
    message = e.what();
  }
  CHECK_THAT(message, Catch::Contains("(flat 1048579)"));
  std::vector<float> out(n);
  CHECK_THROWS_WITH(g.read_into("w", out, 2), message);
  CHECK_THROWS_WITH(g.read_into("u", out, 2), Catch::Contains("no tensor \"u\""));
}

TEST_CASE("safetensors: F64 beyond float32's range is an error naming the tensor and index",
          "[safetensors]") {
  const double over = static_cast<double>(FLT_MAX) * (1 + std::ldexp(1.0, -24));  // rounds to Inf in float32
  const std::string bytes = st_file({{"w", "F64", {2, 2}, f64_bytes({0, 1, -over, 3})}});
  CHECK_THROWS_WITH(st::File::parse(bytes_of(bytes), "w.safetensors").read("w"),
                    Catch::StartsWith("w.safetensors: tensor \"w\": F64 value -3.40282366920937") &&
                        Catch::Contains("at index (1, 0) (flat 2) is outside float32's range"));
  const std::string one_d = st_file({{"v", "F64", {3}, f64_bytes({0, 1e300, 3})}});
  CHECK_THROWS_WITH(st::File::parse(bytes_of(one_d), "v.safetensors").read("v"),
                    Catch::Contains("at index (1,) (flat 1)"));
}

TEST_CASE("safetensors: malformed files give an Error naming the file, the tensor and the reason",
          "[safetensors]") {
  struct Case {
    std::string bytes;
    std::string expect;
  };
  const std::string two = f32_bytes({1, 2});
  const auto one = [&](const std::string& entry, const std::string& data) {
    return st_raw("{\"w\": " + entry + "}", data);
  };
  const auto entry = [](const std::string& dtype, const std::string& shape, const std::string& offsets) {
    return "{\"dtype\": " + dtype + ", \"shape\": " + shape + ", \"data_offsets\": " + offsets + "}";
  };
  const auto with_shape = [&](const std::string& shape, const std::string& offsets = "[0, 8]") {
    return one(entry("\"F32\"", shape, offsets), two);
  };
  std::string len_beyond = st_raw("{}");
  len_beyond[0] = 100;
  const std::string npy_file = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4'}"s;
  const Case c = GENERATE_COPY(
      Case{"", "only 0 bytes; a safetensors file starts with an 8-byte header length (the file is empty)"},
      Case{"{}", "only 2 bytes"}, Case{std::string("\x02\0\0\0\0\0\0", 7), "only 7 bytes"},
      Case{len_beyond,
           "the header length 100 (the first 8 bytes) goes beyond the end of the file (10 bytes)"},
      Case{npy_file, "goes beyond the end of the file" /* ... */},
      Case{npy_file, "(it is a NumPy .npy file: use the npy source)"},
      Case{"PK\x03\x04\x14\0\0\0zipzip"s, "perhaps a PyTorch .pt/.bin checkpoint"},
      Case{"\x80\x02}q\0(X\x05\0\0\0"s, "it is a Python pickle"},
      Case{st_raw(""), "invalid JSON header: empty text, expected a JSON value at byte 8"},
      Case{st_raw("{\"w\": {\"dtype\": \"F32\",}}"), "invalid JSON header: expected a member name"},
      Case{st_raw("{\"w\": 1} x"), "after the JSON value at byte 17"},
      Case{st_raw("{\"a\xFF\": 1}"), "invalid UTF-8 (byte 0xFF) in a string at byte 11"},
      Case{st_raw("[1, 2]"), "the header is an array, not a JSON object of tensors"},
      Case{st_raw("\"w\""), "the header is a string"},
      Case{st_raw("{\"w\": " + entry("\"F32\"", "[1]", "[0, 4]") +
                      ", \"w\": " + entry("\"F32\"", "[1]", "[4, 8]") + "}",
                  two),
           "the name \"w\" appears twice in one object"},
      Case{one("[1, 2]", two), "tensor \"w\": the entry is an array, not an object with \"dtype\""},
      Case{one("{\"shape\": [2], \"data_offsets\": [0, 8]}", two), "tensor \"w\": no \"dtype\""},
      Case{one("{\"dtype\": \"F32\", \"data_offsets\": [0, 8]}", two), "tensor \"w\": no \"shape\""},
      Case{one("{\"dtype\": \"F32\", \"shape\": [2]}", two), "tensor \"w\": no \"data_offsets\""},
      Case{one("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8], \"extra\": 1}", two),
           "tensor \"w\": unexpected key \"extra\""},
      Case{one(entry("\"Q4\"", "[2]", "[0, 8]"), two),
           "tensor \"w\": unknown dtype \"Q4\" (the safetensors dtypes are F64, F32, F16, BF16, I64"},
      Case{one(entry("\"f32\"", "[2]", "[0, 8]"), two), "sqbench reads F32, F16, BF16 and F64)"},
      Case{one(entry("32", "[2]", "[0, 8]"), two), "tensor \"w\": dtype is a number, not a string"},
      Case{with_shape("2"), "tensor \"w\": shape is a number, not a list of non-negative integers"},
      Case{with_shape("[2, -1]"), "tensor \"w\": shape: dimension -1 is not a non-negative integer"},
      Case{with_shape("[2.0]"), "dimension 2.0 is not"}, Case{with_shape("[2e0]"), "dimension 2e0 is not"},
      Case{with_shape("[\"2\"]"), "dimension \"2\" is not"},
      Case{with_shape("[null]"), "dimension null is not"},
      Case{with_shape("[18446744073709551616]"),
           "dimension 18446744073709551616 is not a non-negative integer within"},
      Case{with_shape("[4294967296, 4294967296]"),
           "shape [4294967296, 4294967296] has more elements than uint64"},
      Case{with_shape("[4611686018427387904]"),
           "shape [4611686018427387904] of F32 needs more bytes than uint64"},
      Case{one(entry("\"F4\"", "[3]", "[0, 2]"), "xx"),
           "shape [3] of F4 (4 bits each) does not fill whole bytes"},
      Case{one(entry("\"F6_E2M3\"", "[2]", "[0, 2]"), "xx"), "does not fill whole bytes"},
      Case{with_shape("[2]", "[0]"), "tensor \"w\": data_offsets is not a list of two non-negative integers"},
      Case{with_shape("[2]", "[0, 8, 8]"), "data_offsets is not a list of two"},
      Case{with_shape("[2]", "[-1, 8]"), "data_offsets is not a list of two"},
      Case{with_shape("[2]", "{\"begin\": 0}"), "data_offsets is not a list of two"},
      Case{with_shape("[2]", "[8, 0]"), "tensor \"w\": data_offsets [8, 0]: begin is after end"},
      Case{with_shape("[2]", "[0, 12]"),
           "tensor \"w\": data_offsets [0, 12] go beyond the data buffer (8 bytes"},
      Case{with_shape("[2]", "[0, 18446744073709551615]"), "go beyond the data buffer"},
      Case{with_shape("[3]", "[0, 8]"),
           "tensor \"w\": data_offsets [0, 8] hold 8 bytes, but shape [3] of F32 needs 12"},
      Case{with_shape("[1]", "[0, 8]"), "hold 8 bytes, but shape [1] of F32 needs 4"},
      Case{with_shape("[1]", "[0, 4]"),
           "4 bytes after the last tensor's data belong to no tensor (\"w\" ends at 4, the "
           "data buffer has 8 bytes); a safetensors file has no holes"},
      Case{with_shape("[1]", "[4, 8]"), "bytes [0, 4) of the data buffer belong to no tensor (before \"w\")"},
      Case{st_raw("{}", two),
           "8 bytes after the last tensor's data belong to no tensor (there are no tensors"},
      Case{st_raw("{\"a\": " + entry("\"F32\"", "[1]", "[0, 4]") +
                      ", \"b\": " + entry("\"F32\"", "[1]", "[8, 12]") + "}",
                  two + two.substr(0, 4)),
           "bytes [4, 8) of the data buffer belong to no tensor (between \"a\" and \"b\")"},
      Case{st_raw("{\"a\": " + entry("\"F32\"", "[2]", "[0, 8]") +
                      ", \"b\": " + entry("\"F32\"", "[1]", "[4, 8]") + "}",
                  two),
           "tensors \"a\" (data_offsets [0, 8]) and \"b\" (data_offsets [4, 8]) overlap"},
      Case{st_raw("{\"a\": " + entry("\"F32\"", "[2]", "[0, 8]") +
                      ", \"z\": " + entry("\"F32\"", "[0]", "[4, 4]") + "}",
                  two),
           "tensors \"a\" (data_offsets [0, 8]) and \"z\" (data_offsets [4, 4]) overlap"},
      Case{st_raw("{\"__metadata__\": [1], \"w\": " + entry("\"F32\"", "[2]", "[0, 8]") + "}", two),
           "__metadata__ is an array, not an object of strings"},
      Case{
          st_raw("{\"__metadata__\": {\"total\": 8}, \"w\": " + entry("\"F32\"", "[2]", "[0, 8]") + "}", two),
          "__metadata__ \"total\" is a number, not a string"});
  INFO(c.bytes.substr(0, 160));
  CHECK_THROWS_WITH(st::File::parse(bytes_of(c.bytes), "bad.safetensors"),
                    Catch::StartsWith("bad.safetensors: ") && Catch::Contains(c.expect));
}

TEST_CASE("safetensors: paths that are not regular files are errors, never a hang", "[safetensors]") {
  TempDir dir;
  CHECK_THROWS_WITH(
      st::File(dir.path / "nope.safetensors"),
      Catch::Contains("nope.safetensors: cannot open the safetensors file (No such file or directory)"));
  CHECK_THROWS_WITH(st::File(dir.path), Catch::Contains(": is a directory, not a safetensors file"));
  dir.write("model.safetensors", st_file({{"w", "F32", {1}, f32_bytes({1})}}));
  CHECK_THROWS_WITH(st::Checkpoint(dir.path),
                    Catch::Contains("is a directory") && Catch::Contains("(it holds model.safetensors)"));
  const fs::path fifo = dir.path / "fifo.safetensors";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  CHECK_THROWS_WITH(st::File(fifo), Catch::Contains("fifo.safetensors: is not a regular file"));
  CHECK_THROWS_WITH(st::Checkpoint(fifo), Catch::Contains("is not a regular file"));
  const fs::path fifo_index = dir.path / "fifo.index.json";
  REQUIRE(::mkfifo(fifo_index.c_str(), 0644) == 0);
  CHECK_THROWS_WITH(st::Checkpoint(fifo_index), Catch::Contains("fifo.index.json: is not a regular file"));
  CHECK_THROWS_WITH(st::File("/dev/zero"), Catch::Contains("/dev/zero: is not a regular file"));
  // A header over 100 MB (a sparse file, so the test costs no memory or disk).
  const fs::path huge = dir.write("huge.safetensors", le_bytes<std::uint64_t>({100'000'001}));
  fs::resize_file(huge, 8 + 100'000'001);
  CHECK_THROWS_WITH(st::File(huge),
                    Catch::Contains("huge.safetensors: a header of 100000001 bytes is over the "
                                    "safetensors limit of 100000000 bytes (100 MB)"));
  // Short files on disk give the same messages as in memory.
  const fs::path empty = dir.write("empty.safetensors", "");
  CHECK_THROWS_WITH(st::File(empty),
                    Catch::EndsWith("empty.safetensors: only 0 bytes; a safetensors file starts with "
                                    "an 8-byte header length (the file is empty)"));
  const fs::path five = dir.write("five.safetensors", "\x93NUMP");
  CHECK_THROWS_WITH(st::File(five),
                    Catch::Contains("only 5 bytes") && Catch::Contains("not a safetensors file?"));
  // And a real file reads back; copies share the mapping and outlive the original.
  std::optional<st::File> copy;
  {
    const st::File f(dir.path / "model.safetensors");
    copy = f;
  }
  CHECK(copy->read("w").values == std::vector<float>{1});
}

TEST_CASE("safetensors: reading one tensor maps only what it needs (a file with a 2 GiB tensor)",
          "[safetensors]") {
  // A sparse file: "big" is 2^29 F32 values that occupy no disk and are never touched; "small" comes after
  // it.
  TempDir dir;
  const std::uint64_t big_bytes = std::uint64_t{1} << 31;
  const std::string real_header =
      "{\"big\":{\"dtype\":\"F32\",\"shape\":[536870912],\"data_offsets\":[0,2147483648]},"
      "\"small\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2147483648,2147483656]}}";
  const fs::path p = dir.write("sparse.safetensors", st_raw(real_header));
  {
    std::fstream out(p, std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(static_cast<std::streamoff>(8 + real_header.size() + big_bytes));
    out << f32_bytes({4, 5});
  }
  REQUIRE(fs::file_size(p) == 8 + real_header.size() + big_bytes + 8);
  rusage before{}, after{};
  ::getrusage(RUSAGE_SELF, &before);
  const st::File f(p);
  CHECK(f.read("small").values == std::vector<float>{4, 5});
  ::getrusage(RUSAGE_SELF, &after);
  // Peak resident memory grew by far less than the file (ru_maxrss is in KiB).
  CHECK(after.ru_maxrss - before.ru_maxrss < 64 * 1024);
  CHECK(f.info("big").end == big_bytes);
}

TEST_CASE("safetensors: a header naming 20000 tensors", "[safetensors]") {
  std::vector<StTensor> ts;
  for (int i = 19999; i >= 0; --i)
    ts.push_back({"model.layers." + std::to_string(i) + ".weight",
                  "BF16",
                  {2},
                  le_bytes<std::uint16_t>({0x3F80, 0xC000})});
  const std::string bytes = st_file(ts);
  const st::File f = st::File::parse(bytes_of(bytes), "many.safetensors");
  REQUIRE(f.tensors().size() == 20000);
  CHECK(std::is_sorted(f.names().begin(), f.names().end()));
  CHECK(f.read("model.layers.12345.weight").values == std::vector<float>{1.0f, -2.0f});
  CHECK(f.info("model.layers.12345.weight").begin == (19999 - 12345) * 4u);
}

TEST_CASE("safetensors: sharded checkpoints follow the index's weight_map", "[safetensors]") {
  TempDir dir;
  dir.write("model-00001-of-00002.safetensors",
            st_file({{"a.weight", "F32", {2}, f32_bytes({1, 2})},
                     {"b.weight", "BF16", {1}, le_bytes<std::uint16_t>({0x4040})}}));
  fs::create_directory(dir.path / "sub");
  dir.write("sub/model-00002-of-00002.safetensors",
            st_file({{"c.weight", "F16", {1, 1}, le_bytes<std::uint16_t>({0xC000})},
                     {"unlisted", "F32", {1}, f32_bytes({9})}}));
  const std::string index = R"({"metadata": {"total_size": 18}, "weight_map": {
      "c.weight": "sub/model-00002-of-00002.safetensors",
      "a.weight": "model-00001-of-00002.safetensors",
      "b.weight": "model-00001-of-00002.safetensors"}})";
  const fs::path ip = dir.write("model.safetensors.index.json", index);
  const st::Checkpoint c(ip);
  CHECK(c.sharded());
  CHECK(c.name() == ip.string());
  CHECK(c.names() == std::vector<std::string>{"a.weight", "b.weight", "c.weight"});
  CHECK(c.file_of("c.weight") == dir.path / "sub/model-00002-of-00002.safetensors");
  CHECK(c.read("a.weight").values == std::vector<float>{1, 2});
  CHECK(c.read("b.weight").values == std::vector<float>{3});
  const st::Array cw = c.read("c.weight");
  CHECK(cw.shape == std::vector<std::size_t>{1, 1});
  CHECK(cw.values == std::vector<float>{-2});
  CHECK(c.info("b.weight").dtype == st::DType::BF16);
  CHECK(c.match("[ab].*") == std::vector<std::string>{"a.weight", "b.weight"});
  // A tensor only in a shard, not in the weight_map, is not part of the checkpoint.
  CHECK_THROWS_WITH(c.read("unlisted"),
                    Catch::StartsWith(ip.string() + ": no tensor \"unlisted\"; the checkpoint has "
                                                    "3 tensors"));
  // A missing shard matters only for its own tensors; a weight_map entry its shard lacks is named.
  const fs::path ip2 = dir.write("broken.index.json", R"({"weight_map": {
      "a.weight": "model-00001-of-00002.safetensors", "x": "missing.safetensors",
      "q": "model-00001-of-00002.safetensors"}})");
  const st::Checkpoint b(ip2);
  CHECK(b.read("a.weight").values == std::vector<float>{1, 2});
  CHECK_THROWS_WITH(
      b.read("x"),
      Catch::Contains("broken.index.json: tensor \"x\" is in shard \"missing.safetensors\": ") &&
          Catch::Contains("missing.safetensors: cannot open the safetensors file (No such file"));
  CHECK_THROWS_WITH(b.info("q"),
                    Catch::Contains("the weight_map puts tensor \"q\" in "
                                    "\"model-00001-of-00002.safetensors\", but that shard has no such "
                                    "tensor"));
  // A single file is a checkpoint too.
  const st::Checkpoint one(dir.path / "model-00001-of-00002.safetensors");
  CHECK_FALSE(one.sharded());
  CHECK(one.names() == std::vector<std::string>{"a.weight", "b.weight"});
  CHECK(one.file_of("a.weight") == dir.path / "model-00001-of-00002.safetensors");
  CHECK(one.read("b.weight").values == std::vector<float>{3});
  CHECK_THROWS_WITH(one.file_of("zz"), Catch::Contains("no tensor \"zz\""));
}

TEST_CASE("safetensors: malformed index files", "[safetensors]") {
  struct Case {
    std::string json;
    std::string expect;
  };
  const Case c = GENERATE(
      Case{"", "invalid JSON in the index file: empty text"},
      Case{"[]", "the index is an array, not an object"},
      Case{R"({"metadata": {}})", "the index has no \"weight_map\""},
      Case{R"({"weight_map": []})", "the index's \"weight_map\" is an array, not an object"},
      Case{R"({"weight_map": {}})", "the index's \"weight_map\" lists no tensors"},
      Case{R"({"metadata": 1, "weight_map": {"a": "s"}})",
           "the index's \"metadata\" is a number, not an object"},
      Case{R"({"weight_map": {"a": "s", "a": "t"}})", "the name \"a\" appears twice"},
      Case{R"({"weight_map": {"a": 1}})", "weight_map: tensor \"a\": the shard is a number, not a file name"},
      Case{R"({"weight_map": {"a": "/etc/passwd"}})",
           "tensor \"a\": shard \"/etc/passwd\" is not a file name relative"},
      Case{R"({"weight_map": {"a": "../x.safetensors"}})", "shard \"../x.safetensors\" is not"},
      Case{R"({"weight_map": {"a": "s/../x"}})", "is not a file name"},
      Case{R"({"weight_map": {"a": "./x"}})", "is not"},
      Case{R"({"weight_map": {"a": ""}})", "is not a file name"},
      Case{R"({"weight_map": {"a": "dir/"}})", "is not"},
      Case{R"({"weight_map": {"a": "x\u0000y"}})", "is not a file name"});
  INFO(c.json);
  CHECK_THROWS_WITH(st::parse_index(c.json, "i.json"),
                    Catch::StartsWith("i.json: ") && Catch::Contains(c.expect));
  // Other top-level keys are ignored; the map comes back sorted.
  const auto m = st::parse_index(R"({"weight_map": {"b": "s2", "a": "s1"}, "format": "x"})", "i.json");
  CHECK(m == std::vector<std::pair<std::string, std::string>>{{"a", "s1"}, {"b", "s2"}});
}

TEST_CASE("safetensors globs: the shell's rules over whole names", "[safetensors][glob]") {
  struct Case {
    std::string pattern, name;
    bool match;
  };
  const Case c =
      GENERATE(Case{"*.mlp.*.weight", "model.layers.0.mlp.down_proj.weight", true},
               Case{"*.mlp.*.weight", "model.layers.0.mlp.down_proj.bias", false},
               Case{"*.mlp.*.weight", "mlp.down.weight", false},  // the pattern needs a '.' before "mlp"
               Case{"model.layers.?.self_attn.*", "model.layers.7.self_attn.q_proj.weight", true},
               Case{"model.layers.?.self_attn.*", "model.layers.17.self_attn.q_proj.weight", false},
               Case{"model.layers.[0-2].*", "model.layers.2.x", true},
               Case{"model.layers.[0-2].*", "model.layers.3.x", false},
               Case{"model.layers.[!0-2].*", "model.layers.3.x", true},
               Case{"model.layers.[^0-2].*", "model.layers.1.x", false}, Case{"[]]", "]", true},
               Case{"[!]]", "]", false}, Case{"[!]]", "a", true}, Case{"[a-]", "-", true},
               Case{"[-a]", "-", true}, Case{"\\*", "*", true}, Case{"\\*", "a", false},
               Case{"[\\]]", "]", true}, Case{"*", "", true}, Case{"", "", true}, Case{"", "a", false},
               Case{"?", "", false}, Case{"**a**", "bab", true}, Case{"a*b*c", "aXbYbZc", true},
               Case{"a*b*c", "aXbYbZ", false}, Case{"*.weight", "a.weight.bias", false},
               Case{"w", "W", false}, Case{"?", "\xC3\xA9", true},  // one character, two bytes
               Case{"caf?", "caf\xC3\xA9", true}, Case{"[\xC3\xA9\xC3\xA8]", "\xC3\xA8", true},
               Case{"[a-\xC3\xBF]", "\xC3\xA9", true}, Case{"a.b", "axb", false});
  INFO(c.pattern << " vs " << c.name);
  CHECK(st::glob_match(c.pattern, c.name) == c.match);
}

TEST_CASE("safetensors globs: bad patterns are errors", "[safetensors][glob]") {
  CHECK_THROWS_WITH(st::glob_match("model.[0-9", "x"),
                    Catch::Equals("tensor pattern \"model.[0-9\": '[' without its closing ']'"));
  CHECK_THROWS_WITH(st::glob_match("[]", "x"), Catch::Contains("without its closing"));
  CHECK_THROWS_WITH(st::glob_match("[z-a]", "x"),
                    Catch::Contains("the range in '[...]' has its ends reversed"));
  CHECK_THROWS_WITH(st::glob_match("[[:digit:]]", "1"), Catch::Contains("POSIX classes such as [[:alpha:]]"));
  CHECK_THROWS_WITH(st::glob_match("a\\", "a"), Catch::Contains("ends in a lone '\\'"));
  CHECK_THROWS_WITH(st::glob_match("a\xFF", "a"), Catch::Contains("not valid UTF-8"));
}

TEST_CASE("safetensors globs agree with fnmatch on random ASCII patterns", "[safetensors][glob]") {
  // glibc's fnmatch (flags 0: '*' and '?' match '.' and '/', as in our globs) is the reference on the ASCII
  // patterns both accept.
  std::mt19937 gen(7);
  const std::string alphabet = "ab.1";
  const std::string pattern_chars = "ab.1*?[]!-\\";
  std::size_t compared = 0, matched = 0;
  for (int trial = 0; trial < 200000; ++trial) {
    std::string pat, name;
    for (std::size_t i = 0, n = gen() % 7; i < n; ++i)
      pat += pattern_chars[gen() % pattern_chars.size()];
    for (std::size_t i = 0, n = gen() % 8; i < n; ++i)
      name += alphabet[gen() % alphabet.size()];
    bool ours = false;
    try {
      ours = st::glob_match(pat, name);
    } catch (const sqb::Error&) {
      continue;  // patterns fnmatch reads differently by design: unterminated '[', reversed ranges, ...
    }
    INFO("pattern " << pat << " name " << name);
    REQUIRE(ours == (::fnmatch(pat.c_str(), name.c_str(), 0) == 0));
    ++compared;
    matched += ours;
  }
  CHECK(compared > 100000);
  CHECK(matched > 1000);
}

TEST_CASE("safetensors globs: sorted matches, and an error showing names when none match",
          "[safetensors][glob]") {
  const std::vector<std::string> names = {"model.layers.1.mlp.up.weight", "model.layers.0.mlp.up.weight",
                                          "model.layers.0.attn.q.weight", "lm_head.weight",
                                          "model.layers.0.mlp.up.weight"};
  CHECK(st::glob_names(names, "*.mlp.*.weight", "ckpt") ==
        std::vector<std::string>{"model.layers.0.mlp.up.weight", "model.layers.1.mlp.up.weight"});
  CHECK(st::glob_names(names, "lm_head.weight", "ckpt") == std::vector<std::string>{"lm_head.weight"});
  CHECK_THROWS_WITH(
      st::glob_names(names, "model.layers.0.mlp.*.bias", "ckpt.safetensors"),
      Catch::StartsWith("ckpt.safetensors: tensor pattern \"model.layers.0.mlp.*.bias\" matches none of "
                        "the 4 tensors, e.g. ") &&
          Catch::Contains("\"model.layers.0.mlp.up.weight\""));
  CHECK_THROWS_WITH(st::glob_names({}, "*", "empty"), Catch::Contains("matches none of the 0 tensors"));
}
