// Exactly optimal 1-D k-means (dynamic programming): the MSE floor every learned codebook is measured
// against.

#include <cstdio>
#include <string>

#include "detail/kmeans_dp.hpp"
#include "quantizers/quantizers.hpp"
#include "sqb/error.hpp"

namespace sqb::quantizers {

namespace {

std::string format_gib(double g) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", g);
  return buf;
}

class KMeansOptimal final : public Quantizer, public LimitsBlocks {
 public:
  KMeansOptimal(std::size_t k, double max_table_gib)
      : Quantizer(k, learned_side(k), 44.0 + 4.0 * static_cast<double>(k)),  // see check_block
        k_(k),
        max_table_gib_(max_table_gib) {}

  // The K x (N+1) table of uint32 split points dominates (plus the sorted copy and prefix sums).
  void check_block(std::size_t length) const override {
    const double gib = static_cast<double>(k_) * static_cast<double>(length + 1) * 4.0 / (1u << 30);
    if (gib > max_table_gib_) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.3g", gib);
      throw Error("kmeans_optimal needs a " + std::string(buf) + " GiB split table for blocks of " +
                  std::to_string(length) + " values at K = " + std::to_string(k_) +
                  ", above its max_table_gib = " + format_gib(max_table_gib_) +
                  "; use a finer granularity, a smaller K or raise max_table_gib");
    }
  }

  BlockDesign design(std::span<const float> block, const BlockInfo&) const override {
    const detail::SortedBlock sorted(block);
    BlockDesign d;
    if (const std::vector<double> exact = sorted.levels_if_few_distinct(k_); !exact.empty()) {
      d.codebook = Codebook::nearest(exact);
      return d;
    }
    check_block(block.size());
    d.codebook = Codebook::nearest(detail::kmeans_optimal_dp(sorted, k_).centroids);
    return d;
  }

 private:
  std::size_t k_;
  double max_table_gib_;
};

}  // namespace

std::span<const ParamSpec> kmeans_optimal_params() {
  static const ParamSpec params[] = {
      {"max_table_gib",
       ParamSpec::Kind::real,
       "4",
       0,
       1024,
       true,
       {},
       "refuse blocks whose K x (N+1) table of split points would exceed this many GiB"},
  };
  return params;
}

std::unique_ptr<Quantizer> make_kmeans_optimal(const Params& p, const BuildContext& ctx) {
  return std::make_unique<KMeansOptimal>(ctx.k, p.real("max_table_gib"));
}

}  // namespace sqb::quantizers
