// sqbench: the command-line front end. Exit status: 0 success, 2 bad usage/config/input, 1 internal error.

#include <boost/program_options.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "codebook_cmd.hpp"
#include "config.hpp"
#include "sqb/distribution.hpp"
#include "sqb/error.hpp"
#include "sqb/registry.hpp"
#include "sqb/version.hpp"
#include "sweep.hpp"

namespace po = boost::program_options;

namespace {

constexpr int kUsageError = 2;

const char* kUsage =
    "usage: sqbench [--help] [--version] <command> [options]\n"
    "\n"
    "commands:\n"
    "  list                      the quantizers and distributions, with their parameters\n"
    "  run CONFIG [--out DIR]    run an experiment config; results go to DIR (default results/<name>/)\n"
    "  codebook SPEC --bits B    a Lloyd-Max codebook of a law: levels, thresholds, exact MSE, entropy\n"
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

int cmd_list(const std::vector<std::string>& args) {
  po::options_description desc("sqbench list: the quantizer and distribution registries");
  desc.add_options()("help,h", "this help");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).run(), vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  std::cout << "Quantizers (spec: name key=value ...; K comes from the sweep's k or bits):\n";
  for (const sqb::QuantizerEntry& e : sqb::quantizer_registry()) {
    std::cout << "\n  " << e.name << " - " << e.description << "\n      levels: " << e.levels << "\n";
    print_params(e.params);
  }
  std::cout << "\nDistributions (spec: name key=value ...; n and seed come from the sweep):\n";
  for (const sqb::DistributionEntry& e : sqb::distribution_registry()) {
    std::cout << "\n  " << e.name << " - " << e.description << "\n";
    print_params(e.params);
  }
  return 0;
}

int cmd_run(const std::vector<std::string>& args) {
  po::options_description desc("sqbench run CONFIG: run an experiment config");
  desc.add_options()("help,h", "this help")("out,o", po::value<std::string>(),
                                            "results folder (default results/<name>/)")(
      "quiet,q", "no per-cell progress on stderr");
  po::options_description hidden;
  hidden.add_options()("config", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description pos;
  pos.add("config", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  if (!vm.count("config") || vm["config"].as<std::vector<std::string>>().size() != 1) {
    std::cerr << "sqbench run: give exactly one CONFIG file (e.g. configs/quick.ini)\n";
    return kUsageError;
  }
  const sqbench::Config config = sqbench::load_config(vm["config"].as<std::vector<std::string>>()[0]);
  sqbench::RunOptions opt;
  if (vm.count("out")) opt.out_dir = vm["out"].as<std::string>();
  opt.quiet = vm.count("quiet") > 0;
  const auto out = sqbench::run_sweep(config, opt);
  std::cout << "sqbench: results in " << out.string() << "/ (results.csv, config.ini)\n";
  return 0;
}

int cmd_codebook(const std::vector<std::string>& args) {
  return sqbench::codebook_command(args);
}

}  // namespace

int main(int argc, char** argv) {
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
    if (cmd == "list") return cmd_list(rest);
    if (cmd == "run") return cmd_run(rest);
    if (cmd == "codebook") return cmd_codebook(rest);
    std::cerr << "sqbench: unknown command '" << cmd << "'; valid commands: list, run, codebook\n\n"
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
