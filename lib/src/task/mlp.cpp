// The model: shapes, initialisation, evaluation, the empirical Fisher diagonal and the AdamW update.

#include <boost/random/mersenne_twister.hpp>
#include <cmath>
#include <string>

#include "sqb/error.hpp"
#include "task/trainer.hpp"

namespace sqb::task {

namespace {

constexpr std::size_t kEvalBatch = 1000;

std::vector<detail::LayerRef<float>> layer_refs(const Mlp& m) {
  const auto sizes = m.spec.sizes();
  std::vector<detail::LayerRef<float>> refs(m.spec.layers());
  for (std::size_t l = 0; l < refs.size(); ++l) {
    refs[l] = {m.weights[l].values.data(), m.spec.bias ? m.biases[l].data() : nullptr, sizes[l],
               sizes[l + 1]};
  }
  return refs;
}

std::string finite_text(double v) {
  return std::isfinite(v) ? std::to_string(v) : "not finite";
}

}  // namespace

std::vector<std::size_t> ModelSpec::sizes() const {
  std::vector<std::size_t> s{inputs};
  s.insert(s.end(), hidden.begin(), hidden.end());
  s.push_back(classes);
  return s;
}

void ModelSpec::validate() const {
  if (inputs == 0) throw Error("model: inputs must be >= 1");
  for (std::size_t i = 0; i < hidden.size(); ++i) {
    if (hidden[i] == 0) throw Error("model: hidden width " + std::to_string(i) + " must be >= 1");
  }
  if (classes < 2) throw Error("model: classes must be >= 2");
}

void Mlp::validate() const {
  spec.validate();
  const auto sizes = spec.sizes();
  if (weights.size() != spec.layers()) {
    throw Error("model: " + std::to_string(weights.size()) + " weight matrices for " +
                std::to_string(spec.layers()) + " layers");
  }
  if (biases.size() != spec.layers()) {
    throw Error("model: " + std::to_string(biases.size()) + " bias vectors for " +
                std::to_string(spec.layers()) + " layers");
  }
  for (std::size_t l = 0; l < weights.size(); ++l) {
    const Tensor& w = weights[l];
    if (w.rows != sizes[l + 1] || w.cols != sizes[l] || w.values.size() != w.rows * w.cols) {
      throw Error("model: layer " + std::to_string(l) + "'s weights are " + std::to_string(w.rows) + " x " +
                  std::to_string(w.cols) + ", the spec says " + std::to_string(sizes[l + 1]) + " x " +
                  std::to_string(sizes[l]));
    }
    const std::size_t nb = spec.bias ? sizes[l + 1] : 0;
    if (biases[l].size() != nb) {
      throw Error("model: layer " + std::to_string(l) + " has " + std::to_string(biases[l].size()) +
                  " biases, the spec says " + std::to_string(nb));
    }
    check_finite(w.values, "model: layer " + std::to_string(l) + " weights", w.cols);
    if (nb) check_finite(biases[l], "model: layer " + std::to_string(l) + " biases");
  }
}

ModelSpec model_spec(const TaskSpec& spec, std::size_t features) {
  ModelSpec m;
  m.inputs = features;
  m.hidden = spec.hidden;
  m.bias = spec.bias;
  m.validate();
  return m;
}

Mlp init_mlp(const ModelSpec& spec, std::uint64_t seed) {
  spec.validate();
  Mlp m;
  m.spec = spec;
  const auto sizes = spec.sizes();
  boost::random::mt19937_64 eng(detail::mix(seed, 0x1417));
  // 24 random bits -> [0, 1) exactly representable; the affine map in double, rounded once to float.
  auto uniform = [&](double bound) {
    const double u = static_cast<double>(eng() >> 40) * 0x1p-24;
    return static_cast<float>(-bound + 2 * bound * u);
  };
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(sizes[l]));
    Tensor w(sizes[l + 1], sizes[l]);
    for (float& v : w.values)
      v = uniform(bound);
    m.weights.push_back(std::move(w));
    std::vector<float> b(spec.bias ? sizes[l + 1] : 0);
    for (float& v : b)
      v = uniform(bound);
    m.biases.push_back(std::move(b));
  }
  return m;
}

Mlp with_weights(const Mlp& model, std::vector<Tensor> weights) {
  Mlp m;
  m.spec = model.spec;
  m.weights = std::move(weights);
  m.biases = model.biases;
  m.validate();
  return m;
}

Tensor logits(const Mlp& model, std::span<const float> images, std::size_t count) {
  model.validate();
  const std::size_t f = model.spec.inputs;
  if (images.size() != count * f) {
    throw Error("logits: " + std::to_string(images.size()) + " pixels for " + std::to_string(count) +
                " images of " + std::to_string(f));
  }
  const auto refs = layer_refs(model);
  detail::Net<float> net;
  Tensor out(count, model.spec.classes);
  const std::vector<std::uint8_t> zeros(kEvalBatch, 0);
  for (std::size_t start = 0; start < count; start += kEvalBatch) {
    const std::size_t b = std::min(kEvalBatch, count - start);
    const arma::fmat x(const_cast<float*>(images.data() + start * f), f, b, false, true);
    net.forward(refs, x, std::span(zeros).first(b));
    // [classes, b] column-major is [b, classes] row-major.
    std::copy(net.logits().begin(), net.logits().end(),
              out.values.begin() + static_cast<std::ptrdiff_t>(start * out.cols));
  }
  return out;
}

Evaluation evaluate(const Mlp& model, const Dataset& data) {
  detail::check_fits(model, data);
  const auto refs = layer_refs(model);
  const std::size_t f = data.features();
  detail::Net<float> net;
  Evaluation e;
  e.count = data.count;
  double loss = 0;
  for (std::size_t start = 0; start < data.count; start += kEvalBatch) {
    const std::size_t b = std::min(kEvalBatch, data.count - start);
    const arma::fmat x(const_cast<float*>(data.pixels.data() + start * f), f, b, false, true);
    const auto labels = std::span(data.labels).subspan(start, b);
    loss += net.forward(refs, x, labels);
    const arma::fmat& z = net.logits();
    for (arma::uword j = 0; j < z.n_cols; ++j) {
      arma::uword best = 0;
      for (arma::uword k = 1; k < z.n_rows; ++k)
        best = z(k, j) > z(best, j) ? k : best;
      e.correct += best == labels[j];
    }
  }
  e.accuracy = static_cast<double>(e.correct) / static_cast<double>(e.count);
  e.loss = loss / static_cast<double>(e.count);
  if (!std::isfinite(e.loss)) throw Error("evaluate: the test loss is " + finite_text(e.loss));
  return e;
}

std::vector<Tensor> fisher_diagonal(const Mlp& model, const Dataset& data) {
  detail::check_fits(model, data);
  const auto refs = layer_refs(model);
  const auto sizes = model.spec.sizes();
  const std::size_t f = data.features();
  std::vector<std::vector<double>> acc(refs.size());
  std::vector<double*> ptrs(refs.size());
  for (std::size_t l = 0; l < refs.size(); ++l) {
    acc[l].assign(sizes[l] * sizes[l + 1], 0.0);
    ptrs[l] = acc[l].data();
  }
  detail::Net<float> net;
  for (std::size_t start = 0; start < data.count; start += kEvalBatch) {
    const std::size_t b = std::min(kEvalBatch, data.count - start);
    const arma::fmat x(const_cast<float*>(data.pixels.data() + start * f), f, b, false, true);
    const auto labels = std::span(data.labels).subspan(start, b);
    net.forward(refs, x, labels);
    net.add_fisher(refs, x, labels, ptrs);
  }
  std::vector<Tensor> out;
  const double inv = 1.0 / static_cast<double>(data.count);
  for (std::size_t l = 0; l < refs.size(); ++l) {
    // acc holds W^T [in, out] column-major = [out, in] row-major: the layout of the weights themselves.
    Tensor t(sizes[l + 1], sizes[l]);
    for (std::size_t i = 0; i < t.values.size(); ++i)
      t.values[i] = static_cast<float>(acc[l][i] * inv);
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<std::vector<float>> activation_importance(const Mlp& model, const Dataset& data) {
  detail::check_fits(model, data);
  const auto refs = layer_refs(model);
  const auto sizes = model.spec.sizes();
  const std::size_t f = data.features();
  std::vector<std::vector<double>> acc(refs.size());
  for (std::size_t l = 0; l < refs.size(); ++l)
    acc[l].assign(sizes[l], 0.0);
  detail::Net<float> net;
  const auto add = [](const arma::fmat& a, std::vector<double>& sum) {
    // a is [features, B] column-major: column j is example j, so feature c of example j is a(c, j).
    for (arma::uword j = 0; j < a.n_cols; ++j) {
      const float* col = a.colptr(j);
      for (arma::uword c = 0; c < a.n_rows; ++c)
        sum[c] += static_cast<double>(col[c]) * static_cast<double>(col[c]);
    }
  };
  for (std::size_t start = 0; start < data.count; start += kEvalBatch) {
    const std::size_t b = std::min(kEvalBatch, data.count - start);
    const arma::fmat x(const_cast<float*>(data.pixels.data() + start * f), f, b, false, true);
    net.forward(refs, x, std::span(data.labels).subspan(start, b));
    add(x, acc[0]);
    for (std::size_t l = 1; l < refs.size(); ++l)
      add(net.output(l - 1), acc[l]);
  }
  std::vector<std::vector<float>> out(refs.size());
  const double inv = 1.0 / static_cast<double>(data.count);
  for (std::size_t l = 0; l < refs.size(); ++l) {
    out[l].resize(sizes[l]);
    for (std::size_t c = 0; c < sizes[l]; ++c)
      out[l][c] = static_cast<float>(acc[l][c] * inv);
  }
  return out;
}

std::vector<Tensor> expand_columns(const Mlp& model, std::span<const std::vector<float>> columns) {
  const auto sizes = model.spec.sizes();
  if (columns.size() != model.spec.layers())
    throw Error("expand_columns: " + std::to_string(columns.size()) + " layers of column weights for " +
                std::to_string(model.spec.layers()) + " layers");
  std::vector<Tensor> out;
  for (std::size_t l = 0; l < columns.size(); ++l) {
    if (columns[l].size() != sizes[l])
      throw Error("expand_columns: layer " + std::to_string(l) + " has " + std::to_string(sizes[l]) +
                  " columns but " + std::to_string(columns[l].size()) + " column weights");
    Tensor t(sizes[l + 1], sizes[l]);
    for (std::size_t r = 0; r < t.rows; ++r)
      std::copy(columns[l].begin(), columns[l].end(),
                t.values.begin() + static_cast<std::ptrdiff_t>(r * t.cols));
    out.push_back(std::move(t));
  }
  return out;
}

void AdamW::validate() const {
  auto bad = [](double v) { return !std::isfinite(v); };
  if (bad(lr) || lr <= 0) throw Error("AdamW: lr must be > 0 (got " + std::to_string(lr) + ")");
  if (bad(beta1) || beta1 < 0 || beta1 >= 1) throw Error("AdamW: beta1 must be in [0, 1)");
  if (bad(beta2) || beta2 < 0 || beta2 >= 1) throw Error("AdamW: beta2 must be in [0, 1)");
  if (bad(eps) || eps <= 0) throw Error("AdamW: eps must be > 0");
  if (bad(weight_decay) || weight_decay < 0) throw Error("AdamW: weight_decay must be >= 0");
}

void AdamW::step(std::span<float> p, std::span<float> m, std::span<float> v, std::span<const float> g,
                 std::uint64_t t) const {
  if (m.size() != p.size() || v.size() != p.size() || g.size() != p.size()) {
    throw std::logic_error("AdamW::step: size mismatch");
  }
  const double td = static_cast<double>(t);
  const float decay = static_cast<float>(1.0 - lr * weight_decay);
  const float b1 = static_cast<float>(beta1), c1 = static_cast<float>(1.0 - beta1);
  const float b2 = static_cast<float>(beta2), c2 = static_cast<float>(1.0 - beta2);
  const float step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, td)));
  const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, td)));
  const float e = static_cast<float>(eps);
  for (std::size_t i = 0; i < p.size(); ++i) {
    p[i] *= decay;
    m[i] = b1 * m[i] + c1 * g[i];
    v[i] = b2 * v[i] + c2 * g[i] * g[i];
    const float denom = std::sqrt(v[i]) / bc2_sqrt + e;
    p[i] -= step_size * (m[i] / denom);
  }
}

FakeQuant identity_transform(const TransformCall&, const Tensor& latent) {
  FakeQuant fq;
  fq.weights = latent;
  return fq;
}

std::vector<FakeQuant> apply_transform(const Mlp& model, const WeightTransform& transform) {
  model.validate();
  std::vector<FakeQuant> out;
  for (std::size_t l = 0; l < model.weights.size(); ++l) {
    out.push_back(transform(TransformCall{l, 0, true}, model.weights[l]));
    detail::check_fake_quant(out.back(), l, model.weights[l], false);
  }
  return out;
}

}  // namespace sqb::task
