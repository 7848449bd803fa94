// The quantizer as a weight transform (sqb::task::QuantizerTransform): the forward pass uses exactly the
// library's Q(W) (sqb::quantize's reconstruction, bit for bit), steps between re-designs encode with the last
// codebooks (reuse_design), a quantizer that keeps every weight makes QAT equal float training bit for bit,
// the Fisher diagonal reaches the designs as importance weights, and measure_network pools the per-layer
// metrics of sqb::quantize.

#include <catch2/catch.hpp>

#include <boost/random/mersenne_twister.hpp>
#include <boost/random/uniform_real_distribution.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/task.hpp"
#include "task/trainer.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;
using sqb::task::FakeQuant;
using sqb::task::Mlp;
using sqb::task::QuantizerTransform;
using sqb::task::TransformCall;
using sqb::task::WeightTransform;

namespace {

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Ten classes of 3 x 3 images: a prototype per class plus noise (learnable, so training moves the weights).
sqb::task::Dataset toy_data(std::size_t n, std::uint64_t seed) {
  boost::random::mt19937_64 eng(seed);
  boost::random::uniform_real_distribution<float> u(0, 1);
  std::vector<float> proto(10 * 9);
  for (float& v : proto)
    v = u(eng);
  sqb::task::Dataset d;
  d.count = n;
  d.height = d.width = 3;
  d.pixels.resize(n * 9);
  d.labels.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    d.labels[i] = static_cast<std::uint8_t>(i % 10);
    for (std::size_t k = 0; k < 9; ++k)
      d.pixels[i * 9 + k] = std::clamp(proto[d.labels[i] * 9 + k] + 0.5f * (u(eng) - 0.5f), 0.0f, 1.0f);
  }
  return d;
}

Mlp toy_model(std::uint64_t seed) {
  sqb::task::ModelSpec spec;
  spec.inputs = 9;
  spec.hidden = {6};
  return sqb::task::init_mlp(spec, seed);
}

// The library's one call for layer `layer` of a transform built with `seed`.
sqb::Quantized library_q(const sqb::Tensor& w, const std::string& spec, std::size_t k, const std::string& g,
                         std::uint64_t seed, std::size_t layer, std::span<const float> weights = {}) {
  sqb::QuantizeOptions o;
  o.granularity = sqb::Granularity::parse(g);
  o.seed = sqb::block_seed(seed, layer);
  o.weights = weights;
  return sqb::quantize(w, spec, k, o);
}

}  // namespace

TEST_CASE("quantizer transform: W_q is sqb::quantize's reconstruction bit for bit, with its assignment",
          "[task][task-quantizer]") {
  const auto [spec, k, g] =
      GENERATE(std::tuple<std::string, std::size_t, std::string>{"uniform symmetric=1", 8, "channel"},
               std::tuple<std::string, std::size_t, std::string>{"kmeans", 16, "tensor"},
               std::tuple<std::string, std::size_t, std::string>{"phi_log cluster=32", 16, "channel"},
               std::tuple<std::string, std::size_t, std::string>{"nf4", 16, "group:64"});
  INFO(spec << " K=" << k << " " << g);
  const sqb::Tensor w = sqbtest::tensor(12, 100, 3);
  QuantizerTransform qt(spec, k, sqb::Granularity::parse(g), /*seed=*/5);
  const FakeQuant fq = qt(TransformCall{1, 0, true}, w);
  const sqb::Quantized ref = library_q(w, spec, k, g, 5, 1);
  CHECK(same_bits(fq.weights.values, ref.decoded));
  REQUIRE(fq.blocks.size() == ref.blocks.size());
  for (std::size_t b = 0; b < ref.blocks.size(); ++b) {
    CHECK(fq.blocks[b].offset == ref.blocks[b].offset);
    CHECK(same_bits(fq.levels[b], ref.designs[b].codebook.levels()));
  }
  for (std::size_t i = 0; i < w.size(); ++i)
    REQUIRE(fq.codes[i] == ref.codes[i]);
  // The transform's kept result is the pipeline's, unmeasured (a training step needs only W_q).
  CHECK(same_bits(qt.result(1).decoded, ref.decoded));
  CHECK(qt.result(0).designs.empty());
}

TEST_CASE("quantizer transform: between re-designs the latent weights are encoded with the last codebooks",
          "[task][task-quantizer]") {
  const sqb::Tensor a = sqbtest::tensor(6, 50, 11), b = sqbtest::tensor(6, 50, 12);
  QuantizerTransform qt("kmeans", 4, sqb::Granularity::parse("channel"), 0);
  const FakeQuant fa = qt(TransformCall{0, 0, true}, a);
  const FakeQuant fb = qt(TransformCall{0, 1, false}, b);  // assign b to a's codebooks
  CHECK(fb.levels == fa.levels);
  // The pipeline with reuse_design on a's result is the reference: the shared encoder, a's codebooks.
  const auto q = sqb::make_quantizer("kmeans", {4, 0});
  sqb::QuantizeOptions o;
  o.granularity = sqb::Granularity::parse("channel");
  o.seed = sqb::block_seed(0, 0);
  sqb::Quantized r = sqb::quantize(a, *q, o);
  CHECK(same_bits(sqbtest::reencode(r, *q, b.values), fb.weights.values));
  o.reuse_design = true;
  sqb::quantize_into(b, *q, o, r);
  CHECK(same_bits(r.decoded, fb.weights.values));
  // A redesign designs from b itself.
  const FakeQuant fc = qt(TransformCall{0, 2, true}, b);
  CHECK(same_bits(fc.weights.values, library_q(b, "kmeans", 4, "channel", 0, 0).decoded));
  CHECK_FALSE(same_bits(fc.weights.values, fb.weights.values));
  // Reusing before any design, or importance weights of the wrong shape, are errors.
  QuantizerTransform fresh("kmeans", 4, sqb::Granularity::parse("channel"), 0);
  CHECK_THROWS_WITH(fresh(TransformCall{0, 3, false}, a), Contains("before any was designed"));
  QuantizerTransform weighted("kmeans", 4, sqb::Granularity::parse("channel"), 0, {sqb::Tensor(2, 2)});
  CHECK_THROWS_WITH(weighted(TransformCall{0, 0, true}, a), Contains("importance weights are 2 x 2"));
  CHECK_THROWS_AS(QuantizerTransform("kmeans init=nope", 4, {}, 0), sqb::Error);
}

TEST_CASE("quantizer transform: QAT's forward pass uses exactly Q(W) of the library, every step",
          "[task][task-quantizer]") {
  const sqb::task::Dataset data = toy_data(40, 2);
  Mlp model = toy_model(4);
  QuantizerTransform qt("uniform symmetric=1", 8, sqb::Granularity::parse("channel"), 9);
  const WeightTransform f = std::ref(qt);
  sqb::task::QatOptions qo;
  qo.redesign = 3;
  sqb::task::detail::Trainer trainer(model, qo.train, &qo, &f);
  arma::fmat x;
  std::vector<std::uint8_t> labels;
  const std::vector<std::size_t> index = {0, 1, 2, 3, 4, 5, 6, 7};
  sqb::task::detail::gather(data, index, x, labels);
  const auto q = sqb::make_quantizer("uniform symmetric=1", {8, 9});
  std::vector<sqb::Quantized> last(model.weights.size());
  for (std::size_t step = 0; step < 5; ++step) {
    const std::vector<sqb::Tensor> latent = model.weights;  // before the step
    trainer.step(x, labels);
    for (std::size_t l = 0; l < latent.size(); ++l) {
      INFO("step " << step << ", layer " << l);
      sqb::QuantizeOptions o;
      o.granularity = sqb::Granularity::parse("channel");
      o.seed = sqb::block_seed(9, l);
      o.reuse_design = step % 3 != 0;  // redesign=3: designs before steps 0 and 3
      sqb::quantize_into(latent[l], *q, o, last[l]);
      CHECK(same_bits(trainer.used_weights(l), last[l].decoded));
    }
  }
}

TEST_CASE(
    "quantizer transform: a quantizer that keeps every weight makes QAT equal float training bit for bit",
    "[task][task-quantizer]") {
  // k-means with K = 16 per output row: every row has at most 9 distinct weights, so every weight is a level
  // (its exact design for few distinct values) and W_q == W after every re-design.
  const sqb::task::Dataset data = toy_data(200, 3);
  Mlp float_model = toy_model(1), qat_model = toy_model(1);
  sqb::task::TrainOptions o;
  o.epochs = 2;
  o.batch = 16;
  o.adamw.lr = 2e-3;
  o.seed = 6;
  sqb::task::train(float_model, data, o);
  QuantizerTransform qt("kmeans", 16, sqb::Granularity::parse("channel"), 0);
  sqb::task::QatOptions qo;
  qo.train = o;
  const sqb::task::QatReport r = sqb::task::train_qat(qat_model, data, qo, std::ref(qt));
  CHECK(r.redesigns == r.transform_calls);
  for (std::size_t l = 0; l < float_model.weights.size(); ++l) {
    CHECK(same_bits(qat_model.weights[l].values, float_model.weights[l].values));
    CHECK(same_bits(r.final[l].weights.values, float_model.weights[l].values));
  }
  // A real quantizer moves away from it (the test above can fail).
  Mlp coarse = toy_model(1);
  QuantizerTransform q2("kmeans", 2, sqb::Granularity::parse("channel"), 0);
  sqb::task::train_qat(coarse, data, qo, std::ref(q2));
  CHECK_FALSE(same_bits(coarse.weights[0].values, float_model.weights[0].values));
}

TEST_CASE("quantizer transform: importance weights (the Fisher diagonal) reach the designs",
          "[task][task-quantizer]") {
  const sqb::task::Dataset data = toy_data(100, 5);
  Mlp model = toy_model(2);
  const std::vector<sqb::Tensor> fisher = sqb::task::fisher_diagonal(model, data);
  QuantizerTransform weighted("kmeans", 4, sqb::Granularity::parse("tensor"), 0, fisher);
  QuantizerTransform plain("kmeans", 4, sqb::Granularity::parse("tensor"), 0);
  const auto fw = sqb::task::apply_transform(model, std::ref(weighted));
  const auto fp = sqb::task::apply_transform(model, std::ref(plain));
  for (std::size_t l = 0; l < fw.size(); ++l) {
    INFO("layer " << l);
    CHECK(same_bits(fw[l].weights.values,
                    library_q(model.weights[l], "kmeans", 4, "tensor", 0, l, fisher[l].values).decoded));
  }
  CHECK(fw[0].levels != fp[0].levels);  // weighted k-means puts its levels elsewhere
  // measure_network's wmse: the weighted squared error, each layer and in total.
  const sqb::task::NetworkQuality qw = sqb::task::measure_network(model.weights, fw, 4, 4, fisher);
  const sqb::task::NetworkQuality qp = sqb::task::measure_network(model.weights, fp, 4, 4, fisher);
  CHECK(qw.total.wmse < qp.total.wmse);  // what the weights ask the designs to minimise
  CHECK(std::isnan(sqb::task::measure_network(model.weights, fw, 4, 4).total.wmse));
}

TEST_CASE("measure_network: each layer as sqb::quantize measures it, the total over every weight",
          "[task][task-quantizer]") {
  const Mlp model = toy_model(8);
  const std::string spec = "uniform";
  QuantizerTransform qt(spec, 4, sqb::Granularity::parse("channel"), 0);
  const auto fq = sqb::task::apply_transform(model, std::ref(qt));
  const std::size_t side = qt.quantizer().side_values().per_block;
  const sqb::task::NetworkQuality q = sqb::task::measure_network(model.weights, fq, 4, side);
  double n = 0, err = 0, power = 0, storage = 0, entropy = 0;
  for (std::size_t l = 0; l < model.weights.size(); ++l) {
    const sqb::Quantized ref = library_q(model.weights[l], spec, 4, "channel", 0, l);
    const sqb::Metrics& m = q.layers[l];
    INFO("layer " << l);
    CHECK(m.mse == ref.metrics.mse);
    CHECK(m.sqnr_db == ref.metrics.sqnr_db);
    CHECK(m.entropy_bits == ref.metrics.entropy_bits);
    CHECK(m.storage_bits == ref.metrics.storage_bits);
    const auto& x = model.weights[l].values;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double e = static_cast<double>(x[i]) - static_cast<double>(ref.decoded[i]);
      err += e * e;
      power += static_cast<double>(x[i]) * x[i];
    }
    n += static_cast<double>(x.size());
    storage += ref.metrics.storage_bits * static_cast<double>(x.size());
    entropy += ref.metrics.entropy_bits * static_cast<double>(x.size());
  }
  CHECK_THAT(q.total.mse, WithinRel(err / n, 1e-12));
  CHECK_THAT(q.total.sqnr_db, WithinAbs(10 * std::log10(power / err), 1e-9));
  CHECK_THAT(q.total.storage_bits, WithinRel(storage / n, 1e-12));
  CHECK_THAT(q.total.entropy_bits, WithinRel(entropy / n, 1e-12));
  CHECK(q.total.n == static_cast<std::size_t>(n));
  std::vector<FakeQuant> bare = fq;
  bare[0].blocks.clear();
  CHECK_THROWS_WITH(sqb::task::measure_network(model.weights, bare, 4, side), Contains("assignment"));
}
