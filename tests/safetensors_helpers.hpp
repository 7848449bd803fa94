#pragma once
// Helpers for the safetensors tests: files built by hand, byte by byte, from the format's description
// (8-byte little-endian header length, JSON header, data buffer), independent of the reader under test.

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli_helpers.hpp"

namespace sqbtest {

/// A JSON string literal for `s` (escaping only what JSON requires).
inline std::string json_string(const std::string& s) {
  static const char* digits = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += digits[c >> 4];
      out += digits[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

/// A safetensors file from a header text and a data buffer, exactly as given.
inline std::string st_raw(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  for (int b = 0; b < 8; ++b)
    out[static_cast<std::size_t>(b)] = static_cast<char>((n >> (8 * b)) & 0xFF);
  return out + header + data;
}

struct StTensor {
  std::string name;
  std::string dtype;
  std::vector<std::size_t> shape;
  std::string data;  ///< raw little-endian bytes
};

inline std::string shape_json(const std::vector<std::size_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

/// The header the reference writer would produce for `tensors` laid out in the given order (offsets
/// consecutive from 0), with `metadata_json` (an object's text) as __metadata__ when not empty, padded with
/// blanks to a multiple of 8 bytes.
inline std::string st_header(const std::vector<StTensor>& tensors, const std::string& metadata_json = "") {
  std::string h = "{";
  if (!metadata_json.empty()) h += "\"__metadata__\":" + metadata_json;
  std::size_t offset = 0;
  for (const StTensor& t : tensors) {
    if (h.size() > 1) h += ",";
    h += json_string(t.name) + ":{\"dtype\":\"" + t.dtype + "\",\"shape\":" + shape_json(t.shape) +
         ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.data.size()) + "]}";
    offset += t.data.size();
  }
  h += "}";
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

inline std::string st_file(const std::vector<StTensor>& tensors, const std::string& metadata_json = "") {
  std::string data;
  for (const StTensor& t : tensors)
    data += t.data;
  return st_raw(st_header(tensors, metadata_json), data);
}

/// Little-endian bytes of a vector of unsigned integers (bit patterns) of type U.
template <class U>
std::string le_bytes(const std::vector<U>& v) {
  std::string s;
  for (const U u : v) {
    for (std::size_t b = 0; b < sizeof(U); ++b)
      s += static_cast<char>((static_cast<std::uint64_t>(u) >> (8 * b)) & 0xFF);
  }
  return s;
}

inline std::string f32_bytes(const std::vector<float>& v) {
  std::vector<std::uint32_t> u;
  for (const float f : v)
    u.push_back(std::bit_cast<std::uint32_t>(f));
  return le_bytes(u);
}
inline std::string f64_bytes(const std::vector<double>& v) {
  std::vector<std::uint64_t> u;
  for (const double d : v)
    u.push_back(std::bit_cast<std::uint64_t>(d));
  return le_bytes(u);
}

}  // namespace sqbtest
