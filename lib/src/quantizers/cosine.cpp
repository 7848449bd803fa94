// Cosine-spaced (Chebyshev-node) codebook over the block's [min, max]: the "Phi/Rho" proposal for TorchAO's
// codebook quantization, with an optional Lloyd refinement (the seed's suggested hybrid).

#include <algorithm>

#include "detail/lloyd_1d.hpp"
#include "detail/reduce.hpp"
#include "quantizers/quantizers.hpp"
#include "sqb/error.hpp"

namespace sqb::quantizers {

namespace {

class Cosine final : public Quantizer, public DesignsWithoutData {
 public:
  // Without refinement the codebook is a fixed function of (min, max); refined levels must be stored.
  Cosine(std::size_t k, int refine)
      : Quantizer(k, refine == 0 ? SideValues{2, "min, max of the block"} : learned_side(k),
                  refine == 0 ? 0.0 : 4.0),  // refine: a 16-bit label per value plus the encoder's codes
        k_(k),
        refine_(refine) {}

  BlockDesign design(std::span<const float> block, const BlockInfo&) const override {
    const auto [lo, hi] = detail::min_max(block);
    std::vector<double> levels = detail::cosine_levels(lo, hi, k_);
    BlockDesign d;
    if (refine_ > 0) {
      // The seed's hybrid: R Lloyd steps of O(N) each (encode + average), no sort.
      const detail::LloydResult r = detail::lloyd_encoded(block, std::move(levels), {refine_, 0.0});
      levels = r.centroids;
      d.iterations = r.iterations;
    }
    d.codebook = Codebook::nearest(levels);
    if (refine_ == 0) d.side = {lo, hi};
    return d;
  }

  DataFreeCodebook data_free_codebook() const override {
    if (refine_ > 0) {
      throw Error(
          "cosine refine=" + std::to_string(refine_) +
          " is a learned codebook: its Lloyd steps move the levels to fit each block's data, so there is "
          "no codebook without data (refine=0 has one)");
    }
    DataFreeCodebook c;
    c.levels = detail::cosine_levels(-1.0, 1.0, k_);
    for (std::size_t i = 0; i + 1 < k_; ++i)
      c.boundaries.push_back(0.5 * (c.levels[i] + c.levels[i + 1]));
    c.scaled = true;
    c.applied_as = "mapped linearly onto the block's [min, max]";
    return c;
  }

 private:
  std::size_t k_;
  int refine_;
};

}  // namespace

std::span<const ParamSpec> cosine_params() {
  static const ParamSpec params[] = {
      {"refine",
       ParamSpec::Kind::integer,
       "0",
       0,
       100000,
       false,
       {},
       "Lloyd steps run from the cosine codebook (0 = the pure deterministic codebook)"},
  };
  return params;
}

std::unique_ptr<Quantizer> make_cosine(const Params& p, const BuildContext& ctx) {
  return std::make_unique<Cosine>(ctx.k, static_cast<int>(p.integer("refine")));
}

}  // namespace sqb::quantizers
