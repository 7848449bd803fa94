#pragma once
/// \file granularity.hpp
/// Which elements share a codebook: the whole tensor, one row (channel), or G consecutive elements of a row.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sqb {

struct Granularity {
  enum class Kind { tensor, channel, group };
  Kind kind = Kind::tensor;
  std::size_t group = 0;  ///< G for Kind::group, else 0

  /// Parses "tensor", "channel" or "group:G" (G >= 1). Throws Error naming the text and the valid forms.
  static Granularity parse(std::string_view text);
  std::string to_string() const;
  friend bool operator==(const Granularity&, const Granularity&) = default;
};

/// A contiguous run of a row-major tensor that shares one codebook.
struct Block {
  std::size_t offset = 0;  ///< flat index of the first element
  std::size_t length = 0;
};

/// The blocks of a rows x cols tensor in storage order. tensor: one block of rows*cols; channel: one per row;
/// group:G: ceil(cols/G) per row, the last one of each row shorter when G does not divide cols (groups never
/// span two rows). Throws Error if rows*cols == 0.
std::vector<Block> make_blocks(std::size_t rows, std::size_t cols, Granularity g);

}  // namespace sqb
