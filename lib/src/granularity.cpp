#include "sqb/granularity.hpp"

#include "sqb/error.hpp"
#include "sqb/spec.hpp"

namespace sqb {

Granularity Granularity::parse(std::string_view text) {
  if (text == "tensor") return {Kind::tensor, 0};
  if (text == "channel") return {Kind::channel, 0};
  if (text.starts_with("group:")) {
    const auto g = parse_integer(text.substr(6));
    if (g && *g >= 1 && *g <= (std::int64_t{1} << 32)) return {Kind::group, static_cast<std::size_t>(*g)};
    throw Error("granularity '" + std::string(text) + "': G in group:G must be an integer >= 1");
  }
  throw Error("granularity '" + std::string(text) +
              "' is not valid; use tensor, channel or group:G (G >= 1)");
}

std::string Granularity::to_string() const {
  switch (kind) {
    case Kind::tensor:
      return "tensor";
    case Kind::channel:
      return "channel";
    case Kind::group:
      return "group:" + std::to_string(group);
  }
  return "?";
}

std::vector<Block> make_blocks(std::size_t rows, std::size_t cols, Granularity g) {
  if (rows == 0 || cols == 0) throw Error("cannot split an empty tensor into blocks");
  std::vector<Block> blocks;
  switch (g.kind) {
    case Granularity::Kind::tensor:
      blocks.push_back({0, rows * cols});
      break;
    case Granularity::Kind::channel:
      blocks.reserve(rows);
      for (std::size_t r = 0; r < rows; ++r)
        blocks.push_back({r * cols, cols});
      break;
    case Granularity::Kind::group: {
      const std::size_t per_row = (cols + g.group - 1) / g.group;
      blocks.reserve(rows * per_row);
      for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; c += g.group)
          blocks.push_back({r * cols + c, std::min(g.group, cols - c)});
      }
      break;
    }
  }
  return blocks;
}

}  // namespace sqb
