// 1-D k-means (Lloyd's algorithm): the learned-codebook baseline.

#include <algorithm>

#include "detail/lloyd_1d.hpp"
#include "quantizers/quantizers.hpp"

namespace sqb::quantizers {

namespace {

// The block's first element, as TorchAO's greedy start takes it; with weights the first one that counts (a
// zero-weight value is not part of the weighted block).
float first_weighted(std::span<const float> block, std::span<const float> weights) {
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] > 0) return block[i];
  }
  return block.front();
}

enum class Init { kmeanspp, greedy, uniform, quantile, cosine };
enum class Algo { sorted, naive };

class KMeans final : public Quantizer {
 public:
  KMeans(std::size_t k, Init init, Algo algo, detail::LloydOptions opt, bool fixed_seed, std::uint64_t seed,
         bool weighted)
      // A sorted copy (4 B), three prefix sums (24), k-means++'s segment tree (up to 32), naive's labels (4).
      : Quantizer(k, learned_side(k), 64),
        k_(k),
        init_(init),
        algo_(algo),
        opt_(opt),
        fixed_seed_(fixed_seed),
        seed_(seed),
        weighted_(weighted) {}

  BlockDesign design(std::span<const float> block, const BlockInfo& info_in) const override {
    BlockInfo info = info_in;
    info.weights = used_weights(weighted_, info.weights);
    // Every initialisation works on a sorted copy (also for algo=naive, whose timing therefore includes one
    // O(N log N) sort; its O(N K) iterations dominate).
    // Importance weights (when given) enter every step: weighted prefix sums, weighted k-means++ (w D^2),
    // weighted means; a zero-weight value is assigned but pulls no level.
    const detail::SortedBlock sorted(block, info.weights);
    BlockDesign d;
    if (const std::vector<double> exact = sorted.levels_if_few_distinct(k_); !exact.empty()) {
      d.codebook = Codebook::nearest(exact);
      return d;
    }
    std::vector<double> init;
    switch (init_) {
      case Init::kmeanspp:
        init = detail::init_kmeanspp(sorted, k_, fixed_seed_ ? block_seed(seed_, info.index) : info.seed);
        break;
      case Init::greedy:
        init = detail::init_greedy(sorted, first_weighted(block, info.weights), k_);
        break;
      case Init::uniform:
        init = detail::init_uniform(sorted, k_);
        break;
      case Init::quantile:
        init = detail::init_quantile(sorted, k_);
        break;
      case Init::cosine:
        init = detail::init_cosine(sorted, k_);
        break;
    }
    const detail::LloydResult r = algo_ == Algo::sorted
                                      ? detail::lloyd_sorted(sorted, std::move(init), opt_)
                                      : detail::lloyd_naive(block, std::move(init), opt_, info.weights);
    d.codebook = Codebook::nearest(r.centroids);
    d.iterations = r.iterations;
    d.converged = r.converged;
    return d;
  }

 private:
  std::size_t k_;
  Init init_;
  Algo algo_;
  detail::LloydOptions opt_;
  bool fixed_seed_;
  std::uint64_t seed_;
  bool weighted_;
};

}  // namespace

std::span<const ParamSpec> kmeans_params() {
  static const ParamSpec params[] = {
      {"init",
       ParamSpec::Kind::choice,
       "kmeans++",
       0,
       0,
       false,
       {"kmeans++", "greedy", "uniform", "quantile", "cosine"},
       "initial centroids: k-means++ (seeded D^2 sampling), greedy (farthest point from the first element, "
       "as "
       "TorchAO/AQLM), uniform over [min,max], empirical quantiles, cosine nodes"},
      {"max_iter", ParamSpec::Kind::integer, "300", 0, 1e9, false, {}, "maximum Lloyd iterations"},
      {"tol",
       ParamSpec::Kind::real,
       "1e-6",
       0,
       1,
       false,
       {},
       "stop when the relative decrease of the MSE is <= tol; tol=0 runs to the exact fixed point "
       "(assignment unchanged)"},
      {"algo",
       ParamSpec::Kind::choice,
       "sorted",
       0,
       0,
       false,
       {"sorted", "naive"},
       "sorted: prefix sums + binary-searched boundaries, O(K log N) per iteration; naive: O(N K) distances"},
      {"seed",
       ParamSpec::Kind::integer,
       "",
       0,
       9e18,
       false,
       {},
       "k-means++ seed, mixed with the block index (default: the cell's seed)"},
      weighted_param(),
  };
  return params;
}

std::unique_ptr<Quantizer> make_kmeans(const Params& p, const BuildContext& ctx) {
  const std::string& i = p.text("init");
  const Init init = i == "kmeans++"   ? Init::kmeanspp
                    : i == "greedy"   ? Init::greedy
                    : i == "uniform"  ? Init::uniform
                    : i == "quantile" ? Init::quantile
                                      : Init::cosine;
  const Algo algo = p.is("algo", "naive") ? Algo::naive : Algo::sorted;
  const detail::LloydOptions opt{static_cast<int>(p.integer("max_iter")), p.real("tol")};
  const bool fixed_seed = p.has("seed");
  const std::uint64_t seed = fixed_seed ? static_cast<std::uint64_t>(p.integer("seed")) : ctx.seed;
  return std::make_unique<KMeans>(ctx.k, init, algo, opt, fixed_seed, seed, p.integer("weighted") == 1);
}

}  // namespace sqb::quantizers
