// safetensors files written by Python, independently of sqbench: (1) by plain /usr/bin/python3 (struct +
// json, no package) from the format's description, values and expected float32 bit patterns computed in
// Python; (2) from torch tensors' raw bytes (bfloat16 as its int16 view; Debian's python3-torch has no
// safetensors package), with the same tensors saved as float32 .npy by torch/NumPy as the reference. Every
// value must be bit-identical to the reference (NaN: a NaN). Without Python or torch the tests fail (CI
// installs them).

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "npy_helpers.hpp"
#include "requirements.hpp"
#include "safetensors_helpers.hpp"
#include "sqb/npy.hpp"
#include "sqb/safetensors.hpp"

namespace fs = std::filesystem;
namespace st = sqb::safetensors;
using sqbtest::TempDir;

namespace {

using sqbtest::kPython;

bool same(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) ||
         std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

// Plain Python: the file format written from its description. For every tensor, expected/<name>.f32 holds the
// float32 bit patterns Python computes for its values (struct's 'f' rounds a double to nearest; 'e' is IEEE
// binary16; bfloat16 is rounded to nearest even by hand from the float32 bits) and expected/<name>.shape the
// shape. Also a sharded checkpoint whose index is written the way transformers writes it.
const char* kPlainScript = R"PY(
import json, math, os, random, struct, sys

root = sys.argv[1]
os.makedirs(os.path.join(root, "expected"), exist_ok=True)
rng = random.Random(5)

def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]

def bf16_bits(x):
    u = f32_bits(x)
    if (u & 0x7FFFFFFF) > 0x7F800000:
        return (u >> 16) | 0x40  # a quiet NaN
    return (u + 0x7FFF + ((u >> 16) & 1)) >> 16

def tensor(dtype, shape, values):
    if dtype == "F32":
        data = struct.pack("<%df" % len(values), *values)
        bits = [f32_bits(v) for v in values]
    elif dtype == "F64":
        data = struct.pack("<%dd" % len(values), *values)
        bits = [f32_bits(v) for v in values]
    elif dtype == "F16":
        data = struct.pack("<%de" % len(values), *values)
        halves = struct.unpack("<%de" % len(values), data)
        bits = [f32_bits(h) for h in halves]
    elif dtype == "BF16":
        b = [bf16_bits(v) for v in values]
        data = struct.pack("<%dH" % len(b), *b)
        bits = [x << 16 for x in b]
    elif dtype == "I64":
        data = struct.pack("<%dq" % len(values), *values)
        bits = None
    return dtype, shape, data, bits

def write(path, tensors, metadata=None, expected=True):
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, data, bits) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
        if expected and bits is not None:
            with open(os.path.join(root, "expected", name + ".f32"), "wb") as f:
                f.write(struct.pack("<%dI" % len(bits), *bits))
            with open(os.path.join(root, "expected", name + ".shape"), "w") as f:
                f.write(" ".join(str(d) for d in shape))
    text = json.dumps(header).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))

gauss = lambda n, s: [rng.gauss(0, s) for _ in range(n)]
write(os.path.join(root, "plain.safetensors"), {
    "model.embed.weight": tensor("BF16", [6, 5], gauss(30, 1.0) + []),
    "model.layers.0.mlp.up_proj.weight": tensor("F32", [4, 3], gauss(12, 0.02)),
    "model.layers.0.mlp.down_proj.weight": tensor("F16", [3, 4], gauss(12, 0.5)),
    "model.layers.1.mlp.up_proj.weight": tensor("F64", [2, 2, 2], gauss(8, 1e3)),
    "specials.f16": tensor("F16", [6], [65504.0, -6e-8, math.inf, -math.inf, math.nan, -0.0]),
    "specials.bf16": tensor("BF16", [6], [3.3e38, 1e-40, math.inf, -math.inf, math.nan, -0.0]),
    "specials.f64": tensor("F64", [5], [1e-50, -1e-50, 0.1, math.inf, math.nan]),
    "scalar": tensor("F32", [], [2.5]),
    "position_ids": tensor("I64", [1, 4], [0, 1, 2, 3]),
}, metadata={"format": "pt", "source": "plain python"})

shards = {
    "model-00001-of-00002.safetensors": {"s.a": tensor("F32", [2], [1.0, -1.0]), "s.b": tensor("BF16", [3], [1.0, 2.0, 3.0])},
    "model-00002-of-00002.safetensors": {"s.c": tensor("F16", [2, 1], [0.5, -0.25])},
}
weight_map = {}
for shard, ts in shards.items():
    write(os.path.join(root, shard), ts, expected=False)
    for name in ts:
        weight_map[name] = shard
with open(os.path.join(root, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": 22}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
print("plain python wrote", len(os.listdir(os.path.join(root, "expected"))) // 2, "tensors")
)PY";

// torch: tensors of every readable dtype written from their raw bytes, and each tensor's .float() saved by
// NumPy as the float32 reference (exact for float16/bfloat16; float64 rounds to nearest).
const char* kTorchScript = R"PY(
import json, os, struct, sys
import numpy as np
import torch

root = sys.argv[1]
torch.manual_seed(0)
tensors = {
    "bf16.linear": torch.randn(64, 32, dtype=torch.float32).mul(0.02).to(torch.bfloat16),
    "bf16.conv": torch.randn(8, 4, 3, 3).to(torch.bfloat16),
    "bf16.specials": torch.tensor([float("inf"), float("-inf"), float("nan"), 1e-40, 3.38e38, -0.0, 1.0, -65504.0],
                                  dtype=torch.bfloat16),
    "bf16.scalar": torch.tensor(1.5, dtype=torch.bfloat16),
    "f16.conv": torch.randn(16, 8, 3, 3).to(torch.float16),
    "f16.specials": torch.tensor([65504.0, 6e-8, -6.1e-5, float("inf"), float("nan"), -0.0], dtype=torch.float16),
    "f32.linear": torch.randn(10, 7),
    "f64.linear": torch.randn(5, 5, dtype=torch.float64).mul(1e3),
    "f64.tiny": torch.tensor([1e-50, 1e-39, -1e-45, 3.4e38], dtype=torch.float64),
}
names = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32", torch.float64: "F64"}
header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
for name, t in tensors.items():
    t = t.contiguous()
    raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
    header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
    np.save(os.path.join(root, name + ".npy"), t.float().numpy())
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(os.path.join(root, "torch.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
print("torch", torch.__version__, "wrote", len(tensors), "tensors")
)PY";

std::string run_script(const TempDir& dir, const char* script, const std::string& file) {
  const fs::path p = dir.write(file, script);
  const auto r = sqbtest::shell(std::string(kPython) + " " + p.string() + " " + dir.path.string() + " 2>&1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  return r.output;
}

}  // namespace

TEST_CASE("safetensors written by plain Python read back bit-exactly", "[safetensors][python]") {
  sqbtest::require_python();
  TempDir dir;
  const std::string out = run_script(dir, kPlainScript, "plain.py");
  INFO(out);
  const st::File f(dir.path / "plain.safetensors");
  CHECK(f.metadata().at("source") == "plain python");
  CHECK(f.names().size() == 9);
  std::size_t checked = 0;
  for (const auto& e : fs::directory_iterator(dir.path / "expected")) {
    if (e.path().extension() != ".f32") continue;
    const std::string name = e.path().stem().string();
    INFO(name);
    const std::string bits = sqbtest::slurp(e.path());
    std::istringstream shape_text(sqbtest::slurp(dir.path / "expected" / (name + ".shape")));
    std::vector<std::size_t> shape;
    for (std::size_t d; shape_text >> d;)
      shape.push_back(d);
    const st::Array a = f.read(name);
    CHECK(a.shape == shape);
    REQUIRE(a.values.size() * 4 == bits.size());
    for (std::size_t i = 0; i < a.values.size(); ++i) {
      std::uint32_t u;
      std::memcpy(&u, bits.data() + 4 * i, 4);
      INFO("index " << i << ": got " << a.values[i] << ", Python says " << std::bit_cast<float>(u));
      CHECK(same(a.values[i], std::bit_cast<float>(u)));
    }
    ++checked;
  }
  CHECK(checked == 8);  // every readable tensor (position_ids is I64)
  CHECK_THROWS_WITH(f.read("position_ids"), Catch::Contains("dtype I64 is not data sqbench reads"));
  CHECK(f.info("position_ids").shape == std::vector<std::size_t>{1, 4});
  // Globs over the real names, and the sharded checkpoint.
  const st::Checkpoint c(dir.path / "plain.safetensors");
  CHECK(c.match("*.mlp.*.weight") == std::vector<std::string>{"model.layers.0.mlp.down_proj.weight",
                                                              "model.layers.0.mlp.up_proj.weight",
                                                              "model.layers.1.mlp.up_proj.weight"});
  CHECK(c.match("specials.*16") == std::vector<std::string>{"specials.bf16", "specials.f16"});
  const st::Checkpoint sharded(dir.path / "model.safetensors.index.json");
  CHECK(sharded.names() == std::vector<std::string>{"s.a", "s.b", "s.c"});
  CHECK(sharded.file_of("s.c") == dir.path / "model-00002-of-00002.safetensors");
  CHECK(sharded.read("s.a").values == std::vector<float>{1, -1});
  CHECK(sharded.read("s.b").values == std::vector<float>{1, 2, 3});
  CHECK(sharded.read("s.c").values == std::vector<float>{0.5f, -0.25f});
  CHECK(sharded.read("s.c").shape == std::vector<std::size_t>{2, 1});
}

TEST_CASE("safetensors written from torch tensors equal the same tensors as float32 .npy",
          "[safetensors][python]") {
  sqbtest::require_python("torch");
  TempDir dir;
  const std::string out = run_script(dir, kTorchScript, "torch_write.py");
  INFO(out);
  const st::File f(dir.path / "torch.safetensors");
  REQUIRE(f.names().size() == 9);
  for (const std::string& name : f.names()) {
    INFO(name);
    const st::Array a = f.read(name);
    const sqb::npy::Array want = sqb::npy::read(dir.path / (name + ".npy"));
    CHECK(a.shape == want.shape);
    REQUIRE(a.values.size() == want.values.size());
    std::size_t differ = 0;
    for (std::size_t i = 0; i < a.values.size(); ++i)
      differ += !same(a.values[i], want.values[i]);
    CHECK(differ == 0);
  }
  CHECK(f.info("bf16.linear").dtype == st::DType::BF16);
  CHECK(f.read("bf16.scalar").shape.empty());
  CHECK(f.read("bf16.specials").values[3] != 0.0f);  // 1e-40 is a bfloat16 subnormal, not flushed
}
