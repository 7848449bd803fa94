// Evenly spaced levels: over [min, max] of the block, or symmetric absmax int-b style.

#include <algorithm>
#include <cmath>

#include "detail/reduce.hpp"
#include "quantizers/quantizers.hpp"

namespace sqb::quantizers {

namespace {

class Uniform final : public Quantizer, public DesignsWithoutData {
 public:
  Uniform(std::size_t k, bool symmetric)
      : Quantizer(k,
                  symmetric ? SideValues{1, "absmax of the block"} : SideValues{2, "min, max of the block"}),
        k_(k),
        symmetric_(symmetric) {}

  BlockDesign design(std::span<const float> block, const BlockInfo&) const override {
    // Each level computed in double, then rounded to float32 (what Codebook::nearest of doubles does).
    // Levels on the stack up to K = 32 (a block of a group of 64 then allocates nothing).
    SmallFloats<32> levels;
    levels.resize(k_);
    SmallFloats<2> side;
    if (symmetric_) {
      // int-b style: q = floor((K-1)/2); levels j * absmax / q for j = -q..q (2q+1 of them, 0 exact). For
      // K = 2^b this is the restricted-range signed integer grid (-127..127 for int8); the remaining code is
      // unused and repeats the top level.
      const float absmax_f = detail::abs_max(block);
      const double absmax = absmax_f;
      side = {absmax_f};
      const std::size_t q = (k_ - 1) / 2;
      const double qd = static_cast<double>(q);
      // Level q + m for m = 0..q; level q - m is its negation bit for bit (a product, a quotient and the
      // rounding to float32 are all odd functions), so half the divisions do (a group of 64 designs one
      // codebook per 64 values, and these divisions were a tenth of its time). -0.0 for m < 0 when absmax
      // is 0, as absmax * j / q gives it.
      levels[q] = static_cast<float>(absmax * 0.0 / qd);
      for (std::size_t m = 1; m <= q; ++m) {
        const float v = static_cast<float>(absmax * static_cast<double>(m) / qd);
        levels[q + m] = v;
        levels[q - m] = -v;
      }
      for (std::size_t i = 2 * q + 1; i < k_; ++i)
        levels[i] = levels[2 * q];
    } else {
      const auto [lo, hi] = detail::min_max(block);
      const double a = lo, b = hi;
      side = {lo, hi};
      if (k_ == 1) {
        levels[0] = static_cast<float>(0.5 * (a + b));
      } else {
        for (std::size_t i = 0; i < k_; ++i) {
          levels[i] = static_cast<float>(a + (b - a) * static_cast<double>(i) / static_cast<double>(k_ - 1));
        }
      }
    }
    BlockDesign d{Codebook::nearest(std::span<const float>(levels.data(), levels.size())), 0, true, {}};
    d.side.assign(side.begin(), side.end());
    return d;
  }

  // The levels for a block spanning [-1, 1] (symmetric: absmax 1).
  DataFreeCodebook data_free_codebook() const override {
    const BlockDesign d = design(std::vector<float>{-1.0f, 1.0f}, {});
    DataFreeCodebook c;
    c.levels.assign(d.codebook.levels().begin(), d.codebook.levels().end());
    for (std::size_t i = 0; i + 1 < c.levels.size(); ++i)
      c.boundaries.push_back(0.5 * (c.levels[i] + c.levels[i + 1]));
    c.scaled = true;
    c.applied_as =
        symmetric_ ? "times the block's max |w| (absmax)" : "mapped linearly onto the block's [min, max]";
    return c;
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
