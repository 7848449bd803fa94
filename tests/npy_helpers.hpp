#pragma once
// Helpers for the .npy, bad-input and NumPy tests: scratch folders, files, and hand-made .npy bytes.

#include <unistd.h>

#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <span>
#include <string>

#include "cli_helpers.hpp"

namespace sqbtest {

/// A fresh folder under /tmp, removed with everything in it afterwards.
using ScratchDir = TempDir;

inline std::span<const unsigned char> bytes_of(const std::string& s) {
  return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

/// A .npy file by hand: magic, version `major`.0, the header exactly as given (no padding), then `data`.
inline std::string raw_npy(const std::string& header, const std::string& data = "", int major = 1) {
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  const std::size_t n = header.size();
  out += static_cast<char>(n & 0xFF);
  out += static_cast<char>((n >> 8) & 0xFF);
  if (major > 1) {
    out += static_cast<char>((n >> 16) & 0xFF);
    out += static_cast<char>((n >> 24) & 0xFF);
  }
  return out + header + data;
}

/// Little-endian bytes of float32 / float64 values.
inline std::string le_floats(std::initializer_list<float> v) {
  std::string s;
  for (const float f : v) {
    const auto u = std::bit_cast<std::uint32_t>(f);
    for (int b = 0; b < 4; ++b)
      s += static_cast<char>((u >> (8 * b)) & 0xFF);
  }
  return s;
}
inline std::string le_doubles(std::initializer_list<double> v) {
  std::string s;
  for (const double f : v) {
    const auto u = std::bit_cast<std::uint64_t>(f);
    for (int b = 0; b < 8; ++b)
      s += static_cast<char>((u >> (8 * b)) & 0xFF);
  }
  return s;
}

}  // namespace sqbtest
