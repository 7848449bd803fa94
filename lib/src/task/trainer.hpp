#pragma once
// The training loop behind train(), fine_tune() and train_qat(), exposed to the tests so that one step's
// logits and gradients can be checked against hand computations.

#include <armadillo>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sqb/task.hpp"
#include "task/mlp_core.hpp"

namespace sqb::task::detail {

/// SplitMix64 of a + a multiple of the golden ratio times (b + 1): independent streams per (seed, index).
std::uint64_t mix(std::uint64_t a, std::uint64_t b);

/// The visiting order of epoch `epoch`: a Fisher-Yates shuffle of 0..n-1 from mt19937_64(mix(seed, epoch)).
std::vector<std::size_t> epoch_order(std::size_t n, std::uint64_t seed, std::uint64_t epoch);

/// Copies the examples `index` of `data` into x ([features, B], one example per column) and their labels.
void gather(const Dataset& data, std::span<const std::size_t> index, arma::fmat& x,
            std::vector<std::uint8_t>& labels);

/// Throws Error unless the data fits the model: the same number of features, every label < classes.
void check_fits(const Mlp& model, const Dataset& data);

/// Throws Error (naming the layer) unless `fq` keeps the FakeQuant contract of task.hpp for `latent`;
/// `need_assignment`: blocks, levels and codes must be given.
void check_fake_quant(const FakeQuant& fq, std::size_t layer, const Tensor& latent, bool need_assignment);

class Trainer {
 public:
  /// Float training when qat is null; otherwise QAT with `*transform` (both must outlive the trainer). The
  /// model is trained in place. Validates the options and the model.
  Trainer(Mlp& model, const TrainOptions& options, const QatOptions* qat = nullptr,
          const WeightTransform* transform = nullptr);

  /// One optimizer step on a batch (x: [features, B]); returns the sum of the batch's losses.
  double step(const arma::fmat& x, std::span<const std::uint8_t> labels);
  /// options.epochs epochs over `data` in the seeded order.
  TrainReport run(const Dataset& data);
  /// The quantized weights after training (see QatReport::final); QAT only.
  std::vector<FakeQuant> final_quant();

  // After a step: what it computed, before the optimizer update.
  const arma::fmat& logits() const { return net_.logits(); }
  /// The weights the forward pass used (the latent ones, or W_q), [out, in] row-major. Valid until the next
  /// step.
  std::span<const float> used_weights(std::size_t layer) const;
  /// The latent weights' gradient as given to the optimizer (after the STE), [out, in] row-major.
  std::span<const float> weight_grad(std::size_t layer) const { return gw_[layer]; }
  /// The levels' gradient (train_levels): block 0's levels, then block 1's, ... in codebook order.
  std::span<const float> level_grad(std::size_t layer) const { return qat_layers_[layer].lgrad; }
  std::size_t transform_calls() const { return transform_calls_; }
  std::size_t redesigns() const { return redesigns_; }
  double transform_seconds() const { return transform_seconds_; }

 private:
  struct QatLayer {
    FakeQuant fq;  // the transform's result; with train_levels W_q follows the levels
    std::vector<std::uint32_t> elem_block;  // element -> block (with an assignment)
    std::vector<std::uint32_t> flat_code;   // element -> index into `levels`
    std::vector<float> levels;              // every block's levels, concatenated
    std::vector<std::size_t> level_offset;  // block -> first index in `levels` (plus the end)
    std::vector<float> lm, lv, lgrad;       // AdamW state and gradient of the levels
    std::uint64_t level_steps = 0;
  };

  // Calls the transform for every layer and takes its results (the levels' optimizer state restarts).
  void transform_all(bool redesign);
  FakeQuant call_transform(std::size_t layer, const Tensor& latent, bool redesign);
  bool redesign_due() const;
  void clip_gradients(std::size_t layer);
  // Trained levels: every latent weight of `q` goes to its block's nearest current level (flat_code).
  static void assign_to_levels(QatLayer& q, std::span<const float> latent);

  Mlp& model_;
  TrainOptions options_;
  const QatOptions* qat_;
  const WeightTransform* transform_;
  Net<float> net_;
  std::vector<LayerRef<float>> refs_;
  std::vector<GradRef<float>> grefs_;
  std::vector<std::vector<float>> gw_, gb_, mw_, vw_, mb_, vb_;
  std::vector<QatLayer> qat_layers_;
  std::uint64_t steps_ = 0;
  std::size_t transform_calls_ = 0;
  std::size_t redesigns_ = 0;
  double transform_seconds_ = 0;
};

}  // namespace sqb::task::detail
