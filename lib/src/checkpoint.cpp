// A checkpoint in, a quantized checkpoint out. Two phases: a plan (every tensor's fate, layout, K, importance
// vector and output layout, all checked) built from the headers alone, then the work, one tensor at a time,
// into files laid out up front and renamed when complete. Nothing is written before the plan is whole.

#include "sqb/checkpoint.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sqb/coding.hpp"
#include "sqb/error.hpp"
#include "sqb/granularity.hpp"
#include "sqb/importance.hpp"
#include "sqb/layout.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/safetensors.hpp"
#include "sqb/version.hpp"

namespace sqb {

namespace fs = std::filesystem;
namespace st = sqb::safetensors;

namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::string number(double v) {
  if (std::isnan(v)) return "";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string shape_text(const std::vector<std::size_t>& shape) {
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += 'x';
    s += std::to_string(shape[i]);
  }
  return s.empty() ? "scalar" : s;
}

bool is_float(st::DType t) {
  return st::is_readable(t);
}

bool default_selected(const st::TensorInfo& t) {
  if (!is_float(t.dtype) || t.shape.size() < 2 || t.size() == 0) return false;
  const std::string& n = t.name;
  const auto ends = [&](std::string_view s) { return n.size() >= s.size() && n.ends_with(s); };
  return ends("weight") || ends("kernel");
}

// FNV-1a 64 of a byte range: the input fingerprint the manifest records (header bytes and size identify a
// safetensors file's layout; the data is not hashed so fingerprinting stays free).
std::uint64_t fnv1a(std::span<const unsigned char> bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// What happens to one tensor.
struct Job {
  std::string name;
  std::size_t file = 0;  // index into the input files
  st::TensorInfo info;
  bool quantize = false;
  int rule = -1;  // -1: the default selection
  std::string spec, granularity, layout_word;
  npy::Layout layout = npy::Layout::oihw;
  std::size_t k = 0, rows = 0, cols = 0, blocks = 0, side_per_block = 0;
  const std::vector<float>* importance = nullptr;
};

struct InputFile {
  fs::path path;
  std::string out_name;  // the file name in the output folder
  st::File file;
};

// A lock on the output folder for the run's duration: two runs into one folder would interleave.
struct FolderLock {
  int fd = -1;
  fs::path p;
  explicit FolderLock(const fs::path& dir) : p(dir / ".sqbench-quantize.lock") {
    fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) throw Error(p.string() + ": cannot create the folder's lock file");
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      throw Error(dir.string() + ": another sqbench quantize is writing into this folder (it holds " +
                  p.filename().string() + "); wait for it or choose another --out");
    }
  }
  ~FolderLock() {
    if (fd >= 0) {
      ::unlink(p.c_str());
      ::close(fd);
    }
  }
};

void write_text_atomically(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw Error(path.string() + ": cannot write");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error(path.string() + ": cannot rename the temporary file to it (" + ec.message() + ")");
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// Drops the mapped input pages of a tensor already consumed: they are file-backed and clean, so the kernel
// would reclaim them anyway, but until then they count as resident memory and a 2 GB checkpoint would look
// like a 2 GB process.
void release_pages(std::span<const unsigned char> bytes) {
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<std::uintptr_t>(bytes.data()) + page - 1) / page * page;
  const auto end = (reinterpret_cast<std::uintptr_t>(bytes.data()) + bytes.size()) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

std::vector<CheckpointRule> parse_rules(const std::string& text, const std::string& where) {
  std::vector<CheckpointRule> rules;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  std::vector<bool> has_k;
  constexpr const char* kKeys = "spec, bits, k, granularity, layout, importance, skip";
  while (std::getline(in, line)) {
    ++lineno;
    const std::string at = where + ":" + std::to_string(lineno) + ": ";
    const auto hash = line.find_first_of("#;");
    if (hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line.back() != ']' || line.size() < 3)
        throw Error(at + "a rule starts with [GLOB] (a tensor-name pattern such as [*.mlp.*])");
      CheckpointRule r;
      r.pattern = trim(line.substr(1, line.size() - 2));
      st::glob_match(r.pattern, "");  // a malformed pattern is an error here
      rules.push_back(r);
      has_k.push_back(false);
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) throw Error(at + "expected KEY = VALUE (keys: " + kKeys + ")");
    if (rules.empty()) throw Error(at + "a key before the first [GLOB] rule");
    const std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    CheckpointRule& r = rules.back();
    const auto as_bool = [&](std::string_view yes, std::string_view no) {
      if (value == yes || value == "true" || value == "1") return true;
      if (value == no || value == "false" || value == "0") return false;
      throw Error(at + key + " = '" + value + "' is not " + std::string(yes) + " or " + std::string(no));
    };
    if (key == "spec") {
      r.spec = value;
    } else if (key == "bits" || key == "k") {
      if (has_k.back()) throw Error(at + "give bits or k once per rule");
      has_k.back() = true;
      std::size_t v = 0;
      const auto res = std::from_chars(value.data(), value.data() + value.size(), v);
      if (res.ec != std::errc() || res.ptr != value.data() + value.size())
        throw Error(at + key + " = '" + value + "' is not a whole number");
      try {
        r.k = key == "bits" ? codes_for_bits(static_cast<int>(std::min<std::size_t>(v, 1000))) : v;
      } catch (const Error& e) {
        throw Error(at + e.what());
      }
      if (r.k < 1 || r.k > 65536) throw Error(at + "k = " + value + " is outside 1..65536");
    } else if (key == "granularity") {
      try {
        (void)Granularity::parse(value);
      } catch (const Error& e) {
        throw Error(at + e.what());
      }
      r.granularity = value;
    } else if (key == "layout") {
      if (value != "auto" && !layout_named(value))
        throw Error(at + "layout = '" + value + "' is not one of rows, oihw, hwio, auto");
      r.layout = value;
    } else if (key == "importance") {
      r.importance = as_bool("on", "off");
    } else if (key == "skip") {
      r.skip = as_bool("true", "false");
    } else {
      throw Error(at + "unknown key '" + key + "' (keys: " + kKeys + ")");
    }
  }
  if (rules.empty()) throw Error(where + ": no rules (a rule is a [GLOB] section)");
  return rules;
}

std::vector<std::string> report_columns() {
  std::vector<std::string> cols = {"tensor", "shape", "dtype"};
  for (const Col c : {Col::quantizer,
                      Col::n,
                      Col::k,
                      Col::bits,
                      Col::granularity,
                      Col::rows,
                      Col::cols,
                      Col::blocks,
                      Col::mse,
                      Col::nmse,
                      Col::sqnr_db,
                      Col::max_abs_err,
                      Col::entropy_bits,
                      Col::storage_bits,
                      Col::coded_bits,
                      Col::wmse,
                      Col::iterations,
                      Col::converged,
                      Col::opt_ratio,
                      Col::fit_s,
                      Col::encode_s,
                      Col::decode_s})
    cols.emplace_back(column_name(c));
  return cols;
}

std::vector<ReportRow> quantize_checkpoint(const CheckpointOptions& o) {
  // ---- Plan: inputs, selection, layouts, importance, output names; everything checked before any write.
  const std::string in_name = o.input.string();
  std::vector<InputFile> files;
  std::string index_text;
  if (o.input.extension() == ".json") {
    std::ifstream f(o.input, std::ios::binary);
    if (!f) throw Error(in_name + ": cannot open the sharded checkpoint's index");
    std::stringstream ss;
    ss << f.rdbuf();
    index_text = ss.str();
    std::vector<std::string> shards;
    for (const auto& [tensor, shard] : st::parse_index(index_text, in_name))
      if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    std::sort(shards.begin(), shards.end());
    for (const std::string& s : shards)
      files.push_back({o.input.parent_path() / s, s, st::File(o.input.parent_path() / s)});
  } else {
    files.push_back({o.input, "model.safetensors", st::File(o.input)});
  }
  if (o.rules.empty() && (o.spec.empty() || o.k == 0))
    throw Error("give a quantizer spec and bits (or k), or rules");
  std::optional<Importance> imp;
  if (!o.importance.empty()) imp = read_importance(o.importance, o.rename);

  std::vector<Job> jobs;
  std::vector<std::size_t> rule_hits(o.rules.size(), 0);
  for (std::size_t fi = 0; fi < files.size(); ++fi) {
    const std::string framework = [&] {
      const auto& m = files[fi].file.metadata();
      const auto it = m.find("format");
      return it == m.end() ? std::string() : it->second;
    }();
    for (const st::TensorInfo& t : files[fi].file.tensors()) {
      Job j;
      j.name = t.name;
      j.file = fi;
      j.info = t;
      j.spec = o.spec;
      j.k = o.k;
      j.granularity = o.granularity;
      j.layout_word = "auto";
      bool use_importance = true;
      if (o.rules.empty()) {
        j.quantize = default_selected(t);
      } else {
        for (std::size_t r = 0; r < o.rules.size(); ++r) {
          if (!st::glob_match(o.rules[r].pattern, t.name)) continue;
          ++rule_hits[r];
          const CheckpointRule& rule = o.rules[r];
          j.rule = static_cast<int>(r);
          j.quantize = !rule.skip;
          if (!rule.spec.empty()) j.spec = rule.spec;
          if (rule.k != 0) j.k = rule.k;
          if (!rule.granularity.empty()) j.granularity = rule.granularity;
          j.layout_word = rule.layout;
          use_importance = rule.importance;
          break;
        }
        if (j.quantize) {
          const std::string head =
              "rule [" + o.rules[static_cast<std::size_t>(j.rule)].pattern + "]: tensor \"" + t.name + "\"";
          if (!is_float(t.dtype)) {
            throw Error(head + " is " + std::string(st::dtype_name(t.dtype)) +
                        ", not a floating tensor (F32, F16, BF16, F64): add a skip rule before it");
          }
          if (t.size() == 0) throw Error(head + " has no elements: add a skip rule before it");
          if (j.spec.empty() || j.k == 0)
            throw Error(head + ": the rule gives no spec or bits/k, and neither does the command");
        }
      }
      if (j.quantize) {
        const std::string what = in_name + ": tensor \"" + t.name + "\"";
        if (j.layout_word == "auto") {
          j.layout = auto_layout(t.name, t.shape, framework, what);
        } else {
          j.layout = *layout_named(j.layout_word);
        }
        j.layout_word = std::string(layout_word(j.layout));
        // rows x cols as npy::to_tensor lays it out.
        if (t.shape.size() < 2) {
          j.rows = 1;
          j.cols = t.size();
        } else if (j.layout == npy::Layout::hwio) {
          j.rows = t.shape.back();
          j.cols = t.size() / j.rows;
        } else {
          j.rows = t.shape[0];
          j.cols = t.size() / j.rows;
        }
        const Granularity g = Granularity::parse(j.granularity);
        j.blocks = make_blocks(j.rows, j.cols, g).size();
        const std::unique_ptr<Quantizer> q = make_quantizer(j.spec, {j.k, o.seed});
        j.side_per_block = q->side_values().per_block;
        if (imp && use_importance) {
          j.importance = imp->find(t.name);
          if (j.importance == nullptr) {
            throw Error(imp->source + ": no importance vector for the quantized tensor \"" + t.name +
                        "\" (give one, or a rule with importance = off for it)");
          }
          if (j.importance->size() != j.cols) {
            throw Error(imp->source + ": tensor \"" + t.name + "\": importance has " +
                        std::to_string(j.importance->size()) + " entries, the weight laid out " +
                        j.layout_word + " has " + std::to_string(j.cols) +
                        " columns (one per input channel)");
          }
        }
      }
      jobs.push_back(std::move(j));
    }
  }
  for (std::size_t r = 0; r < o.rules.size(); ++r) {
    if (rule_hits[r] == 0) {
      throw Error("rule [" + o.rules[r].pattern + "] matches no tensor of " + in_name +
                  " (or every tensor it matches is taken by an earlier rule)");
    }
  }
  if (std::none_of(jobs.begin(), jobs.end(), [](const Job& j) { return j.quantize; }))
    throw Error(in_name +
                ": no tensor is selected for quantization (floating, rank >= 2, named *weight or "
                "*kernel); give rules to choose them");

  // Outputs must not replace anything: a folder holding them is refused.
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) throw Error(o.out.string() + ": cannot create the output folder (" + ec.message() + ")");
  const FolderLock lock(o.out);
  std::vector<std::string> outputs = {"report.csv", "manifest.json"};
  for (const InputFile& f : files)
    outputs.push_back(f.out_name);
  if (!index_text.empty()) outputs.push_back("model.safetensors.index.json");
  if (o.pack) outputs.push_back("packed.safetensors");
  for (const std::string& n : outputs) {
    if (fs::exists(o.out / n))
      throw Error((o.out / n).string() + " exists: choose another --out folder (results are never replaced)");
  }

  // ---- Work.
  std::map<std::string, std::string> sq_meta = {{"sqbench.version", std::string(version())}};
  {
    nlohmann::json rj = nlohmann::json::array();
    for (const CheckpointRule& r : o.rules)
      rj.push_back({{"match", r.pattern},
                    {"skip", r.skip},
                    {"spec", r.spec},
                    {"k", r.k},
                    {"granularity", r.granularity},
                    {"layout", r.layout},
                    {"importance", r.importance}});
    sq_meta["sqbench.rules"] =
        o.rules.empty() ? "default: " + o.spec + " k=" + std::to_string(o.k) + " granularity=" + o.granularity
                        : rj.dump();
  }
  std::unique_ptr<st::Writer> packed;
  if (o.pack) {
    std::vector<st::Entry> entries;
    for (const Job& j : jobs) {
      if (!j.quantize) continue;
      const unsigned b = std::max(1u, index_bits(j.k));
      entries.push_back({j.name + ".codes", st::DType::U8, {packed_bytes(j.rows * j.cols, b)}});
      entries.push_back({j.name + ".codebooks", st::DType::F32, {j.blocks, j.k}});
      entries.push_back({j.name + ".blocks", st::DType::I64, {j.blocks, 2}});
      if (j.side_per_block > 0)
        entries.push_back({j.name + ".side", st::DType::F32, {j.blocks, j.side_per_block}});
    }
    packed = std::make_unique<st::Writer>(o.out / "packed.safetensors", std::move(entries), sq_meta);
  }

  std::vector<ReportRow> rows;
  nlohmann::json manifest_tensors = nlohmann::json::object();
  std::vector<std::unique_ptr<st::Writer>> writers;
  for (std::size_t fi = 0; fi < files.size(); ++fi) {
    std::vector<st::Entry> entries;
    for (const st::TensorInfo& t : files[fi].file.tensors())
      entries.push_back({t.name, t.dtype, t.shape});
    std::map<std::string, std::string> meta = files[fi].file.metadata();
    for (const auto& [k, v] : sq_meta)
      meta[k] = v;
    auto w = std::make_unique<st::Writer>(o.out / files[fi].out_name, std::move(entries), meta);
    for (const Job& j : jobs) {
      if (j.file != fi) continue;
      if (!j.quantize) {
        w->write(j.name, files[fi].file.raw(j.name));
        release_pages(files[fi].file.raw(j.name));
        continue;
      }
      st::Array a = files[fi].file.read(j.name);
      release_pages(files[fi].file.raw(j.name));
      Tensor laid;
      TensorView view;
      if (j.layout == npy::Layout::hwio && a.shape.size() >= 2) {
        laid = npy::to_tensor(a.shape, a.values, j.layout, j.name);
        a.values = {};  // the laid-out copy is all that is needed now
        view = TensorView(laid.rows, laid.cols, laid.values);
      } else {
        view = TensorView(j.rows, j.cols, a.values);
      }
      QuantizeOptions qo;
      qo.granularity = Granularity::parse(j.granularity);
      qo.seed = o.seed;
      qo.threads = o.threads;
      qo.coded = true;  // the report's coded_bits column: a real rANS pass per tensor
      if (j.importance) qo.column_weights = *j.importance;
      const std::unique_ptr<Quantizer> q = make_quantizer(j.spec, {j.k, o.seed});
      Quantized r;
      StageTimes times;
      try {
        quantize_into(view, *q, qo, r, &times);
      } catch (const Error& e) {
        throw Error(in_name + ": tensor \"" + j.name + "\": " + e.what());
      }
      double ratio = std::numeric_limits<double>::quiet_NaN();
      if (o.opt_ratio) {
        const double optimum = optimal_mse(view, j.k, qo);
        const double measured = j.importance ? r.metrics.wmse : r.metrics.mse;
        ratio = std::isnan(measured) ? NAN
                : optimum > 0        ? measured / optimum
                                     : (measured == 0 ? 1.0 : INFINITY);
      }
      if (j.layout == npy::Layout::hwio && j.info.shape.size() >= 2) {
        const std::vector<float> back = npy::from_tensor(j.info.shape, r.decoded, j.layout);
        w->write_values(j.name, back);
      } else {
        w->write_values(j.name, r.decoded);
      }
      if (packed) {
        const unsigned b = std::max(1u, index_bits(j.k));
        const std::vector<std::uint8_t> bits = r.codes.visit([&](auto c) { return pack_codes(c, b); });
        packed->write(j.name + ".codes", bits);
        std::vector<float> cbs, side;
        std::vector<std::int64_t> blocks;
        for (std::size_t i = 0; i < r.blocks.size(); ++i) {
          const auto lv = r.designs[i].codebook.levels();
          cbs.insert(cbs.end(), lv.begin(), lv.end());
          side.insert(side.end(), r.designs[i].side.begin(), r.designs[i].side.end());
          blocks.push_back(static_cast<std::int64_t>(r.blocks[i].offset));
          blocks.push_back(static_cast<std::int64_t>(r.blocks[i].length));
        }
        packed->write_values(j.name + ".codebooks", cbs);
        if (j.side_per_block > 0) packed->write_values(j.name + ".side", side);
        packed->write(j.name + ".blocks",
                      {reinterpret_cast<const unsigned char*>(blocks.data()), blocks.size() * 8});
      }
      ReportRow row;
      row["tensor"] = j.name;
      row["shape"] = shape_text(j.info.shape);
      row["dtype"] = std::string(st::dtype_name(j.info.dtype));
      row[std::string(column_name(Col::quantizer))] = j.spec;
      row[std::string(column_name(Col::n))] = std::to_string(view.size());
      row[std::string(column_name(Col::k))] = std::to_string(j.k);
      row[std::string(column_name(Col::bits))] = number(std::log2(static_cast<double>(j.k)));
      row[std::string(column_name(Col::granularity))] = j.granularity;
      for (const Figure& f : r.metric_columns())
        row[std::string(column_name(f.column))] = number(f.value);
      row[std::string(column_name(Col::opt_ratio))] = number(ratio);
      row[std::string(column_name(Col::fit_s))] = number(times.fit);
      row[std::string(column_name(Col::encode_s))] = number(times.encode);
      row[std::string(column_name(Col::decode_s))] = number(times.decode);
      rows.push_back(std::move(row));
      manifest_tensors[j.name] = {{"shape", j.info.shape},
                                  {"dtype", std::string(st::dtype_name(j.info.dtype))},
                                  {"quantizer", j.spec},
                                  {"k", j.k},
                                  {"granularity", j.granularity},
                                  {"layout", j.layout_word},
                                  {"rows", j.rows},
                                  {"cols", j.cols},
                                  {"blocks", j.blocks},
                                  {"importance", j.importance != nullptr},
                                  {"side", q->side_values().description}};
    }
    writers.push_back(std::move(w));
  }

  // Totals: per-element figures averaged with each tensor's element count as its weight; max_abs_err the
  // max; times summed.
  {
    ReportRow total;
    total["tensor"] = "(total)";
    double n = 0;
    std::map<std::string, double> sums;
    bool weighted = true;
    double max_err = 0;
    const std::vector<std::string> averaged = {"mse",          "nmse",       "entropy_bits",
                                               "storage_bits", "coded_bits", "wmse"};
    for (const ReportRow& r : rows) {
      const double rn = std::stod(r.at("n"));
      n += rn;
      for (const std::string& c : averaged) {
        if (r.at(c).empty()) {
          if (c == "wmse") weighted = false;
          continue;
        }
        sums[c] += rn * std::stod(r.at(c));
      }
      max_err = std::max(max_err, std::stod(r.at("max_abs_err")));
      for (const char* c : {"fit_s", "encode_s", "decode_s"})
        sums[c] += std::stod(r.at(c));
    }
    total["n"] = number(n);
    for (const std::string& c : averaged)
      total[c] = c == "wmse" && !weighted ? "" : number(sums[c] / n);
    total["max_abs_err"] = number(max_err);
    for (const char* c : {"fit_s", "encode_s", "decode_s"})
      total[c] = number(sums[c]);
    rows.push_back(std::move(total));
  }
  std::string csv;
  const std::vector<std::string> cols = report_columns();
  for (std::size_t i = 0; i < cols.size(); ++i)
    csv += (i ? "," : "") + cols[i];
  csv += "\n";
  for (const ReportRow& r : rows) {
    for (std::size_t i = 0; i < cols.size(); ++i) {
      const auto it = r.find(cols[i]);
      csv += (i ? "," : "") + csv_field(it == r.end() ? "" : it->second);
    }
    csv += "\n";
  }

  nlohmann::json m;
  m["sqbench_version"] = std::string(version());
  m["command"] = o.command;
  nlohmann::json inputs = nlohmann::json::array();
  for (const InputFile& f : files) {
    const fs::path p = f.path;
    std::string head(static_cast<std::size_t>(f.file.data_offset()), '\0');
    std::ifstream in(p, std::ios::binary);
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    const std::uint64_t h =
        fnv1a({reinterpret_cast<const unsigned char*>(head.data()), static_cast<std::size_t>(in.gcount())});
    inputs.push_back({{"file", p.string()}, {"bytes", fs::file_size(p)}, {"header_fnv1a64", hex64(h)}});
  }
  m["input"] = {{"path", in_name}, {"files", inputs}};
  m["rules"] = o.rules.empty() ? nlohmann::json(sq_meta["sqbench.rules"])
                               : nlohmann::json::parse(sq_meta["sqbench.rules"]);
  m["importance"] = imp ? nlohmann::json({{"file", imp->source}, {"format", imp->format}}) : nlohmann::json();
  m["tensors"] = manifest_tensors;
  if (o.pack) {
    m["pack"] = {
        {"file", "packed.safetensors"},
        {"decode",
         "for each quantized tensor T (see tensors): b = max(1, ceil(log2 k)); n = rows * cols; codes = "
         "np.unpackbits(packed[T + '.codes'], bitorder='little')[:n * b].reshape(n, b) @ (1 << "
         "np.arange(b)); "
         "for each block i with (offset, length) = packed[T + '.blocks'][i]: x[offset:offset + length] = "
         "packed[T + '.codebooks'][i][codes[offset:offset + length]]; x is the laid-out rows x cols tensor "
         "(layout oihw/rows: reshape to shape; hwio: reshape to (rows, in, kh, kw) and move the first axis "
         "last)"}};
  }
  // Completion order: data files, then the index, the report and the manifest last (its presence says done).
  if (packed) packed->commit();
  for (auto& w : writers)
    w->commit();
  if (!index_text.empty()) write_text_atomically(o.out / "model.safetensors.index.json", index_text);
  write_text_atomically(o.out / "report.csv", csv);
  write_text_atomically(o.out / "manifest.json", m.dump(2) + "\n");
  return rows;
}

}  // namespace sqb
