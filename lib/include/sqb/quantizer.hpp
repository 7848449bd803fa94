#pragma once
/// \file quantizer.hpp
/// The strategy interface. A strategy's one job is to *design* the codebook of a block of data (faiss calls
/// this "train"); applying it — encode and decode — is shared by every strategy (codebook.hpp) and run by the
/// one pipeline, sqb::quantize (quantize.hpp). A strategy that assigns values differently says so through the
/// boundaries of the codebook it designs (Codebook::with_boundaries).
///
/// Anything beyond designing is an optional *part* a strategy adds by also deriving from one of the small
/// interfaces below, and the pipeline, the CLI and the Python module ask for it with part_of<Part>(q):
///  - RefinesCodes: a post-assignment step on the codes (phi_log's exponent sharing);
///  - ReportsFigures: strategy-specific result columns (phi_log's exponent entropy);
///  - ExportsArrays: extra arrays for `sqbench export` (phi_log's sign bits and exponents);
///  - DesignsWithoutData: a codebook that needs no data (nf4, lloyd_max, ...), for `sqbench codebook`;
///  - LimitsBlocks: a block size it refuses (kmeans_optimal's memory budget), checked before a sweep starts.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "sqb/codebook.hpp"
#include "sqb/columns.hpp"

namespace sqb {

struct Quantized;

/// What one block's design produced.
struct BlockDesign {
  Codebook codebook;
  int iterations = 0;     ///< Lloyd iterations run (0 for closed-form strategies)
  bool converged = true;  ///< false when an iterative strategy stopped at max_iter
  /// The float32 values a deployment stores for this block (SideValues::per_block of them), from which the
  /// codebook is rebuilt: e.g. {min, max}, {scale}, {mean, sigma}. Left empty by a strategy whose stored
  /// values are its K levels (the pipeline fills those in). Held inside the design up to 16 values (no heap
  /// allocation per block for K <= 16); converts from a std::vector<float> or a braced list, and reads like
  /// one (size, [], begin/end, data, a std::span).
  SmallFloats<16> side;
};

/// The seed a block gets: a mix of the cell seed and the block index (SplitMix64), so blocks draw
/// independently and the same cell always gives the same codebooks.
std::uint64_t block_seed(std::uint64_t seed, std::size_t block_index);

/// Where a block sits in its tensor, the seed it draws from, and its per-element importance weights.
struct BlockInfo {
  std::size_t index = 0;   ///< the block's index in storage order
  std::uint64_t seed = 0;  ///< block_seed(cell seed, index)
  /// Empty, or one non-negative finite weight per value of the block: strategies that honour weights (the
  /// k-means family) minimise sum_i w_i (x_i - c(x_i))^2; the others ignore them.
  std::span<const float> weights;
};

/// The float32 values a strategy stores per block to rebuild its codebook (storage accounting charges each at
/// 32 bits) and what they are, for export manifests.
struct SideValues {
  std::size_t per_block = 0;  ///< K for a learned codebook, 2 for {min, max}, 1 for a scale, 0 for a constant
  std::string description;    ///< e.g. "min, max", "the K levels (float32, ascending)"
};

class Quantizer {
 public:
  virtual ~Quantizer() = default;

  /// K: the number of distinct codes this quantizer may emit (index width ceil(log2 K) bits). A codebook it
  /// designs has exactly K levels, some of which may coincide.
  std::size_t code_count() const { return k_; }
  const SideValues& side_values() const { return side_; }
  /// Bytes of working memory design() allocates per value of a block (sorted copies, prefix sums, tables):
  /// what a sweep's memory estimate charges for the largest block before any work.
  double design_bytes_per_value() const { return design_bytes_per_value_; }

  /// Designs the codebook for one block: a contiguous run of finite values, length >= 1 (the pipeline checked
  /// them). Strategies with randomness draw from info.seed (or their own seed= mixed with info.index).
  virtual BlockDesign design(std::span<const float> block, const BlockInfo& info) const = 0;

 protected:
  Quantizer(std::size_t k, SideValues side, double design_bytes_per_value = 0)
      : k_(k), side_(std::move(side)), design_bytes_per_value_(design_bytes_per_value) {}

 private:
  std::size_t k_;
  SideValues side_;
  double design_bytes_per_value_;
};

/// A part a strategy adds, or nullptr: part_of<ReportsFigures>(q).
template <class Part>
const Part* part_of(const Quantizer& q) {
  return dynamic_cast<const Part*>(&q);
}

/// One block's codes, of the width the tensor is encoded with.
using CodeSpan = std::variant<std::span<std::uint8_t>, std::span<std::uint16_t>>;

/// Where a block lies in its tensor, for refine_codes(): strategies whose post-assignment step works along
/// rows (phi_log's exponent sharing) find the row starts inside the block from these. A block lies inside one
/// row (channel, group:G) or is whole rows starting at offset 0 (tensor).
struct BlockPlace {
  std::size_t offset = 0;  ///< flat index of the block's first element in the row-major tensor
  std::size_t cols = 0;    ///< the tensor's row length (>= 1)
};

/// Part: a post-assignment step on one block's codes, after the shared encoder ran. `block` and `codes` have
/// the same length; every code written must be < K.
class RefinesCodes {
 public:
  virtual ~RefinesCodes() = default;
  virtual void refine_codes(std::span<const float> block, const Codebook& cb, const BlockPlace& place,
                            CodeSpan codes) const = 0;
};

/// Part: strategy-specific result columns (each a row of the column schema, columns.hpp).
class ReportsFigures {
 public:
  virtual ~ReportsFigures() = default;
  /// The columns this strategy fills (the same for every K and block).
  virtual std::vector<Col> figure_columns() const = 0;
  /// Their values for a quantized tensor, in the order of figure_columns(); NaN = not defined here.
  virtual std::vector<double> figures(const Quantized& result) const = 0;
  /// Working memory figures() takes, in bytes per value of the tensor (a sweep's memory estimate).
  virtual double figure_bytes_per_value() const { return 0; }
};

/// Part: a limit on the blocks a strategy can design (kmeans_optimal's memory budget), checked by a sweep for
/// its largest block before any work.
class LimitsBlocks {
 public:
  virtual ~LimitsBlocks() = default;
  /// Throws Error (saying why and what to change) when a block of `length` values cannot be designed.
  virtual void check_block(std::size_t length) const = 0;
};

/// An extra array a strategy contributes to `sqbench export` (besides codes, codebooks and side values).
struct ExportArray {
  std::string name;                  ///< file stem, e.g. "signs" -> signs.npy
  std::string dtype;                 ///< "uint8", "int8", "int16", "uint16" or "int32"
  std::vector<std::int32_t> values;  ///< one per tensor element, row-major (rows x cols)
  std::string description;           ///< one line for the export's manifest
};

/// A coded byte stream a strategy contributes to `sqbench export --coded`.
struct ExportStream {
  std::string name;                 ///< file name, e.g. "exponents.rans"
  std::vector<std::uint8_t> bytes;  ///< the stream as written
  std::string format;               ///< for the export's manifest: what the bytes are and how to read them
};

/// Part: extra arrays for `sqbench export` (phi_log: sign bits and exponents), and coded streams for
/// `sqbench export --coded` (phi_log: its {sign bit, exponent} coding, whose size is its exp_coded_bits).
class ExportsArrays {
 public:
  virtual ~ExportsArrays() = default;
  virtual std::vector<ExportArray> export_arrays(const Quantized& result) const = 0;
  virtual std::vector<ExportStream> export_streams(const Quantized& result) const {
    (void)result;
    return {};
  }
};

/// A codebook that needs no data: the levels a block gets before any per-block scale, and how a block's
/// values map onto them.
struct DataFreeCodebook {
  std::vector<double> levels;      ///< K, ascending
  std::vector<double> boundaries;  ///< K-1, ascending: the assignment boundaries between neighbours
  /// How a block applies them, for people: e.g. "times the block's max |x|", "as they are".
  std::string applied_as;
  /// True when a block multiplies the levels by a scale of its own (absmax, std, mse): the shape is what is
  /// fixed, so an MSE is only meaningful at a chosen scale.
  bool scaled = false;
};

/// Part: the codebook without data (nf4, fp4, normal_quantile, uniform symmetric=1, phi_log with a fixed
/// exponent range, lloyd_max), for `sqbench codebook` and the Python module's `codebook()`.
class DesignsWithoutData {
 public:
  virtual ~DesignsWithoutData() = default;
  virtual DataFreeCodebook data_free_codebook() const = 0;
};

/// Inputs a factory gets besides the spec's parameters.
struct BuildContext {
  std::size_t k = 0;  ///< number of codes K of the cell (1..65536)
  std::uint64_t seed =
      0;  ///< the cell's seed; strategies with randomness use it unless their spec sets seed=
};

}  // namespace sqb
