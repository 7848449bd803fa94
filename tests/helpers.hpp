#pragma once
// Small shared helpers for the tests.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sqb/columns.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "sqb/tensor.hpp"

namespace sqbtest {

/// Every registered quantizer's name, in registry order (for GENERATE over the registry).
inline std::vector<std::string> registry_names() {
  std::vector<std::string> names;
  for (const auto& e : sqb::quantizer_registry())
    names.emplace_back(e.name);
  return names;
}

/// n draws of a registered source (e.g. "gaussian"), seeded.
inline std::vector<float> draw(const std::string& spec, std::size_t n, std::uint64_t seed) {
  return sqb::make_source(spec)->draw(n, seed).values;
}

inline sqb::Tensor tensor(std::size_t rows, std::size_t cols, std::uint64_t seed = 1) {
  return sqb::Tensor(rows, cols, draw("gaussian", rows * cols, seed));
}

/// One sqb::quantize result, with the quantizer it was built from and the strategy's figures by name.
struct Run : sqb::Quantized {
  std::unique_ptr<sqb::Quantizer> q;
  std::map<std::string, double> extra;  ///< figures by column name
};

/// The library's one call, as a sweep cell makes it.
inline Run quantize(const std::string& spec, std::size_t k, const sqb::Tensor& t,
                    const std::string& granularity = "tensor", std::uint64_t seed = 0) {
  Run r;
  r.q = sqb::make_quantizer(spec, {k, seed});
  sqb::QuantizeOptions opt;
  opt.granularity = sqb::Granularity::parse(granularity);
  opt.seed = seed;
  static_cast<sqb::Quantized&>(r) = sqb::quantize(t, *r.q, opt);
  for (const sqb::Figure& f : r.figures)
    r.extra[std::string(sqb::column_name(f.column))] = f.value;
  return r;
}

/// A reconstruction (sqb::Buffer) as a plain vector, to compare with one.
inline std::vector<float> vec(std::span<const float> v) {
  return {v.begin(), v.end()};
}

/// Encodes `x` (rows x cols like r) with r's codebooks, block by block — the shared encoder and, when q has
/// one, its code refinement, as the pipeline's encode stage does — and decodes it again.
inline std::vector<float> reencode(const sqb::Quantized& r, const sqb::Quantizer& q,
                                   std::span<const float> x) {
  std::vector<std::uint16_t> codes(x.size());
  std::vector<float> out(x.size());
  for (std::size_t b = 0; b < r.blocks.size(); ++b) {
    const sqb::Block& blk = r.blocks[b];
    const auto xs = x.subspan(blk.offset, blk.length);
    const auto cs = std::span<std::uint16_t>(codes).subspan(blk.offset, blk.length);
    sqb::encode(r.designs[b].codebook, xs, cs);
    if (const auto* refiner = sqb::part_of<sqb::RefinesCodes>(q))
      refiner->refine_codes(xs, r.designs[b].codebook, {blk.offset, r.cols}, sqb::CodeSpan(cs));
    sqb::decode(r.designs[b].codebook, std::span<const std::uint16_t>(cs),
                std::span<float>(out).subspan(blk.offset, blk.length));
  }
  return out;
}

}  // namespace sqbtest
