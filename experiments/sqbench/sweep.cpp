#include "sweep.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "checks.hpp"
#include "context.hpp"
#include "files.hpp"
#include "inputs.hpp"
#include "lock.hpp"
#include "memory.hpp"
#include "plan.hpp"
#include "plot.hpp"
#include "progress.hpp"
#include "sqb/cell.hpp"
#include "sqb/error.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "sqb/spec.hpp"
#include "sqb/task.hpp"
#include "table.hpp"
#include "task_cells.hpp"
#include "text.hpp"

namespace sqbench {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// Beside results.partial.csv: the fingerprints of the files its cells were computed from.
constexpr const char* kPartialCsv = "results.partial.csv";
constexpr const char* kPartialInputs = "results.partial.inputs.json";

// ---- interruption
// ----------------------------------------------------------------------------------------------

std::atomic<bool> g_stop{false};

extern "C" void on_signal(int sig) {
  if (g_stop.exchange(true)) {  // second signal: stop now
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  static const char msg[] =
      "\nsqbench: interrupted: finishing the cells in flight (again to stop at once); resume with --resume\n";
  [[maybe_unused]] const auto w = ::write(STDERR_FILENO, msg, sizeof msg - 1);
}

// Installs the handlers for the lifetime of a run and restores the previous ones.
class SignalGuard {
 public:
  SignalGuard() {
    g_stop = false;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

// ---- timing gate
// -----------------------------------------------------------------------------------------------

// Quality work runs concurrently (shared); a timed section runs alone (exclusive). A waiting timer stops new
// quality work from starting, so timings cannot starve and never overlap other work.
class Gate {
 public:
  void enter_shared() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !timing_ && waiting_ == 0; });
    ++active_;
  }
  void leave_shared() {
    std::lock_guard lock(mu_);
    --active_;
    cv_.notify_all();
  }
  void enter_exclusive() {
    std::unique_lock lock(mu_);
    ++waiting_;
    cv_.wait(lock, [&] { return active_ == 0 && !timing_; });
    --waiting_;
    timing_ = true;
  }
  void leave_exclusive() {
    std::lock_guard lock(mu_);
    timing_ = false;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0, waiting_ = 0;
  bool timing_ = false;
};

// ---- data cache
// ------------------------------------------------------------------------------------------------

// Importance weights a source attached: one per value, finite and >= 0 (checked when drawn, like the data, so
// the pipeline need not check them again inside a timed stage).
void check_weights(const sqb::Tensor& t, const std::string& what) {
  if (t.weights.size() != t.size()) throw std::logic_error(what + ": weights of the wrong size");
  sqb::check_finite(t.weights, what + " weights", t.cols);
  for (std::size_t i = 0; i < t.weights.size(); ++i) {
    if (t.weights[i] < 0) {
      throw sqb::Error(what + ": the weight at index " + std::to_string(i) +
                       " is negative; importance weights "
                       "must be >= 0");
    }
  }
}

// A tensor is generated once and shared by the cells that need it while any of them runs.
class DataCache {
 public:
  using Warn = std::function<void(const std::string&)>;
  DataCache(const Plan& plan, Warn warn) : plan_(plan), warn_(std::move(warn)) {}
  std::shared_ptr<const sqb::Tensor> get(const Cell& c) {
    std::shared_ptr<Entry> e;
    {
      std::lock_guard lock(mu_);
      auto& slot = entries_[{c.d, c.n, c.seed}];
      if (!slot) slot = std::make_shared<Entry>();
      e = slot;
    }
    std::lock_guard lock(e->mu);
    if (auto t = e->tensor.lock()) return t;
    auto t = std::make_shared<const sqb::Tensor>(plan_.sources[c.d]->draw(c.n, c.seed));
    const std::string what = "distribution \"" + plan_.distributions[c.d] + "\"";
    sqb::check_finite(t->values, what, t->cols);
    if (!t->weights.empty()) {
      check_weights(*t, what);
      // The pipeline designs a block whose weights are all zero as unweighted, and a weighted mean over
      // zero weight has no value: the rows would look weighted but are not.
      if (std::all_of(t->weights.begin(), t->weights.end(), [](float w) { return w == 0.0f; })) {
        std::lock_guard warned_lock(mu_);
        if (all_zero_warned_.insert(c.d).second) {
          warn_(what +
                ": every importance weight is 0, so its cells quantize the data unweighted (as "
                "without weights=) and leave wmse and opt_ratio blank");
        }
      }
    }
    e->tensor = t;
    return t;
  }

 private:
  struct Entry {
    std::mutex mu;
    std::weak_ptr<const sqb::Tensor> tensor;
  };
  const Plan& plan_;
  Warn warn_;
  std::mutex mu_;
  std::map<std::tuple<std::size_t, std::size_t, std::uint64_t>, std::shared_ptr<Entry>> entries_;
  std::set<std::size_t> all_zero_warned_;  // distributions already warned about
};

// ---- statistics
// ------------------------------------------------------------------------------------------------

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return median_of_sorted(v);
}

// median, min and MAD (median absolute deviation from the median) as CSV fields.
std::vector<std::string> timing_fields(const std::vector<double>& t) {
  const double med = median_of(t);
  std::vector<double> dev;
  for (const double x : t)
    dev.push_back(std::abs(x - med));
  return {format_number(med, 6), format_number(*std::min_element(t.begin(), t.end()), 6),
          format_number(median_of(dev), 6)};
}

// ---- one cell
// --------------------------------------------------------------------------------------------------

std::vector<std::string> run_cell(const Config& config, const Plan& plan, const Cell& c, DataCache& cache,
                                  Gate& gate, int threads, std::atomic<std::size_t>& opt_ratio_skipped) {
  std::vector<std::string> row = plan.key_fields(c);
  row.resize(plan.header.size());
  const auto set = [&](sqb::Col column, const std::string& value) { row[plan.position(column)] = value; };

  gate.enter_shared();
  std::shared_ptr<const sqb::Tensor> data;
  std::unique_ptr<sqb::Quantizer> q;
  sqb::QuantizeOptions options;
  const sqb::Cell cell = plan.library_cell(c);
  try {
    data = cache.get(c);  // checked (finite, non-empty) when drawn: the pipeline need not check again
    // Strategies with randomness default to the cell's seed.
    q = sqb::make_quantizer(cell.quantizer, {cell.k, cell.seed});
    options = sqb::cell_options(cell, *data, threads);
    options.check_input = false;
    // Quality: one run gives the codebooks and codes the figures come from (every run is deterministic).
    sqb::EvaluateOptions eval;
    eval.parts = {plan.sources[c.d].get(), q.get()};
    eval.threads = threads;
    eval.opt_ratio_max_n = config.opt_ratio_max_n;
    eval.check_input = false;
    const sqb::CellFigures figures = sqb::evaluate(cell, *data, eval);
    if (figures.opt_ratio_skipped) ++opt_ratio_skipped;  // left empty; the run says so at the end
    for (const sqb::Figure& f : figures.figures)
      set(f.column,
          std::isnan(f.value) ? "" : format_number(f.value, f.column == sqb::Col::converged ? 4 : 10));
  } catch (...) {
    gate.leave_shared();
    throw;
  }
  gate.leave_shared();

  // Timing: repeats after one warm-up, with nothing else of sqbench running; the same pipeline, its fit,
  // encode and decode stages timed, the measure stage off.
  gate.enter_exclusive();
  std::vector<double> fit, enc, dec, quant;
  try {
    sqb::QuantizeOptions timed = options;
    timed.measure = false;
    sqb::Quantized scratch;
    for (int rep = -1; rep < c.repeats; ++rep) {
      sqb::StageTimes t;
      sqb::quantize_into(*data, *q, timed, scratch, &t);
      if (rep >= 0) {
        fit.push_back(t.fit);
        enc.push_back(t.encode);
        dec.push_back(t.decode);
        quant.push_back(t.fit + t.encode);
      }
    }
  } catch (...) {
    gate.leave_exclusive();
    throw;
  }
  gate.leave_exclusive();
  using sqb::Col;
  const std::pair<const std::vector<double>*, std::array<Col, 3>> timings[] = {
      {&fit, {Col::fit_s, Col::fit_s_min, Col::fit_s_mad}},
      {&enc, {Col::encode_s, Col::encode_s_min, Col::encode_s_mad}},
      {&dec, {Col::decode_s, Col::decode_s_min, Col::decode_s_mad}},
      {&quant, {Col::quantize_s, Col::quantize_s_min, Col::quantize_s_mad}},
  };
  for (const auto& [values, columns] : timings) {
    const std::vector<std::string> f = timing_fields(*values);
    for (std::size_t i = 0; i < 3; ++i)
      set(columns[i], f[i]);
  }
  set(Col::threads, std::to_string(threads));
  set(Col::config_hash, config.hash);
  return row;
}

// ---- appending rows
// --------------------------------------------------------------------------------------------

class Appender {
 public:
  explicit Appender(const fs::path& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND);
    if (fd_ < 0)
      throw sqb::Error(path.string() + ": cannot open for appending (" + std::strerror(errno) + ")");
  }
  ~Appender() {
    if (fd_ >= 0) ::close(fd_);
  }
  // One write() per row, then fsync: a kill loses at most the row being written, and a torn last line is
  // detected and dropped by --resume.
  void append(const std::string& line) {
    std::lock_guard lock(mu_);
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
      const ssize_t w = ::write(fd_, p, left);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        throw sqb::Error(path_.string() + ": write failed (" + std::strerror(errno) +
                         "); the cells finished before it are kept there (run again with --resume), and the "
                         "previous results.csv is unchanged");
      }
      p += w;
      left -= static_cast<std::size_t>(w);
    }
    if (::fsync(fd_) != 0) throw sqb::Error(path_.string() + ": fsync failed (" + std::strerror(errno) + ")");
  }

 private:
  fs::path path_;
  int fd_ = -1;
  std::mutex mu_;
};

// A cell's key fields for messages: "column=value" for each key that has a value.
std::string key_text(const std::vector<std::string>& header, const std::vector<std::string>& key) {
  std::string out;
  for (std::size_t i = 0; i < key.size() && i < header.size(); ++i) {
    if (!key[i].empty()) out += (out.empty() ? "" : " | ") + header[i] + "=" + key[i];
  }
  return out;
}

Provenance provenance(const Config& c) {
  return {c.name, c.hash};
}

// A context.json as JSON, or null when the file is missing or not valid JSON (the callers fall back on what
// they can read elsewhere).
nlohmann::json read_context(const fs::path& context) {
  std::ifstream in(context, std::ios::binary);
  if (!in) return nullptr;
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  return j.is_discarded() || !j.is_object() ? nlohmann::json(nullptr) : j;
}

// The string at config.name, run.shard, ... of a context.json, or "".
std::string context_string(const nlohmann::json& context, const char* object, const char* key) {
  if (!context.is_object() || !context.contains(object) || !context[object].is_object()) return "";
  const nlohmann::json& o = context[object];
  return o.contains(key) && o[key].is_string() ? o[key].get<std::string>() : "";
}

// Whether a results.partial.csv holds at least one finished cell (an unreadable one is assumed to).
bool has_finished_cells(const fs::path& partial) {
  try {
    return !read_csv(partial, /*allow_torn_tail=*/true).rows.empty();
  } catch (const sqb::Error&) {
    return true;
  }
}

// The hash of the config whose finished results are in `dir` ("" when there are none): its config.ini, or
// the config_hash column of results.csv when config.ini is missing.
std::string finished_config_hash(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir / "results.csv", ec)) return "";
  std::ifstream in(dir / "config.ini", std::ios::binary);
  if (in) {
    std::ostringstream text;
    text << in.rdbuf();
    return text_hash(text.str());
  }
  try {
    const CsvTable t = read_csv(dir / "results.csv");
    const auto c = t.column("config_hash");
    return c && !t.rows.empty() ? t.rows[0][*c] : "";
  } catch (const sqb::Error&) {
    return "";
  }
}

// The tables and plots the config of `dir` made that `config` will not make again (nothing when it is the
// same config, or its config.ini cannot be read).
std::vector<fs::path> stale_outputs(const fs::path& dir, const Config& config) {
  std::error_code ec;
  if (!fs::exists(dir / "config.ini", ec)) return {};
  Config old;
  try {
    old = load_config(dir / "config.ini", ConfigUse::outputs);
  } catch (const sqb::Error&) {
    return {};
  }
  if (old.hash == config.hash) return {};
  std::vector<fs::path> out;
  if (!old.tables.empty() && config.tables.empty()) {
    out.push_back(dir / "tables.md");
    out.push_back(dir / "tables.tex");
  }
  for (const PlotSpec& p : old.plots) {
    const bool kept = std::any_of(config.plots.begin(), config.plots.end(),
                                  [&](const PlotSpec& q) { return q.id == p.id; });
    if (kept) continue;
    for (const char* ext : {".png", ".svg", ".gp", ".dat"})
      out.push_back(dir / "plots" / (p.id + ext));
  }
  return out;
}

}  // namespace

Config load_results_config(const fs::path& dir) {
  Config c = load_config(dir / "config.ini");
  if (const std::string name = context_string(read_context(dir / "context.json"), "config", "name");
      !name.empty())
    c.name = name;
  return c;
}

StagedOutputs::~StagedOutputs() {
  std::error_code ec;
  for (const auto& [from, to] : renames)
    fs::remove(from, ec);
}

void StagedOutputs::commit(bool quiet) {
  for (const auto& [from, to] : renames) {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      throw sqb::Error(to.string() + ": renaming into place failed (" + std::strerror(errno) + ")");
    }
  }
  renames.clear();
  for (const std::string& w : warnings)
    std::cerr << "sqbench: WARNING: " << w << "\n";
  if (!quiet) {
    for (const std::string& n : notes)
      std::cerr << "sqbench: " << n << "\n";
  }
}

StagedOutputs stage_outputs(const Config& config, const CsvTable& results, const fs::path& out) {
  // Everything is built in memory first, so a table or plot that cannot be made fails before any file of the
  // folder is replaced (the messages name the config and the section).
  const auto in_section = [&](const std::string& section, const auto& make) {
    try {
      return make();
    } catch (const sqb::Error& e) {
      throw sqb::Error(config.path.string() + ": [" + section + "]: " + e.what());
    }
  };
  std::string md = "# Tables: config " + config.name + " (hash " + config.hash + ")\n\n";
  std::string tex =
      "% Tables generated by sqbench: config " + config.name + " (hash " + config.hash + ")\n\n";
  for (const TableSpec& t : config.tables) {
    in_section("table." + t.id, [&] {
      md += render_table(results, t, TableFormat::md, provenance(config)) + "\n";
      tex += render_table(results, t, TableFormat::latex, provenance(config)) + "\n";
      return 0;
    });
  }
  std::vector<PlotScript> scripts;
  for (const PlotSpec& p : config.plots)
    scripts.push_back(
        in_section("plot." + p.id, [&] { return plot_script(results, p, provenance(config)); }));

  // Then every file is written under a staging name and checked; nothing takes a final name yet.
  StagedOutputs staged;
  const std::string tag = ".tmp." + std::to_string(::getpid());
  if (!config.tables.empty()) {
    ensure_writable_dir(out);
    for (const auto& [name, text] : {std::pair<std::string, const std::string&>{"tables.md", md},
                                     std::pair<std::string, const std::string&>{"tables.tex", tex}}) {
      const fs::path tmp = out / (name + tag);
      staged.renames.emplace_back(tmp, out / name);
      write_file_atomic(tmp, text);
    }
    staged.notes.push_back("wrote " + std::to_string(config.tables.size()) + " table(s) to " +
                           (out / "tables.md").string() + " and tables.tex");
  }
  if (!config.plots.empty()) {
    const fs::path dir = out / "plots";
    ensure_writable_dir(dir);
    for (std::size_t i = 0; i < config.plots.size(); ++i) {
      const PlotSpec& p = config.plots[i];
      const PlotFiles f = write_plot(scripts[i], p, dir, /*commit=*/false);
      staged.renames.insert(staged.renames.end(), f.staged.begin(), f.staged.end());
      if (!f.rendered) {
        staged.warnings.push_back("plot '" + p.id + "' was not rendered: " + f.message +
                                  "\n         its script and data are in " + dir.string());
      } else {
        staged.notes.push_back("wrote " + f.png.string() + " (and .svg, .gp, .dat)");
      }
    }
  }
  return staged;
}

void render_outputs(const Config& config, const CsvTable& results, const fs::path& out, bool quiet) {
  stage_outputs(config, results, out).commit(quiet);
}

// What an interrupted run of this config left in `out` (results.partial.csv, else a finished results.csv):
// its rows that are finished cells of `mine`, by cell index. A row that is not what a finished cell writes is
// dropped with a warning (its cell runs again); rows of another config, other columns or other input files
// are an Error that changes nothing.
struct EarlierRows {
  std::map<std::size_t, std::vector<std::string>> rows;  // cell index -> row
  bool dropped_torn = false;                             // the last line was cut off mid-write
};
EarlierRows resumable_rows(const Config& config, const Plan& plan, const fs::path& out,
                           const std::vector<std::size_t>& mine,
                           const std::vector<InputFingerprint>& inputs) {
  std::map<std::vector<std::string>, std::size_t> index_of_key;
  for (const std::size_t i : mine)
    index_of_key[plan.key_fields(plan.cells[i])] = i;
  const fs::path partial = out / kPartialCsv, partial_inputs = out / kPartialInputs,
                 final_csv = out / "results.csv";
  std::error_code ec;
  EarlierRows e;
  const fs::path from = fs::exists(partial, ec) ? partial : final_csv;
  if (fs::exists(from, ec)) {
    const CsvTable old = read_csv(from, /*allow_torn_tail=*/true, /*drop_bad_width=*/true);
    e.dropped_torn = old.dropped_torn_tail;
    // A row that is not what a finished cell writes (edited by hand, torn by a crash) is never copied into
    // results.csv: its cell runs again.
    const auto drop = [&](std::size_t line, const std::string& why) {
      std::cerr << "sqbench: warning: " << from.string() << ":" << line << ": " << why
                << "; the row is dropped and its cell computed again\n";
    };
    for (const std::string& d : old.dropped) {
      const auto colon = d.find(':');
      drop(std::stoul(d.substr(0, colon)), d.substr(colon + 2));
    }
    const fs::path recorded_in = from == partial ? partial_inputs : out / "context.json";
    if (const auto recorded = read_inputs(recorded_in)) {
      check_same_inputs(*recorded, inputs, from.string() + ": cannot resume");
    } else if (!old.rows.empty() && !inputs.empty()) {
      std::cerr << "sqbench: warning: " << recorded_in.string()
                << " records no input fingerprints (an older sqbench wrote it): the resumed cells are "
                   "assumed to come from the same input files\n";
    }
    if (old.header != plan.header) {
      throw sqb::Error(from.string() +
                       ": cannot resume: its columns differ from this config's (it was written by a "
                       "different config or sqbench version); nothing was changed");
    }
    const std::size_t hash_col = *old.column("config_hash");
    for (std::size_t ri = 0; ri < old.rows.size(); ++ri) {
      const std::vector<std::string>& r = old.rows[ri];
      const std::size_t line = old.row_lines[ri];
      if (r[hash_col] != config.hash) {
        throw sqb::Error(from.string() + ": cannot resume: it holds results of a different config (hash " +
                         r[hash_col] + ", this config's is " + config.hash + "); nothing was changed");
      }
      const std::vector<std::string> key(r.begin(),
                                         r.begin() + static_cast<std::ptrdiff_t>(plan.keys.size()));
      const auto it = index_of_key.find(key);
      if (it == index_of_key.end()) {
        drop(line, "its key (" + key_text(old.header, key) + ") is no cell of this config");
        continue;
      }
      if (e.rows.contains(it->second)) {
        drop(line, "its cell (" + key_text(old.header, key) + ") appears on an earlier line too");
        continue;
      }
      std::string bad;
      for (std::size_t c = plan.keys.size(); c < r.size() && bad.empty(); ++c) {
        if (sqb::column_info(plan.columns[c]).numeric && !r[c].empty() && !parse_field_number(r[c])) {
          bad = "its " + old.header[c] + " field '" + r[c].substr(0, 40) + "' is not a number";
        }
      }
      if (!bad.empty()) {
        drop(line, bad);
        continue;
      }
      e.rows[it->second] = r;
    }
  }
  return e;
}

// A run without --resume or --fresh refuses a folder holding an interrupted run's finished cells or another
// config's finished results.
void refuse_to_replace(const Config& config, const fs::path& out) {
  const fs::path partial = out / kPartialCsv;
  std::error_code ec;
  // A partial file with no finished cell (a run that died in its first cell) holds nothing to lose.
  if (fs::exists(partial, ec) && has_finished_cells(partial)) {
    throw sqb::Error(partial.string() +
                     " holds the results of an interrupted run; pass --resume to continue it, or "
                     "--fresh to discard it and start over");
  }
  if (const std::string old = finished_config_hash(out); !old.empty() && old != config.hash) {
    throw sqb::Error("results folder " + out.string() +
                     " holds the finished results of a different config (hash " + old +
                     "; this config's is " + config.hash +
                     "); nothing was changed: pass --fresh to replace them, or choose another --out");
  }
}

// A complete run's folder: results.csv in the canonical order, config.ini and context.json written together,
// after the tables and plots were made (a view that cannot be made leaves the folder as it was); the partial
// files and what another config made and this one does not remake go.
void write_complete(const Config& config, const Plan& plan,
                    const std::map<std::size_t, std::vector<std::string>>& rows, RunInfo& info,
                    const fs::path& out, const RunOptions& opt) {
  const bool sharded = opt.shard_count > 1;
  const fs::path partial = out / kPartialCsv, partial_inputs = out / kPartialInputs,
                 final_csv = out / "results.csv";
  std::error_code ec;
  CsvTable results;
  results.header = plan.header;
  for (auto& [i, r] : rows)
    results.rows.push_back(r);
  info.complete = true;
  // With --fresh over another config's results, what that config made and this one does not remake goes too,
  // so the folder never mixes the two.
  const std::vector<fs::path> stale = stale_outputs(out, config);
  // The tables and plots are made (and checked complete) before results.csv is replaced: a table that
  // cannot be made or a plot that cannot be written leaves the folder as it was.
  StagedOutputs views;
  if (!sharded) {
    try {
      views = stage_outputs(config, results, out);
    } catch (const sqb::Error& e) {
      throw sqb::Error(std::string(e.what()) + "; the results folder " + folder_text(out) +
                       " still holds its earlier results, tables and plots (this run's cells are in " +
                       partial.filename().string() + ")");
    }
  }
  write_files_atomic({{final_csv, csv_text(results.header, results.rows)},
                      {out / "config.ini", config.text},
                      {out / "context.json", context_json(config, info)}});
  fs::remove(partial, ec);
  fs::remove(partial_inputs, ec);
  for (const fs::path& f : stale)
    fs::remove(f, ec);
  // Views rendered from the folder's earlier results (sqbench render --config) describe results that are
  // gone.
  fs::remove_all(out / "views", ec);
  if (sharded) {
    if (!opt.quiet) {
      std::cerr << "sqbench: shard " << info.shard << " complete; combine the shards with `sqbench merge "
                << out.parent_path().string() << "/shard-*`\n";
    }
  } else {
    views.commit(opt.quiet);
  }
}

RunResult run_sweep(const Config& config, const RunOptions& opt) {
  const Clock::time_point start = Clock::now();
  const Plan plan = make_plan(config);
  check_references(config);
  // Every table and plot is checked against the planned cells now, not after hours of work.
  check_outputs_before_work(config, planned_results(config, plan), RowsKind::planned);
  if (opt.shard_count == 0 || opt.shard_index >= opt.shard_count) {
    throw sqb::Error("--shard " + std::to_string(opt.shard_index) + "/" + std::to_string(opt.shard_count) +
                     ": need 0 <= i < n");
  }
  const bool sharded = opt.shard_count > 1;
  fs::path out = opt.out_dir;
  if (out.empty()) {
    out = fs::path("results") / config.name;
    if (sharded) {
      out /= "shard-" + std::to_string(opt.shard_index) + "-of-" + std::to_string(opt.shard_count);
    }
  }
  // The folder is this run's until it returns: a second run into it stops here, before reading or changing
  // anything. Shards of one array each lock their own folder and run side by side.
  std::error_code exists_ec;
  const bool folder_existed = fs::exists(out, exists_ec);
  const FolderLock folder_lock(out);
  // A run refused before its first file (memory, resume checks) leaves no folder it created behind.
  struct RemoveIfRefused {
    fs::path dir;
    bool armed;
    ~RemoveIfRefused() {
      if (!armed) return;
      std::error_code ec;
      fs::remove(dir / FolderLock::kFileName, ec);
      fs::remove(dir, ec);  // only when empty
    }
  } remove_if_refused{out, !folder_existed};
  // This shard's cells (round-robin over the canonical order, so shards get similar mixes of work).
  std::vector<std::size_t> mine;
  for (std::size_t i = opt.shard_index; i < plan.cells.size(); i += opt.shard_count)
    mine.push_back(i);

  // Every file the cells read, fingerprinted before any cell runs: a resumed run must read the same bytes.
  const std::vector<InputFingerprint> inputs = fingerprints(plan_inputs(config, plan));
  const fs::path partial = out / kPartialCsv;
  const fs::path partial_inputs = out / kPartialInputs;
  // Earlier results: resumed, or a reason to refuse.
  EarlierRows earlier;
  if (opt.resume) {
    earlier = resumable_rows(config, plan, out, mine, inputs);
  } else if (!opt.fresh) {
    refuse_to_replace(config, out);
  }
  std::map<std::size_t, std::vector<std::string>>& rows = earlier.rows;  // cell index -> row
  const std::size_t resumed = rows.size();
  const bool dropped_torn = earlier.dropped_torn;

  std::vector<std::size_t> todo;
  for (const std::size_t i : mine) {
    if (!rows.contains(i)) todo.push_back(i);
  }
  const std::uint64_t memory_estimate = check_memory(
      config, plan, todo, std::min<int>(opt.jobs, static_cast<int>(std::max<std::size_t>(todo.size(), 1))),
      memory_limits(config), opt.threads);

  ensure_writable_dir(out);
  RunInfo info;
  info.command = opt.command;
  info.jobs = opt.jobs;
  info.threads = opt.threads;
  info.shard = std::to_string(opt.shard_index) + "/" + std::to_string(opt.shard_count);
  info.cells_total = mine.size();
  info.cells_resumed = resumed;
  info.skipped = plan.skipped;
  // config.ini and context.json are written with results.csv when the run completes, so a folder never pairs
  // one run's config with another run's results.
  {
    std::string text = csv_line(plan.header);
    for (const auto& [i, r] : rows)
      text += csv_line(r);
    write_files_atomic(
        {{partial_inputs, nlohmann::ordered_json{{"inputs", inputs_json(inputs)}}.dump(2) + "\n"},
         {partial, text}});
  }
  info.inputs = inputs;
  remove_if_refused.armed = false;

  Progress progress(mine.size(), resumed, opt.quiet);
  if (dropped_torn)
    progress.note("dropped the last, incomplete line of the interrupted run (a cell cut off mid-write)");
  // Skips and warnings are printed even with --quiet: they change what the results contain or mean.
  for (const std::string& w : plan.warnings)
    std::cerr << "sqbench: warning: " << w << "\n";
  for (const auto& [reason, count] : plan.skipped) {
    std::cerr << "sqbench: skipping " << count << " cell" << (count == 1 ? "" : "s") << ": " << reason
              << "\n";
  }

  SignalGuard signals;
  Appender appender(partial);
  DataCache cache(plan, [&](const std::string& w) { progress.warn(w); });
  Gate gate;
  // Task cells: one BLAS thread per job (the jobs never oversubscribe the cores, and the results do not
  // depend on --jobs), and each float model trained (or loaded from out/models/) once, before the cells
  // that use it start, up to --jobs at a time.
  std::unique_ptr<TaskRunner> tasks;
  if (std::any_of(todo.begin(), todo.end(), [&](std::size_t i) { return plan.cells[i].is_task(); })) {
    sqb::task::set_blas_threads(kTaskBlasThreads);
    tasks = std::make_unique<TaskRunner>(plan, out, [&](const std::string& line) { progress.note(line); });
    tasks->prepare(todo, opt.jobs, g_stop);
  }
  std::mutex rows_mu;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> opt_ratio_skipped{0};
  std::exception_ptr failure;
  std::mutex failure_mu;
  const auto worker = [&] {
    while (!g_stop) {
      const std::size_t t = next++;
      if (t >= todo.size()) return;
      const Cell& cell = plan.cells[todo[t]];
      const std::string label = cell_label(plan, cell);
      try {
        progress.started(label);
        std::vector<std::string> row;
        if (cell.is_task()) {
          // Training is quality work: a tensor cell's timed repeats never overlap it.
          gate.enter_shared();
          try {
            row = tasks->run(config, cell);
          } catch (...) {
            gate.leave_shared();
            throw;
          }
          gate.leave_shared();
        } else {
          row = run_cell(config, plan, cell, cache, gate, opt.threads, opt_ratio_skipped);
        }
        appender.append(csv_line(row));
        {
          std::lock_guard lock(rows_mu);
          rows[todo[t]] = std::move(row);
        }
        progress.finished(label);
      } catch (...) {
        std::lock_guard lock(failure_mu);
        if (!failure) failure = std::current_exception();
        g_stop = true;
        return;
      }
    }
  };
  const int jobs =
      std::max(1, std::min<int>(opt.jobs, static_cast<int>(std::max<std::size_t>(todo.size(), 1))));
  std::vector<std::thread> threads;
  for (int j = 1; j < jobs; ++j)
    threads.emplace_back(worker);
  worker();
  for (auto& th : threads)
    th.join();
  progress.done();

  if (opt_ratio_skipped > 0) {
    std::cerr << "sqbench: note: opt_ratio is empty for " << opt_ratio_skipped << " cell"
              << (opt_ratio_skipped == 1 ? "" : "s")
              << " larger than opt_ratio_max_n = " << config.opt_ratio_max_n
              << " values (raise it in the config to compute their exact optimum)\n";
  }
  info.cells_done = rows.size();
  if (tasks) {
    info.float_models_trained = tasks->models_trained();
    info.float_models_loaded = tasks->models_loaded();
  }
  info.memory_estimate_bytes = memory_estimate;
  info.peak_resident_bytes = peak_resident_bytes();
  info.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  if (failure) std::rethrow_exception(failure);
  // A file rewritten while the cells read it: the results mix its two versions.
  for (const InputFingerprint& f : inputs) {
    const InputFingerprint now = fingerprint_stat(f.path);
    if (now.size != f.size || now.mtime != f.mtime) {
      throw sqb::Error("the input " + f.path + " changed while the run read it (size " +
                       std::to_string(f.size) + " -> " + std::to_string(now.size) + ", modified " + f.mtime +
                       " -> " + now.mtime + "); results.csv was not written: start over with --fresh");
    }
  }
  if (rows.size() < mine.size()) {  // interrupted
    std::cerr << "sqbench: stopped after " << rows.size() << " of " << mine.size() << " cells; "
              << partial.string() << " keeps them: run again with --resume to finish\n";
    return {out, true};
  }

  write_complete(config, plan, rows, info, out, opt);
  return {out, false};
}

fs::path merge_results(const std::vector<fs::path>& dirs, fs::path out, bool quiet) {
  if (dirs.empty()) throw sqb::Error("merge: give the shard folders to combine");
  struct Shard {
    fs::path dir;
    CsvTable table;
    std::string config_text;
    std::size_t index = 0, count = 0;
    bool have_shard_info = false;
  };
  std::vector<Shard> shards;
  // A shard still running (or resumed) is locked by its run: merging it now would read a moving folder.
  std::vector<std::unique_ptr<FolderLock>> shard_locks;
  std::set<fs::path> locked;
  for (const fs::path& dir : dirs) {
    Shard s;
    s.dir = dir;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw sqb::Error("merge: " + dir.string() + " is not a results folder");
    if (locked.insert(fs::weakly_canonical(dir, ec)).second)
      shard_locks.push_back(std::make_unique<FolderLock>(dir));
    if (!fs::exists(dir / "results.csv", ec)) {
      throw sqb::Error(
          "merge: " + dir.string() + " has no results.csv" +
          (fs::exists(dir / kPartialCsv, ec) ? " (the shard is incomplete: finish it with --resume)" : ""));
    }
    std::ifstream cin(dir / "config.ini", std::ios::binary);
    if (!cin) throw sqb::Error("merge: " + dir.string() + " has no config.ini");
    std::ostringstream buf;
    buf << cin.rdbuf();
    s.config_text = buf.str();
    s.table = read_csv(dir / "results.csv");
    const std::string v = context_string(read_context(dir / "context.json"), "run", "shard");
    const auto slash = v.find('/');
    const auto i = sqb::parse_integer(v.substr(0, slash == std::string::npos ? 0 : slash));
    const auto n = slash == std::string::npos ? std::nullopt : sqb::parse_integer(v.substr(slash + 1));
    if (i && n && *i >= 0 && *n > 0) {
      s.index = static_cast<std::size_t>(*i);
      s.count = static_cast<std::size_t>(*n);
      s.have_shard_info = true;
    }
    shards.push_back(std::move(s));
  }
  const std::string hash = text_hash(shards[0].config_text);
  for (const Shard& s : shards) {
    if (text_hash(s.config_text) != hash) {
      throw sqb::Error("merge: " + s.dir.string() + " ran a different config (hash " +
                       text_hash(s.config_text) + ") than " + shards[0].dir.string() + " (hash " + hash +
                       "); nothing was written");
    }
    if (s.table.header != shards[0].table.header) {
      throw sqb::Error("merge: " + s.dir.string() + " has different result columns than " +
                       shards[0].dir.string());
    }
    const auto hc = s.table.column("config_hash");
    for (const auto& r : s.table.rows) {
      if (!hc || r[*hc] != hash) {
        throw sqb::Error("merge: " + s.dir.string() + "/results.csv holds rows of a different config");
      }
    }
  }
  const Config config = load_results_config(shards[0].dir);
  // Every shard must have read the same bytes.
  std::optional<std::vector<InputFingerprint>> inputs;
  for (const Shard& s : shards) {
    const auto these = read_inputs(s.dir / "context.json");
    if (!these) continue;
    if (!inputs) {
      inputs = these;
      continue;
    }
    check_same_inputs(*inputs, *these,
                      "merge: " + s.dir.string() + " and " + shards[0].dir.string() + " differ");
  }

  // Every shard of 0..n-1 exactly once; global cell index of shard i's j-th row is i + n*j.
  const std::size_t n = shards[0].count;
  std::vector<bool> seen(n, false);
  for (const Shard& s : shards) {
    if (!s.have_shard_info || s.count != n) {
      throw sqb::Error("merge: " + s.dir.string() + "/context.json does not say it is one of " +
                       std::to_string(n) + " shards");
    }
    if (seen[s.index]) throw sqb::Error("merge: shard " + std::to_string(s.index) + " is given twice");
    seen[s.index] = true;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!seen[i]) {
      throw sqb::Error("merge: shard " + std::to_string(i) + " of " + std::to_string(n) +
                       " is missing; every shard folder must be given");
    }
  }
  std::map<std::size_t, std::vector<std::string>> ordered;
  std::set<std::vector<std::string>> keys;
  for (const Shard& s : shards) {
    for (std::size_t j = 0; j < s.table.rows.size(); ++j) {
      const auto& r = s.table.rows[j];
      const std::vector<std::string> key(r.begin(),
                                         r.begin() + static_cast<std::ptrdiff_t>(key_count(s.table.header)));
      if (!keys.insert(key).second) {
        throw sqb::Error("merge: the cell (" + key_text(s.table.header, key) + ") appears more than once");
      }
      ordered[s.index + n * j] = r;
    }
  }
  // Where the original config is reachable, check the cell set against a fresh plan too.
  try {
    const Plan plan = make_plan(config);
    if (plan.cells.size() != ordered.size()) {
      throw sqb::Error("merge: the shards hold " + std::to_string(ordered.size()) +
                       " cells but the config has " + std::to_string(plan.cells.size()));
    }
    for (std::size_t i = 0; i < plan.cells.size(); ++i) {
      const auto it = ordered.find(i);
      const auto want = plan.key_fields(plan.cells[i]);
      if (it == ordered.end() || !std::equal(want.begin(), want.end(), it->second.begin())) {
        throw sqb::Error("merge: cell " + std::to_string(i) + " (" + key_text(plan.header, want) +
                         ") is missing");
      }
    }
  } catch (const sqb::Error& e) {
    if (std::string(e.what()).rfind("merge:", 0) == 0) throw;
    // The config's data files are not reachable from here (e.g. relative .npy paths): the shard bookkeeping
    // above already proved every cell is present once.
  }

  if (out.empty()) out = fs::path("results") / config.name;
  {
    std::error_code ec;
    ensure_writable_dir(out);
    if (locked.insert(fs::weakly_canonical(out, ec)).second)
      shard_locks.push_back(std::make_unique<FolderLock>(out));
  }
  CsvTable merged;
  merged.header = shards[0].table.header;
  for (auto& [i, r] : ordered)
    merged.rows.push_back(r);

  RunInfo info;
  info.command = "sqbench merge";
  for (const Shard& s : shards)
    info.command += " " + s.dir.string();
  info.shard = "merged " + std::to_string(n) + " shards";
  info.cells_total = info.cells_done = merged.rows.size();
  info.complete = true;
  if (inputs) info.inputs = *inputs;
  StagedOutputs views = stage_outputs(config, merged, out);
  write_files_atomic({{out / "results.csv", csv_text(merged.header, merged.rows)},
                      {out / "config.ini", shards[0].config_text},
                      {out / "context.json", context_json(config, info)}});
  std::error_code ec;
  fs::remove_all(out / "views", ec);
  views.commit(quiet);
  return out;
}

}  // namespace sqbench
