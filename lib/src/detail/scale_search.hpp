#pragma once
// Scale of a fixed codebook shape: the block-wise MSE-optimal scale (scale=mse) and the Gaussian-optimal one
// (which scale=std multiplies by the block's spread). Private to the library.
//
// A "table" is a codebook shape T: K >= 1 values sorted ascending. Scaled by s > 0 it is the codebook s*T,
// applied with the shared nearest-level rule (a value on a midpoint goes to the lower level).

#include <cstddef>
#include <span>

namespace sqb::detail {

/// Sum over the block of (x - nearest level of s*T)^2, accumulated in double. `sorted` is the block sorted
/// ascending (any length >= 0), `table` sorted ascending (K >= 1), s >= 0 finite. O(min(K log n, n log K) +
/// n).
double scaled_table_sse(std::span<const float> sorted, std::span<const double> table, double s);

struct ScaleFit {
  double scale = 0;     ///< the scale found (>= 0)
  double value = 0;     ///< the objective there (SSE for a block, MSE for the Gaussian)
  int evaluations = 0;  ///< objective evaluations spent
};

/// Above this many breakpoints (n * (K-1)) best_block_scale first sweeps binned values (see below).
inline constexpr std::size_t kMaxSweepEvents = std::size_t{1} << 22;

/// The scale s >= 0 minimising scaled_table_sse(sorted, table, s): the scale=mse search.
///
/// SSE(s) is continuous and piecewise quadratic: on each piece the assignment is fixed and
/// SSE = sum x^2 - 2 s sum(x T_a) + s^2 sum(T_a^2). The assignment changes where a value x crosses a
/// midpoint, at s = x / m_i (m_i = (T_i + T_{i+1}) / 2 of the same sign as x), and in general there are many
/// local minima (their values can differ by 8% on a block of 1000 values). SSE is a minimum of quadratics, so
/// its kinks are concave and every local minimum is the vertex sum(x T_a) / sum(T_a^2) of a piece that lies
/// inside that piece.
///
/// Exact global search when n * (K-1) <= max_events: sweep the breakpoints in increasing s (a merge of the
/// K-1 event lists, one per midpoint, each sorted because the block is), updating sum(x T_a) and sum(T_a^2)
/// in O(1) per event and keeping the vertices that lie inside their pieces; O(n K log K) at most. Only the
/// window of scales that could beat the absmax scale is swept: below it the clipping cost alone, above it
/// the cost of the gap around zero alone exceeds the absmax SSE (both bounds are monotone in s, found by
/// bisection). The few best vertices are re-evaluated directly with scaled_table_sse (the running sums lose
/// digits to cancellation when the SSE is tiny next to sum x^2), and the best is returned.
///
/// Larger blocks: the same sweep over geometric bins of relative width eps >= 2^-10 (every value keeps its
/// position within eps, so heavy tails stay resolved), then the exact sweep of the whole block restricted to
/// the window (1.02 + 16 eps)^+-1 around that optimum. Not a proof of global optimality, but it matched the
/// unrestricted exact sweep on every test block (Gaussian, Laplace, Student t, uniform; K = 16, 64, 256).
///
/// A table with one level gets its least-squares scale (clamped at 0); an all-zero table or block gets 0.
/// Tested against a brute-force fine grid (tests/test_practitioner_codebooks.cpp).
ScaleFit best_block_scale(std::span<const float> sorted, std::span<const double> table,
                          std::size_t max_events = kMaxSweepEvents);

/// E[(Z - Q(Z))^2] for Z ~ N(0, 1) and Q the nearest level of s*T (T sorted ascending, K >= 1, s > 0):
/// the bounded cells are integrated by 10-point Gauss-Legendre on pieces at most 0.5 wide (the integrand is
/// smooth, so this is accurate to rounding), the two unbounded end cells in closed form,
/// int_a^inf (z - m)^2 phi(z) dz = (1 + m^2) Q(a) + (a - 2m) phi(a) with Q(a) = erfc(a / sqrt 2) / 2.
double gaussian_table_mse(std::span<const double> table, double s);

/// The scale minimising gaussian_table_mse(table, s), a smooth function of s: a grid of 8 scales per octave
/// over [2^-10, 2^6] / max|T|, then Brent's method (boost::math::tools::brent_find_minima, 2^-26 relative)
/// in the brackets of the three lowest local minima of the grid. Throws std::invalid_argument when max|T| is
/// 0.
ScaleFit best_gaussian_scale(std::span<const double> table);

}  // namespace sqb::detail
