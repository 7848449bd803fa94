#include "files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
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
  // Unique per call: two jobs of one process may probe the same folder at once (O_EXCL would fail one).
  static std::atomic<unsigned> probes{0};
  const fs::path probe =
      dir / (".sqbench-write-test." + std::to_string(::getpid()) + "." + std::to_string(probes++));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    throw sqb::Error("results folder " + dir.string() + ": not writable (" + std::strerror(errno) + ")");
  }
  ::close(fd);
  fs::remove(probe, ec);
}

namespace {

// Writes `content` to a temporary file beside `path` and fsyncs it; returns the temporary's path.
fs::path write_temporary(const fs::path& path, std::string_view content) {
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
  return tmp;
}

void rename_into_place(const fs::path& tmp, const fs::path& path) {
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::error_code ec;
    fs::remove(tmp, ec);
    throw sqb::Error(path.string() + ": renaming into place failed (" + reason +
                     "); the previous file is unchanged");
  }
}

// Make renames durable.
void sync_folder(const fs::path& path) {
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const int dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

void write_file_atomic(const fs::path& path, std::string_view content) {
  rename_into_place(write_temporary(path, content), path);
  sync_folder(path);
}

void write_files_atomic(const std::vector<std::pair<fs::path, std::string>>& files) {
  std::vector<fs::path> temporaries;
  try {
    for (const auto& [path, content] : files)
      temporaries.push_back(write_temporary(path, content));
  } catch (...) {
    std::error_code ec;
    for (const fs::path& t : temporaries)
      fs::remove(t, ec);
    throw;
  }
  for (std::size_t i = 0; i < files.size(); ++i)
    rename_into_place(temporaries[i], files[i].first);
  for (const auto& [path, content] : files)
    sync_folder(path);
}

}  // namespace sqbench
