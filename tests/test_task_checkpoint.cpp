// The task engine meets checkpoints: a float model as safetensors under PyTorch's names (written, read back
// bit for bit, read from BF16/F16, refused with the file and tensor named), and activation importance (the
// statistic against a direct float64 computation; the design it weights equal to the design of the same
// weights spelled out per element).

#include <catch2/catch.hpp>

#include <boost/random/mersenne_twister.hpp>
#include <boost/random/uniform_real_distribution.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <vector>

#include "cli_helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/safetensors.hpp"
#include "sqb/task.hpp"

namespace fs = std::filesystem;
namespace st = sqb::safetensors;
using Catch::Matchers::Contains;
using Catch::Matchers::WithinRel;
using sqb::task::Mlp;
using sqb::task::ModelSpec;

namespace {

sqb::task::Dataset noise_data(std::size_t n, std::size_t side, std::uint64_t seed) {
  boost::random::mt19937_64 eng(seed);
  boost::random::uniform_real_distribution<float> u(0, 1);
  sqb::task::Dataset d;
  d.count = n;
  d.height = d.width = side;
  d.pixels.resize(n * side * side);
  for (float& v : d.pixels)
    v = u(eng);
  d.labels.resize(n);
  for (std::size_t i = 0; i < n; ++i)
    d.labels[i] = static_cast<std::uint8_t>(i % 3);
  return d;
}

ModelSpec small_spec(bool bias) {
  ModelSpec s;
  s.inputs = 9;
  s.hidden = {7, 5};
  s.classes = 3;
  s.bias = bias;
  return s;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// A safetensors file of the given tensors, every one F32 unless `dtype` names it.
void write_raw(const fs::path& path, const std::vector<std::pair<st::Entry, std::vector<float>>>& tensors) {
  std::vector<st::Entry> entries;
  for (const auto& t : tensors)
    entries.push_back(t.first);
  st::Writer w(path, entries);
  for (const auto& t : tensors)
    w.write_values(t.first.name, t.second);
  w.commit();
}

}  // namespace

TEST_CASE("task checkpoint: torch's names, the weights as they are, read back bit for bit",
          "[task][checkpoint]") {
  CHECK(sqb::task::torch_name(0) == "0.weight");
  CHECK(sqb::task::torch_name(1) == "2.weight");
  CHECK(sqb::task::torch_name(2, true) == "4.bias");
  sqbtest::TempDir tmp;
  for (const bool bias : {false, true}) {
    INFO("bias " << bias);
    const Mlp m = sqb::task::init_mlp(small_spec(bias), 5);
    const fs::path f = tmp.path / (bias ? "b.safetensors" : "nb.safetensors");
    sqb::task::save_safetensors(f, m, {{"note", "x"}});
    const st::File file(f);
    CHECK(file.metadata().at("format") == "pt");
    CHECK(file.metadata().at("note") == "x");
    CHECK(file.names().size() == (bias ? 6u : 3u));
    for (std::size_t l = 0; l < 3; ++l) {
      const st::Array a = file.read(sqb::task::torch_name(l));
      CHECK(a.dtype == st::DType::F32);
      // torch.nn.Linear's [out, in], the engine's own row-major order: no transpose.
      CHECK(a.shape == std::vector<std::size_t>{m.weights[l].rows, m.weights[l].cols});
      CHECK(same_bytes(a.values, m.weights[l].values));
      if (bias) CHECK(same_bytes(file.read(sqb::task::torch_name(l, true)).values, m.biases[l]));
    }
    const Mlp back = sqb::task::load_safetensors(f, small_spec(bias));
    for (std::size_t l = 0; l < 3; ++l) {
      CHECK(same_bytes(back.weights[l].values, m.weights[l].values));
      CHECK(same_bytes(back.biases[l], m.biases[l]));
    }
  }
  // save_model keeps the same file beside the .npy files.
  const Mlp m = sqb::task::init_mlp(small_spec(false), 6);
  sqb::task::save_model(tmp.path / "dir", m, "k");
  const Mlp back = sqb::task::load_safetensors(tmp.path / "dir" / "model.safetensors", small_spec(false));
  CHECK(same_bytes(back.weights[1].values, m.weights[1].values));
  CHECK(st::File(tmp.path / "dir" / "model.safetensors").metadata().at("sqbench_model_key") == "k");
}

TEST_CASE("task checkpoint: BF16 and F16 tensors are read exactly as float32", "[task][checkpoint]") {
  sqbtest::TempDir tmp;
  const Mlp m = sqb::task::init_mlp(small_spec(false), 7);
  std::vector<std::pair<st::Entry, std::vector<float>>> t;
  const st::DType types[3] = {st::DType::BF16, st::DType::F16, st::DType::F32};
  for (std::size_t l = 0; l < 3; ++l)
    t.push_back(
        {{sqb::task::torch_name(l), types[l], {m.weights[l].rows, m.weights[l].cols}}, m.weights[l].values});
  write_raw(tmp.path / "mixed.safetensors", t);
  const Mlp back = sqb::task::load_safetensors(tmp.path / "mixed.safetensors", small_spec(false));
  for (std::size_t i = 0; i < m.weights[0].size(); ++i)
    CHECK(back.weights[0].values[i] == st::bf16_to_float(st::float_to_bf16(m.weights[0].values[i])));
  const st::File f(tmp.path / "mixed.safetensors");
  CHECK(same_bytes(back.weights[1].values, f.read("2.weight").values));
  CHECK(same_bytes(back.weights[2].values, m.weights[2].values));
  bool rounded = false;
  for (std::size_t i = 0; i < m.weights[0].size(); ++i)
    rounded = rounded || back.weights[0].values[i] != m.weights[0].values[i];
  CHECK(rounded);  // the BF16 tensor really went through the rounding
}

TEST_CASE("task checkpoint: a bad model file is refused naming the file and the tensor",
          "[task][checkpoint]") {
  sqbtest::TempDir tmp;
  const ModelSpec spec = small_spec(false);
  const Mlp m = sqb::task::init_mlp(spec, 8);
  const auto entry = [&](std::size_t l, st::DType d = st::DType::F32) {
    return std::pair<st::Entry, std::vector<float>>{
        {sqb::task::torch_name(l), d, {m.weights[l].rows, m.weights[l].cols}}, m.weights[l].values};
  };
  const fs::path missing = tmp.path / "nope.safetensors";
  CHECK_THROWS_WITH(sqb::task::load_safetensors(missing, spec),
                    Contains(missing.string()) && Contains("no such file"));

  write_raw(tmp.path / "two.safetensors", {entry(0), entry(2)});
  CHECK_THROWS_WITH(sqb::task::load_safetensors(tmp.path / "two.safetensors", spec),
                    Contains("two.safetensors") && Contains("no tensor \"2.weight\"") &&
                        Contains("0.weight, 2.weight, 4.weight"));

  auto shaped = entry(1);
  shaped.first.shape = {7, 5};
  shaped.second.resize(35);
  write_raw(tmp.path / "shape.safetensors", {entry(0), shaped, entry(2)});
  CHECK_THROWS_WITH(
      sqb::task::load_safetensors(tmp.path / "shape.safetensors", spec),
      Contains("shape.safetensors") && Contains("\"2.weight\" has shape [7, 5], expected [5, 7]"));

  write_raw(tmp.path / "f64.safetensors", {entry(0), entry(1, st::DType::F64), entry(2)});
  CHECK_THROWS_WITH(
      sqb::task::load_safetensors(tmp.path / "f64.safetensors", spec),
      Contains("f64.safetensors") && Contains("\"2.weight\" is F64") && Contains("F32, BF16 or F16"));

  write_raw(tmp.path / "extra.safetensors",
            {entry(0), entry(1), entry(2), {{"2.bias", st::DType::F32, {5}}, std::vector<float>(5)}});
  CHECK_THROWS_WITH(sqb::task::load_safetensors(tmp.path / "extra.safetensors", spec),
                    Contains("extra.safetensors") && Contains("\"2.bias\" is not part of the network") &&
                        Contains("bias="));

  auto nan = entry(2);
  nan.second[3] = std::numeric_limits<float>::quiet_NaN();
  write_raw(tmp.path / "nan.safetensors", {entry(0), entry(1), nan});
  CHECK_THROWS_WITH(
      sqb::task::load_safetensors(tmp.path / "nan.safetensors", spec),
      Contains("nan.safetensors") && Contains("\"4.weight\" holds a non-finite value at flat index 3"));

  std::ofstream(tmp.path / "junk.safetensors") << "not a safetensors file";
  CHECK_THROWS_WITH(sqb::task::load_safetensors(tmp.path / "junk.safetensors", spec),
                    Contains("junk.safetensors"));
}

TEST_CASE("task: activation importance equals a direct float64 computation of mean x^2 per input feature",
          "[task][checkpoint]") {
  const sqb::task::Dataset data = noise_data(1300, 3, 11);  // more than one batch of 1000
  const Mlp m = sqb::task::init_mlp(small_spec(true), 9);
  const auto act = sqb::task::activation_importance(m, data);
  const auto sizes = m.spec.sizes();
  REQUIRE(act.size() == 3);
  std::vector<std::vector<double>> expect(3);
  for (std::size_t l = 0; l < 3; ++l)
    expect[l].assign(sizes[l], 0.0);
  for (std::size_t i = 0; i < data.count; ++i) {
    std::vector<double> a(data.pixels.begin() + static_cast<std::ptrdiff_t>(i * 9),
                          data.pixels.begin() + static_cast<std::ptrdiff_t>((i + 1) * 9));
    for (std::size_t l = 0; l < 3; ++l) {
      for (std::size_t c = 0; c < a.size(); ++c)
        expect[l][c] += a[c] * a[c] / 1300.0;
      if (l == 2) break;
      std::vector<double> z(sizes[l + 1]);
      for (std::size_t o = 0; o < z.size(); ++o) {
        double s = m.biases[l][o];
        for (std::size_t c = 0; c < a.size(); ++c)
          s += static_cast<double>(m.weights[l].values[o * a.size() + c]) * a[c];
        z[o] = s > 0 ? s : 0;  // hidden layers: after the ReLU
      }
      a = z;
    }
  }
  for (std::size_t l = 0; l < 3; ++l) {
    REQUIRE(act[l].size() == sizes[l]);
    for (std::size_t c = 0; c < sizes[l]; ++c) {
      INFO("layer " << l << " column " << c);
      CHECK_THAT(act[l][c], WithinRel(expect[l][c], 1e-5));
    }
  }
  // Layer 0 is the pixels themselves: float32 squares summed in double, so equal to that rounding.
  for (std::size_t c = 0; c < 9; ++c) {
    double s = 0;
    for (std::size_t i = 0; i < data.count; ++i)
      s += static_cast<double>(data.pixels[i * 9 + c]) * static_cast<double>(data.pixels[i * 9 + c]);
    CHECK(act[0][c] == static_cast<float>(s * (1.0 / 1300.0)));
  }
  CHECK_THROWS_AS(sqb::task::activation_importance(m, noise_data(10, 2, 1)), sqb::Error);
}

TEST_CASE("task: per-column importance designs exactly what the same weights per element design",
          "[task][checkpoint]") {
  const sqb::task::Dataset data = noise_data(400, 3, 12);
  const Mlp m = sqb::task::init_mlp(small_spec(false), 10);
  const auto act = sqb::task::activation_importance(m, data);
  const auto full = sqb::task::expand_columns(m, act);
  for (std::size_t l = 0; l < 3; ++l) {
    REQUIRE(full[l].rows == m.weights[l].rows);
    for (std::size_t r = 0; r < full[l].rows; ++r)
      for (std::size_t c = 0; c < full[l].cols; ++c)
        CHECK(full[l].values[r * full[l].cols + c] == act[l][c]);
  }
  for (const char* q : {"kmeans", "kmeans_optimal"}) {
    INFO(q);
    const sqb::Granularity g{sqb::Granularity::Kind::tensor, 0};
    sqb::task::QuantizerTransform by_col(q, 3, g, 4, {}, act);
    sqb::task::QuantizerTransform by_elem(q, 3, g, 4, full);
    sqb::task::QuantizerTransform plain(q, 3, g, 4);
    const auto a = sqb::task::apply_transform(m, sqb::task::WeightTransform(std::ref(by_col)));
    const auto b = sqb::task::apply_transform(m, sqb::task::WeightTransform(std::ref(by_elem)));
    const auto p = sqb::task::apply_transform(m, sqb::task::WeightTransform(std::ref(plain)));
    bool differs = false;
    for (std::size_t l = 0; l < 3; ++l) {
      CHECK(same_bytes(a[l].weights.values, b[l].weights.values));
      CHECK(a[l].levels == b[l].levels);
      CHECK(a[l].codes == b[l].codes);
      differs = differs || !same_bytes(a[l].weights.values, p[l].weights.values);
    }
    CHECK(differs);  // the importance did change the design
    const auto qa = sqb::task::measure_network(m.weights, a, 3, 0, full);
    CHECK(std::isfinite(qa.total.wmse));
  }
  CHECK_THROWS_WITH(sqb::task::QuantizerTransform("kmeans", 3, sqb::Granularity{}, 0, full, act),
                    Contains("not both"));
  std::vector<std::vector<float>> short_act = act;
  short_act[1].pop_back();
  sqb::task::QuantizerTransform bad("kmeans", 3, sqb::Granularity{}, 0, {}, short_act);
  CHECK_THROWS_WITH(sqb::task::apply_transform(m, sqb::task::WeightTransform(std::ref(bad))),
                    Contains("layer 1 has 7 columns but its column importance has 6 values"));
}

TEST_CASE("task spec: weights=activations and model= parse, and model= is part of the float model's key",
          "[task][checkpoint][spec]") {
  const auto a = sqb::task::parse_task_spec("fashion_mnist weights=activations");
  CHECK(a.weights == sqb::task::Importance::activations);
  const auto d = sqb::task::parse_task_spec("fashion_mnist");
  CHECK(a.canonical() == d.canonical());
  const auto m = sqb::task::parse_task_spec("fashion_mnist model=x/q.safetensors");
  CHECK(m.model == fs::path("x/q.safetensors"));
  CHECK(m.canonical() == d.canonical() + " model=x/q.safetensors");
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist weights=act"),
                    Contains("none|fisher|activations"));
}
