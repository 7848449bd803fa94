#pragma once
/// \file cell.hpp
/// One sweep cell as a value: a source spec, a quantizer spec and the numbers that pick its data and its
/// codebooks. describe() says what the cell will do before any work (which result columns it fills, the
/// shape of its data, its peak memory, whether its quantizer applies at its K); evaluate() computes its
/// figures from its data (the quantization's metrics, opt_ratio, the source's own columns). Each part answers
/// for itself: the source its shape (Source::shape), the strategy its applicability (NotApplicable), its
/// figure columns (ReportsFigures), its design workspace and block limit; the cell only adds them up, so a
/// sweep (`sqbench run`), the Python module and a test see the same cell.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sqb/columns.hpp"
#include "sqb/quantize.hpp"
#include "sqb/quantizer.hpp"
#include "sqb/source.hpp"
#include "sqb/tensor.hpp"

namespace sqb {

/// One cell of a distribution sweep.
struct Cell {
  std::string source;     ///< one source's spec (as expand_source_spec gives it, without label=)
  std::string quantizer;  ///< a quantizer spec
  std::size_t n = 0;      ///< values drawn (kWholeFile: every value of a file)
  std::size_t k = 0;      ///< codes K
  std::string granularity = "tensor";
  std::uint64_t seed = 0;
  bool opt_ratio = false;  ///< also report mse / the exact optimum (optimal_mse)
  bool coded = false;      ///< also measure coded_bits (a rANS pass over the codes)
};

/// Cells above this many values leave opt_ratio empty (the exact optimum's cost grows with n and K).
inline constexpr std::size_t kOptRatioMaxN = std::size_t{1} << 24;

/// A peak memory estimate in bytes, and the terms it adds up (for messages).
struct MemoryEstimate {
  std::uint64_t bytes = 0;
  std::string terms;  ///< e.g. "n = 2000000000 (1 x 2000000000), K = 16, tensor: data 7.45 GiB + ..."
};

/// What a cell does, known before any work.
struct CellDescription {
  bool applies = true;  ///< false: the quantizer cannot give K codes (the rest is then left empty)
  std::string why_not;  ///< when !applies: the strategy's reason
  /// The result columns the cell fills, in schema order: the shape and metric columns (coded_bits only when
  /// coded, wmse only with importance weights), opt_ratio when asked, the strategy's and the source's figure
  /// columns. Key, timing and provenance columns belong to whoever writes the row.
  std::vector<Col> columns;
  DrawShape shape;  ///< the data's rows x cols (and the file it is read from)
  /// Peak memory of evaluating the cell (see cell.cpp for the terms).
  MemoryEstimate memory;
};

/// Built parts describe() and evaluate() would otherwise build from the cell's specs (a sweep builds each
/// source once: a file source reads its file when built).
struct CellParts {
  const Source* source = nullptr;
  const Quantizer* quantizer = nullptr;
};

struct DescribeOptions {
  SourceContext sources;  ///< where relative paths in the source spec resolve
  CellParts parts;
  int threads = 1;  ///< blocks designed at once (each with its own workspace)
};

/// Describes `cell`. Throws Error for a spec that cannot be built, an n the source cannot give, or a block
/// the strategy would refuse when the cell starts (LimitsBlocks; message ends "(it would stop the run when
/// the cell starts)").
CellDescription describe(const Cell& cell, const DescribeOptions& options = {});

/// The reason quantizer `spec` cannot give `k` codes ("" when it can). Throws Error for a bad spec.
std::string not_applicable(std::string_view spec, std::size_t k);

/// The result columns a cell of this quantizer and source fills, in schema order (describe's `columns`).
std::vector<Col> cell_columns(const Cell& cell, const Quantizer& q, const Source& source);

/// The pipeline options of a cell's quantization of `data` (granularity, seed, data's weights, coded).
QuantizeOptions cell_options(const Cell& cell, const Tensor& data, int threads = 1);

struct EvaluateOptions {
  SourceContext sources;
  CellParts parts;
  int threads = 1;
  std::size_t opt_ratio_max_n = kOptRatioMaxN;
  /// false: `data` was checked when drawn (finite, weights valid), so the pipeline skips its checks.
  bool check_input = true;
};

/// A cell's figures: (column, value) for each column of describe's `columns` (NaN: empty in this cell).
struct CellFigures {
  std::vector<Figure> figures;
  bool opt_ratio_skipped = false;  ///< opt_ratio was asked but the data has more than opt_ratio_max_n values
};

/// Evaluates `cell` on `data` (what its source draws for it): quantizes, measures, adds opt_ratio (mse, or
/// wmse with weights, over optimal_mse; empty above opt_ratio_max_n values), the source's data columns and
/// its evaluation of the result. Throws like quantize and NotApplicable when the quantizer does not apply.
CellFigures evaluate(const Cell& cell, const Tensor& data, const EvaluateOptions& options = {});

/// "7.45 GiB", "512 MiB", "900 B".
std::string format_bytes(std::uint64_t bytes);

}  // namespace sqb
