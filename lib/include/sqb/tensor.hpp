#pragma once
/// \file tensor.hpp
/// A 2-D float32 tensor, row-major. A 1-D array is one row.

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace sqb {

/// rows x cols float32 values, row-major (element (r, c) is values[r * cols + c]).
/// float32 is what weights and activations are deployed as; every sum over a tensor is accumulated in double.
struct Tensor {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<float> values;
  /// Empty, or one importance weight per value (finite, >= 0), in the same order: what a source attaches
  /// when its spec asks for weights (a file of the same shape, or a rule such as |x|^2), and what
  /// QuantizeOptions::weights then carries into a quantize call.
  std::vector<float> weights;

  Tensor() = default;
  Tensor(std::size_t rows_, std::size_t cols_) : rows(rows_), cols(cols_), values(rows_ * cols_) {}
  Tensor(std::size_t rows_, std::size_t cols_,
         std::vector<float> v);  ///< throws Error if v.size() != rows*cols

  std::size_t size() const { return values.size(); }
  std::span<const float> row(std::size_t r) const { return {values.data() + r * cols, cols}; }
  std::span<float> row(std::size_t r) { return {values.data() + r * cols, cols}; }
};

/// A read-only view of rows x cols float32 values, row-major: what the library's calls take, so a caller's
/// own buffer (a memory-mapped file, a numpy array) is quantized without a copy. A Tensor converts to it.
struct TensorView {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::span<const float> values;  ///< rows * cols values

  TensorView() = default;
  /// Throws Error if values.size() != rows * cols.
  TensorView(std::size_t rows_, std::size_t cols_, std::span<const float> values_);
  TensorView(const Tensor& t)
      : rows(t.rows), cols(t.cols), values(t.values) {}  // NOLINT: implicit on purpose
  /// A 1-D array as one row.
  static TensorView row_vector(std::span<const float> values_) { return {1, values_.size(), values_}; }

  std::size_t size() const { return values.size(); }
};

/// Throws Error when `values` is empty or holds NaN or +-Inf: the message gives how many non-finite values
/// there are and the first one's flat index (and row/column when cols > 0), prefixed by `what` (e.g. the file
/// name).
void check_finite(std::span<const float> values, const std::string& what, std::size_t cols = 0);

}  // namespace sqb
