#pragma once
// Progress on stderr: a live line on a terminal (refreshed every second), periodic plain lines otherwise.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>

namespace sqbench {

class Progress {
 public:
  /// `total` cells in this run of which `already_done` were resumed. quiet: print nothing.
  Progress(std::size_t total, std::size_t already_done, bool quiet);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void started(const std::string& cell);   ///< a worker began `cell`
  void finished(const std::string& cell);  ///< a worker finished `cell`
  void note(const std::string& line);      ///< a message line that does not disturb the live line
  void warn(const std::string& line);      ///< "sqbench: warning: <line>", printed even when quiet
  void done();                             ///< final line

 private:
  void draw(bool force);  // caller holds mu_
  std::string status() const;

  std::size_t total_, resumed_, done_ = 0;
  bool quiet_, tty_;
  std::string current_;
  std::chrono::steady_clock::time_point start_, last_line_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread ticker_;
};

}  // namespace sqbench
