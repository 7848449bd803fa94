// A sweep cell described before any work and evaluated on its data (cell.hpp).
//
// The memory estimate of one cell, in bytes (n values, K levels, B values in the largest block, nb blocks):
//   data 4n + reconstruction 4n + codes n (K <= 256) or 2n
//   + codebooks nb (12 K + 96)          levels, thresholds and stored side values (float32) per block
//   + design workspace w B min(T, nb)   what the strategy allocates to design one block (each strategy
//                                       declares w: Quantizer::design_bytes_per_value); T threads design up
//                                       to T blocks at once
//   + entropy coding n max(c, f)        c = 0.5 + b/4 when the cell measures coded_bits (its rANS stream,
//                                       built then copied into place: 2 b/8 a value and the encoder's first
//                                       reserve, 1/2), else 0; f the strategy's own figures' working memory
//                                       (ReportsFigures::figure_bytes_per_value: phi_log's exponent and sign
//                                       streams, 6.5 + b/4); the two are not held at once
//   + a source's evaluation 6n + codebooks (the rotated source's D_prod: another decoded copy)
// and for a file source the read itself, 16 S + 4n (S values in the file: its bytes, up to 8 per value, and
// two float32 copies), when that is more than the rest (it is freed before the cell allocates).
//
// A task cell's estimate is its task's: task::cell_memory (lib/src/task/memory.cpp lists its terms).

#include "sqb/cell.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <set>

#include "sqb/error.hpp"
#include "sqb/granularity.hpp"
#include "sqb/metrics.hpp"
#include "sqb/registry.hpp"
#include "sqb/task.hpp"

namespace sqb {

namespace {

// The parts a caller gave, else built from the cell's specs (and owned here).
struct Built {
  std::unique_ptr<Source> own_source;
  std::unique_ptr<Quantizer> own_quantizer;
  const Source* source = nullptr;
  const Quantizer* quantizer = nullptr;
};

const Source& source_of(const Cell& cell, const CellParts& parts, const SourceContext& ctx, Built& b) {
  if (parts.source != nullptr) return *(b.source = parts.source);
  b.own_source = make_source(cell.source, ctx);
  return *(b.source = b.own_source.get());
}

// Throws NotApplicable when the strategy cannot give K codes.
const Quantizer& quantizer_of(const Cell& cell, const CellParts& parts, Built& b) {
  if (parts.quantizer != nullptr) return *(b.quantizer = parts.quantizer);
  // Strategies with randomness default to the cell's seed.
  b.own_quantizer = make_quantizer(cell.quantizer, {cell.k, cell.seed});
  return *(b.quantizer = b.own_quantizer.get());
}

// The cell's strategy, or nullptr with `d` marked not applicable (and why) when it cannot give K codes.
const Quantizer* applicable_quantizer(const Cell& cell, const CellParts& parts, Built& b,
                                      CellDescription& d) {
  try {
    return &quantizer_of(cell, parts, b);
  } catch (const NotApplicable& e) {
    d.applies = false;
    d.why_not = e.what();
    return nullptr;
  }
}

// Blocks and the largest block of a rows x cols tensor at granularity g (as make_blocks splits it).
std::pair<double, double> block_counts(const DrawShape& s, const Granularity& g) {
  switch (g.kind) {
    case Granularity::Kind::tensor:
      break;
    case Granularity::Kind::channel:
      return {static_cast<double>(s.rows), static_cast<double>(s.cols)};
    case Granularity::Kind::group: {
      const double per_row = std::ceil(static_cast<double>(s.cols) / static_cast<double>(g.group));
      return {static_cast<double>(s.rows) * per_row, static_cast<double>(std::min(g.group, s.cols))};
    }
  }
  return {1.0, static_cast<double>(s.values())};
}

double entropy_coding_bytes_per_value(const Cell& cell, const Quantizer& q) {
  const double coded = cell.coded ? 0.5 + index_bits(cell.k) / 4.0 : 0.0;
  const auto* figures = part_of<ReportsFigures>(q);
  return std::max(coded, figures != nullptr ? figures->figure_bytes_per_value() : 0.0);
}

MemoryEstimate estimate_memory(const Cell& cell, const DrawShape& s, const Quantizer& q, const Source& source,
                               int threads) {
  const Granularity g = Granularity::parse(cell.granularity);
  const auto [blocks, largest] = block_counts(s, g);
  if (const auto* limit = part_of<LimitsBlocks>(q); limit && !s.from_file()) {
    // The strategy would refuse such a block when the cell starts; say so before any work instead. (A file
    // with at most K distinct values may need no design at all, so file sources are left to the strategy.)
    try {
      limit->check_block(static_cast<std::size_t>(largest));
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (it would stop the run when the cell starts)");
    }
  }
  struct Term {
    const char* what;
    double bytes;
  };
  const double k = static_cast<double>(cell.k);
  const double nd = static_cast<double>(s.values());
  const double codebooks = blocks * (12 * k + 96);
  std::vector<Term> terms = {
      {"data", 4 * nd},
      {"reconstruction", 4 * nd},
      {"codes", (cell.k <= 256 ? 1 : 2) * nd},
      {"codebooks", codebooks},
      {"design workspace",
       q.design_bytes_per_value() * largest * std::min(blocks, static_cast<double>(std::max(1, threads)))},
      {"entropy coding", nd * entropy_coding_bytes_per_value(cell, q)}};
  if (part_of<EvaluatesResult>(source) != nullptr)
    terms.push_back({"the source's evaluation", 6 * nd + codebooks});
  double total = 0;
  for (const Term& t : terms)
    total += t.bytes;
  std::string text = "n = " + std::to_string(s.values()) + " (" + std::to_string(s.rows) + " x " +
                     std::to_string(s.cols) + "), K = " + std::to_string(cell.k) + ", " + cell.granularity +
                     ": ";
  for (std::size_t i = 0; i < terms.size(); ++i)
    text += (i ? " + " : "") + std::string(terms[i].what) + " " +
            format_bytes(static_cast<std::uint64_t>(terms[i].bytes));
  if (s.from_file()) {
    const double read = 16 * static_cast<double>(s.file_values) + 4 * nd;
    if (read > total) {
      total = read;
      text += "; reading the file (" + std::to_string(s.file_values) + " values) peaks higher, at " +
              format_bytes(static_cast<std::uint64_t>(read));
    }
  }
  // Beyond 2^63 bytes the number only has to say "too much".
  const std::uint64_t bytes = total >= 0x1p63 ? (std::uint64_t{1} << 63) : static_cast<std::uint64_t>(total);
  return {bytes, text};
}

// opt_ratio: the measured mse (wmse with weights) over the least any K-level codebook reaches.
double opt_ratio(const Tensor& data, std::size_t k, const QuantizeOptions& options, const Quantized& result) {
  const double optimum = optimal_mse(data, k, options);
  const double measured = options.weights.empty() ? result.metrics.mse : result.metrics.wmse;
  // measured is NaN (wmse of all-zero weights): no ratio, where the branches below would say inf.
  if (std::isnan(measured)) return NAN;
  if (optimum > 0) return measured / optimum;
  return measured == 0 ? 1.0 : INFINITY;
}

void add(std::vector<Figure>& out, const std::vector<Col>& columns, const std::vector<double>& values) {
  for (std::size_t i = 0; i < columns.size() && i < values.size(); ++i)
    out.push_back({columns[i], values[i]});
}

bool quantizes(TaskMode m) {
  return m == TaskMode::ptq || m == TaskMode::qat;
}

// A task cell: the task answers for its columns and its network's memory, the strategy for whether it can
// give K codes.
CellDescription describe_task(const Cell& cell, const DescribeOptions& options) {
  task::TaskSpec own;
  const task::TaskSpec* spec = options.parts.task;
  if (spec == nullptr) {
    own = task::resolve_paths(task::parse_task_spec(cell.task), options.sources.base_dir);
    spec = &own;
  }
  const bool quantized = quantizes(cell.mode);
  const std::string mode(task_mode_name(cell.mode));
  if (quantized && cell.quantizer.empty()) throw Error("a task cell of mode " + mode + " needs a quantizer");
  if (!quantized && !cell.quantizer.empty()) {
    throw Error("a task cell of mode " + mode + " has no quantizer (got \"" + cell.quantizer +
                "\"): the float model is not quantized");
  }
  CellDescription d;
  if (cell.mode == TaskMode::fp32_ft && spec->qat_epochs == 0) {
    d.applies = false;
    d.why_not =
        "mode fp32_ft is the float model fine-tuned for qat_epochs epochs, and the task has qat_epochs = 0";
    return d;
  }
  Built b;
  const Quantizer* q = nullptr;
  Granularity g;
  if (quantized) {
    q = applicable_quantizer(cell, options.parts, b, d);
    if (q == nullptr) return d;
    g = Granularity::parse(cell.granularity);
  }
  d.columns = task::cell_columns(*spec, quantized);
  d.memory = task::cell_memory(*spec, q, g);
  return d;
}

}  // namespace

std::string_view task_mode_name(TaskMode m) {
  switch (m) {
    case TaskMode::none:
      return "";
    case TaskMode::fp32:
      return "fp32";
    case TaskMode::fp32_ft:
      return "fp32_ft";
    case TaskMode::ptq:
      return "ptq";
    case TaskMode::qat:
      return "qat";
  }
  return "";
}

std::string not_applicable(std::string_view spec, std::size_t k) {
  try {
    make_quantizer(spec, {k, 0});
    return "";
  } catch (const NotApplicable& e) {
    return e.what();
  }
}

std::vector<Col> cell_columns(const Cell& cell, const Quantizer& q, const Source& source) {
  const bool weighted = source.shape(cell.n).weighted;
  std::set<Col> figures;
  const auto declare = [&](const std::vector<Col>& cols) { figures.insert(cols.begin(), cols.end()); };
  if (cell.opt_ratio) figures.insert(Col::opt_ratio);
  if (const auto* f = part_of<ReportsFigures>(q)) declare(f->figure_columns());
  if (const auto* f = part_of<DescribesData>(source)) declare(f->data_columns());
  if (const auto* f = part_of<EvaluatesResult>(source)) declare(f->evaluation_columns());
  std::vector<Col> out;
  for (const ColumnInfo& c : column_schema()) {
    const bool fills = c.kind == ColumnKind::shape ||
                       (c.kind == ColumnKind::metric && (c.id != Col::coded_bits || cell.coded) &&
                        (c.id != Col::wmse || weighted)) ||
                       (c.kind == ColumnKind::figure && figures.contains(c.id));
    if (fills) out.push_back(c.id);
  }
  return out;
}

CellDescription describe(const Cell& cell, const DescribeOptions& options) {
  if (cell.is_task()) return describe_task(cell, options);
  Built b;
  const Source& source = source_of(cell, options.parts, options.sources, b);
  CellDescription d;
  d.shape = source.shape(cell.n);
  const Quantizer* q = applicable_quantizer(cell, options.parts, b, d);
  if (q == nullptr) return d;
  d.columns = cell_columns(cell, *q, source);
  d.memory = estimate_memory(cell, d.shape, *q, source, options.threads);
  return d;
}

QuantizeOptions cell_options(const Cell& cell, const Tensor& data, int threads) {
  QuantizeOptions options;
  options.granularity = Granularity::parse(cell.granularity);
  options.seed = cell.seed;
  options.weights = data.weights;
  options.threads = threads;
  options.coded = cell.coded;
  return options;
}

CellFigures evaluate(const Cell& cell, const Tensor& data, const EvaluateOptions& options) {
  if (cell.is_task()) {
    throw Error("evaluate: a task cell (mode " + std::string(task_mode_name(cell.mode)) +
                ") trains and evaluates a network, not a drawn tensor: sqb::task::evaluate_cell evaluates it "
                "on its trained float model");
  }
  Built b;
  const Source& source = source_of(cell, options.parts, options.sources, b);
  const Quantizer& q = quantizer_of(cell, options.parts, b);
  QuantizeOptions qo = cell_options(cell, data, options.threads);
  qo.check_input = options.check_input;
  const Quantized result = quantize(data, q, qo);
  CellFigures out;
  out.figures = result.metric_columns();
  if (cell.opt_ratio) {
    out.opt_ratio_skipped = data.size() > options.opt_ratio_max_n;
    out.figures.push_back(
        {Col::opt_ratio, out.opt_ratio_skipped ? NAN : opt_ratio(data, cell.k, qo, result)});
  }
  if (const auto* d = part_of<DescribesData>(source)) add(out.figures, d->data_columns(), d->describe_data());
  if (const auto* e = part_of<EvaluatesResult>(source)) {
    add(out.figures, e->evaluation_columns(), e->evaluate({data, result, cell.quantizer, cell.k, qo}));
  }
  return out;
}

std::string format_bytes(std::uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f %s" : "%.3g %s", v, kUnits[u]);
  }
  return buf;
}

}  // namespace sqb
