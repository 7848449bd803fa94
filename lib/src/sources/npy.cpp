// The `npy` source: a real tensor from a .npy file, laid out as rows = output channels, optionally
// scaled, with a policy for non-finite values and a deterministic subsample for n below the file's size.

#include <fnmatch.h>

#include <algorithm>
#include <cmath>

#include "sources/file_source.hpp"
#include "sources/sources.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"

namespace sqb {

namespace fs = std::filesystem;

namespace {

class NpySource final : public sources::FileSource {
 public:
  NpySource(fs::path file, fs::path weights_file, sources::FileSettings settings)
      : FileSource(std::move(settings)), file_(std::move(file)), weights_file_(std::move(weights_file)) {
    open();
  }

 private:
  sources::FileTensor read() const override {
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
    return {std::move(a.shape), std::move(a.values)};
  }

  // The weights file: the data file's shape (laid out the same way by the caller).
  std::vector<float> read_weights(const std::vector<std::size_t>& shape) const override {
    if (weights_file_.empty()) return {};
    npy::Array w = npy::read(weights_file_);
    if (w.shape != shape) {
      throw Error(weights_file_.string() + ": weights of shape " + npy::shape_text(w.shape) +
                  " for data of shape " + npy::shape_text(shape) + " (" + file_.string() +
                  "); they must match");
    }
    if (!npy::is_floating(w.format.dtype)) {
      throw Error(weights_file_.string() + ": holds " + std::string(npy::dtype_name(w.format.dtype)) +
                  " values; weights are float16/float32/float64");
    }
    return std::move(w.values);
  }

  // layout=auto reads the file's stem (`layer1.conv1.weight` from `layer1.conv1.weight.npy`, as
  // docs/checkpoints.md's state_dict dump names them); rules match the whole file name.
  std::string layout_name() const override { return file_.stem().string(); }
  std::string rule_name() const override { return file_.filename().string(); }
  std::string what() const override { return file_.string(); }

  fs::path file_;
  fs::path weights_file_;
};

}  // namespace

namespace sources {

std::span<const ParamSpec> npy_params() {
  static const std::vector<ParamSpec> params = [] {
    std::vector<ParamSpec> p = {
        {"path",
         ParamSpec::Kind::text,
         "",
         0,
         0,
         false,
         {},
         "the .npy file, relative to the config's folder"},
        {"glob",
         ParamSpec::Kind::text,
         "",
         0,
         0,
         false,
         {},
         "DIR/*.npy instead of path=: one distribution per matching file (sorted), expanded when the config "
         "is "
         "read"},
    };
    for (ParamSpec& f : file_params(""))
      p.push_back(std::move(f));
    return p;
  }();
  return params;
}

std::unique_ptr<Source> make_npy(const Params& p, const SourceContext& ctx) {
  if (p.given("glob")) {
    p.fail("glob",
           "lists files; the config loader expands it into one distribution per file "
           "(sqb::expand_source_spec), and this spec reached the data source unexpanded: give path=FILE");
  }
  if (!p.given("path")) p.fail("path", "is required: the .npy file to read (or glob=DIR/*.npy in a config)");
  fs::path weights_file;
  FileSettings settings = file_settings(p, ctx, weights_file);
  return std::make_unique<NpySource>(resolve(p.text("path"), ctx.base_dir), weights_file,
                                     std::move(settings));
}

std::vector<SourceSpec> expand_npy(const SpecText& text, const SourceContext& ctx) {
  const fs::path& base_dir = ctx.base_dir;
  const auto glob =
      std::find_if(text.args.begin(), text.args.end(), [](const auto& kv) { return kv.first == "glob"; });
  const std::string context = "distribution \"" + text.canonical() + "\"";
  if (glob == text.args.end()) {
    // One file: labelled by its stem; layout rules narrowed to its name.
    SpecText one = text;
    std::string stem = text.canonical();
    for (const auto& [k, v] : text.args) {
      if (k == "path") {
        stem = fs::path(v).stem().string();
        narrow_layout(one, fs::path(v).filename().string(), context);
      }
    }
    return {{one.canonical(), stem}};
  }
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
  std::vector<SourceSpec> out;
  for (const std::string& name : names) {
    SpecText one = text;
    for (auto& kv : one.args) {
      if (kv.first == "glob") kv = {"path", dir_text + name};
    }
    narrow_layout(one, name, context);
    out.push_back({one.canonical(), fs::path(name).stem().string()});
  }
  return out;
}

}  // namespace sources

}  // namespace sqb
