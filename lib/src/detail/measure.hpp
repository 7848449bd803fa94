#pragma once
// The pipeline's measure stage (quantize.cpp), private to the library; tests call it on hand-made data.

#include <cstddef>
#include <span>

#include "sqb/codebook.hpp"
#include "sqb/metrics.hpp"

namespace sqb::detail {

/// Metrics of a reconstruction. x and xhat have the same size >= 1; codes has that size; `blocks` codebooks
/// each storing `side_per_block` float32 values. `weights` is empty or of x's size (then wmse is filled in,
/// else it is NaN); or `column_weights`, one weight per column of rows of that length (the same figures as the
/// equivalent full-size weights, bit for bit: the rows are accumulated in order).
Metrics compute_metrics(std::span<const float> x, std::span<const float> xhat, const Codes& codes,
                        std::size_t blocks, std::size_t side_per_block, std::span<const float> weights = {},
                        std::span<const float> column_weights = {});

/// One (data, reconstruction, importance weights) part of a measurement; weights empty or of x's size.
struct ErrorPart {
  std::span<const float> x, xhat, weights;
};
/// The error figures of the parts taken together (one tensor, or every layer of a network): sets m's n, mse,
/// nmse, sqnr_db, max_abs_err, variance (a second pass about the pooled mean) and wmse (NaN unless every part
/// has weights and they sum to > 0), all accumulated in double. Parts must be non-empty with xhat of x's
/// size.
void error_metrics(std::span<const ErrorPart> parts, Metrics& m);

}  // namespace sqb::detail
