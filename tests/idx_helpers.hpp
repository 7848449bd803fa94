#pragma once
// IDX files by hand (plain and gzip) for the IDX reader's and the task's tests.

#include <zlib.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>

namespace sqbtest {

inline void put_be32(std::string& s, std::uint32_t v) {
  for (int b = 3; b >= 0; --b)
    s += static_cast<char>((v >> (8 * b)) & 0xFF);
}

/// An IDX file by hand: magic 00 00 type rank, the dims big-endian, then `data` as given.
inline std::string raw_idx(std::initializer_list<std::uint32_t> dims, const std::string& data,
                           unsigned char type = 0x08, int rank = -1) {
  std::string s;
  s += '\0';
  s += '\0';
  s += static_cast<char>(type);
  s += static_cast<char>(rank < 0 ? static_cast<int>(dims.size()) : rank);
  for (const auto d : dims)
    put_be32(s, d);
  return s + data;
}

/// gzip-compresses with zlib (a real gzip member: header, deflate data, CRC32 and length trailer).
inline std::string gzip(const std::string& in) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, in.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace sqbtest
