// Channel and group granularity tensors are quantized in slabs of whole rows (each slab's block designs held,
// not the whole tensor's): the output files and report must be byte for byte those of one pipeline call on
// the whole tensor, for every registered quantizer, with and without importance, with --pack.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>

#include "cli_helpers.hpp"
#include "sqb/checkpoint.hpp"
#include "sqb/error.hpp"
#include "sqb/registry.hpp"
#include "sqb/safetensors.hpp"

namespace fs = std::filesystem;
namespace st = sqb::safetensors;
using sqbtest::TempDir;

namespace {

std::vector<float> wave(std::size_t n, float scale, int seed) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = scale * std::sin(static_cast<float>(i * 7 + static_cast<std::size_t>(seed)) * 0.37f) *
               std::cos(static_cast<float>(i) * 0.011f) +
           0.01f * static_cast<float>(seed);
  return v;
}

std::vector<unsigned char> f32(const std::vector<float>& v) {
  std::vector<unsigned char> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// BF16 by truncation: any BF16 value is a valid input.
std::vector<unsigned char> bf16(const std::vector<float>& v) {
  std::vector<unsigned char> b(v.size() * 2);
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint32_t u;
    std::memcpy(&u, &v[i], 4);
    b[2 * i] = static_cast<unsigned char>((u >> 16) & 0xff);
    b[2 * i + 1] = static_cast<unsigned char>(u >> 24);
  }
  return b;
}

// Row lengths chosen so the measure chunks (2^15 elements of whole blocks) straddle rows at group:G and
// slabs, and one row longer than a chunk (a channel block split into pieces).
struct Shape {
  const char* name;
  std::size_t rows, cols;
  bool bf;
};
constexpr Shape kShapes[] = {
    {"mlp.weight", 23, 3001, true}, {"wide.weight", 3, 33001, false}, {"small.weight", 5, 7, false}};

void make_inputs(const TempDir& d) {
  std::vector<st::Blob> weights, importance;
  std::vector<std::vector<unsigned char>> bytes;  // what the blobs point into
  bytes.reserve(16);
  int seed = 1;
  for (const Shape& s : kShapes) {
    const auto v = wave(s.rows * s.cols, 0.5f, seed++);
    bytes.push_back(s.bf ? bf16(v) : f32(v));
    weights.push_back({{s.name, s.bf ? st::DType::BF16 : st::DType::F32, {s.rows, s.cols}}, bytes.back()});
    // Values of exponents -20..20, whose sums in double round (so another summation order shows), every fifth
    // column weightless.
    std::vector<float> imp(s.cols);
    for (std::size_t c = 0; c < s.cols; ++c)
      imp[c] = c % 5 == 3 ? 0.0f
                          : std::ldexp(1.0f + std::fmod(static_cast<float>(c) * 0.61803f, 1.0f),
                                       static_cast<int>(c % 41) - 20);
    bytes.push_back(f32(imp));
    importance.push_back({{s.name, st::DType::F32, {s.cols}}, bytes.back()});
  }
  const auto bias = wave(11, 1.0f, 9);
  bytes.push_back(f32(bias));
  weights.push_back({{"mlp.bias", st::DType::F32, {11}}, bytes.back()});
  st::write_file(d.path / "m.safetensors", weights, {{"format", "pt"}});
  st::write_file(d.path / "imp.safetensors", importance);
}

// report.csv without its time columns (the last three).
std::string report_without_times(const fs::path& p) {
  std::istringstream in(sqbtest::slurp(p));
  std::string line, out;
  while (std::getline(in, line)) {
    for (int i = 0; i < 3; ++i)
      line.resize(line.rfind(','));
    out += line + "\n";
  }
  return out;
}

struct Outcome {
  bool ok = false;
  std::string error, model, packed, report, manifest;
};

Outcome run(const TempDir& d, const std::string& out, const std::string& spec, const std::string& gran,
            bool importance, std::size_t slab, int threads) {
  sqb::CheckpointOptions o;
  o.input = d.path / "m.safetensors";
  o.out = d.path / out;
  o.spec = spec;
  o.k = 16;
  o.granularity = gran;
  if (importance) o.importance = d.path / "imp.safetensors";
  o.pack = true;
  o.opt_ratio = true;  // its optimum, too, is computed slab-wise
  o.coded = true;      // and coded_bits from the whole tensor's codes
  o.threads = threads;
  o.seed = 7;
  o.slab_elements = slab;
  o.command = "test";
  Outcome r;
  try {
    sqb::quantize_checkpoint(o);
  } catch (const sqb::Error& e) {
    r.error = e.what();
    return r;
  }
  r.ok = true;
  r.model = sqbtest::slurp(o.out / "model.safetensors");
  r.packed = sqbtest::slurp(o.out / "packed.safetensors");
  r.report = report_without_times(o.out / "report.csv");
  r.manifest = sqbtest::slurp(o.out / "manifest.json");
  return r;
}

}  // namespace

TEST_CASE("sqbench quantize: slabs of rows give the whole-tensor call's files byte for byte, every quantizer",
          "[quantize-cmd][checkpoint][slabs]") {
  const TempDir d;
  make_inputs(d);
  constexpr std::size_t whole = std::numeric_limits<std::size_t>::max();
  int compared = 0, run_ok = 0;
  for (const sqb::QuantizerEntry& e : sqb::quantizer_registry()) {
    const std::string spec(e.name);
    for (const char* gran : {"channel", "group:64", "group:100", "tensor"}) {
      for (const bool importance : {false, true}) {
        std::string tag = spec + "-" + gran + (importance ? "-imp" : "");
        std::replace(tag.begin(), tag.end(), ':', '_');
        INFO(spec << " " << gran << (importance ? " with importance" : ""));
        const Outcome a = run(d, tag + "-whole", spec, gran, importance, whole, 1);
        // One row per slab, a few rows per slab (not dividing the row count), the default.
        for (const std::size_t slab : {std::size_t{1}, std::size_t{7 * 3001}, std::size_t{0}}) {
          INFO("slab_elements " << slab);
          const Outcome b = run(d, tag + "-" + std::to_string(slab), spec, gran, importance, slab, 2);
          REQUIRE(a.ok == b.ok);
          if (!a.ok) {
            CHECK(a.error.substr(a.error.find(':')) == b.error.substr(b.error.find(':')));
            continue;
          }
          CHECK(a.model == b.model);
          CHECK(a.packed == b.packed);
          CHECK(a.report == b.report);
          CHECK(a.manifest == b.manifest);
          ++compared;
        }
        run_ok += a.ok;
        fs::remove_all(d.path / (tag + "-whole"));
        for (const char* s : {"-1", "-21007", "-0"})
          fs::remove_all(d.path / (tag + s));
      }
    }
  }
  // Most quantizers serve K = 16: the comparison ran for them (a test that cannot fail otherwise).
  CHECK(run_ok >= 8 * static_cast<int>(sqb::quantizer_registry().size()) / 2);
  CHECK(compared == 3 * run_ok);
}

TEST_CASE("sqbench quantize: a slabbed tensor's non-finite value is named by its index in the whole tensor",
          "[quantize-cmd][checkpoint][slabs]") {
  const TempDir d;
  auto v = wave(40 * 30, 1.0f, 1);
  v[33 * 30 + 4] = std::numeric_limits<float>::quiet_NaN();
  const auto b = f32(v);
  st::write_file(d.path / "m.safetensors",
                 std::vector<st::Blob>{{{"x.weight", st::DType::F32, {40, 30}}, b}});
  std::string messages[2];
  int i = 0;
  for (const std::size_t slab : {std::numeric_limits<std::size_t>::max(), std::size_t{1}}) {
    sqb::CheckpointOptions o;
    o.input = d.path / "m.safetensors";
    o.out = d.path / "o";
    o.out += std::to_string(i);
    o.spec = "uniform";
    o.k = 4;
    o.granularity = "group:8";
    o.slab_elements = slab;
    try {
      sqb::quantize_checkpoint(o);
      FAIL("a NaN was accepted");
    } catch (const sqb::Error& e) {
      messages[i] = e.what();
    }
    CHECK_FALSE(fs::exists(o.out / "model.safetensors"));
    ++i;
  }
  CHECK(messages[0] == messages[1]);
  CHECK(messages[1].find("x.weight") != std::string::npos);
}
