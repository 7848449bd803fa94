// `sqbench quantize`: the same output for every thread count, copies byte for byte, reconstructions in the
// stored dtype, and bad input refused with exit 2 before anything is written.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "cli_helpers.hpp"
#include "sqb/checkpoint.hpp"
#include "sqb/error.hpp"
#include "sqb/quantize.hpp"
#include "sqb/safetensors.hpp"

namespace fs = std::filesystem;
namespace st = sqb::safetensors;
using sqbtest::TempDir;

namespace {

std::vector<unsigned char> f32_bytes(std::size_t n, float scale, int seed) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = scale * std::sin(static_cast<float>(i * 7 + static_cast<std::size_t>(seed)) * 0.37f) *
           std::cos(static_cast<float>(i) * 0.011f);
  std::vector<unsigned char> b(n * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A checkpoint: an F32 [out, in] weight, a Keras-style [in, out] kernel, a bias, an I64 buffer.
fs::path make_checkpoint(const TempDir& d) {
  const fs::path p = d.path / "m.safetensors";
  const auto w = f32_bytes(24 * 40, 0.1f, 1), k = f32_bytes(40 * 24, 1.0f, 2), b = f32_bytes(24, 1.0f, 3);
  std::vector<unsigned char> ids(8 * 3, 0);
  st::write_file(p,
                 std::vector<st::Blob>{{{"layer.weight", st::DType::F32, {24, 40}}, w},
                                       {{"dense/kernel", st::DType::F32, {40, 24}}, k},
                                       {{"layer.bias", st::DType::F32, {24}}, b},
                                       {{"ids", st::DType::I64, {3}}, ids}},
                 {{"format", "tf"}});
  return p;
}

}  // namespace

TEST_CASE("sqbench quantize: identical output for 1 and 2 threads, copies byte for byte, layouts",
          "[quantize-cmd][cli]") {
  const TempDir d;
  const fs::path in = make_checkpoint(d);
  // "format": "tf" with a `weight` name disagree for layer.weight, so rules give its layout.
  const std::string rules = "[layer.weight]\nlayout = oihw\n[dense/kernel]\nlayout = auto\n";
  d.write("rules.ini", rules);
  for (const char* t : {"1", "2"}) {
    const auto r = sqbtest::run_cli("quantize --input " + in.string() + " --out " + (d.path / ("o" + std::string(t))).string() +
                                    " --spec kmeans --bits 3 --granularity group:8 --rules " +
                                    (d.path / "rules.ini").string() + " --threads " + t);
    INFO(r.output);
    REQUIRE(r.status == 0);
  }
  CHECK(sqbtest::slurp(d.path / "o1" / "model.safetensors") == sqbtest::slurp(d.path / "o2" / "model.safetensors"));
  const st::File src(in), out(d.path / "o1" / "model.safetensors");
  for (const char* copied : {"layer.bias", "ids"}) {
    const auto a = src.raw(copied), b = out.raw(copied);
    CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
  }
  CHECK(out.metadata().at("format") == "tf");
  // The kernel is [in, out]: laid out hwio its rows are the 24 outputs, and the reconstruction comes back in
  // the stored [40, 24] order equal to quantizing the transpose.
  const st::Array k = src.read("dense/kernel");
  std::vector<float> kt(k.values.size());
  for (std::size_t i = 0; i < 40; ++i)
    for (std::size_t o = 0; o < 24; ++o)
      kt[o * 40 + i] = k.values[i * 24 + o];
  sqb::QuantizeOptions qo;
  qo.granularity = sqb::Granularity::parse("group:8");
  const sqb::Quantized q = sqb::quantize(sqb::TensorView(24, 40, kt), "kmeans", 8, qo);
  const st::Array got = out.read("dense/kernel");
  REQUIRE(got.shape == std::vector<std::size_t>{40, 24});
  for (std::size_t i = 0; i < 40; ++i)
    for (std::size_t o = 0; o < 24; ++o)
      REQUIRE(got.values[i * 24 + o] == q.decoded[o * 40 + i]);
}

TEST_CASE("sqbench quantize: bad input exits 2 before writing anything", "[quantize-cmd][cli][bad-input-quantize]") {
  const TempDir d;
  const fs::path in = make_checkpoint(d);
  const std::string base = "quantize --input " + in.string() + " --out " + (d.path / "out").string();
  struct Bad {
    std::string args, message;
  };
  d.write("nomatch.ini", "[nothing.*]\nspec = kmeans\nbits = 2\n");
  d.write("int.ini", "[ids]\nspec = kmeans\nbits = 2\n");
  d.write("badkey.ini", "[*]\nbitz = 2\n");
  const std::vector<float> seven(7, 0.5f);
  st::write_file(d.path / "imp.safetensors",
                 std::vector<st::Blob>{{{"layer.weight", st::DType::F32, {7}},
                                        {reinterpret_cast<const unsigned char*>(seven.data()), 28}}});
  const std::vector<Bad> cases = {
      {"--spec kmeans", "needs --spec SPEC with --bits B or --k K"},
      {"--spec kmeanz --bits 2 --rules " + (d.path / "int.ini").string(), "is I64, not a floating tensor"},
      {"--rules " + (d.path / "nomatch.ini").string(), "rule [nothing.*] matches no tensor"},
      {"--rules " + (d.path / "badkey.ini").string(), "badkey.ini:2: unknown key 'bitz'"},
      {"--spec kmeans --bits 2 --rules " + (d.path / "int.ini").string(), "\"ids\" is I64"},
      {"--spec nope --bits 2 --rules " + (d.path / "nomatch.ini").string(), "matches no tensor"},
      {"--spec kmeans --bits 2 --granularity group:8 --rules " + (d.path / "nomatch.ini").string(), "matches no"},
  };
  for (const Bad& b : cases) {
    const auto r = sqbtest::run_cli(base + " " + b.args);
    INFO(b.args << "\n" << r.output);
    CHECK(r.status == 2);
    CHECK(r.output.find(b.message) != std::string::npos);
    CHECK_FALSE(fs::exists(d.path / "out"));
  }
  // Importance of the wrong length for a weight (layer.weight laid out oihw has 40 columns).
  d.write("oihw.ini", "[layer.weight]\nspec = kmeans\nbits = 2\nlayout = oihw\n");
  const auto r = sqbtest::run_cli(base + " --rules " + (d.path / "oihw.ini").string() + " --importance " +
                                  (d.path / "imp.safetensors").string());
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK(r.output.find("importance has 7 entries, the weight laid out oihw has 40 columns") != std::string::npos);
  CHECK_FALSE(fs::exists(d.path / "out"));
  // An existing output is never replaced.
  fs::create_directories(d.path / "out");
  std::ofstream(d.path / "out" / "report.csv") << "keep\n";
  const auto r2 = sqbtest::run_cli(base + " --rules " + (d.path / "oihw.ini").string());
  CHECK(r2.status == 2);
  CHECK(r2.output.find("exists: choose another --out folder") != std::string::npos);
  CHECK(sqbtest::slurp(d.path / "out" / "report.csv") == "keep\n");
}
