// Public Lloyd-Max entry points: conditional expectations, law MSE, the solver and its process-wide cache.

#include "sqb/lloyd_max.hpp"

#include <algorithm>
#include <boost/math/tools/minima.hpp>
#include <cmath>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>

#include "detail/laws.hpp"
#include "detail/lloyd_max_solver.hpp"
#include "sqb/error.hpp"

namespace sqb {

namespace {

// Clamps (a, b) to the support and checks it is a non-empty interval.
std::pair<double, double> clamp_cell(const Law& law, double a, double b, const char* what) {
  if (std::isnan(a) || std::isnan(b)) throw Error(std::string(what) + ": a or b is NaN");
  const double lo = std::max(a, law.lower()), hi = std::min(b, law.upper());
  if (!(lo < hi)) {
    std::ostringstream m;
    m << what << ": need a < b inside the support of the " << law.to_string() << " law, got (" << a << ", "
      << b << ")";
    throw Error(m.str());
  }
  return {lo, hi};
}

}  // namespace

double gaussian_conditional_expectation(double sigma, double a, double b) {
  if (!(sigma > 0 && std::isfinite(sigma))) {
    std::ostringstream m;
    m << "gaussian_conditional_expectation: parameter 'sigma' must be finite and > 0, got " << sigma;
    throw Error(m.str());
  }
  // Standardise; a/sigma may overflow to inf for tiny sigma, which is the right limit.
  return sigma * conditional_expectation(Law::gaussian(), a / sigma, b / sigma);
}

double conditional_expectation(const Law& law, double a, double b) {
  const auto [lo, hi] = clamp_cell(law, a, b, "conditional_expectation");
  return detail::cell_moments(law, lo, hi).mean;
}

double law_mse(const Law& law, std::span<const double> levels, std::span<const double> boundaries) {
  if (levels.empty() || boundaries.size() + 1 != levels.size()) {
    throw Error("law_mse: need K >= 1 levels and K - 1 boundaries, got " + std::to_string(levels.size()) +
                " and " + std::to_string(boundaries.size()));
  }
  for (std::size_t i = 0; i + 1 < boundaries.size(); ++i) {
    if (!(boundaries[i] <= boundaries[i + 1])) throw Error("law_mse: boundaries must be ascending");
  }
  double mse = 0;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const double lo = std::max(i == 0 ? law.lower() : boundaries[i - 1], law.lower());
    const double hi = std::min(i + 1 == levels.size() ? law.upper() : boundaries[i], law.upper());
    if (lo < hi) mse += detail::cell_squared_deviation(law, lo, hi, levels[i]);
  }
  return mse;
}

ScaledFit best_scale_fit(const Law& law, std::span<const double> levels, std::span<const double> boundaries) {
  if (levels.empty() || boundaries.size() + 1 != levels.size()) {
    throw Error("best_scale_fit: need K >= 1 levels and K - 1 boundaries");
  }
  double top = 0;
  for (const double l : levels)
    top = std::max(top, std::fabs(l));
  if (!(top > 0)) throw Error("best_scale_fit: every level is 0, no scale can fit a law");
  std::vector<double> sl(levels.size()), sb(boundaries.size());
  const auto mse = [&](double s) {
    for (std::size_t i = 0; i < levels.size(); ++i)
      sl[i] = s * levels[i];
    for (std::size_t i = 0; i < boundaries.size(); ++i)
      sb[i] = s * boundaries[i];
    return law_mse(law, sl, sb);
  };
  // The grid, in log2(s * top).
  constexpr int kPerOctave = 16, kLo = -12 * kPerOctave, kHi = 8 * kPerOctave;
  std::vector<double> scales, values;
  for (int i = kLo; i <= kHi; ++i) {
    scales.push_back(std::exp2(static_cast<double>(i) / kPerOctave) / top);
    values.push_back(mse(scales.back()));
  }
  std::vector<std::size_t> order(scales.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return values[a] < values[b]; });
  ScaledFit best{scales[order[0]], values[order[0]]};
  for (std::size_t r = 0; r < std::min<std::size_t>(3, order.size()); ++r) {
    const std::size_t i = order[r];
    const double lo = scales[i == 0 ? 0 : i - 1], hi = scales[std::min(i + 1, scales.size() - 1)];
    const auto [s, v] = boost::math::tools::brent_find_minima(mse, lo, hi, 40);
    if (v < best.mse) best = {s, v};
  }
  return best;
}

LloydMaxSolution solve_lloyd_max(const Law& law, unsigned bits) {
  if (bits < 1 || bits > 16) {
    throw Error("Lloyd-Max codebook: parameter 'bits' must be in 1..16 (K = 2^bits levels), got " +
                std::to_string(bits));
  }
  // Every level starts from the split of the one below (see lloyd_max_solver.cpp): solve the chain 1..bits.
  LloydMaxSolution sol = detail::solve_lloyd_max_newton(law, 1, nullptr);
  for (unsigned b = 2; b <= bits; ++b)
    sol = detail::solve_lloyd_max_newton(law, b, &sol);
  return sol;
}

std::shared_ptr<const LloydMaxSolution> lloyd_max_solution(const Law& law, unsigned bits) {
  using Key = std::tuple<Law, unsigned>;
  static std::mutex mutex;
  static std::map<Key, std::shared_ptr<const LloydMaxSolution>> cache;
  const Key key{law, bits};
  {
    const std::lock_guard<std::mutex> lock(mutex);
    if (const auto it = cache.find(key); it != cache.end()) return it->second;
  }
  // Solve outside the lock so that different keys solve in parallel; should two threads race on one key,
  // the first insertion wins and both return it. The start is the cached (b-1)-bit solution.
  if (bits < 1 || bits > 16) solve_lloyd_max(law, bits);  // throws the error naming 'bits'
  const std::shared_ptr<const LloydMaxSolution> previous =
      bits > 1 ? lloyd_max_solution(law, bits - 1) : nullptr;
  auto solved =
      std::make_shared<const LloydMaxSolution>(detail::solve_lloyd_max_newton(law, bits, previous.get()));
  const std::lock_guard<std::mutex> lock(mutex);
  return cache.try_emplace(key, std::move(solved)).first->second;
}

Law LloydMaxSetting::law_for(std::size_t n) const {
  if (!d_from_data) return law;
  if (n < 2) {
    throw Error(spec +
                ": parameter 'd' = data takes the dimension from the block length, which must be >= 2 (a "
                "vector in R^d); this block has " +
                std::to_string(n) + " value" + (n == 1 ? "" : "s"));
  }
  return law.kind == Law::Kind::sphere ? Law::sphere(static_cast<double>(n)) : law;
}

double LloydMaxSetting::multiplier(const Law& l, std::size_t n, double rms) const {
  switch (sigma_from) {
    case Sigma::number:
      return scale * sigma / l.stddev();
    case Sigma::data:
      return scale * rms / l.stddev();
    case Sigma::natural:
      return scale;
    case Sigma::inverse_sqrt_n:
      return scale / std::sqrt(static_cast<double>(n)) / l.stddev();
  }
  return scale;
}

}  // namespace sqb
