#pragma once
// The Lloyd-Max solver (Lloyd steps, then Newton on the threshold conditions) and its slow reference.
// Private to the library; sqb::solve_lloyd_max is the public entry.

#include <vector>

#include "sqb/lloyd_max.hpp"

namespace sqb::detail {

/// The fast solver behind sqb::solve_lloyd_max (bits already validated, 1..16). `previous` is the solution
/// for bits - 1 of the same law (its split is the start), required for bits >= 2, ignored for bits = 1.
LloydMaxSolution solve_lloyd_max_newton(const Law& law, unsigned bits, const LloydMaxSolution* previous);

/// Result of the slow reference.
struct ReferenceLloyd {
  std::vector<double> levels, thresholds;
  double mse = 0;
  int iterations = 0;
  bool converged = false;  ///< the last step moved every level by less than step_tol * law.stddev()
};

/// Plain Lloyd iteration on the whole line (no symmetry used) from the uniform quantiles, with every cell's
/// probability and mean from reference_cell (Boost adaptive quadrature of Boost's pdf) and the MSE by the
/// same quadrature: slow and independent of the fast path, for tests. Stops when the largest level step is
/// below step_tol * law.stddev() or after max_iter steps.
ReferenceLloyd plain_lloyd_reference(const Law& law, unsigned bits, double step_tol, int max_iter);

}  // namespace sqb::detail
