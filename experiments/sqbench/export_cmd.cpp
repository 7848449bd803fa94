#include "export_cmd.hpp"
#include "cli_args.hpp"

#include <boost/program_options.hpp>
#include <cmath>
#include <iostream>
#include <limits>

#include "context.hpp"
#include "csv.hpp"
#include "files.hpp"
#include "sqb/error.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/version.hpp"

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

std::string json_list(const std::vector<std::size_t>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i)
    out += (i ? ", " : "") + std::to_string(v[i]);
  return out + "]";
}

}  // namespace

ExportResult export_quantized(const ExportOptions& opt) {
  const sqb::npy::Layout layout =
      opt.layout == "rows"   ? sqb::npy::Layout::rows
      : opt.layout == "oihw" ? sqb::npy::Layout::oihw
      : opt.layout == "hwio"
          ? sqb::npy::Layout::hwio
          : throw sqb::Error("--layout '" + opt.layout + "' must be one of rows|oihw|hwio");
  sqb::QuantizeOptions qopt;
  qopt.granularity = sqb::Granularity::parse(opt.granularity);
  qopt.seed = opt.seed;
  const std::unique_ptr<sqb::Quantizer> q = sqb::make_quantizer(opt.spec, {opt.k, opt.seed});

  const sqb::npy::Array in = sqb::npy::read(opt.input);
  if (!sqb::npy::is_floating(in.format.dtype)) {
    throw sqb::Error(opt.input.string() + ": holds " + std::string(sqb::npy::dtype_name(in.format.dtype)) +
                     " values; export quantizes float16/float32/float64 tensors");
  }
  const sqb::Tensor t = sqb::npy::to_tensor(in.shape, in.values, layout, opt.input.string());
  sqb::check_finite(t.values, opt.input.string(),
                    t.cols);  // named after the file, before the pipeline's check
  qopt.check_input = false;
  const sqb::Quantized result = sqb::quantize(t, *q, qopt);
  const sqb::Granularity& g = qopt.granularity;
  const sqb::Metrics& m = result.metrics;

  const std::size_t k = q->code_count();
  const std::size_t nb = result.blocks.size();
  const std::size_t side_n = result.side.per_block;
  const sqb::Codes& codes = result.codes;
  const std::vector<std::size_t> tensor_shape = {t.rows, t.cols};
  std::vector<std::pair<fs::path, std::string>> files;
  std::string file_list;
  const auto add = [&](const std::string& name, std::string bytes, const std::string& description,
                       const std::vector<std::size_t>& shape, std::string_view dtype) {
    files.emplace_back(opt.out / name, std::move(bytes));
    file_list += std::string(file_list.empty() ? "" : ",\n") + "    " + json_string(name) +
                 ": {\"dtype\": " + json_string(std::string(dtype)) + ", \"shape\": " + json_list(shape) +
                 ", \"holds\": " + json_string(description) + "}";
  };

  // Codes, at the width the library encodes with.
  {
    std::vector<std::int32_t> c(t.size());
    for (std::size_t i = 0; i < t.size(); ++i)
      c[i] = static_cast<std::int32_t>(codes[i]);
    const sqb::npy::DType dt = codes.wide() ? sqb::npy::DType::uint16 : sqb::npy::DType::uint8;
    add("codes.npy", sqb::npy::serialize(tensor_shape, c, {dt}),
        "the code (level index) of every element, rows x cols", tensor_shape, sqb::npy::dtype_name(dt));
  }
  {
    std::vector<float> levels, thresholds, side;
    std::vector<std::int32_t> blocks;
    for (std::size_t b = 0; b < nb; ++b) {
      const sqb::Codebook& cb = result.designs[b].codebook;
      levels.insert(levels.end(), cb.levels().begin(), cb.levels().end());
      thresholds.insert(thresholds.end(), cb.thresholds().begin(), cb.thresholds().end());
      side.insert(side.end(), result.designs[b].side.begin(), result.designs[b].side.end());
      if (result.blocks[b].offset + result.blocks[b].length > static_cast<std::size_t>(INT32_MAX)) {
        throw sqb::Error(opt.input.string() + ": the tensor is too large for int32 block offsets");
      }
      blocks.push_back(static_cast<std::int32_t>(result.blocks[b].offset));
      blocks.push_back(static_cast<std::int32_t>(result.blocks[b].length));
    }
    add("codebooks.npy", sqb::npy::serialize(std::vector<std::size_t>{nb, k}, levels, {}),
        "each block's K levels, ascending (decoded = codebooks[block, code])", {nb, k}, "float32");
    if (k > 1) {
      add("thresholds.npy", sqb::npy::serialize(std::vector<std::size_t>{nb, k - 1}, thresholds, {}),
          "each block's K-1 thresholds: code = number of thresholds < x (a value on a threshold takes the "
          "lower level)",
          {nb, k - 1}, "float32");
    }
    if (side_n > 0) {
      add("side.npy", sqb::npy::serialize(std::vector<std::size_t>{nb, side_n}, side, {}),
          "what a deployment stores per block: " + result.side.description, {nb, side_n}, "float32");
    }
    add("blocks.npy", sqb::npy::serialize(std::vector<std::size_t>{nb, 2}, blocks, {sqb::npy::DType::int32}),
        "each block's flat offset and length in the row-major rows x cols tensor", {nb, 2}, "int32");
  }
  add("decoded.npy", sqb::npy::serialize(tensor_shape, result.decoded, {}), "the reconstruction, rows x cols",
      tensor_shape, "float32");
  if (const auto* ex = sqb::part_of<sqb::ExportsArrays>(*q)) {
    for (sqb::ExportArray& a : ex->export_arrays(result)) {
      const sqb::npy::DType dt = dtype_named(a.dtype);
      add(a.name + ".npy", sqb::npy::serialize(tensor_shape, a.values, {dt}), a.description, tensor_shape,
          a.dtype);
    }
  }

  std::string manifest = "{\n";
  manifest += "  \"sqbench\": " + json_string(std::string(sqb::version())) + ",\n";
  manifest += "  \"quantizer\": " + json_string(opt.spec) + ",\n";
  manifest += "  \"k\": " + std::to_string(k) + ",\n";
  manifest += "  \"granularity\": " + json_string(g.to_string()) + ",\n";
  manifest += "  \"seed\": " + std::to_string(opt.seed) + ",\n";
  manifest += "  \"input\": " + json_string(opt.input.string()) + ",\n";
  manifest += "  \"input_shape\": " + json_list(in.shape) + ",\n";
  manifest += "  \"layout\": " + json_string(opt.layout) + ",\n";
  manifest += "  \"tensor\": {\"rows\": " + std::to_string(t.rows) + ", \"cols\": " + std::to_string(t.cols) +
              ", \"blocks\": " + std::to_string(nb) + "},\n";
  manifest += "  \"decode\": " +
              json_string(
                  "decoded[i] = codebooks[b, codes[i]] for the block b whose [offset, offset + length) "
                  "holds the flat index i") +
              ",\n";
  manifest += "  \"side_values\": " + json_string(result.side.description) + ",\n";
  // Every metric column of the result, by its results.csv name, to 17 digits (reads back as the same double);
  // JSON has no inf or NaN: "inf" as a string, an undefined figure as null.
  std::string metrics;
  for (const sqb::Figure& f : result.metric_columns()) {
    const std::string v = std::isnan(f.value)      ? "null"
                          : std::isfinite(f.value) ? format_number(f.value, 17)
                                                   : json_string(format_number(f.value));
    metrics += std::string(metrics.empty() ? "" : ", ") +
               json_string(std::string(sqb::column_name(f.column))) + ": " + v;
  }
  manifest += "  \"metrics\": {" + metrics + "},\n";
  manifest += "  \"files\": {\n" + file_list + "\n  }\n}\n";

  ensure_writable_dir(opt.out);
  files.emplace_back(opt.out / "manifest.json", manifest);
  write_files_atomic(files);
  ExportResult r;
  for (const auto& [path, bytes] : files)
    r.files.push_back(path);
  r.mse = m.mse;
  r.sqnr_db = m.sqnr_db;
  r.storage_bits = m.storage_bits;
  return r;
}

int export_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "sqbench export SPEC --input FILE.npy --out DIR (--bits B | --k K) [options]: quantize a tensor and "
      "write "
      "its codes, codebooks and side values as .npy files");
  desc.add_options()("help,h", "this help")("input,i", po::value<std::string>(), "the tensor, a .npy file")(
      "out,o", po::value<std::string>(), "output folder")("bits,b", po::value<std::string>(),
                                                          "K = 2^bits codes")("k,k", po::value<std::string>(),
                                                                              "K codes (instead of --bits)")(
      "granularity,g", po::value<std::string>()->default_value("tensor"), "tensor | channel | group:G")(
      "layout", po::value<std::string>()->default_value("rows"),
      "rows | oihw (PyTorch [out, in, ...]) | hwio (TensorFlow [..., in, out]): rows = output channels")(
      "seed", po::value<std::string>()->default_value("0"), "seed for strategies with randomness");
  const auto parsed = parse_command(args, desc, "spec");
  if (!parsed) return 0;
  const po::variables_map& vm = *parsed;
  const std::string spec = single_positional(
      vm, "spec", "sqbench export: give exactly one quantizer spec (quote it: \"phi_log base=2\")");
  if (!vm.count("input")) throw sqb::Error("sqbench export: --input FILE.npy is required");
  if (!vm.count("out")) throw sqb::Error("sqbench export: --out DIR is required");
  if (vm.count("bits") == vm.count("k"))
    throw sqb::Error("sqbench export: give exactly one of --bits and --k");
  ExportOptions opt;
  opt.spec = spec;
  opt.input = vm["input"].as<std::string>();
  opt.out = vm["out"].as<std::string>();
  if (vm.count("bits")) {
    const auto b = sqb::parse_integer(vm["bits"].as<std::string>());
    if (!b || *b < 1 || *b > 16)
      throw sqb::Error("--bits '" + vm["bits"].as<std::string>() + "' must be in 1..16");
    opt.k = std::size_t{1} << *b;
  } else {
    const auto k = sqb::parse_integer(vm["k"].as<std::string>());
    if (!k || *k < 1 || *k > 65536)
      throw sqb::Error("--k '" + vm["k"].as<std::string>() + "' must be in 1..65536");
    opt.k = static_cast<std::size_t>(*k);
  }
  opt.granularity = vm["granularity"].as<std::string>();
  opt.layout = vm["layout"].as<std::string>();
  const auto seed = sqb::parse_integer(vm["seed"].as<std::string>());
  if (!seed || *seed < 0)
    throw sqb::Error("--seed '" + vm["seed"].as<std::string>() + "' must be an integer >= 0");
  opt.seed = static_cast<std::uint64_t>(*seed);
  const ExportResult r = export_quantized(opt);
  std::cout << "sqbench: exported " << r.files.size() << " files to " << opt.out.string() << "/ (mse "
            << format_number(r.mse, 4) << ", SQNR " << format_number(r.sqnr_db, 4) << " dB, "
            << format_number(r.storage_bits, 4) << " bits/element stored)\n";
  return 0;
}

}  // namespace sqbench
