// Lloyd-Max codebooks: closed forms, the published/independently computed tables (tests/data, see its
// README), the sphere law of rotated coordinates, conditional expectations in the far tails, the solver
// against a slow plain-Lloyd reference, the quantizer's spec handling, and the shared nearest-centroid
// lookup (the checklist of the TurboQuant codebook proposal).

#include <catch2/catch.hpp>

#include <boost/math/constants/constants.hpp>
#include <boost/multiprecision/cpp_bin_float.hpp>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <thread>

#include "detail/laws.hpp"
#include "detail/lloyd_max_solver.hpp"
#include "detail/nearest_reference.hpp"
#include "helpers.hpp"
#include "sqb/codebook.hpp"
#include "sqb/error.hpp"
#include "sqb/lloyd_max.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;
using sqb::Law;

namespace {

constexpr double kPi = boost::math::constants::pi<double>();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string data_path(const std::string& name) {
  return std::string(SQB_SOURCE_DIR) + "/tests/data/" + name;
}

std::vector<double> parse_list(const std::string& text) {
  // "0.1, 0.2" or "['0.1', '0.2']"
  std::vector<double> out;
  std::string clean;
  for (const char c : text)
    clean += (c == '[' || c == ']' || c == '\'' || c == ',') ? ' ' : c;
  std::istringstream in(clean);
  for (double v; in >> v;)
    out.push_back(v);
  return out;
}

// One reference codebook: the positive half of the levels and thresholds (threshold 0 included when the
// file lists it), in the law's natural units.
struct RefCodebook {
  unsigned bits = 0;
  double d = 0;  // 0 for N(0,1)
  double mse = 0;
  double d_mse = 0;  // sphere: d * C(f, b)
  double entropy = -1;
  std::vector<double> levels_pos, thresh_pos;
};

// The number right after the first occurrence of `key` in `line` (leading blanks skipped).
double value_after(const std::string& line, const std::string& key) {
  const auto at = line.find(key);
  REQUIRE(at != std::string::npos);
  return std::strtod(line.c_str() + at + key.size(), nullptr);
}

// The bracketed list right after `key`: "key['0.1', '0.2']".
std::vector<double> list_after(const std::string& line, const std::string& key) {
  const auto at = line.find(key);
  REQUIRE(at != std::string::npos);
  const auto close = line.find(']', at);
  return parse_list(line.substr(at + key.size(), close - at - key.size() + 1));
}

bool starts_with(const std::string& line, const std::string& prefix) {
  return line.rfind(prefix, 0) == 0;
}

std::vector<RefCodebook> gaussian_tables() {
  std::ifstream in(data_path("lloyd_max_tables.txt"));
  REQUIRE(in.good());
  std::vector<RefCodebook> out;
  for (std::string line; std::getline(in, line);) {
    if (starts_with(line, "## N(0,1)")) {
      out.push_back({});
      out.back().bits = static_cast<unsigned>(value_after(line, " b="));
      out.back().mse = value_after(line, "MSE=");
      out.back().entropy = value_after(line, "H(index)=");
    } else if (starts_with(line, "levels+  :") && !out.empty()) {
      out.back().levels_pos = parse_list(line.substr(line.find(':') + 1));
    } else if (starts_with(line, "thresh+  :") && !out.empty()) {
      out.back().thresh_pos = parse_list(line.substr(line.find(':') + 1));
    } else if (starts_with(line, "## TurboQuant")) {
      break;
    }
  }
  return out;
}

void parse_sphere_file(std::istream& in, std::vector<RefCodebook>& out) {
  bool in_block = false;
  for (std::string line; std::getline(in, line);) {
    if (starts_with(line, "## TurboQuant sphere density")) {
      RefCodebook r;
      r.d = value_after(line, " d=");
      r.bits = static_cast<unsigned>(value_after(line, " b="));
      r.d_mse = value_after(line, "D_mse=d*C=");
      r.entropy = value_after(line, "H=");
      out.push_back(r);
      in_block = true;
    } else if (in_block && starts_with(line, "levels+ (unscaled)")) {
      out.back().levels_pos = parse_list(line.substr(line.find(':') + 1));
    } else if (in_block && starts_with(line, "thresh+ (unscaled)")) {
      out.back().thresh_pos = parse_list(line.substr(line.find(':') + 1));
      in_block = false;
    } else if (starts_with(line, "d=") && line.find("sqrt(d)*c+=") != std::string::npos) {
      RefCodebook r;
      r.d = value_after(line, "d=");
      r.bits = static_cast<unsigned>(value_after(line, " b="));
      r.d_mse = value_after(line, "D_mse=d*C=");
      const double s = 1 / std::sqrt(r.d);
      for (const double v : list_after(line, "sqrt(d)*c+="))
        r.levels_pos.push_back(v * s);
      r.thresh_pos.push_back(0.0);
      for (const double v : list_after(line, "sqrt(d)*t+="))
        r.thresh_pos.push_back(v * s);
      out.push_back(r);
    }
  }
}

// Both formats of the sphere codebooks: the "## TurboQuant ..." blocks at the end of lloyd_max_tables.txt
// (unscaled, with the entropy) and the one-line summaries of sphere_codebooks.txt (scaled by sqrt(d); their
// thresholds omit 0).
std::vector<RefCodebook> sphere_tables() {
  std::vector<RefCodebook> out;
  for (const char* file : {"lloyd_max_tables.txt", "sphere_codebooks.txt"}) {
    std::ifstream in(data_path(file));
    REQUIRE(in.good());
    parse_sphere_file(in, out);
  }
  return out;
}

// The positive halves of a solution (levels K/2.., thresholds from the middle one, which is 0).
std::vector<double> upper_half(const std::vector<double>& v, std::size_t from) {
  return {v.begin() + static_cast<std::ptrdiff_t>(from), v.end()};
}

std::vector<float> block_levels(const std::string& spec, std::size_t k, const std::vector<float>& block) {
  const auto q = sqb::make_quantizer(spec, {k, 0});
  const sqb::BlockDesign d = q->design(block, {});
  return {d.codebook.levels().begin(), d.codebook.levels().end()};
}

double relative_to(double got, double want) {
  return std::abs(got - want) / std::abs(want);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Closed forms and published tables

TEST_CASE("lloyd_max 1-bit Gaussian levels are +-sqrt(2/(pi d)) to 1e-12", "[lloyd_max]") {
  const int d = GENERATE(64, 128, 256, 1024);
  const sqb::LloydMaxSetting s = sqb::parse_lloyd_max_spec("lloyd_max law=gaussian d=" + std::to_string(d));
  const Law law = s.law_for(1);
  const auto sol = sqb::lloyd_max_solution(law, 1);
  const double m = s.multiplier(law, 1, 0.0);
  const double want = std::sqrt(2 / (kPi * d));
  REQUIRE(sol->levels.size() == 2);
  CHECK_THAT(m * sol->levels[1], WithinRel(want, 1e-12));
  CHECK_THAT(m * sol->levels[0], WithinRel(-want, 1e-12));
  CHECK(sol->thresholds == std::vector<double>{0.0});
  CHECK_THAT(sol->mse, WithinRel(1 - 2 / kPi, 1e-12));
  CHECK(sol->iterations_total() == 0);
  // The quantizer stores those levels as float32, whatever the block holds (no data dependence).
  const auto lv = block_levels("lloyd_max law=gaussian d=" + std::to_string(d), 2, {5.0f, -3.0f, 0.25f});
  CHECK(lv == std::vector<float>{static_cast<float>(-want), static_cast<float>(want)});
}

TEST_CASE("lloyd_max 2-bit Gaussian levels are {+-0.4527800346, +-1.510417608}/sqrt(d)", "[lloyd_max]") {
  const int d = GENERATE(64, 128, 256, 1024);
  const sqb::LloydMaxSetting s = sqb::parse_lloyd_max_spec("lloyd_max d=" + std::to_string(d));
  const Law law = s.law_for(1);
  const auto sol = sqb::lloyd_max_solution(law, 2);
  const double m = s.multiplier(law, 1, 0.0);
  const double r = std::sqrt(static_cast<double>(d));
  REQUIRE(sol->levels.size() == 4);
  CHECK_THAT(m * sol->levels[2], WithinRel(0.4527800346 / r, 1e-9));
  CHECK_THAT(m * sol->levels[3], WithinRel(1.510417608 / r, 1e-9));
  CHECK_THAT(m * sol->levels[1], WithinRel(-0.4527800346 / r, 1e-9));
  CHECK_THAT(m * sol->levels[0], WithinRel(-1.510417608 / r, 1e-9));
  // The TurboQuant proposal's rounded values, which are Lloyd-Max numbers (Max 1960), not a closed form.
  CHECK_THAT(m * r * sol->levels[2], WithinAbs(0.453, 1e-3));
  CHECK_THAT(m * r * sol->levels[3], WithinAbs(1.51, 1e-3));
  CHECK_THAT(sol->thresholds[2], WithinRel(0.9815988216, 1e-9));
}

TEST_CASE("lloyd_max Gaussian b=1..8 matches lloyd_max_tables.txt to 1e-9", "[lloyd_max][reference]") {
  const auto tables = gaussian_tables();
  REQUIRE(tables.size() == 8);
  for (const RefCodebook& ref : tables) {
    INFO("b = " << ref.bits);
    const auto sol = sqb::lloyd_max_solution(Law::gaussian(), ref.bits);
    const std::size_t k = std::size_t{1} << ref.bits;
    REQUIRE(sol->levels.size() == k);
    REQUIRE(sol->thresholds.size() == k - 1);
    const auto lv = upper_half(sol->levels, k / 2);
    const auto th = upper_half(sol->thresholds, k / 2 - 1);
    REQUIRE(lv.size() == ref.levels_pos.size());
    REQUIRE(th.size() == ref.thresh_pos.size());
    for (std::size_t i = 0; i < lv.size(); ++i)
      CHECK_THAT(lv[i], WithinRel(ref.levels_pos[i], 1e-9));
    CHECK(th[0] == 0.0);
    for (std::size_t i = 1; i < th.size(); ++i)
      CHECK_THAT(th[i], WithinRel(ref.thresh_pos[i], 1e-9));
    CHECK_THAT(sol->mse, WithinRel(ref.mse, 1e-9));
    CHECK_THAT(sol->entropy_bits, WithinRel(ref.entropy, 1e-9));
    CHECK(sol->converged);
    CHECK(sol->residual <= 1e-12);
  }
}

TEST_CASE("lloyd_max law=sphere matches the reference sphere codebooks (d = 3..3072) to 1e-6",
          "[lloyd_max][reference]") {
  const auto tables = sphere_tables();
  REQUIRE(tables.size() == 16 + 24);  // 16 detailed blocks, 24 one-line summaries
  for (const RefCodebook& ref : tables) {
    INFO("d = " << ref.d << " b = " << ref.bits);
    const auto sol = sqb::lloyd_max_solution(Law::sphere(ref.d), ref.bits);
    const std::size_t k = std::size_t{1} << ref.bits;
    const auto lv = upper_half(sol->levels, k / 2);
    const auto th = upper_half(sol->thresholds, k / 2 - 1);
    REQUIRE(lv.size() == ref.levels_pos.size());
    REQUIRE(th.size() == ref.thresh_pos.size());
    for (std::size_t i = 0; i < lv.size(); ++i)
      CHECK_THAT(lv[i], WithinRel(ref.levels_pos[i], 1e-6));
    for (std::size_t i = 1; i < th.size(); ++i)
      CHECK_THAT(th[i], WithinRel(ref.thresh_pos[i], 1e-6));
    CHECK_THAT(ref.d * sol->mse, WithinRel(ref.d_mse, 1e-6));
    if (ref.entropy >= 0) CHECK_THAT(sol->entropy_bits, WithinRel(ref.entropy, 1e-6));
  }
}

TEST_CASE("lloyd_max law=sphere d=3 is the uniform codebook with D_mse = 4^-b", "[lloyd_max]") {
  for (unsigned b = 1; b <= 10; ++b) {
    INFO("b = " << b);
    const auto sol = sqb::lloyd_max_solution(Law::sphere(3), b);
    const std::size_t k = std::size_t{1} << b;
    for (std::size_t i = 0; i < k; ++i) {
      const double want = -1 + (2.0 * static_cast<double>(i) + 1) / static_cast<double>(k);
      CHECK_THAT(sol->levels[i], WithinAbs(want, 1e-14));
    }
    CHECK_THAT(3 * sol->mse, WithinRel(std::pow(4.0, -static_cast<double>(b)), 1e-13));
    CHECK_THAT(sol->entropy_bits, WithinRel(static_cast<double>(b), 1e-13));
  }
}

TEST_CASE("lloyd_max law=sphere tends to the Gaussian codebook as d grows", "[lloyd_max]") {
  for (unsigned b = 1; b <= 4; ++b) {
    const auto g = sqb::lloyd_max_solution(Law::gaussian(), b);
    double prev_err = kInf;
    for (const double d : {100.0, 1e4, 1e6}) {
      const auto s = sqb::lloyd_max_solution(Law::sphere(d), b);
      double err = std::abs(d * s->mse - g->mse) / g->mse;
      for (std::size_t i = 0; i < g->levels.size(); ++i)
        err = std::max(err, relative_to(std::sqrt(d) * s->levels[i], g->levels[i]));
      INFO("b = " << b << " d = " << d << " max relative difference " << err);
      CHECK(err < prev_err / 50);  // the difference is O(1/d)
      prev_err = err;
    }
    CHECK(prev_err < 5e-6);
  }
}

TEST_CASE("lloyd_max uniform-step reference: law_mse of the best uniform quantizer of N(0,1)",
          "[lloyd_max]") {
  // tests/data/REFERENCE.md: optimal uniform quantizers (best step) of N(0,1) — an independent check of
  // law_mse on a codebook that is not Lloyd-Max. The table rounds to 7 significant digits: agree to half a
  // unit in the last printed digit (the MSE is stationary in the step, so the rounded step costs nothing).
  struct Row {
    std::size_t k;
    double step, mse, half_unit;
  };
  for (const Row r : {Row{4, 0.9956867, 0.1188461, 0.5e-7}, Row{8, 0.5860194, 0.03743966, 0.5e-8},
                      Row{16, 0.3352006, 0.01154288, 0.5e-8}}) {
    std::vector<double> levels(r.k), bounds(r.k - 1);
    for (std::size_t i = 0; i < r.k; ++i)
      levels[i] = (static_cast<double>(i) - (static_cast<double>(r.k) - 1) / 2) * r.step;
    for (std::size_t i = 0; i + 1 < r.k; ++i)
      bounds[i] = (levels[i] + levels[i + 1]) / 2;
    CHECK_THAT(sqb::law_mse(Law::gaussian(), levels, bounds), WithinAbs(r.mse, r.half_unit));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Structure, convergence and the solver against a slow reference

TEST_CASE("lloyd_max codebooks: 2^b sorted, exactly symmetric levels, converged to 1e-12 for b <= 12",
          "[lloyd_max]") {
  const Law law =
      GENERATE(Law::gaussian(), Law::laplace(), Law::student_t(3), Law::student_t(2.5), Law::student_t(30),
               Law::sphere(2), Law::sphere(5), Law::sphere(64), Law::sphere(1536));
  for (unsigned b = 1; b <= 12; ++b) {
    INFO(law.to_string() << " b = " << b);
    const sqb::LloydMaxSolution& sol = *sqb::lloyd_max_solution(law, b);
    const std::size_t k = std::size_t{1} << b;
    REQUIRE(sol.levels.size() == k);
    REQUIRE(sol.thresholds.size() == k - 1);
    REQUIRE(sol.probabilities.size() == k);
    for (std::size_t i = 0; i < k; ++i) {
      CHECK(sol.levels[i] == -sol.levels[k - 1 - i]);
      if (i + 1 < k) {
        CHECK(sol.levels[i] < sol.thresholds[i]);
        CHECK(sol.thresholds[i] < sol.levels[i + 1]);
      }
    }
    CHECK(sol.thresholds[k / 2 - 1] == 0.0);
    CHECK(sol.levels.front() > law.lower());
    CHECK(sol.levels.back() < law.upper());
    double psum = 0;
    for (const double p : sol.probabilities)
      psum += p;
    CHECK_THAT(psum, WithinAbs(1.0, 1e-13));
    CHECK(sol.residual <= 1e-12);
    CHECK(sol.converged);
    CHECK(sol.newton_iterations <= 40);
    CHECK(sol.mse > 0);
    CHECK(sol.mse < law.stddev() * law.stddev());
  }
}

TEST_CASE("lloyd_max b = 13..16 solve (Gaussian and sphere d=1536) with the residual at the noise floor",
          "[lloyd_max][slow]") {
  const Law law = GENERATE(Law::gaussian(), Law::sphere(1536));
  double prev = kInf;
  for (unsigned b = 13; b <= 16; ++b) {
    INFO(law.to_string() << " b = " << b);
    const auto sol = sqb::lloyd_max_solution(law, b);
    REQUIRE(sol->levels.size() == (std::size_t{1} << b));
    CHECK(std::is_sorted(sol->levels.begin(), sol->levels.end()));
    CHECK(sol->residual <= 1e-10);
    CHECK(sol->mse < prev / 3.9);  // ~4x less per bit (Panter-Dite)
    prev = sol->mse;
  }
}

TEST_CASE("lloyd_max solver agrees with plain Lloyd on Boost adaptive quadrature", "[lloyd_max][reference]") {
  // The reference is slow (plain Lloyd needs 50-550 steps here, each cell integrated by tanh-sinh/exp-sinh on
  // Boost's pdf), so b = 2 and 3 on a selection that covers every law and the singular arcsine law (d = 2).
  struct Case {
    Law law;
    unsigned bits;
  };
  const Case c = GENERATE(Case{Law::gaussian(), 2}, Case{Law::gaussian(), 3}, Case{Law::laplace(), 2},
                          Case{Law::laplace(), 3}, Case{Law::student_t(3), 2}, Case{Law::student_t(2.5), 2},
                          Case{Law::sphere(2), 2}, Case{Law::sphere(4), 3}, Case{Law::sphere(64), 2});
  INFO(c.law.to_string() << " b = " << c.bits);
  const auto fast = sqb::lloyd_max_solution(c.law, c.bits);
  const sqb::detail::ReferenceLloyd ref = sqb::detail::plain_lloyd_reference(c.law, c.bits, 1e-13, 5000);
  REQUIRE(ref.converged);
  REQUIRE(ref.levels.size() == fast->levels.size());
  const double spacing = fast->levels[1] - fast->levels[0];
  for (std::size_t i = 0; i < ref.levels.size(); ++i)
    CHECK_THAT(fast->levels[i], WithinAbs(ref.levels[i], 1e-10 * spacing));
  CHECK_THAT(fast->mse, WithinRel(ref.mse, 1e-12));
}

TEST_CASE("lloyd_max Laplace closed forms: 1-bit levels +-1/sqrt(2), MSE 1/2", "[lloyd_max]") {
  const auto sol = sqb::lloyd_max_solution(Law::laplace(), 1);
  CHECK_THAT(sol->levels[1], WithinRel(1 / std::sqrt(2.0), 1e-14));
  CHECK_THAT(sol->mse, WithinRel(0.5, 1e-12));
  // Unit variance: the 2-bit codebook satisfies t = (c0 + c1)/2 with the exponential's memoryless mean c1 =
  // t + 1/sqrt(2).
  const auto s2 = sqb::lloyd_max_solution(Law::laplace(), 2);
  CHECK_THAT(s2->levels[3], WithinRel(s2->thresholds[2] + 1 / std::sqrt(2.0), 1e-13));
}

TEST_CASE("lloyd_max solutions are cached per (law, bits) and safe to share across threads", "[lloyd_max]") {
  const Law law = Law::student_t(7.5);
  std::vector<std::shared_ptr<const sqb::LloydMaxSolution>> got(8);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&got, i, law] { got[i] = sqb::lloyd_max_solution(law, 6); });
  for (auto& t : threads)
    t.join();
  for (const auto& g : got) {
    CHECK(g->levels == got[0]->levels);
    CHECK(g == sqb::lloyd_max_solution(law, 6));  // after the race one object is kept
  }
  CHECK(sqb::lloyd_max_solution(law, 5) != sqb::lloyd_max_solution(law, 6));
  CHECK(sqb::lloyd_max_solution(Law::student_t(7.5), 6)->law == law);
}

// ---------------------------------------------------------------------------------------------------------
// Conditional expectations

namespace {

using Big = boost::multiprecision::cpp_bin_float_50;

// E[X | a < X < b] for N(0,1) at 50 digits (erfc differences lose at most ~20 of them here).
double big_gaussian_mean(double a, double b) {
  const Big sqrt2 = boost::multiprecision::sqrt(Big(2));
  const auto phi = [](const Big& x) {
    return x.is_zero() ? Big(1) : Big(boost::multiprecision::exp(-x * x / 2));
  };
  const auto upper_tail = [&](double x) -> Big {  // 2 * Q(x)
    if (std::isinf(x)) return x > 0 ? Big(0) : Big(2);
    return boost::multiprecision::erfc(Big(x) / sqrt2);
  };
  const Big phia = std::isinf(a) ? Big(0) : phi(Big(a));
  const Big phib = std::isinf(b) ? Big(0) : phi(Big(b));
  const Big num = (phia - phib) / boost::multiprecision::sqrt(2 * boost::math::constants::pi<Big>());
  const Big den = (upper_tail(a) - upper_tail(b)) / 2;
  return static_cast<double>(num / den);
}

}  // namespace

TEST_CASE("gaussian_conditional_expectation: known integrals", "[lloyd_max][condexp]") {
  CHECK_THAT(sqb::gaussian_conditional_expectation(1, 0, kInf), WithinRel(std::sqrt(2 / kPi), 1e-15));
  CHECK_THAT(sqb::gaussian_conditional_expectation(1, 0, kInf), WithinRel(0.7978845608, 1e-10));
  CHECK_THAT(sqb::gaussian_conditional_expectation(1, -kInf, 0), WithinRel(-std::sqrt(2 / kPi), 1e-15));
  CHECK_THAT(sqb::gaussian_conditional_expectation(1, -1, 1), WithinAbs(0.0, 1e-16));
  CHECK(sqb::gaussian_conditional_expectation(1, -kInf, kInf) == 0.0);
  CHECK_THAT(sqb::gaussian_conditional_expectation(3, 0, kInf), WithinRel(3 * std::sqrt(2 / kPi), 1e-15));
  CHECK_THAT(sqb::gaussian_conditional_expectation(0.125, -kInf, kInf), WithinAbs(0.0, 0.0));
}

TEST_CASE("gaussian_conditional_expectation against 50-digit arithmetic, narrow to wide cells",
          "[lloyd_max][condexp]") {
  const double a = GENERATE(-3.0, -0.7, 0.0, 0.3, 1.0, 2.5, 4.0, 6.0, 9.0);
  const double h = GENERATE(1e-6, 1e-3, 0.02, 0.3, 1.0, 2.0, 5.0);
  const double b = a + h;
  INFO("a = " << a << " b = " << b);
  const double want = big_gaussian_mean(a, b);
  const double got = sqb::gaussian_conditional_expectation(1, a, b);
  // The position inside the cell is what matters for a codebook: (E - a) / (b - a) to 1e-12, or to the
  // resolution of doubles near a when the cell is narrower than that allows.
  const double resolution =
      4 * std::numeric_limits<double>::epsilon() * std::max(std::abs(a), std::abs(b)) / h;
  CHECK_THAT((got - a) / h, WithinAbs((want - a) / h, 1e-12 + resolution));
  CHECK_THAT(got, WithinRel(want, 1e-14));
  // The one-sided tails too.
  CHECK_THAT(sqb::gaussian_conditional_expectation(1, a, kInf), WithinRel(big_gaussian_mean(a, kInf), 1e-14));
  CHECK_THAT(sqb::gaussian_conditional_expectation(1, -kInf, a),
             WithinRel(big_gaussian_mean(-kInf, a), 1e-14));
}

TEST_CASE("gaussian_conditional_expectation in extreme tails is finite, above a and at most a + sigma^2/a",
          "[lloyd_max][condexp]") {
  const double sigma = GENERATE(1.0, 0.01, 250.0);
  const double t = GENERATE(5.0, 10.0, 40.0, 1e3, 1e6);
  const double a = t * sigma;
  INFO("sigma = " << sigma << " a = " << t << " sigma");
  const double e = sqb::gaussian_conditional_expectation(sigma, a, kInf);
  CHECK(std::isfinite(e));
  CHECK(e > a);
  CHECK(e <= a + sigma * sigma / a);
  // Mills-ratio asymptotics: E = a + sigma^2/a - 2 sigma^4/a^3 + O(a^-5), as far as a double resolves e - a.
  const double resolution = 4 * std::numeric_limits<double>::epsilon() * a * a / (sigma * sigma);
  CHECK_THAT((e - a) * a / (sigma * sigma),
             WithinAbs(1 - 2 / (t * t), std::max(11 / std::pow(t, 4), resolution)));
  if (t <= 40) CHECK_THAT(e / sigma, WithinRel(big_gaussian_mean(t, kInf), 1e-14));
  // Mirror image, and finite far-tail cells.
  CHECK(sqb::gaussian_conditional_expectation(sigma, -kInf, -a) == -e);
  const double f = sqb::gaussian_conditional_expectation(sigma, a, a + sigma);
  CHECK(std::isfinite(f));
  CHECK(f > a);
  CHECK(f <= a + sigma * sigma / a);
  const double g = sqb::gaussian_conditional_expectation(sigma, a, a + 1e-6 * sigma);
  CHECK(g > a);
  CHECK(g < a + 1e-6 * sigma);
}

TEST_CASE("conditional_expectation for every law: tails finite, inside the cell, symmetric",
          "[lloyd_max][condexp]") {
  // Laplace: memoryless beyond 0 -> E[X | X > a] = a + 1/sqrt(2) exactly, however far out.
  for (const double a : {0.0, 3.0, 40.0, 1e3, 1e6})
    CHECK_THAT(sqb::conditional_expectation(Law::laplace(), a, kInf),
               WithinRel(a + 1 / std::sqrt(2.0), 1e-14));
  // Student t (unit variance): E[X | X > a] -> a nu/(nu - 1) for large a.
  for (const double nu : {2.5, 3.0, 10.0}) {
    for (const double a : {5.0, 40.0, 1e4, 1e8}) {
      INFO("nu = " << nu << " a = " << a);
      const double e = sqb::conditional_expectation(Law::student_t(nu), a, kInf);
      CHECK(std::isfinite(e));
      CHECK(e > a);
      if (a >= 1e4) CHECK_THAT(e, WithinRel(a * nu / (nu - 1), 1e-6));
      const double f = sqb::conditional_expectation(Law::student_t(nu), a, a * (1 + 1e-9));
      CHECK(f > a);
      CHECK(f < a * (1 + 1e-9));
    }
  }
  // Sphere: cells next to the pole x = 1, where (1 - x^2)^((d-1)/2) underflows for large d.
  for (const double d : {2.0, 3.0, 64.0, 1536.0, 1e6}) {
    for (const double a : {0.1, 0.5, 0.9, 0.999999}) {
      INFO("d = " << d << " a = " << a);
      const double e = sqb::conditional_expectation(Law::sphere(d), a, 1.0);
      CHECK(std::isfinite(e));
      CHECK(e > a);
      CHECK(e < 1.0);
      CHECK(sqb::conditional_expectation(Law::sphere(d), -1.0, -a) == -e);
    }
  }
  // At d = 1e6 (sigma = 0.001) x = 0.04 is 40 sigma out, where the density underflows: a narrow cell there
  // still has its mean inside.
  const double e = sqb::conditional_expectation(Law::sphere(1e6), 0.04, 0.0400001);
  CHECK(e > 0.04);
  CHECK(e < 0.0400001);
}

TEST_CASE("cell moments: the quadrature and closed-form paths agree with Boost adaptive quadrature",
          "[lloyd_max][condexp]") {
  using sqb::detail::CellMethod;
  const Law law = GENERATE(Law::gaussian(), Law::laplace(), Law::student_t(3), Law::student_t(2.2),
                           Law::sphere(2), Law::sphere(7), Law::sphere(128));
  const double s = law.stddev();
  for (const double a : {-0.4, 0.0, 0.2, 1.0, 2.5}) {
    for (const double h : {0.01, 0.1, 0.5, 1.0}) {
      const double lo = a * s, hi = std::min((a + h) * s, law.upper());
      if (!(lo < hi)) continue;
      INFO(law.to_string() << " [" << lo << ", " << hi << "]");
      const auto ref = sqb::detail::reference_cell(law, lo, hi);
      const double tau = sqb::detail::cell_width_in_local_scales(law, lo, hi);
      for (const CellMethod m : {CellMethod::automatic, CellMethod::quadrature, CellMethod::closed_form}) {
        if (m == CellMethod::quadrature && tau > 2) continue;  // Gauss-Legendre is only claimed up to 2
        const auto c = sqb::detail::cell_moments(law, lo, hi, m);
        INFO("method " << static_cast<int>(m) << " width " << tau << " local scales");
        CHECK_THAT(c.p, WithinRel(ref.p, 1e-11));
        CHECK_THAT((c.mean - lo) / (hi - lo), WithinAbs((ref.mean - lo) / (hi - lo), 1e-11));
        CHECK_THAT(c.fa_p, WithinRel(law.pdf(lo) / ref.p, 1e-11));
        if (hi < law.upper()) CHECK_THAT(c.fb_p, WithinRel(law.pdf(hi) / ref.p, 1e-11));
      }
    }
  }
}

TEST_CASE("conditional expectation rejects bad arguments", "[lloyd_max][condexp][baddata]") {
  CHECK_THROWS_AS(sqb::gaussian_conditional_expectation(0, 0, 1), sqb::Error);
  CHECK_THROWS_AS(sqb::gaussian_conditional_expectation(-1, 0, 1), sqb::Error);
  CHECK_THROWS_AS(sqb::gaussian_conditional_expectation(kInf, 0, 1), sqb::Error);
  CHECK_THROWS_AS(sqb::gaussian_conditional_expectation(1, 1, 1), sqb::Error);
  CHECK_THROWS_AS(sqb::gaussian_conditional_expectation(1, 2, 1), sqb::Error);
  CHECK_THROWS_AS(sqb::gaussian_conditional_expectation(1, std::nan(""), 1), sqb::Error);
  CHECK_THROWS_AS(sqb::conditional_expectation(Law::sphere(8), 1.0, 2.0),
                  sqb::Error);  // empty after clamping
}

// ---------------------------------------------------------------------------------------------------------
// The quantizer and its spec

TEST_CASE("lloyd_max quantizer: sigma=data fits the block's mean and std, other settings are fixed tables",
          "[lloyd_max][quantizer]") {
  std::vector<float> x = sqbtest::draw("gaussian mean=3 std=2", 4000, 5);
  double mean = 0, ss = 0;
  for (const float v : x)
    mean += v;
  mean /= static_cast<double>(x.size());
  for (const float v : x)
    ss += (v - mean) * (v - mean);
  const double sd = std::sqrt(ss / static_cast<double>(x.size()));
  const auto table = sqb::lloyd_max_solution(Law::gaussian(), 3);
  const auto lv = block_levels("lloyd_max", 8, x);
  for (std::size_t i = 0; i < 8; ++i)
    CHECK_THAT(lv[i], WithinRel(static_cast<float>(mean + sd * table->levels[i]), 1e-6f));
  // mean=0 keeps the codebook centred on 0: sigma is then the root-mean-square about 0.
  double ms = 0;
  for (const float v : x)
    ms += static_cast<double>(v) * v;
  const double rms = std::sqrt(ms / static_cast<double>(x.size()));
  const auto lv0 = block_levels("lloyd_max mean=0", 8, x);
  for (std::size_t i = 0; i < 8; ++i)
    CHECK_THAT(lv0[i], WithinRel(static_cast<float>(rms * table->levels[i]), 1e-6f));
  // Fixed tables ignore the data.
  const auto sphere = sqb::lloyd_max_solution(Law::sphere(64), 3);
  const auto lvs = block_levels("lloyd_max law=sphere d=64 scale=2", 8, x);
  for (std::size_t i = 0; i < 8; ++i)
    CHECK(lvs[i] == static_cast<float>(2 * sphere->levels[i]));
  const auto lvg = block_levels("lloyd_max sigma=0.5", 8, x);
  for (std::size_t i = 0; i < 8; ++i)
    CHECK(lvg[i] == static_cast<float>(0.5 * table->levels[i]));
  // d=data: the block's length is the dimension (one vector per block).
  const auto lvd = block_levels("lloyd_max law=sphere d=data", 8, std::vector<float>(64, 0.1f));
  for (std::size_t i = 0; i < 8; ++i)
    CHECK(lvd[i] == static_cast<float>(sphere->levels[i]));
  const auto lvgd = block_levels("lloyd_max law=gaussian d=data", 8, std::vector<float>(64, 0.1f));
  for (std::size_t i = 0; i < 8; ++i)
    CHECK(lvgd[i] == static_cast<float>(table->levels[i] / 8));
  // Laplace and Student t tables are unit-variance and scaled by sigma.
  const auto lap = sqb::lloyd_max_solution(Law::laplace(), 2);
  const auto lvl = block_levels("lloyd_max law=laplace sigma=3", 4, x);
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(lvl[i] == static_cast<float>(3 * lap->levels[i]));
  const auto st = sqb::lloyd_max_solution(Law::student_t(4), 2);
  const auto lvt = block_levels("lloyd_max law=student_t nu=4 sigma=1", 4, x);
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(lvt[i] == static_cast<float>(st->levels[i]));
}

TEST_CASE("lloyd_max quantizer: a block spread near FLT_MAX keeps finite, sorted levels",
          "[lloyd_max][quantizer]") {
  const float big = 3e38f;
  const std::vector<float> x = {big, -big, big, -big, 0.5f * big};
  for (const std::size_t k : {2, 16, 256, 65536}) {
    const auto lv = block_levels("lloyd_max", k, x);
    CHECK(std::is_sorted(lv.begin(), lv.end()));
    for (const float v : lv)
      CHECK(std::isfinite(v));
  }
}

TEST_CASE("lloyd_max quantizer: storage, iterations, K = 2^b only", "[lloyd_max][quantizer]") {
  const auto side = [](const std::string& spec) {
    return sqb::make_quantizer(spec, {16, 0})->side_values().per_block;
  };
  CHECK(side("lloyd_max") == 2);  // mean and sigma of the block
  CHECK(side("lloyd_max mean=0") == 1);
  CHECK(side("lloyd_max sigma=2") == 0);
  CHECK(side("lloyd_max d=64") == 0);
  CHECK(side("lloyd_max law=sphere d=128") == 0);
  CHECK(side("lloyd_max law=sphere d=data") == 0);
  CHECK(side("lloyd_max law=sphere d=64 sigma=data") == 2);
  for (const std::size_t k : {1, 3, 5, 1000, 65535}) {
    INFO("K = " << k);
    CHECK_THROWS_AS(sqb::make_quantizer("lloyd_max", {k, 0}), sqb::NotApplicable);
  }
  CHECK_THROWS_WITH(sqb::make_quantizer("lloyd_max", {3, 0}), Catch::Contains("K = 2^b"));
  const auto q = sqb::make_quantizer("lloyd_max law=laplace", {256, 0});
  const std::vector<float> x = sqbtest::draw("laplace", 1000, 3);
  const sqb::BlockDesign d = q->design(x, {});
  const auto sol = sqb::lloyd_max_solution(Law::laplace(), 8);
  CHECK(d.iterations == sol->iterations_total());
  CHECK(d.converged == sol->converged);
}

TEST_CASE("lloyd_max bad parameters are errors naming the parameter", "[lloyd_max][baddata]") {
  struct Case {
    const char* spec;
    const char* names;
  };
  for (const Case c : {Case{"lloyd_max law=sphere", "'d'"}, Case{"lloyd_max law=sphere d=1", "'d'"},
                       Case{"lloyd_max d=0", "'d'"}, Case{"lloyd_max d=2.5", "'d'"},
                       Case{"lloyd_max sigma=0", "'sigma'"}, Case{"lloyd_max sigma=-1", "'sigma'"},
                       Case{"lloyd_max sigma=abc", "'sigma'"}, Case{"lloyd_max law=student_t nu=2", "'nu'"},
                       Case{"lloyd_max law=student_t nu=1.5", "'nu'"}, Case{"lloyd_max nu=3", "'nu'"},
                       Case{"lloyd_max sigma=1 d=64", "'d'"}, Case{"lloyd_max scale=0", "'scale'"},
                       Case{"lloyd_max law=cauchy", "'law'"}, Case{"lloyd_max mean=x", "'mean'"}}) {
    INFO(c.spec);
    CHECK_THROWS_WITH(sqb::make_quantizer(c.spec, {4, 0}), Catch::Contains(c.names));
    CHECK_THROWS_AS(sqb::make_quantizer(c.spec, {4, 0}), sqb::Error);
  }
  CHECK_THROWS_WITH(sqb::solve_lloyd_max(Law::gaussian(), 0), Catch::Contains("'bits'"));
  CHECK_THROWS_WITH(sqb::solve_lloyd_max(Law::gaussian(), 17), Catch::Contains("'bits'"));
  CHECK_THROWS_WITH(Law::sphere(1), Catch::Contains("'d'"));
  CHECK_THROWS_WITH(Law::sphere(2.5), Catch::Contains("'d'"));
  CHECK_THROWS_WITH(Law::student_t(2), Catch::Contains("'nu'"));
  CHECK_THROWS_WITH(sqb::parse_lloyd_max_spec("kmeans"), Catch::Contains("kmeans"));
  // d=data needs at least two values per block.
  const auto q = sqb::make_quantizer("lloyd_max law=sphere d=data", {4, 0});
  CHECK_THROWS_WITH(q->design(std::vector<float>{1.0f}, {}), Catch::Contains("'d'"));
}

// ---------------------------------------------------------------------------------------------------------
// The shared nearest-centroid lookup (searchsorted on midpoints)

TEST_CASE("nearest_centroid_indices: hand-made cases, batch equals single, midpoints down, clamping",
          "[lloyd_max][codebook]") {
  const std::vector<float> c = {-1.5f, -0.5f, 0.5f, 1.5f};
  const std::vector<float> x = {-9.0f, -1.5f, -1.0f, -0.99f, 0.0f,  0.01f,
                                0.49f, 1.0f,  1.01f, 9.0f,   1e30f, -1e30f};
  const std::vector<std::uint16_t> want = {0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 0};
  const auto got = sqb::nearest_centroid_indices(x, c);
  CHECK(got == want);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto one = sqb::nearest_centroid_indices(std::span<const float>(&x[i], 1), c);
    CHECK(one[0] == got[i]);
  }
  // A Lloyd-Max codebook whose midpoints are not float32 values: the float just below a midpoint and the
  // midpoint's float rounding-down go to the lower level, the next float up goes to the upper one.
  const auto sol = sqb::lloyd_max_solution(Law::gaussian(), 4);
  std::vector<float> lv;
  for (const double v : sol->levels)
    lv.push_back(static_cast<float>(v));
  for (std::size_t i = 0; i + 1 < lv.size(); ++i) {
    const double mid = (static_cast<double>(lv[i]) + lv[i + 1]) / 2;
    const float below = sqb::float_at_or_below(mid);
    const float above = std::nextafter(below, 1e30f);
    const auto idx = sqb::nearest_centroid_indices(std::vector<float>{below, above}, lv);
    CHECK(idx[0] == i);
    CHECK(idx[1] == i + 1);
  }
  // A value exactly on a float midpoint (levels 0 and 1, midpoint 0.5) goes to the lower side.
  CHECK(sqb::nearest_centroid_indices(std::vector<float>{0.5f}, std::vector<float>{0.0f, 1.0f})[0] == 0);
  // Random batch against the brute-force reference.
  const std::vector<float> r = sqbtest::draw("gaussian std=3", 5000, 9);
  const auto br = sqb::nearest_centroid_indices(r, lv);
  for (std::size_t i = 0; i < r.size(); ++i)
    CHECK(br[i] == sqb::detail::nearest_level_reference(lv, r[i]));
}
