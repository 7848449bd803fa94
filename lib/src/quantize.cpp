// The one pipeline: check -> fit -> encode -> decode -> measure.

#include "sqb/quantize.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

#include "detail/error_sums.hpp"
#include "detail/huge_pages.hpp"
#include "detail/kmeans_dp.hpp"
#include "detail/measure.hpp"
#include "detail/parallel.hpp"
#include "detail/reduce.hpp"
#include "sqb/codebook.hpp"
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

void check_data(TensorView x, int threads) {
  if (x.values.empty() || !detail::all_finite(x.values, threads)) check_finite(x.values, "data", x.cols);
}

void check_weights(TensorView x, std::span<const float> weights) {
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

void check_input(TensorView x, std::span<const float> weights, int threads = 1) {
  check_data(x, threads);
  check_weights(x, weights);
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

// Per-column weights become the equivalent per-element weights (one float per element, held for the call), so
// every stage and sum sees exactly what full-shape weights give: the same result bit for bit by construction.
QuantizeOptions expand_column_weights(TensorView x, const QuantizeOptions& o, std::vector<float>& storage) {
  check_column_weights(x, o);
  QuantizeOptions e = o;
  if (o.column_weights.empty()) return e;
  storage.resize(x.size());
  for (std::size_t r = 0; r < x.rows; ++r)
    std::copy(o.column_weights.begin(), o.column_weights.end(), storage.begin() + r * x.cols);
  e.weights = storage;
  e.column_weights = {};
  return e;
}

}  // namespace

void quantize_into(TensorView x, const Quantizer& q, const QuantizeOptions& options, Quantized& out,
                   StageTimes* times) {
  check_column_weights(x, options);
  QuantizeOptions o = options;
  const std::span<const float> cw = options.column_weights;
  o.column_weights = {};
  const bool weighted = !o.weights.empty() || !cw.empty();
  // The weights of elements [begin, begin + length): a slice of the per-element weights, of the column vector
  // when the range lies within one row, or else the column weights repeated into `scratch`.
  const auto weights_of = [&](std::size_t begin, std::size_t length,
                              std::vector<float>& scratch) -> std::span<const float> {
    if (!o.weights.empty()) return o.weights.subspan(begin, length);
    if (cw.empty()) return {};
    const std::size_t c0 = begin % x.cols;
    if (c0 + length <= x.cols) return cw.subspan(c0, length);
    scratch.resize(length);
    for (std::size_t i = 0, c = c0; i < length; c = 0) {  // row piece by row piece
      const std::size_t m = std::min(x.cols - c, length - i);
      std::copy_n(cw.data() + c, m, scratch.data() + i);
      i += m;
    }
    return scratch;
  };
  // Check, once, at the boundary. When every chunk holds whole blocks (channel, group:G, a small tensor), the
  // data's finite check runs inside the pass instead, on each chunk just before its blocks are designed (so
  // its values are read from memory once, not twice), and a chunk with a non-finite value is skipped: no
  // strategy ever sees one, and the whole-data check then throws the same Error as the up-front check
  // would. Whatever fails, a data error is the one reported, as when the check came first.
  const int threads = detail::resolve_threads(o.threads);
  const std::size_t k = q.code_count();
  const bool layout_kept =
      out.rows == x.rows && out.cols == x.cols && out.granularity == o.granularity && !out.blocks.empty();
  std::vector<Block> fresh_blocks;
  std::vector<detail::Chunk> chunks;
  try {
    if (x.size() == 0 || (!o.weights.empty() && o.weights.size() != x.size())) {
      throw Error("quantize: empty tensor, or weights of another size than the data");
    }
    if (!layout_kept) fresh_blocks = make_blocks(x.rows, x.cols, o.granularity);
    chunks = detail::make_chunks(layout_kept ? out.blocks : fresh_blocks);
  } catch (const Error&) {
    if (o.check_input) check_input(x, o.weights, threads);
    throw;
  }
  const bool one_pass =
      std::all_of(chunks.begin(), chunks.end(), [](const detail::Chunk& c) { return c.whole; });
  const bool check_in_pass = o.check_input && one_pass;
  if (o.check_input) {
    if (!check_in_pass) check_data(x, threads);
    try {
      check_weights(x, o.weights);
    } catch (const Error&) {
      if (check_in_pass) check_data(x, threads);
      throw;
    }
  }

  if (o.reuse_design &&
      (out.rows != x.rows || out.cols != x.cols || !(out.granularity == o.granularity) ||
       out.code_count != k || out.designs.size() != out.blocks.size() || out.blocks.empty())) {
    if (check_in_pass) check_data(x, threads);
    throw Error(
        "quantize: reuse_design needs the codebooks of an earlier call on a tensor of the same shape (" +
        std::to_string(x.rows) + " x " + std::to_string(x.cols) + "), granularity and K");
  }
  // Layout.
  if (!layout_kept) out.blocks = std::move(fresh_blocks);
  out.rows = x.rows;
  out.cols = x.cols;
  out.granularity = o.granularity;
  out.code_count = k;
  out.side = q.side_values();
  const std::size_t nb = out.blocks.size();

  // Fit -> encode (the shared encoder, then a strategy's refinement) -> decode -> measure, over chunks. When
  // every chunk holds whole blocks, one pass: a thread runs all four stages on a chunk while it is in its
  // cache. Otherwise (a block longer than a chunk) stage by stage, each stage over every chunk. Each block is
  // designed from its own seed and every sum has a fixed order, so neither the schedule nor the thread count
  // changes a bit of the result.
  if (!o.reuse_design)
    detail::resize_advised(out.designs, nb);  // 248 bytes a block: 65 MB for 4096 x 4096 in groups of 64
  if (out.codes.size() != x.size() || out.codes.code_count() != k)
    out.codes = Codes::for_overwrite(x.size(), k);
  if (o.keep_decoded) {
    detail::resize_advised(out.decoded, x.size());
  } else {
    out.decoded = {};
  }
  out.figures.clear();
  out.metrics = {};
  const RefinesCodes* refiner = part_of<RefinesCodes>(q);
  const bool chunk_histograms = o.measure && k <= 256;
  std::vector<detail::ErrorSums> sums(o.measure ? chunks.size() : 0);
  std::vector<std::uint32_t> histograms(chunk_histograms ? chunks.size() * k : 0);

  const auto design_block = [&](std::size_t i) {
    const Block& b = out.blocks[i];
    thread_local std::vector<float> scratch;
    const std::span<const float> w = weights_of(b.offset, b.length, scratch);
    BlockDesign& d = out.designs[i];
    const std::size_t g = o.block_offset + i;
    d = q.design(x.values.subspan(b.offset, b.length), {g, block_seed(o.seed, g), w});
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
  };
  // f(block, begin, length) for the parts of a chunk: each of its whole blocks, or its piece of one.
  const auto for_each_part = [&](const detail::Chunk& c, auto&& f) {
    if (!c.whole) {
      f(c.first_block, c.begin, c.length);
      return;
    }
    for (std::size_t i = c.first_block; i < c.end_block; ++i)
      f(i, out.blocks[i].offset, out.blocks[i].length);
  };
  const auto encode_chunk = [&](auto codes, const detail::Chunk& c) {
    for_each_part(c, [&](std::size_t i, std::size_t begin, std::size_t length) {
      encode(out.designs[i].codebook, x.values.subspan(begin, length), codes.subspan(begin, length));
    });
  };
  const auto refine_block = [&](auto codes, std::size_t i) {
    const Block& b = out.blocks[i];
    refiner->refine_codes(x.values.subspan(b.offset, b.length), out.designs[i].codebook, {b.offset, x.cols},
                          CodeSpan(codes.subspan(b.offset, b.length)));
  };
  // Without keep_decoded a chunk is decoded into this thread's buffer, element begin at [begin - c.begin].
  const auto decoded_of = [&](const detail::Chunk& c) -> std::span<float> {
    if (o.keep_decoded) return std::span<float>(out.decoded).subspan(c.begin, c.length);
    thread_local std::vector<float> buffer;
    buffer.resize(c.length);
    return buffer;
  };
  const auto decode_chunk = [&](auto codes, const detail::Chunk& c) {
    const std::span<float> into = decoded_of(c);
    for_each_part(c, [&](std::size_t i, std::size_t begin, std::size_t length) {
      decode(out.designs[i].codebook, codes.subspan(begin, length), into.subspan(begin - c.begin, length));
    });
  };
  const auto measure_chunk = [&](auto codes, std::size_t ci) {
    const detail::Chunk& c = chunks[ci];
    thread_local std::vector<float> scratch;
    const std::span<const float> w = weights_of(c.begin, c.length, scratch);
    sums[ci] = detail::error_sums(x.values.data() + c.begin, decoded_of(c).data(),
                                  w.empty() ? nullptr : w.data(), c.length);
    if (chunk_histograms) detail::count_codes(codes.subspan(c.begin, c.length), &histograms[ci * k], k);
  };

  std::atomic<bool> non_finite{false};
  const auto pass = [&](auto codes) {
    if (one_pass) {
      // Per chunk: seconds in fit, encode, decode, measure (only when timed).
      std::vector<std::array<double, 4>> spent(times ? chunks.size() : 0);
      const auto t_pass = Clock::now();
      detail::parallel_for(chunks.size(), threads, [&](std::size_t ci) {
        const detail::Chunk& c = chunks[ci];
        if (check_in_pass && !detail::all_finite(x.values.subspan(c.begin, c.length))) {
          non_finite.store(true, std::memory_order_relaxed);
          return;
        }
        Clock::time_point t[5];
        if (times) t[0] = Clock::now();
        if (!o.reuse_design) {
          for (std::size_t i = c.first_block; i < c.end_block; ++i)
            design_block(i);
        }
        if (times) t[1] = Clock::now();
        encode_chunk(codes, c);
        if (refiner) {
          for (std::size_t i = c.first_block; i < c.end_block; ++i)
            refine_block(codes, i);
        }
        if (times) t[2] = Clock::now();
        decode_chunk(codes, c);
        if (times) t[3] = Clock::now();
        if (o.measure) measure_chunk(codes, ci);
        if (times) {
          t[4] = Clock::now();
          for (int s = 0; s < 4; ++s)
            spent[ci][s] = std::chrono::duration<double>(t[s + 1] - t[s]).count();
        }
      });
      if (times) {
        // The stages interleave, so each gets the share of the pass's wall time its chunks spent in it.
        const double wall = seconds_since(t_pass);
        double stage[4] = {0, 0, 0, 0};
        for (const auto& c : spent) {
          for (int s = 0; s < 4; ++s)
            stage[s] += c[s];
        }
        const double total = stage[0] + stage[1] + stage[2] + stage[3];
        const double scale = total > 0 ? wall / total : 0;
        times->fit = stage[0] * scale;
        times->encode = stage[1] * scale;
        times->decode = stage[2] * scale;
      }
      return;
    }
    auto t0 = Clock::now();
    detail::parallel_for(o.reuse_design ? 0 : nb, threads, design_block);
    if (times) times->fit = seconds_since(t0);
    t0 = Clock::now();
    detail::parallel_for(chunks.size(), threads, [&](std::size_t ci) { encode_chunk(codes, chunks[ci]); });
    if (refiner) detail::parallel_for(nb, threads, [&](std::size_t i) { refine_block(codes, i); });
    if (times) times->encode = seconds_since(t0);
    t0 = Clock::now();
    if (!o.keep_decoded) {
      // Nothing keeps a chunk's reconstruction: each is measured while it is in the thread's buffer.
      detail::parallel_for(chunks.size(), threads, [&](std::size_t ci) {
        decode_chunk(codes, chunks[ci]);
        if (o.measure) measure_chunk(codes, ci);
      });
      if (times) times->decode = seconds_since(t0);
      return;
    }
    detail::parallel_for(chunks.size(), threads, [&](std::size_t ci) { decode_chunk(codes, chunks[ci]); });
    if (times) times->decode = seconds_since(t0);
    if (o.measure)
      detail::parallel_for(chunks.size(), threads, [&](std::size_t ci) { measure_chunk(codes, ci); });
  };
  try {
    out.codes.visit(pass);
  } catch (...) {
    if (check_in_pass)
      check_data(x, threads);  // a data error is reported first, as when it was checked first
    throw;
  }
  if (non_finite.load()) {
    check_data(x, threads);
    throw std::logic_error("quantize: a chunk failed the finite check but the data passed it");
  }
  if (!o.measure) return;

  // Measure: the chunks' sums in chunk order, the variance by a second pass about the mean (no cancellation
  // for data with a large offset), the histogram of the codes.
  detail::ErrorSums total;
  for (const detail::ErrorSums& c : sums)
    total += c;
  const double mean = total.sum / static_cast<double>(x.size());
  std::vector<double> centered(chunks.size());
  detail::parallel_for(chunks.size(), threads, [&](std::size_t ci) {
    centered[ci] = detail::centered_sum_sq(x.values.data() + chunks[ci].begin, chunks[ci].length, mean);
  });
  double var_sum = 0;
  for (const double v : centered)
    var_sum += v;
  detail::finish_error_metrics(static_cast<double>(x.size()), total, var_sum, weighted, out.metrics);
  std::vector<std::size_t> hist(k, 0);
  if (chunk_histograms) {
    for (std::size_t ci = 0; ci < chunks.size(); ++ci) {
      for (std::size_t v = 0; v < k; ++v)
        hist[v] += histograms[ci * k + v];
    }
  } else {
    out.codes.visit([&](auto c) {
      for (const auto v : c)
        ++hist[v];
    });
  }
  detail::finish_code_metrics(hist, out.codes, nb, out.side.per_block, o.coded, out.metrics);
  if (const ReportsFigures* r = part_of<ReportsFigures>(q)) {
    const std::vector<Col> cols = r->figure_columns();
    const std::vector<double> values = r->figures(out);
    if (cols.size() != values.size())
      throw std::logic_error("strategy figures: names and values differ in count");
    for (std::size_t i = 0; i < cols.size(); ++i)
      out.figures.push_back({cols[i], values[i]});
  }
}

double optimal_mse(TensorView x, std::size_t k, const QuantizeOptions& options) {
  std::vector<float> expanded;
  const QuantizeOptions o = expand_column_weights(x, options, expanded);
  if (o.check_input) check_input(x, o.weights);
  if (k < 1 || k > kMaxCodes)
    throw Error("optimal_mse: K = " + std::to_string(k) + " is outside " + k_range());
  const std::vector<Block> blocks = make_blocks(x.rows, x.cols, o.granularity);
  std::vector<double> sse(blocks.size());
  detail::parallel_for(blocks.size(), detail::resolve_threads(o.threads), [&](std::size_t i) {
    const Block& b = blocks[i];
    sse[i] = detail::optimal_sse(
        x.values.subspan(b.offset, b.length),
        o.weights.empty() ? std::span<const float>() : o.weights.subspan(b.offset, b.length), k);
  });
  double total = 0;
  for (const double v : sse)
    total += v;
  if (o.weights.empty()) return total / static_cast<double>(x.size());
  double wsum = 0;
  for (const float w : o.weights)
    wsum += w;
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
