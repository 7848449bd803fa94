#pragma once
// Small text and number helpers shared by the CLI's parts (configs, tables, plots, sweeps).

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace sqbench {

/// A folder as messages show it: with exactly one trailing '/' however many were typed ("up_nf4/" and
/// "up_nf4" both print "up_nf4/"; "/" stays "/").
inline std::string folder_text(const std::filesystem::path& dir) {
  std::string s = dir.string();
  while (s.size() > 1 && s.back() == '/')
    s.pop_back();
  return s == "/" ? s : s + "/";
}

/// "a, b, c": the items joined with ", ".
inline std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

/// Splits "a, b,c" at commas and trims spaces and tabs around each item; "" gives no items, while an empty
/// item between commas is kept as "".
inline std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string v = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto a = v.find_first_not_of(" \t"), b = v.find_last_not_of(" \t");
    out.push_back(a == std::string::npos ? "" : v.substr(a, b - a + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

/// The median of sorted, non-empty values (the mean of the middle two for an even count).
// The alternatives of a where value: "a|b|c" -> a, b, c.
inline std::vector<std::string> split_alternatives(const std::string& value) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t bar = value.find('|', start);
    out.push_back(value.substr(start, bar == std::string::npos ? std::string::npos : bar - start));
    if (bar == std::string::npos) return out;
    start = bar + 1;
  }
}

inline double median_of_sorted(const std::vector<double>& v) {
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

}  // namespace sqbench
