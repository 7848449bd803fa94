#pragma once
/// \file quantize.hpp
/// Applying a strategy to a whole tensor at a granularity: the one wrapper through which every quantizer
/// works per tensor, per channel or per group.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sqb/codebook.hpp"
#include "sqb/granularity.hpp"
#include "sqb/quantizer.hpp"
#include "sqb/tensor.hpp"

namespace sqb {

/// The codebooks of a tensor: one per block, in storage order.
struct TensorDesign {
  std::size_t rows = 0, cols = 0;
  Granularity granularity;
  std::vector<Block> blocks;
  std::vector<BlockDesign> designs;  ///< designs[i] is for blocks[i]
  std::size_t code_count = 0;        ///< K
  std::size_t side_floats_per_block = 0;

  int max_iterations() const;
  std::size_t converged_blocks() const;
};

/// The seed a block gets: a mix of the cell seed and the block index (SplitMix64), so blocks draw
/// independently and the same cell always gives the same codebooks.
std::uint64_t block_seed(std::uint64_t seed, std::size_t block_index);

/// Designs one codebook per block. Throws Error if the tensor is empty or holds non-finite values.
TensorDesign design_tensor(const Quantizer& q, const Tensor& t, Granularity g, std::uint64_t seed);

/// Encodes every block with its codebook (the shared encoder, then the strategy's refine_codes if any).
/// `codes` must have t.size() entries and code_count K.
void encode_tensor(const Quantizer& q, const Tensor& t, const TensorDesign& d, Codes& codes);

/// Reconstructs the tensor: out[i] = level of codes[i] in its block's codebook. out.size() == codes.size().
void decode_tensor(const TensorDesign& d, const Codes& codes, std::span<float> out);

}  // namespace sqb
