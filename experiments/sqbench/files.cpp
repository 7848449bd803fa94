#include "files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sqb/error.hpp"

namespace sqbench {

namespace fs = std::filesystem;

void ensure_writable_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw sqb::Error("results folder " + dir.string() + ": cannot create it (" + ec.message() + ")");
  if (!fs::is_directory(dir, ec))
    throw sqb::Error("results folder " + dir.string() + ": exists and is not a folder");
  const fs::path probe = dir / (".sqbench-write-test." + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    throw sqb::Error("results folder " + dir.string() + ": not writable (" + std::strerror(errno) + ")");
  }
  ::close(fd);
  fs::remove(probe, ec);
}

void write_file_atomic(const fs::path& path, std::string_view content) {
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  const auto fail = [&](const char* what) {
    const std::string reason = std::strerror(errno);
    std::error_code ec;
    fs::remove(tmp, ec);
    throw sqb::Error(path.string() + ": " + what + " failed (" + reason +
                     "); the previous file is unchanged");
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("creating the temporary file");
  const char* p = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    const ssize_t w = ::write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      fail("writing");
    }
    p += w;
    left -= static_cast<std::size_t>(w);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("fsync");
  }
  if (::close(fd) != 0) fail("closing");
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("renaming into place");
  // Make the rename itself durable.
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const int dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace sqbench
