#include "config.hpp"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "config_keys.hpp"
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

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

void check_id(const Reporter& r, const std::string& section, const std::string& id) {
  if (id.empty() ||
      id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
          std::string::npos) {
    r.fail_section(section, "the id after the dot must be letters, digits, '_' or '-'");
  }
}

// A key's value after the checks of its kind (KeyKind), ready for the key's handler.
struct Value {
  std::vector<std::string> items;  ///< choices, granularities (canonical), spec (one, canonical)
  std::vector<std::optional<std::int64_t>> numbers;  ///< integer(s); std::nullopt for the key's word
  bool flag = false;                                 ///< boolean
  std::uint64_t bytes = 0;                           ///< bytes
  std::vector<Where> filters;                        ///< filter(s)
};

// A key of a section whose settings are read into a T: its description (the listing's and the messages'
// source) and what it does with a checked value. The handler holds only what is specific to the key.
template <class T>
struct Key {
  KeyInfo info;
  void (*apply)(T& target, const Value& value, const Setting& s, const Reporter& r);
};

std::vector<std::string> split_choices(const std::string& allowed) {
  std::vector<std::string> out;
  std::istringstream in(allowed);
  for (std::string c; std::getline(in, c, '|');)
    out.push_back(c);
  return out;
}

// "a", "a and b", "a, b and c".
std::string and_list(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i)
    out += (i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") + items[i];
  return out;
}

// A quantizer, distribution or task spec checked against its registry entry's parameters, in canonical form.
std::string canonical_spec(const std::string& registry, const std::string& text) {
  const sqb::SpecText t = sqb::SpecText::parse(text, registry);
  if (registry == "task") {
    sqb::task::parse_task_spec(text);
  } else {
    const auto& params =
        registry == "quantizer" ? sqb::find_quantizer(t.name).params : sqb::find_source(t.name).params;
    sqb::Params(params, t.args, registry + " \"" + t.canonical() + "\"");
  }
  return t.canonical();
}

// The checks every key of a kind gets, with the messages users see for them.
Value read_value(const KeyInfo& key, const Setting& s, const Reporter& r) {
  Value v;
  switch (key.kind) {
    case KeyKind::text:
    case KeyKind::column:
      break;
    case KeyKind::integer: {
      const auto x = sqb::parse_integer(s.value);
      if (!x || static_cast<double>(*x) < key.min || static_cast<double>(*x) > key.max)
        r.fail(s, "'" + s.value + "' must be an integer in " + key.allowed + " (" + key.help + ")");
      v.numbers.push_back(*x);
      break;
    }
    case KeyKind::integers:
      for (const std::string& item : split_commas(s.value)) {
        if (!key.word.empty() && item == key.word) {
          v.numbers.push_back(std::nullopt);
          continue;
        }
        const std::string what = " (" + key.name + " must be in " + key.allowed + ")";
        const auto x = sqb::parse_integer(item);
        if (!x) r.fail(s, "'" + item + "' is not an integer" + what);
        if (static_cast<double>(*x) < key.min || static_cast<double>(*x) > key.max)
          r.fail(s, "'" + item + "' is out of range" + what);
        v.numbers.push_back(*x);
      }
      break;
    case KeyKind::boolean:
      if (s.value == "1" || s.value == "true" || s.value == "yes") {
        v.flag = true;
      } else if (s.value != "0" && s.value != "false" && s.value != "no") {
        r.fail(s, "'" + s.value + "' must be one of 1|0|true|false|yes|no");
      }
      break;
    case KeyKind::choice:
      if (!contains(split_choices(key.allowed), s.value))
        r.fail(s, "'" + s.value + "' must be one of " + key.allowed);
      v.items.push_back(s.value);
      break;
    case KeyKind::choices:
      for (const std::string& item : split_commas(s.value)) {
        if (!contains(split_choices(key.allowed), item))
          r.fail(s, "'" + item + "' is not a " + key.name + "; valid " + key.name + "s: " + key.allowed);
        v.items.push_back(item);
      }
      break;
    case KeyKind::bytes: {
      const auto bytes = parse_bytes(s.value);
      if (!bytes) {
        r.fail(s, "'" + s.value +
                      "' must be a size in bytes, with an optional K, M, G or T (binary: 1K = 1024), e.g. " +
                      key.name + " = 8G");
      }
      v.bytes = *bytes;
      break;
    }
    case KeyKind::spec:
      try {
        v.items.push_back(canonical_spec(key.allowed, s.value));
      } catch (const sqb::Error& e) {
        r.fail(s, e.what());
      }
      break;
    case KeyKind::granularities:
      for (const std::string& g : split_commas(s.value)) {
        try {
          v.items.push_back(sqb::Granularity::parse(g).to_string());
        } catch (const sqb::Error& e) {
          r.fail(s, e.what());
        }
      }
      break;
    case KeyKind::filter:
      try {
        v.filters.push_back(parse_where(s.value));
      } catch (const sqb::Error& e) {
        r.fail(s, e.what());
      }
      break;
    case KeyKind::filters:
      try {
        for (const std::string& f : split_commas(s.value))
          v.filters.push_back(parse_where(f));
      } catch (const sqb::Error& e) {
        r.fail(s, e.what() + (" (" + key.help + ")"));
      }
      break;
  }
  return v;
}

template <class T>
const Key<T>& key_named(const std::vector<Key<T>>& keys, const std::string& name) {
  return *std::find_if(keys.begin(), keys.end(), [&](const Key<T>& k) { return k.info.name == name; });
}

// One section's settings into `target`, by its key table: a key given twice that may not repeat, each
// value checked by its kind and handed to its key's handler, then every required key present. (The keys
// themselves were checked against the table when the file was grouped into sections.)
template <class T>
void read_section(const std::vector<Key<T>>& keys, const std::string& header, const std::string& section,
                  const std::vector<Setting>& list, T& target, const Reporter& r) {
  std::vector<std::string> repeatable;
  for (const Key<T>& k : keys)
    if (k.info.repeatable) repeatable.push_back(k.info.name);
  std::set<std::string> seen;
  for (const Setting& s : list) {
    if (seen.insert(s.key).second || key_named(keys, s.key).info.repeatable) continue;
    r.fail(s, "given more than once (" +
                  (repeatable.empty() ? "no key of the " + header + " may repeat"
                                      : "in " + header + " only " + and_list(repeatable) + " may repeat") +
                  ")");
  }
  for (const Setting& s : list) {
    const Key<T>& k = key_named(keys, s.key);
    k.apply(target, read_value(k.info, s, r), s, r);
  }
  for (const Key<T>& k : keys) {
    if (k.info.need == Need::required && !seen.contains(k.info.name))
      r.fail_section(section, "missing key '" + k.info.name + "'");
  }
}

// The text of an integer list (to find values listed twice).
template <class V>
std::vector<std::string> texts(const std::vector<V>& values) {
  std::vector<std::string> t;
  for (const V x : values)
    t.push_back(std::to_string(x));
  return t;
}

// ---- top level ----

const std::vector<Key<Config>>& top_keys() {
  static const std::vector<Key<Config>> keys = {
      {{.name = "name",
        .help = "names the results folder: results/<name>/",
        .default_value = "the config file's stem"},
       [](Config& c, const Value&, const Setting& s, const Reporter& r) {
         if (s.value.find_first_of("/\\") != std::string::npos || s.value == "." || s.value == "..")
           r.fail(s, "'" + s.value + "' cannot name a results folder");
         c.name = s.value;
       }},
      {{.name = "description", .help = "free text, copied into context.json"},
       [](Config& c, const Value&, const Setting& s, const Reporter&) { c.description = s.value; }},
      {{.name = "repeats",
        .kind = KeyKind::integer,
        .allowed = "1..1000",
        .help = "timed repeats of every cell after one warm-up",
        .default_value = std::to_string(Config{}.repeats),
        .min = 1,
        .max = 1000},
       [](Config& c, const Value& v, const Setting&, const Reporter&) {
         c.repeats = static_cast<int>(*v.numbers[0]);
       }},
      {{.name = "max_memory",
        .kind = KeyKind::bytes,
        .help = "the memory the cells of a run may use at once, in place of the machine's available memory",
        .default_value = "the available memory"},
       [](Config& c, const Value& v, const Setting&, const Reporter&) { c.max_memory = v.bytes; }},
      {{.name = "opt_ratio",
        .kind = KeyKind::boolean,
        .help = "every tensor cell also reports its MSE over the exact optimum (the opt_ratio column)",
        .default_value = "0"},
       [](Config& c, const Value& v, const Setting&, const Reporter&) { c.opt_ratio = v.flag; }},
      {{.name = "opt_ratio_max_n",
        .kind = KeyKind::integer,
        .allowed = "1.." + std::to_string(kMaxN),
        .help = "the largest cell, in values, whose exact optimum is computed",
        .default_value = std::to_string(Config{}.opt_ratio_max_n),
        .min = 1,
        .max = static_cast<double>(kMaxN)},
       [](Config& c, const Value& v, const Setting&, const Reporter&) {
         c.opt_ratio_max_n = static_cast<std::size_t>(*v.numbers[0]);
       }},
  };
  return keys;
}

// ---- [sweep] / [sweep.<id>] ----

// A sweep as its settings are read, with what its cross-key checks need.
struct SweepState {
  SweepSpec sw;
  bool has_k = false, has_bits = false, has_gran = false, has_seed = false;
  bool has_distribution = false, has_task = false;
  std::vector<sqb::task::TaskSpec> task_specs;
  std::vector<Setting> task_lines;
  std::optional<Setting> mode_setting;
};

void check_k_or_bits(const SweepState& st, const Setting& s, const Reporter& r) {
  if (st.has_k && st.has_bits) r.fail(s, "give either k or bits, not both");
}

const std::vector<Key<SweepState>>& sweep_keys() {
  static const std::vector<Key<SweepState>> keys = {
      {{.name = "quantizer",
        .kind = KeyKind::spec,
        .allowed = "quantizer",
        .repeatable = true,
        .need = Need::conditional,
        .required_when = "unless every mode is fp32",
        .help = "the quantizers to compare; each line is one more"},
       [](SweepState& st, const Value& v, const Setting&, const Reporter&) {
         st.sw.quantizers.push_back(v.items[0]);
       }},
      {{.name = "distribution",
        .kind = KeyKind::spec,
        .allowed = "distribution",
        .repeatable = true,
        .need = Need::conditional,
        .required_when = "unless the sweep lists task (one of distribution and task)",
        .help = "the tensors to quantize; each line is one more"},
       [](SweepState& st, const Value& v, const Setting& s, const Reporter& r) {
         if (st.has_task) r.fail(s, "a sweep lists either distribution or task, not both (use two sweeps)");
         st.has_distribution = true;
         st.sw.distributions.push_back(v.items[0]);
       }},
      {{.name = "task",
        .kind = KeyKind::spec,
        .allowed = "task",
        .repeatable = true,
        .need = Need::conditional,
        .required_when = "unless the sweep lists distribution (one of distribution and task)",
        .help = "networks to train, quantize and evaluate; each line is one more"},
       [](SweepState& st, const Value& v, const Setting& s, const Reporter& r) {
         if (st.has_distribution)
           r.fail(s, "a sweep lists either distribution or task, not both (use two sweeps)");
         st.has_task = true;
         st.task_specs.push_back(sqb::task::parse_task_spec(s.value));  // read_value has checked it
         st.sw.tasks.push_back(v.items[0]);
         st.task_lines.push_back(s);
       }},
      {{.name = "mode",
        .kind = KeyKind::choices,
        .allowed = kTaskModes,
        .repeatable = true,
        .need = Need::conditional,
        .required_when = "in a task sweep",
        .help = "what a task cell does: the float model, post-training or quantization-aware training"},
       [](SweepState& st, const Value& v, const Setting& s, const Reporter&) {
         st.mode_setting = s;
         st.sw.modes.insert(st.sw.modes.end(), v.items.begin(), v.items.end());
       }},
      {{.name = "n",
        .kind = KeyKind::integers,
        .allowed = "1.." + std::to_string(kMaxN) + ", or all (a whole file)",
        .repeatable = true,
        .help = "values per tensor (not in task sweeps)",
        .default_value = "all, for a sweep whose distributions are all files",
        .word = "all",
        .min = 1,
        .max = static_cast<double>(kMaxN)},
       [](SweepState& st, const Value& v, const Setting&, const Reporter&) {
         // `all` (sqb::kWholeFile) asks a file source for every value it has; synthetic laws refuse it.
         // The words go first, then the numbers, as the lists have always been ordered.
         for (const auto& x : v.numbers)
           if (!x) st.sw.n.push_back(sqb::kWholeFile);
         for (const auto& x : v.numbers)
           if (x) st.sw.n.push_back(static_cast<std::size_t>(*x));
       }},
      {{.name = "k",
        .kind = KeyKind::integers,
        .allowed = sqb::k_range(),
        .repeatable = true,
        .need = Need::conditional,
        .required_when = "unless bits is given or every mode is fp32 (k or bits, not both)",
        .help = "codebook sizes K",
        .min = 1,
        .max = static_cast<double>(sqb::kMaxCodes)},
       [](SweepState& st, const Value& v, const Setting& s, const Reporter& r) {
         st.has_k = true;
         for (const auto& x : v.numbers)
           st.sw.k.push_back(static_cast<std::size_t>(*x));
         check_k_or_bits(st, s, r);
       }},
      {{.name = "bits",
        .kind = KeyKind::integers,
        .allowed = "1..16",
        .repeatable = true,
        .need = Need::conditional,
        .required_when = "unless k is given or every mode is fp32 (k or bits, not both)",
        .help = "bits b per code: K = 2^b",
        .min = 1,
        .max = 16},
       [](SweepState& st, const Value& v, const Setting& s, const Reporter& r) {
         st.has_bits = true;
         for (const auto& x : v.numbers)
           st.sw.k.push_back(std::size_t{1} << static_cast<unsigned>(*x));
         check_k_or_bits(st, s, r);
       }},
      {{.name = "granularity",
        .kind = KeyKind::granularities,
        .repeatable = true,
        .help = "one codebook per tensor, per channel (row) or per group of G values",
        .default_value = "tensor"},
       [](SweepState& st, const Value& v, const Setting&, const Reporter&) {
         st.has_gran = true;
         st.sw.granularities.insert(st.sw.granularities.end(), v.items.begin(), v.items.end());
       }},
      {{.name = "seed",
        .kind = KeyKind::integers,
        .allowed = "0..9e18",
        .repeatable = true,
        .help = "seeds of the data and the designs (task sweeps: also of the float model)",
        .default_value = "0",
        .min = 0,
        .max = 9e18},
       [](SweepState& st, const Value& v, const Setting&, const Reporter&) {
         st.has_seed = true;
         for (const auto& x : v.numbers)
           st.sw.seeds.push_back(static_cast<std::uint64_t>(*x));
       }},
      {{.name = "repeats",
        .kind = KeyKind::integer,
        .allowed = "1..1000",
        .help = "timed repeats of this sweep's cells",
        .default_value = "the top-level repeats",
        .min = 1,
        .max = 1000},
       [](SweepState& st, const Value& v, const Setting&, const Reporter&) {
         st.sw.repeats = static_cast<int>(*v.numbers[0]);
       }},
      {{.name = "opt_ratio",
        .kind = KeyKind::boolean,
        .help = "this sweep's opt_ratio (tensor sweeps only)",
        .default_value = "the top-level opt_ratio"},
       [](SweepState& st, const Value& v, const Setting&, const Reporter&) { st.sw.opt_ratio = v.flag; }},
  };
  return keys;
}

// What a sweep needs as a whole: distribution or task, the keys its kind requires, no value listed twice.
SweepSpec finish_sweep(SweepState st, const std::string& section, const std::vector<Setting>& list,
                       const Reporter& r) {
  SweepSpec& sw = st.sw;
  if (!st.has_gran) sw.granularities = {"tensor"};
  if (!st.has_seed) sw.seeds = {0};
  const auto require = [&](const std::string& key, bool empty) {
    if (empty) r.fail_section(section, "missing key '" + key + "': a sweep needs at least one value");
  };
  if (!st.has_distribution && !st.has_task) {
    r.fail_section(section,
                   "missing key 'distribution' (tensors to quantize) or 'task' (a network to train, "
                   "quantize and evaluate): a sweep needs one of them");
  }
  if (st.has_task) {
    // A task sweep quantizes the network's weight matrices: no n; its modes say what each cell does.
    for (const Setting& s : list) {
      if (s.key == "n") r.fail(s, "n does not apply to a task sweep (it quantizes the network's weights)");
      if (s.key == "opt_ratio")
        r.fail(s,
               "opt_ratio applies to tensor sweeps (a task cell reports accuracy, not the MSE of one "
               "tensor); a config-wide opt_ratio = 1 skips task sweeps");
    }
    if (!st.mode_setting) {
      r.fail_section(section,
                     "missing key 'mode': a task sweep needs at least one of " + std::string(kTaskModes));
    }
    const bool quantized =
        std::any_of(sw.modes.begin(), sw.modes.end(), [](const std::string& m) { return m != "fp32"; });
    const bool qat = contains(sw.modes, "qat");
    for (std::size_t t = 0; t < st.task_specs.size() && qat; ++t) {
      if (st.task_specs[t].qat_epochs == 0)
        r.fail(st.task_lines[t], "mode qat needs qat_epochs >= 1 (qat_epochs=0 leaves nothing to train)");
    }
    if (quantized) {
      require("quantizer", sw.quantizers.empty());
      require(st.has_bits ? "bits" : "k", sw.k.empty());
    }
  } else {
    if (st.mode_setting)
      r.fail(*st.mode_setting, "mode applies to task sweeps (task = ...), not to distributions");
    require("quantizer", sw.quantizers.empty());
    if (sw.n.empty()) {
      // File sources default to every value (n = all); make_plan refuses the default for any other source.
      sw.n = {sqb::kWholeFile};
      sw.n_given = false;
    }
    require(st.has_bits ? "bits" : "k", sw.k.empty());
  }
  // A value listed twice would make duplicate cells.
  const auto unique = [&](const std::string& key, const std::vector<std::string>& values) {
    std::set<std::string> seen;
    for (const std::string& v : values) {
      if (!seen.insert(v).second)
        r.fail(Setting{section, key, v, 0}, "'" + v + "' is listed twice (it would duplicate cells)");
    }
  };
  unique("quantizer", sw.quantizers);
  unique("distribution", sw.distributions);
  unique("task", sw.tasks);
  unique("mode", sw.modes);
  unique("n", texts(sw.n));
  unique(st.has_bits ? "bits" : "k", texts(sw.k));
  unique("granularity", sw.granularities);
  unique("seed", texts(sw.seeds));
  return std::move(sw);
}

// ---- [table.<id>] ----

const std::vector<Key<TableSpec>>& table_keys() {
  static const std::vector<Key<TableSpec>> keys = {
      {{.name = "rows",
        .kind = KeyKind::column,
        .need = Need::required,
        .help = "the result column whose values are the rows"},
       [](TableSpec& t, const Value&, const Setting& s, const Reporter&) { t.rows = s.value; }},
      {{.name = "cols",
        .kind = KeyKind::column,
        .need = Need::conditional,
        .required_when = "unless value lists several columns",
        .help = "the result column whose values are the columns"},
       [](TableSpec& t, const Value&, const Setting& s, const Reporter&) { t.cols = s.value; }},
      {{.name = "value",
        .kind = KeyKind::column,
        .need = Need::required,
        .help = "the result column in the cells, or several (comma-separated: then they are the columns)"},
       [](TableSpec& t, const Value&, const Setting& s, const Reporter&) { t.value = s.value; }},
      {{.name = "where",
        .kind = KeyKind::filter,
        .repeatable = true,
        .help = "keep the rows whose column has this value (a|b: alternatives; numbers compare numerically)"},
       [](TableSpec& t, const Value& v, const Setting&, const Reporter&) {
         t.where.push_back(v.filters[0]);
       }},
      {{.name = "agg",
        .kind = KeyKind::choice,
        .allowed = kAggChoices,
        .help = "how the rows of a cell combine (none: rows differing only in seed are averaged)",
        .default_value = "none"},
       [](TableSpec& t, const Value& v, const Setting&, const Reporter&) { t.agg = *agg_named(v.items[0]); }},
      {{.name = "best",
        .kind = KeyKind::choice,
        .allowed = kBestChoices,
        .help = "the value set in bold (auto: max for sqnr_db, else min)",
        .default_value = TableSpec{}.best},
       [](TableSpec& t, const Value& v, const Setting&, const Reporter&) { t.best = v.items[0]; }},
      {{.name = "best_along",
        .kind = KeyKind::choice,
        .allowed = kBestAlongChoices,
        .help = "the best of each column or of each row (one value only)",
        .default_value = TableSpec{}.best_along},
       [](TableSpec& t, const Value& v, const Setting&, const Reporter&) { t.best_along = v.items[0]; }},
      {{.name = "title", .help = "the caption", .default_value = "<value> by <rows> and <cols>"},
       [](TableSpec& t, const Value&, const Setting& s, const Reporter&) { t.title = s.value; }},
      {{.name = "digits",
        .kind = KeyKind::integer,
        .allowed = "1.." + std::to_string(kMaxDigits),
        .help = "significant digits",
        .default_value = std::to_string(TableSpec{}.digits),
        .min = 1,
        .max = kMaxDigits},
       [](TableSpec& t, const Value& v, const Setting&, const Reporter&) {
         t.digits = static_cast<int>(*v.numbers[0]);
       }},
      {{.name = "spread",
        .kind = KeyKind::choice,
        .allowed = kSpreadChoices,
        .help = "std: a cell of several seeds shows mean ± std (needs agg none or mean)",
        .default_value = TableSpec{}.spread},
       [](TableSpec& t, const Value& v, const Setting&, const Reporter&) { t.spread = v.items[0]; }},
  };
  return keys;
}

void finish_table(const TableSpec& t, const std::string& section, const Reporter& r) {
  if (t.spread == "std" && t.agg != Agg::none && t.agg != Agg::mean)
    r.fail_section(section,
                   "spread = std shows mean ± std, so the cells must be means: use agg = none or mean");
  const bool multi = t.value.find(',') != std::string::npos;
  if (multi && !t.cols.empty())
    r.fail_section(section, "with several values (" + t.value + ") the columns are the values: drop 'cols'");
  if (!multi && t.cols.empty()) r.fail_section(section, "missing key 'cols' (or give several values)");
  if (multi && t.best_along == "row") {
    r.fail_section(section, "best_along = row compares the columns of a row, but with several values (" +
                                t.value + ") they are different quantities; use best_along = col");
  }
}

// ---- [plot.<id>] ----

const std::vector<Key<PlotSpec>>& plot_keys() {
  static const std::vector<Key<PlotSpec>> keys = {
      {{.name = "kind",
        .kind = KeyKind::choice,
        .allowed = kPlotKinds,
        .help = "line and scatter: numeric x; bar: one group of bars per x value",
        .default_value = PlotSpec{}.kind},
       [](PlotSpec& p, const Value& v, const Setting&, const Reporter&) { p.kind = v.items[0]; }},
      {{.name = "x",
        .kind = KeyKind::column,
        .need = Need::required,
        .help = "the result column on the x axis"},
       [](PlotSpec& p, const Value&, const Setting& s, const Reporter&) { p.x = s.value; }},
      {{.name = "y",
        .kind = KeyKind::column,
        .need = Need::required,
        .help = "the result column on the y axis (numbers)"},
       [](PlotSpec& p, const Value&, const Setting& s, const Reporter&) { p.y = s.value; }},
      {{.name = "series",
        .kind = KeyKind::column,
        .help = "the result column whose values are the lines (or bars)"},
       [](PlotSpec& p, const Value&, const Setting& s, const Reporter&) { p.series = s.value; }},
      {{.name = "agg",
        .kind = KeyKind::choice,
        .allowed = kAggChoices,
        .help = "how the rows of a point or bar combine, as in tables",
        .default_value = "none (a scatter: every row is a point)"},
       [](PlotSpec& p, const Value& v, const Setting&, const Reporter&) { p.agg = agg_named(v.items[0]); }},
      {{.name = "logx",
        .kind = KeyKind::boolean,
        .help = "a logarithmic x axis (not for bars)",
        .default_value = "0"},
       [](PlotSpec& p, const Value& v, const Setting&, const Reporter&) { p.logx = v.flag; }},
      {{.name = "logy", .kind = KeyKind::boolean, .help = "a logarithmic y axis", .default_value = "0"},
       [](PlotSpec& p, const Value& v, const Setting&, const Reporter&) { p.logy = v.flag; }},
      {{.name = "where",
        .kind = KeyKind::filter,
        .repeatable = true,
        .help = "keep the rows whose column has this value, as in tables"},
       [](PlotSpec& p, const Value& v, const Setting&, const Reporter&) { p.where.push_back(v.filters[0]); }},
      {{.name = "reference", .repeatable = true, .help = "a reference curve (listed below; not for bars)"},
       [](PlotSpec& p, const Value&, const Setting& s, const Reporter&) { p.references.push_back(s.value); }},
      {{.name = "title", .help = "the plot's title", .default_value = "<y> vs <x> (bars: <y> by <x>)"},
       [](PlotSpec& p, const Value&, const Setting& s, const Reporter&) { p.title = s.value; }},
      {{.name = "xlabel", .help = "the x axis label", .default_value = "the column's label with its unit"},
       [](PlotSpec& p, const Value&, const Setting& s, const Reporter&) { p.xlabel = s.value; }},
      {{.name = "ylabel", .help = "the y axis label", .default_value = "the column's label with its unit"},
       [](PlotSpec& p, const Value&, const Setting& s, const Reporter&) { p.ylabel = s.value; }},
      {{.name = "dash",
        .kind = KeyKind::column,
        .help = "a result column whose values split each series into solid, dashed, ... lines (not bars)"},
       [](PlotSpec& p, const Value&, const Setting& s, const Reporter&) { p.dash = s.value; }},
      {{.name = "hline",
        .kind = KeyKind::filters,
        .repeatable = true,
        .help = "an hline is the y of the rows matching column=value filters, e.g. hline = mode=fp32"},
       [](PlotSpec& p, const Value& v, const Setting&, const Reporter&) { p.hlines.push_back(v.filters); }},
  };
  return keys;
}

void finish_plot(const PlotSpec& p, const std::string& section, const Reporter& r) {
  if (p.kind != "bar") return;
  // Bars stand on a categorical axis: there is no x scale to take a logarithm of or to draw a curve on.
  if (p.logx) r.fail_section(section, "logx does not apply to kind = bar (its x axis is categorical)");
  if (!p.references.empty())
    r.fail_section(section, "reference curves need a numeric x axis; kind = bar has a categorical one");
  if (!p.dash.empty()) r.fail_section(section, "dash splits lines; kind = bar draws bars (use series)");
  if (!p.hlines.empty()) r.fail_section(section, "hline is drawn on line and scatter plots, not on bars");
}

// ---- the sections ----

template <class T>
std::vector<KeyInfo> infos(const std::vector<Key<T>>& keys) {
  std::vector<KeyInfo> out;
  for (const Key<T>& k : keys)
    out.push_back(k.info);
  return out;
}

const std::vector<SectionInfo>& section_kinds() {
  static const std::vector<SectionInfo> kinds = {
      {"", "top level", "before any section: the run as a whole", false, infos(top_keys())},
      {"sweep", "[sweep] or [sweep.<id>]",
       "one or more sweeps; every combination of a sweep's lists is a cell", false, infos(sweep_keys())},
      {"table", "[table.<id>]", "a table `sqbench run` renders into tables.md and tables.tex", true,
       infos(table_keys())},
      {"plot", "[plot.<id>]", "a plot rendered with gnuplot: plots/<id>.{png,svg,gp,dat}", true,
       infos(plot_keys())},
  };
  return kinds;
}

const SectionInfo* section_kind(const std::string& kind) {
  for (const SectionInfo& k : section_kinds())
    if (k.kind == kind) return &k;
  return nullptr;
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

const std::vector<SectionInfo>& config_sections() {
  return section_kinds();
}

namespace {

// Tokenises with Boost.program_options (sections become "section." prefixes); validation is ours.
std::vector<Setting> read_settings(const std::string& text, const Reporter& r) {
  std::vector<Setting> settings;
  try {
    std::istringstream in(text);
    const po::options_description none;
    const po::parsed_options parsed = po::parse_config_file(in, none, /*allow_unregistered=*/true);
    const auto lines = key_lines(text);
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
  return settings;
}

// The settings grouped by section, in the order the sections first appear.
struct Sections {
  std::map<std::string, std::vector<Setting>> settings;
  std::vector<std::string> order;
};

// Groups the settings by section, checking section names and ids and key names against the key tables, in
// file order (so the first mistake in the file is the one reported).
Sections group_sections(const std::vector<Setting>& settings, const Reporter& r) {
  Sections out;
  for (const Setting& s : settings) {
    const std::string kind = s.section.substr(0, s.section.find('.'));
    const bool has_id = s.section.find('.') != std::string::npos;
    const SectionInfo* info = section_kind(kind);
    if (info == nullptr || (kind.empty() && !s.section.empty())) {
      std::vector<std::string> valid;
      for (const SectionInfo& k : section_kinds())
        if (!k.kind.empty()) valid.push_back(k.header);
      r.fail(s, "unknown section [" + s.section + "]; valid sections: " + join(valid));
    }
    if (info->needs_id && !has_id)
      r.fail_section(s.section, "name it [" + kind + ".<id>], e.g. [" + kind + ".mse]");
    if (has_id) check_id(r, s.section, s.section.substr(kind.size() + 1));
    if (std::none_of(info->keys.begin(), info->keys.end(),
                     [&](const KeyInfo& k) { return k.name == s.key; })) {
      std::vector<std::string> valid;
      for (const KeyInfo& k : info->keys)
        valid.push_back(k.name);
      r.fail(s, "unknown key" + (s.section.empty() ? std::string() : " in [" + s.section + "]") +
                    "; valid keys: " + join(valid));
    }
    if (s.value.empty()) r.fail(s, "has no value");
    if (!out.settings.contains(s.section)) out.order.push_back(s.section);
    out.settings[s.section].push_back(s);
  }
  return out;
}

}  // namespace

Config parse_config(const std::filesystem::path& path, std::string text, ConfigUse use) {
  Config c;
  c.path = path;
  c.text = std::move(text);
  c.hash = text_hash(c.text);
  check_ini_text(c.text, path);  // binary, non-UTF-8, huge lines, duplicate sections: before Boost sees it
  const Reporter r(path);

  Sections sections = group_sections(read_settings(c.text, r), r);

  c.name = path.stem().string();
  read_section(top_keys(), section_kind("")->header, "", sections.settings[""], c, r);
  for (const std::string& section : sections.order) {
    const std::vector<Setting>& list = sections.settings[section];
    const std::string kind = section.substr(0, section.find('.'));
    const std::string id =
        section.find('.') == std::string::npos ? "" : section.substr(section.find('.') + 1);
    const std::string& header = section_kind(kind)->header;
    if (kind == "sweep") {
      SweepState st;
      st.sw.id = id;
      read_section(sweep_keys(), header, section, list, st, r);
      c.sweeps.push_back(finish_sweep(std::move(st), section, list, r));
    } else if (kind == "table") {
      TableSpec t;
      t.id = id;
      read_section(table_keys(), header, section, list, t, r);
      finish_table(t, section, r);
      c.tables.push_back(std::move(t));
    } else if (kind == "plot") {
      PlotSpec p;
      p.id = id;
      read_section(plot_keys(), header, section, list, p, r);
      finish_plot(p, section, r);
      c.plots.push_back(std::move(p));
    }
  }
  if (c.sweeps.empty() && use == ConfigUse::run)
    r.fail_file("no [sweep] section: a config needs at least one sweep");
  return c;
}

}  // namespace sqbench
