#include "export_cmd.hpp"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "cli_args.hpp"

#include "context.hpp"
#include "csv.hpp"
#include "files.hpp"
#include "sqb/codebook.hpp"
#include "sqb/coding.hpp"
#include "sqb/error.hpp"
#include "sqb/layout.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/safetensors.hpp"
#include "sqb/version.hpp"
#include "text.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace sqbench {

namespace {

sqb::npy::DType dtype_named(const std::string& name) {
  using sqb::npy::DType;
  for (const DType t : {DType::int8, DType::uint8, DType::int16, DType::uint16, DType::int32}) {
    if (sqb::npy::dtype_name(t) == name) return t;
  }
  throw std::logic_error("export array dtype '" + name + "' is not an integer .npy dtype");
}

}  // namespace

namespace {

// The input as stored: its shape and C-order values, the name layout=auto reads and the file's framework.
struct Input {
  std::vector<std::size_t> shape;
  std::vector<float> values;
  std::string name, framework, what;
};

bool is_checkpoint(const fs::path& p) {
  return p.extension() == ".safetensors" || p.extension() == ".json";
}

Input read_input(const ExportOptions& opt) {
  Input in;
  if (is_checkpoint(opt.input)) {
    if (opt.tensor.empty()) {
      throw sqb::Error(
          "sqbench export: " + opt.input.string() +
          " is a safetensors checkpoint: give --tensor NAME (sqbench export --list-tensors --input " +
          opt.input.string() + " lists them)");
    }
    const sqb::safetensors::Checkpoint c(opt.input);
    sqb::safetensors::Array a = c.read(opt.tensor);
    in.shape = std::move(a.shape);
    in.values = std::move(a.values);
    in.name = opt.tensor;
    const auto meta = c.metadata_of(opt.tensor);
    if (const auto f = meta.find("format"); f != meta.end()) in.framework = f->second;
    in.what = opt.input.string() + ": tensor \"" + opt.tensor + "\"";
    return in;
  }
  if (!opt.tensor.empty()) {
    throw sqb::Error(
        "sqbench export: --tensor applies to a safetensors input (.safetensors or .index.json), not " +
        opt.input.string());
  }
  sqb::npy::Array a = sqb::npy::read(opt.input);
  if (!sqb::npy::is_floating(a.format.dtype)) {
    throw sqb::Error(opt.input.string() + ": holds " + std::string(sqb::npy::dtype_name(a.format.dtype)) +
                     " values; export quantizes float16/float32/float64 tensors");
  }
  in.shape = std::move(a.shape);
  in.values = std::move(a.values);
  in.name = opt.input.stem().string();
  in.what = opt.input.string();
  return in;
}

// The files an earlier export listed in its manifest.json (the keys of "files"); nullopt when `dir` holds no
// manifest.json written by export (one with "sqbench" and "files").
std::optional<std::vector<std::string>> earlier_export(const fs::path& dir) {
  std::ifstream in(dir / "manifest.json", std::ios::binary);
  if (!in) return std::nullopt;
  const nlohmann::json m = nlohmann::json::parse(in, nullptr, false);
  if (m.is_discarded() || !m.is_object() || !m.contains("sqbench") || !m.contains("files") ||
      !m["files"].is_object()) {
    return std::nullopt;
  }
  std::vector<std::string> names;
  for (const auto& [name, entry] : m["files"].items()) {
    // Plain names only: a manifest never sends a removal outside its own folder.
    if (name.empty() || name.find_first_of("/\\") != std::string::npos || name == "." || name == "..")
      continue;
    names.push_back(name);
  }
  if (std::find(names.begin(), names.end(), "manifest.json") == names.end()) names.push_back("manifest.json");
  return names;
}

// What a non-empty folder that is not an export holds, for the refusal.
std::string some_entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < 5; ++i)
    out += (i ? ", " : "") + names[i];
  if (names.size() > 5) out += ", ... (" + std::to_string(names.size()) + " entries)";
  return out;
}

// numpy's way from the laid-out rows x cols back to the input's shape.
std::string to_input_numpy(const std::vector<std::size_t>& shape, sqb::Layout layout) {
  if (layout != sqb::Layout::hwio || shape.size() < 2) return "a.reshape(input_shape)";
  const std::size_t r = shape.size();
  std::string laid = "(";
  laid += std::to_string(shape[r - 1]) + ", " + std::to_string(shape[r - 2]);
  for (std::size_t k = 0; k + 2 < r; ++k)
    laid += ", " + std::to_string(shape[k]);
  std::string axes = "(";
  for (std::size_t k = 2; k < r; ++k)
    axes += std::to_string(k) + ", ";
  return "a.reshape(" + laid + ")).transpose(" + axes + "1, 0))";
}

// The input laid out as the rows x cols tensor the pipeline quantizes, with the layout that made it.
struct LaidOut {
  Input in;
  sqb::Layout layout = sqb::Layout::rows;
  sqb::Tensor t;
};

LaidOut read_laid_out(const ExportOptions& opt) {
  try {
    sqb::check_layout(opt.layout);
  } catch (const sqb::Error& e) {
    throw sqb::Error(std::string("--layout: ") + e.what());
  }
  LaidOut l;
  l.in = read_input(opt);
  std::string word = opt.layout;
  if (sqb::is_layout_rules(word)) word = sqb::pick_layout(word, l.in.name, "--layout");
  l.layout = word == "auto" ? sqb::auto_layout(l.in.name, l.in.shape, l.in.framework, l.in.what)
                            : *sqb::layout_named(word);
  l.t = sqb::to_tensor(l.in.shape, l.in.values, l.layout, l.in.what);
  sqb::check_finite(l.t.values, l.in.what, l.t.cols);  // named after the file, before the pipeline's check
  return l;
}

// The files an earlier export in `out` wrote, which this one replaces; nullopt for an empty or new folder.
// A folder holds one export: one that holds anything else is refused before anything is written.
std::optional<std::vector<std::string>> check_out_folder(const fs::path& out) {
  std::error_code ec;
  if (!fs::exists(out, ec) || !fs::is_directory(out, ec) || fs::is_empty(out, ec)) return std::nullopt;
  std::optional<std::vector<std::string>> earlier = earlier_export(out);
  if (!earlier) {
    throw sqb::Error("sqbench export: " + out.string() +
                     " is not empty and holds no earlier export (manifest.json), so writing there would mix "
                     "this export with other files (" +
                     some_entries(out) + "); give an empty or new folder");
  }
  return earlier;
}

using J = nlohmann::ordered_json;

// An export's files in memory, and the manifest's entry for each.
struct ExportFiles {
  fs::path out;
  std::vector<std::pair<fs::path, std::string>> bytes;
  J list = J::object();

  void add(const std::string& name, std::string data, const std::string& description,
           const std::vector<std::size_t>& shape, std::string_view dtype) {
    bytes.emplace_back(out / name, std::move(data));
    list[name] = {{"dtype", dtype}, {"shape", shape}, {"holds", description}};
  }
  void add_stream(const std::string& name, const std::vector<std::uint8_t>& data,
                  const std::string& description) {
    bytes.emplace_back(out / name, std::string(data.begin(), data.end()));
    list[name] = {{"dtype", "bytes"}, {"shape", J::array({data.size()})}, {"holds", description}};
  }
};

// The width of a packed code: b = max(1, ceil(log2 K)) bits.
unsigned pack_bits(std::size_t k) {
  return std::max(1u, sqb::index_bits(k));
}

// Codes: one code per element of the laid-out rows x cols, row-major; as .npy at the width the library
// encodes with, packed at b bits, or rANS-coded.
void add_codes(ExportFiles& files, const ExportOptions& opt, const sqb::Tensor& t, const sqb::Codes& codes,
               std::size_t k) {
  const std::vector<std::size_t> shape = {t.rows, t.cols};
  if (!opt.pack && !opt.coded) {
    std::vector<std::int32_t> c(t.size());
    for (std::size_t i = 0; i < t.size(); ++i)
      c[i] = static_cast<std::int32_t>(codes[i]);
    const sqb::npy::DType dt = codes.wide() ? sqb::npy::DType::uint16 : sqb::npy::DType::uint8;
    files.add("codes.npy", sqb::npy::serialize(shape, c, {dt}),
              "the code (level index) of every element, rows x cols as laid out", shape,
              sqb::npy::dtype_name(dt));
  }
  if (opt.pack) {
    const unsigned b = pack_bits(k);
    files.add_stream("codes.bits", codes.visit([&](auto c) { return sqb::pack_codes(c, b); }),
                     std::to_string(t.size()) + " codes of b = " + std::to_string(b) +
                         " bits, elements in the laid-out rows x cols row-major order; see \"pack\"");
  }
  if (!opt.coded) return;
  const sqb::RansEncoded e = codes.visit([&](auto c) { return sqb::rans_encode(c, k); });
  // What is written must decode: a coder bug would otherwise ship a stream no reader can undo.
  if (codes.visit([&](auto c) {
        const std::vector<std::uint16_t> back = sqb::rans_decode(e.bytes, c.size());
        return !std::equal(back.begin(), back.end(), c.begin(), c.end());
      })) {
    throw std::logic_error("export: the rANS stream does not decode to the codes (a coder bug)");
  }
  files.add_stream("codes.rans", e.bytes,
                   "the codes as one rANS stream (see \"rans_format\"): " + std::to_string(t.size()) +
                       " symbols over an alphabet of K = " + std::to_string(k) +
                       ", elements in the laid-out rows x cols row-major order; " +
                       std::to_string(e.header_bytes) + " header + " + std::to_string(e.table_bytes) +
                       " frequency-table + " + std::to_string(e.payload_bytes) + " payload bytes");
}

// Every block's levels, thresholds, side values and place in the tensor.
void add_blocks(ExportFiles& files, const std::string& what, const sqb::Quantized& result, std::size_t k) {
  const std::size_t nb = result.blocks.size(), side_n = result.side.per_block;
  std::vector<float> levels, thresholds, side;
  std::vector<std::int32_t> blocks;
  for (std::size_t b = 0; b < nb; ++b) {
    const sqb::Codebook& cb = result.designs[b].codebook;
    levels.insert(levels.end(), cb.levels().begin(), cb.levels().end());
    thresholds.insert(thresholds.end(), cb.thresholds().begin(), cb.thresholds().end());
    side.insert(side.end(), result.designs[b].side.begin(), result.designs[b].side.end());
    if (result.blocks[b].offset + result.blocks[b].length > static_cast<std::size_t>(INT32_MAX))
      throw sqb::Error(what + ": the tensor is too large for int32 block offsets");
    blocks.push_back(static_cast<std::int32_t>(result.blocks[b].offset));
    blocks.push_back(static_cast<std::int32_t>(result.blocks[b].length));
  }
  files.add("codebooks.npy", sqb::npy::serialize(std::vector<std::size_t>{nb, k}, levels, {}),
            "each block's K levels, ascending (decoded = codebooks[block, code])", {nb, k}, "float32");
  if (k > 1) {
    files.add(
        "thresholds.npy", sqb::npy::serialize(std::vector<std::size_t>{nb, k - 1}, thresholds, {}),
        "each block's K-1 thresholds: code = number of thresholds < x (a value on a threshold takes the "
        "lower level)",
        {nb, k - 1}, "float32");
  }
  if (side_n > 0) {
    files.add("side.npy", sqb::npy::serialize(std::vector<std::size_t>{nb, side_n}, side, {}),
              "what a deployment stores per block: " + result.side.description, {nb, side_n}, "float32");
  }
  files.add(
      "blocks.npy", sqb::npy::serialize(std::vector<std::size_t>{nb, 2}, blocks, {sqb::npy::DType::int32}),
      "each block's flat offset and length in the laid-out row-major rows x cols tensor", {nb, 2}, "int32");
}

// The reconstruction in the input's shape, and the strategy's own arrays and (with --coded) streams.
void add_decoded_and_strategy(ExportFiles& files, const ExportOptions& opt, const LaidOut& l,
                              const sqb::Quantizer& q, const sqb::Quantized& result) {
  files.add("decoded.npy",
            sqb::npy::serialize(l.in.shape, sqb::from_tensor(l.in.shape, result.decoded, l.layout), {}),
            "the reconstruction, float32, in the input's own shape and order", l.in.shape, "float32");
  const auto* ex = sqb::part_of<sqb::ExportsArrays>(q);
  if (ex == nullptr) return;
  const std::vector<std::size_t> shape = {l.t.rows, l.t.cols};
  for (sqb::ExportArray& a : ex->export_arrays(result)) {
    files.add(a.name + ".npy", sqb::npy::serialize(shape, a.values, {dtype_named(a.dtype)}),
              a.description + " (rows x cols as laid out)", shape, a.dtype);
  }
  if (opt.coded) {
    for (const sqb::ExportStream& st : ex->export_streams(result))
      files.add_stream(st.name, st.bytes, st.format);
  }
}

// How to read codes.bits, for the manifest.
J pack_description(const sqb::Tensor& t, std::size_t k) {
  return {{"file", "codes.bits"},
          {"bits", pack_bits(k)},
          {"count", t.size()},
          {"format",
           "element i's code occupies bits [i*b, (i+1)*b) of the stream, bits counted from the "
           "least significant bit of byte 0 upward (bit j is bit j % 8 of byte j / 8), the code's "
           "least significant bit first; elements in the laid-out row-major order; the pad bits "
           "after the last code are zero"},
          {"numpy",
           "bits = np.unpackbits(np.fromfile('codes.bits', np.uint8), bitorder='little')[:n * b]"
           ".reshape(n, b); codes = (bits.astype(np.uint32) << np.arange(b)).sum(axis=1)"}};
}

const char* const kRansFormat =
    "varint = unsigned LEB128. Header: varint n (symbols), varint S (alphabet size); if n = 0 the "
    "stream ends; then one byte M (14..22), frequencies sum to 2^M. Frequency table, symbols in "
    "increasing order as runs: varint z (absent symbols skipped), varint p >= 1 (present symbols "
    "that follow), then p varints f - 1; runs repeat until the frequencies sum to 2^M; c[s] = sum "
    "of f before s. Payload: the state x as a little-endian uint32, then bytes. For each of the n "
    "symbols: slot = x mod 2^M; s = the symbol with c[s] <= slot < c[s] + f[s]; x = f[s] * (x >> M) "
    "+ slot - c[s]; while x < 2^23: x = (x << 8) | next byte. At the end x = 2^23 and every byte "
    "was read. (sqb/coding.hpp)";

// Every metric column of the result, by its results.csv name (numbers written to read back as the same
// double); JSON has no inf or NaN: "inf" as a string, an undefined figure as null.
J metrics_json(const sqb::Quantized& result) {
  J metrics = J::object();
  for (const sqb::Figure& f : result.metric_columns()) {
    const std::string name(sqb::column_name(f.column));
    if (std::isnan(f.value)) {
      metrics[name] = nullptr;
    } else if (std::isfinite(f.value)) {
      metrics[name] = f.value;
    } else {
      metrics[name] = format_number(f.value);
    }
  }
  return metrics;
}

// manifest.json: what was quantized and how, how to decode, the metrics, and every file with its entry.
std::string manifest_text(const ExportOptions& opt, const LaidOut& l, std::size_t k,
                          const sqb::Quantized& result, const sqb::Granularity& g, J file_list) {
  J m;
  m["sqbench"] = sqb::version();
  m["quantizer"] = opt.spec;
  m["k"] = k;
  m["granularity"] = g.to_string();
  m["seed"] = opt.seed;
  m["input"] = opt.input.string();
  if (!opt.tensor.empty()) m["tensor"] = opt.tensor;
  m["input_shape"] = l.in.shape;
  m["layout"] = sqb::layout_word(l.layout);
  m["tensor_layout"] = {{"rows", l.t.rows},
                        {"cols", l.t.cols},
                        {"blocks", result.blocks.size()},
                        {"to_input_shape", "numpy, for an array a of the laid-out rows x cols: " +
                                               to_input_numpy(l.in.shape, l.layout)}};
  m["decode"] =
      "laid_out[i] = codebooks[b, codes[i]] for the block b whose [offset, offset + length) "
      "holds the flat index i of the laid-out row-major rows x cols; decoded.npy is laid_out in the "
      "input's shape (tensor_layout.to_input_shape)";
  m["side_values"] = result.side.description;
  if (opt.pack) m["pack"] = pack_description(l.t, k);
  if (opt.coded) m["rans_format"] = kRansFormat;
  m["metrics"] = metrics_json(result);
  m["folder"] =
      "this export's files are exactly those under \"files\"; sqbench export writes only into "
      "an empty folder or one holding an earlier export, whose files it removes";
  file_list["manifest.json"] = {{"dtype", "json"}, {"shape", J::array()}, {"holds", "this description"}};
  m["files"] = std::move(file_list);
  return m.dump(2) + "\n";
}

// Writes the files together, then removes the earlier export's files this one did not replace, so the
// folder holds one export.
ExportResult write_export(const fs::path& out, const std::vector<std::pair<fs::path, std::string>>& files,
                          const std::optional<std::vector<std::string>>& earlier) {
  ensure_writable_dir(out);
  write_files_atomic(files);
  ExportResult r;
  for (const auto& [path, bytes] : files)
    r.files.push_back(path);
  for (const std::string& name : earlier.value_or(std::vector<std::string>{})) {
    const fs::path f = out / name;
    if (std::find(r.files.begin(), r.files.end(), f) != r.files.end()) continue;
    std::error_code ec;
    if (fs::is_regular_file(fs::symlink_status(f, ec)) && fs::remove(f, ec)) r.removed.push_back(f);
  }
  return r;
}

}  // namespace

ExportResult export_quantized(const ExportOptions& opt) {
  sqb::QuantizeOptions qopt;
  qopt.granularity = sqb::Granularity::parse(opt.granularity);
  qopt.seed = opt.seed;
  qopt.coded = opt.coded;  // coded_bits is the size of the codes.rans written below
  const std::unique_ptr<sqb::Quantizer> q = sqb::make_quantizer(opt.spec, {opt.k, opt.seed});
  const LaidOut l = read_laid_out(opt);
  qopt.check_input = false;  // read_laid_out checked it, naming the file
  const sqb::Quantized result = sqb::quantize(l.t, *q, qopt);
  const std::optional<std::vector<std::string>> earlier = check_out_folder(opt.out);

  const std::size_t k = q->code_count();
  ExportFiles files{opt.out, {}, J::object()};
  add_codes(files, opt, l.t, result.codes, k);
  add_blocks(files, l.in.what, result, k);
  add_decoded_and_strategy(files, opt, l, *q, result);
  files.bytes.emplace_back(opt.out / "manifest.json",
                           manifest_text(opt, l, k, result, qopt.granularity, std::move(files.list)));
  ExportResult r = write_export(opt.out, files.bytes, earlier);
  const sqb::Metrics& m = result.metrics;
  r.mse = m.mse;
  r.sqnr_db = m.sqnr_db;
  r.storage_bits = m.storage_bits;
  r.coded_bits = m.coded_bits;
  return r;
}

namespace {

po::options_description export_options() {
  po::options_description desc(
      "sqbench export SPEC --input FILE --out DIR (--bits B | --k K) [options]: quantize a tensor (.npy, or "
      "a "
      "safetensors checkpoint's --tensor) and write its codes, codebooks and side values (.npy files, packed "
      "or "
      "entropy-coded streams) and a manifest.json saying how to decode them");
  desc.add_options()("help,h", "this help")(
      "input,i", po::value<std::string>(),
      "the tensor: a .npy file, a .safetensors file or a sharded checkpoint's model.safetensors.index.json")(
      "tensor,t", po::value<std::string>(), "the tensor's name in a safetensors input")(
      "list-tensors", "list a safetensors input's tensors (name, dtype, shape) and exit")(
      "out,o", po::value<std::string>(), "output folder: new, empty, or holding an earlier export")(
      "bits,b", po::value<std::string>(), "K = 2^bits codes")("k,k", po::value<std::string>(),
                                                              "K codes (instead of --bits)")(
      "granularity,g", po::value<std::string>()->default_value("tensor"), "tensor | channel | group:G")(
      "layout", po::value<std::string>()->default_value("rows"),
      "rows | oihw (PyTorch [out, in, ...]) | hwio (TensorFlow [..., in, out]) | auto (from the file's "
      "framework, the tensor's name and shape): rows = output channels")(
      "pack", "write the codes packed at b = ceil(log2 K) bits each (codes.bits) instead of codes.npy")(
      "coded",
      "write the codes as a rANS stream (codes.rans, what coded_bits measures) and the strategy's coded "
      "streams, instead of codes.npy")("seed", po::value<std::string>()->default_value("0"),
                                       "seed for strategies with randomness");
  return desc;
}

// --list-tensors: the checkpoint as --input, or as the one argument (`sqbench export --list-tensors
// m.safetensors`).
void list_tensors(const po::variables_map& vm) {
  const std::vector<std::string> given = positionals(vm, "spec");
  if (vm.count("input") + given.size() != 1)
    throw sqb::Error("sqbench export --list-tensors: give one checkpoint, --input FILE.safetensors");
  const sqb::safetensors::Checkpoint c(vm.count("input") ? vm["input"].as<std::string>() : given[0]);
  for (const std::string& name : c.names()) {
    const sqb::safetensors::TensorInfo info = c.info(name);
    std::string shape;
    for (const std::size_t d : info.shape)
      shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    std::cout << name << "  " << sqb::safetensors::dtype_name(info.dtype) << "  (" << shape
              << (info.shape.size() == 1 ? ",)" : ")") << "\n";
  }
}

// K from --bits or --k (exactly one is given).
std::size_t codes_from(const po::variables_map& vm) {
  if (vm.count("bits")) {
    const auto b = sqb::parse_integer(vm["bits"].as<std::string>());
    if (!b || *b < 1 || *b > 16)
      throw sqb::Error("--bits '" + vm["bits"].as<std::string>() + "' must be in 1..16");
    return std::size_t{1} << *b;
  }
  const auto k = sqb::parse_integer(vm["k"].as<std::string>());
  if (!k || *k < 1 || static_cast<std::size_t>(*k) > sqb::kMaxCodes)
    throw sqb::Error("--k '" + vm["k"].as<std::string>() + "' must be in " + sqb::k_range());
  return static_cast<std::size_t>(*k);
}

ExportOptions options_from(const po::variables_map& vm) {
  ExportOptions opt;
  opt.spec = single_positional(
      vm, "spec", "sqbench export: give exactly one quantizer spec (quote it: \"phi_log base=2\")");
  if (!vm.count("input")) throw sqb::Error("sqbench export: --input FILE (.npy or .safetensors) is required");
  if (!vm.count("out")) throw sqb::Error("sqbench export: --out DIR is required");
  if (vm.count("bits") == vm.count("k"))
    throw sqb::Error("sqbench export: give exactly one of --bits and --k");
  opt.input = vm["input"].as<std::string>();
  opt.out = vm["out"].as<std::string>();
  if (vm.count("tensor")) opt.tensor = vm["tensor"].as<std::string>();
  opt.pack = vm.count("pack") > 0;
  opt.coded = vm.count("coded") > 0;
  opt.k = codes_from(vm);
  opt.granularity = vm["granularity"].as<std::string>();
  opt.layout = vm["layout"].as<std::string>();
  const auto seed = sqb::parse_integer(vm["seed"].as<std::string>());
  if (!seed || *seed < 0)
    throw sqb::Error("--seed '" + vm["seed"].as<std::string>() + "' must be an integer >= 0");
  opt.seed = static_cast<std::uint64_t>(*seed);
  return opt;
}

}  // namespace

int export_command(const std::vector<std::string>& args) {
  const po::options_description desc = export_options();
  const auto parsed = parse_command(args, desc, "spec");
  if (!parsed) return 0;
  if (parsed->count("list-tensors")) {
    list_tensors(*parsed);
    return 0;
  }
  const ExportOptions opt = options_from(*parsed);
  const ExportResult r = export_quantized(opt);
  std::cout << "sqbench: exported " << r.files.size() << " files to " << folder_text(opt.out) << " (mse "
            << format_number(r.mse, 4) << ", SQNR " << format_number(r.sqnr_db, 4) << " dB, "
            << format_number(r.storage_bits, 4) << " bits/element stored";
  if (!std::isnan(r.coded_bits)) std::cout << ", " << format_number(r.coded_bits, 4) << " entropy-coded";
  std::cout << ")";
  if (!r.removed.empty())
    std::cout << "; removed the " << r.removed.size() << " files of the earlier export there";
  std::cout << "\n";
  return 0;
}

}  // namespace sqbench
