// The file sources' shared part: layout, non-finite values, scale, weights and subsampling of a tensor read
// from a file (npy.cpp and safetensors.cpp read it).

#include "sources/file_source.hpp"

#include <algorithm>
#include <boost/random/mersenne_twister.hpp>
#include <boost/random/uniform_int_distribution.hpp>
#include <cmath>
#include <sstream>

#include "sqb/error.hpp"
#include "sqb/layout.hpp"

namespace sqb::sources {

namespace fs = std::filesystem;

namespace {

// |x| from which a double rounds to Inf in float32 (FLT_MAX + half an ulp).
const double kFloatOverflow = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);

}  // namespace

fs::path resolve(const fs::path& p, const fs::path& base) {
  return p.is_absolute() || base.empty() ? p : base / p;
}

void FileSource::open() {
  const Loaded l = load();
  rows_ = l.tensor.rows;
  cols_ = l.tensor.cols;
  dropped_ = l.dropped;
  weighted_ = !l.tensor.weights.empty() || s_.weight_rule.has_value();
}

void FileSource::check_n(std::size_t n) const {
  const std::size_t size = rows_ * cols_;
  if (n > size) {
    throw Error(s_.context + ": n = " + std::to_string(n) + " is more than the " + std::to_string(size) +
                " values of " + what() + " (" + std::to_string(rows_) + " x " + std::to_string(cols_) +
                "); a file is never padded: use n <= " + std::to_string(size) +
                " (n = " + std::to_string(size) + " is the whole file)");
  }
}

DrawShape FileSource::shape(std::size_t n) const {
  check_n(n);
  const std::size_t size = rows_ * cols_;
  DrawShape s{rows_, cols_, size, weighted_};
  if (n == kWholeFile || n == size) return s;
  // As subsample() lays it out: n / cols whole rows when n is a multiple of the row length, else one row.
  if (rows_ > 1 && cols_ > 0 && n % cols_ == 0) {
    s.rows = n / cols_;
  } else {
    s.rows = 1;
    s.cols = n;
  }
  return s;
}

Tensor FileSource::draw(std::size_t n, std::uint64_t seed) const {
  check_n(n);
  Loaded l = load();
  if (l.tensor.rows != rows_ || l.tensor.cols != cols_ || l.dropped != dropped_) {
    throw Error(s_.context + ": " + what() + " changed while the sweep was running");
  }
  if (s_.weight_rule) apply_weight_rule(l.tensor, *s_.weight_rule, seed);
  if (n == kWholeFile || n == l.tensor.size()) return std::move(l.tensor);
  return subsample(l.tensor, n, seed);
}

std::vector<Col> FileSource::data_columns() const {
  if (!s_.drop_nonfinite) return {};
  return {Col::dropped_nonfinite};
}
std::vector<double> FileSource::describe_data() const {
  if (!s_.drop_nonfinite) return {};
  return {static_cast<double>(dropped_)};
}

// Every message names the spec (the readers' already name the file).
FileSource::Loaded FileSource::load() const {
  try {
    return load_unwrapped();
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with(s_.context)) throw;
    throw Error(s_.context + ": " + e.what());
  }
}

Layout FileSource::layout_for(const std::vector<std::size_t>& shape) const {
  std::string word = s_.layout;
  if (is_layout_rules(word)) word = pick_layout(word, rule_name(), what());
  if (word == "auto") return auto_layout(layout_name(), shape, framework(), what());
  return *layout_named(word);
}

FileSource::Loaded FileSource::load_unwrapped() const {
  FileTensor a = read();
  const Layout layout = layout_for(a.shape);
  Loaded out;
  std::size_t bad = 0, first = 0;
  for (std::size_t i = a.values.size(); i-- > 0;) {
    if (!std::isfinite(a.values[i])) {
      ++bad;
      first = i;
    }
  }
  if (bad > 0 && !s_.drop_nonfinite) {
    std::vector<std::size_t> idx(a.shape.size());
    std::size_t flat = first;
    for (std::size_t k = a.shape.size(); k-- > 0;) {
      idx[k] = flat % a.shape[k];
      flat /= a.shape[k];
    }
    const float v = a.values[first];
    throw Error(what() + ": " + std::to_string(bad) + " non-finite value" + (bad == 1 ? "" : "s") +
                " (NaN or +-Inf) among " + std::to_string(a.values.size()) + "; the first is " +
                (std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf")) + " at index " + npy::shape_text(idx) +
                " (flat " + std::to_string(first) + "); add nonfinite=drop to drop them");
  }
  if (bad == a.values.size()) {
    throw Error(what() + ": all " + std::to_string(bad) + " values are NaN or +-Inf; nothing is left");
  }
  out.tensor = to_tensor(a.shape, a.values, layout, what());
  std::vector<float> w = read_weights(a.shape);
  a.values = {};
  if (!w.empty()) {
    Tensor wt = to_tensor(a.shape, w, layout, what() + " weights");
    for (std::size_t i = 0; i < wt.size(); ++i) {
      if (!(wt.values[i] >= 0) || !std::isfinite(wt.values[i])) {
        throw Error(what() + ": the importance weight at flat index " + std::to_string(i) +
                    " (laid out) is " + std::to_string(wt.values[i]) +
                    "; importance weights must be finite and >= 0");
      }
    }
    out.tensor.weights = std::move(wt.values);
  }
  if (bad > 0) {
    // Dropping values from a rows x cols tensor breaks its rectangle, so the kept values (in the tensor's
    // row-major order) become one row; the rows/cols columns of the results show it. Their weights go too.
    std::vector<float> kept, kept_w;
    kept.reserve(out.tensor.size() - bad);
    for (std::size_t i = 0; i < out.tensor.size(); ++i) {
      if (!std::isfinite(out.tensor.values[i])) continue;
      kept.push_back(out.tensor.values[i]);
      if (!out.tensor.weights.empty()) kept_w.push_back(out.tensor.weights[i]);
    }
    const std::size_t n = kept.size();
    out.tensor = Tensor(1, n, std::move(kept));
    out.tensor.weights = std::move(kept_w);
    out.dropped = bad;
  }
  if (s_.scale != 1.0) {
    for (std::size_t i = 0; i < out.tensor.size(); ++i) {
      const double v = static_cast<double>(out.tensor.values[i]) * s_.scale;
      if (std::fabs(v) >= kFloatOverflow) {
        std::ostringstream msg;
        msg.precision(9);
        msg << s_.context << ": scale=" << s_.scale << " takes the value " << out.tensor.values[i]
            << " at row " << i / out.tensor.cols << ", col " << i % out.tensor.cols
            << " beyond float32's range";
        throw Error(msg.str());
      }
      out.tensor.values[i] = static_cast<float>(v);
    }
  }
  return out;
}

// n of the tensor's values, chosen by the seed: whole rows when n is a multiple of the row length (so
// granularity=channel still means output channels), else single values as one row. Either way each subset of
// that size is equally likely (selection sampling, Knuth's Algorithm S) and the chosen rows or values keep
// their order in the file.
Tensor FileSource::subsample(const Tensor& t, std::size_t n, std::uint64_t seed) {
  boost::random::mt19937_64 gen(seed);
  const auto pick = [&gen](std::size_t total, std::size_t want, auto&& take) {
    std::size_t left = want;
    for (std::size_t i = 0; i < total && left > 0; ++i) {
      boost::random::uniform_int_distribution<std::size_t> u(0, total - i - 1);
      if (u(gen) < left) {
        take(i);
        --left;
      }
    }
  };
  const bool weighted = !t.weights.empty();
  if (t.rows > 1 && n % t.cols == 0) {
    Tensor out(n / t.cols, t.cols);
    if (weighted) out.weights.resize(out.size());
    std::size_t r_out = 0;
    pick(t.rows, n / t.cols, [&](std::size_t r) {
      std::copy(t.row(r).begin(), t.row(r).end(), out.row(r_out).begin());
      if (weighted) {
        std::copy_n(t.weights.begin() + static_cast<std::ptrdiff_t>(r * t.cols), t.cols,
                    out.weights.begin() + static_cast<std::ptrdiff_t>(r_out * t.cols));
      }
      ++r_out;
    });
    return out;
  }
  Tensor out(1, n);
  if (weighted) out.weights.resize(n);
  std::size_t at = 0;
  pick(t.size(), n, [&](std::size_t i) {
    if (weighted) out.weights[at] = t.weights[i];
    out.values[at++] = t.values[i];
  });
  return out;
}

FileSettings file_settings(const Params& p, const SourceContext& ctx, fs::path& weights_file) {
  FileSettings s;
  s.layout = p.text("layout");
  // Rules and words are checked now, against no name: a typo fails when the spec is built, not per tensor.
  try {
    check_layout(s.layout);
  } catch (const Error& e) {
    p.fail("layout", e.what());
  }
  s.scale = p.real("scale");
  s.drop_nonfinite = p.is("nonfinite", "drop");
  s.context = p.context();
  if (p.given("weights")) {
    s.weight_rule = weight_rule(p.text("weights"));
    if (!s.weight_rule) weights_file = resolve(p.text("weights"), ctx.base_dir);
  }
  return s;
}

std::vector<ParamSpec> file_params(std::string_view weights_help) {
  ParamSpec weights = weights_param(true);
  weights.help += weights_help;
  return {
      {"layout",
       ParamSpec::Kind::text,
       "rows",
       0,
       0,
       false,
       {},
       "rows = output channels: rows (first axis, rest flattened), oihw (PyTorch [out,in,kh,kw]: first "
       "axis), "
       "hwio (TensorFlow [kh,kw,in,out]: last axis, rows in PyTorch order), auto (from the file's framework, "
       "the name and the shape; an error when they do not tell), or rules PATTERN:LAYOUT,...,LAYOUT matched "
       "in order against each file or tensor name"},
      {"scale", ParamSpec::Kind::real, "1", 0, 1e30, true, {}, "multiply every value by this (> 0)"},
      {"nonfinite",
       ParamSpec::Kind::choice,
       "error",
       0,
       0,
       false,
       {"error", "drop"},
       "NaN/+-Inf: error (count and first index) or drop (the rest becomes one row; column "
       "dropped_nonfinite)"},
      weights,
      label_param(),
  };
}

void narrow_layout(SpecText& spec, std::string_view name, std::string_view what) {
  for (auto& [key, value] : spec.args) {
    if (key == "layout" && is_layout_rules(value)) value = pick_layout(value, name, what);
  }
}

}  // namespace sqb::sources
