#pragma once
// Output files that are never half-written: write a temporary file beside the target, fsync, rename.

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sqbench {

/// Creates `dir` if needed and checks a file can be created in it; throws sqb::Error naming it otherwise.
void ensure_writable_dir(const std::filesystem::path& dir);

/// Replaces `path` with `content` atomically: the old file stays intact until the new one is complete on
/// disk. Throws sqb::Error naming the file on any failure (and removes the temporary file).
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

/// Replaces several files as one step as far as a file system allows: every temporary file is written and
/// fsync'ed first, and only then are they renamed into place in order. A failure while writing (full disk)
/// leaves every previous file untouched and removes the temporaries; the error names the file being written.
void write_files_atomic(const std::vector<std::pair<std::filesystem::path, std::string>>& files);

}  // namespace sqbench
