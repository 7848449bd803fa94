// Training: the AdamW loop for float training, fine-tuning and quantization-aware training.
//
// QAT keeps the latent float weights in the model and, per layer, the transform's last result. The forward
// pass reads W_q; the backward pass gives dL/dW_q, which the straight-through estimator passes to the latent
// weights unchanged (identity) or masked outside the codebook's range (clipped). With trained levels, the
// codes stay fixed between re-designs, W_q is rebuilt from the levels before every step, and each level's
// gradient is the sum of dL/dW_q over its weights (the chain rule through W_q[i] = level[code[i]]).

#include <algorithm>
#include <bit>
#include <boost/random/mersenne_twister.hpp>
#include <boost/random/uniform_int_distribution.hpp>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "sqb/codebook.hpp"
#include "sqb/error.hpp"
#include "task/trainer.hpp"

namespace sqb::task {

namespace detail {

std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a + 0x9E3779B97F4A7C15ULL * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<std::size_t> epoch_order(std::size_t n, std::uint64_t seed, std::uint64_t epoch) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  boost::random::mt19937_64 eng(mix(seed, epoch));
  for (std::size_t i = n; i-- > 1;) {
    boost::random::uniform_int_distribution<std::size_t> pick(0, i);
    std::swap(order[i], order[pick(eng)]);
  }
  return order;
}

void gather(const Dataset& data, std::span<const std::size_t> index, arma::fmat& x,
            std::vector<std::uint8_t>& labels) {
  const std::size_t f = data.features();
  x.set_size(f, index.size());
  labels.resize(index.size());
  for (std::size_t j = 0; j < index.size(); ++j) {
    std::memcpy(x.colptr(j), data.pixels.data() + index[j] * f, f * sizeof(float));
    labels[j] = data.labels[index[j]];
  }
}

void check_fits(const Mlp& model, const Dataset& data) {
  model.validate();
  if (data.count == 0) throw Error("dataset: no examples");
  if (data.features() != model.spec.inputs) {
    throw Error("the data's images have " + std::to_string(data.features()) + " pixels (" +
                std::to_string(data.height) + " x " + std::to_string(data.width) + "), the model takes " +
                std::to_string(model.spec.inputs) + " inputs");
  }
  if (data.pixels.size() != data.count * data.features() || data.labels.size() != data.count) {
    throw Error("dataset: " + std::to_string(data.count) + " examples but " +
                std::to_string(data.pixels.size()) + " pixels and " + std::to_string(data.labels.size()) +
                " labels");
  }
  for (std::size_t i = 0; i < data.count; ++i) {
    if (data.labels[i] >= model.spec.classes) {
      throw Error("dataset: label " + std::to_string(i) + " is " + std::to_string(data.labels[i]) +
                  ", the model has " + std::to_string(model.spec.classes) + " classes");
    }
  }
}

namespace {

[[noreturn]] void transform_error(std::size_t layer, const std::string& what) {
  throw Error("weight transform for layer " + std::to_string(layer) + ": " + what);
}

bool same_bits(float a, float b) {
  return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

}  // namespace

// The FakeQuant contract (task.hpp), checked on every transform result.
void check_fake_quant(const FakeQuant& fq, std::size_t layer, const Tensor& latent, bool need_assignment) {
  if (fq.weights.rows != latent.rows || fq.weights.cols != latent.cols ||
      fq.weights.values.size() != latent.values.size()) {
    transform_error(layer, "W_q is " + std::to_string(fq.weights.rows) + " x " +
                               std::to_string(fq.weights.cols) + ", the latent weights " +
                               std::to_string(latent.rows) + " x " + std::to_string(latent.cols));
  }
  for (std::size_t i = 0; i < fq.weights.values.size(); ++i) {
    if (!std::isfinite(fq.weights.values[i])) {
      transform_error(layer, "W_q[" + std::to_string(i) + "] is not finite");
    }
  }
  if (!fq.has_assignment()) {
    if (!fq.levels.empty() || !fq.codes.empty())
      transform_error(layer, "levels or codes given without blocks");
    if (need_assignment) {
      transform_error(layer,
                      "no codebook assignment (blocks, levels, codes), which ste=clipped and trained "
                      "levels need");
    }
    return;
  }
  if (fq.levels.size() != fq.blocks.size()) {
    transform_error(layer, std::to_string(fq.blocks.size()) + " blocks but " +
                               std::to_string(fq.levels.size()) + " codebooks");
  }
  if (fq.codes.size() != latent.values.size()) {
    transform_error(layer, std::to_string(fq.codes.size()) + " codes for " +
                               std::to_string(latent.values.size()) + " weights");
  }
  std::size_t next = 0;
  for (std::size_t b = 0; b < fq.blocks.size(); ++b) {
    const Block& blk = fq.blocks[b];
    if (blk.offset != next || blk.length == 0 || blk.length > latent.values.size() - next) {
      transform_error(layer, "block " + std::to_string(b) + " (offset " + std::to_string(blk.offset) +
                                 ", length " + std::to_string(blk.length) +
                                 ") does not continue the blocks before it at " + std::to_string(next));
    }
    const auto& lv = fq.levels[b];
    if (lv.empty()) transform_error(layer, "block " + std::to_string(b) + " has an empty codebook");
    for (const float v : lv) {
      if (!std::isfinite(v)) transform_error(layer, "block " + std::to_string(b) + " has a non-finite level");
    }
    for (std::size_t i = blk.offset; i < blk.offset + blk.length; ++i) {
      if (fq.codes[i] >= lv.size()) {
        transform_error(layer, "code " + std::to_string(i) + " is " + std::to_string(fq.codes[i]) +
                                   ", block " + std::to_string(b) + " has " + std::to_string(lv.size()) +
                                   " levels");
      }
      if (!same_bits(fq.weights.values[i], lv[fq.codes[i]])) {
        transform_error(layer, "W_q[" + std::to_string(i) + "] is not the level its code names");
      }
    }
    next += blk.length;
  }
  if (next != latent.values.size()) {
    transform_error(layer, "the blocks cover " + std::to_string(next) + " of " +
                               std::to_string(latent.values.size()) + " weights");
  }
}

Trainer::Trainer(Mlp& model, const TrainOptions& options, const QatOptions* qat,
                 const WeightTransform* transform)
    : model_(model), options_(options), qat_(qat), transform_(transform) {
  model_.validate();
  options_.validate();
  if (qat_ != nullptr) {
    qat_->validate();
    if (transform_ == nullptr || !*transform_) throw Error("train_qat: no weight transform given");
  }
  const std::size_t n = model_.spec.layers();
  refs_.resize(n);
  grefs_.resize(n);
  gw_.resize(n);
  gb_.resize(n);
  mw_.resize(n);
  vw_.resize(n);
  mb_.resize(n);
  vb_.resize(n);
  const auto sizes = model_.spec.sizes();
  for (std::size_t l = 0; l < n; ++l) {
    const std::size_t in = sizes[l], out = sizes[l + 1];
    gw_[l].assign(in * out, 0.0f);
    mw_[l].assign(in * out, 0.0f);
    vw_[l].assign(in * out, 0.0f);
    if (model_.spec.bias) {
      gb_[l].assign(out, 0.0f);
      mb_[l].assign(out, 0.0f);
      vb_[l].assign(out, 0.0f);
    }
    refs_[l] = {model_.weights[l].values.data(), model_.spec.bias ? model_.biases[l].data() : nullptr, in,
                out};
    grefs_[l] = {gw_[l].data(), model_.spec.bias ? gb_[l].data() : nullptr};
  }
  if (qat_ != nullptr) qat_layers_.resize(n);
}

FakeQuant Trainer::call_transform(std::size_t layer, const Tensor& latent, bool redesign) {
  const auto t0 = std::chrono::steady_clock::now();
  FakeQuant fq = (*transform_)(TransformCall{layer, steps_, redesign}, latent);
  transform_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++transform_calls_;
  redesigns_ += redesign;
  check_fake_quant(fq, layer, latent, qat_->ste == Ste::clipped || qat_->train_levels);
  return fq;
}

bool Trainer::redesign_due() const {
  const std::size_t m = qat_->redesign;
  return steps_ == 0 || (m > 0 && steps_ % m == 0);
}

void Trainer::transform_all(bool redesign) {
  for (std::size_t l = 0; l < qat_layers_.size(); ++l) {
    QatLayer& q = qat_layers_[l];
    q.fq = call_transform(l, model_.weights[l], redesign);
    // Only the clipped STE and trained levels read the assignment.
    if (q.fq.has_assignment() && (qat_->ste == Ste::clipped || qat_->train_levels)) {
      const std::size_t size = q.fq.codes.size();
      q.elem_block.resize(size);
      q.flat_code.resize(size);
      q.level_offset.assign(1, 0);
      q.levels.clear();
      for (std::size_t b = 0; b < q.fq.blocks.size(); ++b) {
        const Block& blk = q.fq.blocks[b];
        for (std::size_t i = blk.offset; i < blk.offset + blk.length; ++i) {
          q.elem_block[i] = static_cast<std::uint32_t>(b);
          q.flat_code[i] = static_cast<std::uint32_t>(q.levels.size() + q.fq.codes[i]);
        }
        q.levels.insert(q.levels.end(), q.fq.levels[b].begin(), q.fq.levels[b].end());
        q.level_offset.push_back(q.levels.size());
      }
      if (qat_->train_levels) {
        q.lm.assign(q.levels.size(), 0.0f);
        q.lv.assign(q.levels.size(), 0.0f);
        q.lgrad.assign(q.levels.size(), 0.0f);
        q.level_steps = 0;
      }
    }
    refs_[l].w = q.fq.weights.values.data();
  }
}

std::span<const float> Trainer::used_weights(std::size_t layer) const {
  return {refs_[layer].w, gw_[layer].size()};
}

void Trainer::clip_gradients(std::size_t layer) {
  QatLayer& q = qat_layers_[layer];
  const std::size_t blocks = q.level_offset.size() - 1;
  std::vector<float> lo(blocks), hi(blocks);
  for (std::size_t b = 0; b < blocks; ++b) {
    const auto first = q.levels.begin() + static_cast<std::ptrdiff_t>(q.level_offset[b]);
    const auto last = q.levels.begin() + static_cast<std::ptrdiff_t>(q.level_offset[b + 1]);
    const auto [mn, mx] = std::minmax_element(first, last);
    lo[b] = *mn;
    hi[b] = *mx;
  }
  const float* w = model_.weights[layer].values.data();
  float* g = gw_[layer].data();
  for (std::size_t i = 0; i < gw_[layer].size(); ++i) {
    const std::uint32_t b = q.elem_block[i];
    if (w[i] < lo[b] || w[i] > hi[b]) g[i] = 0.0f;
  }
}

void Trainer::assign_to_levels(QatLayer& q, std::span<const float> latent) {
  std::vector<std::uint32_t> order;
  std::vector<float> sorted;
  std::vector<std::uint16_t> codes;
  for (std::size_t b = 0; b + 1 < q.level_offset.size(); ++b) {
    const std::size_t first = q.level_offset[b], k = q.level_offset[b + 1] - first;
    order.resize(k);
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t i, std::uint32_t j) {
      return q.levels[first + i] < q.levels[first + j];
    });
    sorted.resize(k);
    for (std::size_t i = 0; i < k; ++i)
      sorted[i] = q.levels[first + order[i]];
    const Codebook cb = Codebook::nearest(sorted);
    const Block& blk = q.fq.blocks[b];
    codes.resize(blk.length);
    encode(cb, latent.subspan(blk.offset, blk.length), std::span<std::uint16_t>(codes));
    for (std::size_t i = 0; i < blk.length; ++i)
      q.flat_code[blk.offset + i] = static_cast<std::uint32_t>(first + order[codes[i]]);
  }
}

double Trainer::step(const arma::fmat& x, std::span<const std::uint8_t> labels) {
  const bool qat = qat_ != nullptr;
  if (qat) {
    if (!qat_->train_levels) {
      transform_all(redesign_due());
    } else {
      if (redesign_due()) transform_all(true);
      for (std::size_t l = 0; l < qat_layers_.size(); ++l) {
        QatLayer& q = qat_layers_[l];
        // The weights follow the trained levels: each goes to its block's nearest level before the forward
        // pass (otherwise the STE's updates of the latent weights would never reach it).
        assign_to_levels(q, model_.weights[l].values);
        float* wq = q.fq.weights.values.data();
        for (std::size_t i = 0; i < q.flat_code.size(); ++i)
          wq[i] = q.levels[q.flat_code[i]];
      }
    }
  }
  const double loss = net_.forward(refs_, x, labels);
  if (!std::isfinite(loss)) {
    throw Error("training diverged: the loss of step " + std::to_string(steps_ + 1) +
                " is not finite (lower the learning rate)");
  }
  net_.backward(refs_, x, labels, 1.0f / static_cast<float>(x.n_cols), grefs_);
  ++steps_;
  for (std::size_t l = 0; l < refs_.size(); ++l) {
    if (qat) {
      QatLayer& q = qat_layers_[l];
      if (qat_->train_levels) {
        // Before the STE mask: a level's gradient is the sum of dL/dW_q of its weights, wherever they lie.
        std::fill(q.lgrad.begin(), q.lgrad.end(), 0.0f);
        for (std::size_t i = 0; i < q.flat_code.size(); ++i)
          q.lgrad[q.flat_code[i]] += gw_[l][i];
      }
      if (qat_->ste == Ste::clipped) clip_gradients(l);
    }
    options_.adamw.step(model_.weights[l].values, mw_[l], vw_[l], gw_[l], steps_);
    if (model_.spec.bias) options_.adamw.step(model_.biases[l], mb_[l], vb_[l], gb_[l], steps_);
    if (qat && qat_->train_levels) {
      QatLayer& q = qat_layers_[l];
      options_.adamw.step(q.levels, q.lm, q.lv, q.lgrad, ++q.level_steps);
    }
  }
  return loss;
}

TrainReport Trainer::run(const Dataset& data) {
  check_fits(model_, data);
  const auto t0 = std::chrono::steady_clock::now();
  TrainReport report;
  arma::fmat x;
  std::vector<std::uint8_t> labels;
  const std::size_t batch = options_.batch;
  for (std::size_t e = 0; e < options_.epochs; ++e) {
    const std::vector<std::size_t> order = epoch_order(data.count, options_.seed, e);
    double sum = 0;
    for (std::size_t start = 0; start < data.count; start += batch) {
      const std::size_t b = std::min(batch, data.count - start);
      gather(data, std::span(order).subspan(start, b), x, labels);
      sum += step(x, labels);
    }
    report.epoch_loss.push_back(sum / static_cast<double>(data.count));
    if (options_.on_epoch) options_.on_epoch(e, report.epoch_loss.back());
  }
  report.steps = steps_;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

std::vector<FakeQuant> Trainer::final_quant() {
  std::vector<FakeQuant> out(model_.spec.layers());
  for (std::size_t l = 0; l < out.size(); ++l) {
    QatLayer& q = qat_layers_[l];
    if (qat_->train_levels && steps_ > 0) {
      FakeQuant fq = q.fq;
      for (std::size_t b = 0; b + 1 < q.level_offset.size(); ++b) {
        fq.levels[b].assign(q.levels.begin() + static_cast<std::ptrdiff_t>(q.level_offset[b]),
                            q.levels.begin() + static_cast<std::ptrdiff_t>(q.level_offset[b + 1]));
      }
      for (std::size_t i = 0; i < q.flat_code.size(); ++i)
        fq.weights.values[i] = q.levels[q.flat_code[i]];
      out[l] = std::move(fq);
    } else {
      out[l] = call_transform(l, model_.weights[l], redesign_due());
    }
  }
  return out;
}

}  // namespace detail

void TrainOptions::validate() const {
  if (batch == 0) throw Error("training: batch must be >= 1");
  adamw.validate();
}

void QatOptions::validate() const {
  train.validate();
  if (train_levels && redesign == 1) {
    throw Error(
        "qat=levels needs redesign=0 (design once) or redesign=M >= 2: a codebook re-designed before "
        "every step would discard its trained levels before they are used");
  }
}

TrainReport train(Mlp& model, const Dataset& data, const TrainOptions& options) {
  detail::Trainer t(model, options);
  return t.run(data);
}

TrainReport fine_tune(Mlp& model, const Dataset& data, std::size_t epochs, double lr, std::uint64_t seed) {
  TrainOptions o;
  o.epochs = epochs;
  o.adamw.lr = lr;
  o.seed = seed;
  return train(model, data, o);
}

QatReport train_qat(Mlp& model, const Dataset& data, const QatOptions& options,
                    const WeightTransform& transform) {
  detail::Trainer t(model, options.train, &options, &transform);
  QatReport r;
  r.train = t.run(data);
  const auto t0 = std::chrono::steady_clock::now();
  r.final = t.final_quant();
  r.train.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.transform_calls = t.transform_calls();
  r.redesigns = t.redesigns();
  r.transform_seconds = t.transform_seconds();
  return r;
}

}  // namespace sqb::task
