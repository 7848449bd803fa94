#pragma once
// The files a run reads (data .npy and safetensors files, weights files, task data), fingerprinted so that
// --resume and merge never combine results computed from different bytes.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "plan.hpp"

namespace sqbench {

/// One input file: absolute path, size, modification time and a 64-bit content hash of every byte.
struct InputFingerprint {
  std::string path;
  std::uint64_t size = 0;
  std::string mtime;  ///< UTC, ISO 8601 with nanoseconds (recorded for people; the hash decides)
  std::string hash;   ///< XXH3-64 of the whole file, 16 hex digits

  bool operator==(const InputFingerprint&) const = default;
};

/// XXH3-64 (seed 0) of a file's bytes, read in large blocks; 16 lowercase hex digits. Throws sqb::Error
/// naming the file when it cannot be read.
std::string file_hash(const std::filesystem::path& path);

/// The fingerprint of one file (throws like file_hash).
InputFingerprint fingerprint(const std::filesystem::path& path);

/// The files the plan's cells read, absolute, sorted, each once: an npy source's file and weights file, a
/// safetensors source's file (for a sharded checkpoint: the index and the shard holding the tensor) and
/// weights file, a task's dataset files.
std::vector<std::filesystem::path> plan_inputs(const Config& config, const Plan& plan);

/// The size and modification time of a file, without hashing it (hash left empty).
InputFingerprint fingerprint_stat(const std::filesystem::path& path);

/// Fingerprints of `files`.
std::vector<InputFingerprint> fingerprints(const std::vector<std::filesystem::path>& files);

/// The fingerprints as a JSON array of {path, size, mtime, xxh3_64} objects.
nlohmann::ordered_json inputs_json(const std::vector<InputFingerprint>& inputs);

/// The `inputs` array of a JSON document (context.json, or results.partial.inputs.json); std::nullopt when
/// the document has none (written before inputs were recorded). Throws sqb::Error naming `file` when it is
/// not valid JSON or the array is malformed.
std::optional<std::vector<InputFingerprint>> read_inputs(const std::filesystem::path& file);

/// Throws sqb::Error (naming `what`, the file and how it differs) when `now` and `then` do not describe the
/// same files with the same bytes: a file read then and not now, or now and not then, or whose size or hash
/// changed. A changed mtime alone (a copy, a touch) is the same data.
void check_same_inputs(const std::vector<InputFingerprint>& then, const std::vector<InputFingerprint>& now,
                       const std::string& what);

}  // namespace sqbench
