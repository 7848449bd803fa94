// Importance from llama.cpp's importance matrices (GGUF imatrix and legacy .dat, files built here byte by
// byte from the formats' descriptions) and from the safetensors format: each gives the same checkpoint as the
// equivalent full-shape weights; the Llama name map and --rename rules; validation.

#include <catch2/catch.hpp>

#include <bit>
#include <cstring>
#include <filesystem>

#include "cli_helpers.hpp"
#include "helpers.hpp"
#include "sqb/checkpoint.hpp"
#include "sqb/error.hpp"
#include "sqb/importance.hpp"
#include "sqb/quantize.hpp"
#include "sqb/safetensors.hpp"

namespace fs = std::filesystem;
namespace st = sqb::safetensors;
using sqbtest::TempDir;

namespace {

struct Bytes {
  std::string s;
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
      s += static_cast<char>((v >> (8 * i)) & 0xFF);
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
      s += static_cast<char>((v >> (8 * i)) & 0xFF);
  }
  void f32(float v) { u32(std::bit_cast<std::uint32_t>(v)); }
  void gstr(const std::string& t) {
    u64(t.size());
    s += t;
  }
};

// A GGUF imatrix: for each (name, sums, count) the tensors name.in_sum2 [n] and name.counts [1].
std::string gguf(const std::vector<std::tuple<std::string, std::vector<float>, float>>& entries) {
  Bytes b;
  b.s = "GGUF";
  b.u32(3);
  b.u64(entries.size() * 2);
  b.u64(2);
  b.gstr("general.type");  // a string value
  b.u32(8);
  b.gstr("imatrix");
  b.gstr("imatrix.datasets");  // an array of strings
  b.u32(9);
  b.u32(8);
  b.u64(1);
  b.gstr("calib.txt");
  std::uint64_t offset = 0;
  std::string data;
  Bytes d;
  for (const auto& [name, sums, count] : entries) {
    b.gstr(name + ".in_sum2");
    b.u32(1);
    b.u64(sums.size());
    b.u32(0);
    b.u64(offset);
    for (const float v : sums)
      d.f32(v);
    offset += sums.size() * 4;
    while (offset % 32) {
      d.s += '\0';
      ++offset;
    }
    b.gstr(name + ".counts");
    b.u32(1);
    b.u64(1);
    b.u32(0);
    b.u64(offset);
    d.f32(count);
    offset += 4;
    while (offset % 32) {
      d.s += '\0';
      ++offset;
    }
  }
  while (b.s.size() % 32)
    b.s += '\0';
  return b.s + d.s;
}

std::string dat(const std::vector<std::tuple<std::string, std::vector<float>, int>>& entries) {
  Bytes b;
  b.u32(static_cast<std::uint32_t>(entries.size()));
  for (const auto& [name, sums, ncall] : entries) {
    b.u32(static_cast<std::uint32_t>(name.size()));
    b.s += name;
    b.u32(static_cast<std::uint32_t>(ncall));
    b.u32(static_cast<std::uint32_t>(sums.size()));
    for (const float v : sums)
      b.f32(v);
  }
  b.u32(10);  // last chunk
  b.u32(9);
  b.s += "calib.txt";
  return b.s;
}

std::vector<float> scaled(const std::vector<float>& v, float k) {
  std::vector<float> out(v);
  for (float& x : out)
    x *= k;
  return out;
}

}  // namespace

TEST_CASE("imatrix: GGUF, .dat and safetensors importance give the checkpoint full-shape weights give",
          "[imatrix][importance]") {
  const TempDir d;
  const std::size_t rows = 8, cols = 24;
  std::vector<float> w(rows * cols), v(cols);
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = std::sin(static_cast<float>(i) * 0.91f) * 0.05f;
  for (std::size_t c = 0; c < cols; ++c)
    v[c] = 0.25f + static_cast<float>((c * 37) % 11);  // exact in float after x4 and /4
  const std::string hf = "model.layers.0.mlp.down_proj.weight";
  st::write_file(d.path / "m.safetensors",
                 std::vector<st::Blob>{{{hf, st::DType::F32, {rows, cols}},
                                        {reinterpret_cast<const unsigned char*>(w.data()), w.size() * 4}}},
                 {{"format", "pt"}});
  st::write_file(d.path / "imp.safetensors",
                 std::vector<st::Blob>{{{hf, st::DType::F32, {cols}},
                                        {reinterpret_cast<const unsigned char*>(v.data()), v.size() * 4}}});
  d.write("imatrix.gguf", gguf({{"blk.0.ffn_down.weight", scaled(v, 4.0f), 4.0f}}));
  d.write("imatrix.dat", dat({{"blk.0.ffn_down.weight", scaled(v, 4.0f), 4}}));
  d.write("other.gguf", gguf({{"foo.0.bar.weight", scaled(v, 4.0f), 4.0f}}));

  for (const char* f : {"imatrix.gguf", "imatrix.dat"}) {
    const sqb::Importance imp = sqb::read_importance(d.path / f);
    REQUIRE(imp.find(hf) != nullptr);
    CHECK(*imp.find(hf) == v);
  }
  // The reference: sqb::quantize with the full-shape weights.
  std::vector<float> full(rows * cols);
  for (std::size_t i = 0; i < full.size(); ++i)
    full[i] = v[i % cols];
  sqb::QuantizeOptions qo;
  qo.granularity = sqb::Granularity::parse("channel");
  qo.weights = full;
  const sqb::Quantized ref = sqb::quantize(sqb::TensorView(rows, cols, w), "kmeans", 4, qo);
  int n = 0;
  for (const auto& [file, rename] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"imp.safetensors", {}},
           {"imatrix.gguf", {}},
           {"imatrix.dat", {}},
           {"other.gguf", {R"(foo\.(\d+)\.bar\.weight=model.layers.$1.mlp.down_proj.weight)"}}}) {
    INFO(file);
    sqb::CheckpointOptions o;
    o.input = d.path / "m.safetensors";
    o.out = d.path / ("out" + std::to_string(n++));
    o.spec = "kmeans";
    o.k = 4;
    o.importance = d.path / file;
    o.rename = rename;
    o.pack = true;
    sqb::quantize_checkpoint(o);
    const st::Array got = st::File(o.out / "model.safetensors").read(hf);
    CHECK(got.values == sqbtest::vec(ref.decoded));
    const st::Array cb = st::File(o.out / "packed.safetensors").read(hf + ".codebooks");
    std::vector<float> want;
    for (const auto& des : ref.designs)
      want.insert(want.end(), des.codebook.levels().begin(), des.codebook.levels().end());
    CHECK(cb.values == want);
  }
  // Without the rename, the file's own name matches no weight: an error naming it, before any work.
  sqb::CheckpointOptions o;
  o.input = d.path / "m.safetensors";
  o.out = d.path / "none";
  o.spec = "kmeans";
  o.k = 4;
  o.importance = d.path / "other.gguf";
  CHECK_THROWS_WITH(sqb::quantize_checkpoint(o),
                    Catch::Contains("no importance vector for the quantized tensor"));
  CHECK_FALSE(fs::exists(d.path / "none"));
}

TEST_CASE("imatrix: the Llama name map both ways", "[imatrix][importance]") {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"},
      {"blk.31.ffn_gate.weight", "model.layers.31.mlp.gate_proj.weight"},
      {"blk.2.ffn_up.weight", "model.layers.2.mlp.up_proj.weight"},
      {"blk.7.attn_q.weight", "model.layers.7.self_attn.q_proj.weight"},
      {"blk.7.attn_k.weight", "model.layers.7.self_attn.k_proj.weight"},
      {"blk.7.attn_v.weight", "model.layers.7.self_attn.v_proj.weight"},
      {"blk.7.attn_output.weight", "model.layers.7.self_attn.o_proj.weight"},
      {"blk.3.attn_norm.weight", "model.layers.3.input_layernorm.weight"},
      {"blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"},
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  for (const auto& [l, h] : pairs) {
    CHECK(sqb::llama_to_hf(l) == h);
    CHECK(sqb::hf_to_llama(h) == l);
  }
  for (const char* same :
       {"blk.x.ffn_down.weight", "blk.0.ffn_downs.weight", "something.else", "blk.0.ffn_down"})
    CHECK(sqb::llama_to_hf(same) == same);
}

TEST_CASE("imatrix: malformed GGUF and .dat files are refused naming the problem", "[imatrix][importance]") {
  const std::vector<float> v = {1, 2, 3};
  const auto parse_g = [](const std::string& s) {
    return sqb::parse_gguf_imatrix({reinterpret_cast<const unsigned char*>(s.data()), s.size()}, "x.gguf");
  };
  const auto parse_d = [](const std::string& s) {
    return sqb::parse_legacy_imatrix({reinterpret_cast<const unsigned char*>(s.data()), s.size()}, "x.dat");
  };
  const std::string good = gguf({{"a.weight", v, 2.0f}});
  CHECK(*parse_g(good).find("a.weight") == std::vector<float>{0.5f, 1.0f, 1.5f});
  for (std::size_t cut : {3u, 10u, 30u, 60u, 100u}) {
    INFO("cut at " << cut);
    CHECK_THROWS_AS(parse_g(good.substr(0, cut)), sqb::Error);
  }
  CHECK_THROWS_WITH(parse_g(gguf({{"a.weight", v, 0.0f}})), Catch::Contains("a token count must be > 0"));
  CHECK_THROWS_WITH(parse_g(gguf({{"a.weight", {1, -2}, 1.0f}})),
                    Catch::Contains("importance entry 1 is -2"));
  std::string bad_version = good;
  bad_version[4] = 9;
  CHECK_THROWS_WITH(parse_g(bad_version), Catch::Contains("GGUF version 9"));
  std::string huge_count = good;
  huge_count[8 + 7] = 0x7F;  // tensor count ~ 2^63
  CHECK_THROWS_WITH(parse_g(huge_count), Catch::Contains("beyond the file"));
  const std::string gd = dat({{"a.weight", v, 2}});
  CHECK(*parse_d(gd).find("a.weight") == std::vector<float>{0.5f, 1.0f, 1.5f});
  CHECK_THROWS_WITH(parse_d(dat({{"a.weight", v, 0}})), Catch::Contains("ncall 0 is not positive"));
  CHECK_THROWS_WITH(parse_d(dat({{"a.weight", v, 1}, {"a.weight", v, 1}})), Catch::Contains("appears twice"));
  for (const std::size_t cut : std::vector<std::size_t>{2, 6, 15, 25, gd.size() - 3})
    CHECK_THROWS_AS(parse_d(gd.substr(0, cut)), sqb::Error);
  sqb::Importance imp = parse_d(dat({{"a.weight", v, 1}, {"b.weight", v, 1}}));
  CHECK_THROWS_WITH(sqb::rename_importance(imp, {"(a|b)\\.weight=same"}),
                    Catch::Contains("are both renamed to"));
  CHECK_THROWS_WITH(sqb::rename_importance(imp, {"(=x"}), Catch::Contains("not a valid regex"));
}

TEST_CASE("imatrix: the fuzz seed corpora parse, or are refused when named bad_", "[imatrix][importance]") {
  std::size_t seen = 0;
  for (const char* dir : {"gguf", "imatrix_dat"}) {
    for (const auto& e : fs::directory_iterator(fs::path(SQB_SOURCE_DIR) / "tests" / "fuzz" / dir)) {
      const std::string bytes = sqbtest::slurp(e.path());
      const std::span<const unsigned char> b(reinterpret_cast<const unsigned char*>(bytes.data()),
                                             bytes.size());
      const auto parse = [&] {
        return std::string(dir) == "gguf" ? sqb::parse_gguf_imatrix(b, e.path().string())
                                          : sqb::parse_legacy_imatrix(b, e.path().string());
      };
      INFO(e.path());
      if (e.path().filename().string().rfind("bad_", 0) == 0) {
        CHECK_THROWS_AS(parse(), sqb::Error);
      } else {
        CHECK_FALSE(parse().vectors.empty());
      }
      ++seen;
    }
  }
  CHECK(seen >= 15);
}
