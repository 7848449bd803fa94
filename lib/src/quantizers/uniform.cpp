// Evenly spaced levels: over [min, max] of the block, or symmetric absmax int-b style.

#include <algorithm>
#include <cmath>

#include "detail/reduce.hpp"
#include "quantizers/quantizers.hpp"
#include "sqb/registry.hpp"

namespace sqb::quantizers {

namespace {

class Uniform final : public Quantizer {
 public:
  Uniform(std::size_t k, bool symmetric) : k_(k), symmetric_(symmetric) {}
  std::size_t code_count() const override { return k_; }
  std::size_t side_floats_per_block() const override { return symmetric_ ? 1 : 2; }
  std::string side_description() const override {
    return symmetric_ ? "absmax of the block" : "min, max of the block";
  }

  BlockDesign design(std::span<const float> block, const BlockInfo&) const override {
    std::vector<double> levels(k_);
    std::vector<float> side;
    if (symmetric_) {
      // int-b style: q = floor((K-1)/2); levels j * absmax / q for j = -q..q (2q+1 of them, 0 exact). For
      // K = 2^b this is the restricted-range signed integer grid (-127..127 for int8); the remaining code is
      // unused and repeats the top level.
      const float absmax_f = detail::abs_max(block);
      const double absmax = absmax_f;
      side = {absmax_f};
      const std::size_t q = (k_ - 1) / 2;
      for (std::size_t i = 0; i < k_; ++i) {
        const double j = static_cast<double>(std::min(i, 2 * q)) - static_cast<double>(q);
        levels[i] = absmax * j / static_cast<double>(q);
      }
    } else {
      const auto [lo, hi] = detail::min_max(block);
      const double a = lo, b = hi;
      side = {lo, hi};
      if (k_ == 1) {
        levels[0] = 0.5 * (a + b);
      } else {
        for (std::size_t i = 0; i < k_; ++i) {
          levels[i] = a + (b - a) * static_cast<double>(i) / static_cast<double>(k_ - 1);
        }
      }
    }
    return {Codebook::nearest(levels), 0, true, std::move(side)};
  }

 private:
  std::size_t k_;
  bool symmetric_;
};

}  // namespace

std::span<const ParamSpec> uniform_params() {
  static const ParamSpec params[] = {
      {"symmetric",
       ParamSpec::Kind::integer,
       "0",
       0,
       1,
       false,
       {},
       "1 = absmax int-b grid: 2*floor((K-1)/2)+1 levels j*absmax/q, zero exact (needs K >= 3)"},
  };
  return params;
}

std::unique_ptr<Quantizer> make_uniform(const Params& p, const BuildContext& ctx) {
  const bool symmetric = p.integer("symmetric") == 1;
  if (symmetric && ctx.k < 3) {
    throw NotApplicable(p.context() + ": symmetric=1 needs K >= 3 (an int-b grid with b >= 2), not K = " +
                        std::to_string(ctx.k));
  }
  return std::make_unique<Uniform>(ctx.k, symmetric);
}

}  // namespace sqb::quantizers
