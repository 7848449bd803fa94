#pragma once
/// \file idx.hpp
/// IDX files (Y. LeCun's MNIST format, also used by Fashion-MNIST), plain or gzip-compressed.
///
/// An IDX file is: two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C
/// int32, 0x0D float32, 0x0E float64), the rank R (1..255), R dimensions as big-endian uint32, then the
/// product of the dimensions elements, big-endian, C order, and nothing after them. sqbench reads the
/// unsigned-byte type only (what MNIST and Fashion-MNIST hold: images and labels); the other codes are
/// recognised so that the message can say what a file holds.
///
/// Every problem is an sqb::Error whose message starts with the file's name and gives the reason: not an IDX
/// file (the magic), an unsupported or unknown type code, rank 0, a truncated header, a zero dimension (an
/// empty array), dimensions whose byte count overflows size_t or exceeds the size limit, truncated data,
/// bytes after the data, and for gzip input a corrupt stream (bad header, bad deflate data, CRC or length
/// mismatch), a truncated stream, or garbage after it.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sqb::idx {

/// The largest uncompressed file (header + data) read by default: 1 GiB. Fashion-MNIST's largest file is
/// 47 MB. Decompression never holds more than this (or what the header claims, if less) plus one chunk, so a
/// lying header or a gzip bomb cannot allocate unbounded memory.
inline constexpr std::size_t kDefaultMaxBytes = std::size_t{1} << 30;

/// An IDX array of unsigned bytes.
struct Array {
  std::vector<std::size_t> dims;   ///< R >= 1 dimensions, each >= 1
  std::vector<std::uint8_t> data;  ///< product(dims) values in C order

  std::size_t size() const { return data.size(); }
};

/// Parses a whole file's contents. gzip input is recognised by its magic bytes 1f 8b (not by the name) and
/// inflated with zlib; concatenated gzip members are one stream, as gunzip treats them. `name` prefixes every
/// message. `max_bytes` caps the uncompressed size (header + data); a file claiming more is an Error.
Array parse(std::span<const unsigned char> bytes, std::string_view name,
            std::size_t max_bytes = kDefaultMaxBytes);

/// Reads and parses a file. `path` must name a regular file (or a link to one): a folder, FIFO or device is
/// an Error, as is a file larger than `max_bytes`. Throws Error "<path>: <reason>".
Array read(const std::filesystem::path& path, std::size_t max_bytes = kDefaultMaxBytes);

/// What an IDX file's header claims, read without its data.
struct Header {
  std::vector<std::size_t> dims;  ///< R >= 1 dimensions, each >= 1
  std::uint64_t bytes = 0;        ///< header + data, uncompressed
};

/// Reads `path`'s header, checked as read() checks it, and checks that the file holds what the header
/// claims without reading the data: a plain file's size, or a gzip file's trailer (the uncompressed size
/// modulo 2^32, RFC 1952). When they disagree (a truncated or corrupt file, or gzip members the trailer does
/// not sum) the whole file is read, so the Error is read()'s own, or the header stands if the file is valid
/// after all. Throws Error "<path>: <reason>".
Header read_header(const std::filesystem::path& path, std::size_t max_bytes = kDefaultMaxBytes);

/// An Array's dimensions as text: "60000 x 28 x 28".
std::string dims_text(const std::vector<std::size_t>& dims);

}  // namespace sqb::idx
