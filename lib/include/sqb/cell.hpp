#pragma once
/// \file cell.hpp
/// One sweep cell as a value: a source spec, a quantizer spec and the numbers that pick its data and its
/// codebooks; or, in a task sweep, a task spec and a mode (what the cell does with the task's trained float
/// model). describe() says what the cell will do before any work (which result columns it fills, the shape
/// of its data, its peak memory, whether its quantizer applies at its K); evaluate() computes a distribution
/// cell's figures from its data (the quantization's metrics, opt_ratio, the source's own columns), and
/// task::evaluate_cell a task cell's from its trained float model and datasets. Each part
/// answers for itself: the source its shape (Source::shape), the strategy its applicability (NotApplicable),
/// its figure columns (ReportsFigures), its design workspace and block limit, the task its columns
/// (task::cell_columns) and its network's memory (task::cell_memory); the cell only adds them up, so a sweep
/// (`sqbench run`), the Python module and a test see the same cell.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sqb/columns.hpp"
#include "sqb/quantize.hpp"
#include "sqb/quantizer.hpp"
#include "sqb/source.hpp"
#include "sqb/tensor.hpp"

namespace sqb {

namespace task {
struct TaskSpec;
}

/// What a task cell does with its task's float model: evaluate it (fp32), fine-tune it as long as QAT
/// (fp32_ft), quantize its weight matrices (ptq) or fine-tune it through the quantizer (qat). none: a
/// distribution cell.
enum class TaskMode : std::uint8_t { none, fp32, fp32_ft, ptq, qat };

/// "fp32", "fp32_ft", "ptq", "qat" ("" for none): the results' mode column.
std::string_view task_mode_name(TaskMode m);

/// One cell of a sweep: a distribution cell (a source and a quantizer), or a task cell (task and mode set).
struct Cell {
  /// One source's spec (as expand_source_spec gives it, without label=); "" in a task cell.
  std::string source;
  std::string quantizer;  ///< a quantizer spec ("" in a task cell of mode fp32 or fp32_ft)
  std::size_t n = 0;      ///< values drawn (kWholeFile: every value of a file)
  std::size_t k = 0;      ///< codes K
  std::string granularity = "tensor";
  std::uint64_t seed = 0;
  bool opt_ratio = false;  ///< also report mse / the exact optimum (optimal_mse)
  bool coded = false;      ///< also measure coded_bits (a rANS pass over the codes)
  /// A task cell's task spec (task::parse_task_spec; a relative data= or model= path resolves against
  /// DescribeOptions::sources.base_dir); n, opt_ratio and coded are unused there and k is 0 without a
  /// quantizer. The seed is the float model's training seed and the quantizer's.
  std::string task;
  TaskMode mode = TaskMode::none;

  bool is_task() const { return mode != TaskMode::none; }
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
  bool applies = true;  ///< false: the quantizer cannot give K codes, or the task has no such mode (the
                        ///< rest is then left empty)
  std::string why_not;  ///< when !applies: the strategy's (or the task's) reason
  /// The result columns the cell fills, in schema order: the shape and metric columns (coded_bits only when
  /// coded, wmse only with importance weights), opt_ratio when asked, the strategy's and the source's figure
  /// columns. A task cell: its task's task::cell_columns. Key, timing and provenance columns belong to
  /// whoever writes the row.
  std::vector<Col> columns;
  DrawShape shape;  ///< the data's rows x cols (and the file it is read from); empty for a task cell
  /// Peak memory of evaluating the cell (see cell.cpp for the terms); for a task cell, what it needs besides
  /// what the task cells of a run share (task::cell_memory and task::shared_memory).
  MemoryEstimate memory;
};

/// Built parts describe() and evaluate() would otherwise build from the cell's specs (a sweep builds each
/// source once: a file source reads its file when built).
struct CellParts {
  const Source* source = nullptr;
  const Quantizer* quantizer = nullptr;
  /// A task cell's parsed spec, its relative paths already resolved (a sweep parses and checks each task
  /// once).
  const task::TaskSpec* task = nullptr;
};

struct DescribeOptions {
  SourceContext sources;  ///< where relative paths in the source spec resolve
  CellParts parts;
  int threads = 1;  ///< blocks designed at once (each with its own workspace)
};

/// Describes `cell`. Throws Error for a spec that cannot be built, an n the source cannot give, or a block
/// the strategy would refuse when the cell starts (LimitsBlocks; message ends "(it would stop the run when
/// the cell starts)"); for a task cell, a mode that needs a quantizer without one (or the reverse) and a
/// dataset folder whose files are missing or malformed (task::dataset_shape).
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

/// A column holding one number per part of a cell (a task cell's layer_mse: one per layer of its network),
/// written as the numbers separated by spaces.
struct FigureList {
  Col column;
  std::vector<double> values;
};

/// A cell's figures: (column, value) for each column of describe's `columns` (NaN: empty in this cell),
/// except the columns of one number per part, which are in `lists`.
struct CellFigures {
  std::vector<Figure> figures;
  std::vector<FigureList> lists;   ///< a task cell's layer_mse and layer_sqnr_db (when it quantizes)
  bool opt_ratio_skipped = false;  ///< opt_ratio was asked but the data has more than opt_ratio_max_n values
};

/// Evaluates distribution cell `cell` on `data` (what its source draws for it): quantizes, measures, adds
/// opt_ratio (mse, or wmse with weights, over optimal_mse; empty above opt_ratio_max_n values), the source's
/// data columns and its evaluation of the result. Throws like quantize and NotApplicable when the quantizer
/// does not apply, and Error for a task cell (it needs its trained float model and datasets:
/// task::evaluate_cell evaluates those).
CellFigures evaluate(const Cell& cell, const Tensor& data, const EvaluateOptions& options = {});

/// "7.45 GiB", "512 MiB", "900 B".
std::string format_bytes(std::uint64_t bytes);

}  // namespace sqb
