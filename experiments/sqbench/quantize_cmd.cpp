#include "quantize_cmd.hpp"

#include <boost/program_options.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <tuple>

#include "cli_args.hpp"
#include "memory.hpp"
#include "sqb/checkpoint.hpp"
#include "sqb/codebook.hpp"
#include "sqb/error.hpp"
#include "sqb/quantize.hpp"

namespace po = boost::program_options;

namespace sqbench {

int quantize_command(const std::vector<std::string>& args, const std::string& command_line) {
  po::options_description desc(
      "usage: sqbench quantize --input CKPT --out DIR (--spec SPEC (--bits B | --k K) [--granularity G] | "
      "--rules RULES.ini) [--importance FILE [--rename FROM=TO]...] [--threads T] [--pack] [--opt-ratio] "
      "[--shard i/n] [--resume]\n\n"
      "Quantize a whole safetensors checkpoint (a .safetensors file or a sharded "
      "model.safetensors.index.json)"
      " and write the reconstruction as a checkpoint of the same dtypes, report.csv, manifest.json (and "
      "packed.safetensors with --pack) into DIR");
  std::string input, out, spec, granularity = "channel", rules, importance;
  int bits = 0, threads = 0;
  std::size_t k = 0;
  desc.add_options()("help,h", "this help")("input", po::value(&input), "the checkpoint")(
      "out", po::value(&out), "the output folder (created; existing outputs are never replaced)")(
      "spec", po::value(&spec),
      "quantizer spec for every selected tensor (floating, rank >= 2, *weight/*kernel)")(
      "bits", po::value(&bits), "K = 2^bits codes")("k", po::value(&k), "K codes")(
      "granularity", po::value(&granularity)->default_value("channel"), "tensor | channel | group:G")(
      "rules", po::value(&rules),
      "an INI file of [GLOB] rules, first match wins (spec, bits/k, granularity, "
      "layout, importance on/off, skip)")(
      "importance", po::value(&importance),
      "per-input-channel importance: a safetensors file of 1-D F32 vectors (sqbench.torch.calibrate), a GGUF "
      "imatrix or a legacy llama.cpp imatrix .dat")(
      "rename", po::value<std::vector<std::string>>()->composing(),
      "FROM=TO: rename importance entries by regex (repeatable; llama.cpp's Llama names map to Hugging "
      "Face's "
      "by themselves)")("threads", po::value(&threads)->default_value(0),
                        "threads over blocks (0 = every core)")(
      "pack", "also write packed.safetensors (bit-packed codes, codebooks, blocks)")(
      "opt-ratio", "add the opt_ratio column (MSE over the least any K-level codebook reaches)")(
      "coded", "measure the report's coded_bits (a real rANS pass over each tensor's codes; empty without)")(
      "shard", po::value<std::string>(),
      "i/n: quantize only part i of n of the tensors (balanced by size) into DIR/shard-i-of-n/; "
      "`sqbench merge DIR/shard-*-of-n` assembles the checkpoint")(
      "resume",
      "continue an interrupted run into the same folder, keeping its finished tensors (the "
      "inputs and options must be the same)");
  auto vm = parse_command(args, desc, "positional");
  if (!vm) return 0;
  po::notify(*vm);
  if (!positionals(*vm, "positional").empty())
    throw sqb::Error("quantize takes no positional arguments (give --input CKPT --out DIR)");
  if (input.empty() || out.empty()) throw sqb::Error("quantize needs --input CKPT and --out DIR");
  sqb::CheckpointOptions o;
  o.input = input;
  o.out = out;
  o.threads = threads;
  o.pack = vm->count("pack") > 0;
  o.opt_ratio = vm->count("opt-ratio") > 0;
  o.coded = vm->count("coded") > 0;
  o.resume = vm->count("resume") > 0;
  if (vm->count("shard"))
    std::tie(o.shard_index, o.shard_count) = sqb::parse_shard((*vm)["shard"].as<std::string>());
  o.importance = importance;
  if (vm->count("rename")) o.rename = (*vm)["rename"].as<std::vector<std::string>>();
  o.command = command_line;
  o.granularity = granularity;
  if (vm->count("bits") && vm->count("k")) throw sqb::Error("give --bits or --k, not both");
  if (vm->count("bits")) o.k = sqb::codes_for_bits(bits);
  if (vm->count("k")) {
    if (k < 1 || static_cast<std::size_t>(k) > sqb::kMaxCodes)
      throw sqb::Error("--k " + std::to_string(k) + " is outside " + sqb::k_range());
    o.k = k;
  }
  o.spec = spec;
  if (!rules.empty()) {
    std::ifstream f(rules, std::ios::binary);
    if (!f) throw sqb::Error(rules + ": cannot open the rules file");
    std::stringstream ss;
    ss << f.rdbuf();
    o.rules = sqb::parse_rules(ss.str(), rules);
  } else if (spec.empty() || o.k == 0) {
    throw sqb::Error("quantize needs --spec SPEC with --bits B or --k K, or --rules RULES.ini");
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<sqb::ReportRow> rows = sqb::quantize_checkpoint(o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const sqb::ReportRow& total = rows.back();
  if (o.shard_count > 1) {
    std::cout << "shard " << o.shard_index << " of " << o.shard_count << ": quantized " << rows.size() - 1
              << " tensors (" << total.at("n") << " weights) into " << out << "/"
              << sqb::shard_folder_name(o.shard_index, o.shard_count) << "/ in " << secs
              << " s; when every shard is done: sqbench merge " << out << "/shard-*-of-" << o.shard_count
              << "\n";
    return 0;
  }
  std::cout << "quantized " << rows.size() - 1 << " tensors (" << total.at("n") << " weights) into " << out
            << "/ in " << secs << " s: storage_bits " << total.at("storage_bits") << " per weight, mse "
            << total.at("mse") << "\n";
  return 0;
}

}  // namespace sqbench
