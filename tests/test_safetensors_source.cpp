// The `safetensors` distribution: a checkpoint's tensors as sweep data, equal in values and in every metric
// to the same tensors saved as float32 .npy (files written by plain Python from the format's description, and
// from torch's bfloat16 bit patterns); tensor globs, sharded checkpoints, labels, layout=auto and layout
// rules, importance weights from another checkpoint, and reading one tensor without reading the rest.

#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "cli_helpers.hpp"
#include "requirements.hpp"
#include "safetensors_helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/layout.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/source.hpp"

namespace fs = std::filesystem;
using sqbtest::TempDir;

namespace {

using sqbtest::kPython;

std::unique_ptr<sqb::Source> make(const std::string& spec, const fs::path& base) {
  return sqb::make_source(spec, sqb::SourceContext{base});
}

std::vector<sqb::SourceSpec> expand(const std::string& spec, const fs::path& base) {
  return sqb::expand_source_spec(spec, sqb::SourceContext{base});
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::bit_cast<std::uint32_t>(a[i]) != std::bit_cast<std::uint32_t>(b[i])) return false;
  }
  return true;
}

// Every metric column of two quantizations of what should be the same tensor, compared exactly.
void check_same_metrics(const sqb::Tensor& a, const sqb::Tensor& b, const std::string& spec, std::size_t k,
                        const std::string& granularity) {
  INFO(spec << " K=" << k << " " << granularity);
  const sqb::QuantizeOptions opt{.granularity = sqb::Granularity::parse(granularity)};
  const sqb::Quantized x = sqb::quantize(a, spec, k, opt), y = sqb::quantize(b, spec, k, opt);
  const auto cx = x.metric_columns(), cy = y.metric_columns();
  REQUIRE(cx.size() == cy.size());
  for (std::size_t i = 0; i < cx.size(); ++i) {
    INFO(sqb::column_name(cx[i].column));
    CHECK(cx[i].column == cy[i].column);
    CHECK((std::isnan(cx[i].value) ? std::isnan(cy[i].value) : cx[i].value == cy[i].value));
  }
  CHECK(x.decoded == y.decoded);
}

// Plain Python (struct + json, the format's description) writes a PyTorch-style checkpoint of every readable
// dtype, and NumPy saves each tensor's float32 values (the exact value of each F16/BF16 bit pattern; F64
// rounded to nearest) as <name>.npy: the reference.
const char* kWriter = R"PY(
import json, os, struct, sys
import numpy as np

root = sys.argv[1]
rng = np.random.default_rng(7)

def bf16(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return b.astype("<u2").tobytes(), (b.astype(np.uint32) << 16).view(np.float32)

def entry(dtype, a):
    if dtype == "BF16":
        raw, f32 = bf16(a)
    elif dtype == "F16":
        raw = a.astype("<f2").tobytes(); f32 = a.astype(np.float16).astype(np.float32)
    elif dtype == "F64":
        raw = a.astype("<f8").tobytes(); f32 = a.astype(np.float64).astype(np.float32)
    else:
        raw = a.astype("<f4").tobytes(); f32 = a.astype(np.float32)
    return raw, f32.reshape(a.shape)

def write(path, tensors, metadata, folder):
    header, data = ({"__metadata__": metadata} if metadata else {}), b""
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    for name, (dtype, a) in tensors.items():
        raw, f32 = entry(dtype, a)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
        np.save(os.path.join(root, folder, name.replace("/", "__") + ".npy"), f32)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + data)

write(os.path.join(root, "pt.safetensors"), {
    "layers.0.mlp.up_proj.weight": ("BF16", rng.standard_normal((24, 40)) * 0.02),
    "layers.0.mlp.down_proj.weight": ("F16", rng.laplace(0, 0.03, (40, 24))),
    "layers.0.conv.weight": ("F32", rng.standard_normal((12, 4, 3, 3))),
    "lm_head.weight": ("F64", rng.standard_t(3, (16, 30)) * 0.1),
    "layers.0.norm.weight": ("BF16", 1 + rng.standard_normal(40) * 0.1),
}, {"format": "pt"}, "npy")
write(os.path.join(root, "tf.safetensors"), {
    "dense/kernel:0": ("F32", rng.standard_normal((30, 16))),
    "conv/kernel:0": ("F16", rng.standard_normal((3, 3, 4, 8))),
}, {"format": "tf"}, "npy_tf")
# A sharded checkpoint, as transformers writes its index.
shards = {"model-00001-of-00002.safetensors": {"a.weight": ("BF16", rng.standard_normal((6, 10)))},
          "model-00002-of-00002.safetensors": {"b.weight": ("F16", rng.standard_normal((10, 6))),
                                               "c.bias": ("F32", rng.standard_normal(10))}}
weight_map = {}
for shard, ts in shards.items():
    write(os.path.join(root, shard), ts, {"format": "pt"}, "npy_sharded")
    weight_map.update({n: shard for n in ts})
json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map},
          open(os.path.join(root, "model.safetensors.index.json"), "w"), indent=2)
)PY";

// torch: bfloat16 tensors written from their int16 view (torch 1.13 has no safetensors package), and the
// same tensors' .float() saved by NumPy.
const char* kTorchWriter = R"PY(
import json, os, struct, sys
import numpy as np
import torch

root = sys.argv[1]
torch.manual_seed(3)
tensors = {
    "model.layers.0.mlp.gate_proj.weight": torch.randn(48, 32).mul(0.02).to(torch.bfloat16),
    "model.layers.0.self_attn.o_proj.weight": torch.randn(32, 32).to(torch.bfloat16),
    "model.conv.weight": torch.randn(8, 3, 3, 3).mul(0.1).to(torch.bfloat16),
}
header, data = {"__metadata__": {"format": "pt"}}, b""
os.makedirs(os.path.join(root, "npy"), exist_ok=True)
for name, t in tensors.items():
    raw = t.contiguous().view(torch.int16).numpy().tobytes()
    header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
    np.save(os.path.join(root, "npy", name + ".npy"), t.float().numpy())
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
open(os.path.join(root, "torch.safetensors"), "wb").write(struct.pack("<Q", len(text)) + text + data)
)PY";

void run_python(const TempDir& dir, const char* script) {
  const fs::path p = dir.write("write.py", script);
  const auto r = sqbtest::shell(std::string(kPython) + " " + p.string() + " " + dir.path.string() + " 2>&1");
  INFO(r.output);
  REQUIRE(r.status == 0);
}

// A sweep over the checkpoint's tensors (labelled st:NAME) and the same tensors as .npy (labelled by their
// stems = the names): every non-timing column of the two rows of each cell must be identical.
void check_sweep_equal(const TempDir& dir, const std::string& checkpoint, std::size_t tensors) {
  // Both sides get their layouts from the same rules (a 1-D norm weight is one row).
  const fs::path cfg =
      dir.write("equal.ini",
                "repeats = 1\n[sweep]\nquantizer = kmeans\nquantizer = phi_log\nquantizer = nf4\n"
                "quantizer = uniform symmetric=1\ndistribution = safetensors path=" +
                    checkpoint +
                    " tensor=* layout=*norm*:rows,oihw label=st:{}\n"
                    "distribution = npy glob=npy/*.npy layout=*norm*:rows,oihw\n"
                    "bits = 4\ngranularity = tensor\ngranularity = channel\ngranularity = group:8\n");
  const sqbtest::Outcome o =
      sqbtest::run_cli("run " + cfg.string() + " --quiet --out " + (dir.path / "out").string());
  INFO(o.output);
  REQUIRE(o.status == 0);
  const auto lines = sqbtest::lines_of(dir.path / "out" / "results.csv");
  REQUIRE(lines.size() == 1 + 2 * tensors * 4 * 3);
  const auto split = [](const std::string& l) {
    std::vector<std::string> f;
    std::string cur;
    bool quoted = false;
    for (const char c : l) {
      if (c == '"') quoted = !quoted;
      if (c == ',' && !quoted) {
        f.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    f.push_back(cur);
    return f;
  };
  const auto header = split(lines[0]);
  const auto col = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  const std::size_t dist = col("distribution"), source = col("source"), fit = col("fit_s"),
                    hash = col("config_hash"), quantizer = col("quantizer"), gran = col("granularity");
  std::map<std::string, std::vector<std::string>> by_key;  // quantizer|label|granularity -> row
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto f = split(lines[i]);
    by_key[f[quantizer] + "|" + f[dist] + "|" + f[gran]] = f;
  }
  std::size_t compared = 0;
  for (const auto& [key, st_row] : by_key) {
    if (st_row[dist].rfind("st:", 0) != 0) continue;
    const std::string label = st_row[dist].substr(3);
    const auto npy_key = st_row[quantizer] + "|" + label + "|" + st_row[gran];
    REQUIRE(by_key.contains(npy_key));
    const auto& npy_row = by_key.at(npy_key);
    INFO(key);
    CHECK(st_row[source].find("tensor=" + label) != std::string::npos);
    for (std::size_t c = 0; c < header.size(); ++c) {
      if (c == dist || c == source || c >= fit) continue;  // labels, specs, timings and the hash
      INFO(header[c]);
      CHECK(st_row[c] == npy_row[c]);
    }
    ++compared;
  }
  CHECK(compared == tensors * 4 * 3);
  // Every row of a cell holds the same config hash.
  CHECK(split(lines[1])[hash] == split(lines.back())[hash]);
}

}  // namespace

TEST_CASE("safetensors source: Python-written checkpoints give the .npy tensors' values and metrics",
          "[safetensors-source][python]") {
  sqbtest::require_python("numpy");
  TempDir dir;
  run_python(dir, kWriter);
  const std::vector<std::string> names = {"layers.0.conv.weight", "layers.0.mlp.down_proj.weight",
                                          "layers.0.mlp.up_proj.weight", "layers.0.norm.weight",
                                          "lm_head.weight"};
  for (const std::string& name : names) {
    INFO(name);
    for (const std::string layout : {"rows", "oihw", "hwio", "auto"}) {
      if (name == "layers.0.norm.weight" && (layout == "oihw" || layout == "hwio")) continue;  // rank 1
      INFO(layout);
      // layout=auto is oihw for a PyTorch checkpoint (and rows for the 1-D norm): the .npy gets that word.
      const std::string npy_layout =
          layout != "auto" ? layout : (name == "layers.0.norm.weight" ? "rows" : "oihw");
      const auto st = make("safetensors path=pt.safetensors tensor=" + name + " layout=" + layout, dir.path);
      const auto np = make("npy path=npy/" + name + ".npy layout=" + npy_layout, dir.path);
      const sqb::Tensor a = st->draw(sqb::kWholeFile, 0), b = np->draw(sqb::kWholeFile, 0);
      CHECK(a.rows == b.rows);
      CHECK(a.cols == b.cols);
      CHECK(same_bits(a.values, b.values));
      CHECK(st->shape(sqb::kWholeFile).rows == a.rows);
      // Subsamples: the same seed picks the same rows (or values).
      for (const std::size_t n : {a.cols, a.cols * 2, std::size_t{7}}) {
        if (n > a.size()) continue;
        const sqb::Tensor sa = st->draw(n, 5), sb = np->draw(n, 5);
        CHECK(sa.rows == sb.rows);
        CHECK(same_bits(sa.values, sb.values));
        CHECK(st->shape(n).rows == sa.rows);
        CHECK(st->shape(n).cols == sa.cols);
      }
      if (layout == "oihw" || (layout == "rows" && name == "layers.0.norm.weight")) {
        check_same_metrics(a, b, "kmeans", 16, "channel");
        check_same_metrics(a, b, "phi_log zero=1", 16, "group:8");
        check_same_metrics(a, b, "lloyd_max", 8, "tensor");
      }
    }
  }
  // The TensorFlow checkpoint: auto reads its format (and the kernel names) as hwio.
  for (const std::string name : {"dense/kernel:0", "conv/kernel:0"}) {
    INFO(name);
    const sqb::Tensor a = make("safetensors path=tf.safetensors tensor=" + name + " layout=auto", dir.path)
                              ->draw(sqb::kWholeFile, 0);
    const sqb::Tensor b =
        make("npy path=npy_tf/" + name.substr(0, name.find('/')) + "__kernel:0.npy layout=hwio", dir.path)
            ->draw(sqb::kWholeFile, 0);
    CHECK(a.rows == b.rows);
    CHECK(same_bits(a.values, b.values));
  }
  // The sharded checkpoint follows its weight_map.
  {
    const auto specs = expand("safetensors path=model.safetensors.index.json tensor=*", dir.path);
    REQUIRE(specs.size() == 3);
    for (const sqb::SourceSpec& s : specs) {
      INFO(s.spec);
      const sqb::Tensor a = make(s.spec, dir.path)->draw(sqb::kWholeFile, 0);
      const sqb::Tensor b =
          make("npy path=npy_sharded/" + s.label + ".npy", dir.path)->draw(sqb::kWholeFile, 0);
      CHECK(same_bits(a.values, b.values));
    }
  }
  // Through a sweep: every result column equal, cell by cell.
  check_sweep_equal(dir, "pt.safetensors", names.size());
}

TEST_CASE("safetensors source: torch's bfloat16 tensors sweep exactly like their float32 .npy",
          "[safetensors-source][python]") {
  sqbtest::require_python("torch");
  TempDir dir;
  run_python(dir, kTorchWriter);
  check_sweep_equal(dir, "torch.safetensors", 3);
}

namespace {

// A checkpoint written by hand (safetensors_helpers), F32 values 1, 2, 3, ... per tensor.
std::string f32_tensor_file(const std::vector<std::pair<std::string, std::vector<std::size_t>>>& tensors,
                            const std::string& metadata = "{\"format\":\"pt\"}") {
  std::vector<sqbtest::StTensor> ts;
  for (const auto& [name, shape] : tensors) {
    std::size_t n = 1;
    for (const std::size_t d : shape)
      n *= d;
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i)
      v[i] = static_cast<float>(i + 1);
    ts.push_back({name, "F32", shape, sqbtest::f32_bytes(v)});
  }
  std::sort(ts.begin(), ts.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return sqbtest::st_file(ts, metadata);
}

}  // namespace

TEST_CASE("safetensors source: tensor globs, labels, layout rules and spec errors", "[safetensors-source]") {
  TempDir dir;
  dir.write("m.safetensors", f32_tensor_file({{"model.layers.1.mlp.up.weight", {4, 6}},
                                              {"model.layers.0.mlp.up.weight", {4, 6}},
                                              {"model.layers.0.attn.q.weight", {6, 6}},
                                              {"conv.kernel", {1, 1, 3, 5}},
                                              {"w[0]", {2, 2}},
                                              {"ids", {3}}}));
  // One spec per matching tensor, sorted; labels are the names; rules give each its layout.
  const auto specs = expand("safetensors path=m.safetensors tensor=*.mlp.*.weight scale=2", dir.path);
  REQUIRE(specs.size() == 2);
  CHECK(specs[0].spec == "safetensors path=m.safetensors tensor=model.layers.0.mlp.up.weight scale=2");
  CHECK(specs[0].label == "model.layers.0.mlp.up.weight");
  CHECK(specs[1].label == "model.layers.1.mlp.up.weight");
  const auto ruled = expand(
      "safetensors path=m.safetensors tensor=* layout=*.kernel:hwio,ids:rows,oihw label=m:{}", dir.path);
  REQUIRE(ruled.size() == 6);
  CHECK(ruled[0].spec == "safetensors path=m.safetensors tensor=conv.kernel layout=hwio");
  CHECK(ruled[0].label == "m:conv.kernel");
  CHECK(ruled[1].spec == "safetensors path=m.safetensors tensor=ids layout=rows");
  CHECK(ruled[2].spec == "safetensors path=m.safetensors tensor=model.layers.0.attn.q.weight layout=oihw");
  for (const sqb::SourceSpec& s : ruled)
    CHECK_NOTHROW(make(s.spec, dir.path)->draw(sqb::kWholeFile, 0));
  CHECK(make(ruled[0].spec, dir.path)->draw(sqb::kWholeFile, 0).rows == 5);  // hwio: the last axis
  // A name holding wildcard characters is taken as it is when the checkpoint has it.
  CHECK(expand("safetensors path=m.safetensors tensor=w[0]", dir.path).at(0).label == "w[0]");
  CHECK(make("safetensors path=m.safetensors tensor=w[0]", dir.path)->draw(sqb::kWholeFile, 0).size() == 4);
  // Errors name the spec, the file and the tensor.
  CHECK_THROWS_WITH(expand("safetensors path=m.safetensors tensor=*.mlp.*.bias", dir.path),
                    Catch::Contains("tensor pattern \"*.mlp.*.bias\" matches none of the 6 tensors"));
  CHECK_THROWS_WITH(expand("safetensors path=missing.safetensors tensor=*", dir.path),
                    Catch::Contains("distribution \"safetensors path=missing.safetensors tensor=*\"") &&
                        Catch::Contains("missing.safetensors"));
  CHECK_THROWS_WITH(make("safetensors path=m.safetensors tensor=*.weight", dir.path),
                    Catch::Contains("is a pattern") && Catch::Contains("expand_source_spec"));
  CHECK_THROWS_WITH(make("safetensors path=m.safetensors tensor=model.layers.0.mlp.down.weight", dir.path),
                    Catch::Contains("no tensor \"model.layers.0.mlp.down.weight\"") &&
                        Catch::Contains("model.layers.0.mlp.up.weight"));
  CHECK_THROWS_WITH(make("safetensors tensor=x", dir.path), Catch::Contains("parameter 'path' is required"));
  CHECK_THROWS_WITH(make("safetensors path=m.safetensors", dir.path),
                    Catch::Contains("parameter 'tensor' is required"));
  CHECK_THROWS_WITH(
      make("safetensors path=m.safetensors tensor=ids layout=nchw", dir.path),
      Catch::Contains("parameter 'layout' 'nchw' is not a layout; valid layouts: rows|oihw|hwio|auto"));
  CHECK_THROWS_WITH(expand("safetensors path=m.safetensors tensor=* layout=*.weight:oihw", dir.path),
                    Catch::Contains("no rule matches 'conv.kernel'"));
  CHECK_THROWS_WITH(make("safetensors path=m.safetensors tensor=ids layout=oihw", dir.path),
                    Catch::Contains("layout=oihw needs a weight of rank >= 2"));
  CHECK_THROWS_WITH(make("safetensors path=m.safetensors tensor=ids", dir.path)->draw(4, 0),
                    Catch::Contains("n = 4 is more than the 3 values of " +
                                    (dir.path / "m.safetensors").string() + ": tensor \"ids\""));
}

TEST_CASE("safetensors source: dtypes it cannot read, and non-finite values, are errors naming the tensor",
          "[safetensors-source]") {
  TempDir dir;
  std::vector<sqbtest::StTensor> ts = {
      {"a.weight", "F32", {2}, sqbtest::f32_bytes({1.0f, std::numeric_limits<float>::infinity()})},
      {"position_ids", "I64", {1, 2}, sqbtest::le_bytes(std::vector<std::uint64_t>{0, 1})},
      {"q.weight", "F8_E4M3", {2}, std::string(2, '\x10')},
  };
  dir.write("d.safetensors", sqbtest::st_file(ts));
  CHECK_THROWS_WITH(
      make("safetensors path=d.safetensors tensor=position_ids", dir.path),
      Catch::Contains("tensor \"position_ids\": dtype I64 is not data sqbench reads (it reads F32, "
                      "F16, BF16 and F64)"));
  CHECK_THROWS_WITH(make("safetensors path=d.safetensors tensor=q.weight", dir.path),
                    Catch::Contains("tensor \"q.weight\": dtype F8_E4M3"));
  CHECK_THROWS_WITH(
      make("safetensors path=d.safetensors tensor=a.weight", dir.path),
      Catch::Contains(": tensor \"a.weight\": 1 non-finite value") && Catch::Contains("add nonfinite=drop"));
  const auto dropped = make("safetensors path=d.safetensors tensor=a.weight nonfinite=drop", dir.path);
  CHECK(dropped->draw(sqb::kWholeFile, 0).values == std::vector<float>{1.0f});
  CHECK(sqb::part_of<sqb::DescribesData>(*dropped)->describe_data() == std::vector<double>{1});
}

TEST_CASE("layout=auto: the framework, the name and a convolution's shape, only when they agree",
          "[layout]") {
  using L = sqb::Layout;
  const std::vector<std::size_t> lin = {64, 32}, conv = {64, 32, 3, 3}, tf_conv = {3, 3, 32, 64},
                                 pointwise = {1, 1, 1024, 1024}, small = {8, 3, 3, 3};
  CHECK(sqb::auto_layout("x", std::vector<std::size_t>{5}, "", "f") == L::rows);  // one row: no question
  CHECK(sqb::auto_layout("x", std::vector<std::size_t>{}, "", "f") == L::rows);
  CHECK(sqb::auto_layout("fc.weight", lin, "", "f") == L::oihw);
  CHECK(sqb::auto_layout("anything", lin, "pt", "f") == L::oihw);
  CHECK(sqb::auto_layout("anything", lin, "tf", "f") == L::hwio);
  CHECK(sqb::auto_layout("params/Dense_0/kernel", lin, "flax", "f") == L::hwio);
  CHECK(sqb::auto_layout("dense/kernel:0", lin, "", "f") == L::hwio);
  CHECK(sqb::auto_layout("conv", conv, "", "f") == L::oihw);
  CHECK(sqb::auto_layout("conv", tf_conv, "", "f") == L::hwio);
  CHECK(sqb::auto_layout("conv", pointwise, "", "f") ==
        L::hwio);  // a pointwise conv kernel (1, 1, 1024, 1024)
  CHECK(sqb::auto_layout("features.0.weight", small, "pt", "f") == L::oihw);
  CHECK_THROWS_WITH(
      sqb::auto_layout("emb", lin, "", "F"),
      Catch::StartsWith("F: layout=auto: tensor 'emb' of shape (64, 32): nothing tells its layout") &&
          Catch::Contains("give layout=oihw"));
  CHECK_THROWS_WITH(sqb::auto_layout("x", small, "", "F"), Catch::Contains("nothing tells its layout"));
  CHECK_THROWS_WITH(
      sqb::auto_layout("conv.weight", pointwise, "pt", "F"),
      Catch::Contains("the file's format \"pt\" says PyTorch-style [out, in, ...] (rows = first axis), "
                      "but the shape (1, 1, 1024, 1024)") &&
          Catch::Contains("says TensorFlow-style"));
  CHECK_THROWS_WITH(sqb::auto_layout("dense.kernel", lin, "pt", "F"), Catch::Contains("'kernel'"));
  // Rules: first match wins, a bare word matches everything, every rule is checked first.
  CHECK(sqb::pick_layout("*.kernel:hwio,*norm*:rows,oihw", "a.kernel", "w") == "hwio");
  CHECK(sqb::pick_layout("*.kernel:hwio,*norm*:rows,oihw", "ln_norm.weight", "w") == "rows");
  CHECK(sqb::pick_layout("*.kernel:hwio,*norm*:rows,oihw", "fc.weight", "w") == "oihw");
  CHECK(sqb::pick_layout("tf/conv/kernel:0:hwio,auto", "tf/conv/kernel:0", "w") == "hwio");  // the last ':'
  CHECK_THROWS_WITH(sqb::pick_layout("a:hwio,b:nchw,rows", "a", "w"),
                    Catch::Contains("rule 'b:nchw': 'nchw' is not a layout"));
  CHECK_THROWS_WITH(sqb::pick_layout("a:hwio,,rows", "a", "w"), Catch::Contains("an empty rule"));
  CHECK_THROWS_WITH(sqb::pick_layout(":hwio", "a", "w"), Catch::Contains("has no pattern before ':'"));
  CHECK_THROWS_WITH(sqb::pick_layout("[a:hwio", "a", "w"), Catch::Contains("without its closing ']'"));
  CHECK_THROWS_WITH(sqb::pick_layout("a:hwio", "b", "w"),
                    Catch::Contains("w: layout=a:hwio: no rule matches 'b'"));
}

TEST_CASE("layout: from_tensor puts the laid-out values back in the input's shape", "[layout]") {
  std::vector<float> v(2 * 3 * 4 * 5);
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<float>(i);
  for (const auto layout : {sqb::Layout::rows, sqb::Layout::oihw, sqb::Layout::hwio}) {
    for (const std::vector<std::size_t>& shape :
         {std::vector<std::size_t>{2, 3, 4, 5}, {6, 20}, {120}, {2, 60, 1}}) {
      if (shape.size() < 2 && layout != sqb::Layout::rows) continue;
      const sqb::Tensor t = sqb::to_tensor(shape, v, layout, "t");
      CHECK(sqb::from_tensor(shape, t.values, layout) == v);
    }
  }
  // hwio: [kh, kw, in, out] = (2, 3, 4, 5) -> 5 rows (out) of [in, kh, kw] = (4, 2, 3). Laid-out element 1
  // is out 0, in 0, kh 0, kw 1: the input's (0, 1, 0, 0), flat 20.
  const std::vector<std::size_t> shape = {2, 3, 4, 5};
  const sqb::Tensor t = sqb::to_tensor(shape, v, sqb::Layout::hwio, "t");
  CHECK(t.rows == 5);
  CHECK(t.values[1] == v[20]);
  CHECK(t.values[6] == v[5]);   // out 0, in 1, kh 0, kw 0: the input's (0, 0, 1, 0)
  CHECK(t.values[24] == v[1]);  // out 1, in 0, kh 0, kw 0: the input's (0, 0, 0, 1)
  CHECK_THROWS_WITH(sqb::from_tensor(shape, std::vector<float>(3), sqb::Layout::rows),
                    Catch::Contains("does not match"));
}

TEST_CASE("safetensors source: one tensor is read without reading the rest of the checkpoint",
          "[safetensors-source]") {
  // A checkpoint whose other tensor is 2 GiB of a sparse file (holes read as zeros): reading the small one
  // through the source may touch only its own bytes, so the resident memory grows by far less than that.
  TempDir dir;
  const std::uint64_t big = std::uint64_t{1} << 29;  // F32 elements: 2 GiB
  // The header by hand (st_header takes its offsets from data it would have to hold).
  const std::string h = "{\"big.weight\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(big) +
                        "],\"data_offsets\":[0," + std::to_string(4 * big) +
                        "]},\"small.weight\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[" +
                        std::to_string(4 * big) + "," + std::to_string(4 * big + 64) + "]}}";
  const fs::path file = dir.path / "sparse.safetensors";
  {
    std::ofstream out(file, std::ios::binary);
    out << sqbtest::st_raw(h);
  }
  std::error_code ec;
  fs::resize_file(file, 8 + h.size() + 4 * big + 64, ec);
  // Every file system /tmp lives on in Linux (tmpfs, ext4, xfs, btrfs) makes holes; only a `ulimit -f` below
  // 2 GiB refuses, and then the environment is what needs fixing.
  if (ec)
    FAIL("cannot make a sparse 2 GiB file in " << dir.path << " (" << ec.message() << "): lift `ulimit -f`");
  {
    // The small tensor's bytes (the file's last 64) hold 1..16.
    std::fstream io(file, std::ios::binary | std::ios::in | std::ios::out);
    io.seekp(static_cast<std::streamoff>(8 + h.size() + 4 * big));
    std::vector<float> v(16);
    for (int i = 0; i < 16; ++i)
      v[static_cast<std::size_t>(i)] = static_cast<float>(i + 1);
    io.write(reinterpret_cast<const char*>(v.data()), 64);
  }
  struct rusage before {};
  ::getrusage(RUSAGE_SELF, &before);
  const auto src = make("safetensors path=sparse.safetensors tensor=small.weight", dir.path);
  const sqb::Tensor t = src->draw(sqb::kWholeFile, 0);
  struct rusage after {};
  ::getrusage(RUSAGE_SELF, &after);
  CHECK(t.rows == 4);
  CHECK(t.values.back() == 16.0f);
  const long grown_kib = after.ru_maxrss - before.ru_maxrss;
  INFO("peak resident memory grew by " << grown_kib << " KiB");
  CHECK(grown_kib < 64 * 1024);  // 2 GiB would be 2097152 KiB
}

TEST_CASE("safetensors source: importance weights from another checkpoint, a .npy or a rule",
          "[safetensors-source]") {
  TempDir dir;
  dir.write("m.safetensors", f32_tensor_file({{"a.weight", {3, 4}}, {"b.weight", {2, 2}}}));
  // Fisher-like weights: the tensors of the same names in another file.
  std::vector<sqbtest::StTensor> w = {
      {"a.weight", "F32", {3, 4}, sqbtest::f32_bytes(std::vector<float>(12, 0.5f))},
      {"b.weight", "F32", {2, 3}, sqbtest::f32_bytes(std::vector<float>(6, 1.0f))}};
  dir.write("fisher.safetensors", sqbtest::st_file(w));
  const sqb::Tensor a =
      make("safetensors path=m.safetensors tensor=a.weight weights=fisher.safetensors", dir.path)
          ->draw(sqb::kWholeFile, 0);
  CHECK(a.weights == std::vector<float>(12, 0.5f));
  CHECK_THROWS_WITH(
      make("safetensors path=m.safetensors tensor=b.weight weights=fisher.safetensors", dir.path),
      Catch::Contains("weights of shape (2, 3) for tensor \"b.weight\" of shape (2, 2)"));
  const std::vector<std::size_t> shape = {3, 4};
  std::vector<float> wv(12);
  for (std::size_t i = 0; i < 12; ++i)
    wv[i] = static_cast<float>(i);
  sqb::npy::write(dir.path / "w.npy", shape, wv);
  const sqb::Tensor b =
      make("safetensors path=m.safetensors tensor=a.weight weights=w.npy", dir.path)->draw(6, 3);
  REQUIRE(b.weights.size() == 6);
  for (std::size_t i = 0; i < 6; ++i)
    CHECK(b.weights[i] == b.values[i] - 1.0f);  // values are 1..12, the weights 0..11: subsampled together
  const sqb::Tensor c = make("safetensors path=m.safetensors tensor=a.weight weights=square", dir.path)
                            ->draw(sqb::kWholeFile, 0);
  CHECK(c.weights[11] == 144.0f);
}
