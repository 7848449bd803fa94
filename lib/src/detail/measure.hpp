#pragma once
// The pipeline's measure stage (quantize.cpp), private to the library; tests call it on hand-made data.

#include <cstddef>
#include <span>

#include "sqb/codebook.hpp"
#include "sqb/metrics.hpp"

namespace sqb::detail {

/// Metrics of a reconstruction. x and xhat have the same size >= 1; codes has that size; `blocks` codebooks
/// each storing `side_per_block` float32 values. `weights` is empty or of x's size (then wmse is filled in,
/// else it is NaN).
Metrics compute_metrics(std::span<const float> x, std::span<const float> xhat, const Codes& codes,
                        std::size_t blocks, std::size_t side_per_block, std::span<const float> weights = {});

}  // namespace sqb::detail
