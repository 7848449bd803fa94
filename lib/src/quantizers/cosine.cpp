// Cosine-spaced (Chebyshev-node) codebook over the block's [min, max]: the "Phi/Rho" proposal of seed 000,
// with an optional Lloyd refinement (the seed's suggested hybrid).

#include <algorithm>

#include "detail/lloyd_1d.hpp"
#include "detail/reduce.hpp"
#include "quantizers/quantizers.hpp"

namespace sqb::quantizers {

namespace {

class Cosine final : public Quantizer {
 public:
  Cosine(std::size_t k, int refine) : k_(k), refine_(refine) {}
  std::size_t code_count() const override { return k_; }
  // Without refinement the codebook is a fixed function of (min, max); refined levels must be stored.
  std::size_t side_floats_per_block() const override { return refine_ == 0 ? 2 : k_; }
  std::string side_description() const override {
    return refine_ == 0 ? "min, max of the block" : Quantizer::side_description();
  }

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
