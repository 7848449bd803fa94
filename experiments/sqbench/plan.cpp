#include "plan.hpp"

#include <algorithm>
#include <set>

#include "sqb/error.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "table.hpp"
#include "task_cells.hpp"
#include "text.hpp"

namespace sqbench {

namespace fs = std::filesystem;

namespace {

// A task spec as a cell runs it: a relative data= folder is relative to the config's folder (as npy path=
// is), and its four files must be there, with valid headers, now rather than when the first cell starts; so
// must a model= checkpoint (relative to the config's folder as well).
sqb::task::TaskSpec resolve_task(const std::string& text, const fs::path& base_dir) {
  sqb::task::TaskSpec spec = sqb::task::parse_task_spec(text);
  if (spec.data.is_relative()) spec.data = base_dir / spec.data;
  if (!spec.model.empty() && spec.model.is_relative()) spec.model = base_dir / spec.model;
  try {
    const sqb::task::DatasetShape shape = sqb::task::dataset_shape(spec.data);
    // A given float model is read whole now (it is small): a missing tensor or a wrong shape stops the run
    // before any cell starts.
    if (!spec.model.empty())
      sqb::task::load_safetensors(spec.model, sqb::task::model_spec(spec, shape.features()));
  } catch (const sqb::Error& e) {
    throw sqb::Error("task \"" + text + "\": " + e.what());
  }
  return spec;
}

}  // namespace

std::string mode_name(Mode m) {
  switch (m) {
    case Mode::none:
      return "";
    case Mode::fp32:
      return "fp32";
    case Mode::fp32_ft:
      return "fp32_ft";
    case Mode::ptq:
      return "ptq";
    case Mode::qat:
      return "qat";
  }
  return "";
}

std::size_t key_count(const std::vector<std::string>& header) {
  const auto& keys = key_columns();
  std::size_t n = 0;
  while (n < header.size() && std::find(keys.begin(), keys.end(), header[n]) != keys.end())
    ++n;
  return n;
}

const std::vector<std::string>& key_columns() {
  static const std::vector<std::string> cols = [] {
    std::vector<std::string> out;
    for (const sqb::ColumnInfo& c : sqb::column_schema()) {
      if (c.kind == sqb::ColumnKind::key) out.emplace_back(c.name);
    }
    return out;
  }();
  return cols;
}

std::size_t Plan::position(sqb::Col c) const {
  const auto it = std::find(columns.begin(), columns.end(), c);
  if (it == columns.end()) {
    throw std::logic_error("result column '" + std::string(sqb::column_name(c)) + "' is not in this plan");
  }
  return static_cast<std::size_t>(it - columns.begin());
}

std::vector<std::string> Plan::key_fields(const Cell& c) const {
  std::vector<std::string> out;
  for (const sqb::Col col : keys) {
    switch (col) {
      case sqb::Col::quantizer:
        out.push_back(c.quantized() ? quantizers[c.q] : "none");
        break;
      case sqb::Col::distribution:
        out.push_back(c.is_task() ? "" : labels[c.d]);
        break;
      case sqb::Col::task:
        out.push_back(c.is_task() ? tasks[c.d] : "");
        break;
      case sqb::Col::mode:
        out.push_back(mode_name(c.mode));
        break;
      case sqb::Col::n:
        out.push_back(c.is_task() ? "" : c.n == sqb::kWholeFile ? std::string("all") : std::to_string(c.n));
        break;
      case sqb::Col::k:
        out.push_back(c.quantized() ? std::to_string(c.k) : "");
        break;
      case sqb::Col::bits:
        // A float32 weight takes 32 bits.
        out.push_back(c.quantized() ? std::to_string(sqb::index_bits(c.k)) : "32");
        break;
      case sqb::Col::granularity:
        out.push_back(c.granularity);
        break;
      case sqb::Col::seed:
        out.push_back(std::to_string(c.seed));
        break;
      case sqb::Col::source:
        out.push_back(c.is_task() ? "" : distributions[c.d]);
        break;
      default:
        throw std::logic_error("key column '" + std::string(sqb::column_name(col)) + "' has no value");
    }
  }
  return out;
}

Plan make_plan(const Config& config) {
  Plan plan;
  const std::string file = config.path.string();
  const auto index_of = [](std::vector<std::string>& list, const std::string& v) {
    const auto it = std::find(list.begin(), list.end(), v);
    if (it != list.end()) return static_cast<std::size_t>(it - list.begin());
    list.push_back(v);
    return list.size() - 1;
  };
  const sqb::SourceContext dctx{fs::absolute(config.path).parent_path()};
  std::map<std::pair<std::size_t, std::size_t>, std::string> not_applicable;  // (q, k) -> reason ("" = fine)
  std::map<std::vector<std::string>, std::string> seen_cells;                 // key fields -> sweep id
  std::map<std::string, std::string> label_spec, spec_label;

  // The key columns: distribution and n only when some sweep lists distributions, task and mode only when
  // one lists tasks, so a config without task sweeps keeps the header it always had.
  const bool any_task = std::any_of(config.sweeps.begin(), config.sweeps.end(),
                                    [](const SweepSpec& s) { return !s.tasks.empty(); });
  const bool any_distribution = std::any_of(config.sweeps.begin(), config.sweeps.end(),
                                            [](const SweepSpec& s) { return !s.distributions.empty(); });
  const auto column_used = [&](sqb::Col c) {
    if (c == sqb::Col::distribution || c == sqb::Col::n || c == sqb::Col::source) return any_distribution;
    if (c == sqb::Col::task || c == sqb::Col::mode || c == sqb::Col::train_s) return any_task;
    return true;
  };
  for (const sqb::ColumnInfo& c : sqb::column_schema()) {
    if (c.kind == sqb::ColumnKind::key && column_used(c.id)) plan.keys.push_back(c.id);
  }

  for (const SweepSpec& sw : config.sweeps) {
    const std::string where = sw.id.empty() ? "[sweep]" : "[sweep." + sw.id + "]";
    std::vector<std::size_t> qs, ds;
    // Globs become one source per file or tensor (sorted), each labelled; label= leaves the spec.
    std::vector<sqb::SourceSpec> specs;
    for (const std::string& d : sw.distributions) {
      try {
        for (sqb::SourceSpec& e : sqb::expand_source_spec(d, dctx))
          specs.push_back(std::move(e));
      } catch (const sqb::Error& e) {
        throw sqb::Error(file + ": " + where + " distribution: " + e.what());
      }
    }
    for (const sqb::SourceSpec& d : specs) {
      // A label names one source in results.csv, tables and plots, so labels and specs pair one to one.
      if (const auto it = label_spec.find(d.label); it != label_spec.end() && it->second != d.spec) {
        throw sqb::Error(file + ": " + where + " distribution: two sources have the label '" + d.label +
                         "': \"" + it->second + "\" and \"" + d.spec +
                         "\"; give one of them its own label= ({} in it stands for the default label, e.g. "
                         "label={}:b; labels "
                         "name the sources in results.csv, tables and "
                         "plots)");
      }
      if (const auto it = spec_label.find(d.spec); it != spec_label.end() && it->second != d.label) {
        throw sqb::Error(file + ": " + where + " distribution: the source \"" + d.spec +
                         "\" has two labels, '" + it->second + "' and '" + d.label + "'; give it one");
      }
      label_spec.emplace(d.label, d.spec);
      spec_label.emplace(d.spec, d.label);
      const std::size_t before = plan.distributions.size();
      const std::size_t di = index_of(plan.distributions, d.spec);
      if (di == before) {
        plan.labels.push_back(d.label);
        try {
          plan.sources.push_back(sqb::make_source(d.spec, dctx));
        } catch (const sqb::Error& e) {
          throw sqb::Error(file + ": " + where + " distribution: " + e.what());
        }
      }
      for (const std::size_t n : sw.n) {
        try {
          plan.sources[di]->check_n(n);
        } catch (const sqb::Error& e) {
          if (!sw.n_given) {
            throw sqb::Error(file + ": " + where +
                             " has no key 'n': n defaults to all (every value) only when "
                             "every distribution is a file (npy, safetensors), and distribution \"" +
                             d.spec + "\" is not; give n");
          }
          throw sqb::Error(file + ": " + where + " key 'n': " + e.what());
        }
      }
      ds.push_back(di);
    }
    // A task sweep quantizes only in its ptq and qat modes.
    const bool fp32_only = !sw.tasks.empty() && std::all_of(sw.modes.begin(), sw.modes.end(),
                                                            [](const std::string& m) { return m == "fp32"; });
    for (const std::string& q : fp32_only ? std::vector<std::string>() : sw.quantizers) {
      const std::size_t qi = index_of(plan.quantizers, q);
      std::size_t usable = 0;
      std::string reason;
      for (const std::size_t k : sw.k) {
        if (!not_applicable.contains({qi, k})) {
          try {
            sqb::make_quantizer(q, {k, 0});
            not_applicable[{qi, k}] = "";
          } catch (const sqb::NotApplicable& e) {
            not_applicable[{qi, k}] = e.what();
          } catch (const sqb::Error& e) {
            throw sqb::Error(file + ": " + where + " quantizer: " + e.what());
          }
        }
        if (not_applicable[{qi, k}].empty()) {
          ++usable;
        } else {
          reason = not_applicable[{qi, k}];
        }
      }
      if (usable == 0) {
        throw sqb::Error(file + ": " + where + " quantizer \"" + q + "\" has no usable cell: " + reason);
      }
      qs.push_back(qi);
    }
    if (!sw.tasks.empty()) {
      std::vector<std::size_t> ts;
      for (const std::string& t : sw.tasks) {
        const std::size_t before = plan.tasks.size();
        const std::size_t ti = index_of(plan.tasks, t);
        if (ti == before) {
          try {
            plan.task_specs.push_back(resolve_task(t, dctx.base_dir));
          } catch (const sqb::Error& e) {
            throw sqb::Error(file + ": " + where + " task: " + e.what());
          }
        }
        ts.push_back(ti);
      }
      const int repeats = sw.repeats > 0 ? sw.repeats : config.repeats;
      const auto add = [&](const Cell& cell) {
        if (seen_cells.emplace(plan.key_fields(cell), sw.id).second) plan.cells.push_back(cell);
      };
      for (const std::size_t ti : ts) {
        for (const std::uint64_t seed : sw.seeds) {
          // The float model, and (so that QAT is never credited for its extra epochs) the float model
          // fine-tuned for as many epochs as QAT.
          if (std::find(sw.modes.begin(), sw.modes.end(), "fp32") != sw.modes.end()) {
            add(Cell{kNoQuantizer, ti, 0, 0, "", seed, sw.id, repeats, Mode::fp32});
            if (plan.task_specs[ti].qat_epochs > 0)
              add(Cell{kNoQuantizer, ti, 0, 0, "", seed, sw.id, repeats, Mode::fp32_ft});
          }
          for (const std::size_t qi : qs) {
            for (const std::size_t k : sw.k) {
              for (const std::string& g : sw.granularities) {
                for (const std::string& m : sw.modes) {
                  if (m == "fp32") continue;
                  if (!not_applicable[{qi, k}].empty()) {
                    ++plan.skipped[not_applicable[{qi, k}]];
                    continue;
                  }
                  add(Cell{qi, ti, 0, k, g, seed, sw.id, repeats, m == "ptq" ? Mode::ptq : Mode::qat});
                }
              }
            }
          }
        }
      }
      continue;
    }
    for (const std::size_t di : ds) {
      for (const std::size_t n : sw.n) {
        for (const std::uint64_t seed : sw.seeds) {
          for (const std::size_t qi : qs) {
            for (const std::size_t k : sw.k) {
              for (const std::string& g : sw.granularities) {
                const Cell cell{qi,         di,
                                n,          k,
                                g,          seed,
                                sw.id,      sw.repeats > 0 ? sw.repeats : config.repeats,
                                Mode::none, sw.opt_ratio.value_or(config.opt_ratio)};
                if (!not_applicable[{qi, k}].empty()) {
                  ++plan.skipped[not_applicable[{qi, k}]];
                  continue;
                }
                // A cell several sweeps list (paper configs overlap their scaling sweeps at the headline
                // point) runs once, in the first sweep that lists it.
                if (!seen_cells.emplace(plan.key_fields(cell), sw.id).second) continue;
                plan.cells.push_back(cell);
              }
            }
          }
        }
      }
    }
  }

  // Columns: the schema's, in its order; a figure column only when a planned quantizer or source fills it.
  std::set<sqb::Col> figures;
  const auto declare = [&](const std::vector<sqb::Col>& cols) { figures.insert(cols.begin(), cols.end()); };
  std::set<std::size_t> used_q, used_d;
  for (const Cell& c : plan.cells) {
    if (c.is_task()) {
      declare(task_figure_columns(c));
      continue;
    }
    if (c.opt_ratio) figures.insert(sqb::Col::opt_ratio);
    if (used_q.insert(c.q).second) {
      const auto q = sqb::make_quantizer(plan.quantizers[c.q], {c.k, 0});
      if (const auto* f = sqb::part_of<sqb::ReportsFigures>(*q)) declare(f->figure_columns());
    }
    if (used_d.insert(c.d).second) {
      const sqb::Source& src = *plan.sources[c.d];
      if (const auto* f = sqb::part_of<sqb::DescribesData>(src)) declare(f->data_columns());
      if (const auto* f = sqb::part_of<sqb::EvaluatesResult>(src)) declare(f->evaluation_columns());
    }
  }
  for (const sqb::ColumnInfo& c : sqb::column_schema()) {
    if (c.kind == sqb::ColumnKind::figure && !figures.contains(c.id)) continue;
    if (!column_used(c.id)) continue;
    plan.columns.push_back(c.id);
    plan.header.emplace_back(c.name);
  }
  check_outputs(config, plan.header);
  plan.coded_bits = config_reads_column(config, sqb::column_name(sqb::Col::coded_bits));

  // granularity=channel on a file laid out as one row is one codebook for the whole tensor: often a layout
  // that did not fit the file (a (1, 1, 1024, 1024) HWIO kernel read as rows). Synthetic laws state rows=.
  std::set<std::pair<std::size_t, std::size_t>> warned;
  for (const Cell& c : plan.cells) {
    if (c.is_task() || c.granularity != "channel" || !warned.insert({c.d, c.n}).second) continue;
    const sqb::Source& src = *plan.sources[c.d];
    bool file_source = true;
    try {
      src.check_n(sqb::kWholeFile);
    } catch (const sqb::Error&) {
      file_source = false;
    }
    if (!file_source || src.rows_of(c.n) != 1) continue;
    plan.warnings.push_back(
        "distribution '" + plan.labels[c.d] + "' (" + plan.distributions[c.d] + ") is one row as laid out" +
        (c.n == sqb::kWholeFile ? "" : " at n = " + std::to_string(c.n)) +
        ", so granularity=channel is one codebook for the whole tensor; if it is a weight, give "
        "its layout (layout=oihw, hwio or auto)");
  }
  return plan;
}

namespace {

// Calls f(section, key, column) for every result column the config's tables and plots read.
template <class F>
void for_each_output_column(const Config& config, F&& f) {
  for (const TableSpec& t : config.tables) {
    const std::string s = "table." + t.id;
    for (std::string c : split_list(t.rows))
      f(s, "rows", c);
    for (std::string c : split_list(t.cols))
      f(s, "cols", c);
    for (const std::string& v : table_values(t))
      f(s, "value", v);
    for (const Where& w : t.where)
      f(s, "where", w.column);
  }
  for (const PlotSpec& p : config.plots) {
    const std::string s = "plot." + p.id;
    f(s, "x", p.x);
    f(s, "y", p.y);
    f(s, "series", p.series);
    f(s, "dash", p.dash);
    for (const Where& w : p.where)
      f(s, "where", w.column);
    for (const std::vector<Where>& h : p.hlines) {
      for (const Where& w : h)
        f(s, "hline", w.column);
    }
  }
}

}  // namespace

void check_outputs(const Config& config, const std::vector<std::string>& header) {
  const std::string valid = join(header);
  for_each_output_column(config, [&](const std::string& section, const char* key, const std::string& column) {
    if (column.empty()) return;
    if (std::find(header.begin(), header.end(), column) == header.end()) {
      throw sqb::Error(config.path.string() + ": [" + section + "] key '" + key + "': no result column '" +
                       column + "'; the columns are: " + valid);
    }
  });
}

bool config_reads_column(const Config& config, std::string_view column) {
  bool found = false;
  for_each_output_column(
      config, [&](const std::string&, const char*, const std::string& c) { found = found || c == column; });
  return found;
}

std::string cell_label(const Plan& plan, const Cell& c) {
  if (c.is_task()) {
    std::string label =
        (c.quantized() ? plan.quantizers[c.q] : "none") + " | " + plan.tasks[c.d] + " | " + mode_name(c.mode);
    if (c.quantized()) label += " k=" + std::to_string(c.k) + " " + c.granularity;
    return label + " seed=" + std::to_string(c.seed);
  }
  return plan.quantizers[c.q] + " | " + plan.labels[c.d] +
         " | n=" + (c.n == sqb::kWholeFile ? std::string("all") : std::to_string(c.n)) +
         " k=" + std::to_string(c.k) + " " + c.granularity + " seed=" + std::to_string(c.seed);
}

}  // namespace sqbench
