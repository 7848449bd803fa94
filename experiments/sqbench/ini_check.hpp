#pragma once
// Guards in front of Boost.program_options' INI parser: it reads any bytes as text, so a binary file, a
// Latin-1 file or a duplicated section would be silently misread (a NUL inside a value, a key that starts
// with a byte-order mark, two [sweep] sections merged into one). These checks reject such files up front with
// a message naming the file, the line and the column.

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace sqbench {

/// Longest line a config may have. A real config line is a spec string of at most a few hundred bytes; a
/// longer one is a wrong file (and is rejected after reading at most this much of it).
inline constexpr std::size_t kMaxConfigLineBytes = 64 * 1024;
/// Largest config file read_config_file() reads.
inline constexpr std::size_t kMaxConfigBytes = 16 * 1024 * 1024;

/// Checks a config file's bytes before they are parsed; `path` only names the file in messages. Throws
/// sqb::Error "<path>:<line>: <reason>" (lines and columns 1-based, columns in bytes) for:
///  - binary data: a NUL byte, or another control character than tab, newline and a carriage return that
///    ends a line (CRLF files are fine; a lone CR is not);
///  - bytes that are not UTF-8 (overlong forms, surrogates and code points above U+10FFFF included), and a
///    leading UTF-8 byte-order mark (Boost would make it part of the first key);
///  - a line longer than kMaxConfigLineBytes (found after scanning at most that many bytes of it, so a 10 MB
///    line costs microseconds);
///  - a section given twice (`[sweep]` ... `[sweep]`, naming both lines), including spellings Boost treats as
///    the same section (`[sweep.]`);
///  - a line that is neither `key = value` nor `[section]` (after Boost's comment stripping and trimming):
///    Boost's own message for it never ends when the line contains "%invalid_line%" (Boost 1.74).
/// Runs in one pass over the bytes, O(size).
void check_ini_text(std::string_view text, const std::filesystem::path& path);

/// Reads a config file's bytes, refusing what is not a readable regular file of at most kMaxConfigBytes:
/// a missing or unreadable file, a directory, a FIFO or device (reading /dev/zero would never end and a FIFO
/// would block), an oversized file. Throws sqb::Error "<path>: <reason>". (For load_config; see
/// docs/configs.md.)
std::string read_config_file(const std::filesystem::path& path);

}  // namespace sqbench
