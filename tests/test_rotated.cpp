// The rotated-vector source (TurboQuant): unit rows, an orthogonal Haar rotation, the exact law of a rotated
// coordinate (Kolmogorov-Smirnov, fixed seeds, significance 0.001), and the Theorem 1/2 columns it adds to
// a sweep cell, which must sit within Monte Carlo error of the exact values.

#include <catch2/catch.hpp>

#include <boost/math/special_functions/beta.hpp>
#include <cmath>
#include <functional>
#include <numbers>

#include "helpers.hpp"
#include "sources/rotated.hpp"
#include "sqb/error.hpp"
#include "sqb/lloyd_max.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"

using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {

constexpr double kAlpha = 0.001;  // significance level of every KS test here

// Kolmogorov-Smirnov: the statistic D of a sample against a continuous CDF and its asymptotic p-value
// P(K > (sqrt(N) + 0.12 + 0.11/sqrt(N)) D) (Stephens 1970), K the Kolmogorov distribution.
double ks_p_value(std::vector<double> x, const std::function<double(double)>& cdf) {
  std::sort(x.begin(), x.end());
  const double n = static_cast<double>(x.size());
  double d = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double f = cdf(x[i]);
    d = std::max({d, f - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - f});
  }
  const double lambda = (std::sqrt(n) + 0.12 + 0.11 / std::sqrt(n)) * d;
  double p = 0;
  for (int k = 1; k <= 100; ++k)
    p += 2 * ((k % 2) ? 1 : -1) * std::exp(-2.0 * k * k * lambda * lambda);
  return std::clamp(p, 0.0, 1.0);
}

// Coordinate `coord` of every `stride`-th row.
std::vector<double> column(const sqb::Tensor& t, std::size_t coord, std::size_t stride = 1) {
  std::vector<double> out;
  for (std::size_t r = 0; r < t.rows; r += stride)
    out.push_back(t.row(r)[coord]);
  return out;
}

struct Cell {
  sqb::Tensor data;
  std::vector<float> recon;
  std::vector<std::string> names;
  std::vector<double> values;
  double get(const std::string& name) const {
    const auto it = std::find(names.begin(), names.end(), name);
    REQUIRE(it != names.end());
    return values[static_cast<std::size_t>(it - names.begin())];
  }
};

// Runs one sweep cell by hand: draw, quantize per row, decode, and ask the source for its figures.
Cell run_cell(const std::string& dist, std::size_t n, const std::string& quantizer, std::size_t k,
              std::uint64_t seed) {
  const auto source = sqb::make_source(dist);
  Cell c;
  c.data = source->draw(n, seed);
  const sqb::QuantizeOptions options{.granularity = sqb::Granularity::parse("channel"), .seed = seed};
  const sqb::Quantized r = sqb::quantize(c.data, quantizer, k, options);
  c.recon = sqbtest::vec(r.decoded);
  const auto* evaluation = sqb::part_of<sqb::EvaluatesResult>(*source);
  REQUIRE(evaluation);
  for (const sqb::Col col : evaluation->evaluation_columns())
    c.names.emplace_back(sqb::column_name(col));
  c.values = evaluation->evaluate({c.data, r, quantizer, k, options});
  REQUIRE(c.values.size() == c.names.size());
  return c;
}

}  // namespace

TEST_CASE("rotated: rows are unit vectors, a batch of one-hot rows is an orthogonal matrix", "[rotated]") {
  for (const std::string source : {"gaussian", "laplace", "student_t", "uniform", "onehot"}) {
    const sqb::Tensor t = sqb::make_source("rotated d=16 source=" + source)->draw(16 * 40, 3);
    REQUIRE(t.rows == 40);
    REQUIRE(t.cols == 16);
    for (std::size_t r = 0; r < t.rows; ++r) {
      double s = 0;
      for (const float v : t.row(r))
        s += static_cast<double>(v) * v;
      CHECK_THAT(s, WithinAbs(1.0, 1e-6));
    }
  }
  // One-hot rows e_0..e_15 rotated are the rotation's columns: their Gram matrix is the identity.
  const sqb::Tensor q = sqb::make_source("rotated d=16 source=onehot")->draw(16 * 16, 4);
  for (std::size_t i = 0; i < 16; ++i) {
    for (std::size_t j = 0; j < 16; ++j) {
      double s = 0;
      for (std::size_t c = 0; c < 16; ++c)
        s += static_cast<double>(q.row(i)[c]) * q.row(j)[c];
      CHECK_THAT(s, WithinAbs(i == j ? 1.0 : 0.0, 1e-6));
    }
  }
  // Without the rotation they stay basis vectors.
  const sqb::Tensor e = sqb::make_source("rotated d=4 source=onehot rotation=none")->draw(4 * 4, 5);
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t j = 0; j < 4; ++j)
      CHECK(e.row(i)[j] == (i == j ? 1.0f : 0.0f));
  // Seeds are data.
  const auto src = sqb::make_source("rotated d=8");
  CHECK(src->draw(64, 7).values == src->draw(64, 7).values);
  CHECK(src->draw(64, 7).values != src->draw(64, 8).values);
}

TEST_CASE("haar_orthogonal: orthogonal to rounding, and its first column has the sphere law", "[rotated]") {
  boost::random::mt19937_64 gen(11);
  const std::size_t d = 8;
  std::vector<double> q00;
  for (int rep = 0; rep < 20000; ++rep) {
    const std::vector<double> q = sqb::detail::haar_orthogonal(d, gen);
    if (rep < 5) {
      for (std::size_t i = 0; i < d; ++i) {
        for (std::size_t j = 0; j < d; ++j) {
          double s = 0;
          for (std::size_t c = 0; c < d; ++c)
            s += q[i * d + c] * q[j * d + c];
          CHECK_THAT(s, WithinAbs(i == j ? 1.0 : 0.0, 1e-14));
        }
      }
    }
    q00.push_back(q[0]);
  }
  // Without the sign fix, LAPACK's convention makes Q_00 = -|G_00|/||G_0|| < 0 always: the test would fail.
  const sqb::Law law = sqb::Law::sphere(d);
  const double p = ks_p_value(q00, [&](double x) { return law.cdf(x); });
  INFO("KS p-value of Q_00 against the sphere law, d = 8, N = 20000: " << p);
  CHECK(p > kAlpha);
}

TEST_CASE("rotated coordinates follow the exact law (1+x)/2 ~ Beta((d-1)/2, (d-1)/2): KS at d = 8 and 64",
          "[rotated][ks]") {
  // One coordinate per vector keeps the sample independent (the coordinates of one vector are not).
  for (const std::size_t d : {8, 64}) {
    const std::size_t vectors = d == 8 ? 50000 : 20000;
    for (const std::string source : {"gaussian", "student_t"}) {
      const sqb::Tensor t =
          sqb::make_source("rotated d=" + std::to_string(d) + " source=" + source)->draw(vectors * d, 2024);
      const std::vector<double> x = column(t, 3);
      const sqb::Law law = sqb::Law::sphere(static_cast<double>(d));
      const double p = ks_p_value(x, [&](double v) { return law.cdf(v); });
      INFO("d = " << d << " source " << source << " N = " << x.size() << " KS p-value " << p);
      CHECK(p > kAlpha);
      if (d == 8) {
        // The seed's Beta(d/2, d/2) (variance 1/(d+1) instead of 1/d) is rejected at the same level.
        const double a = static_cast<double>(d) / 2;
        const double pb = ks_p_value(x, [&](double v) { return boost::math::ibeta(a, a, (1 + v) / 2); });
        INFO("Beta(d/2, d/2) KS p-value " << pb);
        CHECK(pb < kAlpha);
      }
    }
  }
  // The one-hot worst case: rotated, e_0 is the rotation's first column; one coordinate per rotation.
  const sqb::Tensor t = sqb::make_source("rotated d=8 source=onehot")->draw(8 * 8 * 20000, 77);
  const sqb::Law law = sqb::Law::sphere(8);
  const double p = ks_p_value(column(t, 0, 8), [&](double v) { return law.cdf(v); });
  INFO("onehot, d = 8, KS p-value " << p);
  CHECK(p > kAlpha);
}

TEST_CASE("rotated: Theorem 1 and 2 columns sit within Monte Carlo error of the exact values", "[rotated]") {
  const std::size_t d = 64;
  for (const std::size_t k : {2, 4, 8}) {
    const Cell c = run_cell("rotated d=64", d * 8192, "lloyd_max law=sphere d=data", k, 42);
    const unsigned b = k == 2 ? 1 : (k == 4 ? 2 : 3);
    INFO("d = 64, b = " << b);
    const double dmse_exact = d * sqb::lloyd_max_solution(sqb::Law::sphere(d), b)->mse;
    CHECK(c.get("dmse_exact") == dmse_exact);
    CHECK_THAT(c.get("dmse"), WithinAbs(dmse_exact, 4 * c.get("dmse_se")));
    CHECK(c.get("dmse_se") < 0.01 * dmse_exact);
    CHECK_THAT(c.get("dmse_upper"),
               WithinRel(std::sqrt(3.0) * std::numbers::pi / 2 * std::pow(4.0, -double(b)), 1e-15));
    CHECK_THAT(c.get("dmse_lower"), WithinRel(std::pow(4.0, -double(b)), 1e-15));
    CHECK(c.get("dmse_lower") < c.get("dmse"));
    CHECK(c.get("dmse") < c.get("dmse_upper"));
    CHECK(c.get("dmse_paper") == std::vector<double>{0.36, 0.117, 0.03}[b - 1]);
    CHECK(c.get("d_dprod_paper") == std::vector<double>{1.57, 0.56, 0.18}[b - 1]);
    const double prev = b == 1 ? 1.0 : d * sqb::lloyd_max_solution(sqb::Law::sphere(d), b - 1)->mse;
    CHECK_THAT(c.get("d_dprod_exact"), WithinRel((std::numbers::pi / 2 - 1.0 / d) * prev, 1e-15));
    CHECK_THAT(c.get("d_dprod"), WithinAbs(c.get("d_dprod_exact"), 4 * c.get("d_dprod_se")));
    // TurboQuant_prod is unbiased; the plain MSE quantizer shrinks inner products by (1 - D_mse).
    CHECK_THAT(c.get("prod_bias"), WithinAbs(0.0, 4 * c.get("prod_bias_se")));
    CHECK_THAT(c.get("mse_bias"), WithinAbs(-dmse_exact, 4 * c.get("mse_bias_se")));
    CHECK(c.get("mse_bias") < -8 * c.get("mse_bias_se"));  // the bias is resolved, not noise
  }
  // K that is not 2^b: the measured distortion is there, the b-indexed references are empty.
  const Cell u = run_cell("rotated d=16", 16 * 256, "uniform", 3, 1);
  CHECK(std::isfinite(u.get("dmse")));
  CHECK(std::isnan(u.get("dmse_exact")));
  CHECK(std::isnan(u.get("d_dprod")));
}

TEST_CASE("rotated: bad parameters and n are errors naming them", "[rotated][baddata]") {
  CHECK_THROWS_WITH(sqb::make_source("rotated"), Catch::Contains("'d'"));
  CHECK_THROWS_WITH(sqb::make_source("rotated d=1"), Catch::Contains("'d'"));
  CHECK_THROWS_WITH(sqb::make_source("rotated d=8 nu=3"), Catch::Contains("'nu'"));
  CHECK_THROWS_WITH(sqb::make_source("rotated d=8 source=cube"), Catch::Contains("'source'"));
  CHECK_THROWS_WITH(sqb::make_source("rotated d=8 queries=0"), Catch::Contains("'queries'"));
  const auto src = sqb::make_source("rotated d=8");
  CHECK_THROWS_WITH(src->check_n(12), Catch::Contains("multiple of d = 8"));
  CHECK_THROWS_AS(src->draw(0, 0), sqb::Error);
}
