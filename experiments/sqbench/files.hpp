#pragma once
// Output files that are never half-written: write a temporary file beside the target, fsync, rename.

#include <filesystem>
#include <string>
#include <string_view>

namespace sqbench {

/// Creates `dir` if needed and checks a file can be created in it; throws sqb::Error naming it otherwise.
void ensure_writable_dir(const std::filesystem::path& dir);

/// Replaces `path` with `content` atomically: the old file stays intact until the new one is complete on
/// disk. Throws sqb::Error naming the file on any failure (and removes the temporary file).
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

}  // namespace sqbench
