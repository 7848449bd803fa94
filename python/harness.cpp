// sqbench.run and sqbench.plan: the sweep harness of the CLI (experiments/sqbench) called in process, so a
// config run from Python plans, checks, computes and writes exactly what `sqbench run` does. sqbench.describe
// and sqbench.evaluate: one cell through the library's sqb::describe and sqb::evaluate (what a sweep's
// planning and cells call), its figures formatted as results.csv writes them; describe takes a task cell too.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <thread>

#include "bindings.hpp"
#include "checks.hpp"
#include "config.hpp"
#include "csv.hpp"
#include "memory.hpp"
#include "plan.hpp"
#include "plot.hpp"
#include "sqb/cell.hpp"
#include "sqb/columns.hpp"
#include "sqb/error.hpp"
#include "sqb/granularity.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "sqb/spec.hpp"
#include "sweep.hpp"

namespace py = pybind11;
namespace fs = std::filesystem;

namespace {

// A config given as a path, or as INI text (named `name` in messages; relative paths inside it are relative
// to the working folder, as for a file in it).
sqbench::Config config_from(const std::string& path, const std::optional<std::string>& text) {
  if (text) return sqbench::parse_config(path, *text);
  return sqbench::load_config(path);
}

// A results.csv field as a Python value: "" -> None, a key column that names something (quantizer,
// distribution, ...) -> str, an integral number -> int, any other number -> float. Text in a numeric column
// stays text (nothing is dropped silently).
py::object field_value(const std::string& field, bool numeric) {
  if (field.empty()) return py::none();
  if (!numeric) return py::str(field);
  const auto v = sqbench::parse_field_number(field);
  if (!v) return py::str(field);
  const bool integral = field.find_first_not_of("-0123456789") == std::string::npos;
  if (integral) {
    try {
      return py::int_(std::stoll(field));
    } catch (const std::out_of_range&) {
    }
  }
  return py::float_(*v);
}

bool column_is_numeric(const std::string& name) {
  const auto c = sqb::column_named(name);
  return sqb::column_info(c).numeric;
}

py::list rows_of(const sqbench::CsvTable& t) {
  std::vector<bool> numeric;
  for (const std::string& h : t.header)
    numeric.push_back(column_is_numeric(h));
  py::list out;
  for (const auto& r : t.rows) {
    py::dict d;
    for (std::size_t c = 0; c < t.header.size(); ++c)
      d[py::str(t.header[c])] = field_value(r[c], numeric[c]);
    out.append(std::move(d));
  }
  return out;
}

py::list run(const std::string& path, const std::optional<std::string>& text, const std::string& out,
             int jobs, int threads, bool quiet, bool resume, bool fresh) {
  if (jobs < 1 || jobs > 1024) throw sqb::Error("jobs = " + std::to_string(jobs) + " must be in 1..1024");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (threads == 0) threads = std::max(1, cores / jobs);
  if (threads < 1 || threads > 1024) {
    throw sqb::Error("threads = " + std::to_string(threads) + " must be in 0..1024 (0: the cores / jobs)");
  }
  if (resume && fresh) throw sqb::Error("resume and fresh contradict each other");
  const sqbench::Config config = config_from(path, text);
  sqbench::RunOptions opt;
  opt.out_dir = out;
  opt.quiet = quiet;
  opt.resume = resume;
  opt.fresh = fresh;
  opt.jobs = jobs;
  opt.threads = threads;
  opt.command = "sqbench.run(" + (text ? std::string("<config text>") : path) + ")";
  sqbench::RunResult r;
  {
    py::gil_scoped_release release;
    r = sqbench::run_sweep(config, opt);
  }
  if (r.interrupted) {
    // The run's own SIGINT handler took the signal (as the CLI's does) and kept the finished cells.
    PyErr_SetString(PyExc_KeyboardInterrupt, ("stopped; the finished cells are kept in " + r.out.string() +
                                              ": run again with resume=True")
                                                 .c_str());
    throw py::error_already_set();
  }
  return rows_of(sqbench::read_csv(r.out / "results.csv"));
}

py::list plan(const std::string& path, const std::optional<std::string>& text, int threads) {
  const sqbench::Config config = config_from(path, text);
  const sqbench::Plan p = sqbench::make_plan(config);
  sqbench::check_references(config);
  sqbench::check_outputs_before_work(config, sqbench::planned_results(config, p), sqbench::RowsKind::planned);
  py::list columns;
  for (const std::string& h : p.header)
    columns.append(h);
  py::list out;
  for (const sqbench::Cell& c : p.cells) {
    py::dict d;
    const std::vector<std::string> keys = p.key_fields(c);
    for (std::size_t i = 0; i < keys.size(); ++i)
      d[py::str(p.header[i])] = field_value(keys[i], column_is_numeric(p.header[i]));
    d["label"] = sqbench::cell_label(p, c);
    d["columns"] = columns;
    const sqbench::MemoryEstimate m = sqbench::estimate_cell_memory(p, c, std::max(1, threads));
    d["memory_bytes"] = m.bytes;
    d["memory"] = m.terms;
    out.append(std::move(d));
  }
  return out;
}

// ---- one cell

// A cell from the keyword arguments: specs in canonical form (as a config's are), n = None or "all" for a
// whole file, exactly one of k and bits.
struct PyCell {
  sqb::Cell cell;
  sqb::SourceSpec source;  // canonical spec and label, as the results' source and distribution columns
  int threads = 1;
};

PyCell make_cell(const std::string& source, const std::string& quantizer, const py::object& n,
                 std::optional<std::size_t> k, std::optional<int> bits, const std::string& granularity,
                 std::uint64_t seed, bool opt_ratio, bool coded, int threads) {
  if (k.has_value() == bits.has_value()) throw sqb::Error("give exactly one of k= and bits=");
  if (threads < 1 || threads > 1024)
    throw sqb::Error("threads = " + std::to_string(threads) + " must be in 1..1024");
  PyCell c;
  const std::vector<sqb::SourceSpec> specs = sqb::expand_source_spec(source);
  if (specs.size() != 1) {
    throw sqb::Error("source \"" + source + "\" stands for " + std::to_string(specs.size()) +
                     " sources; a cell takes one (give tensor= or path= of one)");
  }
  c.source = specs[0];
  c.cell.source = c.source.spec;
  c.cell.quantizer = sqb::SpecText::parse(quantizer, "quantizer").canonical();
  if (n.is_none() || (py::isinstance<py::str>(n) && n.cast<std::string>() == "all")) {
    c.cell.n = sqb::kWholeFile;
  } else {
    const auto v = n.cast<long long>();
    if (v < 1)
      throw sqb::Error("n = " + std::to_string(v) + " must be >= 1 (or None / \"all\": a whole file)");
    c.cell.n = static_cast<std::size_t>(v);
  }
  c.cell.k = bits ? sqb::codes_for_bits(*bits) : *k;
  c.cell.granularity = sqb::Granularity::parse(granularity).to_string();
  c.cell.seed = seed;
  c.cell.opt_ratio = opt_ratio;
  c.cell.coded = coded;
  c.threads = threads;
  return c;
}

// The cell's key columns, as results.csv writes them (and run() types them).
py::dict key_fields(const PyCell& c) {
  const sqb::Cell& cell = c.cell;
  py::dict d;
  d["quantizer"] = cell.quantizer;
  d["distribution"] = c.source.label;
  d["n"] = cell.n == sqb::kWholeFile ? py::object(py::str("all")) : py::object(py::int_(cell.n));
  d["k"] = cell.k;
  d["bits"] = sqb::index_bits(cell.k);
  d["granularity"] = cell.granularity;
  d["seed"] = cell.seed;
  d["source"] = cell.source;
  return d;
}

// A task cell (task= and mode=): ptq and qat quantize with a quantizer at exactly one of k and bits; fp32
// and fp32_ft have no quantizer (None or "none"), k, bits or granularity. Its key columns as a plan's row
// of it has them.
// describe's answer common to both kinds of cell: applies, why_not and the result columns it fills.
void put_applies_and_columns(py::dict& out, const sqb::CellDescription& d) {
  out["applies"] = d.applies;
  out["why_not"] = d.applies ? py::object(py::none()) : py::object(py::str(d.why_not));
  py::list columns;
  for (const sqb::Col col : d.columns)
    columns.append(std::string(sqb::column_name(col)));
  out["columns"] = columns;
}

py::dict describe_task(const std::string& task, const std::string& mode,
                       const std::optional<std::string>& quantizer, std::optional<std::size_t> k,
                       std::optional<int> bits, const std::string& granularity, std::uint64_t seed) {
  sqb::Cell cell;
  cell.task = sqb::SpecText::parse(task, "task").canonical();
  for (const sqb::TaskMode m :
       {sqb::TaskMode::fp32, sqb::TaskMode::fp32_ft, sqb::TaskMode::ptq, sqb::TaskMode::qat}) {
    if (mode == sqb::task_mode_name(m)) cell.mode = m;
  }
  if (!cell.is_task()) throw sqb::Error("mode = \"" + mode + "\" is not one of fp32, fp32_ft, ptq, qat");
  const bool quantized = cell.mode == sqb::TaskMode::ptq || cell.mode == sqb::TaskMode::qat;
  const bool has_quantizer = quantizer && *quantizer != "none";
  if (quantized) {
    if (!has_quantizer) throw sqb::Error("mode " + mode + " needs a quantizer");
    if (k.has_value() == bits.has_value()) throw sqb::Error("give exactly one of k= and bits=");
    cell.quantizer = sqb::SpecText::parse(*quantizer, "quantizer").canonical();
    cell.k = bits ? sqb::codes_for_bits(*bits) : *k;
    cell.granularity = sqb::Granularity::parse(granularity).to_string();
  } else {
    if (has_quantizer || k || bits)
      throw sqb::Error("mode " + mode + " evaluates the float model: give no quantizer, k or bits");
    cell.granularity.clear();
  }
  cell.seed = seed;
  const sqb::CellDescription d = sqb::describe(cell);
  py::dict out;
  out["quantizer"] = quantized ? cell.quantizer : std::string("none");
  out["task"] = cell.task;
  out["mode"] = mode;
  out["k"] = quantized ? py::object(py::int_(cell.k)) : py::object(py::none());
  out["bits"] = quantized ? sqb::index_bits(cell.k) : 32;  // a float32 weight takes 32 bits
  out["granularity"] = quantized ? py::object(py::str(cell.granularity)) : py::object(py::none());
  out["seed"] = seed;
  put_applies_and_columns(out, d);
  out["memory_bytes"] = d.memory.bytes;
  out["memory"] = d.memory.terms;
  return out;
}

py::dict describe_cell(const std::optional<std::string>& source, const std::optional<std::string>& quantizer,
                       const py::object& n, std::optional<std::size_t> k, std::optional<int> bits,
                       const std::string& granularity, std::uint64_t seed, bool opt_ratio, bool coded,
                       int threads, const std::optional<std::string>& task,
                       const std::optional<std::string>& mode) {
  if (task || mode) {
    if (!task || !mode) throw sqb::Error("a task cell needs both task= and mode=");
    if (source) throw sqb::Error("give either a source or task= and mode=, not both");
    if (!n.is_none() || opt_ratio || coded)
      throw sqb::Error("a task cell takes no n, opt_ratio or coded (they belong to a distribution cell)");
    return describe_task(*task, *mode, quantizer, k, bits, granularity, seed);
  }
  if (!source || !quantizer) throw sqb::Error("give a source and a quantizer (or task= and mode=)");
  const PyCell c = make_cell(*source, *quantizer, n, k, bits, granularity, seed, opt_ratio, coded, threads);
  sqb::DescribeOptions options;
  options.threads = c.threads;
  const sqb::CellDescription d = sqb::describe(c.cell, options);
  py::dict out = key_fields(c);
  put_applies_and_columns(out, d);
  out["rows"] = d.shape.rows;
  out["cols"] = d.shape.cols;
  out["file_values"] = d.shape.file_values;
  out["weighted"] = d.shape.weighted;
  out["memory_bytes"] = d.memory.bytes;
  out["memory"] = d.memory.terms;
  return out;
}

py::dict evaluate_cell(const std::string& source, const std::string& quantizer, const py::object& n,
                       std::optional<std::size_t> k, std::optional<int> bits, const std::string& granularity,
                       std::uint64_t seed, bool opt_ratio, bool coded, int threads,
                       std::size_t opt_ratio_max_n) {
  const PyCell c = make_cell(source, quantizer, n, k, bits, granularity, seed, opt_ratio, coded, threads);
  sqb::CellFigures figures;
  {
    py::gil_scoped_release release;
    const std::unique_ptr<sqb::Source> src = sqb::make_source(c.cell.source);
    const sqb::Tensor data = src->draw(c.cell.n, c.cell.seed);
    sqb::EvaluateOptions options;
    options.parts.source = src.get();
    options.threads = c.threads;
    options.opt_ratio_max_n = opt_ratio_max_n;
    figures = sqb::evaluate(c.cell, data, options);
  }
  py::dict out = key_fields(c);
  // Formatted and read back as results.csv's fields are, so each value equals run()'s for the same cell.
  for (const sqb::Figure& f : figures.figures) {
    const std::string field =
        std::isnan(f.value) ? "" : sqbench::format_number(f.value, f.column == sqb::Col::converged ? 4 : 10);
    out[py::str(std::string(sqb::column_name(f.column)))] = field_value(field, true);
  }
  return out;
}

}  // namespace

void add_harness_bindings(py::module_& m) {
  m.def("_run", &run, py::arg("path"), py::arg("text"), py::arg("out"), py::arg("jobs"), py::arg("threads"),
        py::arg("quiet"), py::arg("resume"), py::arg("fresh"));
  m.def("_plan", &plan, py::arg("path"), py::arg("text"), py::arg("threads"));
  m.def("describe", &describe_cell, py::arg("source") = py::none(), py::arg("quantizer") = py::none(),
        py::kw_only(), py::arg("n") = py::none(), py::arg("k") = py::none(), py::arg("bits") = py::none(),
        py::arg("granularity") = "tensor", py::arg("seed") = 0, py::arg("opt_ratio") = false,
        py::arg("coded") = false, py::arg("threads") = 1, py::arg("task") = py::none(),
        py::arg("mode") = py::none(),
        "What one sweep cell does, before any work (the library's sqb::describe; what `sqbench run` plans "
        "with). source: one source spec (a `distribution =` value standing for one source); quantizer: a "
        "spec; n: values (None or \"all\": a whole file); exactly one of k and bits; granularity, seed, "
        "opt_ratio, coded: as the config keys (coded: measure coded_bits). Returns a dict: the cell's key "
        "columns as results.csv writes them, `applies` and `why_not` (the strategy cannot give K codes), "
        "`columns` (the result columns it fills), `rows`, `cols` (its data as laid out), `file_values`, "
        "`weighted`, `memory_bytes` and `memory` (its peak estimate with `threads` threads, and the terms). "
        "A task cell instead: task= (a task spec, as a config's `task =`) and mode= (fp32, fp32_ft, ptq, "
        "qat), no source; ptq and qat take a quantizer, exactly one of k and bits, and granularity; the "
        "dict then has the key columns of its row in a plan (quantizer, task, mode, k, bits, granularity, "
        "seed), `applies`, `why_not`, `columns` (its task's), `memory_bytes` and `memory` (besides what the "
        "task cells of a run share: datasets and float models). "
        "ValueError for a bad spec or an n the source cannot give.");
  m.def("evaluate", &evaluate_cell, py::arg("source"), py::arg("quantizer"), py::kw_only(),
        py::arg("n") = py::none(), py::arg("k") = py::none(), py::arg("bits") = py::none(),
        py::arg("granularity") = "tensor", py::arg("seed") = 0, py::arg("opt_ratio") = false,
        py::arg("coded") = false, py::arg("threads") = 1, py::arg("opt_ratio_max_n") = sqb::kOptRatioMaxN,
        "Draws and evaluates one sweep cell (the library's sqb::evaluate, what every cell of `sqbench run` "
        "calls), with describe()'s arguments. Returns a dict of its key columns and its figures (shape, "
        "metrics, opt_ratio, the strategy's and the source's columns; None where empty), every value equal "
        "to the results.csv row `sqbench run` writes for the same cell (timings aside).");
}
