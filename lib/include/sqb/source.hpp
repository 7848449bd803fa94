#pragma once
/// \file source.hpp
/// Data sources for sweeps: seeded synthetic laws (Boost.Random, so the same seed gives the same numbers on
/// every run and platform), tensors from files (.npy, safetensors checkpoints), and randomly rotated vectors.
/// Chosen by spec strings like `gaussian mean=0 std=1` from one registry table (the config key is
/// `distribution`). A spec may stand for several sources (a glob over files or tensors): expand_source_spec
/// turns it into one spec per source, each with a short label.
///
/// A source only produces data. Optional parts it may add (ask with part_of<Part>(source)):
///  - DescribesData: columns describing the data it produced (npy: how many non-finite values it dropped);
///  - EvaluatesResult: an evaluation step on a quantized result (rotated: TurboQuant's D_mse, D_prod,
///  biases).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sqb/columns.hpp"
#include "sqb/quantize.hpp"
#include "sqb/spec.hpp"
#include "sqb/tensor.hpp"

namespace sqb {

/// What draw(n) gives and what it reads to give it.
struct DrawShape {
  std::size_t rows = 0, cols = 0;  ///< the tensor as laid out (rows x cols values)
  /// Values of the file read whole to draw from it (n = kWholeFile draws them all); 0 for generated data.
  std::size_t file_values = 0;
  bool weighted = false;  ///< draw attaches importance weights (weights=)

  std::size_t values() const { return rows * cols; }
  bool from_file() const { return file_values > 0; }
};

class Source {
 public:
  virtual ~Source() = default;
  /// The tensor for one cell: n elements drawn from `seed` (files: n = kWholeFile for every value, else a
  /// seeded subsample). Synthetic laws honour the spec's rows= (n must be a multiple of it). Throws Error
  /// when n is not valid for this source.
  virtual Tensor draw(std::size_t n, std::uint64_t seed) const = 0;
  /// Throws Error if draw(n, ...) would (checked while planning a sweep, before any work).
  virtual void check_n(std::size_t n) const = 0;
  /// The tensor draw(n, ...) returns, known without drawing it (what a sweep plans, estimates memory for and
  /// warns about before any work). Throws Error like check_n.
  virtual DrawShape shape(std::size_t n) const = 0;
};

template <class Part>
const Part* part_of(const Source& s) {
  return dynamic_cast<const Part*>(&s);
}

/// Part: columns describing the data a source produces (the same for every draw).
class DescribesData {
 public:
  virtual ~DescribesData() = default;
  virtual std::vector<Col> data_columns() const = 0;
  virtual std::vector<double> describe_data() const = 0;  ///< in the order of data_columns(); NaN = empty
};

/// What an evaluation step sees: the cell's data, its quantized result, and how to quantize again (the
/// cell's quantizer spec, K and options: the rotated source quantizes at b-1 bits for TurboQuant_prod).
struct Evaluation {
  TensorView data;
  const Quantized& result;
  std::string_view quantizer_spec;
  std::size_t k = 0;
  const QuantizeOptions& options;
};

/// Part: an evaluation step run on every quantized result of this source's data.
class EvaluatesResult {
 public:
  virtual ~EvaluatesResult() = default;
  virtual std::vector<Col> evaluation_columns() const = 0;
  virtual std::vector<double> evaluate(const Evaluation& e) const = 0;  ///< NaN = empty
};

/// Where a source is built: the folder relative paths in its spec are resolved against.
struct SourceContext {
  std::filesystem::path base_dir;
};

/// One source of a sweep after expansion.
struct SourceSpec {
  std::string spec;   ///< canonical, without label=: what make_source builds; the results' `source` column
  std::string label;  ///< short: the results' `distribution` column, table headers, plot series
};

struct SourceEntry {
  std::string_view name;
  std::string_view description;
  std::span<const ParamSpec> params;
  std::unique_ptr<Source> (*make)(const Params& params, const SourceContext& ctx);
  /// How one spec (already without label=) becomes the sources it stands for, each with its default label;
  /// nullptr: the spec itself, labelled by its own text.
  std::vector<SourceSpec> (*expand)(const SpecText& spec, const SourceContext& ctx);
};

std::span<const SourceEntry> source_registry();
const SourceEntry& find_source(std::string_view name);  ///< throws Error listing the valid names
std::unique_ptr<Source> make_source(std::string_view spec, const SourceContext& ctx = {});

/// The sources one `distribution =` value stands for, in order, each with its spec and label:
///  - `npy glob=DIR/PATTERN ...`: one `npy path=DIR/NAME ...` per matching file, sorted bytewise (wildcards
///    `*`, `?`, `[...]` in the file name only; a leading '.' must be matched explicitly; regular files or
///    links to them); default label: the file's stem;
///  - `safetensors ... tensor=PATTERN` (a pattern holds `*`, `?` or `[` and is not itself a tensor's name):
///    one `... tensor=NAME` per matching tensor of the checkpoint, sorted (safetensors::glob_match); default
///    label: the tensor's name (also for a single tensor=NAME);
///  - layout rules (`layout=PATTERN:WORD,...`) in a file source's spec become the word that applies to each
///    file name or tensor name;
///  - any other spec as it is, labelled by its canonical text.
/// `label=TEXT` replaces the default label ("{}" in TEXT stands for the default, so a glob can be given a
/// prefix: label=base:{}); label= never appears in the returned specs. Relative paths resolve against
/// ctx.base_dir (the returned specs keep them as written). Throws Error quoting the spec when it cannot be
/// parsed, names an unknown source, when a folder or checkpoint cannot be read, nothing matches, both path=
/// and glob= are given, a matching name holds a blank (a spec value cannot), or a rule fails to match.
std::vector<SourceSpec> expand_source_spec(std::string_view spec, const SourceContext& ctx = {});

}  // namespace sqb
