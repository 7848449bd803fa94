#pragma once
// Exactly optimal 1-D k-means by dynamic programming (Bellman 1973; Wang & Song 2011, "Ckmeans.1d.dp").

#include <cstddef>
#include <vector>

#include "detail/lloyd_1d.hpp"

namespace sqb::detail {

struct OptimalClustering {
  std::vector<double> centroids;    ///< K cluster means, ascending
  std::vector<std::size_t> bounds;  ///< K+1 sorted positions: cluster j is [bounds[j], bounds[j+1])
  double sse = 0;                   ///< the minimum sum of squared errors
};

/// Optimal partition of the sorted values into K <= N contiguous clusters (in 1-D the optimal clusters are
/// contiguous in sorted order). D[k][i] = min_j D[k-1][j] + SSE(j, i); the optimal split point is monotone in
/// i, so each layer is solved by divide and conquer in O(N log N): O(K N log N) time, K (N+1) split points of
/// memory. SSE(j, i) comes from the block's centred prefix sums (O(1)). Requires 1 <= K <= number of distinct
/// values.
OptimalClustering kmeans_optimal_dp(const SortedBlock& data, std::size_t k);

/// The O(K N^2) textbook dynamic programme, for tests.
OptimalClustering kmeans_optimal_reference(const SortedBlock& data, std::size_t k);

}  // namespace sqb::detail
