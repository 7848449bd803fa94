// Lloyd-Max by a Newton finish on the threshold conditions, started from the (b-1)-bit codebook.
//
// Plain Lloyd (thresholds = midpoints, levels = conditional means) is a fixed-point iteration whose
// contraction factor tends to 1 as K grows: tests/data/REFERENCE.md records 93,338 steps at b = 8 and was
// still 6.6e-9 off. Its slow mode is the smooth "stretch" of the whole codebook. Newton on
//     R_j(t) = t_j - (c_{j-1}(t_{j-1}, t_j) + c_j(t_j, t_{j+1})) / 2 = 0
// converges quadratically once it is close. Each R_j depends on three thresholds, so the Jacobian is
// tridiagonal (Thomas algorithm, O(K)); its entries come from d mean/d a = f(a)/P (mean - a) and
// d mean/d b = f(b)/P (b - mean).
//
// The start. The law's uniform quantiles t_j = F^-1(j/K) are a poor start in the tails: the optimal cells
// are wider there (point density ~ f^(1/3)). For N(0,1) that costs a few Lloyd steps, but for heavy tails
// it is hopeless: for Student t with nu = 3 at b = 6 the quantile start puts the outer threshold at 2.2
// where the optimum has 956, and Lloyd stretches it by ~0.5 per step (410 steps before Newton's basin; b = 12
// did not finish in minutes). Splitting the (b-1)-bit codebook instead — its thresholds and its levels become
// the new thresholds (LBG-style) — starts within Newton's basin for the light-tailed laws (no Lloyd step,
// 3-8 Newton steps at every b, mostly 4). b = 1 is exact by symmetry (t = 0).
//
// Globalisation: a Newton step is taken when it lowers the (max) residual, with step halving; otherwise ten
// Lloyd steps (which never increase the MSE) and Newton again.
//
// All four laws are symmetric, so only the positive half is solved: t_0 = 0 is fixed (it is exact by
// symmetry), the unknowns are t_1..t_{m-1} with m = K/2, and the negative half is the mirror image, which
// makes every codebook exactly symmetric.

#include "detail/lloyd_max_solver.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "detail/laws.hpp"

namespace sqb::detail {

namespace {

// The positive half of a codebook: thresholds t_0 = 0 < t_1 < ... < t_{m-1} < t_m = upper and the cells
// between them.
struct Half {
  std::vector<double> t;
  std::vector<CellMoments> cells;
  std::vector<double> r;  // r[j] = R_j for j = 1..m-1 (r[0] unused)
  double residual = 0;    // max_j |R_j| / max(|t_j|, c_j - c_{j-1})
};

// The scale a threshold's error is measured against: its own size, or the level spacing around it when that
// is larger (near 0). A double cannot resolve t_j better than eps |t_j|, so this is the finest meaningful
// measure; relative to the spacing alone the floor would be eps |t_j| / spacing (1e-11 at b = 12 for the
// arcsine law, d = 2).
double threshold_scale(const Half& h, std::size_t j) {
  return std::max(std::abs(h.t[j]), h.cells[j].mean - h.cells[j - 1].mean);
}

void evaluate(const Law& law, Half& h) {
  const std::size_t m = h.t.size() - 1;
  h.cells.resize(m);
  h.r.assign(m, 0.0);
  for (std::size_t i = 0; i < m; ++i)
    h.cells[i] = cell_moments(law, h.t[i], h.t[i + 1]);
  h.residual = 0;
  for (std::size_t j = 1; j < m; ++j) {
    const double lo = h.cells[j - 1].mean, hi = h.cells[j].mean;
    h.r[j] = h.t[j] - (lo + hi) / 2;
    h.residual = std::max(h.residual, std::abs(h.r[j]) / threshold_scale(h, j));
  }
}

void lloyd_step(const Law& law, Half& h) {
  for (std::size_t j = 1; j + 1 < h.t.size(); ++j)
    h.t[j] = (h.cells[j - 1].mean + h.cells[j].mean) / 2;
  evaluate(law, h);
}

// One damped Newton step, accepted when it lowers the max residual (halving the step up to 12 times).
// Returns false otherwise: at the noise floor, or far from the solution where the linear model misleads
// (the Newton direction descends on |R|_2, but that can lead to a spurious minimum where J is singular; the
// max residual together with the Lloyd fallback cannot).
bool newton_step(const Law& law, Half& h, Half& trial) {
  const std::size_t m = h.t.size() - 1;
  if (m < 2) return false;
  const std::size_t n = m - 1;  // unknowns t_1..t_{m-1} at index j - 1
  std::vector<double> lower(n), diag(n), upper(n), rhs(n);
  for (std::size_t j = 1; j < m; ++j) {
    const CellMoments& l = h.cells[j - 1];
    const CellMoments& u = h.cells[j];
    diag[j - 1] = 1 - 0.5 * (l.fb_p * (h.t[j] - l.mean) + u.fa_p * (u.mean - h.t[j]));
    lower[j - 1] = j >= 2 ? -0.5 * l.fa_p * (l.mean - h.t[j - 1]) : 0.0;
    upper[j - 1] = j + 1 < m ? -0.5 * u.fb_p * (h.t[j + 1] - u.mean) : 0.0;
    rhs[j - 1] = -h.r[j];
  }
  // Thomas algorithm. The matrix is diagonally dominant near the solution for the log-concave laws; a
  // vanishing pivot makes the step non-finite, which the line search rejects.
  for (std::size_t i = 1; i < n; ++i) {
    const double w = lower[i] / diag[i - 1];
    diag[i] -= w * upper[i - 1];
    rhs[i] -= w * rhs[i - 1];
  }
  std::vector<double> step(n);
  step[n - 1] = rhs[n - 1] / diag[n - 1];
  for (std::size_t i = n - 1; i-- > 0;)
    step[i] = (rhs[i] - upper[i] * step[i + 1]) / diag[i];
  for (const double s : step) {
    if (!std::isfinite(s)) return false;
  }

  const double top = law.upper();
  double lambda = 1;
  for (int tries = 0; tries < 13; ++tries, lambda /= 2) {
    trial.t = h.t;
    bool ordered = true;
    for (std::size_t j = 1; j < m; ++j) {
      trial.t[j] = h.t[j] + lambda * step[j - 1];
      ordered = ordered && trial.t[j] > trial.t[j - 1];
    }
    if (!ordered || !(trial.t[m - 1] < top)) continue;
    evaluate(law, trial);
    if (trial.residual < h.residual) {
      std::swap(h, trial);
      return true;
    }
  }
  return false;
}

// Residual below which another Newton step cannot help (rounding in the cell moments is ~1e-16 of the
// threshold; the 1e-12 target leaves a wide margin).
constexpr double kStop = 1e-14;
constexpr double kConverged = 1e-12;
constexpr int kLloydFallback = 10;
constexpr int kMaxNewton = 200;
constexpr int kMaxLloyd = 100000;

}  // namespace

LloydMaxSolution solve_lloyd_max_newton(const Law& law, unsigned bits, const LloydMaxSolution* previous) {
  const std::size_t k = std::size_t{1} << bits;
  const std::size_t m = k / 2;
  LloydMaxSolution sol;
  sol.law = law;
  sol.bits = bits;

  Half h, trial;
  h.t.resize(m + 1);
  h.t[0] = 0;
  h.t[m] = law.upper();
  if (bits >= 2) {
    // Split the (b-1)-bit codebook: its positive thresholds T_i and levels C_i interleave.
    if (previous == nullptr || previous->bits + 1 != bits || !(previous->law == law)) {
      throw std::logic_error("solve_lloyd_max_newton: needs the (b-1)-bit solution of the same law");
    }
    const std::size_t pm = m / 2;
    for (std::size_t i = 0; i < pm; ++i) {
      if (i > 0) h.t[2 * i] = previous->thresholds[pm - 1 + i];
      h.t[2 * i + 1] = previous->levels[pm + i];
    }
  }
  evaluate(law, h);
  while (h.residual > kStop && sol.newton_iterations < kMaxNewton && sol.lloyd_iterations < kMaxLloyd) {
    if (newton_step(law, h, trial)) {
      ++sol.newton_iterations;
      continue;
    }
    if (h.residual <= kConverged) break;  // the floating-point noise floor
    for (int i = 0; i < kLloydFallback; ++i)
      lloyd_step(law, h);
    sol.lloyd_iterations += kLloydFallback;
  }

  sol.levels.resize(k);
  sol.thresholds.resize(k - 1);
  sol.probabilities.resize(k);
  for (std::size_t i = 0; i < m; ++i) {
    sol.levels[m + i] = h.cells[i].mean;
    sol.levels[m - 1 - i] = -h.cells[i].mean;
    sol.probabilities[m + i] = sol.probabilities[m - 1 - i] = h.cells[i].p;
  }
  sol.thresholds[m - 1] = 0;
  for (std::size_t j = 1; j < m; ++j) {
    sol.thresholds[m - 1 + j] = h.t[j];
    sol.thresholds[m - 1 - j] = -h.t[j];
  }
  double mse = 0, entropy = 0;
  for (std::size_t i = 0; i < m; ++i) {
    mse += cell_squared_deviation(law, h.t[i], h.t[i + 1], h.cells[i].mean);
    const double p = h.cells[i].p;
    if (p > 0) entropy -= p * std::log2(p);
  }
  sol.mse = 2 * mse;
  sol.entropy_bits = 2 * entropy;
  sol.residual = h.residual;
  sol.converged = h.residual <= kConverged;
  return sol;
}

ReferenceLloyd plain_lloyd_reference(const Law& law, unsigned bits, double step_tol, int max_iter) {
  const std::size_t k = std::size_t{1} << bits;
  std::vector<double> t(k + 1);
  t[0] = law.lower();
  t[k] = law.upper();
  for (std::size_t j = 1; j < k; ++j)
    t[j] = law.quantile(static_cast<double>(j) / static_cast<double>(k));
  ReferenceLloyd r;
  r.levels.assign(k, 0.0);
  for (r.iterations = 0; r.iterations < max_iter; ++r.iterations) {
    double step = 0;
    for (std::size_t i = 0; i < k; ++i) {
      const double c = reference_cell(law, t[i], t[i + 1]).mean;
      step = std::max(step, std::abs(c - r.levels[i]));
      r.levels[i] = c;
    }
    for (std::size_t j = 1; j < k; ++j)
      t[j] = (r.levels[j - 1] + r.levels[j]) / 2;
    if (r.iterations > 0 && step < step_tol * law.stddev()) {
      r.converged = true;
      break;
    }
  }
  r.thresholds.assign(t.begin() + 1, t.end() - 1);
  for (std::size_t i = 0; i < k; ++i)
    r.mse += reference_squared_deviation(law, t[i], t[i + 1], r.levels[i]);
  return r;
}

}  // namespace sqb::detail
