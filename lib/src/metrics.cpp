#include "sqb/metrics.hpp"

#include "detail/error_sums.hpp"
#include "detail/measure.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "sqb/coding.hpp"
#include "sqb/error.hpp"

namespace sqb {

unsigned index_bits(std::size_t k) {
  return k <= 1 ? 0u : static_cast<unsigned>(std::bit_width(k - 1));
}

double entropy_bits(std::span<const std::size_t> counts) {
  double total = 0;
  for (const std::size_t c : counts)
    total += static_cast<double>(c);
  if (total == 0) return 0;
  double h = 0;
  for (const std::size_t c : counts) {
    if (c == 0) continue;
    const double p = static_cast<double>(c) / total;
    h -= p * std::log2(p);
  }
  return h;
}

namespace detail {

void error_metrics(std::span<const ErrorPart> parts, Metrics& m) {
  double n = 0, sum = 0, sum_sq = 0, err_sq = 0, max_err = 0, wsum = 0, werr = 0;
  bool weighted = !parts.empty();
  for (const ErrorPart& p : parts) {
    n += static_cast<double>(p.x.size());
    weighted = weighted && !p.weights.empty();
    for (std::size_t i = 0; i < p.x.size(); ++i) {
      const double v = p.x[i];
      const double e = v - static_cast<double>(p.xhat[i]);
      sum += v;
      sum_sq += v * v;
      err_sq += e * e;
      max_err = std::max(max_err, std::abs(e));
      if (!p.weights.empty()) {
        wsum += p.weights[i];
        werr += static_cast<double>(p.weights[i]) * e * e;
      }
    }
  }
  // Variance by a second pass about the mean (no cancellation for data with a large offset).
  const double mean = sum / n;
  double var = 0;
  for (const ErrorPart& p : parts) {
    for (const float v : p.x)
      var += (v - mean) * (v - mean);
  }
  finish_error_metrics(n, {sum, sum_sq, err_sq, max_err, wsum, werr}, var, weighted, m);
}

void finish_error_metrics(double n, const ErrorSums& s, double var_sum, bool weighted, Metrics& m) {
  const double inf = std::numeric_limits<double>::infinity();
  const double var = var_sum / n;
  m.n = static_cast<std::size_t>(n);
  m.mse = s.err_sq / n;
  m.max_abs_err = s.max_err;
  m.variance = var;
  m.nmse = m.mse == 0 ? 0.0 : (var > 0 ? m.mse / var : inf);
  const double power = s.sum_sq / n;
  m.sqnr_db = m.mse == 0 ? inf : (power > 0 ? 10.0 * std::log10(power / m.mse) : -inf);
  m.wmse = weighted && s.wsum > 0 ? s.werr / s.wsum : std::numeric_limits<double>::quiet_NaN();
}

void finish_code_metrics(std::span<const std::size_t> hist, const Codes& codes, std::size_t blocks,
                         std::size_t side_per_block, bool coded, Metrics& m) {
  const double n = static_cast<double>(codes.size());
  m.entropy_bits = entropy_bits(hist);
  m.index_bits = index_bits(codes.code_count());
  const double side_bits = static_cast<double>(blocks * side_per_block) * 32.0;
  m.storage_bits = m.index_bits + side_bits / n;
  if (!coded) {
    m.coded_bits = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  // One stream for the tensor, not one per block: a frequency table per group of 64 would cost more than the
  // group's codes. Every stream is decoded and compared with the codes before its size counts.
  const std::uint64_t stream_bits =
      codes.visit([&](auto c) { return rans_coded_bits(c, codes.code_count()); });
  m.coded_bits = (static_cast<double>(stream_bits) + side_bits) / n;
}

std::vector<Chunk> make_chunks(const std::vector<Block>& blocks) {
  std::vector<Chunk> out;
  for (std::size_t b = 0; b < blocks.size();) {
    const Block& blk = blocks[b];
    if (blk.length > kChunk) {
      for (std::size_t s = 0; s < blk.length; s += kChunk)
        out.push_back({b, b + 1, blk.offset + s, std::min(kChunk, blk.length - s), false});
      ++b;
      continue;
    }
    Chunk c{b, b + 1, blk.offset, blk.length, true};
    for (++b;
         b < blocks.size() && blocks[b].offset == c.begin + c.length && c.length + blocks[b].length <= kChunk;
         ++b) {
      c.length += blocks[b].length;
      c.end_block = b + 1;
    }
    out.push_back(c);
  }
  return out;
}

Metrics measure_blocks(std::span<const float> x, std::span<const float> xhat, const Codes& codes,
                       const std::vector<Block>& blocks, std::size_t side_per_block,
                       std::span<const float> weights, bool coded) {
  if (x.empty() || x.size() != xhat.size() || codes.size() != x.size()) {
    throw Error("measure_blocks: data, reconstruction and codes must have the same size >= 1");
  }
  if (!weights.empty() && weights.size() != x.size())
    throw Error("measure_blocks: weights must have the data's size");
  const std::vector<Chunk> chunks = make_chunks(blocks);
  ErrorSums total;
  for (const Chunk& c : chunks) {
    total += error_sums(x.data() + c.begin, xhat.data() + c.begin,
                        weights.empty() ? nullptr : weights.data() + c.begin, c.length);
  }
  const double n = static_cast<double>(x.size());
  double var_sum = 0;
  for (const Chunk& c : chunks)
    var_sum += centered_sum_sq(x.data() + c.begin, c.length, total.sum / n);
  Metrics m;
  finish_error_metrics(n, total, var_sum, !weights.empty(), m);
  std::vector<std::size_t> hist(codes.code_count(), 0);
  codes.visit([&](auto c) {
    for (const auto v : c)
      ++hist[v];
  });
  finish_code_metrics(hist, codes, blocks.size(), side_per_block, coded, m);
  return m;
}

namespace {

template <class Index>
void count_codes_impl(std::span<const Index> codes, std::uint32_t* hist, std::size_t k) {
  // Four tables, so that runs of one code do not wait on one counter's store.
  std::vector<std::uint32_t> t(4 * k, 0);
  std::size_t i = 0;
  for (; i + 4 <= codes.size(); i += 4) {
    ++t[codes[i]];
    ++t[k + codes[i + 1]];
    ++t[2 * k + codes[i + 2]];
    ++t[3 * k + codes[i + 3]];
  }
  for (; i < codes.size(); ++i)
    ++t[codes[i]];
  for (std::size_t c = 0; c < k; ++c)
    hist[c] += t[c] + t[k + c] + t[2 * k + c] + t[3 * k + c];
}

}  // namespace

void count_codes(std::span<const std::uint8_t> codes, std::uint32_t* hist, std::size_t k) {
  if (k <= kCountByValue) {
    count_bytes_by_value(codes.data(), codes.size(), hist, k);
  } else {
    count_codes_impl(codes, hist, k);
  }
}
void count_codes(std::span<const std::uint16_t> codes, std::uint32_t* hist, std::size_t k) {
  count_codes_impl(codes, hist, k);
}

Metrics compute_metrics(std::span<const float> x, std::span<const float> xhat, const Codes& codes,
                        std::size_t blocks, std::size_t side_per_block, std::span<const float> weights,
                        bool coded) {
  if (x.empty() || x.size() != xhat.size() || codes.size() != x.size()) {
    throw Error("compute_metrics: data, reconstruction and codes must have the same size >= 1");
  }
  if (!weights.empty() && weights.size() != x.size())
    throw Error("compute_metrics: weights must have the data's size");
  Metrics m;
  const ErrorPart part{x, xhat, weights};
  error_metrics({&part, 1}, m);
  std::vector<std::size_t> hist(codes.code_count(), 0);
  codes.visit([&](auto c) {
    for (const auto v : c)
      ++hist[v];
  });
  finish_code_metrics(hist, codes, blocks, side_per_block, coded, m);
  return m;
}

}  // namespace detail

}  // namespace sqb
