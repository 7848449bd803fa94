// Data sources for sweeps: the synthetic laws, and the one table naming every source.

#include "sqb/source.hpp"

#include <algorithm>
#include <boost/random/laplace_distribution.hpp>
#include <boost/random/mersenne_twister.hpp>
#include <boost/random/normal_distribution.hpp>
#include <boost/random/student_t_distribution.hpp>
#include <boost/random/uniform_real_distribution.hpp>
#include <cmath>
#include <limits>

#include "sources/sources.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"

namespace sqb {

namespace {

constexpr std::string_view kAllIsForFiles =
    "n = all (every value of a file) is for file sources (npy, safetensors); a synthetic law needs n = a "
    "number "
    "of values";

// Boost.Random's engines and distributions are header code with a fixed algorithm (the normal law is Boost's
// ziggurat), so a seed gives the same numbers with any standard library; std:: distributions do not.
template <class Dist>
class Synthetic final : public Source {
 public:
  Synthetic(Dist dist, std::size_t rows, std::optional<sources::WeightRule> weights, std::string context)
      : dist_(dist), rows_(rows), weights_(weights), context_(std::move(context)) {}

  void check_n(std::size_t n) const override {
    if (n == kWholeFile) throw Error(context_ + ": " + std::string(kAllIsForFiles));
    if (n % rows_ != 0) {
      throw Error(context_ + ": n = " + std::to_string(n) +
                  " is not a multiple of rows = " + std::to_string(rows_));
    }
  }

  DrawShape shape(std::size_t n) const override {
    check_n(n);
    return {rows_, n / rows_, 0, weights_.has_value()};
  }

  Tensor draw(std::size_t n, std::uint64_t seed) const override {
    check_n(n);
    boost::random::mt19937_64 gen(seed);
    Dist dist = dist_;
    Tensor t(rows_, n / rows_);
    for (float& v : t.values)
      v = static_cast<float>(dist(gen));
    if (weights_) sources::apply_weight_rule(t, *weights_, seed);
    return t;
  }

 private:
  Dist dist_;
  std::size_t rows_;
  std::optional<sources::WeightRule> weights_;
  std::string context_;
};

const ParamSpec kRows{"rows", ParamSpec::Kind::integer,
                      "1",    1,
                      1e9,    false,
                      {},     "rows of the tensor (n / rows columns each); granularity=channel is per row"};

const ParamSpec kWeights = sources::weights_param(false);
const ParamSpec kLabel = sources::label_param();

template <class Dist>
std::unique_ptr<Source> synthetic(const Params& p, Dist dist) {
  std::optional<sources::WeightRule> rule;
  if (p.given("weights")) rule = sources::weight_rule(p.text("weights"));
  return std::make_unique<Synthetic<Dist>>(dist, static_cast<std::size_t>(p.integer("rows")), rule,
                                           p.context());
}

std::span<const ParamSpec> gaussian_params() {
  static const ParamSpec params[] = {
      {"mean", ParamSpec::Kind::real, "0", -1e30, 1e30, false, {}, "mean"},
      {"std", ParamSpec::Kind::real, "1", 0, 1e30, true, {}, "standard deviation (> 0)"},
      kRows,
      kWeights,
      kLabel,
  };
  return params;
}
std::unique_ptr<Source> make_gaussian(const Params& p, const SourceContext&) {
  return synthetic(p, boost::random::normal_distribution<double>(p.real("mean"), p.real("std")));
}

std::span<const ParamSpec> uniform_params() {
  static const ParamSpec params[] = {
      {"lo", ParamSpec::Kind::real, "-1", -1e30, 1e30, false, {}, "lower end"},
      {"hi", ParamSpec::Kind::real, "1", -1e30, 1e30, false, {}, "upper end (> lo)"},
      kRows,
      kWeights,
      kLabel,
  };
  return params;
}
std::unique_ptr<Source> make_uniform(const Params& p, const SourceContext&) {
  if (!(p.real("hi") > p.real("lo"))) p.fail("hi", "must be greater than lo");
  return synthetic(p, boost::random::uniform_real_distribution<double>(p.real("lo"), p.real("hi")));
}

std::span<const ParamSpec> laplace_params() {
  static const ParamSpec params[] = {
      {"scale", ParamSpec::Kind::real, "1", 0, 1e30, true, {}, "scale b (> 0); variance 2 b^2"},
      kRows,
      kWeights,
      kLabel,
  };
  return params;
}
std::unique_ptr<Source> make_laplace(const Params& p, const SourceContext&) {
  return synthetic(p, boost::random::laplace_distribution<double>(0.0, p.real("scale")));
}

std::span<const ParamSpec> student_t_params() {
  static const ParamSpec params[] = {
      {"nu",
       ParamSpec::Kind::real,
       "3",
       0,
       1e6,
       true,
       {},
       "degrees of freedom (> 0); heavy tails for small nu"},
      kRows,
      kWeights,
      kLabel,
  };
  return params;
}
std::unique_ptr<Source> make_student_t(const Params& p, const SourceContext&) {
  return synthetic(p, boost::random::student_t_distribution<double>(p.real("nu")));
}

// clang-format off
const SourceEntry kSources[] = {
    {"gaussian", "normal law N(mean, std^2)", gaussian_params(), make_gaussian, nullptr},
    {"uniform", "uniform on [lo, hi]", uniform_params(), make_uniform, nullptr},
    {"laplace", "Laplace law, mean 0, scale b", laplace_params(), make_laplace, nullptr},
    {"student_t", "Student's t with nu degrees of freedom (unscaled)", student_t_params(), make_student_t, nullptr},
    {"npy", "a tensor read from a NumPy .npy file; a smaller n takes a seeded subsample (never padded)", sources::npy_params(), sources::make_npy, sources::expand_npy},
    {"safetensors", "a tensor of a safetensors checkpoint (F32, F16, BF16, F64; memory-mapped, sharded via .index.json); a smaller n takes a seeded subsample", sources::safetensors_params(), sources::make_safetensors, sources::expand_safetensors},
    {"rotated", "unit vectors in R^d (one per row) after a Haar-random rotation (TurboQuant); adds its Theorem 1/2 columns", sources::rotated_params(), sources::make_rotated, nullptr},
};
// clang-format on

}  // namespace

namespace sources {

ParamSpec weights_param(bool files_allowed) {
  return {"weights",
          files_allowed ? ParamSpec::Kind::text : ParamSpec::Kind::choice,
          "",
          0,
          0,
          false,
          files_allowed ? std::vector<std::string>{} : std::vector<std::string>{"square", "lognormal"},
          std::string(
              "importance weights for the quantizers that honour them and the wmse column: square "
              "(w = x^2), lognormal (w = exp(z), z ~ N(0,1) from the seed: heavy-tailed, unrelated to x)") +
              (files_allowed ? ", or a .npy file of the same shape (relative to the config's folder)" : "")};
}

ParamSpec label_param() {
  return {
      "label",
      ParamSpec::Kind::text,
      "",
      0,
      0,
      false,
      {},
      "a short name for tables and plots (the results' distribution column; the full spec is in the source "
      "column); default: the file's stem (npy), the tensor's name (safetensors), else the spec itself. {} "
      "in it stands for the default (label=base:{} on a glob)"};
}

std::optional<WeightRule> weight_rule(std::string_view text) {
  if (text == "square") return WeightRule::square;
  if (text == "lognormal") return WeightRule::lognormal;
  return std::nullopt;
}

void apply_weight_rule(Tensor& t, WeightRule rule, std::uint64_t seed) {
  t.weights.resize(t.values.size());
  if (rule == WeightRule::square) {
    // In double, saturating at FLT_MAX: the square of |x| > 1.8e19 does not fit a float32.
    constexpr double kMax = std::numeric_limits<float>::max();
    for (std::size_t i = 0; i < t.values.size(); ++i)
      t.weights[i] = static_cast<float>(std::min(static_cast<double>(t.values[i]) * t.values[i], kMax));
    return;
  }
  // Its own stream (block_seed(seed, 7)), so asking for weights does not change the data drawn from seed.
  boost::random::mt19937_64 gen(block_seed(seed, 7));
  boost::random::normal_distribution<double> z;
  for (float& w : t.weights)
    w = static_cast<float>(std::exp(z(gen)));
}

}  // namespace sources

std::span<const SourceEntry> source_registry() {
  return kSources;
}

const SourceEntry& find_source(std::string_view name) {
  std::string names;
  for (const SourceEntry& e : kSources) {
    if (e.name == name) return e;
    names += (names.empty() ? "" : ", ") + std::string(e.name);
  }
  throw Error("unknown distribution '" + std::string(name) + "'; valid distributions: " + names);
}

std::unique_ptr<Source> make_source(std::string_view spec, const SourceContext& ctx) {
  const SpecText text = SpecText::parse(spec, "distribution");
  const SourceEntry& entry = find_source(text.name);
  const Params params(entry.params, text.args, "distribution \"" + text.canonical() + "\"");
  return entry.make(params, ctx);
}

std::vector<SourceSpec> expand_source_spec(std::string_view spec, const SourceContext& ctx) {
  SpecText text = SpecText::parse(spec, "distribution");
  const SourceEntry& entry = find_source(text.name);
  std::optional<std::string> label;
  for (auto it = text.args.begin(); it != text.args.end(); ++it) {
    if (it->first != "label") continue;
    label = it->second;
    text.args.erase(it);
    break;
  }
  std::vector<SourceSpec> out;
  if (entry.expand != nullptr) {
    out = entry.expand(text, ctx);
  } else {
    out.push_back({text.canonical(), text.canonical()});
  }
  if (label) {
    for (SourceSpec& s : out) {
      std::string l = *label;
      for (std::size_t at = l.find("{}"); at != std::string::npos; at = l.find("{}", at + s.label.size()))
        l.replace(at, 2, s.label);
      s.label = std::move(l);
    }
  }
  return out;
}

}  // namespace sqb
