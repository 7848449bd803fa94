// A task cell evaluated by the library (sqb::task::evaluate_cell), on a toy network and toy data: it fills
// exactly the columns describe() plans for each mode and importance, its PTQ figures are each layer's
// sqb::quantize (per-layer mse, blocks, the quantized network's accuracy), its fine-tuning modes train with
// the task's recipe, and bad cells are refused.

#include <catch2/catch.hpp>

#include <algorithm>
#include <boost/random/mersenne_twister.hpp>
#include <boost/random/uniform_real_distribution.hpp>
#include <cmath>
#include <functional>
#include <set>
#include <vector>

#include "helpers.hpp"
#include "sqb/cell.hpp"
#include "sqb/error.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/task.hpp"

using Catch::Matchers::Contains;
namespace task = sqb::task;

namespace {

// Ten classes of 3 x 3 images: a prototype per class (the same for every `seed`) plus noise drawn from
// `seed`.
task::Dataset toy_data(std::size_t n, std::uint64_t seed) {
  boost::random::mt19937_64 eng(99);
  boost::random::uniform_real_distribution<float> u(0, 1);
  std::vector<float> proto(10 * 9);
  for (float& v : proto)
    v = u(eng);
  eng.seed(seed);
  task::Dataset d;
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

const char* kSpec = "fashion_mnist hidden=16 epochs=20 batch=16 lr=0.01 qat_epochs=2 qat_lr=0.001";

// The float model of `spec` trained with seed 5 on `train`, with its statistics.
task::TrainedModel trained(const task::TaskSpec& spec, const task::Dataset& train) {
  task::TrainedModel m;
  m.mlp = task::init_mlp(task::model_spec(spec, train.features()), 5);
  task::TrainOptions o;
  o.epochs = spec.epochs;
  o.batch = spec.batch;
  o.adamw.lr = spec.lr;
  o.seed = 5;
  m.train_s = task::train(m.mlp, train, o).seconds;
  m.fisher = task::fisher_diagonal(m.mlp, train);
  m.activations = task::activation_importance(m.mlp, train);
  return m;
}

sqb::Cell cell_of(sqb::TaskMode mode, const std::string& spec, const std::string& quantizer = "",
                  std::size_t k = 0, const std::string& granularity = "tensor") {
  sqb::Cell c{"", quantizer, 0, k, granularity, 5};
  c.task = spec;
  c.mode = mode;
  return c;
}

double figure(const task::CellResult& r, sqb::Col col) {
  for (const sqb::Figure& f : r.figures.figures)
    if (f.column == col) return f.value;
  FAIL("no figure for column " << sqb::column_info(col).name);
  return NAN;
}

}  // namespace

TEST_CASE("evaluate_cell fills exactly the columns describe() plans, in every mode and importance",
          "[task][cell]") {
  const task::Dataset train = toy_data(300, 1), test = toy_data(200, 2);
  for (const std::string weights : {"none", "fisher", "activations"}) {
    const std::string text = std::string(kSpec) + " weights=" + weights;
    const task::TaskSpec spec = task::parse_task_spec(text);
    const task::TrainedModel model = trained(spec, train);
    for (const sqb::TaskMode mode :
         {sqb::TaskMode::fp32, sqb::TaskMode::fp32_ft, sqb::TaskMode::ptq, sqb::TaskMode::qat}) {
      const bool quantized = mode == sqb::TaskMode::ptq || mode == sqb::TaskMode::qat;
      const sqb::Cell c = quantized ? cell_of(mode, text, "kmeans", 4, "channel") : cell_of(mode, text);
      INFO(text << " | " << sqb::task_mode_name(mode));
      const task::CellResult r = task::evaluate_cell(c, spec, model, train, test);
      std::multiset<sqb::Col> filled;
      for (const sqb::Figure& f : r.figures.figures) {
        filled.insert(f.column);
        CHECK(std::isfinite(f.value));
      }
      for (const sqb::FigureList& f : r.figures.lists) {
        filled.insert(f.column);
        CHECK(f.values.size() == model.mlp.weights.size());
      }
      const std::vector<sqb::Col> planned = sqb::describe(c).columns;
      CHECK(filled == std::multiset<sqb::Col>(planned.begin(), planned.end()));
      // Far above chance (10%) on the toy classes.
      CHECK(figure(r, sqb::Col::accuracy) > 50);
      if (mode == sqb::TaskMode::fp32) CHECK(r.train_s == model.train_s);
      if (mode == sqb::TaskMode::ptq) CHECK(r.train_s == 0);
      if (mode == sqb::TaskMode::fp32_ft || mode == sqb::TaskMode::qat) CHECK(r.train_s > 0);
    }
  }
}

TEST_CASE(
    "evaluate_cell: PTQ is each layer's sqb::quantize, fp32 and fp32_ft the float model and its "
    "fine-tuning",
    "[task][cell]") {
  const task::Dataset train = toy_data(300, 1), test = toy_data(200, 2);
  const task::TaskSpec spec = task::parse_task_spec(kSpec);
  const task::TrainedModel model = trained(spec, train);
  const task::Mlp before = model.mlp;

  const task::CellResult r = task::evaluate_cell(cell_of(sqb::TaskMode::ptq, kSpec, "kmeans", 3, "channel"),
                                                 spec, model, train, test);
  // The reference: every layer through the library's one call, seeded per layer.
  std::vector<sqb::Tensor> wq;
  double blocks = 0, converged = 0;
  int iterations = 0;
  std::vector<double> mse;
  for (std::size_t l = 0; l < model.mlp.weights.size(); ++l) {
    const sqb::Tensor& w = model.mlp.weights[l];
    sqb::QuantizeOptions o;
    o.granularity = sqb::Granularity::parse("channel");
    o.seed = sqb::block_seed(5, l);
    const sqb::Quantized q = sqb::quantize(w, "kmeans", 3, o);
    wq.emplace_back(w.rows, w.cols, sqbtest::vec(q.decoded));
    blocks += static_cast<double>(q.blocks.size());
    converged += static_cast<double>(q.converged_blocks());
    iterations = std::max(iterations, q.max_iterations());
    mse.push_back(q.metrics.mse);
  }
  REQUIRE(r.figures.lists.size() == 2);
  CHECK(r.figures.lists[0].column == sqb::Col::layer_mse);
  CHECK(r.figures.lists[1].column == sqb::Col::layer_sqnr_db);
  REQUIRE(r.figures.lists[0].values.size() == mse.size());
  for (std::size_t l = 0; l < mse.size(); ++l)
    CHECK_THAT(r.figures.lists[0].values[l], Catch::Matchers::WithinRel(mse[l], 1e-12));
  CHECK(figure(r, sqb::Col::blocks) == blocks);
  CHECK(figure(r, sqb::Col::iterations) == iterations);
  CHECK(figure(r, sqb::Col::converged) == converged / blocks);
  const task::Evaluation quantized = task::evaluate(task::with_weights(model.mlp, wq), test);
  CHECK(figure(r, sqb::Col::accuracy) == 100 * quantized.accuracy);
  CHECK(figure(r, sqb::Col::test_loss) == quantized.loss);

  // fp32: the float model as it is, stored as float32.
  const task::CellResult f =
      task::evaluate_cell(cell_of(sqb::TaskMode::fp32, kSpec), spec, model, train, test);
  const task::Evaluation fe = task::evaluate(model.mlp, test);
  CHECK(figure(f, sqb::Col::accuracy) == 100 * fe.accuracy);
  CHECK(figure(f, sqb::Col::test_loss) == fe.loss);
  CHECK(figure(f, sqb::Col::storage_bits) == 32);
  CHECK(f.figures.lists.empty());

  // fp32_ft: the task's fine-tuning recipe, on the fine-tuning's own data order.
  const task::CellResult ft =
      task::evaluate_cell(cell_of(sqb::TaskMode::fp32_ft, kSpec), spec, model, train, test);
  task::Mlp tuned = model.mlp;
  task::TrainOptions o;
  o.epochs = 2;
  o.batch = 16;
  o.adamw.lr = 0.001;
  o.seed = task::fine_tune_seed(5);
  task::train(tuned, train, o);
  const task::Evaluation te = task::evaluate(tuned, test);
  CHECK(figure(ft, sqb::Col::test_loss) == te.loss);
  CHECK(te.loss != fe.loss);
  // The float model is the caller's, untouched.
  for (std::size_t l = 0; l < before.weights.size(); ++l)
    CHECK(model.mlp.weights[l].values == before.weights[l].values);
}

TEST_CASE("evaluate_cell: QAT fine-tunes through the quantizer with the task's STE, cadence and levels",
          "[task][cell]") {
  const task::Dataset train = toy_data(300, 1), test = toy_data(200, 2);
  const std::string text = std::string(kSpec) + " redesign=0 qat=levels ste=clipped";
  const task::TaskSpec spec = task::parse_task_spec(text);
  const task::TrainedModel model = trained(spec, train);
  const task::CellResult r = task::evaluate_cell(cell_of(sqb::TaskMode::qat, text, "uniform", 4, "tensor"),
                                                 spec, model, train, test);

  task::QuantizerTransform qt("uniform", 4, sqb::Granularity::parse("tensor"), 5);
  task::Mlp latent = model.mlp;
  task::QatOptions qo;
  qo.train.epochs = 2;
  qo.train.batch = 16;
  qo.train.adamw.lr = 0.001;
  qo.train.seed = task::fine_tune_seed(5);
  qo.ste = task::Ste::clipped;
  qo.redesign = 0;
  qo.train_levels = true;
  const task::QatReport rep = train_qat(latent, train, qo, task::WeightTransform(std::ref(qt)));
  std::vector<sqb::Tensor> wq;
  for (const task::FakeQuant& f : rep.final)
    wq.push_back(f.weights);
  const task::Evaluation e = task::evaluate(task::with_weights(latent, wq), test);
  CHECK(figure(r, sqb::Col::test_loss) == e.loss);
  // Trained levels are stored as they are: K float32 values per block (one block a layer here).
  const task::NetworkQuality nq = task::measure_network(latent.weights, rep.final, 4, 4);
  CHECK(figure(r, sqb::Col::storage_bits) == nq.total.storage_bits);
  CHECK(figure(r, sqb::Col::mse) == nq.total.mse);
}

TEST_CASE("evaluate_cell refuses cells it cannot evaluate, naming why", "[task][cell]") {
  const task::Dataset train = toy_data(50, 1), test = toy_data(20, 2);
  const task::TaskSpec spec = task::parse_task_spec(kSpec);
  task::TrainedModel model;
  model.mlp = task::init_mlp(task::model_spec(spec, 9), 5);
  sqb::Cell distribution{"gaussian", "kmeans", 100, 4};
  CHECK_THROWS_WITH(task::evaluate_cell(distribution, spec, model, train, test), Contains("not a task cell"));
  CHECK_THROWS_WITH(task::evaluate_cell(cell_of(sqb::TaskMode::ptq, kSpec), spec, model, train, test),
                    Contains("mode ptq needs a quantizer"));
  CHECK_THROWS_WITH(
      task::evaluate_cell(cell_of(sqb::TaskMode::fp32, kSpec, "kmeans", 4), spec, model, train, test),
      Contains("has no quantizer"));
  const task::TaskSpec no_ft = task::parse_task_spec("fashion_mnist hidden=16 qat_epochs=0");
  CHECK_THROWS_WITH(task::evaluate_cell(cell_of(sqb::TaskMode::fp32_ft, kSpec), no_ft, model, train, test),
                    Contains("qat_epochs = 0"));
  CHECK_THROWS_AS(task::evaluate_cell(cell_of(sqb::TaskMode::ptq, kSpec, "nf4", 4), spec, model, train, test),
                  sqb::NotApplicable);
  // A distribution cell's evaluate() points a task cell here.
  CHECK_THROWS_WITH(sqb::evaluate(cell_of(sqb::TaskMode::fp32, kSpec), sqb::Tensor(1, 4, {1, 2, 3, 4})),
                    Contains("task::evaluate_cell"));
}
