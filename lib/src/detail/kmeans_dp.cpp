#include "detail/kmeans_dp.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace sqb::detail {

namespace {

// SSE of sorted positions [j, i) about their mean. The prefix sums are of values centred on the block mean,
// so the difference of squares loses at most log10(offset^2 / spread^2) digits for a cluster far from the
// centre (about 5 of 16 for the outermost of 256 Gaussian clusters) — far below what could change an optimal
// split.
double cost(const SortedBlock& d, std::size_t j, std::size_t i) {
  if (i <= j + 1) return 0.0;
  const double n = static_cast<double>(i - j);
  const double s = d.sum(j, i);
  return std::max(0.0, d.sum_sq(j, i) - s * s / n);
}

OptimalClustering finish(const SortedBlock& d, std::size_t k, const std::vector<std::uint32_t>& split,
                         double sse) {
  const std::size_t n = d.size();
  OptimalClustering r;
  r.sse = sse;
  r.bounds.assign(k + 1, 0);
  r.bounds[k] = n;
  std::size_t i = n;
  for (std::size_t layer = k; layer >= 1; --layer) {
    const std::size_t j = layer == 1 ? 0 : split[(layer - 1) * (n + 1) + i];
    r.bounds[layer - 1] = j;
    i = j;
  }
  // Each level is its cluster's mean summed directly (O(N) in all) and clamped to the cluster's range: with
  // data spanning dozens of orders of magnitude a prefix-sum difference can lose a small cluster entirely
  // (found by fuzzing), and the levels must stay sorted.
  const auto v = d.values();
  for (std::size_t c = 0; c < k; ++c) {
    const std::size_t lo = r.bounds[c], hi = r.bounds[c + 1];
    double sum = 0;
    for (std::size_t m = lo; m < hi; ++m)
      sum += v[m];
    r.centroids.push_back(std::clamp(sum / static_cast<double>(hi - lo), static_cast<double>(v[lo]),
                                     static_cast<double>(v[hi - 1])));
  }
  return r;
}

// The layered DP both solvers share: cost[layer][i] is the least SSE of the first i sorted values in
// layer + 1 clusters. Layer 0 is one cluster; `solve_layer(layer, prev, cur, split_row)` fills cur[i] (all
// +inf on entry) from prev (the layer below) and split_row[i], the start of the last cluster, for each
// reachable i. The split table is K x (N+1) (layer 0's row unused) and read back by `finish`.
template <class SolveLayer>
OptimalClustering layered_dp(const SortedBlock& d, std::size_t k, SolveLayer&& solve_layer) {
  const std::size_t n = d.size();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> prev(n + 1, inf), cur(n + 1, inf);
  std::vector<std::uint32_t> split(k * (n + 1), 0);
  for (std::size_t i = 1; i <= n; ++i)
    prev[i] = cost(d, 0, i);
  prev[0] = 0;
  for (std::size_t layer = 1; layer < k; ++layer) {
    std::fill(cur.begin(), cur.end(), inf);
    solve_layer(layer, prev, cur, split.data() + layer * (n + 1));
    std::swap(prev, cur);
  }
  return finish(d, k, split, prev[n]);
}

}  // namespace

OptimalClustering kmeans_optimal_dp(const SortedBlock& d, std::size_t k) {
  const std::size_t n = d.size();
  // Solve cur[i] for i in [lo, hi] knowing the optimal split lies in [jlo, jhi] (divide and conquer: the
  // smallest optimal j is kept, which keeps opt(i) monotone). An explicit stack replaces the recursion.
  struct Range {
    std::size_t lo, hi, jlo, jhi;
  };
  std::vector<Range> stack;
  return layered_dp(
      d, k,
      [&](std::size_t layer, const std::vector<double>& prev, std::vector<double>& cur, std::uint32_t* sp) {
        stack.assign(1, Range{layer + 1, n, layer, n - 1});
        while (!stack.empty()) {
          const Range r = stack.back();
          stack.pop_back();
          if (r.lo > r.hi) continue;
          const std::size_t mid = r.lo + (r.hi - r.lo) / 2;
          double best = std::numeric_limits<double>::infinity();
          std::size_t best_j = r.jlo;
          const std::size_t jend = std::min(r.jhi, mid - 1);
          for (std::size_t j = r.jlo; j <= jend; ++j) {
            const double v = prev[j] + cost(d, j, mid);
            if (v < best) {
              best = v;
              best_j = j;
            }
          }
          cur[mid] = best;
          sp[mid] = static_cast<std::uint32_t>(best_j);
          if (mid > r.lo) stack.push_back({r.lo, mid - 1, r.jlo, best_j});
          if (mid < r.hi) stack.push_back({mid + 1, r.hi, best_j, r.jhi});
        }
      });
}

OptimalClustering kmeans_optimal_reference(const SortedBlock& d, std::size_t k) {
  const std::size_t n = d.size();
  // Every split j of every i, O(K N^2).
  return layered_dp(
      d, k,
      [&](std::size_t layer, const std::vector<double>& prev, std::vector<double>& cur, std::uint32_t* sp) {
        for (std::size_t i = layer + 1; i <= n; ++i) {
          for (std::size_t j = layer; j < i; ++j) {
            const double v = prev[j] + cost(d, j, i);
            if (v < cur[i]) {
              cur[i] = v;
              sp[i] = static_cast<std::uint32_t>(j);
            }
          }
        }
      });
}

}  // namespace sqb::detail
