// sqbench export: what it writes reads back (with sqbench's own reader and, when present, NumPy) and decodes
// to exactly the reconstruction the library computes; phi_log's sign bits and exponents rebuild it too.

#include <catch2/catch.hpp>

#include <cmath>

#include "cli_helpers.hpp"
#include "export_cmd.hpp"
#include "helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

using namespace sqbtest;

namespace {

// A 6 x 40 weight-like tensor written as a float32 [6, 2, 4, 5] "conv" weight.
fs::path write_input(const fs::path& dir) {
  const std::vector<float> v = sqbtest::draw("laplace scale=0.05", 240, 3);
  const std::vector<std::size_t> shape = {6, 2, 4, 5};
  sqb::npy::write(dir / "w.npy", shape, v);
  return dir / "w.npy";
}

std::vector<std::string> registry_names() {
  std::vector<std::string> names;
  for (const auto& e : sqb::quantizer_registry())
    names.emplace_back(e.name);
  return names;
}

}  // namespace

TEST_CASE("export writes codes, codebooks and side values that decode to the library's reconstruction",
          "[export]") {
  const std::string name = GENERATE(from_range(registry_names()));
  TempDir dir;
  const fs::path input = write_input(dir.path);
  sqbench::ExportOptions opt;
  opt.spec = name;
  opt.input = input;
  opt.out = dir.path / "out";
  opt.k = 16;
  opt.granularity = "group:16";
  opt.layout = "oihw";
  try {
    sqbench::export_quantized(opt);
  } catch (const sqb::NotApplicable& e) {
    WARN("skipped " << name << " at K = 16: " << e.what());
    return;
  }
  const auto codes = sqb::npy::read(opt.out / "codes.npy");
  const auto books = sqb::npy::read(opt.out / "codebooks.npy");
  const auto blocks = sqb::npy::read(opt.out / "blocks.npy");
  const auto decoded = sqb::npy::read(opt.out / "decoded.npy");
  REQUIRE(codes.shape == std::vector<std::size_t>{6, 40});
  CHECK(codes.format.dtype == sqb::npy::DType::uint8);
  REQUIRE(books.shape == std::vector<std::size_t>{18, 16});  // 6 rows x ceil(40 / 16) groups
  REQUIRE(blocks.shape == std::vector<std::size_t>{18, 2});
  // Decode from the files alone.
  std::vector<float> mine(240);
  for (std::size_t b = 0; b < 18; ++b) {
    const auto off = static_cast<std::size_t>(blocks.ints[2 * b]),
               len = static_cast<std::size_t>(blocks.ints[2 * b + 1]);
    for (std::size_t i = off; i < off + len; ++i)
      mine[i] = books.values[b * 16 + static_cast<std::size_t>(codes.ints[i])];
  }
  CHECK(mine == decoded.values);
  // ... which is what the library computes for the same tensor.
  const sqb::npy::Array in = sqb::npy::read(input);
  const sqb::Tensor t = sqb::npy::to_tensor(in.shape, in.values, sqb::npy::Layout::oihw, "w.npy");
  const sqb::Quantized r = sqb::quantize(t, name, 16, {.granularity = sqb::Granularity::parse("group:16")});
  CHECK(r.decoded == decoded.values);
  // Side values: exactly what the storage accounting charges.
  if (r.side.per_block > 0) {
    const auto side = sqb::npy::read(opt.out / "side.npy");
    CHECK(side.shape == std::vector<std::size_t>{18, r.side.per_block});
  } else {
    CHECK_FALSE(fs::exists(opt.out / "side.npy"));
  }
  CHECK(slurp(opt.out / "manifest.json").find("\"quantizer\": \"" + name + "\"") != std::string::npos);
}

TEST_CASE("export of phi_log: sign bits and exponents rebuild the reconstruction", "[export][phi_log]") {
  const std::string spec = GENERATE("phi_log", "phi_log base=2 zero=1", "phi_log cluster=4 round=nearest");
  TempDir dir;
  const fs::path input = write_input(dir.path);
  sqbench::ExportOptions opt{spec, input, dir.path / "out", 16, "channel", "oihw", 0};
  sqbench::export_quantized(opt);
  const auto signs = sqb::npy::read(opt.out / "signs.npy");
  const auto exps = sqb::npy::read(opt.out / "exponents.npy");
  const auto side = sqb::npy::read(opt.out / "side.npy");
  const auto decoded = sqb::npy::read(opt.out / "decoded.npy");
  CHECK(signs.format.dtype == sqb::npy::DType::uint8);
  CHECK(exps.format.dtype == sqb::npy::DType::int16);
  const double base = spec.find("base=2") != std::string::npos ? 2.0 : (1.0 + std::sqrt(5.0)) / 2.0;
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < 240; ++i) {
    const double s = side.values[i / 40];  // one scale per channel (row of 40)
    float w = 0.0f;
    if (exps.ints[i] != -32768) {
      w = static_cast<float>(s * std::pow(base, static_cast<double>(exps.ints[i])));
      if (signs.ints[i] == 0) w = -w;
    }
    mismatches += w != decoded.values[i];
    CHECK((signs.ints[i] == 1) == (decoded.values[i] >= 0.0f));
  }
  CHECK(mismatches == 0);
}

TEST_CASE("NumPy decodes an export the same way", "[export][numpy]") {
  if (std::system("/usr/bin/python3 -c 'import numpy' > /dev/null 2>&1") != 0) {
    WARN("SKIPPED: /usr/bin/python3 with numpy is not installed (scripts/setup installs python3-numpy)");
    return;
  }
  TempDir dir;
  const fs::path input = write_input(dir.path);
  sqbench::ExportOptions opt{"kmeans init=quantile", input, dir.path / "out", 16, "group:16", "oihw", 0};
  sqbench::export_quantized(opt);
  const std::string script =
      "import json, numpy as np, sys\n"
      "d = sys.argv[1]\n"
      "c = np.load(d + '/codes.npy'); cb = np.load(d + '/codebooks.npy'); b = np.load(d + '/blocks.npy')\n"
      "flat = c.reshape(-1); out = np.empty(flat.size, np.float32)\n"
      "for i, (o, n) in enumerate(b): out[o:o + n] = cb[i][flat[o:o + n]]\n"
      "m = json.load(open(d + '/manifest.json'))\n"
      "assert np.array_equal(out.reshape(m['input_shape']), np.load(d + '/decoded.npy'))\n";
  std::ofstream(dir.path / "check.py") << script;
  const std::string cmd = "/usr/bin/python3 " + (dir.path / "check.py").string() + " " + opt.out.string();
  CHECK(std::system(cmd.c_str()) == 0);
}

TEST_CASE("sqbench export: bad input exits 2 with a message", "[export][cli]") {
  TempDir dir;
  const fs::path input = write_input(dir.path);
  const std::string base = "export phi_log --input " + input.string() + " --out " + (dir.path / "o").string();
  CHECK(run_cli(base).output.find("exactly one of --bits and --k") != std::string::npos);
  CHECK(run_cli(base + " --bits 4 --k 16").status == 2);
  CHECK(run_cli(base + " --bits 17").output.find("--bits '17'") != std::string::npos);
  CHECK(run_cli(base + " --bits 4 --layout nchw").output.find("rows|oihw|hwio") != std::string::npos);
  CHECK(run_cli("export phi_lg --input " + input.string() + " --out x --bits 4")
            .output.find("unknown quantizer") != std::string::npos);
  CHECK(run_cli("export phi_log --input /nonexistent.npy --out x --bits 4").status == 2);
  const std::vector<std::size_t> shape = {4};
  sqb::npy::write(dir.path / "codes.npy", shape, std::vector<std::int32_t>{1, 2, 3, 4},
                  {sqb::npy::DType::int32});
  const Outcome ints =
      run_cli("export phi_log --input " + (dir.path / "codes.npy").string() + " --out x --bits 4");
  CHECK(ints.status == 2);
  CHECK(ints.output.find("int32") != std::string::npos);
  const Outcome ok = run_cli(base + " --bits 4 --layout oihw --granularity channel");
  CHECK(ok.status == 0);
  CHECK(ok.output.find("exported 9 files") != std::string::npos);
}
