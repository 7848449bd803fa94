// The quantizer registry: the only place quantizer names are spelled.

#include "sqb/registry.hpp"

#include "sqb/codebook.hpp"

#include <string>

#include "quantizers/quantizers.hpp"

namespace sqb {

namespace {

using namespace quantizers;

// clang-format off
const QuantizerEntry kQuantizers[] = {
    {"cosine", "Cosine-spaced (Chebyshev node) codebook over [min, max] ('Phi/Rho'); refine=R adds R Lloyd steps",
     cosine_params(), "K (equal when min == max)", false, make_cosine},
    {"kmeans", "1-D k-means (Lloyd), sorted O(K log N) or naive O(N K) iterations; the learned-codebook baseline",
     kmeans_params(), "K (the distinct values when there are fewer than K)", true, make_kmeans},
    {"kmeans_optimal",
     "Exactly optimal 1-D k-means (dynamic programming on the distinct values by Lagrangian search, a few O(N) passes whatever K): the MSE floor for any K-level codebook",
     kmeans_optimal_params(), "K (the distinct values when there are fewer than K)", false, make_kmeans_optimal},
    {"phi_log", "Logarithmic ladder +-s*base^e, base phi by default ('GR-PHI'), base=2 is log2; log or nearest rounding, exponent sharing",
     phi_log_params(), "2M (+1 with zero=1) of K codes, M exponents = 2^(B-1) with bits=B (2^(B-1)-1 with zero=1: 2^B-1 levels, 1 code spare), e_max-e_min+1, else floor((K-zero)/2) (K even without zero=1); spare codes repeat the top level",
     false, make_phi_log},
    {"lloyd_max", "Data-free Lloyd-Max (minimum-MSE) codebook of a law: gaussian (sigma from the block by default), sphere (rotated unit-vector coordinates, TurboQuant), laplace, student_t",
     lloyd_max_params(), "K = 2^b, b = 1..16 (symmetric about the centre; all equal when the block is constant)", false, make_lloyd_max},
    {"uniform", "K evenly spaced levels over [min, max], or symmetric absmax int-b grid (symmetric=1)",
     uniform_params(), "K; symmetric=1: 2*floor((K-1)/2)+1, e.g. 255 of 256 codes for int8", false, make_uniform},
    {"nf4", "bitsandbytes NormalFloat4 (QLoRA): 16 levels built from N(0,1) quantiles, in [-1, 1], times a scale per block (granularity=group:64 = bitsandbytes' default)",
     nf4_params(), "16, K = 16 only (7 negative, 0, 8 positive: asymmetric)", false, make_nf4, /*mirror_symmetric=*/false},
    {"fp4", "FP4 E2M1 (OCP Microscaling v1.0) values +-{0, 0.5, 1, 1.5, 2, 3, 4, 6} / 6 times a float32 scale per block",
     fp4_params(), "16 codes, 15 distinct values (-0 and +0), K = 16 only", false, make_fp4},
    {"normal_quantile", "K levels Phi^-1((i + 1/2) / K): the middles of K equal-probability bins of N(0,1) (QLoRA's description), times a scale per block",
     normal_quantile_params(), "K (K >= 2; 0 is a level when K is odd)", false, make_normal_quantile},
    {"quantile", "K levels at the block's own empirical quantiles (i + 1/2) / K (numpy's 'linear' method): a learned codebook, optionally rescaled",
     quantile_params(), "K (fewer distinct when the block has ties or K > N)", false, make_quantile},
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
  if (ctx.k < 1 || ctx.k > kMaxCodes) {
    throw Error("quantizer \"" + text.canonical() + "\": K = " + std::to_string(ctx.k) + " is outside " +
                k_range());
  }
  return entry.make(params, ctx);
}

}  // namespace sqb
