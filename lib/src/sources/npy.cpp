// The `npy` source: a real tensor from a .npy file, laid out as rows = output channels, optionally
// scaled, with a policy for non-finite values and a deterministic subsample for n below the file's size.

#include "sources/sources.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <boost/random/mersenne_twister.hpp>
#include <boost/random/uniform_int_distribution.hpp>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>

#include "sqb/error.hpp"
#include "sqb/npy.hpp"

namespace sqb {

namespace fs = std::filesystem;

namespace {

// |x| from which a double rounds to Inf in float32 (FLT_MAX + half an ulp).
const double kFloatOverflow = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);

struct Loaded {
  Tensor tensor;
  std::size_t dropped = 0;
};

class NpySource final : public Source, public DescribesData {
 public:
  NpySource(fs::path file, npy::Layout layout, double scale, bool drop,
            std::optional<sources::WeightRule> rule, fs::path weights_file, std::string context)
      : file_(std::move(file)),
        layout_(layout),
        scale_(scale),
        drop_(drop),
        rule_(rule),
        weights_file_(std::move(weights_file)),
        context_(std::move(context)) {
    // Read and check everything once while the sweep is planned, so a bad file fails before any work. The
    // tensor is not kept: a sweep over a folder of real weights would otherwise hold all of them at once.
    const Loaded l = load();
    rows_ = l.tensor.rows;
    cols_ = l.tensor.cols;
    dropped_ = l.dropped;
  }

  void check_n(std::size_t n) const override {
    const std::size_t size = rows_ * cols_;
    if (n > size) {
      throw Error(context_ + ": n = " + std::to_string(n) + " is more than the " + std::to_string(size) +
                  " values of " + file_.string() + " (" + std::to_string(rows_) + " x " +
                  std::to_string(cols_) + "); a file is never padded: use n <= " + std::to_string(size) +
                  " (n = " + std::to_string(size) + " is the whole file)");
    }
  }

  Tensor draw(std::size_t n, std::uint64_t seed) const override {
    check_n(n);
    Loaded l = load();
    if (l.tensor.rows != rows_ || l.tensor.cols != cols_ || l.dropped != dropped_) {
      throw Error(context_ + ": " + file_.string() + " changed while the sweep was running");
    }
    if (rule_) sources::apply_weight_rule(l.tensor, *rule_, seed);
    if (n == kWholeFile || n == l.tensor.size()) return std::move(l.tensor);
    return subsample(l.tensor, n, seed);
  }

  std::vector<Col> data_columns() const override {
    if (!drop_) return {};
    return {Col::dropped_nonfinite};
  }
  std::vector<double> describe_data() const override {
    if (!drop_) return {};
    return {static_cast<double>(dropped_)};
  }

 private:
  // Every message names the spec (the reader's already name the file).
  Loaded load() const {
    try {
      return load_unwrapped();
    } catch (const Error& e) {
      if (std::string_view(e.what()).starts_with(context_)) throw;
      throw Error(context_ + ": " + e.what());
    }
  }

  Loaded load_unwrapped() const {
    npy::Array a = npy::read(file_);
    if (!npy::is_floating(a.format.dtype)) {
      // Integer tensors (e.g. quantized weights) convert exactly while |v| <= 2^24.
      a.values.resize(a.ints.size());
      for (std::size_t i = 0; i < a.ints.size(); ++i) {
        if (std::abs(static_cast<std::int64_t>(a.ints[i])) > (std::int64_t{1} << 24)) {
          throw Error(file_.string() + ": int32 value " + std::to_string(a.ints[i]) + " at flat index " +
                      std::to_string(i) + " is not exactly representable as float32 (|v| <= 16777216)");
        }
        a.values[i] = static_cast<float>(a.ints[i]);
      }
      a.ints.clear();
    }
    Loaded out;
    std::size_t bad = 0, first = 0;
    for (std::size_t i = a.values.size(); i-- > 0;) {
      if (!std::isfinite(a.values[i])) {
        ++bad;
        first = i;
      }
    }
    if (bad > 0 && !drop_) {
      std::vector<std::size_t> idx(a.shape.size());
      std::size_t flat = first;
      for (std::size_t k = a.shape.size(); k-- > 0;) {
        idx[k] = flat % a.shape[k];
        flat /= a.shape[k];
      }
      const float v = a.values[first];
      throw Error(file_.string() + ": " + std::to_string(bad) + " non-finite value" + (bad == 1 ? "" : "s") +
                  " (NaN or +-Inf) among " + std::to_string(a.values.size()) + "; the first is " +
                  (std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf")) + " at index " + npy::shape_text(idx) +
                  " (flat " + std::to_string(first) + "); add nonfinite=drop to drop them");
    }
    if (bad == a.values.size()) {
      throw Error(file_.string() + ": all " + std::to_string(bad) +
                  " values are NaN or +-Inf; nothing is left");
    }
    out.tensor = npy::to_tensor(a.shape, a.values, layout_, file_.string());
    if (!weights_file_.empty()) out.tensor.weights = load_weights(a.shape);
    a.values = {};
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
    if (scale_ != 1.0) {
      for (std::size_t i = 0; i < out.tensor.size(); ++i) {
        const double v = static_cast<double>(out.tensor.values[i]) * scale_;
        if (std::fabs(v) >= kFloatOverflow) {
          std::ostringstream msg;
          msg.precision(9);
          msg << context_ << ": scale=" << scale_ << " takes the value " << out.tensor.values[i] << " at row "
              << i / out.tensor.cols << ", col " << i % out.tensor.cols << " beyond float32's range";
          throw Error(msg.str());
        }
        out.tensor.values[i] = static_cast<float>(v);
      }
    }
    return out;
  }

  // The weights file: the data file's shape, laid out the same way; finite and >= 0.
  std::vector<float> load_weights(const std::vector<std::size_t>& shape) const {
    const npy::Array w = npy::read(weights_file_);
    if (w.shape != shape) {
      throw Error(weights_file_.string() + ": weights of shape " + npy::shape_text(w.shape) +
                  " for data of shape " + npy::shape_text(shape) + " (" + file_.string() +
                  "); they must match");
    }
    if (!npy::is_floating(w.format.dtype)) {
      throw Error(weights_file_.string() + ": holds " + std::string(npy::dtype_name(w.format.dtype)) +
                  " values; weights are float16/float32/float64");
    }
    Tensor t = npy::to_tensor(w.shape, w.values, layout_, weights_file_.string());
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (!(t.values[i] >= 0) || !std::isfinite(t.values[i])) {
        throw Error(weights_file_.string() + ": the weight at flat index " + std::to_string(i) +
                    " (laid out) is " + std::to_string(t.values[i]) +
                    "; importance weights must be finite and >= 0");
      }
    }
    return std::move(t.values);
  }

  // n of the tensor's values, chosen by the seed: whole rows when n is a multiple of the row length (so
  // granularity=channel still means output channels), else single values as one row. Either way each
  // subset of that size is equally likely (selection sampling, Knuth's Algorithm S) and the chosen rows or
  // values keep their order in the file.
  static Tensor subsample(const Tensor& t, std::size_t n, std::uint64_t seed) {
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

  fs::path file_;
  npy::Layout layout_;
  double scale_;
  bool drop_;
  std::optional<sources::WeightRule> rule_;
  fs::path weights_file_;
  std::string context_;
  std::size_t rows_ = 0, cols_ = 0, dropped_ = 0;
};

fs::path resolve(const fs::path& p, const fs::path& base) {
  return p.is_absolute() || base.empty() ? p : base / p;
}

}  // namespace

namespace sources {

std::span<const ParamSpec> npy_params() {
  static const ParamSpec params[] = {
      {"path", ParamSpec::Kind::text, "", 0, 0, false, {}, "the .npy file, relative to the config's folder"},
      {"glob",
       ParamSpec::Kind::text,
       "",
       0,
       0,
       false,
       {},
       "DIR/*.npy instead of path=: one distribution per matching file (sorted), expanded when the config is "
       "read"},
      {"layout",
       ParamSpec::Kind::choice,
       "rows",
       0,
       0,
       false,
       {"rows", "oihw", "hwio"},
       "rows = output channels: rows (first axis, rest flattened), oihw (PyTorch [out,in,kh,kw]: first "
       "axis), "
       "hwio (TensorFlow [kh,kw,in,out]: last axis, rows in PyTorch order)"},
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
      weights_param(true),
  };
  return params;
}

std::unique_ptr<Source> make_npy(const Params& p, const SourceContext& ctx) {
  if (p.given("glob")) {
    p.fail("glob",
           "lists files; the config loader expands it into one distribution per file (sqb::expand_npy_glob), "
           "and this spec reached the data source unexpanded: give path=FILE");
  }
  if (!p.given("path")) p.fail("path", "is required: the .npy file to read (or glob=DIR/*.npy in a config)");
  const npy::Layout layout = p.is("layout", "oihw")   ? npy::Layout::oihw
                             : p.is("layout", "hwio") ? npy::Layout::hwio
                                                      : npy::Layout::rows;
  const fs::path file = resolve(p.text("path"), ctx.base_dir);
  std::optional<WeightRule> rule;
  fs::path weights_file;
  if (p.given("weights")) {
    rule = weight_rule(p.text("weights"));
    if (!rule) weights_file = resolve(p.text("weights"), ctx.base_dir);
  }
  return std::make_unique<NpySource>(file, layout, p.real("scale"), p.is("nonfinite", "drop"), rule,
                                     weights_file, p.context());
}

}  // namespace sources

std::vector<std::string> expand_npy_glob(std::string_view spec, const fs::path& base_dir) {
  const SpecText text = SpecText::parse(spec, "distribution");
  const auto glob =
      std::find_if(text.args.begin(), text.args.end(), [](const auto& kv) { return kv.first == "glob"; });
  if (text.name != "npy" || glob == text.args.end()) return {std::string(spec)};
  const std::string context = "distribution \"" + text.canonical() + "\"";
  for (const auto& [k, v] : text.args) {
    if (k == "path") throw Error(context + ": give path= or glob=, not both");
  }
  const std::string& pattern = glob->second;
  const auto slash = pattern.rfind('/');
  const std::string dir_text = slash == std::string::npos ? "" : pattern.substr(0, slash + 1);
  const std::string name_pattern = slash == std::string::npos ? pattern : pattern.substr(slash + 1);
  if (dir_text.find_first_of("*?[") != std::string::npos) {
    throw Error(context + ": glob '" + pattern +
                "': wildcards are allowed in the file name only (e.g. DIR/*.npy)");
  }
  if (name_pattern.empty()) {
    throw Error(context + ": glob '" + pattern + "' names a folder; add a file pattern, e.g. " + pattern +
                "*.npy");
  }
  const fs::path dir = resolve(dir_text.empty() ? fs::path(".") : fs::path(dir_text), base_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error(context + ": glob '" + pattern + "': the folder " + dir.string() + " does not exist");
  }
  std::vector<std::string> names;
  try {
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (::fnmatch(name_pattern.c_str(), name.c_str(), FNM_PERIOD) != 0) continue;
      if (!e.is_regular_file(ec)) continue;  // follows links; folders and devices never match
      if (name.find_first_of(" \t\r\n") != std::string::npos) {
        throw Error(context + ": glob '" + pattern + "' matches '" + name +
                    "', whose name holds a blank; a spec value cannot (rename the file)");
      }
      names.push_back(name);
    }
  } catch (const fs::filesystem_error& e) {
    throw Error(context + ": glob '" + pattern + "': cannot list " + dir.string() + " (" +
                e.code().message() + ")");
  }
  if (names.empty()) {
    throw Error(context + ": glob '" + pattern + "' matches no file in " + dir.string());
  }
  std::sort(names.begin(), names.end());
  std::vector<std::string> out;
  for (const std::string& name : names) {
    SpecText one = text;
    for (auto& kv : one.args) {
      if (kv.first == "glob") kv = {"path", dir_text + name};
    }
    out.push_back(one.canonical());
  }
  return out;
}

}  // namespace sqb
