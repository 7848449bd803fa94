// The one pipeline: check -> fit -> encode -> decode -> measure.

#include "sqb/quantize.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

#include "detail/kmeans_dp.hpp"
#include "detail/measure.hpp"
#include "detail/parallel.hpp"
#include "sqb/error.hpp"
#include "sqb/registry.hpp"

namespace sqb {

int Quantized::max_iterations() const {
  int m = 0;
  for (const BlockDesign& d : designs)
    m = std::max(m, d.iterations);
  return m;
}

std::size_t Quantized::converged_blocks() const {
  return static_cast<std::size_t>(
      std::count_if(designs.begin(), designs.end(), [](const BlockDesign& d) { return d.converged; }));
}

std::vector<Figure> Quantized::metric_columns() const {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<Figure> out = {
      {Col::rows, static_cast<double>(rows)},
      {Col::cols, static_cast<double>(cols)},
      {Col::blocks, static_cast<double>(blocks.size())},
      {Col::mse, metrics.mse},
      {Col::nmse, metrics.nmse},
      {Col::sqnr_db, metrics.sqnr_db},
      {Col::max_abs_err, metrics.max_abs_err},
      {Col::entropy_bits, metrics.entropy_bits},
      {Col::storage_bits, metrics.storage_bits},
      {Col::coded_bits, metrics.coded_bits},
      {Col::wmse, metrics.wmse},
      {Col::iterations, static_cast<double>(max_iterations())},
      {Col::converged,
       blocks.empty() ? nan : static_cast<double>(converged_blocks()) / static_cast<double>(blocks.size())},
  };
  out.insert(out.end(), figures.begin(), figures.end());
  return out;
}

std::uint64_t block_seed(std::uint64_t seed, std::size_t block_index) {
  // SplitMix64 (Steele, Lea, Flood 2014) of the pair: well-mixed, so neighbouring blocks get unrelated
  // streams.
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (static_cast<std::uint64_t>(block_index) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::size_t codes_for_bits(int bits) {
  if (bits < 1 || bits > 16) {
    throw Error("bits = " + std::to_string(bits) + " is outside 1..16 (K = 2^bits codes, at most 65536)");
  }
  return std::size_t{1} << bits;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Element ranges for the elementwise stages: whole blocks, with blocks longer than kChunk split so that one
// big block (granularity=tensor) still spreads over the threads. Only used with threads > 1.
constexpr std::size_t kChunk = std::size_t{1} << 16;

struct Range {
  std::size_t block, begin, length;  // begin is a flat index
};

std::vector<Range> element_ranges(const std::vector<Block>& blocks, bool split) {
  std::vector<Range> out;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const Block& blk = blocks[b];
    const std::size_t step = split ? kChunk : blk.length;
    for (std::size_t s = 0; s < blk.length; s += step)
      out.push_back({b, blk.offset + s, std::min(step, blk.length - s)});
  }
  return out;
}

// A block's importance weights: a view of the full-size weights, of the column weights when the block lies
// within one row, or else the column weights repeated into `buffer`.
std::span<const float> block_weights(const QuantizeOptions& o, std::size_t cols, const Block& b,
                                     std::vector<float>& buffer) {
  if (!o.weights.empty()) return o.weights.subspan(b.offset, b.length);
  if (o.column_weights.empty()) return {};
  const std::size_t c0 = b.offset % cols;
  if (c0 + b.length <= cols) return o.column_weights.subspan(c0, b.length);
  buffer.resize(b.length);
  for (std::size_t i = 0; i < b.length; ++i)
    buffer[i] = o.column_weights[(b.offset + i) % cols];
  return buffer;
}

void check_column_weights(TensorView x, const QuantizeOptions& o) {
  if (o.column_weights.empty()) return;
  if (!o.weights.empty())
    throw Error("weights: give either per-element weights or per-column weights, not both");
  if (o.column_weights.size() != x.cols) {
    throw Error("column weights: " + std::to_string(o.column_weights.size()) + " values for a tensor of " +
                std::to_string(x.cols) + " columns (one importance weight per column is needed)");
  }
  check_finite(o.column_weights, "column weights", o.column_weights.size());
  for (std::size_t i = 0; i < o.column_weights.size(); ++i) {
    if (o.column_weights[i] < 0) {
      throw Error("column weights: the weight of column " + std::to_string(i) + " is negative (" +
                  std::to_string(o.column_weights[i]) + "); importance weights must be >= 0");
    }
  }
}

void check_input(TensorView x, std::span<const float> weights) {
  check_finite(x.values, "data", x.cols);
  if (weights.empty()) return;
  if (weights.size() != x.size()) {
    throw Error("weights: " + std::to_string(weights.size()) + " values for a tensor of " +
                std::to_string(x.size()) + " (one importance weight per element is needed)");
  }
  check_finite(weights, "weights", x.cols);
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] < 0) {
      throw Error("weights: the weight at index " + std::to_string(i) + " is negative (" +
                  std::to_string(weights[i]) + "); importance weights must be >= 0");
    }
  }
}

}  // namespace

void quantize_into(TensorView x, const Quantizer& q, const QuantizeOptions& o, Quantized& out,
                   StageTimes* times) {
  // Check, once, at the boundary.
  if (o.check_input) {
    check_input(x, o.weights);
    check_column_weights(x, o);
  } else if (x.size() == 0 || (!o.weights.empty() && o.weights.size() != x.size())) {
    throw Error("quantize: empty tensor, or weights of another size than the data");
  }
  const int threads = detail::resolve_threads(o.threads);
  const std::size_t k = q.code_count();

  if (o.reuse_design &&
      (out.rows != x.rows || out.cols != x.cols || !(out.granularity == o.granularity) ||
       out.code_count != k || out.designs.size() != out.blocks.size() || out.blocks.empty())) {
    throw Error(
        "quantize: reuse_design needs the codebooks of an earlier call on a tensor of the same shape (" +
        std::to_string(x.rows) + " x " + std::to_string(x.cols) + "), granularity and K");
  }
  // Layout.
  if (out.rows != x.rows || out.cols != x.cols || !(out.granularity == o.granularity) || out.blocks.empty()) {
    out.blocks = make_blocks(x.rows, x.cols, o.granularity);
  }
  out.rows = x.rows;
  out.cols = x.cols;
  out.granularity = o.granularity;
  out.code_count = k;
  out.side = q.side_values();
  const std::size_t nb = out.blocks.size();

  // Fit: one design per block, each from its own seed, so the order blocks are designed in never matters.
  auto t0 = Clock::now();
  if (!o.reuse_design) out.designs.resize(nb);
  detail::parallel_for(o.reuse_design ? 0 : nb, threads, [&](std::size_t i) {
    const Block& b = out.blocks[i];
    std::vector<float> buffer;
    const std::span<const float> w = block_weights(o, x.cols, b, buffer);
    out.designs[i] = q.design(x.values.subspan(b.offset, b.length), {i, block_seed(o.seed, i), w});
  });
  if (times) times->fit = seconds_since(t0);
  for (BlockDesign& d : out.designs) {
    if (d.codebook.size() != k) {
      throw std::logic_error("strategy designed " + std::to_string(d.codebook.size()) +
                             " levels for K = " + std::to_string(k));
    }
    if (d.side.empty() && out.side.per_block == k) {
      d.side.assign(d.codebook.levels().begin(), d.codebook.levels().end());
    }
    if (d.side.size() != out.side.per_block) {
      throw std::logic_error("strategy stored " + std::to_string(d.side.size()) + " side values, declared " +
                             std::to_string(out.side.per_block));
    }
  }

  // Encode: the shared encoder over element ranges, then the strategy's refinement per block.
  if (out.codes.size() != x.size() || out.codes.code_count() != k) out.codes = Codes(x.size(), k);
  const std::vector<Range> ranges = element_ranges(out.blocks, threads > 1);
  const RefinesCodes* refiner = part_of<RefinesCodes>(q);
  t0 = Clock::now();
  out.codes.visit([&](auto codes) {
    detail::parallel_for(ranges.size(), threads, [&](std::size_t r) {
      const Range& g = ranges[r];
      encode(out.designs[g.block].codebook, x.values.subspan(g.begin, g.length),
             codes.subspan(g.begin, g.length));
    });
    if (refiner) {
      detail::parallel_for(nb, threads, [&](std::size_t i) {
        const Block& b = out.blocks[i];
        refiner->refine_codes(x.values.subspan(b.offset, b.length), out.designs[i].codebook,
                              {b.offset, x.cols}, CodeSpan(codes.subspan(b.offset, b.length)));
      });
    }
  });
  if (times) times->encode = seconds_since(t0);

  // Decode.
  out.decoded.resize(x.size());
  t0 = Clock::now();
  out.codes.visit([&](auto codes) {
    detail::parallel_for(ranges.size(), threads, [&](std::size_t r) {
      const Range& g = ranges[r];
      decode(out.designs[g.block].codebook, codes.subspan(g.begin, g.length),
             std::span<float>(out.decoded).subspan(g.begin, g.length));
    });
  });
  if (times) times->decode = seconds_since(t0);

  // Measure.
  out.figures.clear();
  out.metrics = {};
  if (!o.measure) return;
  out.metrics = detail::compute_metrics(x.values, out.decoded, out.codes, nb, out.side.per_block, o.weights,
                                        o.column_weights);
  if (const ReportsFigures* r = part_of<ReportsFigures>(q)) {
    const std::vector<Col> cols = r->figure_columns();
    const std::vector<double> values = r->figures(out);
    if (cols.size() != values.size())
      throw std::logic_error("strategy figures: names and values differ in count");
    for (std::size_t i = 0; i < cols.size(); ++i)
      out.figures.push_back({cols[i], values[i]});
  }
}

double optimal_mse(TensorView x, std::size_t k, const QuantizeOptions& o) {
  if (o.check_input) {
    check_input(x, o.weights);
    check_column_weights(x, o);
  }
  if (k < 1 || k > 65536) throw Error("optimal_mse: K = " + std::to_string(k) + " is outside 1..65536");
  const std::vector<Block> blocks = make_blocks(x.rows, x.cols, o.granularity);
  std::vector<double> sse(blocks.size());
  detail::parallel_for(blocks.size(), detail::resolve_threads(o.threads), [&](std::size_t i) {
    const Block& b = blocks[i];
    std::vector<float> buffer;
    sse[i] = detail::optimal_sse(x.values.subspan(b.offset, b.length), block_weights(o, x.cols, b, buffer), k);
  });
  double total = 0;
  for (const double v : sse)
    total += v;
  if (o.weights.empty() && o.column_weights.empty()) return total / static_cast<double>(x.size());
  double wsum = 0;
  for (const float w : o.weights)
    wsum += w;
  for (std::size_t r = 0; r < (o.column_weights.empty() ? 0 : x.rows); ++r) {
    for (const float w : o.column_weights)
      wsum += w;
  }
  return wsum > 0 ? total / wsum : std::numeric_limits<double>::quiet_NaN();
}

Quantized quantize(TensorView x, const Quantizer& q, const QuantizeOptions& options) {
  Quantized out;
  quantize_into(x, q, options, out);
  return out;
}

Quantized quantize(TensorView x, std::string_view spec, std::size_t k, const QuantizeOptions& options) {
  const std::unique_ptr<Quantizer> q = make_quantizer(spec, {k, options.seed});
  return quantize(x, *q, options);
}

}  // namespace sqb
