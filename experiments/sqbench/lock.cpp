#include "lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "files.hpp"
#include "sqb/error.hpp"
#include "text.hpp"

namespace sqbench {

namespace fs = std::filesystem;

FolderLock::FolderLock(const fs::path& dir) {
  ensure_writable_dir(dir);
  const fs::path path = dir / kFileName;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw sqb::Error("results folder " + folder_text(dir) + ": cannot open its lock file " + kFileName +
                     " (" + std::strerror(errno) + ")");
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    // The holder wrote its pid right after locking; an instant earlier the file can still be empty.
    char buf[32] = {};
    const ssize_t got = ::pread(fd_, buf, sizeof buf - 1, 0);
    std::string pid = got > 0 ? std::string(buf, static_cast<std::size_t>(got)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' '))
      pid.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) {
      throw sqb::Error("results folder " + folder_text(dir) + " is in use by another sqbench (pid " +
                       (pid.empty() ? std::string("unknown") : pid) +
                       "): one run, render or merge writes a folder at a time; wait for it to finish, or "
                       "choose another --out");
    }
    throw sqb::Error("results folder " + folder_text(dir) + ": cannot lock " + kFileName + " (" +
                     std::strerror(err) + ")");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the pid; a second run's message then says "pid unknown".
  }
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace sqbench
