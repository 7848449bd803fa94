// Exactly optimal 1-D k-means (dynamic programming): the MSE floor every learned codebook is measured
// against.

#include <string>

#include "detail/kmeans_dp.hpp"
#include "quantizers/quantizers.hpp"
#include "sqb/error.hpp"

namespace sqb::quantizers {

namespace {

class KMeansOptimal final : public Quantizer {
 public:
  KMeansOptimal(std::size_t k, double max_table_gib) : k_(k), max_table_gib_(max_table_gib) {}
  std::size_t code_count() const override { return k_; }
  std::size_t side_floats_per_block() const override { return k_; }

  BlockDesign design(std::span<const float> block, const BlockInfo&) const override {
    const detail::SortedBlock sorted(block);
    BlockDesign d;
    if (const std::vector<double> exact = sorted.levels_if_few_distinct(k_); !exact.empty()) {
      d.codebook = Codebook::nearest(exact);
      return d;
    }
    const double gib = detail::kmeans_optimal_dp_bytes(sorted.distinct_count()) / (1u << 30);
    if (gib > max_table_gib_) {
      throw Error("kmeans_optimal: a block of " + std::to_string(block.size()) + " values (" +
                  std::to_string(sorted.distinct_count()) + " distinct) needs " + std::to_string(gib) +
                  " GiB of working memory for the programme, above max_table_gib = " +
                  std::to_string(max_table_gib_) + "; use a finer granularity or raise max_table_gib");
    }
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
       "refuse blocks whose programme would need more than this many GiB of working memory (about 72 bytes "
       "per distinct value, whatever K)"},
  };
  return params;
}

std::unique_ptr<Quantizer> make_kmeans_optimal(const Params& p, const BuildContext& ctx) {
  return std::make_unique<KMeansOptimal>(ctx.k, p.real("max_table_gib"));
}

}  // namespace sqb::quantizers
