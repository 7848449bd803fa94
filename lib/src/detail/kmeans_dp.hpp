#pragma once
// Exactly optimal 1-D k-means by dynamic programming (Bellman 1973; Wang & Song 2011, "Ckmeans.1d.dp";
// Gronlund, Larsen, Mathiasen, Nielsen, Schneider & Song 2017, "Fast exact k-means, k-medians and Bregman
// divergence clustering in 1D").
//
// Every function minimises the (weighted) SSE sum_i w_i (x_i - c(x_i))^2 over the block's values with their
// weights (w_i = 1 for an unweighted SortedBlock; see SortedBlock for zero and all-zero weights). In 1-D the
// optimal clusters are contiguous in sorted order, and equal values can always share a cluster, so the
// programmes run on the M distinct values, each carrying its total weight (exactly equivalent; data rounded
// from float16 or bfloat16 has M <= 65536). SSE(j, i), the cost of distinct values [j, i) as one cluster,
// comes from the block's centred prefix sums in O(1), and is Monge: SSE(a, c) + SSE(b, d) <= SSE(a, d) +
// SSE(b, c) for a <= b <= c <= d.
//
// Two ways to use that:
// - Layered: D[l][i], the least SSE of the first i distinct values in l+1 clusters, is
//   min_j D[l-1][j] + SSE(j, i), and the minimising j is monotone in i. One layer costs O(M log M) by divide
//   and conquer or O(M) by SMAWK (Aggarwal, Klawe, Moran, Shor & Wilber 1987; Ckmeans.1d.dp's "linear"
//   method), K layers in all, with a K x M table of split points for backtracking.
// - Lagrangian (surveyed by Gronlund et al.): a penalty lambda per cluster turns the problem into one pass
//   over the values with no K (a concave least-weight subsequence); the least SSE with c clusters is convex
//   in c (Aggarwal, Schieber & Tokuyama 1994, k-link paths in concave Monge graphs), so searching lambda
//   finds a partition with exactly K clusters, optimal. Each pass is O(M) in practice, a handful of passes
//   suffice, and nothing of size K x M is stored.
// Measured here (experiments/microbench/bench_kmeans.cpp, N(0,1), N = 1e5 and 1e6, K = 16 and 256) the
// Lagrangian search is the fastest everywhere (1.6x to 60x faster than divide and conquer), and SMAWK, with
// fewer but costlier evaluations, is no faster than divide and conquer. So kmeans_optimal_dp is the
// Lagrangian search and the two layered solvers are kept as references.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "detail/lloyd_1d.hpp"

namespace sqb::detail {

struct OptimalClustering {
  std::vector<double> centroids;    ///< K weighted cluster means, ascending, each clamped to its cluster
  std::vector<std::size_t> bounds;  ///< K+1 positions in data.values(): cluster j is [bounds[j], bounds[j+1])
  double sse = 0;                   ///< the minimum (weighted) sum of squared errors
};

// All solvers: 1 <= K <= data.distinct_count() (sqb::Error otherwise). Where several partitions are optimal
// any of them may be returned (the solvers can differ there); the SSE is the same to rounding, which is a few
// eps of the one-cluster SSE per cluster (the prefix sums round relative to the whole block). Centroids are
// summed directly over each cluster (not from prefix sums, which can lose a small cluster next to huge
// values) and clamped to its range, so they stay sorted on data spanning 1e-44..1e31. `sse` is the clusters'
// costs (from the prefix sums) added in order. Except for the reference, a cluster never splits a run of
// equal values, and every cluster has positive weight.

/// The Lagrangian search: O(M) per pass in practice (O(M log M) at worst), typically 3-10 passes whatever
/// K; memory about kmeans_optimal_dp_bytes(M). Should the search not settle within 200 passes (never
/// observed; it would take rounding noise larger than the SSE differences it resolves), it falls back to the
/// divide-and-conquer programme and its K x M table.
OptimalClustering kmeans_optimal_dp(const SortedBlock& data, std::size_t k);

/// Layered, SMAWK per layer: O(K M) time, O(M) memory plus the (K-1) x (M+1) table of 4-byte split points.
OptimalClustering kmeans_optimal_smawk(const SortedBlock& data, std::size_t k);

/// Layered, divide and conquer per layer: O(K M log M) time, the same memory as SMAWK. The previous
/// default, kept as a reference and benchmark.
OptimalClustering kmeans_optimal_dnc(const SortedBlock& data, std::size_t k);

/// The textbook layered programme over every sorted position (no merging of equal values): O(K N^2), for
/// tests.
OptimalClustering kmeans_optimal_reference(const SortedBlock& data, std::size_t k);

struct SketchResult {
  std::vector<double> centroids;  ///< K levels, ascending (the distinct values, the last repeated, if <= K)
  double sse = 0;                 ///< the (weighted) SSE of the partition the levels are the means of
  std::size_t distinct = 0;       ///< distinct values of positive weight
  std::size_t groups = 0;         ///< groups the programme ran on (0 when distinct <= K)
};

/// Near-optimal 1-D k-means on a weighted sketch of the sorted block: the exact programme (the Lagrangian
/// search) over at most `runs` groups of consecutive sorted values, each at least ceil(N / runs) values long
/// and never splitting a run of equal values; every cluster is then a union of whole groups, and the levels
/// are the clusters' exact (weighted) means. The cost is the sort plus O(N) sums plus a programme on `runs`
/// groups; what it gives up is where inside a group a boundary falls, a second-order loss (about (group /
/// cluster)^2 of the SSE). With at most `runs` distinct values every run is a group: the exact programme, and
/// the same levels as kmeans_optimal_dp on SortedBlock(values, weights), bit for bit. Weights as for
/// SortedBlock (empty, or one finite weight >= 0 per value; zero weights are left out; all zero means
/// unweighted). K >= 1, runs >= 2 K, values non-empty (sqb::Error otherwise). Memory: two copies of the
/// block (the sorted values and their keys) and about 32 bytes a group. `check_distinct`, when set, is
/// called with the number of distinct values before any programme runs (not when distinct <= K) (a memory
/// guard may throw there).
///
/// With `runs` >= N this is the exact programme without a SortedBlock (no prefix arrays over positions, only
/// over runs): what kmeans_optimal runs.
SketchResult kmeans_sketch(std::span<const float> values, std::span<const float> weights, std::size_t k,
                           std::size_t runs, const std::function<void(std::size_t)>& check_distinct = {});

/// The largest block kmeans_tiny takes.
inline constexpr std::size_t kTinyBlock = 256;

/// kmeans_optimal's exact levels for a small unweighted block (groups of 64 and the like), without heap
/// allocation: the block is sorted as order keys on the stack (sort_floats), then the general path's
/// Lagrangian search runs on fixed-size buffers. Where the block has at most 8 K distinct values (groups of
/// 64 at K >= 8) its passes are a scan of its own (kmeans_dp.cpp: costs through reciprocals of the cluster
/// sizes, only the splits the monotone rule leaves), so the partition is optimal like the general path's,
/// the same one (and the levels the same bit for bit) where the optimum is unique, and possibly another of
/// the same SSE (to rounding) where several tie. Elsewhere (K <= 7 on groups of 64) the arithmetic and
/// its order are the general path's, and the levels are kmeans_sketch(values, {}, k, max(N, 2 K)).centroids
/// bit for bit, ties included. 1 <= N <= kTinyBlock values, 1 <= K <= kTinyBlock, levels.size() == K
/// (sqb::Error otherwise). `check_distinct` as for kmeans_sketch.
void kmeans_tiny(std::span<const float> values, std::size_t k, std::span<double> levels,
                 const std::function<void(std::size_t)>& check_distinct = {});

/// The same for a weighted block: the general path's sums (the same weighted sums, in the same order and
/// type), the scan on the general path's cost quotients where at most 64 distinct values remain and m <= 8 K
/// (an optimum, the same levels bit for bit unless optima tie), else kmeans_sketch(values, weights, k, max(N,
/// 2 K)).centroids bit for bit, ties included. Weights as for kmeans_sketch: empty, or one finite weight >= 0
/// per value (the same sqb::Error otherwise); zero weights are left out, all zero means unweighted.
/// `check_distinct` sees the distinct values of positive weight.
void kmeans_tiny(std::span<const float> values, std::span<const float> weights, std::size_t k,
                 std::span<double> levels, const std::function<void(std::size_t)>& check_distinct = {});

/// One pass of the unweighted tiny path's scan at penalty `lambda` (> 0) over the distinct values of the
/// block (1..kTinyBlock values): the least penalised cost f = SSE + lambda * clusters, the clusters and their
/// bounds in distinct values (0 = b_0 < ... < b_c = M), scanning only the splits the monotone rule leaves
/// or, with `exhaustive`, every split (the slow reference). For tests; sqb::Error on a bad block.
struct TinyPass {
  double f = 0;
  std::vector<std::uint32_t> bounds;
};
TinyPass tiny_scan_pass(std::span<const float> values, double lambda, bool exhaustive);

/// Bytes kmeans_optimal_dp and optimal_sse allocate for a block with `distinct` distinct values, beyond the
/// SortedBlock itself (about 72 per distinct value, whatever K).
double kmeans_optimal_dp_bytes(std::size_t distinct);

/// The least (weighted) SSE of any K-level codebook on the block: kmeans_optimal_dp(data, k).sse bit for bit,
/// without building the centroids. 0 when K >= the number of distinct values. K >= 1 (sqb::Error otherwise).
double optimal_sse(const SortedBlock& data, std::size_t k);

/// The same from raw values and weights (`weights` empty or one finite weight >= 0 per value, as for
/// SortedBlock; sqb::Error otherwise or on an empty block).
double optimal_sse(std::span<const float> values, std::span<const float> weights, std::size_t k);

}  // namespace sqb::detail
