#include "sqb/tensor.hpp"

#include <cmath>
#include <string>

#include "detail/reduce.hpp"
#include "sqb/error.hpp"

namespace sqb {

Tensor::Tensor(std::size_t rows_, std::size_t cols_, std::vector<float> v)
    : rows(rows_), cols(cols_), values(std::move(v)) {
  if (values.size() != rows * cols) {
    throw Error("tensor of shape " + std::to_string(rows) + " x " + std::to_string(cols) + " given " +
                std::to_string(values.size()) + " values");
  }
}

TensorView::TensorView(std::size_t rows_, std::size_t cols_, std::span<const float> values_)
    : rows(rows_), cols(cols_), values(values_) {
  if (values.size() != rows * cols) {
    throw Error("tensor view of shape " + std::to_string(rows) + " x " + std::to_string(cols) + " given " +
                std::to_string(values.size()) + " values");
  }
}

void check_finite(std::span<const float> values, const std::string& what, std::size_t cols) {
  if (values.empty()) throw Error(what + ": no data (empty tensor)");
  if (detail::all_finite(values)) return;
  const std::size_t bad = detail::count_non_finite(values);
  std::size_t first = 0;
  while (std::isfinite(values[first]))
    ++first;
  std::string where = "index " + std::to_string(first);
  if (cols > 0)
    where += " (row " + std::to_string(first / cols) + ", col " + std::to_string(first % cols) + ")";
  const float v = values[first];
  const char* kind = std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf");
  throw Error(what + ": " + std::to_string(bad) + " non-finite value" + (bad == 1 ? "" : "s") +
              " (NaN or +-Inf); the first is " + kind + " at " + where);
}

}  // namespace sqb
