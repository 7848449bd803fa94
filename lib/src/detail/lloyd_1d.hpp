#pragma once
// 1-D k-means (Lloyd) machinery shared by the kmeans and cosine strategies. Private to the library.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace sqb::detail {

/// One block sorted ascending, optionally with a non-negative weight per element, and prefix sums of the
/// (weighted) centred values so any cluster's weight, sum and sum of squares cost O(1). Centring by the
/// block's (weighted) mean keeps the prefix sums small: a cluster sum is a difference of two prefix sums, and
/// with uncentred data of mean m the cancellation would cost log10(m * N / cluster_sum) digits.
///
/// Weights: the objective of everything built on a weighted block is sum_i w_i (x_i - c(x_i))^2.
/// - `weights` is empty (every weight 1) or holds one finite weight >= 0 per value; otherwise sqb::Error
///   names the size mismatch or the first bad index.
/// - Elements of weight 0 cannot change any weighted cost, so the block drops them: values(), size() and
///   every position below refer to the elements of positive weight only. A codebook built on the block
///   still encodes a dropped element (to its nearest level); it just does not pull any level.
/// - When every weight is 0 every codebook has weighted SSE 0; the block then ignores the weights (it is
///   the unweighted block of all the values), so its codebooks stay useful.
/// Values and weights are sorted together (ties in value by weight), so the result does not depend on the
/// order of the input.
/// The positive-weight elements of (values, weights), or nothing when the weights are to be ignored (empty,
/// or all 0: every codebook then has weighted SSE 0, and the unweighted block is the useful one). Throws
/// Error for a length mismatch or a negative or non-finite weight, naming it.
struct WeightedElements {
  bool weighted = false;
  std::vector<float> values, weights;
};
WeightedElements positive_weight_elements(std::span<const float> values, std::span<const float> weights);

class SortedBlock {
 public:
  explicit SortedBlock(std::span<const float> values, std::span<const float> weights = {});

  /// Whether weights are in use (false for an empty or all-zero `weights`).
  bool weighted() const { return !w_.empty(); }
  std::size_t size() const { return v_.size(); }
  std::span<const float> values() const { return v_; }
  /// The weights aligned with values() (all > 0); empty when not weighted().
  std::span<const float> weights() const { return w_; }
  /// Number of distinct values in values().
  std::size_t distinct_count() const { return distinct_; }
  float min() const { return v_.front(); }
  float max() const { return v_.back(); }
  double shift() const { return shift_; }
  /// Total weight of sorted positions [lo, hi) (hi - lo when not weighted()).
  double weight(std::size_t lo, std::size_t hi) const {
    return w_.empty() ? static_cast<double>(hi - lo) : ws_[hi] - ws_[lo];
  }
  double total_weight() const { return weight(0, size()); }
  /// Sum of w (x - shift) and of w (x - shift)^2 over sorted positions [lo, hi).
  double sum(std::size_t lo, std::size_t hi) const { return s_[hi] - s_[lo]; }
  double sum_sq(std::size_t lo, std::size_t hi) const { return s2_[hi] - s2_[lo]; }
  /// Whether shift + sum(lo, hi) / weight(lo, hi) is within about 1e-7 of the cluster's largest |value|. The
  /// difference of two prefix sums carries the rounding of every partial sum between them (at most
  /// eps * sum |s_i|); when the block spans many orders of magnitude (zeros next to 1e31), or tiny weights
  /// follow huge ones, that swamps a cluster, and the cluster must be summed directly.
  bool sum_is_accurate(std::size_t lo, std::size_t hi) const;
  /// Number of values <= t.
  std::size_t count_at_or_below(double t) const;
  /// With at most k distinct values the optimal k-level codebook is exact (SSE 0): those values, the last
  /// repeated up to k levels. Returns that codebook, or an empty vector when there are more than k distinct
  /// values.
  std::vector<double> levels_if_few_distinct(std::size_t k) const;

 private:
  std::vector<float> v_, w_;
  std::vector<double> s_, s2_;
  std::vector<double> abs_s_;   // prefix sums of |s_i|: the rounding-error bound of sum()
  std::vector<double> ws_;      // prefix sums of the weights (weighted only)
  std::vector<double> abs_ws_;  // prefix sums of ws_i: the rounding-error bound of weight()
  double shift_ = 0;
  std::size_t distinct_ = 0;
};

struct LloydOptions {
  int max_iter = 300;
  /// Stop when (SSE_prev - SSE) / SSE_prev <= tol. tol <= 0 disables this test (tol = 0 runs to the exact
  /// fixed point); the run always stops at a fixed point (assignment unchanged) or a zero SSE.
  double tol = 1e-6;
};

struct LloydResult {
  std::vector<double> centroids;  ///< sorted ascending
  int iterations = 0;             ///< update steps performed
  bool converged = false;         ///< stopped by tol or a fixed point, not by max_iter
  double sse = 0;                 ///< (weighted) sum of squared errors after the last update
};

// The three Lloyd variants minimise sum_i w_i (x_i - c(x_i))^2 (w_i = 1 without weights): each update moves
// a centroid to the weighted mean of its cluster, clamped to the cluster's range. Weights follow the rules of
// SortedBlock: `weights` is empty or one finite weight >= 0 per value (sqb::Error otherwise); elements of
// weight 0 are left out (they cannot pull a centroid, so they are no cluster's members and never re-seed
// one); all weights 0 means unweighted. A cluster without members (of positive weight) keeps its centroid
// unless the empty-cluster rule re-seeds it. Without weights the results are those of the unweighted code
// bit for bit.

/// Lloyd's algorithm on sorted data: each iteration finds the K-1 cluster boundaries by binary search on the
/// midpoints (O(K log N)) and updates centroids from prefix sums (O(K)). Same iterates as lloyd_naive on the
/// same values and weights. `init` holds K >= 1 sorted centroids.
LloydResult lloyd_sorted(const SortedBlock& data, std::vector<double> init, const LloydOptions& opt);

/// Lloyd's algorithm as scikit-learn/TorchAO run it: every iteration computes the distance of every value to
/// every centroid (O(N K)), assigns the nearest (ties to the lower centroid) and averages.
LloydResult lloyd_naive(std::span<const float> data, std::vector<double> init, const LloydOptions& opt,
                        std::span<const float> weights = {});

/// Lloyd steps without sorting, as the Phi/Rho cosine-codebook proposal does for its hybrid: each step
/// assigns every value with the shared encoder (thresholds at the midpoints of the current float32 levels,
/// O(N log K)) and averages per level in one pass (O(N)). Empty clusters are re-seeded by the same rule as
/// the other two. Cheaper than lloyd_sorted for a few steps (no O(N log N) sort); the iterates differ from it
/// only by the float32 rounding of the levels.
LloydResult lloyd_encoded(std::span<const float> data, std::vector<double> init, const LloydOptions& opt,
                          std::span<const float> weights = {});

/// Cosine-spaced (Chebyshev) levels: center + half_span * cos((2k-1) pi / (2K)), k = 1..K, over [lo, hi],
/// ascending (as the Phi/Rho proposal assumes).
std::vector<double> cosine_levels(double lo, double hi, std::size_t k);

// Initialisations, all computed on the sorted block (for a weighted block: on its values of positive weight)
// and deterministic. K <= number of distinct values.
std::vector<double> init_uniform(const SortedBlock& d, std::size_t k);  ///< K evenly spaced over [min, max]
/// The values at cumulative weight (j + 1/2) W / K, j = 0..K-1 (without weights: at ranks (j + 1/2) N / K).
std::vector<double> init_quantile(const SortedBlock& d, std::size_t k);
std::vector<double> init_cosine(const SortedBlock& d, std::size_t k);  ///< cosine_levels(min, max, K)
/// Farthest-point ("greedy", AQLM/TorchAO): the first centre is `first` (the block's first element), then
/// repeatedly the value farthest from every chosen centre; ties go to the smaller value. O(N log N + K log
/// N). Weights play no part (a distance rule); on a weighted block it runs on the values of positive weight.
std::vector<double> init_greedy(const SortedBlock& d, float first, std::size_t k);
/// O(N K) reference implementation of init_greedy on unsorted data (for tests).
std::vector<double> init_greedy_reference(std::span<const float> data, std::size_t k);
/// k-means++ (Arthur & Vassilvitskii 2007): D^2 sampling from a Boost mt19937_64 seeded with `seed`, over the
/// sorted values; on a weighted block the first centre is drawn with probability proportional to w and the
/// others to w * D^2 (weighted D^2 sampling). A segment tree of the sampling masses makes each draw
/// O(log N), and adding a centre only touches the values whose nearest centre changes.
std::vector<double> init_kmeanspp(const SortedBlock& d, std::size_t k, std::uint64_t seed);

}  // namespace sqb::detail
