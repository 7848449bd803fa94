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

Metrics compute_metrics(std::span<const float> x, std::span<const float> xhat, const Codes& codes,
                        std::size_t blocks, std::size_t side_per_block, std::span<const float> weights) {
  if (x.empty() || x.size() != xhat.size() || codes.size() != x.size()) {
    throw Error("compute_metrics: data, reconstruction and codes must have the same size >= 1");
  }
  Metrics m;
  m.n = x.size();
  const double n = static_cast<double>(m.n);
  double sum = 0, sum_sq = 0, err_sq = 0, max_err = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    const double e = v - static_cast<double>(xhat[i]);
    sum += v;
    sum_sq += v * v;
    err_sq += e * e;
    max_err = std::max(max_err, std::abs(e));
  }
  // Variance by a second pass about the mean (no cancellation for data with a large offset).
  const double mean = sum / n;
  double var = 0;
  for (const float v : x)
    var += (v - mean) * (v - mean);
  var /= n;

  const double inf = std::numeric_limits<double>::infinity();
  m.mse = err_sq / n;
  m.max_abs_err = max_err;
  m.variance = var;
  m.nmse = m.mse == 0 ? 0.0 : (var > 0 ? m.mse / var : inf);
  const double power = sum_sq / n;
  m.sqnr_db = m.mse == 0 ? inf : (power > 0 ? 10.0 * std::log10(power / m.mse) : -inf);

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

  m.wmse = std::numeric_limits<double>::quiet_NaN();
  if (!weights.empty()) {
    if (weights.size() != x.size()) throw Error("compute_metrics: weights must have the data's size");
    double wsum = 0, werr = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double e = static_cast<double>(x[i]) - static_cast<double>(xhat[i]);
      wsum += weights[i];
      werr += static_cast<double>(weights[i]) * e * e;
    }
    if (wsum > 0) m.wmse = werr / wsum;
  }
  return m;
}

}  // namespace detail

}  // namespace sqb
