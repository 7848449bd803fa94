#pragma once
// The pipeline's measure stage (quantize.cpp), private to the library; tests call it on hand-made data.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "detail/error_sums.hpp"
#include "sqb/codebook.hpp"
#include "sqb/granularity.hpp"
#include "sqb/metrics.hpp"

namespace sqb::detail {

/// Metrics of a reconstruction. x and xhat have the same size >= 1; codes has that size; `blocks` codebooks
/// each storing `side_per_block` float32 values. `weights` is empty or of x's size (then wmse is filled in,
/// else it is NaN). coded_bits is measured (a rANS pass) only when `coded`, else NaN.
Metrics compute_metrics(std::span<const float> x, std::span<const float> xhat, const Codes& codes,
                        std::size_t blocks, std::size_t side_per_block, std::span<const float> weights = {},
                        bool coded = true);

/// Chunks: the unit of work of the pipeline's pass and of its fixed summation order. Consecutive whole
/// blocks of at most kChunk elements together (at least one block), so a thread fits, encodes, decodes and
/// measures them while they sit in its cache, and groups of 64 are not scheduled one by one; a block longer
/// than kChunk is split into pieces of kChunk, so one big block (granularity=tensor) still spreads over the
/// threads. They depend on the layout alone, never on the thread count.
inline constexpr std::size_t kChunk = std::size_t{1} << 15;
struct Chunk {
  std::size_t first_block, end_block;  ///< blocks [first, end): whole blocks, or one block of which a piece
  std::size_t begin, length;           ///< flat element range
  bool whole;                          ///< whole blocks (else a piece of first_block)
};
std::vector<Chunk> make_chunks(const std::vector<Block>& blocks);

/// The pipeline's metrics of a result laid out in `blocks` (contiguous, in order, covering x): the error sums
/// per chunk (error_sums.hpp's order), combined in chunk order, on one thread; the same numbers as
/// sqb::quantize's measure stage for those blocks. coded_bits only when `coded`.
Metrics measure_blocks(std::span<const float> x, std::span<const float> xhat, const Codes& codes,
                       const std::vector<Block>& blocks, std::size_t side_per_block,
                       std::span<const float> weights, bool coded);

/// One (data, reconstruction, importance weights) part of a measurement; weights empty or of x's size.
struct ErrorPart {
  std::span<const float> x, xhat, weights;
};
/// The error figures of the parts taken together (one tensor, or every layer of a network): sets m's n, mse,
/// nmse, sqnr_db, max_abs_err, variance (a second pass about the pooled mean) and wmse (NaN unless every part
/// has weights and they sum to > 0), all accumulated in double. Parts must be non-empty with xhat of x's
/// size.
void error_metrics(std::span<const ErrorPart> parts, Metrics& m);

/// The error figures from their sums over n elements (var_sum: sum (x - mean)^2): sets m's n, mse, nmse,
/// sqnr_db, max_abs_err, variance and wmse (NaN unless `weighted` and the weights sum to > 0).
void finish_error_metrics(double n, const ErrorSums& s, double var_sum, bool weighted, Metrics& m);
/// The code figures from the histogram of the codes (K counts): entropy_bits, index_bits, storage_bits and,
/// when `coded`, coded_bits (a rANS pass over the codes; else NaN).
void finish_code_metrics(std::span<const std::size_t> hist, const Codes& codes, std::size_t blocks,
                         std::size_t side_per_block, bool coded, Metrics& m);
/// hist[c] += the number of codes equal to c (each code < k). Byte codes with k <= kCountByValue are counted
/// a value at a time (SIMD compares); otherwise by table increments. The same counts either way.
inline constexpr std::size_t kCountByValue = 32;
void count_codes(std::span<const std::uint8_t> codes, std::uint32_t* hist, std::size_t k);
void count_codes(std::span<const std::uint16_t> codes, std::uint32_t* hist, std::size_t k);

}  // namespace sqb::detail
