// A quantizer as a weight transform: every layer through the library's one pipeline (quantize_into), so QAT
// and PTQ of a network use exactly the codebooks, encoder and decoder that a sweep over tensors measures.

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "detail/measure.hpp"
#include "sqb/error.hpp"
#include "sqb/registry.hpp"
#include "sqb/task.hpp"

namespace sqb::task {

QuantizerTransform::QuantizerTransform(std::string_view spec, std::size_t k, Granularity granularity,
                                       std::uint64_t seed, std::vector<Tensor> importance,
                                       std::vector<std::vector<float>> column_importance)
    : quantizer_(make_quantizer(spec, {k, seed})),
      granularity_(granularity),
      seed_(seed),
      importance_(std::move(importance)),
      column_importance_(std::move(column_importance)) {
  if (!importance_.empty() && !column_importance_.empty()) {
    throw Error(
        "quantizer transform: give importance weights per weight or per column, not both (one design "
        "cannot honour two weightings)");
  }
}

const Quantized& QuantizerTransform::result(std::size_t layer) const {
  static const Quantized empty;
  return layer < results_.size() ? results_[layer] : empty;
}

FakeQuant QuantizerTransform::operator()(const TransformCall& call, const Tensor& latent) {
  if (results_.size() <= call.layer) results_.resize(call.layer + 1);
  Quantized& r = results_[call.layer];
  QuantizeOptions o;
  o.granularity = granularity_;
  // Each layer its own stream: block b of layer l draws from block_seed(block_seed(seed, l), b).
  o.seed = block_seed(seed_, call.layer);
  o.measure = false;  // measure_network measures the final weights once; a training step needs only W_q
  o.reuse_design = !call.redesign;
  if (!importance_.empty()) {
    if (call.layer >= importance_.size() || importance_[call.layer].rows != latent.rows ||
        importance_[call.layer].cols != latent.cols) {
      throw Error("quantizer transform: layer " + std::to_string(call.layer) + " is " +
                  std::to_string(latent.rows) + " x " + std::to_string(latent.cols) +
                  " but its importance weights are " +
                  (call.layer < importance_.size() ? std::to_string(importance_[call.layer].rows) + " x " +
                                                         std::to_string(importance_[call.layer].cols)
                                                   : std::string("missing")));
    }
    o.weights = importance_[call.layer].values;
  }
  if (!column_importance_.empty()) {
    if (call.layer >= column_importance_.size() || column_importance_[call.layer].size() != latent.cols) {
      throw Error("quantizer transform: layer " + std::to_string(call.layer) + " has " +
                  std::to_string(latent.cols) + " columns but its column importance has " +
                  (call.layer < column_importance_.size()
                       ? std::to_string(column_importance_[call.layer].size()) + " values"
                       : std::string("no entry")));
    }
    o.column_weights = column_importance_[call.layer];
  }
  if (o.reuse_design && r.designs.empty()) {
    throw Error("quantizer transform: layer " + std::to_string(call.layer) +
                " was asked to reuse its codebooks before any was designed (the first call must redesign)");
  }
  quantize_into(latent, *quantizer_, o, r);

  FakeQuant fq;
  fq.weights = Tensor(latent.rows, latent.cols, std::vector<float>(r.decoded.begin(), r.decoded.end()));
  fq.blocks = r.blocks;
  fq.levels.reserve(r.designs.size());
  for (const BlockDesign& d : r.designs)
    fq.levels.emplace_back(d.codebook.levels().begin(), d.codebook.levels().end());
  fq.codes.resize(r.codes.size());
  r.codes.visit([&](auto codes) { std::copy(codes.begin(), codes.end(), fq.codes.begin()); });
  return fq;
}

NetworkQuality measure_network(std::span<const Tensor> latent, std::span<const FakeQuant> quantized,
                               std::size_t k, std::size_t side_per_block,
                               std::span<const Tensor> importance) {
  if (latent.size() != quantized.size() || latent.empty() ||
      (!importance.empty() && importance.size() != latent.size())) {
    throw Error("measure_network: " + std::to_string(latent.size()) + " layers of weights, " +
                std::to_string(quantized.size()) + " quantized and " + std::to_string(importance.size()) +
                " of importance weights");
  }
  NetworkQuality q;
  // Code figures pooled per weight; the error figures over every weight at once (detail::error_metrics).
  double n = 0, entropy = 0, storage = 0;
  std::vector<detail::ErrorPart> parts;
  for (std::size_t l = 0; l < latent.size(); ++l) {
    const Tensor& x = latent[l];
    const FakeQuant& fq = quantized[l];
    if (fq.weights.values.size() != x.values.size() || fq.codes.size() != x.values.size() ||
        !fq.has_assignment()) {
      throw Error("measure_network: layer " + std::to_string(l) +
                  ": the quantized weights need the latent weights' size and a codebook assignment");
    }
    Codes codes(x.size(), k);
    codes.visit([&](auto c) {
      for (std::size_t i = 0; i < c.size(); ++i) {
        if (fq.codes[i] >= k) throw Error("measure_network: layer " + std::to_string(l) + ": a code >= K");
        c[i] = static_cast<typename decltype(c)::value_type>(fq.codes[i]);
      }
    });
    const std::span<const float> w = importance.empty() ? std::span<const float>() : importance[l].values;
    if (!w.empty() && w.size() != x.size()) {
      throw Error("measure_network: layer " + std::to_string(l) + ": importance weights of another size");
    }
    const Metrics m =
        detail::measure_blocks(x.values, fq.weights.values, codes, fq.blocks, side_per_block, w, true);
    q.layers.push_back(m);
    const double nl = static_cast<double>(x.size());
    n += nl;
    entropy += m.entropy_bits * nl;
    storage += m.storage_bits * nl;
    parts.push_back({x.values, fq.weights.values, w});
  }
  Metrics& t = q.total;
  detail::error_metrics(parts, t);
  t.entropy_bits = entropy / n;
  t.index_bits = index_bits(k);
  t.storage_bits = storage / n;
  return q;
}

}  // namespace sqb::task
