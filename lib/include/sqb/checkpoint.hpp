#pragma once
/// \file checkpoint.hpp
/// A whole checkpoint in, a quantized checkpoint out: what `sqbench quantize` and the Python module's
/// `quantize_checkpoint` do.
///
/// Selection. Without rules, every floating tensor (F32, F16, BF16, F64) of rank >= 2 whose name ends in
/// `weight` or `kernel` is quantized with the one spec, K and granularity given; everything else is copied.
/// With rules (an INI file, see parse_rules), the first rule whose glob matches a tensor's name decides: skip
/// it (copy), or quantize it with the rule's spec, K, granularity, layout and importance; a tensor no rule
/// matches is copied. A rule that matches no tensor, or a quantize rule matching a tensor that is not
/// floating, is an Error before any work.
///
/// Outputs in the folder: `model.safetensors` (or the input's shard files and its index, keeping the split),
/// each quantized tensor replaced by its reconstruction in its own dtype and shape (F16 and BF16 rounded to
/// nearest even from the float32 reconstruction), every other tensor and the input's `__metadata__` copied
/// byte for byte plus `sqbench.*` metadata entries; `report.csv`; `manifest.json`; with pack,
/// `packed.safetensors`. Each is written under a temporary name and renamed when complete.
///
/// Streaming: one tensor at a time. Resident memory is about the largest quantized tensor as float32 (its
/// values) and its codes, plus one slab's block designs at channel or group granularity (the whole tensor's
/// designs at tensor granularity: one block): importance vectors are never expanded to the tensor's shape
/// and the reconstruction is decoded from the codes chunk by chunk as it is written (kept whole only for a
/// layout hwio tensor, gathered back into the stored order); the input's mapped pages are dropped once read.
///
/// Importance: one vector per quantized weight, of the laid-out column count (sqb::Importance); a quantized
/// tensor without an entry (and a rule that does not say `importance = off`) is an Error before work.

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sqb {

/// One rule of a rules file.
struct CheckpointRule {
  std::string pattern;          ///< shell-style glob over tensor names (safetensors::glob_match)
  bool skip = false;            ///< copy the matching tensors unchanged
  std::string spec;             ///< quantizer spec (e.g. "kmeans"); empty: the command's
  std::size_t k = 0;            ///< K; 0: the command's
  std::string granularity;      ///< empty: the command's
  std::string layout = "auto";  ///< rows | oihw | hwio | auto
  bool importance = true;       ///< use the importance file's vector for the matching tensors
};

/// Rules from an INI text: one section per rule, in order, the section name being the glob:
///
///     [lm_head.weight]
///     bits = 8
///     [*.mlp.*]
///     spec = kmeans
///     bits = 3
///     granularity = group:64
///     [*]
///     skip = true
///
/// Keys: spec, bits (1..16) or k, granularity, layout, importance (on/off), skip (true/false). `#` and `;`
/// start comments. Errors name `where`, the line and the key, listing the valid keys.
std::vector<CheckpointRule> parse_rules(const std::string& text, const std::string& where);

struct CheckpointOptions {
  std::filesystem::path input;  ///< a .safetensors file or a sharded checkpoint's index .json
  std::filesystem::path out;    ///< the output folder (created; must not hold the outputs already)
  std::string spec;             ///< default quantizer spec
  std::size_t k = 0;            ///< default K
  std::string granularity = "channel";
  std::vector<CheckpointRule> rules;  ///< empty: the default selection
  std::filesystem::path importance;   ///< empty: none
  std::vector<std::string> rename;    ///< FROM=TO regex rules for the importance file's names
  int threads = 0;  ///< threads over blocks (0 = every core); output identical for any value
  bool pack = false;
  bool opt_ratio = false;
  /// The report's coded_bits: a real rANS pass over each quantized tensor's codes (decoded and checked). It
  /// costs about as much as the rest of a `uniform` run, so it is measured only when asked; empty otherwise.
  bool coded = false;
  std::uint64_t seed = 0;
  std::string command;  ///< the command line, recorded in the manifest
  /// Continue an interrupted run into the same folder: the tensors its journal records as finished are
  /// kept; the input files (header, size, modification time), the importance file and every option that
  /// changes the output must be the same (Error naming what differs otherwise).
  bool resume = false;
  /// Shard i of n (1-based): only this part of the tensors (balanced by size, the same split in every task)
  /// into `out/shard-<i>-of-<n>/`, left for merge_checkpoint_shards. 1/1: the whole run into `out`.
  std::size_t shard_index = 1, shard_count = 1;
  /// Elements per slab of a channel or group granularity tensor: such a tensor is quantized a slab of whole
  /// rows at a time (at least one row), holding one slab's block designs rather than the whole tensor's; the
  /// output is the same byte for byte for any value. 0: the default (2^21 elements);
  /// std::numeric_limits<std::size_t>::max(): one pipeline call on the whole tensor (what the tests compare
  /// the slabs against). Tensor granularity and layout hwio always take the whole tensor.
  std::size_t slab_elements = 0;
};

/// One row of report.csv: column name -> text, in report_columns() order; the last row is the totals.
using ReportRow = std::map<std::string, std::string>;

/// report.csv's columns: tensor, shape, dtype, then results.csv names (quantizer, n, k, bits, granularity,
/// rows, cols, blocks, mse, nmse, sqnr_db, max_abs_err, entropy_bits, storage_bits, coded_bits, wmse,
/// iterations, converged, opt_ratio, fit_s, encode_s, decode_s).
std::vector<std::string> report_columns();

/// Runs the whole job; returns the report's rows (the totals row last, tensor "(total)"). Errors (sqb::Error)
/// for bad input, a NaN or infinity in a weight to be quantized included, are raised before any output is
/// written.
///
/// Every run keeps a journal (`.sqbench-quantize.journal` in the folder) of its finished tensors and writes
/// the data files under `<name>.partial`: a killed run leaves those, never a final name, and `resume`
/// continues it. A complete run renames the files and removes the journal. (Test hook: the environment
/// variable SQB_QUANTIZE_KILL_AFTER=N makes the process SIGKILL itself after N finished tensors.)
std::vector<ReportRow> quantize_checkpoint(const CheckpointOptions& options);

/// "i/n" (1 <= i <= n) of --shard; Error naming the text otherwise.
std::pair<std::size_t, std::size_t> parse_shard(const std::string& text);
/// The folder of shard i of n inside the output folder: "shard-<i>-of-<n>".
std::string shard_folder_name(std::size_t i, std::size_t n);
/// Whether `dir` is a shard folder of quantize_checkpoint (it holds a journal).
bool is_checkpoint_shard(const std::filesystem::path& dir);
/// Assembles the finished shards of one run (every i of n, the same inputs and options) into `out`: the
/// data files (byte for byte what one unsharded run writes), the index, report.csv (totals recomputed from
/// the rows) and manifest.json (the first shard's command, plus "merged_shards": n). Errors before writing:
/// a folder that is not a shard, a missing, repeated or unfinished shard, shards of different runs.
std::vector<ReportRow> merge_checkpoint_shards(const std::vector<std::filesystem::path>& shards,
                                               const std::filesystem::path& out, const std::string& command);

}  // namespace sqb
