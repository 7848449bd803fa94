#pragma once
/// \file npy.hpp
/// NumPy `.npy` files in and out (format versions 1.0, 2.0 and 3.0, as specified in NumPy's
/// `numpy/lib/format.py` / NEP 1). How an N-D weight becomes sqbench's rows x cols is sqb/layout.hpp.
///
/// A .npy file is: the magic `\x93NUMPY`, a major and a minor version byte, the header length (uint16 little
/// endian for 1.0, uint32 for 2.0 and 3.0), a header that is a Python dict literal
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` (latin-1 for 1.0/2.0, UTF-8 for 3.0,
/// padded with blanks and a final newline), then the raw values.
///
/// Supported dtypes: float16 (`<f2`), float32 (`<f4`), float64 (`<f8`) as data, and int8, uint8, int16,
/// uint16, int32 (`|i1 |u1 <i2 <u2 <i4`) for exported codes; either byte order (`<`, `>`; `|`, `=` or none
/// mean this machine's); C or Fortran order; 0-D (a scalar) to 64-D. Everything else is an Error that says
/// what the file holds (int64, complex, bool, strings, object arrays, structured dtypes).
///
/// Every problem with a file is an sqb::Error whose message starts with the file's name and gives the reason:
/// wrong magic, unsupported version, truncated header, a header that is not a Python dict literal (with the
/// offending byte offset), missing/extra/repeated keys, an unsupported dtype (naming it), a shape that is not
/// a tuple of non-negative integers, an element count or byte size that overflows size_t, a data size that
/// does not match the file length (truncated, or bytes after the data), an empty array (a zero in the shape),
/// float64 values outside float32's range (naming the index).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sqb/tensor.hpp"

namespace sqb::npy {

enum class DType : std::uint8_t { float16, float32, float64, int8, uint8, int16, uint16, int32 };

std::string_view dtype_name(DType t);  ///< "float16", "int32", ...
std::size_t dtype_bytes(DType t);      ///< 2, 4, 8, 1, ...
bool is_floating(DType t);             ///< float16, float32, float64

/// How an array is laid out in its file (what read() found, or what write() should produce).
struct Format {
  DType dtype = DType::float32;
  bool big_endian = false;
  bool fortran_order = false;  ///< column-major (first axis fastest)
  int version = 0;             ///< major version 1, 2 or 3; for write(), 0 = 1 unless the header needs 2
};

/// An array read from a file. Values are always in C (row-major) order, whatever the file's order.
struct Array {
  std::vector<std::size_t> shape;  ///< empty for a 0-D array (one value)
  Format format;                   ///< as found in the file
  /// Float dtypes: the values as float32. float16 converts exactly (subnormals, +-Inf and NaN included);
  /// float64 rounds to nearest (values beyond float32's range are an Error, values below its smallest
  /// subnormal become +-0). Empty for integer dtypes.
  std::vector<float> values;
  /// Integer dtypes: the values (every supported integer type fits in int32). Empty for float dtypes.
  std::vector<std::int32_t> ints;

  std::size_t size() const;  ///< number of elements: the product of shape (1 for 0-D)
};

/// Reads a whole .npy file. `path` must name a regular file (a directory, FIFO or device is an Error, so a
/// misplaced /dev/zero cannot hang a run). The data is streamed in chunks after the header and the file
/// length are checked, so a lying header never causes a large allocation. Throws Error "<path>: <reason>".
Array read(const std::filesystem::path& path);

/// The same for a file's complete contents already in memory; `name` prefixes messages (the fuzz entry
/// point).
Array parse(std::span<const unsigned char> bytes, std::string_view name);

/// The bytes of a .npy file holding `shape` and `values` (C order, size = product of shape >= 1) stored as
/// `format` (dtype, byte order, C/Fortran order, version). Float data may be stored as float16/32/64; a value
/// that float16 cannot hold (|x| >= 65520, which would round to Inf) is an Error naming its index, while
/// NaN and +-Inf are stored as such; float16 rounds to nearest, ties to even. Throws Error for an empty
/// array, a size mismatch, an integer dtype, more than 64 dimensions or a version other than 0, 1, 2, 3.
std::string serialize(std::span<const std::size_t> shape, std::span<const float> values,
                      const Format& format);
/// The same for integer codes, stored as int8/uint8/int16/uint16/int32; a value outside the dtype's range is
/// an Error naming its index; a float dtype is an Error.
std::string serialize(std::span<const std::size_t> shape, std::span<const std::int32_t> values,
                      const Format& format);

/// Writes serialize(...) to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// folder. On any failure (full disk, no permission) the previous file is untouched, the temporary file is
/// removed, and an Error names `path` and the reason.
void write(const std::filesystem::path& path, std::span<const std::size_t> shape,
           std::span<const float> values, const Format& format = {});
void write(const std::filesystem::path& path, std::span<const std::size_t> shape,
           std::span<const std::int32_t> values, const Format& format);

/// IEEE 754 binary16 <-> binary32. half_to_float is exact for every one of the 65536 bit patterns (NaN keeps
/// its sign and payload); float_to_half rounds to nearest, ties to even, overflows to +-Inf (from 65520 on),
/// and keeps NaN a NaN (payload truncated, as NumPy does).
float half_to_float(std::uint16_t h);
std::uint16_t float_to_half(float f);

/// Python-style text of a shape: "()", "(5,)", "(3, 4)".
std::string shape_text(std::span<const std::size_t> shape);

}  // namespace sqb::npy

namespace sqb {

/// The sweep `n` a file source (npy, safetensors) reads as "the whole file, every value" (a subsample
/// otherwise; see the distribution table in docs/quantizers.md). Synthetic laws reject it (n must be >= 1). A
/// sweep whose sources are all files may omit `n`: it is then this. (Glob expansion:
/// sqb::expand_source_spec.)
inline constexpr std::size_t kWholeFile = 0;

}  // namespace sqb
