// The safetensors writer: files it writes read back bit for bit (through sqbench's reader, a by-hand parse of
// the bytes, and numpy/torch), its layout is aligned and complete, its BF16/F16 rounding equals torch's bit
// for bit, a failed or abandoned write leaves no file under the final name; and importance files.

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "requirements.hpp"
#include "safetensors_helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/importance.hpp"
#include "sqb/npy.hpp"
#include "sqb/safetensors.hpp"

namespace fs = std::filesystem;
namespace st = sqb::safetensors;
using sqbtest::TempDir;

namespace {

std::vector<unsigned char> bytes_of(const std::vector<float>& v) {
  std::vector<unsigned char> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The obviously-correct reference for bfloat16 rounding: the float32 value rounded to the nearest value with
// 8 significant bits, computed in double arithmetic (exact for these magnitudes), ties to the even one.
std::uint16_t bf16_reference(float f) {
  if (std::isnan(f)) return 0x7FC0;
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t lo = u & 0xFFFF0000u;  // truncated toward zero
  const std::uint32_t hi = lo + 0x10000u;    // next bfloat16 away from zero (may be Inf)
  const double x = std::fabs(static_cast<double>(f));
  const double a = std::fabs(static_cast<double>(std::bit_cast<float>(lo)));
  // The next value up as a double: for the largest finite bfloat16 that is 2^128, beyond float32.
  const double b = (lo & 0x7FFFFFFFu) == 0x7F7F0000u
                       ? std::ldexp(1.0, 128)
                       : std::fabs(static_cast<double>(std::bit_cast<float>(hi)));
  if ((u & 0x7FFFFFFFu) == 0x7F800000u) return static_cast<std::uint16_t>(u >> 16);  // Inf
  if (x - a < b - x) return static_cast<std::uint16_t>(lo >> 16);
  if (x - a > b - x) return static_cast<std::uint16_t>(hi >> 16);
  return static_cast<std::uint16_t>(((lo >> 16) & 1u) ? hi >> 16 : lo >> 16);
}

// float32 bit patterns that exercise every rounding case of every exponent: each upper half with lower halves
// below, at and above the halfway point, and random ones.
std::vector<std::uint32_t> probe_patterns() {
  std::vector<std::uint32_t> out;
  std::mt19937 rng(7);
  for (std::uint32_t hi = 0; hi < 0x10000u; ++hi) {
    for (const std::uint32_t lo : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu})
      out.push_back(hi << 16 | lo);
    out.push_back(hi << 16 | (rng() & 0xFFFFu));
  }
  return out;
}

}  // namespace

TEST_CASE("safetensors writer: bf16 rounding equals a double-arithmetic reference on every exponent",
          "[safetensors][writer]") {
  for (const std::uint32_t u : probe_patterns()) {
    const float f = std::bit_cast<float>(u);
    INFO("bits 0x" << std::hex << u);
    REQUIRE(st::float_to_bf16(f) == bf16_reference(f));
  }
  CHECK(st::bf16_to_float(st::float_to_bf16(1.0f)) == 1.0f);
  CHECK(st::float_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds up to Inf
  CHECK(st::float_to_bf16(-0.0f) == 0x8000);
}

TEST_CASE("safetensors writer: write_values converts every probe pattern as the scalar conversions do",
          "[safetensors][writer]") {
  // write_values converts a chunk at a time in one loop per dtype (vectorized); each stored element must
  // equal the scalar conversion of its value, across chunk boundaries and at an offset.
  const std::vector<std::uint32_t> probes = probe_patterns();
  std::vector<float> values(probes.size());
  std::memcpy(values.data(), probes.data(), probes.size() * 4);
  const TempDir dir;
  const fs::path path = dir.path / "p.safetensors";
  const std::size_t n = values.size();
  {
    st::Writer wr(path, {{"bf16", st::DType::BF16, {n}},
                         {"f16", st::DType::F16, {n}},
                         {"f32", st::DType::F32, {n}},
                         {"f64", st::DType::F64, {n}}});
    for (const char* t : {"bf16", "f16", "f32", "f64"}) {
      wr.write_values(t, std::span(values).first(1000), 0);
      wr.write_values(t, std::span(values).subspan(1000), 1000);
    }
    wr.commit();
  }
  const st::File f(path);
  const auto u16_at = [&](const char* t, std::size_t i) {
    std::uint16_t v;
    std::memcpy(&v, f.raw(t).data() + 2 * i, 2);
    return v;
  };
  std::size_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = values[i];
    double d;
    std::memcpy(&d, f.raw("f64").data() + 8 * i, 8);
    std::uint32_t u;
    std::memcpy(&u, f.raw("f32").data() + 4 * i, 4);
    const bool same = u16_at("bf16", i) == st::float_to_bf16(v) && u16_at("f16", i) == st::float_to_f16(v) &&
                      u == probes[i] &&
                      std::bit_cast<std::uint64_t>(d) == std::bit_cast<std::uint64_t>(static_cast<double>(v));
    if (!same && bad++ < 5) UNSCOPED_INFO("pattern 0x" << std::hex << probes[i]);
  }
  CHECK(bad == 0);
}

TEST_CASE("safetensors writer: bf16 and f16 rounding equal torch's bit for bit",
          "[safetensors][writer][python]") {
  sqbtest::require_python("numpy, torch");
  const TempDir dir;
  const std::vector<std::uint32_t> probes = probe_patterns();
  {
    std::ofstream out(dir.path / "in.u32", std::ios::binary);
    out.write(reinterpret_cast<const char*>(probes.data()), static_cast<std::streamsize>(probes.size() * 4));
  }
  const std::string script = R"PY(
import sys, numpy as np, torch
d = sys.argv[1]
x = torch.from_numpy(np.fromfile(d + "/in.u32", dtype="<u4").view(np.float32).copy())
x.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tofile(d + "/bf16.u16")
x.to(torch.float16).view(torch.int16).numpy().astype("<i2").tofile(d + "/f16.u16")
)PY";
  dir.write("conv.py", script);
  const auto r = sqbtest::shell(std::string(sqbtest::kPython) + " " + (dir.path / "conv.py").string() + " " +
                                dir.path.string() + " 2>&1");
  REQUIRE(r.status == 0);
  for (const char* which : {"bf16", "f16"}) {
    const std::string raw = sqbtest::slurp(dir.path / (std::string(which) + ".u16"));
    REQUIRE(raw.size() == probes.size() * 2);
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < probes.size(); ++i) {
      std::uint16_t torch_bits;
      std::memcpy(&torch_bits, raw.data() + 2 * i, 2);
      const float f = std::bit_cast<float>(probes[i]);
      const bool bf16 = std::string(which) == "bf16";
      const std::uint16_t ours = bf16 ? st::float_to_bf16(f) : st::float_to_f16(f);
      // torch's own bfloat16 NaN differs by code path (0x7FC0 scalar, 0xFFFF from its vectorised
      // kernels), so a NaN must stay a NaN; every other pattern must match bit for bit.
      const bool same = bf16 && std::isnan(f)
                            ? std::isnan(st::bf16_to_float(ours)) && std::isnan(st::bf16_to_float(torch_bits))
                            : ours == torch_bits;
      if (!same && mismatches++ < 5) {
        UNSCOPED_INFO(which << ": 0x" << std::hex << probes[i] << " -> ours 0x" << ours << ", torch 0x"
                            << torch_bits);
      }
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("safetensors writer: a file of every dtype reads back bit for bit, aligned, metadata kept",
          "[safetensors][writer]") {
  const TempDir dir;
  const fs::path path = dir.path / "m.safetensors";
  std::vector<float> w(6 * 5);
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = std::sin(static_cast<float>(i)) * 3.0f;
  std::vector<unsigned char> i64(3 * 8), u8 = {1, 2, 3}, i16(5 * 2), f64(2 * 8);
  for (std::size_t i = 0; i < i64.size(); ++i)
    i64[i] = static_cast<unsigned char>(i * 7);
  for (std::size_t i = 0; i < i16.size(); ++i)
    i16[i] = static_cast<unsigned char>(200 - i);
  const double d[2] = {0.1, -1e300};
  std::memcpy(f64.data(), d, 16);
  {
    st::Writer wr(path,
                  {{"b.u8", st::DType::U8, {3}},
                   {"a.weight", st::DType::BF16, {6, 5}},
                   {"c.f32", st::DType::F32, {6, 5}},
                   {"d.i64", st::DType::I64, {3}},
                   {"e.f16", st::DType::F16, {2, 3, 5}},
                   {"f.i16", st::DType::I16, {5}},
                   {"g.f64", st::DType::F64, {2}},
                   {"scalar", st::DType::F32, {}},
                   {"empty", st::DType::F32, {0, 4}},
                   {"name \"with\" quotes\\ and \xc3\xa9", st::DType::U8, {1}}},
                  {{"format", "pt"}, {"note", "line\nbreak \"q\""}});
    CHECK(wr.data_offset() % 8 == 0);
    // Tensors are laid out by decreasing element size, so each is aligned to its own.
    for (const st::TensorInfo& t : wr.tensors())
      CHECK(t.begin % std::max<std::size_t>(1, st::dtype_bits(t.dtype) / 8) == 0);
    wr.write_values("a.weight", w);
    wr.write("c.f32", bytes_of(w));
    wr.write("b.u8", u8);
    wr.write("d.i64", std::span(i64).subspan(8), 8);  // out of order, in two pieces
    wr.write("d.i64", std::span(i64).first(8), 0);
    wr.write_values("e.f16", std::span(w).first(15), 0);
    wr.write_values("e.f16", std::span(w).subspan(15), 15);
    wr.write("f.i16", i16);
    wr.write("g.f64", f64);
    wr.write_values("scalar", std::vector<float>{2.5f});
    wr.write("name \"with\" quotes\\ and \xc3\xa9", std::vector<unsigned char>{9});
    CHECK_FALSE(fs::exists(path));  // nothing under the final name before commit
    wr.commit();
  }
  CHECK(files_in(dir.path) == std::vector<std::string>{"m.safetensors"});
  const st::File f(path);
  CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "line\nbreak \"q\""}});
  CHECK(f.data_offset() % 8 == 0);
  const st::Array a = f.read("a.weight");
  CHECK(a.dtype == st::DType::BF16);
  CHECK(a.shape == std::vector<std::size_t>{6, 5});
  for (std::size_t i = 0; i < w.size(); ++i)
    CHECK(std::bit_cast<std::uint32_t>(a.values[i]) ==
          std::bit_cast<std::uint32_t>(st::bf16_to_float(st::float_to_bf16(w[i]))));
  const st::Array c = f.read("c.f32");
  CHECK(c.values == w);
  const st::Array e = f.read("e.f16");
  CHECK(e.shape == std::vector<std::size_t>{2, 3, 5});
  for (std::size_t i = 0; i < w.size(); ++i)
    CHECK(std::bit_cast<std::uint32_t>(e.values[i]) ==
          std::bit_cast<std::uint32_t>(sqb::npy::half_to_float(st::float_to_f16(w[i]))));
  const auto raw = [&](const char* n) {
    const auto s = f.raw(n);
    return std::vector<unsigned char>(s.begin(), s.end());
  };
  CHECK(raw("b.u8") == u8);
  CHECK(raw("d.i64") == i64);
  CHECK(raw("f.i16") == i16);
  CHECK(raw("g.f64") == f64);
  CHECK(f.read("scalar").values == std::vector<float>{2.5f});
  CHECK(f.info("empty").begin == f.info("empty").end);
  CHECK(raw("name \"with\" quotes\\ and \xc3\xa9") == std::vector<unsigned char>{9});
}

TEST_CASE("safetensors writer: an incomplete or abandoned file never appears under its final name",
          "[safetensors][writer]") {
  const TempDir dir;
  const fs::path path = dir.path / "m.safetensors";
  {
    st::Writer wr(path, {{"a", st::DType::F32, {4}}, {"b", st::DType::F32, {2}}});
    wr.write_values("a", std::vector<float>{1, 2, 3, 4});
    wr.write_values("b", std::vector<float>{1});  // only half of b
    CHECK_THROWS_WITH(wr.commit(),
                      Catch::Contains("m.safetensors: tensor \"b\": bytes 4..8 were never written"));
    CHECK(files_in(dir.path).size() == 1);  // only the temporary
  }
  CHECK(files_in(dir.path).empty());  // the temporary is removed with the writer
  {
    st::Writer wr(path, {{"a", st::DType::F32, {4}}});
    CHECK_THROWS_WITH(wr.write_values("a", std::vector<float>(5)), Catch::Contains("beyond its 4 elements"));
    CHECK_THROWS_WITH(wr.write("zz", std::vector<unsigned char>(1)), Catch::Contains("no tensor \"zz\""));
    CHECK_THROWS_WITH(wr.write("a", std::vector<unsigned char>(4), 14),
                      Catch::Contains("beyond its 16 bytes"));
  }
  CHECK(files_in(dir.path).empty());
  // An existing file is replaced only by a complete one.
  st::write_file(path, std::vector<st::Blob>{{{"old", st::DType::U8, {1}}, std::vector<unsigned char>{1}}});
  { st::Writer wr(path, {{"new", st::DType::U8, {1}}}); }
  CHECK(st::File(path).names() == std::vector<std::string>{"old"});
  CHECK_THROWS_WITH(st::Writer(path, {{"x", st::DType::U8, {1}}, {"x", st::DType::F32, {1}}}),
                    Catch::Contains("tensor \"x\" is given twice"));
  CHECK_THROWS_WITH(st::Writer(path, {{"__metadata__", st::DType::U8, {1}}}), Catch::Contains("reserves it"));
  CHECK_THROWS_WITH(st::Writer(path, {{"bad\xff", st::DType::U8, {1}}}), Catch::Contains("not valid UTF-8"));
  CHECK_THROWS_WITH(st::Writer(path, {{"f4", st::DType::F4, {3}}}),
                    Catch::Contains("do not fill whole bytes"));
  CHECK_THROWS_WITH(st::Writer(dir.path / "no" / "such" / "m.safetensors", {{"x", st::DType::U8, {1}}}),
                    Catch::Contains("cannot create"));
  CHECK(files_in(dir.path) == std::vector<std::string>{"m.safetensors"});
}

TEST_CASE("safetensors writer: numpy and torch read what it writes", "[safetensors][writer][python]") {
  sqbtest::require_python("numpy, torch");
  const TempDir dir;
  const fs::path path = dir.path / "m.safetensors";
  std::vector<float> w(4 * 7);
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = std::cos(static_cast<float>(i) * 0.37f) * 0.05f;
  {
    st::Writer wr(path,
                  {{"w.bf16", st::DType::BF16, {4, 7}},
                   {"w.f16", st::DType::F16, {4, 7}},
                   {"w.f32", st::DType::F32, {4, 7}},
                   {"ids", st::DType::I64, {2}}},
                  {{"format", "pt"}});
    wr.write_values("w.bf16", w);
    wr.write_values("w.f16", w);
    wr.write_values("w.f32", w);
    const std::int64_t ids[2] = {5, -6};
    wr.write("ids", {reinterpret_cast<const unsigned char*>(ids), 16});
    wr.commit();
  }
  // The reader is numpy over the format's description; the reference for each dtype is torch's own
  // conversion of the float32 values.
  const std::string script = R"PY(
import json, struct, sys, numpy as np, torch
path = sys.argv[1]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
assert (8 + n) % 8 == 0, n
header = json.loads(raw[8:8 + n])
assert header["__metadata__"] == {"format": "pt"}, header
buf = raw[8 + n:]
def get(name, np_dtype):
    e = header[name]
    b, end = e["data_offsets"]
    return np.frombuffer(buf[b:end], dtype=np_dtype).reshape(e["shape"])
w32 = get("w.f32", "<f4")
x = torch.from_numpy(w32.copy())
bf = torch.from_numpy(get("w.bf16", "<i2").copy()).view(torch.bfloat16)
assert torch.equal(bf.view(torch.int16), x.to(torch.bfloat16).view(torch.int16)), "bf16 differs from torch"
f16 = get("w.f16", "<f2")
assert np.array_equal(f16.view(np.int16), x.to(torch.float16).numpy().view(np.int16)), "f16 differs"
assert get("ids", "<i8").tolist() == [5, -6]
covered = sorted(tuple(e["data_offsets"]) for k, e in header.items() if k != "__metadata__")
assert covered[0][0] == 0 and all(a[1] == b[0] for a, b in zip(covered, covered[1:])) and covered[-1][1] == len(buf)
print("ok", w32[0, :3].tolist())
)PY";
  dir.write("read.py", script);
  const auto r = sqbtest::shell(std::string(sqbtest::kPython) + " " + (dir.path / "read.py").string() + " " +
                                path.string() + " 2>&1");
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.rfind("ok ", 0) == 0);
}

TEST_CASE("importance: a safetensors file of per-channel vectors reads and is validated", "[importance]") {
  const TempDir dir;
  const fs::path good = dir.path / "imp.safetensors";
  const std::vector<float> v = {0.5f, 2.0f, 0.0f};
  st::write_file(good, std::vector<st::Blob>{{{"layers.0.weight", st::DType::F32, {3}}, bytes_of(v)},
                                             {{"layers.1.weight", st::DType::F32, {1}}, bytes_of({4.0f})}});
  const sqb::Importance imp = sqb::read_importance(good);
  CHECK(imp.vectors.size() == 2);
  REQUIRE(imp.find("layers.0.weight") != nullptr);
  CHECK(*imp.find("layers.0.weight") == v);
  CHECK(imp.find("layers.2.weight") == nullptr);

  const auto bad = [&](const char* name, st::DType dt, std::vector<std::size_t> shape,
                       std::vector<unsigned char> bytes) {
    const fs::path p = dir.path / "bad.safetensors";
    st::write_file(p, std::vector<st::Blob>{{{name, dt, std::move(shape)}, bytes}});
    return p;
  };
  CHECK_THROWS_WITH(sqb::read_importance(bad("w", st::DType::F32, {1, 2}, bytes_of({1, 2}))),
                    Catch::Contains("bad.safetensors: tensor \"w\": an importance entry is a 1-D vector"));
  CHECK_THROWS_WITH(sqb::read_importance(bad("w", st::DType::F32, {2}, bytes_of({1, -2}))),
                    Catch::Contains("tensor \"w\": importance entry 1 is -2"));
  CHECK_THROWS_WITH(sqb::read_importance(bad("w", st::DType::F32, {2}, bytes_of({NAN, 1}))),
                    Catch::Contains("importance entry 0 is nan"));
  CHECK_THROWS_WITH(sqb::read_importance(bad("w", st::DType::I32, {1}, {1, 0, 0, 0})),
                    Catch::Contains("dtype I32 is not a float dtype"));
  CHECK_THROWS_WITH(sqb::read_importance(bad("w", st::DType::F32, {0}, {})),
                    Catch::Contains("the importance vector is empty"));
}

TEST_CASE("Writer with a Partial: left in place uncommitted, continued by a Writer of the same layout only",
          "[writer][safetensors]") {
  const TempDir d;
  const std::vector<float> a = {1.5f, -2.0f, 0.25f, 3.0f}, b = {7.0f, 8.0f};
  const auto entries = [] {
    return std::vector<st::Entry>{{"a", st::DType::BF16, {2, 2}}, {"b", st::DType::F32, {2}}};
  };
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  // BF16 bits of 1.5, -2, 0.25, 3 (little-endian).
  const std::vector<std::uint16_t> a_bits = {0x3FC0, 0xC000, 0x3E80, 0x4040};
  st::write_file(
      d.path / "ref.safetensors",
      std::vector<st::Blob>{
          {{"a", st::DType::BF16, {2, 2}}, {reinterpret_cast<const unsigned char*>(a_bits.data()), 8}},
          {{"b", st::DType::F32, {2}}, {reinterpret_cast<const unsigned char*>(b.data()), 8}}},
      meta);
  const fs::path partial = d.path / "out.safetensors.partial";
  {
    st::Writer w(d.path / "out.safetensors", entries(), meta, st::Partial{partial, false});
    w.write_values("a", a);
    w.sync();
  }  // destroyed uncommitted: the partial file stays, no final name
  CHECK(fs::exists(partial));
  CHECK_FALSE(fs::exists(d.path / "out.safetensors"));
  // Another layout (or other metadata) cannot continue it.
  CHECK_THROWS_WITH(
      st::Writer(d.path / "out.safetensors", {{"a", st::DType::F32, {2, 2}}, {"b", st::DType::F32, {2}}},
                 meta, st::Partial{partial, true}),
      Catch::Contains("was laid out for other tensors or metadata"));
  CHECK_THROWS_WITH(st::Writer(d.path / "out.safetensors", entries(), {}, st::Partial{partial, true}),
                    Catch::Contains("was laid out for other tensors or metadata"));
  {
    st::Writer w(d.path / "out.safetensors", entries(), meta, st::Partial{partial, true});
    // Without marking "a" written, commit refuses: the journal, not the file, says what is finished.
    w.write_values("b", b);
    CHECK_THROWS_WITH(w.commit(), Catch::Contains("tensor \"a\": bytes 0..8 were never written"));
    w.mark_written("a");
    w.commit();
  }
  CHECK_FALSE(fs::exists(partial));
  std::ifstream x(d.path / "out.safetensors", std::ios::binary),
      y(d.path / "ref.safetensors", std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(x)), {}),
      want((std::istreambuf_iterator<char>(y)), {});
  CHECK(got == want);
}
