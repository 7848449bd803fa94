#include "config.hpp"

#include <boost/program_options.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "ini_check.hpp"
#include "sqb/distribution.hpp"
#include "sqb/error.hpp"
#include "sqb/granularity.hpp"
#include "sqb/registry.hpp"
#include "sqb/spec.hpp"

namespace po = boost::program_options;

namespace sqbench {

namespace {

constexpr std::size_t kMaxN = 2'000'000'000;  // float32 tensors of up to 8 GB

const std::vector<std::string> kTopKeys = {"name", "description", "repeats"};
const std::vector<std::string> kSweepKeys = {"quantizer", "distribution", "n",   "k",
                                             "bits",      "granularity",  "seed"};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Where a key is set in the file (1-based line), for messages; 0 if not found.
std::size_t line_of(const std::string& text, const std::string& dotted_key) {
  const auto dot = dotted_key.rfind('.');
  const std::string section = dot == std::string::npos ? "" : dotted_key.substr(0, dot);
  const std::string key = dot == std::string::npos ? dotted_key : dotted_key.substr(dot + 1);
  std::istringstream in(text);
  std::string line, current;
  std::size_t no = 0;
  while (std::getline(in, line)) {
    ++no;
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    if (line[first] == '[') {
      const auto close = line.find(']', first);
      current = line.substr(first + 1, close == std::string::npos ? std::string::npos : close - first - 1);
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(first, eq - first);
    while (!k.empty() && (k.back() == ' ' || k.back() == '\t'))
      k.pop_back();
    if (k == key && current == section) return no;
  }
  return 0;
}

class Reporter {
 public:
  Reporter(const Config& c) : c_(c) {}
  [[noreturn]] void fail(const std::string& dotted_key, const std::string& message) const {
    const std::size_t line = line_of(c_.text, dotted_key);
    throw sqb::Error(c_.path.string() + (line ? ":" + std::to_string(line) : "") + ": key '" + dotted_key +
                     "': " + message);
  }
  [[noreturn]] void fail_file(const std::string& message) const {
    throw sqb::Error(c_.path.string() + ": " + message);
  }

 private:
  const Config& c_;
};

// A list key's values: each occurrence of the key, and for numeric keys also comma-separated values.
std::vector<std::string> values_of(const po::variables_map& vm, const std::string& key, bool split_commas) {
  std::vector<std::string> out;
  if (!vm.count(key)) return out;
  for (const std::string& v : vm[key].as<std::vector<std::string>>()) {
    if (!split_commas) {
      out.push_back(v);
      continue;
    }
    std::string item;
    std::istringstream in(v);
    while (std::getline(in, item, ',')) {
      const auto a = item.find_first_not_of(" \t");
      const auto b = item.find_last_not_of(" \t");
      out.push_back(a == std::string::npos ? "" : item.substr(a, b - a + 1));
    }
  }
  return out;
}

template <class T>
std::vector<T> numbers(const Reporter& r, const po::variables_map& vm, const std::string& key, double lo,
                       double hi, const std::string& what) {
  std::vector<T> out;
  for (const std::string& v : values_of(vm, key, true)) {
    const auto x = sqb::parse_integer(v);
    if (!x) r.fail(key, "'" + v + "' is not an integer (" + what + ")");
    if (static_cast<double>(*x) < lo || static_cast<double>(*x) > hi)
      r.fail(key, "'" + v + "' is out of range (" + what + ")");
    out.push_back(static_cast<T>(*x));
  }
  return out;
}

}  // namespace

Config load_config(const std::filesystem::path& path) {
  Config c;
  c.path = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw sqb::Error(path.string() + ": is a directory, not a config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw sqb::Error(path.string() + ": cannot read the config file (missing or unreadable)");
  std::ostringstream buf;
  buf << in.rdbuf();
  c.text = buf.str();
  check_ini_text(c.text, path);
  const Reporter r(c);

  po::options_description desc;
  for (const auto& k : kTopKeys)
    desc.add_options()(k.c_str(), po::value<std::string>());
  for (const auto& k : kSweepKeys) {
    desc.add_options()(("sweep." + k).c_str(), po::value<std::vector<std::string>>()->composing());
  }
  po::variables_map vm;
  try {
    std::istringstream text(c.text);
    const po::parsed_options parsed = po::parse_config_file(text, desc, /*allow_unregistered=*/true);
    for (const po::option& o : parsed.options) {
      if (!o.unregistered) continue;
      const auto dot = o.string_key.rfind('.');
      const std::string section = dot == std::string::npos ? "" : o.string_key.substr(0, dot);
      if (section.empty()) r.fail(o.string_key, "unknown key; valid top-level keys: " + join(kTopKeys));
      if (section == "sweep") r.fail(o.string_key, "unknown key in [sweep]; valid keys: " + join(kSweepKeys));
      r.fail(o.string_key, "unknown section [" + section + "]; valid sections: [sweep]");
    }
    po::store(parsed, vm);
    po::notify(vm);
  } catch (const po::multiple_occurrences& e) {
    r.fail(e.get_option_name().substr(e.get_option_name().find_first_not_of('-')),
           "given more than once (only the [sweep] keys take lists)");
  } catch (const po::error& e) {
    r.fail_file(std::string("not a valid INI config: ") + e.what());
  }

  c.name = vm.count("name") ? vm["name"].as<std::string>() : path.stem().string();
  if (c.name.empty() || c.name.find_first_of("/\\") != std::string::npos || c.name == "." || c.name == "..") {
    r.fail("name", "'" + c.name + "' cannot name a results folder");
  }
  if (vm.count("description")) c.description = vm["description"].as<std::string>();
  if (vm.count("repeats")) {
    const auto v = sqb::parse_integer(vm["repeats"].as<std::string>());
    if (!v || *v < 1 || *v > 1000) {
      r.fail("repeats", "'" + vm["repeats"].as<std::string>() + "' must be an integer in 1..1000");
    }
    c.repeats = static_cast<int>(*v);
  }

  SweepSpec& s = c.sweep;
  const auto require = [&](const std::string& key, const auto& list) {
    if (list.empty()) {
      if (!vm.count(key)) r.fail(key, "missing: the sweep needs at least one value");
      r.fail(key, "empty list");
    }
  };
  s.quantizers = values_of(vm, "sweep.quantizer", false);
  require("sweep.quantizer", s.quantizers);
  s.distributions = values_of(vm, "sweep.distribution", false);
  require("sweep.distribution", s.distributions);
  s.n = numbers<std::size_t>(r, vm, "sweep.n", 1, kMaxN, "n must be in 1.." + std::to_string(kMaxN));
  require("sweep.n", s.n);
  if (vm.count("sweep.k") && vm.count("sweep.bits")) r.fail("sweep.bits", "give either k or bits, not both");
  if (vm.count("sweep.bits")) {
    for (unsigned b : numbers<unsigned>(r, vm, "sweep.bits", 1, 16, "bits must be in 1..16")) {
      s.k.push_back(std::size_t{1} << b);
    }
    s.k_from_bits = true;
    require("sweep.bits", s.k);
  } else {
    s.k = numbers<std::size_t>(r, vm, "sweep.k", 1, 65536, "k must be in 1..65536");
    require("sweep.k", s.k);
  }
  for (const std::string& g : values_of(vm, "sweep.granularity", false)) {
    try {
      s.granularities.push_back(sqb::Granularity::parse(g).to_string());
    } catch (const sqb::Error& e) {
      r.fail("sweep.granularity", e.what());
    }
  }
  if (!vm.count("sweep.granularity")) s.granularities = {"tensor"};
  require("sweep.granularity", s.granularities);
  s.seeds = numbers<std::uint64_t>(r, vm, "sweep.seed", 0, 9e18, "seed must be in 0..9e18");
  if (!vm.count("sweep.seed")) s.seeds = {0};
  require("sweep.seed", s.seeds);

  // A value listed twice would make duplicate cells.
  const auto unique = [&](const std::string& key, const std::vector<std::string>& list) {
    std::set<std::string> seen;
    for (const std::string& v : list) {
      if (!seen.insert(v).second) r.fail(key, "'" + v + "' is listed twice (it would duplicate cells)");
    }
  };
  const auto unique_numbers = [&](const std::string& key, const auto& list) {
    std::vector<std::string> text;
    for (const auto v : list)
      text.push_back(std::to_string(v));
    unique(key, text);
  };
  unique_numbers("sweep.n", s.n);
  unique_numbers(s.k_from_bits ? "sweep.bits" : "sweep.k", s.k);
  unique("sweep.granularity", s.granularities);
  unique_numbers("sweep.seed", s.seeds);

  // Specs are validated now (names and parameters), so a typo fails before any work.
  for (std::string& q : s.quantizers) {
    try {
      const sqb::SpecText t = sqb::SpecText::parse(q, "quantizer");
      const sqb::QuantizerEntry& e = sqb::find_quantizer(t.name);
      sqb::Params(e.params, t.args, "quantizer \"" + t.canonical() + "\"");
      q = t.canonical();
    } catch (const sqb::Error& e) {
      r.fail("sweep.quantizer", e.what());
    }
  }
  for (std::string& d : s.distributions) {
    try {
      const sqb::SpecText t = sqb::SpecText::parse(d, "distribution");
      const sqb::DistributionEntry& e = sqb::find_distribution(t.name);
      sqb::Params(e.params, t.args, "distribution \"" + t.canonical() + "\"");
      d = t.canonical();
    } catch (const sqb::Error& e) {
      r.fail("sweep.distribution", e.what());
    }
  }
  unique("sweep.quantizer", s.quantizers);
  unique("sweep.distribution", s.distributions);
  return c;
}

}  // namespace sqbench
