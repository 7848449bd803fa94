// A task cell evaluated on its trained float model (task.hpp, evaluate_cell): what a sweep's row of a task
// reports, whoever trains, caches and schedules the float models (`sqbench run` keeps them on disk).

#include <algorithm>
#include <functional>
#include <string>
#include <utility>

#include "sqb/error.hpp"
#include "sqb/task.hpp"

namespace sqb::task {

std::uint64_t fine_tune_seed(std::uint64_t seed) {
  return block_seed(seed, 0xF17E);
}

CellResult evaluate_cell(const Cell& cell, const TaskSpec& spec, const TrainedModel& model,
                         const Dataset& train_data, const Dataset& test_data) {
  if (!cell.is_task()) throw Error("evaluate_cell: not a task cell (no mode): sqb::evaluate evaluates it");
  const std::string mode(task_mode_name(cell.mode));
  const bool quantized = cell.mode == TaskMode::ptq || cell.mode == TaskMode::qat;
  if (quantized && cell.quantizer.empty()) throw Error("a task cell of mode " + mode + " needs a quantizer");
  if (!quantized && !cell.quantizer.empty()) {
    throw Error("a task cell of mode " + mode + " has no quantizer (got \"" + cell.quantizer +
                "\"): the float model is not quantized");
  }
  if (cell.mode == TaskMode::fp32_ft && spec.qat_epochs == 0) {
    throw Error(
        "mode fp32_ft is the float model fine-tuned for qat_epochs epochs, and the task has qat_epochs = 0");
  }
  // fp32_ft and QAT fine-tune alike, so their difference is the quantizer's alone.
  const auto fine_tune_options = [&] {
    TrainOptions o;
    o.epochs = spec.qat_epochs;
    o.batch = spec.batch;
    o.adamw.lr = spec.qat_lr;
    o.adamw.weight_decay = spec.weight_decay;
    o.seed = fine_tune_seed(cell.seed);
    return o;
  };

  CellResult out;
  std::vector<Figure>& figures = out.figures.figures;
  Mlp evaluated;  // the network whose accuracy the row reports
  if (!quantized) {
    evaluated = model.mlp;
    out.train_s = model.train_s;
    if (cell.mode == TaskMode::fp32_ft)
      out.train_s = train(evaluated, train_data, fine_tune_options()).seconds;
    figures.push_back({Col::storage_bits, 32});
  } else {
    const std::size_t k = cell.k;
    const bool fisher = spec.weights == Importance::fisher;
    const bool activations = spec.weights == Importance::activations;
    QuantizerTransform qt(cell.quantizer, k, Granularity::parse(cell.granularity), cell.seed,
                          fisher ? model.fisher : std::vector<Tensor>{},
                          activations ? model.activations : std::vector<std::vector<float>>{});
    Mlp latent = model.mlp;
    std::vector<FakeQuant> fq;
    if (cell.mode == TaskMode::ptq) {
      fq = apply_transform(latent, WeightTransform(std::ref(qt)));
    } else {
      QatOptions qo;
      qo.train = fine_tune_options();
      qo.ste = spec.ste;
      qo.redesign = spec.redesign;
      qo.train_levels = spec.train_levels;
      QatReport r = train_qat(latent, train_data, qo, WeightTransform(std::ref(qt)));
      out.train_s = r.train.seconds;
      fq = std::move(r.final);
    }
    // Trained levels are stored as they are (K per block); otherwise a block stores the strategy's side
    // values.
    const std::size_t side =
        spec.train_levels && cell.mode == TaskMode::qat ? k : qt.quantizer().side_values().per_block;
    const NetworkQuality quality =
        measure_network(latent.weights, fq, k, side,
                        fisher        ? model.fisher
                        : activations ? expand_columns(model.mlp, model.activations)
                                      : std::vector<Tensor>{});
    std::vector<Tensor> wq;
    std::size_t blocks = 0, converged = 0;
    int iterations = 0;
    FigureList layer_mse{Col::layer_mse, {}}, layer_sqnr{Col::layer_sqnr_db, {}};
    for (std::size_t l = 0; l < fq.size(); ++l) {
      wq.push_back(fq[l].weights);
      blocks += fq[l].blocks.size();
      const Quantized& last = qt.result(l);  // the layer's last design
      iterations = std::max(iterations, last.max_iterations());
      converged += last.converged_blocks();
      layer_mse.values.push_back(quality.layers[l].mse);
      layer_sqnr.values.push_back(quality.layers[l].sqnr_db);
    }
    evaluated = with_weights(latent, std::move(wq));
    const Metrics& t = quality.total;
    figures.push_back({Col::blocks, static_cast<double>(blocks)});
    figures.push_back({Col::mse, t.mse});
    figures.push_back({Col::nmse, t.nmse});
    figures.push_back({Col::sqnr_db, t.sqnr_db});
    figures.push_back({Col::max_abs_err, t.max_abs_err});
    figures.push_back({Col::entropy_bits, t.entropy_bits});
    figures.push_back({Col::storage_bits, t.storage_bits});
    if (fisher || activations) figures.push_back({Col::wmse, t.wmse});
    figures.push_back({Col::iterations, static_cast<double>(iterations)});
    figures.push_back({Col::converged, static_cast<double>(converged) / static_cast<double>(blocks)});
    out.figures.lists = {std::move(layer_mse), std::move(layer_sqnr)};
  }
  const Evaluation e = evaluate(evaluated, test_data);
  figures.push_back({Col::accuracy, 100 * e.accuracy});
  figures.push_back({Col::test_loss, e.loss});
  return out;
}

}  // namespace sqb::task
