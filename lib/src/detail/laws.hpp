#pragma once
// Cell moments of the Lloyd-Max laws (sqb::Law): probability, conditional mean and the density at the ends
// relative to the probability, computed stably for cells of any width and anywhere in the tails. Private to
// the library; the tests reach it for the slow references.

#include "sqb/lloyd_max.hpp"

namespace sqb::detail {

/// What the Lloyd-Max solver needs from one cell (a, b) of a law.
struct CellMoments {
  double p = 0;     ///< P(a < X < b); may underflow to 0 far in a tail (the other fields stay exact)
  double mean = 0;  ///< E[X | a < X < b], strictly inside (a, b)
  double fa_p = 0;  ///< f(a) / p (0 when a is an end of the support): d mean / d a = fa_p (mean - a)
  double fb_p = 0;  ///< f(b) / p (0 when b is an end of the support): d mean / d b = fb_p (b - mean)
};

enum class CellMethod {
  automatic,    ///< Gauss-Legendre on cells at most 2 local scales wide, closed forms otherwise
  quadrature,   ///< always Gauss-Legendre (20 nodes when wider than the automatic choice allows)
  closed_form,  ///< always the closed forms (with their underflow fallback)
};

/// Moments of the cell (a, b), a < b inside the support (ends may be +-inf or the sphere's +-1). Exactly
/// antisymmetric: cell_moments(-b, -a) has mean -mean and swapped fa_p/fb_p.
CellMoments cell_moments(const Law& law, double a, double b, CellMethod method = CellMethod::automatic);

/// (b - a) / (the law's local smoothness length on [a, b]): the width in units over which log f changes
/// by O(1) or a singularity of f (the sphere's +-1, Student t's complex poles) is near. Gauss-Legendre with
/// 20 nodes is accurate to ~1e-16 up to 2. +inf for infinite cells.
double cell_width_in_local_scales(const Law& law, double a, double b);

/// Integral over (a, b) of (x - c)^2 f(x): Gauss-Legendre on narrow cells, Boost tanh-sinh (finite) or
/// exp-sinh (infinite) quadrature on the others.
double cell_squared_deviation(const Law& law, double a, double b, double c);

/// Slow reference for tests: probability and mean of (a, b) by Boost's adaptive tanh-sinh / exp-sinh
/// quadrature of Boost.Math's own pdf of the law (normal, laplace, students_t, beta distributions) —
/// independent of the code above. fa_p/fb_p are left 0.
CellMoments reference_cell(const Law& law, double a, double b);
/// Slow reference: integral over (a, b) of (x - c)^2 f(x), the same way.
double reference_squared_deviation(const Law& law, double a, double b, double c);

}  // namespace sqb::detail
