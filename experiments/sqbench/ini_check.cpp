#include "ini_check.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "sqb/error.hpp"

namespace sqbench {

namespace {

std::string hex_byte(unsigned char c) {
  static const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[c >> 4] + digits[c & 15];
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF).
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return n;
}

// A line as Boost.program_options' config parser sees it: the comment from '#' stripped, blanks trimmed.
std::string_view boost_view(std::string_view line) {
  const auto hash = line.find('#');
  if (hash != std::string_view::npos) line = line.substr(0, hash);
  const auto first = line.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = line.find_last_not_of(" \t\r\n");
  return line.substr(first, last - first + 1);
}

// The section a (trimmed) line opens: "[name]" gives Boost's key prefix "name." -- so [sweep] and [sweep.]
// are the same section -- or "" if it opens none.
std::string section_prefix(std::string_view line) {
  if (line.size() < 2 || line.front() != '[' || line.back() != ']') return "";
  std::string prefix(line.substr(1, line.size() - 2));
  if (prefix.empty() || prefix.back() != '.') prefix += '.';
  return prefix;
}

}  // namespace

void check_ini_text(std::string_view text, const std::filesystem::path& path) {
  const std::string file = path.string();
  std::size_t line = 1, line_start = 0;
  const auto fail = [&](std::size_t at, const std::string& what) {
    throw sqb::Error(file + ":" + std::to_string(line) + ": column " + std::to_string(at - line_start + 1) +
                     ": " + what);
  };
  if (text.starts_with("\xEF\xBB\xBF")) {
    throw sqb::Error(file +
                     ":1: the file starts with a UTF-8 byte-order mark, which would become part of the first "
                     "key; save it as UTF-8 without BOM");
  }
  std::map<std::string, std::size_t> sections;  // prefix -> line
  std::size_t i = 0;
  while (i <= text.size()) {
    if (i == text.size() || text[i] == '\n') {
      const std::string_view content = boost_view(text.substr(line_start, i - line_start));
      const std::string prefix = section_prefix(content);
      // A line that is neither `key = value` nor `[section]` is reported here, never by Boost: Boost 1.74
      // builds that message by replacing "%invalid_line%" in its template with the line, in a loop that never
      // ends when the line itself contains "%invalid_line%" (found by fuzz_ini: sqbench hung, its memory
      // growing).
      if (!content.empty() && prefix.empty() && content.find('=') == std::string_view::npos) {
        std::string shown(content.substr(0, 60));
        if (content.size() > 60) shown += "...";
        throw sqb::Error(file + ":" + std::to_string(line) + ": not a valid INI config: '" + shown +
                         "' is neither a key = value line nor a [section]");
      }
      if (!prefix.empty()) {
        const auto [it, fresh] = sections.emplace(prefix, line);
        if (!fresh) {
          const std::string name = prefix.substr(0, prefix.size() - 1);
          throw sqb::Error(
              file + ":" + std::to_string(line) + ": section [" + name + "] appears twice (lines " +
              std::to_string(it->second) + " and " + std::to_string(line) +
              "); Boost.program_options would merge them silently: put all its keys under one [" + name +
              "]");
        }
      }
      ++i;
      ++line;
      line_start = i;
      continue;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == 0) fail(i, "binary data (a NUL byte): a config is a text file");
    if (c == '\r') {
      if (i + 1 < text.size() && text[i + 1] == '\n') {
        ++i;
        continue;
      }
      fail(i, "a carriage return that does not end a line (old Mac line endings?)");
    }
    // Checked per byte, so a 10 MB line stops here after 64 KiB (the CR of a CRLF does not count).
    if (i - line_start >= kMaxConfigLineBytes) {
      throw sqb::Error(file + ":" + std::to_string(line) + ": line is longer than " +
                       std::to_string(kMaxConfigLineBytes) + " bytes (not a config file?)");
    }
    if ((c < 0x20 && c != '\t') || c == 0x7F) fail(i, "control character " + hex_byte(c) + " (binary data?)");
    if (c < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_length(text, i);
    if (n == 0) fail(i, "byte " + hex_byte(c) + " is not valid UTF-8 (save the file as UTF-8)");
    i += n;
  }
}

std::string read_config_file(const std::filesystem::path& path) {
  const std::string file = path.string();
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then rejects it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    throw sqb::Error(file + ": cannot read the config file (" + std::strerror(errno) + ")");
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw sqb::Error(file + ": cannot read the config file (" + std::strerror(errno) + ")");
  }
  if (S_ISDIR(st.st_mode)) throw sqb::Error(file + ": is a directory, not a config file");
  if (!S_ISREG(st.st_mode)) {
    throw sqb::Error(file + ": is not a regular file (a device, FIFO or socket), not a config file");
  }
  const auto too_big = [&]() {
    return sqb::Error(file + ": is larger than " + std::to_string(kMaxConfigBytes >> 20) +
                      " MiB; not a config file");
  };
  if (static_cast<std::uintmax_t>(st.st_size) > kMaxConfigBytes) throw too_big();
  // Files in /proc report size 0, so read to the end, but never past the limit.
  std::string text;
  char buf[1 << 16];
  while (true) {
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw sqb::Error(file + ": cannot read the config file (" + std::strerror(errno) + ")");
    if (got == 0) break;
    text.append(buf, static_cast<std::size_t>(got));
    if (text.size() > kMaxConfigBytes) throw too_big();
  }
  return text;
}

}  // namespace sqbench
