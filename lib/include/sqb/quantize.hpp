#pragma once
/// \file quantize.hpp
/// The one pipeline: quantize a tensor with a strategy at a granularity and get everything back in one value
/// — the layout (blocks), the design (per-block codebooks, thresholds, side values), the codes, the
/// reconstruction and the metrics. The CLI's sweeps and export, the rotated source's evaluation, the Python
/// module, the tests and the fuzzers all call it; there is no other sequence of design, encode and decode.
///
///     sqb::Quantized r = sqb::quantize(x, "kmeans init=kmeans++", 16, {.granularity =
///     sqb::Granularity::parse("channel")}); double mse = r.metrics.mse;
///
/// Stages, in order: check (once, at the boundary) -> fit (design one codebook per block) -> encode (the
/// shared encoder, then a strategy's code refinement) -> decode -> measure (metrics and the strategy's
/// figures). quantize_into runs the same sequence into an existing result, reusing its buffers, and can time
/// the fit, encode and decode stages (what a sweep's timed repeats do).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "sqb/buffer.hpp"
#include "sqb/codebook.hpp"
#include "sqb/columns.hpp"
#include "sqb/granularity.hpp"
#include "sqb/metrics.hpp"
#include "sqb/quantizer.hpp"
#include "sqb/tensor.hpp"

namespace sqb {

/// Optional inputs of a quantize call.
struct QuantizeOptions {
  Granularity granularity;  ///< tensor (default), channel or group:G
  std::uint64_t seed = 0;   ///< the cell's seed: randomised designs draw from block_seed(seed, block index)
  /// Empty, or one non-negative finite importance weight per element (row-major, like the data). Strategies
  /// that honour weights minimise the weighted squared error; every result reports the weighted MSE.
  std::span<const float> weights;
  /// Empty, or one non-negative finite weight per column (activation importance: the mean of x^2 per input
  /// channel): element (r, c) is weighted by column_weights[c]. Exactly the same result, bit for bit, as
  /// `weights` holding that value at every (r, c): a block or chunk within one row reads its slice of the
  /// vector, one spanning rows a per-thread copy of its own length (never rows x cols floats). Setting both
  /// is an Error.
  std::span<const float> column_weights;
  /// Threads over the tensor's blocks (and over chunks of a long block when encoding and decoding): 1 runs
  /// everything on the calling thread, 0 uses every core (std::thread::hardware_concurrency). The result is
  /// bit-identical for every value: blocks are independent and each is designed by one thread.
  int threads = 1;
  /// Check the data (and weights) once before the first stage: every value finite, the sizes consistent.
  /// A caller that checked the data when it was drawn (a sweep) passes false, so the check never lands in a
  /// timed stage.
  bool check_input = true;
  /// Compute metrics and figures (the measure stage). False for timed repeats.
  bool measure = true;
  /// Also measure coded_bits (metrics.hpp): a real rANS pass over the codes, encoded then decoded and
  /// checked, which costs more than the rest of the measure stage. Off, coded_bits is NaN (an empty cell,
  /// None).
  bool coded = false;
  /// quantize_into only: skip the fit stage and encode with the codebooks already in the result (designed by
  /// an earlier call on a tensor of the same shape, granularity and K): quantization-aware training assigns
  /// its latent weights to the last codebooks between re-designs. Throws Error when they do not match.
  bool reuse_design = false;
  /// Keep the reconstruction in Quantized::decoded. False: `decoded` stays empty and each chunk is decoded
  /// into a per-thread buffer for the measure stage only (the metrics are the same bit for bit); a caller
  /// that streams the reconstruction out decodes it from the codes and designs (sqb::decode), a chunk at a
  /// time, and saves a float per element.
  bool keep_decoded = true;
  /// The global index of the tensor's first block: block i of this call is designed as block
  /// `block_offset + i` (its BlockInfo index and its seed, block_seed(seed, block_offset + i)). A caller that
  /// quantizes a tensor in slabs of whole rows at channel or group granularity (blocks never cross rows)
  /// passes each slab's first block index and gets the whole-tensor designs bit for bit.
  std::size_t block_offset = 0;
};

/// Seconds spent in each timed stage of one quantize_into run (std::chrono::steady_clock).
struct StageTimes {
  double fit = 0, encode = 0, decode = 0;
};

/// Everything one quantization of a tensor produced.
struct Quantized {
  // Layout.
  std::size_t rows = 0, cols = 0;
  Granularity granularity;
  std::vector<Block> blocks;  ///< in storage order
  // Design: designs[i] is the codebook of blocks[i].
  Buffer<BlockDesign> designs;
  std::size_t code_count = 0;  ///< K
  SideValues side;             ///< what each block stores besides its codes
  // Codes and reconstruction, rows * cols each, row-major. The reconstruction is a Buffer (buffer.hpp): a
  // std::vector<float> whose fresh storage is not zeroed before the pipeline writes it.
  Codes codes;
  Buffer<float> decoded;
  // Measure stage (empty/zero when QuantizeOptions::measure was false).
  Metrics metrics;
  std::vector<Figure> figures;  ///< the strategy's own columns (ReportsFigures), in its order

  int max_iterations() const;            ///< Lloyd iterations, max over blocks
  std::size_t converged_blocks() const;  ///< blocks whose design converged
  /// Every metric column of this result (the schema's kind `metric`, then the strategy's figures), as the CSV
  /// and the Python module's `metrics` dict report them.
  std::vector<Figure> metric_columns() const;
};

/// Quantizes `x` with the strategy `spec` (e.g. "kmeans init=greedy", see sqbench list) at K = `k` codes.
/// Throws Error for a bad spec or parameter (naming it and the valid choices), K outside 1..65536, a K the
/// strategy cannot serve (NotApplicable), an empty tensor, non-finite data or weights (naming the first bad
/// index) or weights of the wrong size.
Quantized quantize(TensorView x, std::string_view spec, std::size_t k, const QuantizeOptions& options = {});

/// The same with a quantizer already built (make_quantizer): its K is the quantizer's.
Quantized quantize(TensorView x, const Quantizer& q, const QuantizeOptions& options = {});

/// The same sequence into `out`, reusing its buffers when the shapes match; when `times` is given, the fit,
/// encode and decode stages are timed into it.
void quantize_into(TensorView x, const Quantizer& q, const QuantizeOptions& options, Quantized& out,
                   StageTimes* times = nullptr);

/// The least MSE any codebook of K levels per block can reach on x at options.granularity: 1-D k-means solved
/// exactly in every block (kmeans_optimal's programme, on the distinct values; Lagrangian search over the
/// number of clusters, Gronlund et al. 2017). With options.weights it is the least weighted MSE,
/// sum w (x - c)^2 / sum w (NaN when every weight is 0). Blocks run on options.threads threads. What a
/// result's mse (or wmse) is divided by for the opt_ratio column. Throws Error like quantize for bad data,
/// weights or K.
double optimal_mse(TensorView x, std::size_t k, const QuantizeOptions& options = {});

/// K = 2^bits for bits = 1..16; throws Error naming `bits` otherwise.
std::size_t codes_for_bits(int bits);

}  // namespace sqb
