#pragma once
/// \file metrics.hpp
/// Quality and storage figures of one quantized tensor (the pipeline's measure stage fills them in; see
/// quantize.hpp). All sums are accumulated in double, so values near FLT_MAX neither overflow nor lose the
/// small errors.

#include <cstddef>
#include <span>

namespace sqb {

struct Metrics {
  std::size_t n = 0;
  double mse = 0;      ///< mean (x - x~)^2
  double nmse = 0;     ///< mse / variance(x); 0 when mse == 0, +inf when variance == 0 < mse
  double sqnr_db = 0;  ///< 10 log10(mean(x^2) / mse); +inf when mse == 0 (lossless), -inf when x == 0 < mse
  double max_abs_err = 0;   ///< max |x - x~|
  double variance = 0;      ///< population variance of x
  double entropy_bits = 0;  ///< empirical entropy of the codes, bits per element
  double index_bits = 0;    ///< fixed-width index bits per element: ceil(log2 K) (0 for K = 1)
  double storage_bits = 0;  ///< index bits plus every codebook's float32 side values, per element
  /// Measured entropy-coded size per element: the codes as one rANS stream with a static frequency table for
  /// the whole tensor (rans_coded_bits, coding.hpp: header + table + payload, decoded and checked), plus the
  /// same side values as storage_bits. NaN unless asked for (QuantizeOptions::coded): the pass costs more
  /// than the rest of the measure stage.
  double coded_bits = 0;
  /// sum w_i (x_i - x~_i)^2 / sum w_i with the call's importance weights; NaN without weights (or when every
  /// weight is 0).
  double wmse = 0;
};

/// Empirical entropy in bits of a histogram (counts of each symbol): -sum p log2 p over non-zero counts.
double entropy_bits(std::span<const std::size_t> counts);

/// ceil(log2 k) for k >= 1 (0 for k = 1).
unsigned index_bits(std::size_t k);

}  // namespace sqb
