#include "sqb/quantize.hpp"

#include <algorithm>

#include "sqb/error.hpp"

namespace sqb {

int TensorDesign::max_iterations() const {
  int m = 0;
  for (const BlockDesign& d : designs)
    m = std::max(m, d.iterations);
  return m;
}

std::size_t TensorDesign::converged_blocks() const {
  return static_cast<std::size_t>(
      std::count_if(designs.begin(), designs.end(), [](const BlockDesign& d) { return d.converged; }));
}

std::uint64_t block_seed(std::uint64_t seed, std::size_t block_index) {
  // SplitMix64 (Steele, Lea, Flood 2014) of the pair: well-mixed, so neighbouring blocks get unrelated
  // streams.
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (static_cast<std::uint64_t>(block_index) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

TensorDesign design_tensor(const Quantizer& q, const Tensor& t, Granularity g, std::uint64_t seed) {
  check_finite(t.values, "data", t.cols);
  TensorDesign d;
  d.rows = t.rows;
  d.cols = t.cols;
  d.granularity = g;
  d.blocks = make_blocks(t.rows, t.cols, g);
  d.code_count = q.code_count();
  d.side_floats_per_block = q.side_floats_per_block();
  d.designs.reserve(d.blocks.size());
  for (std::size_t i = 0; i < d.blocks.size(); ++i) {
    const Block& b = d.blocks[i];
    BlockDesign bd = q.design({t.values.data() + b.offset, b.length}, {i, block_seed(seed, i)});
    if (bd.codebook.size() != d.code_count) {
      throw std::logic_error("strategy designed " + std::to_string(bd.codebook.size()) +
                             " levels for K = " + std::to_string(d.code_count));
    }
    if (bd.side.empty() && d.side_floats_per_block == d.code_count) {
      bd.side.assign(bd.codebook.levels().begin(), bd.codebook.levels().end());
    }
    if (bd.side.size() != d.side_floats_per_block) {
      throw std::logic_error("strategy stored " + std::to_string(bd.side.size()) + " side values, declared " +
                             std::to_string(d.side_floats_per_block));
    }
    d.designs.push_back(std::move(bd));
  }
  return d;
}

void encode_tensor(const Quantizer& q, const Tensor& t, const TensorDesign& d, Codes& codes) {
  if (codes.size() != t.size() || codes.code_count() != d.code_count) {
    throw Error("encode_tensor: code buffer does not match the tensor");
  }
  codes.visit([&](auto out) {
    for (std::size_t i = 0; i < d.blocks.size(); ++i) {
      const Block& b = d.blocks[i];
      const std::span<const float> x{t.values.data() + b.offset, b.length};
      const auto c = out.subspan(b.offset, b.length);
      encode(d.designs[i].codebook, x, c);
      if (q.refines_codes()) q.refine_codes(x, d.designs[i].codebook, {b.offset, d.cols}, c);
    }
  });
}

void decode_tensor(const TensorDesign& d, const Codes& codes, std::span<float> out) {
  if (out.size() != codes.size()) throw Error("decode_tensor: output size does not match the codes");
  codes.visit([&](auto in) {
    for (std::size_t i = 0; i < d.blocks.size(); ++i) {
      const Block& b = d.blocks[i];
      decode(d.designs[i].codebook, in.subspan(b.offset, b.length), out.subspan(b.offset, b.length));
    }
  });
}

}  // namespace sqb
