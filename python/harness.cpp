// sqbench.run and sqbench.plan: the sweep harness of the CLI (experiments/sqbench) called in process, so a
// config run from Python plans, checks, computes and writes exactly what `sqbench run` does.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

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
#include "sqb/columns.hpp"
#include "sqb/error.hpp"
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

}  // namespace

void add_harness_bindings(py::module_& m) {
  m.def("_run", &run, py::arg("path"), py::arg("text"), py::arg("out"), py::arg("jobs"), py::arg("threads"),
        py::arg("quiet"), py::arg("resume"), py::arg("fresh"));
  m.def("_plan", &plan, py::arg("path"), py::arg("text"), py::arg("threads"));
}
