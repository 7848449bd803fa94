#pragma once
// One run per results folder: an exclusive flock on <folder>/.sqbench-lock, held while a command writes
// there.

#include <filesystem>

namespace sqbench {

/// Holds the results folder `dir` (created if missing) for this process until destroyed. The lock is the
/// kernel's (flock on an open file), so a killed holder never leaves a stale lock behind; the lock file
/// itself stays (removing it would let two processes lock two different files of one name). Throws sqb::Error
/// naming the folder and the holder's pid when another process holds it: it never waits.
class FolderLock {
 public:
  explicit FolderLock(const std::filesystem::path& dir);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

  /// The lock file's name inside a results folder.
  static constexpr const char* kFileName = ".sqbench-lock";

 private:
  int fd_ = -1;
};

}  // namespace sqbench
