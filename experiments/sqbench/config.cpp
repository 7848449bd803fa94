#include "config.hpp"

#include <boost/program_options.hpp>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "ini_check.hpp"
#include "sqb/codebook.hpp"
#include "sqb/error.hpp"
#include "sqb/granularity.hpp"
#include "sqb/npy.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "sqb/spec.hpp"
#include "sqb/task.hpp"
#include "text.hpp"

namespace po = boost::program_options;

namespace sqbench {

namespace {

constexpr std::size_t kMaxN = 2'000'000'000;  // float32 tensors of up to 8 GB

const std::vector<std::string> kTopKeys = {"name",       "description", "repeats",
                                           "max_memory", "opt_ratio",   "opt_ratio_max_n"};
const std::vector<std::string> kSweepKeys = {"quantizer", "distribution", "task", "mode",    "n",        "k",
                                             "bits",      "granularity",  "seed", "repeats", "opt_ratio"};
const std::vector<std::string> kTableKeys = {"rows", "cols",       "value", "where",  "agg",
                                             "best", "best_along", "title", "digits", "spread"};
const std::vector<std::string> kPlotKeys = {"kind",   "x",      "y",     "series",    "agg",
                                            "logx",   "logy",   "where", "reference", "title",
                                            "xlabel", "ylabel", "dash",  "hline"};
const std::vector<std::string> kMultiKeys = {"where", "reference",
                                             "hline"};  // table/plot keys that may repeat

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The file's key lines in order, for line numbers in messages: dotted key -> the lines it is set on.
std::map<std::string, std::vector<std::size_t>> key_lines(const std::string& text) {
  std::map<std::string, std::vector<std::size_t>> out;
  std::istringstream in(text);
  std::string line, section;
  std::size_t no = 0;
  while (std::getline(in, line)) {
    ++no;
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    if (line[first] == '[') {
      const auto close = line.find(']', first);
      section = line.substr(first + 1, close == std::string::npos ? std::string::npos : close - first - 1);
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(first, eq - first);
    while (!k.empty() && (k.back() == ' ' || k.back() == '\t'))
      k.pop_back();
    out[section.empty() ? k : section + "." + k].push_back(no);
  }
  return out;
}

// One setting as read: its section ("" top level, "sweep", "sweep.x", "table.y", ...), key and value.
struct Setting {
  std::string section, key, value;
  std::size_t line = 0;
  std::string dotted() const { return section.empty() ? key : section + "." + key; }
};

class Reporter {
 public:
  explicit Reporter(const std::filesystem::path& p) : path_(p.string()) {}
  [[noreturn]] void fail(const Setting& s, const std::string& message) const {
    throw sqb::Error(path_ + (s.line ? ":" + std::to_string(s.line) : "") + ": key '" + s.dotted() +
                     "': " + message);
  }
  [[noreturn]] void fail_section(const std::string& section, const std::string& message) const {
    throw sqb::Error(path_ + ": [" + section + "]: " + message);
  }
  [[noreturn]] void fail_file(const std::string& message) const { throw sqb::Error(path_ + ": " + message); }

 private:
  std::string path_;
};

std::vector<std::string> split_commas(const std::string& v) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(v);
  while (std::getline(in, item, ',')) {
    const auto a = item.find_first_not_of(" \t");
    const auto b = item.find_last_not_of(" \t");
    out.push_back(a == std::string::npos ? "" : item.substr(a, b - a + 1));
  }
  return out;
}

template <class T>
void add_numbers(const Reporter& r, const Setting& s, double lo, double hi, const std::string& what,
                 std::vector<T>& out) {
  for (const std::string& v : split_commas(s.value)) {
    const auto x = sqb::parse_integer(v);
    if (!x) r.fail(s, "'" + v + "' is not an integer (" + what + ")");
    if (static_cast<double>(*x) < lo || static_cast<double>(*x) > hi) {
      r.fail(s, "'" + v + "' is out of range (" + what + ")");
    }
    out.push_back(static_cast<T>(*x));
  }
}

bool parse_bool(const Reporter& r, const Setting& s) {
  if (s.value == "1" || s.value == "true" || s.value == "yes") return true;
  if (s.value == "0" || s.value == "false" || s.value == "no") return false;
  r.fail(s, "'" + s.value + "' must be one of 1|0|true|false|yes|no");
}

void check_id(const Reporter& r, const std::string& section, const std::string& id) {
  if (id.empty() ||
      id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
          std::string::npos) {
    r.fail_section(section, "the id after the dot must be letters, digits, '_' or '-'");
  }
}

}  // namespace

std::optional<Agg> agg_named(const std::string& name) {
  static const std::map<std::string, Agg> aggs = {{"none", Agg::none},
                                                  {"mean", Agg::mean},
                                                  {"median", Agg::median},
                                                  {"min", Agg::min},
                                                  {"max", Agg::max}};
  const auto it = aggs.find(name);
  return it == aggs.end() ? std::nullopt : std::optional<Agg>(it->second);
}

bool is_best_choice(const std::string& name) {
  return name == "auto" || name == "min" || name == "max" || name == "none";
}

std::optional<std::uint64_t> parse_bytes(const std::string& text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (text.empty() || !(text[0] >= '0' && text[0] <= '9')) return std::nullopt;  // no sign, no "inf"
  std::string suffix = text.substr(used);
  while (!suffix.empty() && suffix.front() == ' ')
    suffix.erase(0, 1);
  double unit = 1;
  if (!suffix.empty()) {
    const std::string rest = suffix.substr(1);
    if (rest != "" && rest != "B" && rest != "iB") return std::nullopt;
    switch (suffix[0]) {
      case 'K':
      case 'k':
        unit = 0x1p10;
        break;
      case 'M':
        unit = 0x1p20;
        break;
      case 'G':
        unit = 0x1p30;
        break;
      case 'T':
        unit = 0x1p40;
        break;
      case 'B':
        if (rest.empty()) break;
        return std::nullopt;
      default:
        return std::nullopt;
    }
  }
  const double bytes = std::floor(v * unit);
  if (!(bytes >= 1) || bytes >= 0x1p63) return std::nullopt;
  return static_cast<std::uint64_t>(bytes);
}

Where parse_where(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw sqb::Error("where filter '" + text + "' must be of the form column=value");
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

Config load_config(const std::filesystem::path& path, ConfigUse use) {
  return parse_config(path, read_config_file(path), use);
}

Config parse_config(const std::filesystem::path& path, std::string text, ConfigUse use) {
  Config c;
  c.path = path;
  c.text = std::move(text);
  c.hash = text_hash(c.text);
  check_ini_text(c.text, path);  // binary, non-UTF-8, huge lines, duplicate sections: before Boost sees it
  const Reporter r(path);

  // Tokenise with Boost.program_options (sections become "section." prefixes); validation is ours.
  std::vector<Setting> settings;
  try {
    std::istringstream in(c.text);
    const po::options_description none;
    const po::parsed_options parsed = po::parse_config_file(in, none, /*allow_unregistered=*/true);
    const auto lines = key_lines(c.text);
    std::map<std::string, std::size_t> seen;
    for (const po::option& o : parsed.options) {
      Setting s;
      const auto dot = o.string_key.rfind('.');
      s.section = dot == std::string::npos ? "" : o.string_key.substr(0, dot);
      s.key = dot == std::string::npos ? o.string_key : o.string_key.substr(dot + 1);
      s.value = o.value.empty() ? "" : o.value.front();
      const auto it = lines.find(o.string_key);
      const std::size_t occurrence = seen[o.string_key]++;
      if (it != lines.end() && occurrence < it->second.size()) s.line = it->second[occurrence];
      settings.push_back(std::move(s));
    }
  } catch (const po::error& e) {
    r.fail_file(std::string("not a valid INI config: ") + e.what());
  }

  // Group by section, checking section and key names.
  std::map<std::string, std::vector<Setting>> sections;
  std::vector<std::string> section_order;
  for (const Setting& s : settings) {
    const std::string kind = s.section.substr(0, s.section.find('.'));
    const std::vector<std::string>* valid = nullptr;
    if (s.section.empty()) {
      valid = &kTopKeys;
    } else if (kind == "sweep") {
      valid = &kSweepKeys;
    } else if (kind == "table" || kind == "plot") {
      if (s.section.find('.') == std::string::npos) {
        r.fail_section(s.section, "name it [" + kind + ".<id>], e.g. [" + kind + ".mse]");
      }
      valid = kind == "table" ? &kTableKeys : &kPlotKeys;
    } else {
      r.fail(s, "unknown section [" + s.section +
                    "]; valid sections: [sweep] or [sweep.<id>], [table.<id>], [plot.<id>]");
    }
    if (kind != "" && s.section.find('.') != std::string::npos)
      check_id(r, s.section, s.section.substr(kind.size() + 1));
    if (!contains(*valid, s.key)) {
      r.fail(s, "unknown key" + (s.section.empty() ? std::string() : " in [" + s.section + "]") +
                    "; valid keys: " + join(*valid));
    }
    if (s.value.empty()) r.fail(s, "has no value");
    if (!sections.contains(s.section)) section_order.push_back(s.section);
    sections[s.section].push_back(s);
  }

  // A key given twice where only one value makes sense.
  const auto single = [&](const std::vector<Setting>& list) {
    std::set<std::string> seen;
    for (const Setting& s : list) {
      if (contains(kMultiKeys, s.key)) continue;
      if (!seen.insert(s.key).second)
        r.fail(s, "given more than once (only [sweep] keys, where, reference and hline take lists)");
    }
  };

  // A quantizer or distribution spec checked against its registry entry's parameters, in canonical form.
  const auto canonical_spec = [&](const Setting& s, const char* kind, const auto& find) {
    try {
      const sqb::SpecText t = sqb::SpecText::parse(s.value, kind);
      sqb::Params(find(t.name).params, t.args, std::string(kind) + " \"" + t.canonical() + "\"");
      return t.canonical();
    } catch (const sqb::Error& e) {
      r.fail(s, e.what());
    }
  };

  // Top level.
  c.name = path.stem().string();
  single(sections[""]);
  for (const Setting& s : sections[""]) {
    if (s.key == "name") {
      c.name = s.value;
      if (c.name.find_first_of("/\\") != std::string::npos || c.name == "." || c.name == "..") {
        r.fail(s, "'" + c.name + "' cannot name a results folder");
      }
    } else if (s.key == "description") {
      c.description = s.value;
    } else if (s.key == "repeats") {
      const auto v = sqb::parse_integer(s.value);
      if (!v || *v < 1 || *v > 1000) r.fail(s, "'" + s.value + "' must be an integer in 1..1000");
      c.repeats = static_cast<int>(*v);
    } else if (s.key == "opt_ratio") {
      c.opt_ratio = parse_bool(r, s);
    } else if (s.key == "opt_ratio_max_n") {
      const auto v = sqb::parse_integer(s.value);
      if (!v || *v < 1 || static_cast<double>(*v) > static_cast<double>(kMaxN)) {
        r.fail(s, "'" + s.value + "' must be an integer in 1.." + std::to_string(kMaxN) +
                      " (the largest cell, in values, whose exact optimum is computed)");
      }
      c.opt_ratio_max_n = static_cast<std::size_t>(*v);
    } else if (s.key == "max_memory") {
      c.max_memory = parse_bytes(s.value);
      if (!c.max_memory) {
        r.fail(s, "'" + s.value +
                      "' must be a size in bytes, with an optional K, M, G or T (binary: 1K = 1024), " +
                      "e.g. max_memory = 8G");
      }
    }
  }

  for (const std::string& section : section_order) {
    const std::vector<Setting>& list = sections[section];
    const std::string kind = section.substr(0, section.find('.'));
    const std::string id =
        section.find('.') == std::string::npos ? "" : section.substr(section.find('.') + 1);
    if (kind == "sweep") {
      SweepSpec sw;
      sw.id = id;
      bool has_k = false, has_bits = false, has_gran = false, has_seed = false;
      bool has_distribution = false, has_task = false;
      std::vector<sqb::task::TaskSpec> task_specs;
      std::vector<Setting> task_lines;
      std::optional<Setting> mode_setting;
      for (const Setting& s : list) {
        if (s.key == "quantizer") {
          sw.quantizers.push_back(canonical_spec(s, "quantizer", sqb::find_quantizer));
        } else if (s.key == "distribution") {
          if (has_task) r.fail(s, "a sweep lists either distribution or task, not both (use two sweeps)");
          has_distribution = true;
          sw.distributions.push_back(canonical_spec(s, "distribution", sqb::find_source));
        } else if (s.key == "task") {
          if (has_distribution)
            r.fail(s, "a sweep lists either distribution or task, not both (use two sweeps)");
          has_task = true;
          try {
            task_specs.push_back(sqb::task::parse_task_spec(s.value));
            sw.tasks.push_back(sqb::SpecText::parse(s.value, "task").canonical());
          } catch (const sqb::Error& e) {
            r.fail(s, e.what());
          }
          task_lines.push_back(s);
        } else if (s.key == "mode") {
          mode_setting = s;
          for (const std::string& m : split_commas(s.value)) {
            if (m != "fp32" && m != "ptq" && m != "qat") {
              r.fail(s, "'" + m + "' is not a mode; valid modes: " + std::string(kTaskModes));
            }
            sw.modes.push_back(m);
          }
        } else if (s.key == "n") {
          // `all` (sqb::kWholeFile) asks a file source for every value it has; synthetic laws refuse it.
          std::string rest;
          for (const std::string& v : split_commas(s.value)) {
            if (v == "all") {
              sw.n.push_back(sqb::kWholeFile);
            } else {
              rest += (rest.empty() ? "" : ",") + v;
            }
          }
          if (!rest.empty()) {
            Setting numeric = s;
            numeric.value = rest;
            add_numbers(r, numeric, 1, static_cast<double>(kMaxN),
                        "n must be in 1.." + std::to_string(kMaxN) + ", or all (a whole file)", sw.n);
          }
        } else if (s.key == "k") {
          has_k = true;
          add_numbers(r, s, 1, static_cast<double>(sqb::kMaxCodes), "k must be in " + sqb::k_range(), sw.k);
        } else if (s.key == "bits") {
          has_bits = true;
          std::vector<unsigned> bits;
          add_numbers(r, s, 1, 16, "bits must be in 1..16", bits);
          for (const unsigned b : bits)
            sw.k.push_back(std::size_t{1} << b);
        } else if (s.key == "granularity") {
          has_gran = true;
          for (const std::string& g : split_commas(s.value)) {
            try {
              sw.granularities.push_back(sqb::Granularity::parse(g).to_string());
            } catch (const sqb::Error& e) {
              r.fail(s, e.what());
            }
          }
        } else if (s.key == "opt_ratio") {
          if (sw.opt_ratio) r.fail(s, "given more than once");
          sw.opt_ratio = parse_bool(r, s);
        } else if (s.key == "repeats") {
          const auto v = sqb::parse_integer(s.value);
          if (!v || *v < 1 || *v > 1000 || sw.repeats != 0) {
            r.fail(s, "'" + s.value + "' must be one integer in 1..1000 (given once)");
          }
          sw.repeats = static_cast<int>(*v);
        } else if (s.key == "seed") {
          has_seed = true;
          add_numbers(r, s, 0, 9e18, "seed must be in 0..9e18", sw.seeds);
        }
        if (has_k && has_bits) r.fail(s, "give either k or bits, not both");
      }
      if (!has_gran) sw.granularities = {"tensor"};
      if (!has_seed) sw.seeds = {0};
      const auto require = [&](const std::string& key, bool empty) {
        if (empty) r.fail_section(section, "missing key '" + key + "': a sweep needs at least one value");
      };
      if (!has_distribution && !has_task) {
        r.fail_section(section,
                       "missing key 'distribution' (tensors to quantize) or 'task' (a network to train, "
                       "quantize and evaluate): a sweep needs one of them");
      }
      if (has_task) {
        // A task sweep quantizes the network's weight matrices: no n; its modes say what each cell does.
        for (const Setting& s : list) {
          if (s.key == "n")
            r.fail(s, "n does not apply to a task sweep (it quantizes the network's weights)");
          if (s.key == "opt_ratio")
            r.fail(s,
                   "opt_ratio applies to tensor sweeps (a task cell reports accuracy, not the MSE of one "
                   "tensor); a config-wide opt_ratio = 1 skips task sweeps");
        }
        if (!mode_setting) {
          r.fail_section(section,
                         "missing key 'mode': a task sweep needs at least one of " + std::string(kTaskModes));
        }
        const bool quantized =
            std::any_of(sw.modes.begin(), sw.modes.end(), [](const std::string& m) { return m != "fp32"; });
        const bool qat = std::find(sw.modes.begin(), sw.modes.end(), "qat") != sw.modes.end();
        for (std::size_t t = 0; t < task_specs.size() && qat; ++t) {
          if (task_specs[t].qat_epochs == 0) {
            r.fail(task_lines[t], "mode qat needs qat_epochs >= 1 (qat_epochs=0 leaves nothing to train)");
          }
        }
        if (quantized) {
          require("quantizer", sw.quantizers.empty());
          require(has_bits ? "bits" : "k", sw.k.empty());
        }
      } else {
        if (mode_setting) {
          r.fail(*mode_setting, "mode applies to task sweeps (task = ...), not to distributions");
        }
        require("quantizer", sw.quantizers.empty());
        if (sw.n.empty()) {
          // File sources default to every value (n = all); make_plan refuses the default for any other
          // source.
          sw.n = {sqb::kWholeFile};
          sw.n_given = false;
        }
        require(has_bits ? "bits" : "k", sw.k.empty());
      }
      // A value listed twice would make duplicate cells.
      const auto unique = [&](const std::string& key, const std::vector<std::string>& values) {
        std::set<std::string> seen;
        for (const std::string& v : values) {
          if (!seen.insert(v).second) {
            r.fail(Setting{section, key, v, 0}, "'" + v + "' is listed twice (it would duplicate cells)");
          }
        }
      };
      const auto text_of = [](const auto& v) {
        std::vector<std::string> t;
        for (const auto x : v)
          t.push_back(std::to_string(x));
        return t;
      };
      unique("quantizer", sw.quantizers);
      unique("distribution", sw.distributions);
      unique("task", sw.tasks);
      unique("mode", sw.modes);
      unique("n", text_of(sw.n));
      unique(has_bits ? "bits" : "k", text_of(sw.k));
      unique("granularity", sw.granularities);
      unique("seed", text_of(sw.seeds));
      c.sweeps.push_back(std::move(sw));
    } else if (kind == "table") {
      single(list);
      TableSpec t;
      t.id = id;
      for (const Setting& s : list) {
        if (s.key == "rows") t.rows = s.value;
        if (s.key == "cols") t.cols = s.value;
        if (s.key == "value") t.value = s.value;
        if (s.key == "title") t.title = s.value;
        if (s.key == "where") {
          try {
            t.where.push_back(parse_where(s.value));
          } catch (const sqb::Error& e) {
            r.fail(s, e.what());
          }
        }
        if (s.key == "agg") {
          const std::optional<Agg> agg = agg_named(s.value);
          if (!agg) r.fail(s, "'" + s.value + "' must be one of " + kAggChoices);
          t.agg = *agg;
        }
        if (s.key == "best") {
          if (!is_best_choice(s.value)) r.fail(s, "'" + s.value + "' must be one of " + kBestChoices);
          t.best = s.value;
        }
        if (s.key == "best_along") {
          if (s.value != "col" && s.value != "row") {
            r.fail(s, "'" + s.value + "' must be one of " + kBestAlongChoices);
          }
          t.best_along = s.value;
        }
        if (s.key == "spread") {
          if (s.value != "none" && s.value != "std")
            r.fail(s, "'" + s.value + "' must be one of " + kSpreadChoices);
          t.spread = s.value;
        }
        if (s.key == "digits") {
          const auto v = sqb::parse_integer(s.value);
          if (!v || *v < 1 || *v > kMaxDigits) {
            r.fail(s, "'" + s.value + "' must be an integer in 1.." + std::to_string(kMaxDigits));
          }
          t.digits = static_cast<int>(*v);
        }
      }
      if (t.spread == "std" && t.agg != Agg::none && t.agg != Agg::mean) {
        r.fail_section(section,
                       "spread = std shows mean ± std, so the cells must be means: use agg = none or mean");
      }
      if (t.rows.empty()) r.fail_section(section, "missing key 'rows'");
      if (t.value.empty()) r.fail_section(section, "missing key 'value'");
      const bool multi = t.value.find(',') != std::string::npos;
      if (multi && !t.cols.empty()) {
        r.fail_section(section,
                       "with several values (" + t.value + ") the columns are the values: drop 'cols'");
      }
      if (!multi && t.cols.empty()) r.fail_section(section, "missing key 'cols' (or give several values)");
      if (multi && t.best_along == "row") {
        r.fail_section(section, "best_along = row compares the columns of a row, but with several values (" +
                                    t.value + ") they are different quantities; use best_along = col");
      }
      c.tables.push_back(std::move(t));
    } else if (kind == "plot") {
      single(list);
      PlotSpec p;
      p.id = id;
      for (const Setting& s : list) {
        if (s.key == "kind") {
          if (s.value != "line" && s.value != "scatter" && s.value != "bar")
            r.fail(s, "'" + s.value + "' must be one of " + kPlotKinds);
          p.kind = s.value;
        }
        if (s.key == "agg") {
          p.agg = agg_named(s.value);
          if (!p.agg) r.fail(s, "'" + s.value + "' must be one of " + kAggChoices);
        }
        if (s.key == "x") p.x = s.value;
        if (s.key == "y") p.y = s.value;
        if (s.key == "series") p.series = s.value;
        if (s.key == "logx") p.logx = parse_bool(r, s);
        if (s.key == "logy") p.logy = parse_bool(r, s);
        if (s.key == "title") p.title = s.value;
        if (s.key == "xlabel") p.xlabel = s.value;
        if (s.key == "ylabel") p.ylabel = s.value;
        if (s.key == "reference") p.references.push_back(s.value);
        if (s.key == "dash") p.dash = s.value;
        if (s.key == "hline") {
          std::vector<Where> filters;
          try {
            for (const std::string& f : split_commas(s.value))
              filters.push_back(parse_where(f));
          } catch (const sqb::Error& e) {
            r.fail(s, e.what() +
                          std::string(" (an hline is the y of the rows matching column=value filters, e.g. "
                                      "hline = mode=fp32)"));
          }
          p.hlines.push_back(std::move(filters));
        }
        if (s.key == "where") {
          try {
            p.where.push_back(parse_where(s.value));
          } catch (const sqb::Error& e) {
            r.fail(s, e.what());
          }
        }
      }
      if (p.x.empty()) r.fail_section(section, "missing key 'x'");
      if (p.y.empty()) r.fail_section(section, "missing key 'y'");
      if (p.kind == "bar") {
        // Bars stand on a categorical axis: there is no x scale to take a logarithm of or to draw a curve on.
        if (p.logx) r.fail_section(section, "logx does not apply to kind = bar (its x axis is categorical)");
        if (!p.references.empty()) {
          r.fail_section(section, "reference curves need a numeric x axis; kind = bar has a categorical one");
        }
        if (!p.dash.empty()) r.fail_section(section, "dash splits lines; kind = bar draws bars (use series)");
        if (!p.hlines.empty())
          r.fail_section(section, "hline is drawn on line and scatter plots, not on bars");
      }
      c.plots.push_back(std::move(p));
    }
  }
  if (c.sweeps.empty() && use == ConfigUse::run)
    r.fail_file("no [sweep] section: a config needs at least one sweep");
  return c;
}

}  // namespace sqbench
