// Lloyd-Max: a data-free minimum-MSE codebook of a continuous law (as TurboQuant, arXiv 2504.19874, uses for
// rotated coordinates, and any other law), rescaled per block. The table is a constant of the law (solved
// once per process, sqb::lloyd_max_solution); a block stores only what its rescaling takes from the data (its
// std and mean with sigma=data, nothing otherwise).

#include <algorithm>
#include <cmath>
#include <limits>

#include "quantizers/quantizers.hpp"
#include "sqb/error.hpp"
#include "sqb/lloyd_max.hpp"
#include "sqb/metrics.hpp"
#include "sqb/registry.hpp"

namespace sqb::quantizers {

namespace {

std::string side_text(const LloydMaxSetting& s) {
  std::string out;
  if (s.mean_from_data) out = "the block mean";
  if (s.sigma_from == LloydMaxSetting::Sigma::data)
    out += std::string(out.empty() ? "" : ", ") + "its RMS about it";
  return out.empty() ? "nothing (a fixed law: the table is a constant)" : out;
}

class LloydMax final : public Quantizer, public DesignsWithoutData {
 public:
  LloydMax(LloydMaxSetting setting, std::size_t k, unsigned bits)
      : Quantizer(k, {setting.side_floats(), side_text(setting)}),
        s_(std::move(setting)),
        k_(k),
        bits_(bits) {
    if (!s_.d_from_data)
      fixed_ = lloyd_max_solution(s_.law, bits_);  // solve now: a bad law fails at build time
  }

  BlockDesign design(std::span<const float> block, const BlockInfo&) const override {
    const std::size_t n = block.size();
    const Law law = s_.law_for(n);
    const std::shared_ptr<const LloydMaxSolution> sol = fixed_ ? fixed_ : lloyd_max_solution(law, bits_);
    double centre = s_.mean;
    if (s_.mean_from_data) {
      double sum = 0;
      for (const float v : block)
        sum += v;
      centre = sum / static_cast<double>(n);
    }
    double rms = 0;
    if (s_.sigma_from == LloydMaxSetting::Sigma::data) {
      double ss = 0;
      for (const float v : block)
        ss += (v - centre) * (v - centre);
      rms = std::sqrt(ss / static_cast<double>(n));
    }
    const double mult = s_.multiplier(law, n, rms);
    // Outer levels of a block whose spread is near FLT_MAX can lie beyond it; the float32 codebook keeps them
    // at the largest finite value (still sorted) instead of failing on an infinite level.
    constexpr double kMax = std::numeric_limits<float>::max();
    std::vector<double> levels(k_);
    for (std::size_t i = 0; i < k_; ++i)
      levels[i] = std::clamp(centre + mult * sol->levels[i], -kMax, kMax);
    std::vector<float> side;
    if (s_.mean_from_data) side.push_back(static_cast<float>(centre));
    if (s_.sigma_from == LloydMaxSetting::Sigma::data) side.push_back(static_cast<float>(rms));
    return {Codebook::nearest(levels), sol->iterations_total(), sol->converged, std::move(side)};
  }

  // The table as applied: centre + multiplier * levels; with sigma=data in units of the block's RMS (scaled)
  // and about a centre of 0 when the block mean is the centre.
  DataFreeCodebook data_free_codebook() const override {
    if (s_.d_from_data) {
      throw Error(
          s_.spec +
          ": parameter 'd' = data takes the dimension from each block, so there is no fixed table; give "
          "d=<int>");
    }
    const Law law = s_.law_for(0);
    const bool per_block_sigma = s_.sigma_from == LloydMaxSetting::Sigma::data;
    const double mult = per_block_sigma ? s_.scale / law.stddev() : s_.multiplier(law, 0, 0.0);
    const double centre = s_.mean_from_data ? 0.0 : s_.mean;
    DataFreeCodebook c;
    for (const double l : fixed_->levels)
      c.levels.push_back(centre + mult * l);
    for (const double t : fixed_->thresholds)
      c.boundaries.push_back(centre + mult * t);
    c.scaled = per_block_sigma;
    c.applied_as =
        std::string(per_block_sigma ? "in units of the block's RMS about its centre" : "as they are") +
        (s_.mean_from_data ? ", plus the block mean" : "");
    return c;
  }

 private:
  LloydMaxSetting s_;
  std::size_t k_;
  unsigned bits_;
  std::shared_ptr<const LloydMaxSolution> fixed_;
};

LloydMaxSetting resolve(const Params& p) {
  LloydMaxSetting s;
  const std::string& law = p.text("law");
  if (p.given("nu") && law != "student_t") p.fail("nu", "applies only to law=student_t");
  const bool d_given = p.given("d");
  const bool d_data = d_given && p.is("d", "data");
  const double d = d_given && !d_data ? static_cast<double>(p.integer("d")) : 0.0;
  s.scale = p.real("scale");
  if (law == "sphere") {
    if (!d_given) p.fail("d", "is required with law=sphere: d=<int> (the dimension, >= 2) or d=data");
    s.law = d_data ? Law::sphere(2) : Law::sphere(d);
    s.d_from_data = d_data;
    s.sigma_from = LloydMaxSetting::Sigma::natural;
  } else {
    if (law == "gaussian") s.law = Law::gaussian();
    if (law == "laplace") s.law = Law::laplace();
    if (law == "student_t") s.law = Law::student_t(p.given("nu") ? p.real("nu") : 3.0);
    if (d_given && p.given("sigma")) {
      p.fail("d", "sets sigma = 1/sqrt(d) for law=" + law + ": give d or sigma, not both");
    }
    if (d_data) {
      s.d_from_data = true;
      s.sigma_from = LloydMaxSetting::Sigma::inverse_sqrt_n;
    } else if (d_given) {
      s.sigma_from = LloydMaxSetting::Sigma::number;
      s.sigma = 1 / std::sqrt(d);
    } else {
      s.sigma_from = LloydMaxSetting::Sigma::data;
    }
  }
  if (p.given("sigma")) {
    if (p.is("sigma", "data")) {
      s.sigma_from = LloydMaxSetting::Sigma::data;
    } else {
      s.sigma_from = LloydMaxSetting::Sigma::number;
      s.sigma = p.real("sigma");
    }
  }
  if (p.given("mean")) {
    s.mean_from_data = p.is("mean", "data");
    if (!s.mean_from_data) s.mean = p.real("mean");
  } else {
    s.mean_from_data = s.sigma_from == LloydMaxSetting::Sigma::data;
  }
  return s;
}

}  // namespace

std::span<const ParamSpec> lloyd_max_params() {
  static const ParamSpec params[] = {
      {"law",
       ParamSpec::Kind::choice,
       "gaussian",
       0,
       0,
       false,
       {"gaussian", "sphere", "laplace", "student_t"},
       "gaussian N(0,1); sphere: one coordinate of a uniform unit vector in R^d ((1+x)/2 ~ Beta((d-1)/2, "
       "(d-1)/2)); laplace and student_t scaled to unit variance"},
      {"sigma",
       ParamSpec::Kind::real,
       "",
       0,
       1e30,
       true,
       {"data"},
       "std of the law: data = the block's (RMS deviation about the centre), or a number; unset: data, "
       "except "
       "law=sphere (its own 1/sqrt(d): unit vectors) and d=<int> (1/sqrt(d))"},
      {"d",
       ParamSpec::Kind::integer,
       "",
       2,
       1e9,
       false,
       {"data"},
       "law=sphere: the dimension (required); other laws: sigma = 1/sqrt(d). data = the block length (one "
       "vector per row with granularity=channel)"},
      {"nu",
       ParamSpec::Kind::real,
       "",
       2,
       1e6,
       true,
       {},
       "law=student_t: degrees of freedom (> 2, a finite variance is needed); unset: 3"},
      {"mean",
       ParamSpec::Kind::real,
       "",
       -1e30,
       1e30,
       false,
       {"data"},
       "centre of the codebook: data = the block mean, or a number; unset: data when sigma comes from the "
       "data, "
       "else 0"},
      {"scale",
       ParamSpec::Kind::real,
       "1",
       0,
       1e30,
       true,
       {},
       "multiplies the whole codebook (about the centre)"},
  };
  return params;
}

std::unique_ptr<Quantizer> make_lloyd_max(const Params& p, const BuildContext& ctx) {
  LloydMaxSetting s = resolve(p);
  s.spec = p.context();
  const std::size_t k = ctx.k;
  const unsigned bits = index_bits(k);
  if ((std::size_t{1} << bits) != k || bits < 1 || bits > 16) {
    throw NotApplicable(p.context() + ": a Lloyd-Max codebook has K = 2^b levels with b in 1..16, not K = " +
                        std::to_string(k));
  }
  return std::make_unique<LloydMax>(std::move(s), k, bits);
}

}  // namespace sqb::quantizers

namespace sqb {

bool names_lloyd_max(std::string_view spec) {
  const SpecText text = SpecText::parse(spec, "quantizer");
  return find_quantizer(text.name).make == &quantizers::make_lloyd_max;
}

LloydMaxSetting parse_lloyd_max_spec(const std::string& spec) {
  const SpecText text = SpecText::parse(spec, "quantizer");
  const QuantizerEntry& entry = find_quantizer(text.name);
  if (entry.make != &quantizers::make_lloyd_max) {
    std::string name = "?";
    for (const QuantizerEntry& e : quantizer_registry()) {
      if (e.make == &quantizers::make_lloyd_max) name = e.name;
    }
    throw Error("quantizer \"" + text.canonical() + "\": '" + text.name +
                "' does not design a codebook from a law; give a '" + name + "' spec");
  }
  const Params params(entry.params, text.args, "quantizer \"" + text.canonical() + "\"");
  LloydMaxSetting s = quantizers::resolve(params);
  s.spec = params.context();
  return s;
}

}  // namespace sqb
