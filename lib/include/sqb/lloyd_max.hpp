#pragma once
/// \file lloyd_max.hpp
/// Data-free minimum-MSE (Lloyd-Max) codebooks for continuous laws, the conditional expectations they are
/// built from, and the exact MSE of any codebook under a law.
///
/// A Lloyd-Max codebook of K = 2^b levels c_0 < ... < c_{K-1} with thresholds t_1 < ... < t_{K-1} satisfies
/// (Lloyd 1957/1982, Max 1960)
///
///     t_j = (c_{j-1} + c_j) / 2                 (nearest-level boundaries)
///     c_i = E[X | t_i < X < t_{i+1}]            (centroids; t_0, t_K = the ends of the support)
///
/// The laws, each in a standard form (the `lloyd_max` quantizer rescales it):
///  - gaussian: N(0, 1).
///  - sphere d: one coordinate of a uniformly random unit vector in R^d (TurboQuant, arXiv 2504.19874,
///    Lemma 1): density Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)) (1 - x^2)^((d-3)/2) on [-1, 1], i.e.
///    (1+x)/2 ~ Beta((d-1)/2, (d-1)/2); variance 1/d, kept in these natural units (not standardised).
///  - laplace: the Laplace law with unit variance (scale 1/sqrt(2)).
///  - student_t nu: Student's t with nu > 2 degrees of freedom scaled to unit variance (by sqrt((nu-2)/nu)).
///    nu <= 2 has no variance, so no minimum-MSE codebook exists (every codebook has infinite MSE).
/// All four are symmetric around 0, so every codebook here is exactly symmetric (c_i = -c_{K-1-i}).

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sqb {

/// A law in its standard form (see the file comment). A value type: compare and copy freely.
struct Law {
  enum class Kind { gaussian, sphere, laplace, student_t };
  Kind kind = Kind::gaussian;
  double d = 0;   ///< sphere: the dimension, an integer >= 2 (0 otherwise)
  double nu = 0;  ///< student_t: degrees of freedom > 2 (0 otherwise)

  static Law gaussian() { return {Kind::gaussian, 0, 0}; }
  static Law laplace() { return {Kind::laplace, 0, 0}; }
  /// Throws Error (naming 'd') unless d is an integer in [2, 1e9].
  static Law sphere(double d);
  /// Throws Error (naming 'nu') unless 2 < nu <= 1e6.
  static Law student_t(double nu);

  /// "gaussian", "sphere d=128", "laplace", "student_t nu=3".
  std::string to_string() const;
  /// Standard deviation in the standard form: 1, or 1/sqrt(d) for the sphere law.
  double stddev() const;
  /// Ends of the support: -inf/+inf, or -1/+1 for the sphere law.
  double lower() const;
  double upper() const;

  double pdf(double x) const;
  double cdf(double x) const;
  /// P(X > x), computed directly (no 1 - cdf cancellation in the upper tail).
  double sf(double x) const;
  /// The p-quantile, 0 <= p <= 1.
  double quantile(double p) const;

  friend auto operator<=>(const Law&, const Law&) = default;
};

/// E[X | a < X < b] for X ~ N(0, sigma^2) = sigma (phi(a/sigma) - phi(b/sigma)) / (Phi(b/sigma) -
/// Phi(a/sigma)). a = -inf and b = +inf are allowed. Stable everywhere: in the far tails (a = 40 sigma, b =
/// inf, where phi and 1 - Phi underflow) it uses the Mills ratio (continued fraction), so the result stays
/// finite and inside (a, a + sigma^2/a]; for narrow cells it integrates the density relative to its value at
/// an end (Gauss-Legendre), so the position of the mean inside [a, b] is accurate to ~1e-15 of b - a (or to
/// the resolution of doubles near a, if that is coarser).
/// Throws Error if sigma is not finite and > 0, if a or b is NaN, or unless a < b.
double gaussian_conditional_expectation(double sigma, double a, double b);

/// E[X | a < X < b] under `law` (standard form), with the same care in the tails and for narrow cells.
/// a and b are clamped to the support; throws Error unless a < b after clamping (or on NaN).
double conditional_expectation(const Law& law, double a, double b);

/// Exact MSE of a codebook under `law`: the integral of (x - level(x))^2 f(x) over the support, where
/// level(x) = levels[i] on the cell (boundaries[i-1], boundaries[i]). levels: K >= 1 values; boundaries:
/// K-1 ascending values (any codebook, not only Lloyd-Max). Integrated cell by cell: Gauss-Legendre on
/// narrow cells, Boost.Math tanh-sinh / exp-sinh quadrature on wide and infinite ones (relative accuracy
/// ~1e-14). Throws Error on a size mismatch or unsorted boundaries.
double law_mse(const Law& law, std::span<const double> levels, std::span<const double> boundaries);

/// A codebook shape multiplied by its best scale for a law.
struct ScaledFit {
  double scale = 0;  ///< s > 0 minimising law_mse(law, s * levels, s * boundaries)
  double mse = 0;    ///< that minimum
};

/// How well a codebook *shape* that a per-block scale multiplies (nf4, fp4, an int grid, a phi ladder) can
/// fit a law: the scale minimising its exact MSE (e.g. NF4 on N(0,1): MSE 0.0098993). MSE(s) is smooth but
/// can have several local minima: a grid of 16 scales per octave over [2^-12, 2^8] / max|level|, then Brent's
/// method (Boost.Math, 2^-40 relative) around the three lowest grid points. Throws Error for an all-zero
/// shape or a size mismatch.
ScaledFit best_scale_fit(const Law& law, std::span<const double> levels, std::span<const double> boundaries);

/// A solved Lloyd-Max codebook.
struct LloydMaxSolution {
  Law law;
  unsigned bits = 0;
  std::vector<double> levels;         ///< K = 2^bits, ascending, exactly symmetric
  std::vector<double> thresholds;     ///< K-1, ascending; the middle one is exactly 0
  std::vector<double> probabilities;  ///< P(X in cell i), K values summing to 1
  double mse = 0;                     ///< the law's exact MSE of this codebook (law_mse)
  double entropy_bits = 0;            ///< entropy of the index under the law: -sum p_i log2 p_i
  int lloyd_iterations = 0;           ///< plain Lloyd steps (fallback) for this b, from the (b-1) split
  int newton_iterations = 0;          ///< Newton steps on the threshold conditions for this b
  /// max_j |t_j - (c_{j-1} + c_j)/2| / max(|t_j|, c_j - c_{j-1}): how far the threshold conditions are from
  /// holding, relative to the threshold (or to the level spacing near 0, where that is larger). The centroid
  /// conditions hold by construction. A double resolves t_j only to ~1e-16 |t_j|, so this is the finest
  /// meaningful measure.
  double residual = 0;
  bool converged = false;  ///< residual <= 1e-12

  int iterations_total() const { return lloyd_iterations + newton_iterations; }
};

/// Solves the Lloyd-Max codebook of 2^bits levels for `law` (not cached). b = 1 is exact (t = 0; for N(0,1)
/// levels +-sqrt(2/pi)); each b >= 2 starts from the split of the (b-1)-bit codebook (its thresholds and
/// levels become the thresholds) and finishes with damped Newton steps on the threshold conditions
/// (tridiagonal Jacobian, Thomas algorithm) down to the floating-point noise floor, with plain Lloyd steps as
/// the fallback when a Newton step does not lower the residual. This call solves the whole chain 1..bits; see
/// lloyd_max_solver.cpp for why not from the law's quantiles. Throws Error (naming 'bits') unless
/// 1 <= bits <= 16.
LloydMaxSolution solve_lloyd_max(const Law& law, unsigned bits);

/// The same, cached per (law, bits) for the life of the process: every call after the first returns the
/// same solution without solving, and a new b starts from the cached b-1 (so a sweep over b = 1..16 solves
/// each level once). Thread-safe: the lock is not held while solving; should two threads race on one key,
/// both solve, the first insertion is kept and both get it.
std::shared_ptr<const LloydMaxSolution> lloyd_max_solution(const Law& law, unsigned bits);

/// What a `lloyd_max` quantizer spec resolves to (see `sqbench list`). Per block of n values the levels are
///     centre + multiplier * solution(law_for(n), bits).levels,   multiplier = scale * sigma / law.stddev()
/// where the centre and sigma may come from the block.
struct LloydMaxSetting {
  enum class Sigma {
    number,          ///< sigma = `sigma` (given, or 1/sqrt(d) for d=<int> with a unit-variance law)
    data,            ///< sigma = the block's root-mean-square deviation about the centre
    natural,         ///< sphere law, no sigma given: its own 1/sqrt(d), so multiplier = scale
    inverse_sqrt_n,  ///< d=data with a unit-variance law: sigma = 1/sqrt(n)
  };
  Law law;  ///< for d=data a placeholder (the law at d = 2); law_for(n) resolves it
  bool d_from_data =
      false;  ///< d = the block's length n (sphere: the law's d; other laws: sigma = 1/sqrt(n))
  Sigma sigma_from = Sigma::data;
  double sigma = 1;
  bool mean_from_data = false;  ///< centre = the block's mean; otherwise `mean`
  double mean = 0;
  double scale = 1;
  std::string spec;  ///< how messages name the spec: quantizer "<canonical spec text>"

  /// The law for a block of n values. Throws Error for d=data when n < 2.
  Law law_for(std::size_t n) const;
  /// The level multiplier for a block of n values whose root-mean-square deviation about the centre is rms.
  double multiplier(const Law& law, std::size_t n, double rms) const;
  /// float32 values stored per block: 1 for sigma from data, 1 for the mean from data.
  std::size_t side_floats() const { return (sigma_from == Sigma::data ? 1 : 0) + (mean_from_data ? 1 : 0); }
};

/// Whether a quantizer spec names the Lloyd-Max entry of the registry (the spec's parameters are not
/// checked).
bool names_lloyd_max(std::string_view spec);

/// Parses a quantizer spec that names the Lloyd-Max entry of the registry (its parameters validated as the
/// registry declares them). Throws Error naming the bad parameter, or when the spec names another quantizer.
LloydMaxSetting parse_lloyd_max_spec(const std::string& spec);

}  // namespace sqb
