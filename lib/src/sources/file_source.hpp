#pragma once
// What the file sources (npy, safetensors) share once a file's tensor is read: the layout (a word, rules per
// name, or auto), non-finite values (error or drop), scale=, importance weights (a rule, or a file of the
// same shape), and n (the whole tensor, or a seeded subsample of whole rows or of values; never padded).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sources/sources.hpp"
#include "sqb/layout.hpp"
#include "sqb/npy.hpp"
#include "sqb/source.hpp"

namespace sqb::sources {

/// A tensor as stored in its file: C-order float32 values of `shape`.
struct FileTensor {
  std::vector<std::size_t> shape;
  std::vector<float> values;
};

/// The settings every file source takes from its spec.
struct FileSettings {
  std::string layout = "rows";  ///< a word (rows|oihw|hwio|auto) or rules (sqb::pick_layout)
  double scale = 1.0;
  bool drop_nonfinite = false;
  std::optional<WeightRule> weight_rule;
  std::string context;  ///< `distribution "<spec>"`, prefixing every message
};

class FileSource : public Source, public DescribesData {
 public:
  void check_n(std::size_t n) const override;
  Tensor draw(std::size_t n, std::uint64_t seed) const override;
  DrawShape shape(std::size_t n) const override;

  std::vector<Col> data_columns() const override;
  std::vector<double> describe_data() const override;

 protected:
  explicit FileSource(FileSettings settings) : s_(std::move(settings)) {}

  /// Reads and checks everything once (call it at the end of the derived constructor), so a bad file fails
  /// while a sweep is planned, before any work. The tensor is not kept: a sweep over a folder of real weights
  /// would otherwise hold all of them at once.
  void open();

  /// The tensor's values as stored (float32, C order). Messages name the file (and tensor).
  virtual FileTensor read() const = 0;
  /// The importance weights a file gives (empty when the spec names none), C order of the data's shape;
  /// called after read() with its shape. Must throw when the shapes differ.
  virtual std::vector<float> read_weights(const std::vector<std::size_t>& shape) const = 0;
  /// The name layout rules and layout=auto see (a tensor name, a file name), and the file's framework.
  virtual std::string layout_name() const = 0;
  virtual std::string framework() const { return ""; }
  /// The data for messages: "FILE" or "FILE: tensor NAME".
  virtual std::string what() const = 0;
  /// The name layout rules are matched against when they differ from the one auto reads (npy: the file name
  /// with its extension for rules, the stem for auto).
  virtual std::string rule_name() const { return layout_name(); }

 private:
  struct Loaded {
    Tensor tensor;
    std::size_t dropped = 0;
  };
  Loaded load() const;
  Loaded load_unwrapped() const;
  Layout layout_for(const std::vector<std::size_t>& shape) const;
  static Tensor subsample(const Tensor& t, std::size_t n, std::uint64_t seed);

  FileSettings s_;
  std::size_t rows_ = 0, cols_ = 0, dropped_ = 0;
  bool weighted_ = false;
};

/// Reads FileSettings from a file source's validated parameters (layout, scale, nonfinite, weights); the
/// weights file, if any, is returned in `weights_file` (resolved against the context's folder).
FileSettings file_settings(const Params& p, const SourceContext& ctx, std::filesystem::path& weights_file);

/// `p` relative to `base` (unless absolute or base is empty).
std::filesystem::path resolve(const std::filesystem::path& p, const std::filesystem::path& base);

/// The parameters every file source declares after its own (layout, scale, nonfinite, weights, label).
std::vector<ParamSpec> file_params(std::string_view weights_help);

/// Replaces layout rules in an expanded spec by the word that applies to `name` (nothing else changes).
void narrow_layout(SpecText& spec, std::string_view name, std::string_view what);

}  // namespace sqb::sources
