// The codebooks practitioners ship — bitsandbytes' NF4, OCP MX FP4 (E2M1), normal quantiles — and the
// block's own empirical quantiles, all as one strategy: a codebook shape T times a scale per block. The four
// registry entries differ only in the shape (a fixed table, or the block's quantiles); the scale rule
// (absmax, std, mse) and everything else is shared.

#include "quantizers/table_codebook.hpp"

#include <algorithm>
#include <boost/math/distributions/normal.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "detail/reduce.hpp"
#include "detail/scale_search.hpp"
#include "quantizers/quantizers.hpp"

namespace sqb::quantizers {

std::vector<float> linspace_f32(float start, float end, std::size_t steps) {
  if (steps < 2) throw std::invalid_argument("linspace_f32: steps must be >= 2");
  std::vector<float> v(steps);
  const float step = (end - start) / static_cast<float>(steps - 1);
  const std::size_t half = steps / 2;
  for (std::size_t i = 0; i < steps; ++i) {
    // Each product is rounded to float32 on its own (a volatile-free way to forbid contraction into an FMA,
    // which -march=native could otherwise emit and which would change the last bit).
    if (i < half) {
      const float p = static_cast<float>(static_cast<double>(step) * static_cast<double>(i));
      v[i] = start + p;
    } else {
      const float p = static_cast<float>(static_cast<double>(step) * static_cast<double>(steps - 1 - i));
      v[i] = end - p;
    }
  }
  return v;
}

std::vector<float> nf4_table() {
  // bitsandbytes passes the Python float 0.9677083 to a float32 linspace, so the offset is rounded to
  // float32 first; norm.ppf then works in double on the float32 probabilities, and torch.Tensor(...) rounds
  // each quantile to float32 before the sort and the float32 division by the maximum.
  const float offset = 0.9677083f;
  const boost::math::normal n01;
  std::vector<float> v;
  const std::vector<float> pos = linspace_f32(offset, 0.5f, 9);
  for (std::size_t i = 0; i + 1 < pos.size(); ++i)
    v.push_back(static_cast<float>(boost::math::quantile(n01, static_cast<double>(pos[i]))));
  const std::vector<float> neg = linspace_f32(offset, 0.5f, 8);
  for (std::size_t i = 0; i + 1 < neg.size(); ++i)
    v.push_back(static_cast<float>(-boost::math::quantile(n01, static_cast<double>(neg[i]))));
  v.push_back(0.0f);
  std::sort(v.begin(), v.end());
  const float top = v.back();
  for (float& x : v)
    x /= top;
  return v;
}

std::vector<float> e2m1_values() {
  // E2M1: 1 sign, 2 exponent (bias 1), 1 mantissa bit; exponent 0 is subnormal (0 and 0.5). No Inf/NaN.
  const float magnitudes[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  std::vector<float> v;
  for (int i = 7; i >= 0; --i)
    v.push_back(-magnitudes[i]);  // the last one is -0.0f: code 7 is "-0", as in sign-magnitude E2M1
  for (const float m : magnitudes)
    v.push_back(m);
  return v;
}

std::vector<float> fp4_table() {
  std::vector<float> v = e2m1_values();
  for (float& x : v)
    x = static_cast<float>(static_cast<double>(x) / 6.0);
  return v;
}

std::vector<float> normal_quantile_table(std::size_t k) {
  if (k < 2) throw std::invalid_argument("normal_quantile_table: K must be >= 2");
  const boost::math::normal n01;
  const double kd = static_cast<double>(k);
  const double top = boost::math::quantile(n01, (kd - 0.5) / kd);
  std::vector<float> v(k);
  // Upper half from its own probabilities (p >= 1/2), the lower half as its exact mirror: Phi^-1(p) and
  // -Phi^-1(1 - p) computed separately can differ in the last bit.
  for (std::size_t i = k / 2; i < k; ++i) {
    const double p = (static_cast<double>(i) + 0.5) / kd;
    v[i] = static_cast<float>(boost::math::quantile(n01, p) / top);
    v[k - 1 - i] = -v[i];
  }
  if (k % 2 == 1) v[k / 2] = 0.0f;
  return v;
}

std::vector<double> empirical_quantiles(std::span<const float> sorted, std::size_t k) {
  // h = (N - 1)(2i + 1) / (2K) exactly: integer part and remainder in 64-bit integers (N < 2^40 and
  // K <= 2^16 keep the product below 2^63).
  const std::uint64_t n1 = sorted.size() - 1, den = 2 * static_cast<std::uint64_t>(k);
  std::vector<double> q(k);
  for (std::size_t i = 0; i < k; ++i) {
    const std::uint64_t num = n1 * (2 * static_cast<std::uint64_t>(i) + 1);
    const std::uint64_t lo = num / den, r = num % den;
    if (r == 0) {
      q[i] = sorted[lo];
    } else {
      // w_lo x_lo + w_hi x_hi with both weights exact ratios: a mirrored sample swaps the two products, so
      // its quantiles are the exact negatives.
      const double w_hi = static_cast<double>(r) / static_cast<double>(den);
      const double w_lo = static_cast<double>(den - r) / static_cast<double>(den);
      q[i] = w_lo * sorted[lo] + w_hi * sorted[lo + 1];
    }
  }
  return q;
}

namespace {

enum class Scale { none, absmax, std, mse };

constexpr double kFloatMax = std::numeric_limits<float>::max();

// The scale=std multiplier of a table: the scale minimising E[(Z - Q(Z))^2] for Z ~ N(0, 1), computed once
// per table and kept (the normal_quantile search at K = 65536 costs about a second).
double gaussian_optimal_scale(const std::vector<float>& table) {
  static std::mutex mutex;
  static std::map<std::vector<float>, double> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  if (const auto it = cache.find(table); it != cache.end()) return it->second;
  const std::vector<double> t(table.begin(), table.end());
  const double c = detail::best_gaussian_scale(t).scale;
  cache.emplace(table, c);
  return c;
}

// One codebook per block: levels = T * s. T is a fixed table with max |T| = 1 (nf4, fp4, normal_quantile);
// one float32 scale is stored per block, and the levels are computed as a float32 kernel dequantizes:
// float32(T_i * float32(s)).
class TableCodebook final : public Quantizer, public DesignsWithoutData {
 public:
  TableCodebook(std::vector<float> table, Scale scale)
      // scale=mse: a sorted copy (4 B) and the exact search's five doubles per breakpoint event (80).
      : Quantizer(table.size(), {1, "the block's scale (levels = table * scale)"},
                  scale == Scale::mse ? 84.0 : 0.0),
        k_(table.size()),
        table_(std::move(table)),
        table_d_(table_.begin(), table_.end()),
        scale_(scale) {
    if (scale_ == Scale::std) gauss_scale_ = gaussian_optimal_scale(table_);
  }

  BlockDesign design(std::span<const float> block, const BlockInfo&) const override {
    double s = 0;
    switch (scale_) {
      case Scale::none:
      case Scale::absmax:
        s = detail::abs_max(block);  // max |T| = 1
        break;
      case Scale::std: {
        double ss = 0;
        for (const float v : block)
          ss += static_cast<double>(v) * v;
        s = std::sqrt(ss / static_cast<double>(block.size())) * gauss_scale_;
        break;
      }
      case Scale::mse: {
        std::vector<float> sorted(block.begin(), block.end());
        std::sort(sorted.begin(), sorted.end());
        s = detail::best_block_scale(sorted, table_d_).scale;
        break;
      }
    }
    // Stored as float32, which saturates at FLT_MAX (std and mse scales of data near the float32 limit can
    // exceed it; max |T| = 1 then keeps every level finite).
    const double sf = static_cast<float>(std::min(s, kFloatMax));
    std::vector<float> levels(k_);
    for (std::size_t i = 0; i < k_; ++i)
      levels[i] = static_cast<float>(table_d_[i] * sf);
    return {Codebook::nearest(std::move(levels)), 0, true, {static_cast<float>(sf)}};
  }

  DataFreeCodebook data_free_codebook() const override {
    DataFreeCodebook c;
    c.levels = table_d_;
    for (std::size_t i = 0; i + 1 < k_; ++i)
      c.boundaries.push_back(0.5 * (table_d_[i] + table_d_[i + 1]));
    c.scaled = true;
    c.applied_as = scale_ == Scale::std
                       ? "times a scale per block: its RMS times the table's N(0,1)-optimal multiplier"
                   : scale_ == Scale::mse ? "times a scale per block: the one minimising the block's MSE"
                                          : "times a scale per block: its max |w| (absmax)";
    return c;
  }

 private:
  std::size_t k_;
  std::vector<float> table_;
  std::vector<double> table_d_;
  Scale scale_;
  double gauss_scale_ = 0;
};

// The block's own empirical quantiles as its codebook (a learned codebook: the K levels are stored),
// optionally rescaled.
class EmpiricalQuantile final : public Quantizer {
 public:
  EmpiricalQuantile(std::size_t k, Scale scale)
      : Quantizer(k, learned_side(k), scale == Scale::mse ? 84.0 : 4.0),
        k_(k),
        scale_(scale) {}  // sorted copy

  BlockDesign design(std::span<const float> block, const BlockInfo&) const override {
    std::vector<float> sorted(block.begin(), block.end());
    std::sort(sorted.begin(), sorted.end());
    return {Codebook::nearest(learned_levels(sorted)), 0, true, {}};
  }

 private:
  // The quantile shape, rescaled as asked; the levels are what is stored, so they are rounded only once.
  std::vector<double> learned_levels(const std::vector<float>& sorted) const {
    std::vector<double> q = empirical_quantiles(sorted, k_);
    double qmax = 0;
    for (const double v : q)
      qmax = std::max(qmax, std::fabs(v));
    double s = 1;
    if (scale_ == Scale::absmax) {
      s = qmax == 0 ? 0
                    : std::max(std::fabs(double{sorted.front()}), std::fabs(double{sorted.back()})) / qmax;
    } else if (scale_ == Scale::mse) {
      s = detail::best_block_scale(sorted, q).scale;
    }
    if (s != 1) {
      for (double& v : q)
        v = std::clamp(v * s, -kFloatMax,
                       kFloatMax);  // stored as float32 (a rescaled outer level may overflow)
    }
    return q;
  }

  std::size_t k_;
  Scale scale_;
};

Scale parse_scale(const Params& p) {
  const std::string& s = p.text("scale");
  return s == "none" ? Scale::none : s == "absmax" ? Scale::absmax : s == "std" ? Scale::std : Scale::mse;
}

const char kMseHelp[] =
    "mse: the scale minimising the block's MSE, found exactly by sweeping the breakpoints of the piecewise-"
    "quadratic MSE(scale) (blocks with n*(K-1) > 2^22: a binned sweep, then the exact sweep near it)";

ParamSpec fixed_table_scale(const std::string& table_note) {
  return {
      "scale",
      ParamSpec::Kind::choice,
      "absmax",
      0,
      0,
      false,
      {"absmax", "std", "mse"},
      "one float32 scale per block. absmax: the largest |level| maps to max|w| of the block (bitsandbytes); "
      "std: sqrt(mean w^2) of the block times the scale that is MSE-optimal for this table on N(0,1)" +
          table_note + "; " + kMseHelp};
}

void require_k16(const Params& p, const BuildContext& ctx, const char* what) {
  if (ctx.k != 16) {
    throw NotApplicable(
        p.context() + ": " + what +
        " is a fixed 16-code table, so it needs K = 16 (bits = 4), not K = " + std::to_string(ctx.k));
  }
}

std::string multiplier_note(const std::vector<float>& table) {
  char buf[64];
  std::snprintf(buf, sizeof buf, " (here %.4f sigma)", gaussian_optimal_scale(table));
  return buf;
}

}  // namespace

std::span<const ParamSpec> nf4_params() {
  static const ParamSpec params[] = {fixed_table_scale(multiplier_note(nf4_table()))};
  return params;
}

std::unique_ptr<Quantizer> make_nf4(const Params& p, const BuildContext& ctx) {
  require_k16(p, ctx, "nf4");
  return std::make_unique<TableCodebook>(nf4_table(), parse_scale(p));
}

std::span<const ParamSpec> fp4_params() {
  static const ParamSpec params[] = {fixed_table_scale(multiplier_note(fp4_table()))};
  return params;
}

std::unique_ptr<Quantizer> make_fp4(const Params& p, const BuildContext& ctx) {
  require_k16(p, ctx, "fp4");
  return std::make_unique<TableCodebook>(fp4_table(), parse_scale(p));
}

std::span<const ParamSpec> normal_quantile_params() {
  static const ParamSpec params[] = {fixed_table_scale(" (computed once per K)")};
  return params;
}

std::unique_ptr<Quantizer> make_normal_quantile(const Params& p, const BuildContext& ctx) {
  if (ctx.k < 2) {
    throw NotApplicable(p.context() +
                        ": a zero-centred table needs K >= 2 (K = 1 is the single level 0), not K = " +
                        std::to_string(ctx.k));
  }
  return std::make_unique<TableCodebook>(normal_quantile_table(ctx.k), parse_scale(p));
}

std::span<const ParamSpec> quantile_params() {
  static const ParamSpec params[] = {
      {"scale",
       ParamSpec::Kind::choice,
       "none",
       0,
       0,
       false,
       {"none", "absmax", "mse"},
       std::string(
           "none: the empirical quantiles as they are; absmax: the quantile shape rescaled so its largest "
           "|level| is max|w|; ") +
           kMseHelp + ". The K levels are stored either way"},
  };
  return params;
}

std::unique_ptr<Quantizer> make_quantile(const Params& p, const BuildContext& ctx) {
  return std::make_unique<EmpiricalQuantile>(ctx.k, parse_scale(p));
}

}  // namespace sqb::quantizers
