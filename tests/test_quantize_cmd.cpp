// `sqbench quantize`: the same output for every thread count, copies byte for byte, reconstructions in the
// stored dtype, and bad input refused with exit 2 before anything is written.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "cli_helpers.hpp"
#include "csv.hpp"
#include "sqb/checkpoint.hpp"
#include "sqb/error.hpp"
#include "sqb/layout.hpp"
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
    std::string folder = "o";
    folder += t;
    const auto r =
        sqbtest::run_cli("quantize --input " + in.string() + " --out " + (d.path / folder).string() +
                         " --spec kmeans --bits 3 --granularity group:8 --rules " +
                         (d.path / "rules.ini").string() + " --threads " + t);
    INFO(r.output);
    REQUIRE(r.status == 0);
  }
  CHECK(sqbtest::slurp(d.path / "o1" / "model.safetensors") ==
        sqbtest::slurp(d.path / "o2" / "model.safetensors"));
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

TEST_CASE("sqbench quantize: coded_bits is measured with --coded only, equal to the pipeline's rANS pass",
          "[quantize-cmd][cli]") {
  const TempDir d;
  const fs::path in = make_checkpoint(d);
  d.write("rules.ini", "[layer.weight]\nlayout = oihw\n[dense/kernel]\nlayout = hwio\n");
  const std::string base = "quantize --input " + in.string() +
                           " --spec kmeans --bits 3 --granularity group:8 " + "--rules " +
                           (d.path / "rules.ini").string() + " --out ";
  for (const char* folder : {"plain", "coded"}) {
    const auto r = sqbtest::run_cli(base + (d.path / folder).string() +
                                    (std::string(folder) == "coded" ? " --coded" : ""));
    INFO(r.output);
    REQUIRE(r.status == 0);
  }
  // The outputs are the same; only the report's coded_bits differs.
  CHECK(sqbtest::slurp(d.path / "plain" / "model.safetensors") ==
        sqbtest::slurp(d.path / "coded" / "model.safetensors"));
  const sqbench::CsvTable plain = sqbench::read_csv(d.path / "plain" / "report.csv");
  const sqbench::CsvTable coded = sqbench::read_csv(d.path / "coded" / "report.csv");
  REQUIRE(plain.rows.size() == 3);  // two tensors and the totals
  REQUIRE(coded.rows.size() == 3);
  const std::size_t col = coded.column("coded_bits").value(), n_col = coded.column("n").value();
  const st::File src(in);
  sqb::QuantizeOptions qo;
  qo.granularity = sqb::Granularity::parse("group:8");
  qo.coded = true;
  double sum = 0, n = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(plain.rows[i][col].empty());
    const std::string& name = coded.rows[i][0];
    INFO(name);
    const st::Array a = src.read(name);
    const sqb::Tensor t = sqb::to_tensor(
        a.shape, a.values, name == "layer.weight" ? sqb::Layout::oihw : sqb::Layout::hwio, name);
    const sqb::Quantized q = sqb::quantize(t, "kmeans", 8, qo);
    REQUIRE(std::isfinite(q.metrics.coded_bits));
    CHECK(std::stod(coded.rows[i][col]) == Approx(q.metrics.coded_bits).epsilon(1e-12));
    sum += std::stod(coded.rows[i][n_col]) * q.metrics.coded_bits;
    n += std::stod(coded.rows[i][n_col]);
  }
  CHECK(plain.rows[2][col].empty());  // the totals stay empty when the tensors' are
  CHECK(std::stod(coded.rows[2][col]) == Approx(sum / n).epsilon(1e-12));
}

TEST_CASE("sqbench quantize: a non-finite weight in any stored dtype is refused before anything is written",
          "[quantize-cmd][cli]") {
  // The check reads the stored bytes (every exponent bit set) of each tensor to be quantized; the message
  // names the value's index as the weight is laid out (hwio: rows are the last axis).
  const TempDir d;
  const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity()};
  for (const st::DType dt : {st::DType::F32, st::DType::BF16, st::DType::F16, st::DType::F64}) {
    for (const float bad : bad_values) {
      for (const char* gran : {"tensor", "channel", "group:8"}) {
        std::vector<float> v(24 * 40, 0.25f);
        v[7 * 40 + 9] = bad;  // [24, 40] weight: row 7, col 9
        const fs::path in = d.path / "bad.safetensors";
        fs::remove(in);
        {
          st::Writer wr(
              in, {{"ok.weight", dt, {24, 40}}, {"x.weight", dt, {24, 40}}, {"k/kernel", dt, {40, 24}}});
          wr.write_values("ok.weight", std::vector<float>(24 * 40, 0.5f));
          wr.write_values("x.weight", v);
          std::vector<float> kv(40 * 24, 0.5f);
          wr.write_values("k/kernel", kv);
          wr.commit();
        }
        const fs::path out = d.path / "out";
        const auto r = sqbtest::run_cli("quantize --input " + in.string() + " --out " + out.string() +
                                        " --spec uniform --bits 3 --granularity " + gran);
        INFO(st::dtype_name(dt) << " " << bad << " " << gran << "\n" << r.output);
        CHECK(r.status == 2);
        CHECK(r.output.find("tensor \"x.weight\": data: 1 non-finite value") != std::string::npos);
        CHECK(r.output.find("index 289 (row 7, col 9)") != std::string::npos);
        CHECK_FALSE(fs::exists(out));
      }
    }
  }
  // A Keras kernel [in, out] = [40, 24] is laid out hwio: element (i, o) is row o, col i.
  std::vector<float> kv(40 * 24, 0.5f);
  kv[9 * 24 + 7] = std::numeric_limits<float>::quiet_NaN();
  const fs::path in = d.path / "kernel.safetensors";
  st::write_file(in,
                 std::vector<st::Blob>{{{"k/kernel", st::DType::F32, {40, 24}},
                                        {reinterpret_cast<const unsigned char*>(kv.data()), kv.size() * 4}}});
  const auto r = sqbtest::run_cli("quantize --input " + in.string() + " --out " + (d.path / "o2").string() +
                                  " --spec uniform --bits 3 --granularity channel");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK(r.output.find("the first is NaN at index 289 (row 7, col 9)") != std::string::npos);
  CHECK_FALSE(fs::exists(d.path / "o2"));
}

TEST_CASE("sqbench quantize: bad input exits 2 before writing anything",
          "[quantize-cmd][cli][bad-input-quantize]") {
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
      {"--spec kmeans --bits 2 --granularity group:8 --rules " + (d.path / "nomatch.ini").string(),
       "matches no"},
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
  CHECK(r.output.find("importance has 7 entries, the weight laid out oihw has 40 columns") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(d.path / "out"));
  // An existing output is never replaced.
  fs::create_directories(d.path / "out");
  std::ofstream(d.path / "out" / "report.csv") << "keep\n";
  const auto r2 = sqbtest::run_cli(base + " --rules " + (d.path / "oihw.ini").string());
  CHECK(r2.status == 2);
  CHECK(r2.output.find("exists: choose another --out folder") != std::string::npos);
  CHECK(sqbtest::slurp(d.path / "out" / "report.csv") == "keep\n");
}

namespace {

// A sharded checkpoint (two files and the index): BF16 and F32 weights, a Keras-style kernel laid out hwio,
// copied tensors; with an importance file for every quantized weight.
fs::path make_sharded_checkpoint(const TempDir& d) {
  const auto bf16 = [](std::size_t n, int seed) {
    const auto f = f32_bytes(n, 0.05f, seed);
    std::vector<unsigned char> b(n * 2);
    for (std::size_t i = 0; i < n; ++i) {  // the upper half of each float32: a valid BF16
      b[2 * i] = f[4 * i + 2];
      b[2 * i + 1] = f[4 * i + 3];
    }
    return b;
  };
  const auto a = bf16(48 * 64, 11), b = bf16(64 * 48, 12), c = f32_bytes(32 * 64, 0.1f, 13),
             k = f32_bytes(64 * 16, 1.0f, 14), bias = f32_bytes(48, 1.0f, 15);
  std::vector<unsigned char> ids(8 * 5, 1);
  st::write_file(d.path / "model-00001-of-00002.safetensors",
                 std::vector<st::Blob>{{{"l0.up.weight", st::DType::BF16, {48, 64}}, a},
                                       {{"l0.down.weight", st::DType::BF16, {64, 48}}, b},
                                       {{"l0.bias", st::DType::F32, {48}}, bias}},
                 {{"format", "pt"}});
  st::write_file(d.path / "model-00002-of-00002.safetensors",
                 std::vector<st::Blob>{{{"l1.q.weight", st::DType::F32, {32, 64}}, c},
                                       {{"dense/kernel", st::DType::F32, {64, 16}}, k},
                                       {{"ids", st::DType::I64, {5}}, ids}},
                 {{"format", "pt"}});
  d.write(
      "model.safetensors.index.json",
      R"({"metadata": {"total_size": 1}, "weight_map": {"l0.up.weight": "model-00001-of-00002.safetensors",
"l0.down.weight": "model-00001-of-00002.safetensors", "l0.bias": "model-00001-of-00002.safetensors",
"l1.q.weight": "model-00002-of-00002.safetensors", "dense/kernel": "model-00002-of-00002.safetensors",
"ids": "model-00002-of-00002.safetensors"}})");
  const auto vec = [](std::size_t n, float base) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i)
      v[i] = base + static_cast<float>((i * 37) % 11);
    return v;
  };
  const auto v64 = vec(64, 0.5f), v48 = vec(48, 1.5f);
  const auto bytes = [](const std::vector<float>& v) {
    return std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(v.data()), v.size() * 4);
  };
  st::write_file(d.path / "imp.safetensors",
                 std::vector<st::Blob>{{{"l0.up.weight", st::DType::F32, {64}}, bytes(v64)},
                                       {{"l0.down.weight", st::DType::F32, {48}}, bytes(v48)},
                                       {{"l1.q.weight", st::DType::F32, {64}}, bytes(v64)}});
  // dense/kernel ([in 64, out 16], laid out hwio: 16 rows of 64) without importance, by rule.
  d.write("rules.ini", "[dense/kernel]\nlayout = hwio\nimportance = off\nbits = 2\n[*weight]\n");
  return d.path / "model.safetensors.index.json";
}

const std::vector<std::string> kCheckpointFiles = {"model-00001-of-00002.safetensors",
                                                   "model-00002-of-00002.safetensors",
                                                   "model.safetensors.index.json", "packed.safetensors"};

// report.csv without its three time columns (fit_s, encode_s, decode_s: the last ones), which differ per run.
std::vector<std::string> report_without_times(const fs::path& p) {
  std::vector<std::string> out;
  for (std::string line : sqbtest::lines_of(p)) {
    for (int i = 0; i < 3; ++i)
      line.resize(line.rfind(','));
    out.push_back(line);
  }
  return out;
}

bool killed(int status) {
  return status == -9 || status == 128 + 9;
}

}  // namespace

TEST_CASE("sqbench quantize: a killed run leaves no final name and --resume finishes it byte for byte",
          "[quantize-cmd][cli][resume]") {
  const TempDir d;
  const fs::path in = make_sharded_checkpoint(d);
  const std::string args =
      "quantize --input " + in.string() + " --spec kmeans --bits 3 --granularity group:16 " + "--rules " +
      (d.path / "rules.ini").string() + " --importance " + (d.path / "imp.safetensors").string() + " --pack";
  const fs::path whole = d.path / "whole", out = d.path / "out";
  const auto w = sqbtest::run_cli(args + " --threads 1 --out " + whole.string());
  INFO(w.output);
  REQUIRE(w.status == 0);

  // Killed after 2 finished tensors, then again after 1 more: only partial names and the journal exist.
  for (const char* n : {"2", "1"}) {
    const auto k = sqbtest::shell("SQB_QUANTIZE_KILL_AFTER=" + std::string(n) + " " + SQBENCH_EXE + " " +
                                  args + " --threads 2 --out " + out.string() +
                                  (std::string(n) == "1" ? " --resume" : "") + " 2>&1");
    INFO(k.output);
    REQUIRE(killed(k.status));
    for (const std::string& f : kCheckpointFiles)
      CHECK_FALSE(fs::exists(out / f));
    CHECK_FALSE(fs::exists(out / "report.csv"));
    CHECK_FALSE(fs::exists(out / "manifest.json"));
    CHECK(fs::exists(out / "model-00001-of-00002.safetensors.partial"));
    CHECK(fs::exists(out / ".sqbench-quantize.journal"));
  }
  // A run kills mid-append too: a torn last line is dropped.
  std::ofstream(out / ".sqbench-quantize.journal", std::ios::app) << R"({"job":5,"tens)";

  // Without --resume, or with another option or a changed input, the folder is refused.
  const auto no_resume = sqbtest::run_cli(args + " --out " + out.string());
  CHECK(no_resume.status == 2);
  CHECK(no_resume.output.find("give --resume") != std::string::npos);
  const auto other = sqbtest::run_cli(args + " --out " + out.string() + " --resume --opt-ratio");
  CHECK(other.status == 2);
  CHECK(other.output.find("--resume refused") != std::string::npos);
  CHECK(other.output.find("options/opt_ratio differs") != std::string::npos);
  const fs::path shard2 = d.path / "model-00002-of-00002.safetensors";
  const auto mtime = fs::last_write_time(shard2);
  fs::last_write_time(shard2, mtime + std::chrono::seconds(5));
  const auto changed = sqbtest::run_cli(args + " --out " + out.string() + " --resume");
  CHECK(changed.status == 2);
  CHECK(changed.output.find("input/1/mtime differs") != std::string::npos);
  fs::last_write_time(shard2, mtime);

  const auto r = sqbtest::run_cli(args + " --threads 1 --out " + out.string() + " --resume");
  INFO(r.output);
  REQUIRE(r.status == 0);
  for (const std::string& f : kCheckpointFiles) {
    INFO(f);
    CHECK(sqbtest::slurp(out / f) == sqbtest::slurp(whole / f));
  }
  CHECK(report_without_times(out / "report.csv") == report_without_times(whole / "report.csv"));
  CHECK_FALSE(fs::exists(out / ".sqbench-quantize.journal"));
  CHECK_FALSE(fs::exists(out / "model-00001-of-00002.safetensors.partial"));
  CHECK_FALSE(fs::exists(out / "packed.safetensors.partial"));
}

TEST_CASE("sqbench quantize --shard i/n + sqbench merge: the same checkpoint as one run",
          "[quantize-cmd][cli][shard]") {
  const TempDir d;
  const fs::path in = make_sharded_checkpoint(d);
  const std::string args =
      "quantize --input " + in.string() + " --spec kmeans --bits 3 --granularity group:16 " + "--rules " +
      (d.path / "rules.ini").string() + " --importance " + (d.path / "imp.safetensors").string() + " --pack";
  const fs::path whole = d.path / "whole", out = d.path / "out";
  REQUIRE(sqbtest::run_cli(args + " --out " + whole.string()).status == 0);
  std::string shards;
  std::size_t quantized = 0;
  for (int i = 1; i <= 3; ++i) {
    const auto r = sqbtest::run_cli(args + " --threads 1 --out " + out.string() + " --shard " +
                                    std::to_string(i) + "/3");
    INFO(r.output);
    REQUIRE(r.status == 0);
    const fs::path s = out / ("shard-" + std::to_string(i) + "-of-3");
    REQUIRE(fs::exists(s / ".sqbench-quantize.journal"));
    CHECK_FALSE(fs::exists(out / "report.csv"));
    shards += " " + s.string();
    // 4 quantized tensors of 3072, 3072, 2048 and 1024 elements over 3 shards: 3072 | 3072 | 2048 + 1024.
    const std::string said = r.output.substr(r.output.find("quantized "));
    quantized += std::stoul(said.substr(10));
    CHECK(said.find("(3072 weights)") != std::string::npos);
  }
  CHECK(quantized == 4);
  // Merge refuses an incomplete set before writing anything.
  const auto two =
      sqbtest::run_cli("merge " + (out / "shard-1-of-3").string() + " " + (out / "shard-3-of-3").string());
  CHECK(two.status == 2);
  CHECK(two.output.find("shard(s) 2 of 3 are missing") != std::string::npos);
  CHECK_FALSE(fs::exists(out / "report.csv"));
  const auto m = sqbtest::run_cli("merge" + shards);
  INFO(m.output);
  REQUIRE(m.status == 0);
  for (const std::string& f : kCheckpointFiles) {
    INFO(f);
    CHECK(sqbtest::slurp(out / f) == sqbtest::slurp(whole / f));
  }
  CHECK(report_without_times(out / "report.csv") == report_without_times(whole / "report.csv"));
  // Merging again would replace the outputs: refused.
  const auto again = sqbtest::run_cli("merge" + shards);
  CHECK(again.status == 2);
  CHECK(again.output.find("exists") != std::string::npos);

  // Shards of another run (other bits), and an unfinished shard, are refused.
  const fs::path other = d.path / "other";
  const auto other_ok = sqbtest::run_cli(
      "quantize --input " + in.string() + " --spec kmeans --bits 2 --granularity group:16 --rules " +
      (d.path / "rules.ini").string() + " --importance " + (d.path / "imp.safetensors").string() +
      " --pack --out " + other.string() + " --shard 2/3");
  REQUIRE(other_ok.status == 0);
  const auto mixed =
      sqbtest::run_cli("merge " + (out / "shard-1-of-3").string() + " " + (other / "shard-2-of-3").string() +
                       " " + (out / "shard-3-of-3").string() + " --out " + (d.path / "mixed").string());
  CHECK(mixed.status == 2);
  CHECK(mixed.output.find("its input or options differ") != std::string::npos);
  CHECK(mixed.output.find("options/k") != std::string::npos);
  const auto k = sqbtest::shell(std::string("SQB_QUANTIZE_KILL_AFTER=1 ") + SQBENCH_EXE + " " + args +
                                " --out " + (d.path / "unfinished").string() + " --shard 1/3 2>&1");
  REQUIRE(killed(k.status));
  const auto unfinished = sqbtest::run_cli(
      "merge " + (d.path / "unfinished" / "shard-1-of-3").string() + " " + (out / "shard-2-of-3").string() +
      " " + (out / "shard-3-of-3").string() + " --out " + (d.path / "u").string());
  CHECK(unfinished.status == 2);
  CHECK(unfinished.output.find("has not finished") != std::string::npos);
}
