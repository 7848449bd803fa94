#include "progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace sqbench {

namespace {

std::string duration(double s) {
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%d min %02d s", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%d h %02d min", static_cast<int>(s / 3600),
                  static_cast<int>(s / 60) % 60);
  }
  return buf;
}

}  // namespace

Progress::Progress(std::size_t total, std::size_t already_done, bool quiet)
    : total_(total), resumed_(already_done), quiet_(quiet), tty_(::isatty(STDERR_FILENO) == 1) {
  start_ = last_line_ = std::chrono::steady_clock::now();
  if (quiet_) return;
  if (resumed_ > 0)
    note("resuming: " + std::to_string(resumed_) + " of " + std::to_string(total_) + " cells already done");
  // A terminal's line is redrawn every second; a log gets a line at most every 10 s, also while one long cell
  // runs.
  ticker_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::seconds(1));
      if (!stop_) draw(tty_);
    }
  });
}

Progress::~Progress() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

std::string Progress::status() const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::size_t finished = resumed_ + done_;
  // Built with += (GCC 12 reports a false -Wrestrict for "literal" + std::to_string(...)).
  std::string s = "[";
  s += std::to_string(finished);
  s += "/";
  s += std::to_string(total_);
  s += "] elapsed ";
  s += duration(elapsed);
  if (done_ > 0 && finished < total_) {
    s += ", ETA " + duration(elapsed / static_cast<double>(done_) * static_cast<double>(total_ - finished));
  }
  if (!current_.empty() && finished < total_) s += " | " + current_;
  return s;
}

void Progress::draw(bool force) {
  if (quiet_) return;
  if (tty_) {
    std::string s = status();
    if (s.size() > 160) s = s.substr(0, 157) + "...";
    std::cerr << "\r\033[K" << s << std::flush;
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (force || now - last_line_ >= std::chrono::seconds(10)) {
    std::cerr << "sqbench: " << status() << "\n";
    last_line_ = now;
  }
}

void Progress::started(const std::string& cell) {
  std::lock_guard lock(mu_);
  current_ = cell;
  if (tty_) draw(true);
}

void Progress::finished(const std::string& cell) {
  std::lock_guard lock(mu_);
  ++done_;
  if (current_ == cell) current_.clear();
  draw(resumed_ + done_ == total_ || done_ == 1);
}

void Progress::note(const std::string& line) {
  if (quiet_) return;
  std::lock_guard lock(mu_);
  if (tty_) std::cerr << "\r\033[K";
  std::cerr << "sqbench: " << line << "\n";
}

void Progress::warn(const std::string& line) {
  std::lock_guard lock(mu_);
  if (tty_ && !quiet_) std::cerr << "\r\033[K";
  std::cerr << "sqbench: warning: " << line << "\n";
}

void Progress::done() {
  std::lock_guard lock(mu_);
  stop_ = true;
  if (quiet_) return;
  if (tty_) std::cerr << "\r\033[K" << status() << "\n";
}

}  // namespace sqbench
