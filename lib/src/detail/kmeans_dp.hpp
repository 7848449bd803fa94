#pragma once
// Exactly optimal 1-D k-means by dynamic programming (Bellman 1973; Wang & Song 2011, "Ckmeans.1d.dp";
// Gronlund, Larsen, Mathiasen, Nielsen, Schneider & Song 2017, "Fast exact k-means, k-medians and Bregman
// divergence clustering in 1D").
//
// Every function minimises the (weighted) SSE sum_i w_i (x_i - c(x_i))^2 over the block's values with their
// weights (w_i = 1 for an unweighted SortedBlock; see SortedBlock for zero and all-zero weights). In 1-D the
// optimal clusters are contiguous in sorted order, and equal values can always share a cluster, so the
// programme runs on the M distinct values, each carrying its total weight (exactly equivalent; data rounded
// from float16 or bfloat16 has M <= 65536). With D[l][i] the least SSE of the first i distinct values in l+1
// clusters, D[l][i] = min_j D[l-1][j] + SSE(j, i); SSE(j, i) comes from the block's centred prefix sums in
// O(1). The matrix A[i][j] = D[l-1][j] + SSE(j, i) is totally monotone (SSE is Monge), so the row minima of
// a layer are found in O(M) by SMAWK (Aggarwal, Klawe, Moran, Shor & Wilber 1987), as in Ckmeans.1d.dp's
// "linear" method.

#include <cstddef>
#include <span>
#include <vector>

#include "detail/lloyd_1d.hpp"

namespace sqb::detail {

struct OptimalClustering {
  std::vector<double> centroids;    ///< K weighted cluster means, ascending, each clamped to its cluster
  std::vector<std::size_t> bounds;  ///< K+1 positions in data.values(): cluster j is [bounds[j], bounds[j+1])
  double sse = 0;                   ///< the minimum (weighted) sum of squared errors
};

// All three solvers: 1 <= K <= data.distinct_count() (sqb::Error otherwise). A cluster never splits a run of
// equal values; each has positive weight. Centroids are summed directly over each cluster (not from prefix
// sums, which can lose a small cluster next to huge values) and clamped to its range, so they stay sorted on
// data spanning 1e-44..1e31. Where several partitions are optimal any of them may be returned (the
// solvers can differ there); the SSE is the same to rounding.

/// SMAWK per layer: O(K M) time; memory O(M) plus the K x (M+1) table of 4-byte split points read back by
/// the backtracking (kmeans_optimal_table_bytes).
OptimalClustering kmeans_optimal_dp(const SortedBlock& data, std::size_t k);

/// Divide and conquer per layer (the optimal split is monotone in i): O(K M log M) time, the same memory.
/// The previous default, kept as a reference and benchmark.
OptimalClustering kmeans_optimal_dnc(const SortedBlock& data, std::size_t k);

/// The textbook programme over every sorted position (no merging of equal values): O(K N^2), for tests.
OptimalClustering kmeans_optimal_reference(const SortedBlock& data, std::size_t k);

/// Bytes of the split-point table kmeans_optimal_dp and kmeans_optimal_dnc allocate for K clusters of a
/// block with `distinct` distinct values (0 for K = 1).
double kmeans_optimal_table_bytes(std::size_t distinct, std::size_t k);

/// The least (weighted) SSE of any K-level codebook on the block: the SSE of kmeans_optimal_dp without its
/// split table (O(K M) time, O(M) memory). 0 when K >= the number of distinct values. K >= 1 (sqb::Error
/// otherwise).
double optimal_sse(const SortedBlock& data, std::size_t k);

/// The same from raw values and weights (`weights` empty or one finite weight >= 0 per value, as for
/// SortedBlock; sqb::Error otherwise or on an empty block).
double optimal_sse(std::span<const float> values, std::span<const float> weights, std::size_t k);

}  // namespace sqb::detail
