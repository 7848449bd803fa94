// Exactly optimal 1-D k-means (dynamic programming on the distinct values, weighted when the block has
// importance weights): the MSE floor every learned codebook is measured against.

#include <algorithm>
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
  KMeansOptimal(std::size_t k, double max_table_gib, bool weighted, std::size_t sketch)
      : Quantizer(k, learned_side(k), kSortedBytesPerValue + detail::kmeans_optimal_dp_bytes(1) / 2),
        k_(k),
        max_table_gib_(max_table_gib),
        weighted_(weighted),
        sketch_(sketch) {
    if (sketch_ != 0 && sketch_ < 2 * k_) {
      throw Error("kmeans_optimal: sketch = " + std::to_string(sketch_) + " for K = " + std::to_string(k_) +
                  "; sketch must be 0 (exact) or at least 2 K = " + std::to_string(2 * k_));
    }
  }

  // Before any data is seen the distinct values can only be bounded by the block length. The sketch's
  // programme runs on at most 2 x `sketch` groups (or on the distinct values when there are fewer).
  void check_block(std::size_t length) const override {
    check_distinct(length, sketch_ ? std::min(length, 2 * sketch_) : length);
  }

  BlockDesign design(std::span<const float> block, const BlockInfo& info) const override {
    // Exact (sketch = 0): every run of equal values is a group, which gives the same levels, bit for bit, as
    // kmeans_optimal_dp on the block's SortedBlock without building its prefix arrays over every position.
    const std::size_t runs = sketch_ != 0 ? sketch_ : std::max(block.size(), 2 * k_);
    const std::span<const float> weights = used_weights(weighted_, info.weights);
    BlockDesign d;
    if (runs >= block.size() && block.size() <= detail::kTinyBlock && k_ <= detail::kTinyBlock) {
      // Small blocks (groups of 64), weighted or not: the same search on stack buffers, with a scan of its
      // own for unweighted blocks (an optimum; the same levels bit for bit unless optima tie; see
      // kmeans_tiny). The guard captures two words, so std::function keeps it without allocating.
      const auto tiny_guard = [this, n = block.size()](std::size_t distinct) { check_distinct(n, distinct); };
      double levels[detail::kTinyBlock];
      detail::kmeans_tiny(block, weights, k_, std::span<double>(levels, k_), tiny_guard);
      d.codebook = Codebook::nearest(std::span<const double>(levels, k_));
      return d;
    }
    const auto guard = [&](std::size_t distinct) {
      check_distinct(block.size(), std::min(distinct, sketch_ ? 2 * runs : distinct));
    };
    d.codebook = Codebook::nearest(detail::kmeans_sketch(block, weights, k_, runs, guard).centroids);
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
  std::size_t sketch_;
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
      {"sketch",
       ParamSpec::Kind::integer,
       "0",
       0,
       1e9,
       false,
       {},
       "0: the exact optimum. S >= 2K: near-optimal, for large blocks: the exact programme over S to 2S "
       "groups "
       "of consecutive sorted values (whole runs of equal values; a group also ends where its values span "
       "1/S of the block's range), levels the exact means of the clusters found; MSE 1.00001x the optimum at "
       "S = 4096, K = 16 on 1e6 N(0,1) values, 1.001x at K = 256, in about a tenth of the exact time (the "
       "exact optimum when the block has at most S distinct values)"},
  };
  return params;
}

std::unique_ptr<Quantizer> make_kmeans_optimal(const Params& p, const BuildContext& ctx) {
  return std::make_unique<KMeansOptimal>(ctx.k, p.real("max_table_gib"), p.integer("weighted") == 1,
                                         static_cast<std::size_t>(p.integer("sketch")));
}

}  // namespace sqb::quantizers
