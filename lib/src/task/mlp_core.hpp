#pragma once
// The MLP's forward and backward passes, written once for any element type: float32 is what trains, float64
// is the finite-difference oracle in the tests (the same formulas, so the check covers the real code path).
//
// Layouts. Armadillo is column-major, so a weight matrix W [out, in] stored row-major is, in the same memory,
// the column-major matrix W^T [in, out]: the model's weights are used in place, never copied. A batch is
// [features, B] column-major (one example per contiguous column), which is also how a dataset's row-major
// pixels already lie in memory.

#include <armadillo>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace sqb::task::detail {

/// One layer's parameters: w points to W [out, in] row-major (= W^T [in, out] column-major); b to out
/// values, or nullptr without bias.
template <class T>
struct LayerRef {
  const T* w = nullptr;
  const T* b = nullptr;
  std::size_t in = 0, out = 0;
};

/// Where a layer's gradients go: dw has out * in values ([out, in] row-major), db out values or nullptr.
template <class T>
struct GradRef {
  T* w = nullptr;
  T* b = nullptr;
};

template <class T>
class Net {
 public:
  using Mat = arma::Mat<T>;

  /// Runs the forward pass of a batch x ([in, B]); returns the sum over the batch of the per-example
  /// cross-entropy losses (in double). Keeps the activations and the softmax probabilities for backward().
  double forward(std::span<const LayerRef<T>> layers, const Mat& x, std::span<const std::uint8_t> labels) {
    const std::size_t n_layers = layers.size();
    act_.resize(n_layers);
    const Mat* input = &x;
    for (std::size_t l = 0; l < n_layers; ++l) {
      const LayerRef<T>& L = layers[l];
      const Mat wt(const_cast<T*>(L.w), L.in, L.out, false, true);
      Mat& z = act_[l];
      z = wt.t() * (*input);  // [out, B]
      if (L.b != nullptr) z.each_col() += arma::Col<T>(const_cast<T*>(L.b), L.out, false, true);
      if (l + 1 < n_layers) {
        for (T& v : z)
          v = v > T(0) ? v : T(0);
      }
      input = &z;
    }
    const Mat& logits = act_.back();
    probs_.set_size(logits.n_rows, logits.n_cols);
    double loss = 0;
    for (arma::uword j = 0; j < logits.n_cols; ++j) {
      const T* zc = logits.colptr(j);
      T* pc = probs_.colptr(j);
      T m = zc[0];
      for (arma::uword k = 1; k < logits.n_rows; ++k)
        m = zc[k] > m ? zc[k] : m;
      // log-sum-exp with the maximum subtracted: exp never overflows and the largest term is exactly 1.
      T s = 0;
      for (arma::uword k = 0; k < logits.n_rows; ++k) {
        pc[k] = std::exp(zc[k] - m);
        s += pc[k];
      }
      const T inv = T(1) / s;
      for (arma::uword k = 0; k < logits.n_rows; ++k)
        pc[k] *= inv;
      loss += static_cast<double>(m) + std::log(static_cast<double>(s)) - static_cast<double>(zc[labels[j]]);
    }
    return loss;
  }

  /// Gradients of scale * (sum of the batch's losses) with respect to every W and b, after forward() on the
  /// same batch and parameters. scale = 1/B gives the mean loss's gradient (torch's CrossEntropyLoss).
  void backward(std::span<const LayerRef<T>> layers, const Mat& x, std::span<const std::uint8_t> labels,
                T scale, std::span<const GradRef<T>> grads) {
    output_delta(labels, scale);
    for (std::size_t l = layers.size(); l-- > 0;) {
      const LayerRef<T>& L = layers[l];
      const Mat& input = l == 0 ? x : act_[l - 1];
      Mat dwt(grads[l].w, L.in, L.out, false, true);
      dwt = input * delta_.t();  // [in, out] = dL/dW^T
      if (grads[l].b != nullptr) {
        arma::Col<T> db(grads[l].b, L.out, false, true);
        db = arma::sum(delta_, 1);
      }
      if (l > 0) propagate(L, act_[l - 1]);
    }
  }

  /// Adds, for every layer, the sum over the batch of the squared per-example gradients (d loss_i / d W)^2
  /// to acc[l] ([out, in] row-major, double). For a linear layer the per-example gradient is delta_i a_i^T,
  /// so the sum of its squares is (delta .^ 2) (a .^ 2)^T: one matrix product per layer.
  void add_fisher(std::span<const LayerRef<T>> layers, const Mat& x, std::span<const std::uint8_t> labels,
                  std::span<double* const> acc) {
    output_delta(labels, T(1));
    for (std::size_t l = layers.size(); l-- > 0;) {
      const LayerRef<T>& L = layers[l];
      const Mat& input = l == 0 ? x : act_[l - 1];
      fisher_ = arma::square(input) * arma::square(delta_).t();  // [in, out]
      const T* f = fisher_.memptr();
      double* a = acc[l];
      for (std::size_t i = 0; i < L.in * L.out; ++i)
        a[i] += static_cast<double>(f[i]);
      if (l > 0) propagate(L, act_[l - 1]);
    }
  }

  /// [out_l, B]: layer l's output in the last forward pass (after the ReLU for a hidden layer).
  const Mat& output(std::size_t l) const { return act_[l]; }

  /// [classes, B]: the last forward pass's logits (column j is example j).
  const Mat& logits() const { return act_.back(); }

 private:
  void output_delta(std::span<const std::uint8_t> labels, T scale) {
    delta_ = probs_;
    for (arma::uword j = 0; j < delta_.n_cols; ++j)
      delta_(labels[j], j) -= T(1);
    if (scale != T(1)) delta_ *= scale;
  }

  // delta of layer l-1 from layer l's: W^T delta, masked by the ReLU (gradient 0 where the output was 0).
  void propagate(const LayerRef<T>& L, const Mat& below) {
    const Mat wt(const_cast<T*>(L.w), L.in, L.out, false, true);
    next_ = wt * delta_;  // [in, B]
    const T* a = below.memptr();
    T* d = next_.memptr();
    for (arma::uword i = 0; i < next_.n_elem; ++i)
      d[i] = a[i] > T(0) ? d[i] : T(0);
    std::swap(delta_, next_);
  }

  std::vector<Mat> act_;  // act_[l]: layer l's output (after ReLU for hidden layers; logits for the last)
  Mat probs_, delta_, next_, fisher_;
};

}  // namespace sqb::task::detail
