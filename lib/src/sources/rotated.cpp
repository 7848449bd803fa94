// Randomly rotated unit vectors (TurboQuant, Zandieh et al., arXiv 2504.19874) and the figures of its
// Theorem 1 (MSE distortion) and Theorem 2 (inner-product distortion of TurboQuant_prod) for a sweep cell.
//
// Each row of the tensor is one vector x in R^d: drawn from the source, normalised to the unit sphere, then
// rotated by a Haar-random orthogonal matrix. A fresh rotation is drawn for every d consecutive vectors, so
// the Monte Carlo averages over the rotation as the theorems do (E over Pi for a fixed x): for any source,
// each rotated coordinate then has exactly the sphere law, and E||x - x~||^2 of the sphere Lloyd-Max
// codebook is exactly d C(f_d, b). One rotation per d vectors costs O(d^2) per vector, like the rotation
// itself.

#include "sources/rotated.hpp"
#include "sources/sources.hpp"

#include <armadillo>
#include <boost/math/constants/constants.hpp>
#include <boost/random/laplace_distribution.hpp>
#include <boost/random/normal_distribution.hpp>
#include <boost/random/student_t_distribution.hpp>
#include <boost/random/uniform_real_distribution.hpp>
#include <cmath>
#include <limits>

#include "sqb/error.hpp"
#include "sqb/lloyd_max.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

namespace sqb {

namespace detail {

std::vector<double> haar_orthogonal(std::size_t d, boost::random::mt19937_64& gen) {
  boost::random::normal_distribution<double> normal;
  arma::mat g(d, d);
  for (double& v : g)
    v = normal(gen);
  arma::mat q, r;
  if (!arma::qr(q, r, g)) throw std::runtime_error("haar_orthogonal: QR factorisation failed");
  for (arma::uword j = 0; j < d; ++j) {
    if (r(j, j) < 0) q.col(j) *= -1.0;
  }
  return {q.begin(), q.end()};
}

}  // namespace detail

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kPi = boost::math::constants::pi<double>();

enum class VectorLaw { gaussian, laplace, student_t, uniform, onehot };

// Mean and standard error of the mean of per-vector values.
struct MeanSe {
  double sum = 0, sum_sq = 0;
  std::size_t n = 0;
  void add(double v) {
    sum += v;
    sum_sq += v * v;
    ++n;
  }
  double mean() const { return n ? sum / static_cast<double>(n) : kNaN; }
  double se() const {
    if (n < 2) return kNaN;
    const double m = mean();
    const double var = (sum_sq - static_cast<double>(n) * m * m) / static_cast<double>(n - 1);
    return std::sqrt(std::max(var, 0.0) / static_cast<double>(n));
  }
};

class Rotated final : public Source, public EvaluatesResult {
 public:
  Rotated(std::size_t d, VectorLaw source, double nu, bool rotate, std::size_t queries, std::string context)
      : d_(d), source_(source), nu_(nu), rotate_(rotate), queries_(queries), context_(std::move(context)) {}

  void check_n(std::size_t n) const override {
    if (n == kWholeFile) {
      throw Error(context_ +
                  ": n = all (every value of a file) is for file sources (npy, safetensors); the "
                  "rotated source needs n = a multiple of d = " +
                  std::to_string(d_));
    }
    if (n % d_ != 0) {
      throw Error(context_ + ": n = " + std::to_string(n) + " must be a positive multiple of d = " +
                  std::to_string(d_) + " (each row is one vector of length d)");
    }
  }

  DrawShape shape(std::size_t n) const override {
    check_n(n);
    return {n / d_, d_, 0, false};
  }

  Tensor draw(std::size_t n, std::uint64_t seed) const override {
    check_n(n);
    const std::size_t vectors = n / d_;
    Tensor t(vectors, d_);
    boost::random::mt19937_64 source_gen(seed), rotation_gen(block_seed(seed, 1));
    boost::random::normal_distribution<double> normal;
    boost::random::laplace_distribution<double> laplace;
    boost::random::student_t_distribution<double> student(nu_);
    boost::random::uniform_real_distribution<double> uniform(-1.0, 1.0);
    const auto coordinate = [&]() {
      switch (source_) {
        case VectorLaw::gaussian:
          return normal(source_gen);
        case VectorLaw::laplace:
          return laplace(source_gen);
        case VectorLaw::student_t:
          return student(source_gen);
        case VectorLaw::uniform:
          return uniform(source_gen);
        case VectorLaw::onehot:
          break;
      }
      return 0.0;
    };
    for (std::size_t first = 0; first < vectors; first += d_) {
      const std::size_t m = std::min(d_, vectors - first);
      arma::mat x(d_, m, arma::fill::zeros);
      for (std::size_t j = 0; j < m; ++j) {
        if (source_ == VectorLaw::onehot) {
          x(j, j) = 1;  // the batch's vectors are e_0, e_1, ...: rotated, the columns of the rotation
          continue;
        }
        double norm2 = 0;
        while (norm2 == 0) {  // a zero vector has probability 0; redraw rather than divide by it
          for (std::size_t i = 0; i < d_; ++i) {
            x(i, j) = coordinate();
            norm2 += x(i, j) * x(i, j);
          }
        }
        x.col(j) /= std::sqrt(norm2);
      }
      if (rotate_) {
        const std::vector<double> q = detail::haar_orthogonal(d_, rotation_gen);
        x = arma::mat(q.data(), d_, d_) * x;
      }
      for (std::size_t j = 0; j < m; ++j) {
        auto row = t.row(first + j);
        for (std::size_t i = 0; i < d_; ++i)
          row[i] = static_cast<float>(x(i, j));
      }
    }
    return t;
  }

  std::vector<Col> evaluation_columns() const override {
    return {Col::dmse,          Col::dmse_se,       Col::dmse_exact, Col::dmse_limit,   Col::dmse_paper,
            Col::dmse_upper,    Col::dmse_lower,    Col::d_dprod,    Col::d_dprod_se,   Col::d_dprod_exact,
            Col::d_dprod_limit, Col::d_dprod_paper, Col::prod_bias,  Col::prod_bias_se, Col::mse_bias,
            Col::mse_bias_se,   Col::mse_bias_exact};
  }

  std::vector<double> evaluate(const Evaluation& cell) const override {
    const TensorView x = cell.data;
    const std::span<const float> recon = cell.result.decoded;
    if (x.cols != d_ || recon.size() != x.size()) {
      throw std::logic_error("rotated: the cell's tensor is not this source's (rows of length d)");
    }
    const std::size_t vectors = x.rows;
    std::vector<double> out(evaluation_columns().size(), kNaN);

    // Theorem 1: D_mse = E ||x - x~||^2 per unit vector.
    MeanSe dmse;
    for (std::size_t v = 0; v < vectors; ++v) {
      double e = 0;
      for (std::size_t i = 0; i < d_; ++i) {
        const double diff = static_cast<double>(x.values[v * d_ + i]) - recon[v * d_ + i];
        e += diff * diff;
      }
      dmse.add(e);
    }
    out[0] = dmse.mean();
    out[1] = dmse.se();

    const unsigned bits = index_bits(cell.k);
    const bool power_of_two = (std::size_t{1} << bits) == cell.k && bits >= 1 && bits <= 16;
    const double dd = static_cast<double>(d_);
    // d C(f_d, b): the sphere law's Lloyd-Max distortion at b bits (b = 0: the zero codebook, E||x||^2 = 1).
    const auto sphere_dmse = [&](unsigned b) {
      return b == 0 ? 1.0 : dd * lloyd_max_solution(Law::sphere(dd), b)->mse;
    };
    const auto gauss_dmse = [](unsigned b) {
      return b == 0 ? 1.0 : lloyd_max_solution(Law::gaussian(), b)->mse;
    };
    if (power_of_two) {
      const double b = static_cast<double>(bits);
      out[2] = sphere_dmse(bits);
      out[3] = gauss_dmse(bits);
      static const double paper_mse[] = {0.36, 0.117, 0.03, 0.009};  // TurboQuant Theorem 1, b = 1..4
      if (bits <= 4) out[4] = paper_mse[bits - 1];
      out[5] = std::sqrt(3.0) * kPi / 2 * std::pow(4.0, -b);
      out[6] = std::pow(4.0, -b);
      // Theorem 2 references for d * D_prod with unit queries: exactly (pi/2 - 1/d) E||r||^2 where r is the
      // (b-1)-bit residual (see prod_metrics), so (pi/2 - 1/d) d C(f_d, b-1); its d -> inf limit (pi/2)
      // C(N, b-1); the paper's 1.57, 0.56, 0.18, 0.047 for b = 1..4 (the last from its rounded 0.03).
      out[9] = (kPi / 2 - 1 / dd) * sphere_dmse(bits - 1);
      out[10] = kPi / 2 * gauss_dmse(bits - 1);
      static const double paper_prod[] = {1.57, 0.56, 0.18, 0.047};
      if (bits <= 4) out[11] = paper_prod[bits - 1];
      out[16] = -out[2];  // E<y, x~> = (1 - D_mse) <y, x> for the Lloyd-Max codebook (centroid condition)
    }
    prod_metrics(cell, bits, power_of_two, out);
    return out;
  }

 private:
  // TurboQuant_prod at b bits: the cell's quantizer at b-1 bits (nothing at b = 1), then a 1-bit QJL sketch
  // of the residual r: x~ = x~_mse + ||r|| sqrt(pi/2)/d S^T sign(S r), S a d x d matrix of N(0,1) draws
  // (fresh for every d vectors, like the rotation). Against `queries_` random unit queries y per vector:
  // d * D_prod = d E[(<y, x~> - <y, x>)^2] and the multiplicative bias of E<y, x~> for TurboQuant_prod and
  // for the plain b-bit quantizer of the cell.
  void prod_metrics(const Evaluation& cell, unsigned bits, bool power_of_two,
                    std::vector<double>& out) const {
    const TensorView x = cell.data;
    const std::span<const float> recon = cell.result.decoded;
    const std::size_t vectors = x.rows;
    Buffer<float> coarse(x.size(), 0.0f);
    bool have_prod = power_of_two;
    if (power_of_two && bits >= 2) {
      try {
        QuantizeOptions o = cell.options;
        o.measure = false;
        coarse = quantize(x, cell.quantizer_spec, cell.k / 2, o).decoded;
      } catch (const NotApplicable&) {
        have_prod = false;
      }
    }
    const std::uint64_t seed = cell.options.seed;
    boost::random::mt19937_64 s_gen(block_seed(seed, 2)), y_gen(block_seed(seed, 3));
    boost::random::normal_distribution<double> normal;
    const double dd = static_cast<double>(d_);
    const double qjl_scale = std::sqrt(kPi / 2) / dd;

    MeanSe dprod;
    struct Fit {
      double suu = 0, suv = 0;
      std::vector<std::pair<double, double>> per_vector;  // (sum u^2, sum u v) of each vector's queries
    } prod_fit, mse_fit;
    std::vector<double> y(d_);
    for (std::size_t first = 0; first < vectors; first += d_) {
      const std::size_t m = std::min(d_, vectors - first);
      arma::mat xprod(d_, m);
      if (have_prod) {
        arma::mat s(d_, d_);
        for (double& v : s)
          v = normal(s_gen);
        arma::mat r(d_, m);
        for (std::size_t j = 0; j < m; ++j) {
          for (std::size_t i = 0; i < d_; ++i) {
            const std::size_t at = (first + j) * d_ + i;
            r(i, j) = static_cast<double>(x.values[at]) - coarse[at];
          }
        }
        const arma::mat sr = s * r;
        const arma::mat signs = arma::sign(sr) + arma::conv_to<arma::mat>::from(sr == 0);  // sign(0) = +1
        const arma::mat back = s.t() * signs;
        for (std::size_t j = 0; j < m; ++j) {
          const double gamma = arma::norm(r.col(j));
          for (std::size_t i = 0; i < d_; ++i)
            xprod(i, j) = coarse[(first + j) * d_ + i] + gamma * qjl_scale * back(i, j);
        }
      }
      for (std::size_t j = 0; j < m; ++j) {
        const std::size_t row = (first + j) * d_;
        double err_sum = 0, uu = 0, p_uv = 0, m_uv = 0;
        for (std::size_t q = 0; q < queries_; ++q) {
          double norm2 = 0;
          for (double& v : y) {
            v = normal(y_gen);
            norm2 += v * v;
          }
          const double inv = 1 / std::sqrt(norm2);
          double u = 0, vp = 0, vm = 0;
          for (std::size_t i = 0; i < d_; ++i) {
            u += y[i] * x.values[row + i];
            vm += y[i] * recon[row + i];
            if (have_prod) vp += y[i] * xprod(i, j);
          }
          u *= inv;
          vm *= inv;
          vp *= inv;
          err_sum += (vp - u) * (vp - u);
          uu += u * u;
          p_uv += u * vp;
          m_uv += u * vm;
        }
        dprod.add(dd * err_sum / static_cast<double>(queries_));
        prod_fit.suu += uu;
        prod_fit.suv += p_uv;
        prod_fit.per_vector.emplace_back(uu, p_uv);
        mse_fit.suu += uu;
        mse_fit.suv += m_uv;
        mse_fit.per_vector.emplace_back(uu, m_uv);
      }
    }
    // Cluster-robust (sandwich) standard error of a through-origin slope: Var = sum_c (sum_{i in c} u_i
    // e_i)^2 / (sum u^2)^2 with e = v - slope u, i.e. per cluster suv - slope suu.
    const auto slope_and_se = [](const Fit& f) {
      const double slope = f.suv / f.suu;
      double acc = 0;
      for (const auto& [uu, uv] : f.per_vector) {
        const double g = uv - slope * uu;
        acc += g * g;
      }
      return std::pair{slope, std::sqrt(acc) / f.suu};
    };
    const auto [mse_slope, mse_se] = slope_and_se(mse_fit);
    out[14] = mse_slope - 1;
    out[15] = mse_se;
    if (have_prod) {
      out[7] = dprod.mean();
      out[8] = dprod.se();
      const auto [prod_slope, prod_se] = slope_and_se(prod_fit);
      out[12] = prod_slope - 1;
      out[13] = prod_se;
    }
  }

  std::size_t d_;
  VectorLaw source_;
  double nu_;
  bool rotate_;
  std::size_t queries_;
  std::string context_;
};

}  // namespace

namespace sources {

std::span<const ParamSpec> rotated_params() {
  static const ParamSpec params[] = {
      {"d",
       ParamSpec::Kind::integer,
       "",
       2,
       1e6,
       false,
       {},
       "dimension of the vectors (required); each row is one vector, n must be a multiple of d"},
      {"source",
       ParamSpec::Kind::choice,
       "gaussian",
       0,
       0,
       false,
       {"gaussian", "laplace", "student_t", "uniform", "onehot"},
       "the vectors before normalising and rotating: i.i.d. N(0,1) (uniform on the sphere), Laplace, Student "
       "t "
       "(nu=), uniform[-1,1] coordinates, or onehot (basis vectors e_0, e_1, ...: the sparse worst case)"},
      {"nu", ParamSpec::Kind::real, "3", 0, 1e6, true, {}, "degrees of freedom for source=student_t"},
      {"rotation",
       ParamSpec::Kind::choice,
       "haar",
       0,
       0,
       false,
       {"haar", "none"},
       "haar: a fresh Haar-random rotation for every d vectors (QR of a Gaussian matrix with the sign fix); "
       "none: "
       "the normalised vectors as drawn"},
      {"queries",
       ParamSpec::Kind::integer,
       "16",
       1,
       1e4,
       false,
       {},
       "random unit query vectors per vector for the inner-product figures (d_dprod, *_bias)"},
      label_param(),
  };
  return params;
}

std::unique_ptr<Source> make_rotated(const Params& p, const SourceContext&) {
  if (!p.given("d")) p.fail("d", "is required: the dimension of the vectors, e.g. rotated d=128");
  if (p.given("nu") && !p.is("source", "student_t")) p.fail("nu", "applies only to source=student_t");
  const std::string& s = p.text("source");
  const VectorLaw source = s == "laplace"     ? VectorLaw::laplace
                           : s == "student_t" ? VectorLaw::student_t
                           : s == "uniform"   ? VectorLaw::uniform
                           : s == "onehot"    ? VectorLaw::onehot
                                              : VectorLaw::gaussian;
  return std::make_unique<Rotated>(static_cast<std::size_t>(p.integer("d")), source, p.real("nu"),
                                   p.is("rotation", "haar"), static_cast<std::size_t>(p.integer("queries")),
                                   p.context());
}

}  // namespace sources

}  // namespace sqb
