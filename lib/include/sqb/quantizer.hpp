#pragma once
/// \file quantizer.hpp
/// The strategy interface. Strategies differ in how they *design* a codebook for a block of data; applying it
/// (encode/decode) is shared (codebook.hpp). A strategy that assigns values differently says so through the
/// boundaries of the codebook it designs (Codebook::with_boundaries) and, if codes must change after
/// assignment (phi_log's exponent sharing), through refine_codes() — never by re-implementing the encoder.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sqb/codebook.hpp"

namespace sqb {

struct Tensor;
struct TensorDesign;

/// What one block's design produced.
struct BlockDesign {
  Codebook codebook;
  int iterations = 0;     ///< Lloyd iterations run (0 for closed-form strategies)
  bool converged = true;  ///< false when an iterative strategy stopped at max_iter
  /// The float32 values a deployment stores for this block (side_floats_per_block() of them), from which the
  /// codebook is rebuilt: e.g. {min, max}, {scale}, {mean, sigma}. Left empty by a strategy whose stored
  /// values are its K levels (design_tensor fills those in).
  std::vector<float> side;
};

/// An extra array a strategy contributes to `sqbench export` (besides codes, codebooks and side values).
struct ExportArray {
  std::string name;                  ///< file stem, e.g. "signs" -> signs.npy
  std::string dtype;                 ///< "uint8", "int8", "int16", "uint16" or "int32"
  std::vector<std::int32_t> values;  ///< one per tensor element, row-major (rows x cols)
  std::string description;           ///< one line for the export's manifest
};

/// Where a block sits and the seed it draws from: seed = block_seed(cell seed, index) (see quantize.hpp).
struct BlockInfo {
  std::size_t index = 0;
  std::uint64_t seed = 0;
};

/// Where a block lies in its tensor, for refine_codes(): strategies whose post-assignment step works along
/// rows (phi_log's exponent sharing) find the row starts inside the block from these. A block lies inside one
/// row (channel, group:G) or is whole rows starting at offset 0 (tensor).
struct BlockPlace {
  std::size_t offset = 0;  ///< flat index of the block's first element in the row-major tensor
  std::size_t cols = 0;    ///< the tensor's row length (>= 1)
};

/// Inputs a factory gets besides the spec's parameters.
struct BuildContext {
  std::size_t k = 0;  ///< number of codes K of the cell (1..65536)
  std::uint64_t seed =
      0;  ///< the cell's seed; strategies with randomness use it unless their spec sets seed=
};

class Quantizer {
 public:
  virtual ~Quantizer() = default;

  /// K: the number of distinct codes this quantizer may emit (index width is ceil(log2 K) bits). A codebook
  /// it designs has exactly K levels, some of which may coincide.
  virtual std::size_t code_count() const = 0;

  /// Designs the codebook for one block (a contiguous run of finite values, length >= 1).
  /// Strategies with randomness draw from info.seed (or from their own seed= mixed with info.index).
  virtual BlockDesign design(std::span<const float> block, const BlockInfo& info) const = 0;

  /// float32 values that must be stored per block to rebuild its codebook (K for a learned codebook; 2 for a
  /// codebook that is a fixed function of min and max; 1 for a fixed table times a scale). Storage accounting
  /// charges these at 32 bits each.
  virtual std::size_t side_floats_per_block() const = 0;
  /// What those values are, for export manifests ("min, max", "scale", ...). Default: the K levels.
  virtual std::string side_description() const { return "the K levels (float32, ascending)"; }

  /// Optional post-assignment step on one block's codes (after the shared encoder ran), called only when
  /// refines_codes() is true. `block` and `codes` have the same length; `place` says where the block lies.
  /// Every code written must be < K. Default: none.
  virtual bool refines_codes() const { return false; }
  virtual void refine_codes(std::span<const float> /*block*/, const Codebook& /*cb*/,
                            const BlockPlace& /*place*/, std::span<std::uint8_t> /*codes*/) const {}
  virtual void refine_codes(std::span<const float> /*block*/, const Codebook& /*cb*/,
                            const BlockPlace& /*place*/, std::span<std::uint16_t> /*codes*/) const {}

  /// Strategy-specific figures added to each result row (column names; the same for every K and block).
  virtual std::vector<std::string> extra_metric_names() const { return {}; }
  /// Their values for a quantized tensor, in the order of extra_metric_names(). NaN means "not defined here"
  /// and is written as an empty field.
  virtual std::vector<double> extra_metrics(const Tensor& /*data*/, const TensorDesign& /*design*/,
                                            const Codes& /*codes*/) const {
    return {};
  }

  /// Strategy-specific arrays for `sqbench export` (phi_log: sign bits and exponents). Default: none.
  virtual std::vector<ExportArray> export_arrays(const Tensor& /*data*/, const TensorDesign& /*design*/,
                                                 const Codes& /*codes*/) const {
    return {};
  }
};

}  // namespace sqb
