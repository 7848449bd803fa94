#include "plan.hpp"

#include <algorithm>
#include <set>

#include "sqb/error.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "table.hpp"
#include "text.hpp"

namespace sqbench {

namespace fs = std::filesystem;

namespace {

// A task spec as a cell runs it: a relative data= folder is relative to the config's folder (as npy path=
// is), and its four files must be there, with valid headers, now rather than when the first cell starts; so
// must a model= checkpoint (relative to the config's folder as well).
sqb::task::TaskSpec resolve_task(const std::string& text, const fs::path& base_dir) {
  const sqb::task::TaskSpec spec = sqb::task::resolve_paths(sqb::task::parse_task_spec(text), base_dir);
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

sqb::Cell Plan::library_cell(const Cell& c) const {
  if (c.is_task()) {
    sqb::Cell cell{"", c.quantized() ? quantizers[c.q] : "", 0, c.k, c.granularity, c.seed};
    cell.task = tasks[c.d];
    cell.mode = c.mode;
    return cell;
  }
  return {distributions[c.d], quantizers[c.q], c.n, c.k, c.granularity, c.seed, c.opt_ratio, coded_bits};
}

sqb::CellDescription Plan::describe(const Cell& c, int threads) const {
  sqb::DescribeOptions options;
  if (c.is_task()) {
    options.parts.task = &task_specs[c.d];
  } else {
    options.parts.source = sources[c.d].get();
  }
  options.threads = threads;
  return sqb::describe(library_cell(c), options);
}

std::vector<sqb::Col> Plan::columns_of(const Cell& c) const {
  if (c.is_task()) return describe(c).columns;
  const sqb::Cell cell = library_cell(c);
  return sqb::cell_columns(cell, *sqb::make_quantizer(cell.quantizer, {cell.k, cell.seed}), *sources[c.d]);
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

namespace {

// make_plan's state while it walks the sweeps.
class PlanBuilder {
 public:
  explicit PlanBuilder(const Config& config)
      : config_(config), file_(config.path.string()), dctx_{fs::absolute(config.path).parent_path()} {
    any_task_ = std::any_of(config.sweeps.begin(), config.sweeps.end(),
                            [](const SweepSpec& s) { return !s.tasks.empty(); });
    any_distribution_ = std::any_of(config.sweeps.begin(), config.sweeps.end(),
                                    [](const SweepSpec& s) { return !s.distributions.empty(); });
    for (const sqb::ColumnInfo& c : sqb::column_schema()) {
      if (c.kind == sqb::ColumnKind::key && column_used(c.id)) plan_.keys.push_back(c.id);
    }
    plan_.coded_bits = config_reads_column(config, sqb::column_name(sqb::Col::coded_bits));
  }

  void add_sweep(const SweepSpec& sw) {
    const std::string where = sw.id.empty() ? "[sweep]" : "[sweep." + sw.id + "]";
    const std::vector<std::size_t> ds = add_sources(sw, where);
    const std::vector<std::size_t> qs = add_quantizers(sw, where);
    if (sw.tasks.empty()) {
      add_distribution_cells(sw, ds, qs);
    } else {
      add_task_cells(sw, where, qs);
    }
  }

  Plan finish() {
    select_columns();
    check_outputs(config_, plan_.header);
    warn_one_row_channels();
    return std::move(plan_);
  }

 private:
  // The key columns: distribution and n only when some sweep lists distributions, task and mode only when
  // one lists tasks, so a config without task sweeps keeps the header it always had.
  bool column_used(sqb::Col c) const {
    if (c == sqb::Col::distribution || c == sqb::Col::n || c == sqb::Col::source) return any_distribution_;
    if (c == sqb::Col::task || c == sqb::Col::mode || c == sqb::Col::train_s) return any_task_;
    return true;
  }

  static std::size_t index_of(std::vector<std::string>& list, const std::string& v) {
    const auto it = std::find(list.begin(), list.end(), v);
    if (it != list.end()) return static_cast<std::size_t>(it - list.begin());
    list.push_back(v);
    return list.size() - 1;
  }

  // A label names one source in results.csv, tables and plots, so labels and specs pair one to one.
  void pair_label(const sqb::SourceSpec& d, const std::string& where) {
    if (const auto it = label_spec_.find(d.label); it != label_spec_.end() && it->second != d.spec) {
      throw sqb::Error(file_ + ": " + where + " distribution: two sources have the label '" + d.label +
                       "': \"" + it->second + "\" and \"" + d.spec +
                       "\"; give one of them its own label= ({} in it stands for the default label, e.g. "
                       "label={}:b; labels "
                       "name the sources in results.csv, tables and "
                       "plots)");
    }
    if (const auto it = spec_label_.find(d.spec); it != spec_label_.end() && it->second != d.label) {
      throw sqb::Error(file_ + ": " + where + " distribution: the source \"" + d.spec +
                       "\" has two labels, '" + it->second + "' and '" + d.label + "'; give it one");
    }
    label_spec_.emplace(d.label, d.spec);
    spec_label_.emplace(d.spec, d.label);
  }

  void check_n(const SweepSpec& sw, const std::string& where, const sqb::SourceSpec& d, std::size_t di) {
    for (const std::size_t n : sw.n) {
      try {
        plan_.sources[di]->check_n(n);
      } catch (const sqb::Error& e) {
        if (!sw.n_given) {
          throw sqb::Error(file_ + ": " + where +
                           " has no key 'n': n defaults to all (every value) only when "
                           "every distribution is a file (npy, safetensors), and distribution \"" +
                           d.spec + "\" is not; give n");
        }
        throw sqb::Error(file_ + ": " + where + " key 'n': " + e.what());
      }
    }
  }

  // Globs become one source per file or tensor (sorted), each labelled; label= leaves the spec.
  std::vector<std::size_t> add_sources(const SweepSpec& sw, const std::string& where) {
    std::vector<sqb::SourceSpec> specs;
    for (const std::string& d : sw.distributions) {
      try {
        for (sqb::SourceSpec& e : sqb::expand_source_spec(d, dctx_))
          specs.push_back(std::move(e));
      } catch (const sqb::Error& e) {
        throw sqb::Error(file_ + ": " + where + " distribution: " + e.what());
      }
    }
    std::vector<std::size_t> ds;
    for (const sqb::SourceSpec& d : specs) {
      pair_label(d, where);
      const std::size_t before = plan_.distributions.size();
      const std::size_t di = index_of(plan_.distributions, d.spec);
      if (di == before) {
        plan_.labels.push_back(d.label);
        try {
          plan_.sources.push_back(sqb::make_source(d.spec, dctx_));
        } catch (const sqb::Error& e) {
          throw sqb::Error(file_ + ": " + where + " distribution: " + e.what());
        }
      }
      check_n(sw, where, d, di);
      ds.push_back(di);
    }
    return ds;
  }

  // Why quantizer qi cannot give k codes ("" when it can), asked of the strategy once per (quantizer, K).
  const std::string& not_applicable(std::size_t qi, std::size_t k, const std::string& where) {
    const auto it = not_applicable_.find({qi, k});
    if (it != not_applicable_.end()) return it->second;
    try {
      return not_applicable_[{qi, k}] = sqb::not_applicable(plan_.quantizers[qi], k);
    } catch (const sqb::Error& e) {
      throw sqb::Error(file_ + ": " + where + " quantizer: " + e.what());
    }
  }

  std::vector<std::size_t> add_quantizers(const SweepSpec& sw, const std::string& where) {
    // A task sweep quantizes only in its ptq and qat modes.
    const bool fp32_only = !sw.tasks.empty() && std::all_of(sw.modes.begin(), sw.modes.end(),
                                                            [](const std::string& m) { return m == "fp32"; });
    std::vector<std::size_t> qs;
    for (const std::string& q : fp32_only ? std::vector<std::string>() : sw.quantizers) {
      const std::size_t qi = index_of(plan_.quantizers, q);
      std::size_t usable = 0;
      std::string reason;
      for (const std::size_t k : sw.k) {
        const std::string& why = not_applicable(qi, k, where);
        if (why.empty()) {
          ++usable;
        } else {
          reason = why;
        }
      }
      if (usable == 0) {
        throw sqb::Error(file_ + ": " + where + " quantizer \"" + q + "\" has no usable cell: " + reason);
      }
      qs.push_back(qi);
    }
    return qs;
  }

  // A cell several sweeps list (paper configs overlap their scaling sweeps at the headline point) runs once,
  // in the first sweep that lists it; a cell whose quantizer cannot give its K is counted as skipped.
  void add(const Cell& cell, const std::string& sweep) {
    if (cell.quantized()) {
      if (const std::string& why = not_applicable_[{cell.q, cell.k}]; !why.empty()) {
        ++plan_.skipped[why];
        return;
      }
    }
    if (seen_cells_.emplace(plan_.key_fields(cell), sweep).second) plan_.cells.push_back(cell);
  }

  void add_task_cells(const SweepSpec& sw, const std::string& where, const std::vector<std::size_t>& qs) {
    std::vector<std::size_t> ts;
    for (const std::string& t : sw.tasks) {
      const std::size_t before = plan_.tasks.size();
      const std::size_t ti = index_of(plan_.tasks, t);
      if (ti == before) {
        try {
          plan_.task_specs.push_back(resolve_task(t, dctx_.base_dir));
        } catch (const sqb::Error& e) {
          throw sqb::Error(file_ + ": " + where + " task: " + e.what());
        }
      }
      ts.push_back(ti);
    }
    const int repeats = sw.repeats > 0 ? sw.repeats : config_.repeats;
    const bool fp32 = std::find(sw.modes.begin(), sw.modes.end(), "fp32") != sw.modes.end();
    for (const std::size_t ti : ts) {
      for (const std::uint64_t seed : sw.seeds) {
        // The float model, and (so that QAT is never credited for its extra epochs) the float model
        // fine-tuned for as many epochs as QAT, where the task fine-tunes at all (qat_epochs > 0).
        if (fp32) {
          add(Cell{kNoQuantizer, ti, 0, 0, "", seed, sw.id, repeats, Mode::fp32}, sw.id);
          const Cell ft{kNoQuantizer, ti, 0, 0, "", seed, sw.id, repeats, Mode::fp32_ft};
          if (plan_.describe(ft).applies) add(ft, sw.id);
        }
        for (const std::size_t qi : qs) {
          for (const std::size_t k : sw.k) {
            for (const std::string& g : sw.granularities) {
              for (const std::string& m : sw.modes) {
                if (m == "fp32") continue;
                add(Cell{qi, ti, 0, k, g, seed, sw.id, repeats, m == "ptq" ? Mode::ptq : Mode::qat}, sw.id);
              }
            }
          }
        }
      }
    }
  }

  void add_distribution_cells(const SweepSpec& sw, const std::vector<std::size_t>& ds,
                              const std::vector<std::size_t>& qs) {
    const int repeats = sw.repeats > 0 ? sw.repeats : config_.repeats;
    const bool opt_ratio = sw.opt_ratio.value_or(config_.opt_ratio);
    for (const std::size_t di : ds) {
      for (const std::size_t n : sw.n) {
        for (const std::uint64_t seed : sw.seeds) {
          for (const std::size_t qi : qs) {
            for (const std::size_t k : sw.k) {
              for (const std::string& g : sw.granularities)
                add(Cell{qi, di, n, k, g, seed, sw.id, repeats, Mode::none, opt_ratio}, sw.id);
            }
          }
        }
      }
    }
  }

  // The schema's columns, in its order; a figure column only when some planned cell fills it (as its
  // description, or its task, says).
  void select_columns() {
    std::set<sqb::Col> figures;
    // (task cell, quantizer, source or task, opt_ratio): what a description's columns depend on.
    std::set<std::tuple<bool, std::size_t, std::size_t, bool>> described;
    for (const Cell& c : plan_.cells) {
      if (!described.insert({c.is_task(), c.q, c.d, c.opt_ratio}).second) continue;
      for (const sqb::Col col : plan_.columns_of(c)) {
        if (sqb::column_info(col).kind == sqb::ColumnKind::figure) figures.insert(col);
      }
    }
    for (const sqb::ColumnInfo& c : sqb::column_schema()) {
      if (c.kind == sqb::ColumnKind::figure && !figures.contains(c.id)) continue;
      if (!column_used(c.id)) continue;
      plan_.columns.push_back(c.id);
      plan_.header.emplace_back(c.name);
    }
  }

  // granularity=channel on a file laid out as one row is one codebook for the whole tensor: often a layout
  // that did not fit the file (a (1, 1, 1024, 1024) HWIO kernel read as rows). Synthetic laws state rows=.
  void warn_one_row_channels() {
    std::set<std::pair<std::size_t, std::size_t>> warned;
    for (const Cell& c : plan_.cells) {
      if (c.is_task() || c.granularity != "channel" || !warned.insert({c.d, c.n}).second) continue;
      const sqb::DrawShape s = plan_.sources[c.d]->shape(c.n);
      if (!s.from_file() || s.rows != 1) continue;
      plan_.warnings.push_back(
          "distribution '" + plan_.labels[c.d] + "' (" + plan_.distributions[c.d] +
          ") is one row as laid out" + (c.n == sqb::kWholeFile ? "" : " at n = " + std::to_string(c.n)) +
          ", so granularity=channel is one codebook for the whole tensor; if it is a weight, give "
          "its layout (layout=oihw, hwio or auto)");
    }
  }

  const Config& config_;
  const std::string file_;
  const sqb::SourceContext dctx_;
  bool any_task_ = false, any_distribution_ = false;
  Plan plan_;
  std::map<std::pair<std::size_t, std::size_t>, std::string> not_applicable_;  // (q, k) -> reason ("" = fine)
  std::map<std::vector<std::string>, std::string> seen_cells_;                 // key fields -> sweep id
  std::map<std::string, std::string> label_spec_, spec_label_;
};

}  // namespace

Plan make_plan(const Config& config) {
  PlanBuilder builder(config);
  for (const SweepSpec& sw : config.sweeps)
    builder.add_sweep(sw);
  return builder.finish();
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
