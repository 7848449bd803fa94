#include "sqb/metrics.hpp"

#include "detail/measure.hpp"

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
  var /= n;

  const double inf = std::numeric_limits<double>::infinity();
  m.n = static_cast<std::size_t>(n);
  m.mse = err_sq / n;
  m.max_abs_err = max_err;
  m.variance = var;
  m.nmse = m.mse == 0 ? 0.0 : (var > 0 ? m.mse / var : inf);
  const double power = sum_sq / n;
  m.sqnr_db = m.mse == 0 ? inf : (power > 0 ? 10.0 * std::log10(power / m.mse) : -inf);
  m.wmse = weighted && wsum > 0 ? werr / wsum : std::numeric_limits<double>::quiet_NaN();
}

Metrics compute_metrics(std::span<const float> x, std::span<const float> xhat, const Codes& codes,
                        std::size_t blocks, std::size_t side_per_block, std::span<const float> weights,
                        std::span<const float> column_weights) {
  if (x.empty() || x.size() != xhat.size() || codes.size() != x.size()) {
    throw Error("compute_metrics: data, reconstruction and codes must have the same size >= 1");
  }
  if (!weights.empty() && weights.size() != x.size())
    throw Error("compute_metrics: weights must have the data's size");
  Metrics m;
  if (!column_weights.empty()) {
    const std::size_t cols = column_weights.size();
    if (!weights.empty() || x.size() % cols != 0)
      throw Error("compute_metrics: column weights must divide the data into whole rows, without weights");
    // One part per row, in order: the same sums in the same order as one part with full-size weights.
    std::vector<ErrorPart> rows;
    rows.reserve(x.size() / cols);
    for (std::size_t at = 0; at < x.size(); at += cols)
      rows.push_back({x.subspan(at, cols), xhat.subspan(at, cols), column_weights});
    error_metrics(rows, m);
  } else {
    const ErrorPart part{x, xhat, weights};
    error_metrics({&part, 1}, m);
  }
  const double n = static_cast<double>(m.n);

  std::vector<std::size_t> hist(codes.code_count(), 0);
  codes.visit([&](auto c) {
    for (const auto v : c)
      ++hist[v];
  });
  m.entropy_bits = entropy_bits(hist);
  m.index_bits = index_bits(codes.code_count());
  const double side_bits = static_cast<double>(blocks * side_per_block) * 32.0;
  m.storage_bits = m.index_bits + side_bits / n;
  // One stream for the tensor, not one per block: a frequency table per group of 64 would cost more than the
  // group's codes. Every stream is decoded and compared with the codes before its size counts.
  const std::uint64_t stream_bits =
      codes.visit([&](auto c) { return rans_coded_bits(c, codes.code_count()); });
  m.coded_bits = (static_cast<double>(stream_bits) + side_bits) / n;

  return m;
}

}  // namespace detail

}  // namespace sqb
