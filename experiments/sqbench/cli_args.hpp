#pragma once
// The argument parsing every sqbench subcommand shares (Boost.program_options).

#include <boost/program_options.hpp>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "sqb/error.hpp"

namespace sqbench {

/// Parses a subcommand's arguments against `desc` (its options, which should include "help,h"); every other
/// argument is collected as a std::vector<std::string> under `positional`. Returns std::nullopt after
/// printing `desc` when --help was given. Throws boost::program_options errors for unknown or malformed
/// options.
inline std::optional<boost::program_options::variables_map> parse_command(
    const std::vector<std::string>& args, const boost::program_options::options_description& desc,
    const std::string& positional) {
  namespace po = boost::program_options;
  po::options_description hidden;
  hidden.add_options()(positional.c_str(), po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description pos;
  pos.add(positional.c_str(), -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
  if (vm.count("help")) {
    std::cout << desc;
    return std::nullopt;
  }
  return vm;
}

/// The positional arguments collected by parse_command (empty when none were given).
inline std::vector<std::string> positionals(const boost::program_options::variables_map& vm,
                                            const std::string& positional) {
  return vm.count(positional) ? vm[positional].as<std::vector<std::string>>() : std::vector<std::string>{};
}

/// The one positional argument collected by parse_command; throws sqb::Error(`message`) unless there is
/// exactly one.
inline std::string single_positional(const boost::program_options::variables_map& vm,
                                     const std::string& positional, const std::string& message) {
  const std::vector<std::string> all = positionals(vm, positional);
  if (all.size() != 1) throw sqb::Error(message);
  return all.front();
}

}  // namespace sqbench
