// Exactly optimal 1-D k-means (dynamic programming on the distinct values, weighted when the block has
// importance weights): the MSE floor every learned codebook is measured against.

#include <cstdio>
#include <string>

#include "detail/kmeans_dp.hpp"
#include "quantizers/quantizers.hpp"
#include "sqb/error.hpp"

namespace sqb::quantizers {

namespace {

std::string format_gib(double g) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", g);
  return buf;
}

// The sorted block with its prefix sums (about 40 bytes per value, 44 with weights) and the programme's
// working memory (kmeans_optimal_dp_bytes: about 72 per distinct value, whatever K).
constexpr double kSortedBytesPerValue = 44;

class KMeansOptimal final : public Quantizer, public LimitsBlocks {
 public:
  KMeansOptimal(std::size_t k, double max_table_gib, bool weighted)
      : Quantizer(k, learned_side(k), kSortedBytesPerValue + detail::kmeans_optimal_dp_bytes(1) / 2),
        k_(k),
        max_table_gib_(max_table_gib),
        weighted_(weighted) {}

  // Before any data is seen the distinct values can only be bounded by the block length.
  void check_block(std::size_t length) const override { check_distinct(length, length); }

  BlockDesign design(std::span<const float> block, const BlockInfo& info) const override {
    const detail::SortedBlock sorted(block, used_weights(weighted_, info.weights));
    BlockDesign d;
    if (const std::vector<double> exact = sorted.levels_if_few_distinct(k_); !exact.empty()) {
      d.codebook = Codebook::nearest(exact);
      return d;
    }
    check_distinct(block.size(), sorted.distinct_count());
    d.codebook = Codebook::nearest(detail::kmeans_optimal_dp(sorted, k_).centroids);
    return d;
  }

 private:
  void check_distinct(std::size_t length, std::size_t distinct) const {
    const double gib = detail::kmeans_optimal_dp_bytes(distinct) / (1u << 30);
    if (gib > max_table_gib_) {
      throw Error("kmeans_optimal: a block of " + std::to_string(length) + " values (" +
                  std::to_string(distinct) + " distinct) needs " + format_gib(gib) +
                  " GiB of working memory for the programme, above max_table_gib = " +
                  format_gib(max_table_gib_) + "; use a finer granularity or raise max_table_gib");
    }
  }

  std::size_t k_;
  double max_table_gib_;
  bool weighted_;
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
      weighted_param(),
  };
  return params;
}

std::unique_ptr<Quantizer> make_kmeans_optimal(const Params& p, const BuildContext& ctx) {
  return std::make_unique<KMeansOptimal>(ctx.k, p.real("max_table_gib"), p.integer("weighted") == 1);
}

}  // namespace sqb::quantizers
