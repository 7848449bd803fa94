// The quantizer registry: the only place quantizer names are spelled.

#include "sqb/registry.hpp"

#include <string>

#include "quantizers/quantizers.hpp"

namespace sqb {

namespace {

using namespace quantizers;

// clang-format off
const QuantizerEntry kQuantizers[] = {
    {"cosine", "Cosine-spaced (Chebyshev node) codebook over [min, max] (seed 000 'Phi/Rho'); refine=R adds R Lloyd steps",
     cosine_params(), "K (equal when min == max)", false, make_cosine},
    {"kmeans", "1-D k-means (Lloyd), sorted O(K log N) or naive O(N K) iterations; the learned-codebook baseline",
     kmeans_params(), "K (the distinct values when there are fewer than K)", true, make_kmeans},
    {"lloyd_max", "Data-free Lloyd-Max (minimum-MSE) codebook of a law: gaussian (sigma from the block by default), sphere (rotated unit-vector coordinates, TurboQuant), laplace, student_t",
     lloyd_max_params(), "K = 2^b, b = 1..16 (symmetric about the centre; all equal when the block is constant)", false, make_lloyd_max},
    {"uniform", "K evenly spaced levels over [min, max], or symmetric absmax int-b grid (symmetric=1)",
     uniform_params(), "K; symmetric=1: 2*floor((K-1)/2)+1, e.g. 255 of 256 codes for int8", false, make_uniform},
};
// clang-format on

std::string valid_names() {
  std::string out;
  for (const QuantizerEntry& e : kQuantizers) {
    if (!out.empty()) out += ", ";
    out += e.name;
  }
  return out;
}

}  // namespace

std::span<const QuantizerEntry> quantizer_registry() {
  return kQuantizers;
}

const QuantizerEntry& find_quantizer(std::string_view name) {
  for (const QuantizerEntry& e : kQuantizers) {
    if (e.name == name) return e;
  }
  throw Error("unknown quantizer '" + std::string(name) + "'; valid quantizers: " + valid_names());
}

std::unique_ptr<Quantizer> make_quantizer(std::string_view spec, const BuildContext& ctx) {
  const SpecText text = SpecText::parse(spec, "quantizer");
  const QuantizerEntry& entry = find_quantizer(text.name);
  const Params params(entry.params, text.args, "quantizer \"" + text.canonical() + "\"");
  if (ctx.k < 1 || ctx.k > 65536) {
    throw Error("quantizer \"" + text.canonical() + "\": K = " + std::to_string(ctx.k) +
                " is outside 1..65536");
  }
  return entry.make(params, ctx);
}

}  // namespace sqb
