// sqbench export: what it writes reads back (with sqbench's own reader and, when present, NumPy) and decodes
// to exactly the reconstruction the library computes; phi_log's sign bits and exponents rebuild it too.

#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "cli_helpers.hpp"
#include "export_cmd.hpp"
#include "helpers.hpp"
#include "requirements.hpp"
#include "sqb/coding.hpp"
#include "sqb/error.hpp"
#include "sqb/layout.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/safetensors.hpp"

using namespace sqbtest;

namespace {

// A 6 x 40 weight-like tensor written as a float32 [6, 2, 4, 5] "conv" weight.
fs::path write_input(const fs::path& dir) {
  const std::vector<float> v = sqbtest::draw("laplace scale=0.05", 240, 3);
  const std::vector<std::size_t> shape = {6, 2, 4, 5};
  sqb::npy::write(dir / "w.npy", shape, v);
  return dir / "w.npy";
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
  const sqb::Tensor t = sqb::to_tensor(in.shape, in.values, sqb::Layout::oihw, "w.npy");
  const sqb::Quantized r = sqb::quantize(t, name, 16, {.granularity = sqb::Granularity::parse("group:16")});
  CHECK(sqbtest::vec(r.decoded) == decoded.values);
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
  sqbtest::require_python("numpy");
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
  const std::string cmd =
      std::string(sqbtest::kPython) + " " + (dir.path / "check.py").string() + " " + opt.out.string();
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
  CHECK(run_cli(base + " --bits 4 --layout oihw").output.find("removed the") == std::string::npos);
}

namespace {

// A TensorFlow-style kernel [kh, kw, in, out] = (3, 3, 4, 6), written as float32.
fs::path write_hwio(const fs::path& dir) {
  const std::vector<float> v = sqbtest::draw("gaussian std=0.1", 216, 9);
  sqb::npy::write(dir / "k.npy", std::vector<std::size_t>{3, 3, 4, 6}, v);
  return dir / "k.npy";
}

}  // namespace

TEST_CASE("export: decoded.npy comes in the input's own shape and order", "[export]") {
  TempDir dir;
  const fs::path input = write_hwio(dir.path);
  sqbench::ExportOptions opt{"kmeans", input, dir.path / "out", 8, "channel", "hwio", 0};
  sqbench::export_quantized(opt);
  const auto decoded = sqb::npy::read(opt.out / "decoded.npy");
  const auto codes = sqb::npy::read(opt.out / "codes.npy");
  CHECK(decoded.shape == std::vector<std::size_t>{3, 3, 4, 6});
  CHECK(codes.shape == std::vector<std::size_t>{6, 36});  // codes stay as laid out: rows = out
  const sqb::npy::Array in = sqb::npy::read(input);
  const sqb::Tensor t = sqb::to_tensor(in.shape, in.values, sqb::Layout::hwio, "k");
  const sqb::Quantized r = sqb::quantize(t, "kmeans", 8, {.granularity = sqb::Granularity::parse("channel")});
  CHECK(decoded.values == sqb::from_tensor(in.shape, r.decoded, sqb::Layout::hwio));
  // Element by element against the input: each reconstruction is in its own input position.
  double err = 0;
  for (std::size_t i = 0; i < in.values.size(); ++i) {
    const double e = static_cast<double>(in.values[i]) - static_cast<double>(decoded.values[i]);
    err += e * e;
  }
  CHECK_THAT(err / static_cast<double>(in.values.size()), Catch::WithinRel(r.metrics.mse, 1e-12));
  sqbtest::require_python("numpy");
  // The manifest's numpy recipe turns the laid-out reconstruction into decoded.npy.
  const std::string script =
      "import json, numpy as np, sys\n"
      "d = sys.argv[1]; m = json.load(open(d + '/manifest.json'))\n"
      "c = np.load(d + '/codes.npy'); cb = np.load(d + '/codebooks.npy')\n"
      "a = cb[np.arange(c.shape[0])[:, None], c]\n"
      "input_shape = tuple(m['input_shape'])\n"
      "expr = m['tensor_layout']['to_input_shape'].split(': ', 1)[1]\n"
      "assert np.array_equal(eval(expr), np.load(d + '/decoded.npy')), expr\n";
  dir.write("recipe.py", script);
  const Outcome o = sqbtest::shell(std::string(sqbtest::kPython) + " " + (dir.path / "recipe.py").string() +
                                   " " + opt.out.string() + " 2>&1");
  INFO(o.output);
  CHECK(o.status == 0);
}

TEST_CASE("export --pack: a numpy unpacker written from the manifest's description reads the codes",
          "[export][numpy]") {
  sqbtest::require_python("numpy");
  TempDir dir;
  const fs::path input = write_input(dir.path);
  // The unpacker follows the words of the manifest's "pack" entry (bits [i*b, (i+1)*b) of the stream, counted
  // from the least significant bit of byte 0 upward, the code's least significant bit first), with its own
  // loops rather than the manifest's one-liner, which it then checks too.
  const std::string script = R"PY(
import json, sys
import numpy as np
packed_dir, plain_dir = sys.argv[1], sys.argv[2]
m = json.load(open(packed_dir + "/manifest.json"))
b, n = m["pack"]["bits"], m["pack"]["count"]
stream = np.fromfile(packed_dir + "/codes.bits", dtype=np.uint8)
assert len(stream) == (n * b + 7) // 8, (len(stream), n, b)
codes = np.zeros(n, dtype=np.uint32)
for i in range(n):
    for j in range(b):
        bit = i * b + j
        codes[i] |= ((int(stream[bit // 8]) >> (bit % 8)) & 1) << j
want = np.load(plain_dir + "/codes.npy").reshape(-1)
assert np.array_equal(codes, want), "unpacked codes differ"
bits = np.unpackbits(stream, bitorder="little")[: n * b].reshape(n, b)
assert np.array_equal((bits.astype(np.uint32) << np.arange(b)).sum(axis=1), want)
rows, cols = m["tensor_layout"]["rows"], m["tensor_layout"]["cols"]
assert rows * cols == n
print("ok", b)
)PY";
  dir.write("unpack.py", script);
  for (const std::size_t k : {2, 8, 16, 128, 256, 2048, 65536}) {
    INFO("K = " << k);
    const fs::path packed = dir.path / ("packed" + std::to_string(k)),
                   plain = dir.path / ("plain" + std::to_string(k));
    sqbench::ExportOptions opt{"uniform", input, packed, k, "channel", "oihw", 0};
    opt.pack = true;
    sqbench::export_quantized(opt);
    CHECK_FALSE(fs::exists(packed / "codes.npy"));
    opt.pack = false;
    opt.out = plain;
    sqbench::export_quantized(opt);
    const Outcome o = sqbtest::shell(std::string(sqbtest::kPython) + " " + (dir.path / "unpack.py").string() +
                                     " " + packed.string() + " " + plain.string() + " 2>&1");
    INFO(o.output);
    CHECK(o.status == 0);
    CHECK(fs::file_size(packed / "codes.bits") == (240 * sqb::index_bits(k) + 7) / 8);
  }
}

TEST_CASE("export --coded: codes.rans decodes to the codes and is what coded_bits measures",
          "[export][rans]") {
  TempDir dir;
  const fs::path input = write_input(dir.path);
  for (const std::string spec : {"kmeans", "nf4", "lloyd_max", "uniform symmetric=1"}) {
    INFO(spec);
    sqbench::ExportOptions opt{spec, input, dir.path / "coded", 16, "channel", "oihw", 0};
    opt.coded = true;
    const sqbench::ExportResult r = sqbench::export_quantized(opt);
    opt.coded = false;
    opt.out = dir.path / "plain";
    sqbench::export_quantized(opt);
    const std::string bytes = slurp(dir.path / "coded" / "codes.rans");
    const std::vector<std::uint16_t> codes =
        sqb::rans_decode(std::vector<std::uint8_t>(bytes.begin(), bytes.end()), 240);
    const auto plain = sqb::npy::read(dir.path / "plain" / "codes.npy");
    REQUIRE(codes.size() == plain.ints.size());
    CHECK(std::equal(codes.begin(), codes.end(), plain.ints.begin()));
    const auto side = sqb::npy::read(dir.path / "plain" / "side.npy");
    const double side_bits = side.values.empty() ? 0.0 : 32.0 * static_cast<double>(side.values.size());
    CHECK_THAT(r.coded_bits,
               Catch::WithinRel((8.0 * static_cast<double>(bytes.size()) + side_bits) / 240, 1e-15));
    CHECK(slurp(dir.path / "coded" / "manifest.json").find("\"rans_format\": ") != std::string::npos);
  }
}

TEST_CASE("export --coded of phi_log: sign bits and rANS-coded exponents rebuild the reconstruction",
          "[export][phi_log][rans]") {
  const std::string spec = GENERATE("phi_log", "phi_log base=2 zero=1", "phi_log cluster=4 round=nearest",
                                    "phi_log cluster=3 zero=1", "phi_log scale=none e_min=-8 e_max=-1");
  INFO(spec);
  TempDir dir;
  const fs::path input = write_input(dir.path);  // 6 rows of 40
  sqbench::ExportOptions opt{spec, input, dir.path / "out", 16, "channel", "oihw", 0};
  opt.coded = true;
  const sqbench::ExportResult r = sqbench::export_quantized(opt);
  const auto decoded = sqb::npy::read(opt.out / "decoded.npy");
  const std::string manifest = slurp(opt.out / "manifest.json");
  // base, e_min and M as the manifest states them.
  const auto number_after = [&](const std::string& key) {
    const auto at = manifest.find(key);
    REQUIRE(at != std::string::npos);
    return std::stod(manifest.substr(at + key.size()));
  };
  const double base = number_after("base = ");
  const auto e_min = static_cast<long>(number_after("e_min = "));
  const auto m = static_cast<std::size_t>(number_after("M = "));
  const bool zero = spec.find("zero=1") != std::string::npos;
  const std::size_t cluster = spec.find("cluster=4") != std::string::npos   ? 4
                              : spec.find("cluster=3") != std::string::npos ? 3
                                                                            : 1;
  const auto bytes_of = [&](const std::string& name) {
    const std::string s = slurp(opt.out / name);
    return std::vector<std::uint8_t>(s.begin(), s.end());
  };
  const std::vector<std::uint16_t> exps = sqb::rans_decode(bytes_of("exponents.rans"), 240);
  std::vector<std::uint16_t> zeros(240, 0);
  if (cluster > 1 && zero) zeros = sqb::rans_decode(bytes_of("zeros.rans"), 240);
  const std::vector<std::uint8_t> sign_bytes = bytes_of("signs.bits");
  std::vector<float> scale(6, 1.0f);
  if (spec.find("scale=none") == std::string::npos) scale = sqb::npy::read(opt.out / "side.npy").values;
  std::size_t next_sign = 0, next_exp = 0;
  const auto sign = [&] {
    const std::size_t bit = next_sign++;
    REQUIRE(bit / 8 < sign_bytes.size());
    return (sign_bytes[bit / 8] >> (bit % 8)) & 1;
  };
  const auto level = [&](std::size_t row, std::size_t j) {
    const float w =
        static_cast<float>(scale[row] * std::pow(base, static_cast<double>(e_min + static_cast<long>(j))));
    return sign() ? w : -w;
  };
  std::vector<float> rebuilt(240);
  for (std::size_t row = 0; row < 6; ++row) {
    for (std::size_t g = 0; g < 40; g += cluster) {
      const std::size_t len = std::min(cluster, 40 - g);
      if (cluster == 1) {
        const std::size_t j = exps.at(next_exp++);
        rebuilt[row * 40 + g] = zero && j == m ? 0.0f : level(row, j);
        continue;
      }
      bool any = false;
      std::size_t j = 0;
      for (std::size_t i = row * 40 + g; i < row * 40 + g + len; ++i) {
        if (zeros[i]) {
          rebuilt[i] = 0.0f;
          continue;
        }
        if (!any) j = exps.at(next_exp++);
        any = true;
        rebuilt[i] = level(row, j);
      }
    }
  }
  CHECK(next_exp == exps.size());
  CHECK((next_sign + 7) / 8 == sign_bytes.size());
  CHECK(rebuilt == decoded.values);
  // exp_coded_bits is the size of these files (and the scales), per element.
  std::size_t stream_bytes = sign_bytes.size() + fs::file_size(opt.out / "exponents.rans");
  if (fs::exists(opt.out / "zeros.rans")) stream_bytes += fs::file_size(opt.out / "zeros.rans");
  const double scales = spec.find("scale=none") == std::string::npos ? 6 * 32.0 : 0.0;
  const auto at = manifest.find("\"exp_coded_bits\": ");
  REQUIRE(at != std::string::npos);
  CHECK_THAT(std::stod(manifest.substr(at + 18)),
             Catch::WithinRel((8.0 * static_cast<double>(stream_bytes) + scales) / 240, 1e-15));
  (void)r;
}

TEST_CASE("export: a folder holds one export, another folder's files are never mixed in", "[export][cli]") {
  TempDir dir;
  const fs::path input = write_input(dir.path);
  const fs::path out = dir.path / "out";
  const std::string base = " --input " + input.string() + " --layout oihw --bits 4 --out " + out.string();
  REQUIRE(run_cli("export phi_log" + base + " --coded").status == 0);
  CHECK(fs::exists(out / "signs.npy"));
  CHECK(fs::exists(out / "exponents.rans"));
  // Another strategy into the same folder: phi_log's own files go.
  const Outcome again = run_cli("export kmeans" + base);
  INFO(again.output);
  CHECK(again.status == 0);
  CHECK(again.output.find("removed the 5 files of the earlier export there") != std::string::npos);
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(out))
    names.insert(e.path().filename().string());
  CHECK(names == std::set<std::string>{"blocks.npy", "codebooks.npy", "codes.npy", "decoded.npy",
                                       "manifest.json", "side.npy", "thresholds.npy"});
  // A folder sqbench export did not write is refused, untouched.
  fs::create_directories(dir.path / "mine");
  dir.write("mine/notes.txt", "keep me");
  const Outcome refused =
      run_cli("export kmeans --input " + input.string() + " --bits 4 --out " + (dir.path / "mine").string());
  CHECK(refused.status == 2);
  CHECK(
      refused.output.find("is not empty and holds no earlier export (manifest.json), so writing there would "
                          "mix this export with other files (notes.txt); give an empty or new folder") !=
      std::string::npos);
  CHECK(fs::exists(dir.path / "mine" / "notes.txt"));
  CHECK_FALSE(fs::exists(dir.path / "mine" / "manifest.json"));
  // An empty folder is fine, and is named with one '/' however many were typed.
  fs::create_directories(dir.path / "empty");
  const Outcome empty = run_cli("export kmeans --input " + input.string() + " --bits 4 --out " +
                                (dir.path / "empty").string() + "//");
  CHECK(empty.status == 0);
  CHECK(empty.output.find("files to " + (dir.path / "empty").string() + "/ (mse ") != std::string::npos);
}

TEST_CASE("export of a safetensors tensor equals the export of the same tensor as float32 .npy",
          "[export][safetensors]") {
  TempDir dir;
  const fs::path data = fs::path(SQB_SOURCE_DIR) / "tests" / "data" / "tiny_model.safetensors";
  const Outcome list = run_cli("export --list-tensors --input " + data.string());
  CHECK(list.status == 0);
  CHECK(list.output.find("layers.0.mlp.up_proj.weight  BF16  (96, 64)") != std::string::npos);
  CHECK(list.output.find("layers.0.input_layernorm.weight  F32  (64,)") != std::string::npos);
  for (const std::string tensor :
       {"layers.0.mlp.up_proj.weight", "conv.weight", "layers.0.self_attn.q_proj.weight"}) {
    INFO(tensor);
    const sqb::safetensors::Array a = sqb::safetensors::Checkpoint(data).read(tensor);
    sqb::npy::write(dir.path / "t.npy", a.shape, a.values);
    sqbench::ExportOptions st{"kmeans", data, dir.path / "st", 16, "channel", "auto", 0};
    st.tensor = tensor;
    sqbench::export_quantized(st);
    sqbench::ExportOptions np{"kmeans", dir.path / "t.npy", dir.path / "np", 16, "channel", "oihw", 0};
    sqbench::export_quantized(np);
    for (const char* f : {"codes.npy", "codebooks.npy", "side.npy", "decoded.npy", "blocks.npy"}) {
      INFO(f);
      CHECK(slurp(dir.path / "st" / f) == slurp(dir.path / "np" / f));
    }
    CHECK(slurp(dir.path / "st" / "manifest.json").find("\"layout\": \"oihw\"") != std::string::npos);
  }
  const std::string base = "export kmeans --bits 4 --out " + (dir.path / "x").string() + " --input ";
  Outcome o = run_cli(base + data.string());
  CHECK(o.status == 2);
  CHECK(o.output.find("is a safetensors checkpoint: give --tensor NAME") != std::string::npos);
  // The command the message suggests works as written (it used to lack --input and fail).
  const std::string suggested = "sqbench export --list-tensors --input " + data.string();
  REQUIRE(o.output.find("(" + suggested + " lists them)") != std::string::npos);
  CHECK(run_cli(suggested.substr(8)).output == list.output);
  // The checkpoint as the one argument lists the same.
  CHECK(run_cli("export --list-tensors " + data.string()).output == list.output);
  o = run_cli("export --list-tensors");
  CHECK(o.status == 2);
  CHECK(o.output.find("sqbench export --list-tensors: give one checkpoint, --input FILE.safetensors") !=
        std::string::npos);
  o = run_cli(base + (dir.path / "t.npy").string() + " --tensor conv.weight");
  CHECK(o.status == 2);
  CHECK(o.output.find("--tensor applies to a safetensors input") != std::string::npos);
  o = run_cli(base + data.string() + " --tensor conv.bias");
  CHECK(o.status == 2);
  CHECK(o.output.find("no tensor \"conv.bias\"") != std::string::npos);
  o = run_cli(base + data.string() + " --tensor layers.0.mlp.up_proj.weight --layout nchw");
  CHECK(o.status == 2);
  CHECK(o.output.find("--layout: 'nchw' is not a layout; valid layouts: rows|oihw|hwio|auto") !=
        std::string::npos);
}

TEST_CASE("docs/export.md's export walkthrough runs as written", "[export][numpy][readme]") {
  sqbtest::require_python("numpy");
  const std::string readme = slurp(fs::path(SQB_SOURCE_DIR) / "docs" / "export.md");
  const auto mark = readme.find("<!-- tested: export unpack -->");
  REQUIRE(mark != std::string::npos);
  const auto begin = readme.find("```python\n", mark) + 10;
  const auto end = readme.find("```", begin);
  const std::string script = readme.substr(begin, end - begin);
  const auto prints = readme.find("prints `", end) + 8;
  const std::string expected = readme.substr(prints, readme.find('`', prints) - prints);
  TempDir dir;
  // The export the README shows, from the shipped checkpoint, into the folder the snippet reads.
  const fs::path data = fs::path(SQB_SOURCE_DIR) / "tests" / "data" / "tiny_model.safetensors";
  const Outcome e =
      run_cli("export nf4 --input " + data.string() +
              " --tensor layers.0.mlp.up_proj.weight --layout auto --bits 4 --granularity group:64 "
              "--pack --out " +
              (dir.path / "up_nf4").string());
  INFO(e.output);
  REQUIRE(e.status == 0);
  dir.write("unpack.py", script);
  const Outcome o =
      sqbtest::shell("cd " + dir.path.string() + " && " + std::string(sqbtest::kPython) + " unpack.py 2>&1");
  INFO(script << "\n---\n" << o.output);
  CHECK(o.status == 0);
  CHECK(o.output == expected + "\n");
}
