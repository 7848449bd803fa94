// sqbench: the command-line front end. Exit status: 0 success, 2 bad usage/config/input, 1 internal error.

#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "checks.hpp"
#include "cli_args.hpp"
#include "codebook_cmd.hpp"
#include "config.hpp"
#include "config_keys.hpp"
#include "export_cmd.hpp"
#include "lock.hpp"
#include "plan.hpp"
#include "plot.hpp"
#include "quantize_cmd.hpp"
#include "sqb/checkpoint.hpp"
#include "sqb/columns.hpp"
#include "sqb/error.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "sqb/spec.hpp"
#include "sqb/task.hpp"
#include "sqb/version.hpp"
#include "sweep.hpp"
#include "table.hpp"
#include "text.hpp"

namespace po = boost::program_options;

namespace {

// sqbench trains (task cells) on one BLAS thread per job (task_cells.hpp: kTaskBlasThreads) and never wants
// BLAS's own threads. But OpenBLAS, which libarmadillo's libblas.so.3 resolves to, starts a worker per core
// in a constructor that runs when the library is loaded, before main, for every command (--version too),
// sized by OPENBLAS_NUM_THREADS. Under a small `ulimit -v` a worker cannot get its buffer: it spins in
// blas_memory_alloc and exit joins it forever, or OpenBLAS raises SIGINT. The executable's .preinit_array
// runs before any library's constructor, but setenv there is undone by libc's own initialisation (it resets
// environ to the environment the process started with), so the process starts itself again with
// OPENBLAS_NUM_THREADS=1 before OpenBLAS has run: no BLAS worker ever starts, and a run's memory check
// (memory.cpp) is what refuses a limit that training cannot meet. Without /proc/self/exe the exec fails and
// OpenBLAS keeps its default.
char kOneBlasThread[] = "OPENBLAS_NUM_THREADS=1";

void restart_with_one_blas_thread(int, char** argv, char** envp) {
  const std::size_t name = std::strlen("OPENBLAS_NUM_THREADS=");
  std::size_t n = 0;
  for (; envp[n] != nullptr; ++n)
    if (std::strcmp(envp[n], kOneBlasThread) == 0) return;
  // Before libstdc++ is initialised: plain malloc, and nothing that outlives the exec.
  auto** env = static_cast<char**>(std::malloc((n + 2) * sizeof(char*)));
  if (env == nullptr) return;
  std::size_t m = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (std::strncmp(envp[i], kOneBlasThread, name) != 0) env[m++] = envp[i];
  env[m++] = kOneBlasThread;
  env[m] = nullptr;
  ::execve("/proc/self/exe", argv, env);
  std::free(env);
}
[[gnu::section(".preinit_array"),
  gnu::used]] constexpr void (*kRestartWithOneBlasThread)(int, char**,
                                                          char**) = &restart_with_one_blas_thread;

constexpr int kUsageError = 2;

const char* kUsage =
    "usage: sqbench [--help] [--version] <command> [options]\n"
    "\n"
    "commands:\n"
    "  list [config]             the quantizers and distributions, with their parameters (config: the\n"
    "                            config keys of every section)\n"
    "  run CONFIG [options]      run an experiment config (results/<name>/): --out, --jobs, --resume, "
    "--shard\n"
    "  table RESULTS.csv ...     render a paper-style table (markdown, LaTeX booktabs or CSV)\n"
    "  merge DIR...              combine the shard folders of a sharded run (a sweep, or a quantize "
    "--shard)\n"
    "  render DIR                re-render a finished results folder's tables and plots\n"
    "  columns                   the result columns (name, kind, unit, which way is better, meaning)\n"
    "  codebook SPEC --bits B    a data-free codebook (nf4, lloyd_max, ...): levels, thresholds, MSE on a "
    "law\n"
    "  export SPEC --input F --out DIR --bits B   quantize a tensor (.npy or a safetensors --tensor); write\n"
    "                            codes (.npy, packed or rANS-coded), codebooks, scales and a manifest\n"
    "  quantize --input CKPT --out DIR   a whole safetensors checkpoint to a quantized one (--spec/--bits "
    "or\n"
    "                            --rules; --importance, --pack): checkpoint, report.csv, manifest.json\n"
    "\n"
    "Run 'sqbench <command> --help' for a command's options.\n";

void warn_if_debug() {
  if (sqb::debug_build()) {
    std::cerr << "**********************************************************************\n"
                 "WARNING: this sqbench is a "
              << sqb::build_type()
              << " build (assertions on, not optimised for\n"
                 "speed). Timings are NOT representative; build Release (scripts/run).\n"
                 "**********************************************************************\n";
  }
}

std::string version_text() {
  return "sqbench " + std::string(sqb::version()) + " (git " + std::string(sqb::git_sha()) + ", " +
         std::string(sqb::build_type()) + ", " + std::string(sqb::compiler()) + ")";
}

void print_params(std::span<const sqb::ParamSpec> params) {
  for (const sqb::ParamSpec& p : params) {
    std::cout << "      " << p.name << "=" << (p.default_value.empty() ? "(unset)" : p.default_value) << "   "
              << p.describe_domain() << "\n          " << p.help << "\n";
  }
}

// A subcommand that takes no options but --help: true when it should run (false: the help was printed).
bool no_options(const std::vector<std::string>& args, const char* title) {
  po::options_description desc(title);
  desc.add_options()("help,h", "this help");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).run(), vm);
  if (!vm.count("help")) return true;
  std::cout << desc;
  return false;
}

// `sqbench list config`: every config section's keys, from the tables the parser reads them by, and the
// reference curves a plot may name.
void list_config_keys() {
  std::cout << sqbench::config_keys_listing() << "\nReference curves (reference = ...):\n";
  for (const sqbench::ReferenceCurve& c : sqbench::reference_curves())
    std::cout << "  " << c.name << " - " << c.description << "\n";
}

int cmd_list(const std::vector<std::string>& args) {
  po::options_description desc(
      "sqbench list [config]: the quantizer, distribution and task registries, or with `config` every "
      "config section's keys");
  desc.add_options()("help,h", "this help");
  const auto parsed = sqbench::parse_command(args, desc, "topic");
  if (!parsed) return 0;
  const std::vector<std::string> topics = sqbench::positionals(*parsed, "topic");
  if (topics.size() > 1 || (topics.size() == 1 && topics[0] != "config"))
    throw sqb::Error("sqbench list takes no argument or `config` (the config keys), not '" + topics.back() +
                     "'");
  if (!topics.empty()) {
    list_config_keys();
    return 0;
  }
  std::cout << "Quantizers (spec: name key=value ...; K comes from the sweep's k or bits):\n";
  for (const sqb::QuantizerEntry& e : sqb::quantizer_registry()) {
    std::cout << "\n  " << e.name << " - " << e.description << "\n      levels: " << e.levels << "\n";
    print_params(e.params);
  }
  std::cout << "\nDistributions (spec: name key=value ...; n and seed come from the sweep):\n";
  for (const sqb::SourceEntry& e : sqb::source_registry()) {
    std::cout << "\n  " << e.name << " - " << e.description << "\n";
    print_params(e.params);
  }
  std::cout
      << "\nTasks (spec: name key=value ...; mode, quantizer, k or bits, granularity and seed come from the "
         "sweep):\n";
  for (const std::string_view name : sqb::task::task_names()) {
    std::cout << "\n  " << name
              << " - an MLP classifier (seed 001's TinyNet, 784 -> 256 -> 10, by default) trained on "
                 "Fashion-MNIST (or another folder of MNIST's four IDX files) with AdamW; the keys from "
                 "qat_epochs on are the cells' recipe, not part of the float model\n";
    print_params(sqb::task::task_params());
  }
  return 0;
}

// "i/n" -> (i, n); throws sqb::Error.
std::pair<std::size_t, std::size_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  const auto i = sqb::parse_integer(text.substr(0, slash == std::string::npos ? 0 : slash));
  const auto n = slash == std::string::npos ? std::nullopt : sqb::parse_integer(text.substr(slash + 1));
  if (!i || !n || *n < 1 || *i < 0 || *i >= *n) {
    throw sqb::Error("--shard '" + text + "' must be i/n with 0 <= i < n (e.g. 0/4)");
  }
  return {static_cast<std::size_t>(*i), static_cast<std::size_t>(*n)};
}

// Slurm job arrays: SLURM_ARRAY_TASK_ID counts from SLURM_ARRAY_TASK_MIN (0 or 1 as the array was declared).
std::optional<std::pair<std::size_t, std::size_t>> slurm_shard() {
  const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
  const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
  if (!id || !count) return std::nullopt;
  const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
  const auto i = sqb::parse_integer(id), n = sqb::parse_integer(count);
  const auto m = min ? sqb::parse_integer(min) : std::optional<std::int64_t>(0);
  if (!i || !n || !m || *n < 1 || *i - *m < 0 || *i - *m >= *n) {
    throw sqb::Error(std::string("SLURM_ARRAY_TASK_ID=") + id + " / SLURM_ARRAY_TASK_COUNT=" + count +
                     " do not describe a shard (expected a contiguous array)");
  }
  return std::pair{static_cast<std::size_t>(*i - *m), static_cast<std::size_t>(*n)};
}

int cmd_run(const std::vector<std::string>& args, const std::string& command) {
  po::options_description desc("sqbench run CONFIG [options]: run an experiment config");
  desc.add_options()("help,h", "this help")(
      "out,o", po::value<std::string>(),
      "results folder (default results/<name>/; shards: .../shard-<i>-of-<n>/)")(
      "quiet,q", "no progress on stderr")("resume",
                                          "keep the cells an interrupted run of this config finished")(
      "fresh", "discard an interrupted run's partial results and start over")(
      "jobs,j", po::value<int>()->default_value(1),
      "cells computed in parallel (timings still never overlap)")(
      "threads,t", po::value<int>(),
      "threads inside each cell: its blocks designed and encoded in parallel (default: the cores / jobs, at "
      "least 1; results do not depend on it)")(
      "shard", po::value<std::string>(),
      "i/n: run the i-th of n deterministic parts (default: SLURM_ARRAY_TASK_ID/COUNT when set)");
  const auto parsed = sqbench::parse_command(args, desc, "config");
  if (!parsed) return 0;
  const po::variables_map& vm = *parsed;
  const std::vector<std::string> configs = sqbench::positionals(vm, "config");
  if (configs.size() != 1) {
    std::cerr << "sqbench run: give exactly one CONFIG file (e.g. configs/quick.ini)\n";
    return kUsageError;
  }
  if (vm.count("resume") && vm.count("fresh")) throw sqb::Error("--resume and --fresh contradict each other");
  const int jobs = vm["jobs"].as<int>();
  if (jobs < 1 || jobs > 1024) throw sqb::Error("--jobs " + std::to_string(jobs) + " must be in 1..1024");
  const sqbench::Config config = sqbench::load_config(configs.front());
  sqbench::RunOptions opt;
  if (vm.count("out")) opt.out_dir = vm["out"].as<std::string>();
  opt.quiet = vm.count("quiet") > 0;
  opt.resume = vm.count("resume") > 0;
  opt.fresh = vm.count("fresh") > 0;
  opt.jobs = jobs;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  opt.threads = vm.count("threads") ? vm["threads"].as<int>() : std::max(1, cores / jobs);
  if (opt.threads < 1 || opt.threads > 1024) {
    throw sqb::Error("--threads " + std::to_string(opt.threads) + " must be in 1..1024");
  }
  opt.command = command;
  if (vm.count("shard")) {
    std::tie(opt.shard_index, opt.shard_count) = parse_shard(vm["shard"].as<std::string>());
  } else if (const auto s = slurm_shard()) {
    std::tie(opt.shard_index, opt.shard_count) = *s;
  }
  const sqbench::RunResult r = sqbench::run_sweep(config, opt);
  if (r.interrupted) return 130;
  std::cout << "sqbench: results in " << sqbench::folder_text(r.out) << "\n";
  return 0;
}

int cmd_table(const std::vector<std::string>& args) {
  po::options_description desc(
      "sqbench table RESULTS.csv --rows COL --cols COL --value COL [options]: a paper-style table");
  desc.add_options()("help,h", "this help")("rows", po::value<std::string>(),
                                            "column whose values label the rows")(
      "cols", po::value<std::string>(), "column whose values label the columns")(
      "value", po::value<std::string>(),
      "column shown in the cells (e.g. mse), or several (mse,sqnr_db,quantize_s) which become the columns")(
      "where", po::value<std::vector<std::string>>()->composing(),
      "keep rows with column=value (repeatable)")("format", po::value<std::string>()->default_value("md"),
                                                  "md | latex | csv")(
      "agg", po::value<std::string>()->default_value("none"),
      "none (average over seeds only) | mean | median | min | max")(
      "best", po::value<std::string>()->default_value("auto"),
      "bold the best value: auto | min | max | none")(
      "best-along", po::value<std::string>()->default_value("col"),
      "col: the best of each column is bold | row: the best of each row")(
      "digits", po::value<int>()->default_value(4), "significant digits")("title", po::value<std::string>(),
                                                                          "caption")(
      "spread", po::value<std::string>()->default_value("none"),
      "none | std: cells of several seeds show mean ± std (sample, n - 1)");
  const auto parsed = sqbench::parse_command(args, desc, "results");
  if (!parsed) return 0;
  const po::variables_map& vm = *parsed;
  const std::filesystem::path path =
      sqbench::single_positional(vm, "results", "sqbench table: give exactly one results CSV file");
  for (const char* k : {"rows", "value"}) {
    if (!vm.count(k)) throw sqb::Error(std::string("sqbench table: --") + k + " is required");
  }
  const sqbench::CsvTable results = sqbench::read_csv(path);
  sqbench::TableSpec spec;
  spec.id =
      path.parent_path().filename().string().empty() ? "results" : path.parent_path().filename().string();
  spec.rows = vm["rows"].as<std::string>();
  if (vm.count("cols")) spec.cols = vm["cols"].as<std::string>();
  spec.value = vm["value"].as<std::string>();
  if (vm.count("where")) {
    for (const auto& w : vm["where"].as<std::vector<std::string>>())
      spec.where.push_back(sqbench::parse_where(w));
  }
  const std::string agg = vm["agg"].as<std::string>();
  const std::optional<sqbench::Agg> named = sqbench::agg_named(agg);
  if (!named) throw sqb::Error("--agg '" + agg + "' must be one of " + sqbench::kAggChoices);
  spec.agg = *named;
  spec.best = vm["best"].as<std::string>();
  if (!sqbench::is_best_choice(spec.best)) {
    throw sqb::Error("--best '" + spec.best + "' must be one of " + sqbench::kBestChoices);
  }
  spec.best_along = vm["best-along"].as<std::string>();
  if (spec.best_along != "col" && spec.best_along != "row") {
    throw sqb::Error("--best-along '" + spec.best_along + "' must be one of " + sqbench::kBestAlongChoices);
  }
  spec.digits = vm["digits"].as<int>();
  if (spec.digits < 1 || spec.digits > sqbench::kMaxDigits) {
    throw sqb::Error("--digits must be in 1.." + std::to_string(sqbench::kMaxDigits));
  }
  if (vm.count("title")) spec.title = vm["title"].as<std::string>();
  spec.spread = vm["spread"].as<std::string>();
  if (spec.spread != "none" && spec.spread != "std") {
    throw sqb::Error("--spread '" + spec.spread + "' must be one of " + sqbench::kSpreadChoices);
  }
  if (spec.spread == "std" && spec.agg != sqbench::Agg::none && spec.agg != sqbench::Agg::mean) {
    throw sqb::Error("--spread std shows mean ± std, so the cells must be means: use --agg none or mean");
  }
  const std::string format = vm["format"].as<std::string>();
  sqbench::TableFormat fmt;
  if (format == "md") {
    fmt = sqbench::TableFormat::md;
  } else if (format == "latex") {
    fmt = sqbench::TableFormat::latex;
  } else if (format == "csv") {
    fmt = sqbench::TableFormat::csv;
  } else {
    throw sqb::Error("--format '" + format + "' must be one of md|latex|csv");
  }
  // Provenance: the config beside the results, else the hash column.
  sqbench::Provenance prov{"unknown", "unknown"};
  if (const auto hc = results.column("config_hash"); hc && !results.rows.empty())
    prov.config_hash = results.rows[0][*hc];
  std::error_code ec;
  if (std::filesystem::exists(path.parent_path() / "config.ini", ec)) {
    try {
      const sqbench::Config c = sqbench::load_results_config(path.parent_path());
      prov = {c.name, c.hash};
    } catch (const sqb::Error&) {
      // the table stays usable without it
    }
  }
  // The filters name the values that exist when one matches nothing (the key columns), and messages name
  // this command, not the folder the CSV is in.
  sqbench::check_where(spec.where, results, sqbench::RowsKind::finished, "sqbench table: --where");
  std::cout << sqbench::render_table(results, spec, fmt, prov, "sqbench table",
                                     sqbench::Syntax::command_line);
  return 0;
}

int cmd_merge(const std::vector<std::string>& args) {
  po::options_description desc(
      "sqbench merge DIR... [--out DIR]: combine shard folders and render tables/plots; for the shard "
      "folders of `sqbench quantize --shard i/n`, assemble the checkpoint, report and manifest (into --out, "
      "default the folder holding the shards)");
  desc.add_options()("help,h", "this help")(
      "out,o", po::value<std::string>(), "output folder (default results/<name>/)")("quiet,q", "less output");
  const auto parsed = sqbench::parse_command(args, desc, "dirs");
  if (!parsed) return 0;
  const po::variables_map& vm = *parsed;
  const std::vector<std::string> given = sqbench::positionals(vm, "dirs");
  if (given.empty()) throw sqb::Error("sqbench merge: give the shard folders to combine");
  const std::vector<std::filesystem::path> dirs(given.begin(), given.end());
  if (sqb::is_checkpoint_shard(dirs.front())) {
    // Shards of `sqbench quantize --shard i/n`: the checkpoint goes to --out, or beside the shard folders.
    std::filesystem::path out = vm.count("out") ? std::filesystem::path(vm["out"].as<std::string>())
                                                : dirs.front().lexically_normal().parent_path();
    if (out.empty()) out = ".";
    const auto rows = sqb::merge_checkpoint_shards(dirs, out, "sqbench merge");
    std::cout << "sqbench: merged " << dirs.size() << " checkpoint shards (" << rows.size() - 1
              << " quantized tensors) into " << out.string() << "/\n";
    return 0;
  }
  const auto out =
      sqbench::merge_results(dirs, vm.count("out") ? vm["out"].as<std::string>() : "", vm.count("quiet") > 0);
  std::cout << "sqbench: merged results in " << sqbench::folder_text(out) << "\n";
  return 0;
}

int cmd_render(const std::vector<std::string>& args) {
  po::options_description desc(
      "sqbench render DIR [--config CONFIG]: re-render the tables and plots of a finished results folder");
  desc.add_options()("help,h", "this help")(
      "config,c", po::value<std::string>(),
      "take the [table.*] and [plot.*] sections from this config instead of DIR/config.ini")("quiet,q",
                                                                                             "less output");
  const auto parsed = sqbench::parse_command(args, desc, "dir");
  if (!parsed) return 0;
  const po::variables_map& vm = *parsed;
  const std::filesystem::path dir =
      sqbench::single_positional(vm, "dir", "sqbench render: give exactly one results folder");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw sqb::Error("sqbench render: " + dir.string() + " is not a results folder");
  const sqbench::FolderLock lock(dir);
  const sqbench::CsvTable results = sqbench::read_csv(dir / "results.csv");
  sqbench::Config config = sqbench::load_results_config(dir);
  std::filesystem::path into = dir;
  if (vm.count("config")) {
    // Only the tables and plots are taken from it, so it needs no [sweep]. Its views go beside the run's own
    // (which stay), under views/<its stem>/, captioned by the file they came from.
    const std::string views = vm["config"].as<std::string>();
    const sqbench::Config other = sqbench::load_config(views, sqbench::ConfigUse::outputs);
    config.path = other.path;  // messages name the file the sections come from
    config.name += ", views " + views;
    config.tables = other.tables;
    config.plots = other.plots;
    into = dir / "views" / std::filesystem::path(views).stem();
  }
  sqbench::check_references(config);
  sqbench::check_outputs_before_work(config, results, sqbench::RowsKind::finished);
  sqbench::render_outputs(config, results, into, vm.count("quiet") > 0);
  return 0;
}

int cmd_columns(const std::vector<std::string>& args) {
  if (!no_options(args, "sqbench columns: the result-column schema, as a markdown table")) return 0;
  std::cout << sqb::column_table_markdown();
  return 0;
}

int cmd_codebook(const std::vector<std::string>& args) {
  return sqbench::codebook_command(args);
}

}  // namespace

int main(int argc, char** argv) {
  // Past a file size limit (ulimit -f) a write must fail with EFBIG, which every writer turns into an error
  // naming the file, rather than kill the process in the middle of a file.
  std::signal(SIGXFSZ, SIG_IGN);
  const std::vector<std::string> argv_list(argv + 1, argv + argc);
  try {
    if (argv_list.empty()) {
      std::cerr << kUsage;
      return kUsageError;
    }
    const std::string& cmd = argv_list[0];
    const std::vector<std::string> rest(argv_list.begin() + 1, argv_list.end());
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (cmd == "--version" || cmd == "-V") {
      std::cout << version_text() << "\n";
      return 0;
    }
    warn_if_debug();
    std::string command = "sqbench";
    for (const auto& a : argv_list)
      command += " " + a;
    if (cmd == "list") return cmd_list(rest);
    if (cmd == "run") return cmd_run(rest, command);
    if (cmd == "table") return cmd_table(rest);
    if (cmd == "merge") return cmd_merge(rest);
    if (cmd == "render") return cmd_render(rest);
    if (cmd == "codebook") return cmd_codebook(rest);
    if (cmd == "columns") return cmd_columns(rest);
    if (cmd == "export") return sqbench::export_command(rest);
    if (cmd == "quantize") return sqbench::quantize_command(rest, command);
    std::cerr << "sqbench: unknown command '" << cmd
              << "'; valid commands: list, run, table, merge, render, columns, codebook, export, quantize\n\n"
              << kUsage;
    return kUsageError;
  } catch (const sqb::Error& e) {
    std::cerr << "sqbench: error: " << e.what() << "\n";
    return kUsageError;
  } catch (const po::error& e) {
    std::cerr << "sqbench: error: " << e.what() << "\n";
    return kUsageError;
  } catch (const std::bad_alloc&) {
    std::cerr << "sqbench: error: out of memory (a smaller n or fewer rows may fit)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "sqbench: internal error (please report): " << e.what() << "\n";
    return 1;
  }
}
