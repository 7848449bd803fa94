#pragma once
// The pipeline's error sums in a fixed order (lib/src/measure_simd.cpp), private to the library. SIMD
// (Highway, every target, dispatched at run time) and bit-identical on every target and thread count: the
// order is a function of the element positions alone.
//
// Order: within one range, element i of the range goes to accumulator i % 16 (16 running double sums per
// quantity, each adding its elements in increasing i); the 16 are then added in lane order 0..15. Ranges are
// combined by the caller, in range order.

#include <cstddef>
#include <cstdint>

namespace sqb::detail {

/// Sums over one range, in double: sum x, sum x^2, sum (x - x~)^2, max |x - x~|, and with weights sum w and
/// sum w (x - x~)^2 (computed as (w e) e); zero without weights.
struct ErrorSums {
  double sum = 0, sum_sq = 0, err_sq = 0, max_err = 0, wsum = 0, werr = 0;
  /// Adds another range's sums (ranges are combined in order, so the totals have a fixed order).
  ErrorSums& operator+=(const ErrorSums& o) {
    sum += o.sum;
    sum_sq += o.sum_sq;
    err_sq += o.err_sq;
    max_err = max_err < o.max_err ? o.max_err : max_err;
    wsum += o.wsum;
    werr += o.werr;
    return *this;
  }
};

/// The sums of x[0..n) against xhat (w may be null).
ErrorSums error_sums(const float* x, const float* xhat, const float* w, std::size_t n);
/// sum (x - mean)^2 over x[0..n), in the same order.
double centered_sum_sq(const float* x, std::size_t n, double mean);

/// hist[c] += the number of bytes equal to c in codes[0..n), for c < k (SIMD: one compare per vector of codes
/// and value; pays for k up to a few dozen).
void count_bytes_by_value(const std::uint8_t* codes, std::size_t n, std::uint32_t* hist, std::size_t k);

/// Scalar references of the same order, for the tests.
ErrorSums error_sums_reference(const float* x, const float* xhat, const float* w, std::size_t n);
double centered_sum_sq_reference(const float* x, std::size_t n, double mean);

}  // namespace sqb::detail
