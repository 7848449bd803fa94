// The Lloyd-Max laws: density, distribution function, quantile and cell moments.
//
// Two ways to get a cell's probability and conditional mean:
//  - Narrow cells (at most 2 local smoothness lengths wide): Gauss-Legendre on the density *relative to its
//    value at the cell's highest point s*, g(x) = f(x)/f(s) <= 1. The mean comes out as the midpoint plus a
//    weighted offset, so its position inside the cell is accurate to ~eps of the width, and nothing
//    underflows however far out the cell is. The closed forms would subtract two nearly equal CDF values
//    (for K = 4096 cells near x = 1, F(b) - F(a) ~ 3e-4 from values ~0.8) and lose 3-4 digits.
//  - Wide and infinite cells: closed forms (Mills ratio for the Gaussian; incomplete beta for the sphere;
//    Boost's Student t CDF; exponentials for Laplace), arranged so that upper tails use complements.
// Every cell is first oriented so that it lies mostly on the positive side (the laws are symmetric), which
// makes the results exactly antisymmetric.

#include "detail/laws.hpp"

#include <algorithm>
#include <boost/math/constants/constants.hpp>
#include <boost/math/distributions/beta.hpp>
#include <boost/math/distributions/laplace.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <boost/math/quadrature/exp_sinh.hpp>
#include <boost/math/quadrature/gauss.hpp>
#include <boost/math/quadrature/tanh_sinh.hpp>
#include <boost/math/special_functions/beta.hpp>
#include <boost/math/special_functions/erf.hpp>
#include <boost/math/special_functions/gamma.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>

#include "sqb/error.hpp"

namespace sqb {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kPi = boost::math::constants::pi<double>();
constexpr double kSqrt2 = boost::math::constants::root_two<double>();
constexpr double kLaplaceRate = kSqrt2;  // unit variance: scale 1/sqrt(2)

double student_scale(double nu) {
  return std::sqrt((nu - 2) / nu);
}
double sphere_alpha(double d) {
  return (d - 1) / 2;  // (1+x)/2 ~ Beta(alpha, alpha)
}
double sphere_k(double d) {
  return (d - 3) / 2;  // f ∝ (1 - x^2)^k
}

// Normalising constants (the density is norm * exp(shape(x))). Ratios of gamma functions through
// tgamma_delta_ratio: lgamma differences would lose ~log10(d) digits at large d.
double compute_log_norm(const Law& law) {
  switch (law.kind) {
    case Law::Kind::gaussian:
      return -0.5 * std::log(2 * kPi);
    case Law::Kind::laplace:
      return std::log(kLaplaceRate / 2);
    case Law::Kind::student_t:
      // f_X(x) = f_t(x/s)/s; Gamma((nu+1)/2)/Gamma(nu/2) / sqrt(nu pi) / s = ... / sqrt((nu-2) pi)
      return -std::log(boost::math::tgamma_delta_ratio(law.nu / 2, 0.5)) - 0.5 * std::log((law.nu - 2) * kPi);
    case Law::Kind::sphere:
      return -std::log(boost::math::tgamma_delta_ratio(sphere_alpha(law.d), 0.5)) - 0.5 * std::log(kPi);
  }
  return 0;
}

// The gamma-function ratio costs about as much as a whole Gauss-Legendre cell, and a solve asks for the same
// law's constant thousands of times: remember the last one per thread.
double log_norm(const Law& law) {
  thread_local Law last{Law::Kind::gaussian, -1, -1};
  thread_local double value = 0;
  if (!(law == last)) {
    value = compute_log_norm(law);
    last = law;
  }
  return value;
}

// log f(x) up to the normalising constant. |x| < 1 for the sphere.
double shape(const Law& law, double x) {
  switch (law.kind) {
    case Law::Kind::gaussian:
      return -x * x / 2;
    case Law::Kind::laplace:
      return -kLaplaceRate * std::abs(x);
    case Law::Kind::student_t:
      return -(law.nu + 1) / 2 * std::log1p(x * x / (law.nu - 2));
    case Law::Kind::sphere: {
      const double k = sphere_k(law.d);
      return k == 0 ? 0.0 : k * std::log1p(-x * x);
    }
  }
  return 0;
}

// shape(x) - shape(s), written so that x close to s does not cancel (x^2 - s^2 = (x - s)(x + s)).
double shape_diff(const Law& law, double x, double s) {
  const double d2 = (x - s) * (x + s);
  switch (law.kind) {
    case Law::Kind::gaussian:
      return -d2 / 2;
    case Law::Kind::laplace:
      return -kLaplaceRate * (std::abs(x) - std::abs(s));
    case Law::Kind::student_t:
      return -(law.nu + 1) / 2 * std::log1p(d2 / (law.nu - 2 + s * s));
    case Law::Kind::sphere: {
      const double k = sphere_k(law.d);
      return k == 0 ? 0.0 : k * std::log1p(-d2 / ((1 - s) * (1 + s)));
    }
  }
  return 0;
}

double density(const Law& law, double x) {
  if (x <= law.lower() || x >= law.upper()) {
    if (law.kind == Law::Kind::sphere && std::abs(x) == 1) {
      const double k = sphere_k(law.d);
      return k < 0 ? kInf : (k == 0 ? std::exp(log_norm(law)) : 0.0);
    }
    return 0;
  }
  return std::exp(log_norm(law) + shape(law, x));
}

// Mills ratio R(x) = Q(x) / phi(x) for x >= 0 (Q = 1 - Phi). Below 8 from erfc (exp(x^2/2) costs at most
// 32 ulp there); above, the continued fraction R = 1/(x+ 1/(x+ 2/(x+ 3/(x+ ...)))), which never
// underflows (phi(40) = 1e-348 is not a double) and converges in a few dozen terms for x >= 8.
double mills_ratio(double x) {
  if (x < 8) return boost::math::erfc(x / kSqrt2) * std::sqrt(kPi / 2) * std::exp(x * x / 2);
  // Modified Lentz for b0 + a1/(b1 + a2/(b2 + ...)), b_n = x, a_n = n.
  const double tiny = 1e-300;
  double f = x, c = x, dd = 0;
  for (int n = 1; n < 2000; ++n) {
    dd = x + n * dd;
    if (dd == 0) dd = tiny;
    c = x + n / c;
    if (c == 0) c = tiny;
    dd = 1 / dd;
    const double delta = c * dd;
    f *= delta;
    if (std::abs(delta - 1) < 1e-16) break;
  }
  return 1 / f;
}

}  // namespace

// ------------------------------------------------------------------------------------------------------
// Law

Law Law::sphere(double d) {
  if (!(d >= 2 && d <= 1e9 && std::floor(d) == d)) {
    std::ostringstream m;
    m << "parameter 'd' must be an integer in [2, 1e9] (the dimension of the unit vectors), got " << d;
    throw Error(m.str());
  }
  return {Kind::sphere, d, 0};
}

Law Law::student_t(double nu) {
  if (!(nu > 2 && nu <= 1e6)) {
    std::ostringstream m;
    m << "parameter 'nu' must be in (2, 1e6]: the minimum-MSE codebook needs a finite variance, which "
         "Student's t "
         "has only for nu > 2; got "
      << nu;
    throw Error(m.str());
  }
  return {Kind::student_t, 0, nu};
}

std::string Law::to_string() const {
  std::ostringstream s;
  switch (kind) {
    case Kind::gaussian:
      return "gaussian";
    case Kind::laplace:
      return "laplace";
    case Kind::student_t:
      s << "student_t nu=" << nu;
      return s.str();
    case Kind::sphere:
      s << "sphere d=" << static_cast<long long>(d);
      return s.str();
  }
  return "?";
}

double Law::stddev() const {
  return kind == Kind::sphere ? 1 / std::sqrt(d) : 1.0;
}
double Law::lower() const {
  return kind == Kind::sphere ? -1.0 : -kInf;
}
double Law::upper() const {
  return kind == Kind::sphere ? 1.0 : kInf;
}

double Law::pdf(double x) const {
  return density(*this, x);
}

double Law::sf(double x) const {
  if (std::isnan(x)) throw Error("Law::sf: x is NaN");
  if (x <= lower()) return 1;
  if (x >= upper()) return 0;
  switch (kind) {
    case Kind::gaussian:
      return boost::math::erfc(x / kSqrt2) / 2;
    case Kind::laplace:
      return x >= 0 ? std::exp(-kLaplaceRate * x) / 2 : 1 - std::exp(kLaplaceRate * x) / 2;
    case Kind::student_t:
      return boost::math::cdf(
          boost::math::complement(boost::math::students_t_distribution<double>(nu), x / student_scale(nu)));
    case Kind::sphere: {
      const double a = sphere_alpha(d);
      return boost::math::ibeta(a, a, (1 - x) / 2);
    }
  }
  return 0;
}

double Law::cdf(double x) const {
  return sf(-x);  // symmetric laws
}

double Law::quantile(double p) const {
  if (!(p >= 0 && p <= 1)) throw Error("Law::quantile: p must be in [0, 1]");
  if (p == 0) return lower();
  if (p == 1) return upper();
  if (p > 0.5) return -quantile(1 - p);  // the lower tail has the accurate small p
  switch (kind) {
    case Kind::gaussian:
      return boost::math::quantile(boost::math::normal_distribution<double>(), p);
    case Kind::laplace:
      return std::log(2 * p) / kLaplaceRate;
    case Kind::student_t:
      return student_scale(nu) * boost::math::quantile(boost::math::students_t_distribution<double>(nu), p);
    case Kind::sphere: {
      const double a = sphere_alpha(d);
      return 2 * boost::math::ibeta_inv(a, a, p) - 1;
    }
  }
  return 0;
}

namespace detail {

namespace {

// Boost's double-exponential integrators build their node tables in the constructor (about a millisecond);
// one of each is shared. Concurrent integrate() calls are safe: the object only forwards to its shared
// implementation, whose lazy table refinements Boost guards with a mutex and an atomic counter (Boost 1.74
// merely forgot the const on the (f, a, b) overload).
boost::math::quadrature::tanh_sinh<double>& tanh_sinh() {
  static boost::math::quadrature::tanh_sinh<double> q;
  return q;
}
boost::math::quadrature::exp_sinh<double>& exp_sinh() {
  static boost::math::quadrature::exp_sinh<double> q;
  return q;
}

// Gauss-Legendre on (a, b) with N nodes (Boost's tabulated ones): calls f(x, x - mid, weight * half-width).
template <unsigned N, class F>
void gauss_legendre(double a, double b, F&& f) {
  using G = boost::math::quadrature::gauss<double, N>;
  const auto& x = G::abscissa();
  const auto& w = G::weights();
  const double mid = (a + b) / 2, half = (b - a) / 2;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (x[i] == 0) {
      f(mid, 0.0, w[i] * half);
    } else {
      const double off = half * x[i];
      f(mid + off, off, w[i] * half);
      f(mid - off, -off, w[i] * half);
    }
  }
}

template <class F>
void gauss_legendre_adaptive(double tau, double a, double b, F&& f) {
  if (tau <= 0.25) {
    gauss_legendre<7>(a, b, f);
  } else if (tau <= 0.7) {
    gauss_legendre<10>(a, b, f);
  } else {
    gauss_legendre<20>(a, b, f);
  }
}

// The point of [a, b] where the density is highest (all laws are unimodal at 0).
double anchor(double a, double b) {
  return std::clamp(0.0, a, b);
}

bool is_end(const Law& law, double x) {
  return x <= law.lower() || x >= law.upper();
}

// Relative density at an end of the cell, for fa_p/fb_p (0 at the ends of the support).
double end_ratio(const Law& law, double x, double s) {
  return is_end(law, x) ? 0.0 : std::exp(shape_diff(law, x, s));
}

// Gauss-Legendre cell (a, b finite, inside the support). Laplace cells across the kink at 0 are split.
CellMoments quadrature_cell(const Law& law, double a, double b, double tau) {
  if (law.kind == Law::Kind::laplace && a < 0 && b > 0) {
    const double ta = cell_width_in_local_scales(law, a, 0), tb = cell_width_in_local_scales(law, 0, b);
    const CellMoments l = quadrature_cell(law, a, 0, ta), r = quadrature_cell(law, 0, b, tb);
    CellMoments c;
    c.p = l.p + r.p;
    const double wl = l.p / c.p, wr = r.p / c.p;
    c.mean = wl * l.mean + wr * r.mean;
    c.fa_p = l.fa_p * wl;
    c.fb_p = r.fb_p * wr;
    return c;
  }
  const double s = anchor(a, b);
  double s0 = 0, s1 = 0;
  gauss_legendre_adaptive(tau, a, b, [&](double x, double off, double w) {
    const double g = std::exp(shape_diff(law, x, s));
    s0 += w * g;
    s1 += w * off * g;
  });
  CellMoments c;
  c.p = std::exp(log_norm(law) + shape(law, s)) * s0;
  c.mean = std::clamp((a + b) / 2 + s1 / s0, a, b);
  c.fa_p = end_ratio(law, a, s) / s0;
  c.fb_p = end_ratio(law, b, s) / s0;
  return c;
}

// Tail cells whose closed form underflows (the sphere at large d): tanh-sinh / exp-sinh quadrature of the
// density relative to its value at a (a >= 0, so g <= 1 decreases from g(a) = 1).
CellMoments relative_tail_cell(const Law& law, double a, double b) {
  const auto g = [&](double x) { return std::exp(shape_diff(law, x, a)); };
  double p_rel = 0, m_rel = 0;
  const double tol = 1e-14;
  if (std::isinf(b)) {
    auto& q = exp_sinh();
    p_rel = q.integrate(g, a, kInf, tol);
    m_rel = q.integrate([&](double x) { return (x - a) * g(x); }, a, kInf, tol);
  } else {
    auto& q = tanh_sinh();
    // In the offset variable u = x - a, so that nodes crowd at the cell's start with full resolution.
    const auto gu = [&](double u) { return std::exp(shape_diff(law, a + u, a)); };
    p_rel = q.integrate(gu, 0.0, b - a, tol);
    m_rel = q.integrate([&](double u) { return u * gu(u); }, 0.0, b - a, tol);
  }
  CellMoments c;
  c.p = std::exp(log_norm(law) + shape(law, a)) * p_rel;
  c.mean = std::clamp(a + m_rel / p_rel, a, b);
  c.fa_p = is_end(law, a) ? 0.0 : 1 / p_rel;
  c.fb_p = end_ratio(law, b, a) / p_rel;
  return c;
}

// Closed forms for a cell with b > 0 and b >= -a (mostly on the positive side).
CellMoments closed_form_cell(const Law& law, double a, double b) {
  CellMoments c;
  switch (law.kind) {
    case Law::Kind::gaussian: {
      const double norm = 1 / std::sqrt(2 * kPi);
      if (a >= 0) {
        // Everything relative to phi(a): P/phi(a) = R(a) - R(b) e^-D, M1/phi(a) = 1 - e^-D, D = (b^2-a^2)/2.
        const double dd = std::isinf(b) ? kInf : (b - a) * (b + a) / 2;
        const double e = std::exp(-dd);
        const double p_rel = mills_ratio(a) - (std::isinf(b) ? 0.0 : mills_ratio(b) * e);
        c.mean = -std::expm1(-dd) / p_rel;
        c.p = norm * std::exp(-a * a / 2) * p_rel;
        c.fa_p = 1 / p_rel;
        c.fb_p = e / p_rel;
      } else {
        // Across 0: no cancellation in P; M1 = phi(a) - phi(b) with b >= |a| as phi(|a|)(1 - e^-D).
        c.p = (boost::math::erf(b / kSqrt2) - boost::math::erf(a / kSqrt2)) / 2;
        const double pa = std::isinf(a) ? 0.0 : norm * std::exp(-a * a / 2);
        const double pb = std::isinf(b) ? 0.0 : norm * std::exp(-b * b / 2);
        const double dd = std::isinf(b) ? kInf : (b + a) * (b - a) / 2;
        c.mean = pa * -std::expm1(-dd) / c.p;
        c.fa_p = pa / c.p;
        c.fb_p = pb / c.p;
      }
      break;
    }
    case Law::Kind::laplace: {
      const double l = kLaplaceRate;
      if (a >= 0) {
        // The exponential law beyond 0, memoryless: only the width h matters.
        const double h = b - a;
        const double em = std::isinf(h) ? 1.0 : -std::expm1(-l * h);
        c.p = std::exp(-l * a) / 2 * em;
        c.mean = a + 1 / l - (std::isinf(h) ? 0.0 : h / std::expm1(l * h));
        c.fa_p = l / em;
        c.fb_p = std::isinf(h) ? 0.0 : l / std::expm1(l * h);
      } else {
        const auto m1 = [l](double x) {  // integral of x f over (0, x), x >= 0
          return std::isinf(x) ? 1 / (2 * l) : (-std::expm1(-l * x) - l * x * std::exp(-l * x)) / (2 * l);
        };
        c.p = 1 - std::exp(-l * b) / 2 - std::exp(l * a) / 2;
        c.mean = (m1(b) - m1(-a)) / c.p;
        c.fa_p = l / 2 * std::exp(l * a) / c.p;
        c.fb_p = l / 2 * std::exp(-l * b) / c.p;
      }
      break;
    }
    case Law::Kind::student_t: {
      // Standard t in y = x/s; integral of y f_t(y) = -(nu + y^2) f_t(y) / (nu - 1).
      const double nu = law.nu, s = student_scale(nu);
      const boost::math::students_t_distribution<double> t(nu);
      const double ya = a / s, yb = b / s;
      const auto sf = [&](double y) {
        return std::isinf(y) ? (y > 0 ? 0.0 : 1.0) : boost::math::cdf(boost::math::complement(t, y));
      };
      const auto pdf = [&](double y) { return std::isinf(y) ? 0.0 : boost::math::pdf(t, y); };
      const auto h = [&](double y) { return std::isinf(y) ? 0.0 : (nu + y * y) * boost::math::pdf(t, y); };
      c.p = a >= 0 ? sf(ya) - sf(yb) : 1 - sf(yb) - sf(-ya);
      c.mean = s * (h(ya) - h(yb)) / (nu - 1) / c.p;
      c.fa_p = pdf(ya) / s / c.p;
      c.fb_p = pdf(yb) / s / c.p;
      break;
    }
    case Law::Kind::sphere: {
      // P from the incomplete beta (upper tails through ibeta((1-x)/2), the complement); the partial first
      // moment is closed: integral of x (1-x^2)^k = -(1-x^2)^(k+1) / (2(k+1)), k + 1 = (d-1)/2.
      const double al = sphere_alpha(law.d);
      const double norm = std::exp(log_norm(law));
      const auto sf = [&](double x) { return x >= 1 ? 0.0 : boost::math::ibeta(al, al, (1 - x) / 2); };
      const auto pw = [&](double x) {  // (1 - x^2)^alpha
        return std::abs(x) >= 1 ? 0.0 : std::exp(al * std::log1p(-x * x));
      };
      const double pa = pw(a);
      c.p = a >= 0 ? sf(a) - sf(b) : 1 - sf(b) - sf(-a);
      if (a >= 0 && (!(c.p > 1e-290) || (pa == 0 && a < 1))) return relative_tail_cell(law, a, b);
      c.mean = norm * (pa - pw(b)) / (law.d - 1) / c.p;
      c.mean = std::clamp(c.mean, a, b);
      c.fa_p = is_end(law, a) ? 0.0 : density(law, a) / c.p;
      c.fb_p = is_end(law, b) ? 0.0 : density(law, b) / c.p;
      break;
    }
  }
  return c;
}

CellMoments oriented_cell(const Law& law, double a, double b, CellMethod method) {
  const double tau = cell_width_in_local_scales(law, a, b);
  const bool finite = std::isfinite(a) && std::isfinite(b);
  if (finite && (method == CellMethod::quadrature || (method == CellMethod::automatic && tau <= 2))) {
    return quadrature_cell(law, a, b, tau);
  }
  return closed_form_cell(law, a, b);
}

// Reflect so that b > 0 and b >= -a.
bool needs_reflection(double a, double b) {
  return b <= 0 || (a < 0 && -a > b);
}

void check_cell(const Law& law, double a, double b) {
  if (std::isnan(a) || std::isnan(b) || !(a < b) || a < law.lower() || b > law.upper()) {
    std::ostringstream m;
    m << "cell (" << a << ", " << b << ") of the " << law.to_string()
      << " law: need a < b inside the support [" << law.lower() << ", " << law.upper() << "]";
    throw Error(m.str());
  }
}

}  // namespace

double cell_width_in_local_scales(const Law& law, double a, double b) {
  if (!std::isfinite(a) || !std::isfinite(b)) return kInf;
  const double m = std::max(std::abs(a), std::abs(b));
  double scale = 0;
  switch (law.kind) {
    case Law::Kind::gaussian:
      scale = 1 / (1 + m);  // curvature 1, slope |x|
      break;
    case Law::Kind::laplace:
      scale = 1 / kLaplaceRate;  // exponential pieces (the kink at 0 is split off)
      break;
    case Law::Kind::student_t: {
      // In y = x/s, log f = -(nu+1)/2 log(1 + y^2/nu): poles at +-i sqrt(nu), so the cell's nearest point
      // y0 is D = sqrt(nu + y0^2) from a singularity; slope (nu+1) y/(nu + y^2) (largest at sqrt(nu)),
      // curvature <= (nu+1)/(nu + y0^2). Far out everything scales with y: the tail is smooth on the scale
      // of y itself, which keeps the wide outer cells of heavy tails on the fast path.
      const double nu = law.nu, s = student_scale(nu);
      const double y0 = (a <= 0 && b >= 0) ? 0.0 : std::min(std::abs(a), std::abs(b)) / s;
      const double y1 = m / s;
      const double yhat = std::clamp(std::sqrt(nu), y0, y1);
      const double slope = (nu + 1) * yhat / (nu + yhat * yhat);
      const double curvature = std::sqrt((nu + 1) / (nu + y0 * y0));
      const double dist = std::sqrt(nu + y0 * y0);
      scale = s * std::min(dist / 2, 1 / (curvature + slope));
      break;
    }
    case Law::Kind::sphere: {
      // (1 - x^2)^k: branch points at +-1 (keep them at least a cell width away), curvature 2|k|, slope
      // 2|k| x / (1 - x^2).
      if (m >= 1) return kInf;
      const double k = std::abs(sphere_k(law.d));
      const double smooth = 1 / (std::sqrt(2 * k) + 2 * k * m / ((1 - m) * (1 + m)));
      scale = std::min((1 - m) / 2, smooth);
      break;
    }
  }
  return (b - a) / scale;
}

CellMoments cell_moments(const Law& law, double a, double b, CellMethod method) {
  check_cell(law, a, b);
  if (needs_reflection(a, b)) {
    const CellMoments r = oriented_cell(law, -b, -a, method);
    return {r.p, -r.mean, r.fb_p, r.fa_p};
  }
  return oriented_cell(law, a, b, method);
}

double cell_squared_deviation(const Law& law, double a, double b, double c) {
  check_cell(law, a, b);
  if (needs_reflection(a, b)) return cell_squared_deviation(law, -b, -a, -c);
  if (law.kind == Law::Kind::laplace && a < 0 && b > 0) {  // integrate the smooth pieces
    return cell_squared_deviation(law, a, 0, c) + cell_squared_deviation(law, 0, b, c);
  }
  const double tau = cell_width_in_local_scales(law, a, b);
  if (tau <= 2) {
    const double s = anchor(a, b);
    double sum = 0;
    gauss_legendre_adaptive(tau, a, b, [&](double x, double, double w) {
      sum += w * (x - c) * (x - c) * std::exp(shape_diff(law, x, s));
    });
    return std::exp(log_norm(law) + shape(law, s)) * sum;
  }
  const double norm = log_norm(law);
  const double tol = 1e-14;
  if (std::isinf(b)) {
    return exp_sinh().integrate(
        [&](double x) {
          const double v = (x - c) * (x - c);
          return v == 0 ? 0.0 : v * std::exp(norm + shape(law, x));
        },
        a, kInf, tol);
  }
  // tanh-sinh passes xc, the exact distance to the nearer end (a - x <= 0 or b - x >= 0): next to the
  // sphere's +-1, 1 - x^2 = r (2 - r) with that exact r keeps the digits a rounded x would lose.
  const double k = law.kind == Law::Kind::sphere ? sphere_k(law.d) : 0.0;
  return tanh_sinh().integrate(
      [&](double x, double xc) {
        const double v = (x - c) * (x - c);
        if (v == 0) return 0.0;
        if (law.kind != Law::Kind::sphere) return v * std::exp(norm + shape(law, x));
        double r = 1 - std::abs(x);
        if (b == 1 && xc > 0) r = xc;
        if (a == -1 && xc < 0) r = -xc;
        return v * std::exp(norm + (k == 0 ? 0.0 : k * std::log(r * (2 - r))));
      },
      a, b, tol);
}

namespace {

// Boost.Math's own density of the law (not the code above), for the slow references: pdf(x, r) with
// r = 1 - |x| passed separately, because next to the sphere's +-1 (the arcsine law at d = 2 is singular
// there) 1 - |x| from a rounded x would lose the digits that matter.
using ReferencePdf = std::function<double(double, double)>;

ReferencePdf boost_pdf(const Law& law) {
  switch (law.kind) {
    case Law::Kind::gaussian:
      return [](double x, double) { return boost::math::pdf(boost::math::normal_distribution<double>(), x); };
    case Law::Kind::laplace:
      return [](double x, double) {
        return boost::math::pdf(boost::math::laplace_distribution<double>(0, 1 / kLaplaceRate), x);
      };
    case Law::Kind::student_t: {
      const double nu = law.nu, s = student_scale(nu);
      return [nu, s](double x, double) {
        return boost::math::pdf(boost::math::students_t_distribution<double>(nu), x / s) / s;
      };
    }
    case Law::Kind::sphere: {
      // Symmetric: Beta's pdf at the end of (0, 1) nearest to u = (1+x)/2, i.e. at r/2.
      const double al = sphere_alpha(law.d);
      return [al](double, double r) {
        return r <= 0 ? 0.0 : boost::math::pdf(boost::math::beta_distribution<double>(al, al), r / 2) / 2;
      };
    }
  }
  return {};
}

// Integral over (a, b) of g(x) pdf(x), split at 0 (Laplace's kink), by tanh-sinh (with the exact distance
// to the ends) or exp-sinh.
double reference_integral(const ReferencePdf& pdf, const std::function<double(double)>& g, double a,
                          double b) {
  const double tol = 1e-13;
  const auto piece = [&](double lo, double hi) {
    if (!(lo < hi)) return 0.0;
    if (std::isinf(lo) || std::isinf(hi)) {
      return exp_sinh().integrate([&](double x) { return g(x) * pdf(x, 1 - std::abs(x)); }, lo, hi, tol);
    }
    // xc = lo - x (<= 0) near lo and hi - x (>= 0) near hi, exact even where x itself is rounded.
    const auto f = [&](double x, double xc) {
      double r = 1 - std::abs(x);
      if (hi == 1 && xc > 0) r = xc;
      if (lo == -1 && xc < 0) r = -xc;
      return g(x) * pdf(x, r);
    };
    return tanh_sinh().integrate(f, lo, hi, tol);
  };
  return a < 0 && b > 0 ? piece(a, 0) + piece(0, b) : piece(a, b);
}

}  // namespace

CellMoments reference_cell(const Law& law, double a, double b) {
  check_cell(law, a, b);
  const auto pdf = boost_pdf(law);
  // The first moment about a finite end, so that narrow cells do not cancel.
  const double origin = std::isfinite(a) ? a : (std::isfinite(b) ? b : 0.0);
  const double p = reference_integral(
      pdf, [](double) { return 1.0; }, a, b);
  const double m = reference_integral(
      pdf, [&](double x) { return x - origin; }, a, b);
  return {p, origin + m / p, 0, 0};
}

double reference_squared_deviation(const Law& law, double a, double b, double c) {
  check_cell(law, a, b);
  return reference_integral(
      boost_pdf(law), [&](double x) { return (x - c) * (x - c); }, a, b);
}

}  // namespace detail

}  // namespace sqb
