// Interoperability with NumPy itself (Debian's python3-numpy at /usr/bin/python3): NumPy loads every file
// sqbench writes (each dtype x byte order x C/Fortran order x version) and writes it back with its own
// writer, and sqbench must read back exactly the values it wrote; float16 conversions are compared with
// NumPy's on all 65536 bit patterns and on float32 rounding cases. Without NumPy the tests fail (CI installs
// it).

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <random>
#include <sstream>

#include "npy_helpers.hpp"
#include "requirements.hpp"
#include "sqb/npy.hpp"

namespace fs = std::filesystem;
using sqb::npy::DType;

namespace {

using sqbtest::kPython;

struct Run {
  int status = -1;
  std::string output;
};

Run run(const std::string& cmd) {
  Run r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0)
    r.output.append(buf, got);
  const int raw = ::pclose(p);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

// Python side. For every sq/<name>.npy: check NumPy sees the dtype, byte order, order and shape the name
// encodes, then write the array back with NumPy's own writer (same version) to np/<name>.npy. Then the
// float16 tables, and NumPy's float32 -> float16 rounding of the values in f32_to_f16_in.npy.
const char* kScript = R"PY(
import os, sys
import numpy as np
from numpy.lib import format as npf

root = sys.argv[1]
names = sorted(os.listdir(os.path.join(root, "sq")))
for name in names:
    dt, order, fo, ver, shape = name[:-4].split("__")
    a = np.load(os.path.join(root, "sq", name))
    want_shape = tuple(int(x) for x in shape.split("x")) if shape != "scalar" else ()
    want_dt = np.dtype(dt).newbyteorder(order)
    assert a.dtype == want_dt, (name, a.dtype, want_dt)
    assert a.shape == want_shape, (name, a.shape, want_shape)
    if a.ndim > 1:
        assert a.flags.f_contiguous == (fo == "F") and a.flags.c_contiguous == (fo == "C"), name
    with open(os.path.join(root, "np", name), "wb") as f:
        npf.write_array(f, a, version=(int(ver), 0))

bits = np.arange(65536, dtype=np.uint16)
np.save(os.path.join(root, "np_f16_all.npy"), bits.view(np.float16))
np.save(os.path.join(root, "np_f16_all_be.npy"), bits.view(np.float16).astype(">f2"))
np.save(os.path.join(root, "np_f16_as_f32.npy"), bits.view(np.float16).astype(np.float32))
x = np.load(os.path.join(root, "f32_to_f16_in.npy"))
np.save(os.path.join(root, "np_f32_to_f16.npy"), x.astype(np.float16))
print("numpy", np.__version__, "checked", len(names), "files")
)PY";

// Values a dtype holds exactly, with its edge values.
std::vector<float> float_values(DType t, std::size_t n) {
  std::vector<float> special;
  if (t == DType::float16) {
    special = {0.0f,     -0.0f,     65504.0f, std::ldexp(1.0f, -24), -std::ldexp(1.0f, -20),
               INFINITY, -INFINITY, NAN};
  } else {
    special = {0.0f,     -0.0f, FLT_MAX, -FLT_MAX, FLT_MIN, std::numeric_limits<float>::denorm_min(),
               INFINITY, NAN};
  }
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = i < special.size() ? special[i] : static_cast<float>(static_cast<double>(i) * 0.625 - 11.0);
  return v;
}

std::vector<std::int32_t> int_values(DType t, std::size_t n) {
  const bool sgn = t == DType::int8 || t == DType::int16 || t == DType::int32;
  const std::int64_t span =
      t == DType::int8 || t == DType::uint8 ? 256 : (t == DType::int32 ? 1LL << 32 : 65536);
  std::vector<std::int32_t> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t x = static_cast<std::int64_t>((i * 2654435761ULL) % static_cast<std::uint64_t>(span));
    if (sgn) x -= span / 2;
    v[i] = static_cast<std::int32_t>(x);
  }
  return v;
}

bool same(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) ||
         std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

}  // namespace

TEST_CASE("NumPy reads every file sqbench writes, and sqbench reads NumPy's files back exactly",
          "[npy][numpy]") {
  sqbtest::require_python("numpy");
  sqbtest::ScratchDir dir;
  fs::create_directories(dir.path / "sq");
  fs::create_directories(dir.path / "np");
  struct Written {
    std::string name;
    std::vector<std::size_t> shape;
    sqb::npy::Format format;
  };
  std::vector<Written> written;
  const std::vector<std::vector<std::size_t>> shapes = {{}, {7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 2}};
  for (const DType t : {DType::float16, DType::float32, DType::float64, DType::int8, DType::uint8,
                        DType::int16, DType::uint16, DType::int32}) {
    for (const bool big : {false, true}) {
      for (const bool fortran : {false, true}) {
        for (const int version : {1, 2, 3}) {
          for (const auto& shape : shapes) {
            std::size_t n = 1;
            std::string shape_name;
            for (const auto d : shape) {
              n *= d;
              if (!shape_name.empty()) shape_name += 'x';
              shape_name += std::to_string(d);
            }
            if (shape.empty()) shape_name = "scalar";
            std::string dt(
                1, sqb::npy::is_floating(t) ? 'f' : (t == DType::uint8 || t == DType::uint16 ? 'u' : 'i'));
            dt += std::to_string(sqb::npy::dtype_bytes(t));
            const std::string name = dt + "__" + (big ? ">" : "<") + "__" + (fortran ? "F" : "C") + "__" +
                                     std::to_string(version) + "__" + shape_name + ".npy";
            const sqb::npy::Format f{t, big, fortran, version};
            // serialize() is what write() puts in the file (without write()'s fsync, which would make
            // 960 files slow).
            dir.write("sq/" + name, sqb::npy::is_floating(t)
                                        ? sqb::npy::serialize(shape, float_values(t, n), f)
                                        : sqb::npy::serialize(shape, int_values(t, n), f));
            written.push_back({name, shape, f});
          }
        }
      }
    }
  }
  // float32 values whose float16 rounding is delicate: midpoints between halves and their neighbours.
  std::vector<float> rounding;
  for (std::uint32_t h = 0; h < 0x7BFF; h += 7) {
    const double a = sqb::npy::half_to_float(static_cast<std::uint16_t>(h));
    const double b = sqb::npy::half_to_float(static_cast<std::uint16_t>(h + 1));
    const auto mid = static_cast<float>(0.5 * (a + b));
    for (const float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY), -mid})
      rounding.push_back(f);
  }
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> u(-70000.0f, 70000.0f);
  for (int i = 0; i < 4000; ++i)
    rounding.push_back(u(gen) * std::ldexp(1.0f, -(i % 30)));
  const std::vector<std::size_t> rshape = {rounding.size()};
  sqb::npy::write(dir.path / "f32_to_f16_in.npy", rshape, rounding);

  sqbtest::ScratchDir script_dir;
  const fs::path script = script_dir.write("check.py", kScript);
  const Run r = run(std::string(kPython) + " " + script.string() + " " + dir.path.string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("checked " + std::to_string(written.size()) + " files") != std::string::npos);

  for (const Written& w : written) {
    INFO(w.name);
    const sqb::npy::Array a = sqb::npy::read(dir.path / "np" / w.name);
    CHECK(a.shape == w.shape);
    CHECK(a.format.dtype == w.format.dtype);
    CHECK(a.format.version == w.format.version);
    CHECK(a.format.big_endian == (w.format.big_endian && sqb::npy::dtype_bytes(w.format.dtype) > 1));
    CHECK(a.format.fortran_order == (w.format.fortran_order && w.shape.size() > 1));
    if (sqb::npy::is_floating(w.format.dtype)) {
      const auto want = float_values(w.format.dtype, a.size());
      REQUIRE(a.values.size() == want.size());
      for (std::size_t i = 0; i < want.size(); ++i)
        REQUIRE(same(a.values[i], want[i]));
    } else {
      CHECK(a.ints == int_values(w.format.dtype, a.size()));
    }
  }
  // float16 -> float32: all bit patterns, both byte orders, against NumPy's conversion.
  const sqb::npy::Array all = sqb::npy::read(dir.path / "np_f16_all.npy");
  const sqb::npy::Array all_be = sqb::npy::read(dir.path / "np_f16_all_be.npy");
  const sqb::npy::Array ref = sqb::npy::read(dir.path / "np_f16_as_f32.npy");
  REQUIRE(all.values.size() == 65536);
  CHECK(all_be.format.big_endian);
  for (std::size_t i = 0; i < 65536; ++i) {
    INFO("half bits " << i);
    REQUIRE(same(all.values[i], ref.values[i]));
    REQUIRE(same(all_be.values[i], ref.values[i]));
  }
  // float32 -> float16 rounding: sqbench's writer against NumPy's astype(float16).
  const sqb::npy::Array np16 = sqb::npy::read(dir.path / "np_f32_to_f16.npy");
  REQUIRE(np16.values.size() == rounding.size());
  for (std::size_t i = 0; i < rounding.size(); ++i) {
    INFO(std::hexfloat << rounding[i]);
    if (std::fabs(rounding[i]) >= 65520.0f) {
      REQUIRE(std::isinf(np16.values[i]));  // NumPy overflows to Inf; sqbench's writer refuses instead
      continue;
    }
    REQUIRE(same(np16.values[i], sqb::npy::half_to_float(sqb::npy::float_to_half(rounding[i]))));
  }
}

TEST_CASE("the shipped example tensors are NumPy files sqbench reads", "[npy][numpy]") {
  const fs::path data = fs::path(SQB_SOURCE_DIR) / "tests" / "data";
  const sqb::npy::Array conv = sqb::npy::read(data / "conv_oihw.npy");
  CHECK(conv.shape == std::vector<std::size_t>{8, 4, 3, 3});
  CHECK(conv.format.dtype == DType::float32);
  const sqb::npy::Array lin = sqb::npy::read(data / "linear_f16.npy");
  CHECK(lin.shape == std::vector<std::size_t>{16, 24});
  CHECK(lin.format.dtype == DType::float16);
  // The generator's per-channel scales 0.02 (o + 1) show in the per-row spread.
  for (std::size_t o = 0; o < 8; ++o) {
    double ss = 0;
    for (std::size_t j = 0; j < 36; ++j)
      ss += double(conv.values[o * 36 + j]) * conv.values[o * 36 + j];
    const double rms = std::sqrt(ss / 36);
    const double scale = 0.02 * static_cast<double>(o + 1);
    CHECK(rms > scale * 0.5);
    CHECK(rms < scale * 1.6);
  }
  sqbtest::require_python("numpy");
  // NumPy's own float32 view of the files, printed in hex, must match bit for bit.
  const Run r = run(std::string(kPython) +
                    " -c \"import numpy as np, sys; [print(' '.join(float(v).hex() for v in "
                    "np.load(sys.argv[1] + f).astype(np.float32).ravel())) for f in ('/conv_oihw.npy', "
                    "'/linear_f16.npy')]\" " +
                    data.string());
  REQUIRE(r.status == 0);
  std::istringstream lines(r.output);
  for (const sqb::npy::Array* a : {&conv, &lin}) {
    std::string line;
    std::getline(lines, line);
    std::istringstream words(line);
    std::size_t i = 0;
    for (std::string w; words >> w; ++i) {
      REQUIRE(i < a->values.size());
      CHECK(static_cast<double>(a->values[i]) == std::strtod(w.c_str(), nullptr));
    }
    CHECK(i == a->values.size());
  }
}
