#include "detail/kmeans_dp.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "sqb/error.hpp"

namespace sqb::detail {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The block as the programme sees it: groups of sorted positions (each distinct value, or each position for
// the reference) and the block's prefix sums at the start of each group. Taking the block's own prefix sums
// (not re-summing per group) makes a cluster's cost exactly the difference the block would compute over its
// positions, so merging equal values changes no arithmetic.
class Groups {
 public:
  Groups(const SortedBlock& d, bool merge_equal) {
    const auto v = d.values();
    for (std::size_t i = 0; i < v.size(); ++i)
      if (!merge_equal || i == 0 || v[i] != v[i - 1]) start_.push_back(i);
    start_.push_back(v.size());
    p_.resize(start_.size());
    for (std::size_t m = 0; m < start_.size(); ++m)
      p_[m] = {d.sum(0, start_[m]), d.sum_sq(0, start_[m]), d.weight(0, start_[m])};
  }

  std::size_t size() const { return start_.size() - 1; }
  std::size_t start(std::size_t m) const { return start_[m]; }

  // Weighted SSE of groups [j, i) about their weighted mean. The prefix sums are of values centred on the
  // block's mean, so the difference of squares loses at most log10(offset^2 / spread^2) digits for a
  // cluster far from the centre (about 5 of 16 for the outermost of 256 Gaussian clusters) — far below what
  // could change an optimal split. One group (one distinct value) costs exactly 0; a weight that rounded
  // to 0 (tiny weights after huge ones) costs 0 rather than 0/0.
  double cost(std::size_t j, std::size_t i) const {
    if (i <= j + 1) return 0.0;
    const Prefix& a = p_[j];
    const Prefix& b = p_[i];
    const double w = b.w - a.w;
    const double s = b.s - a.s;
    return w > 0 ? std::max(0.0, (b.s2 - a.s2) - s * s / w) : 0.0;
  }

 private:
  struct Prefix {
    double s, s2, w;
  };
  std::vector<std::size_t> start_;
  std::vector<Prefix> p_;
};

// Row minima of one layer, A(i, j) = prev[j] + cost(j, i) for rows i in [r_lo, r_hi] over columns
// j in [c_lo, r_hi - 1] (+inf where j >= i): out[i] = min_j A(i, j), arg[i] = the smallest minimising j.
// Every solver below fills exactly these rows.
struct LayerRows {
  std::size_t r_lo, r_hi, c_lo;
};

// SMAWK (Aggarwal, Klawe, Moran, Shor & Wilber 1987): A is totally monotone because SSE is Monge (the
// infinite entries above the diagonal keep it so), hence O(rows + columns) evaluations per layer. The
// recursion keeps rows as arithmetic progressions (r0 + t * step) and the surviving columns of each depth
// in one buffer, so a layer allocates nothing after the first.
class Smawk {
 public:
  void solve(const Groups& g, const double* prev, LayerRows rows, double* out, std::uint32_t* arg) {
    g_ = &g;
    prev_ = prev;
    out_ = out;
    arg_ = arg;
    const std::size_t nrows = rows.r_hi - rows.r_lo + 1;
    const std::size_t ncols = rows.r_hi - rows.c_lo;
    cols_.resize(ncols + 2 * nrows + 2);
    vals_.resize(2 * nrows + 2);
    for (std::size_t c = 0; c < ncols; ++c)
      cols_[c] = static_cast<std::uint32_t>(rows.c_lo + c);
    recurse(rows.r_lo, 1, nrows, 0, ncols, ncols, 0);
  }

 private:
  double a(std::size_t i, std::size_t j) const { return j < i ? prev_[j] + g_->cost(j, i) : kInf; }

  // Rows r0 + t * step, t < nrows; candidate columns cols_[c0, c0 + nc); free buffer space from cols_[free]
  // and vals_[vfree].
  void recurse(std::size_t r0, std::size_t step, std::size_t nrows, std::size_t c0, std::size_t nc,
               std::size_t free, std::size_t vfree) {
    if (nrows == 0) return;
    // REDUCE: keep at most nrows columns. Stack slot t stands for row t; a column is dropped when the one
    // after it is strictly better in the row of its slot (then also in every later row), or when the stack
    // is full (it is then beaten in every row). Ties keep the earlier column: leftmost minima.
    std::uint32_t* s = cols_.data() + free;
    double* sv = vals_.data() + vfree;  // sv[t] = A(row t, s[t])
    std::size_t top = 0;
    for (std::size_t q = c0; q < c0 + nc; ++q) {
      const std::uint32_t c = cols_[q];
      while (top > 0 && sv[top - 1] > a(r0 + (top - 1) * step, c))
        --top;
      if (top < nrows) {
        s[top] = c;
        sv[top] = a(r0 + top * step, c);
        ++top;
      }
    }
    // The odd rows first, on the surviving columns.
    recurse(r0 + step, 2 * step, nrows / 2, free, top, free + top, vfree + top);
    // Each even row's minimum lies between the minima of its odd neighbours.
    std::size_t q = 0;
    for (std::size_t t = 0; t < nrows; t += 2) {
      const std::size_t i = r0 + t * step;
      const std::uint32_t last = t + 1 < nrows ? arg_[i + step] : s[top - 1];
      std::uint32_t best = s[q];
      double best_v = a(i, best);
      while (s[q] != last) {
        ++q;
        const double v = a(i, s[q]);
        if (v < best_v) {
          best_v = v;
          best = s[q];
        }
      }
      out_[i] = best_v;
      arg_[i] = best;
    }
  }

  const Groups* g_ = nullptr;
  const double* prev_ = nullptr;
  double* out_ = nullptr;
  std::uint32_t* arg_ = nullptr;
  std::vector<std::uint32_t> cols_;
  std::vector<double> vals_;
};

// Divide and conquer (the previous default): solve row mid by scanning its column range, then the rows above
// and below with the range split at its minimum (the smallest minimising j keeps opt(i) monotone). An
// explicit stack replaces the recursion.
class DivideAndConquer {
 public:
  void solve(const Groups& g, const double* prev, LayerRows rows, double* out, std::uint32_t* arg) {
    stack_.assign(1, Range{rows.r_lo, rows.r_hi, rows.c_lo, rows.r_hi - 1});
    while (!stack_.empty()) {
      const Range r = stack_.back();
      stack_.pop_back();
      if (r.lo > r.hi) continue;
      const std::size_t mid = r.lo + (r.hi - r.lo) / 2;
      double best = kInf;
      std::size_t best_j = r.jlo;
      const std::size_t jend = std::min(r.jhi, mid - 1);
      for (std::size_t j = r.jlo; j <= jend; ++j) {
        const double v = prev[j] + g.cost(j, mid);
        if (v < best) {
          best = v;
          best_j = j;
        }
      }
      out[mid] = best;
      arg[mid] = static_cast<std::uint32_t>(best_j);
      if (mid > r.lo) stack_.push_back({r.lo, mid - 1, r.jlo, best_j});
      if (mid < r.hi) stack_.push_back({mid + 1, r.hi, best_j, r.jhi});
    }
  }

 private:
  struct Range {
    std::size_t lo, hi, jlo, jhi;
  };
  std::vector<Range> stack_;
};

// Every column of every row: O(M^2) per layer.
struct Exhaustive {
  void solve(const Groups& g, const double* prev, LayerRows rows, double* out, std::uint32_t* arg) const {
    for (std::size_t i = rows.r_lo; i <= rows.r_hi; ++i) {
      double best = kInf;
      std::size_t best_j = rows.c_lo;
      for (std::size_t j = rows.c_lo; j < i; ++j) {
        const double v = prev[j] + g.cost(j, i);
        if (v < best) {
          best = v;
          best_j = j;
        }
      }
      out[i] = best;
      arg[i] = static_cast<std::uint32_t>(best_j);
    }
  }
};

void check_k(const Groups& g, std::size_t k) {
  if (g.size() >= std::numeric_limits<std::uint32_t>::max()) {
    throw Error("kmeans_optimal: a block of " + std::to_string(g.size()) +
                " distinct values is beyond the 4-byte split points; use a finer granularity");
  }
  if (k == 0 || k > g.size()) {
    throw Error("kmeans_optimal: K = " + std::to_string(k) + " clusters for a block of " +
                std::to_string(g.size()) + " distinct values (of positive weight); K must be in 1.." +
                std::to_string(g.size()));
  }
}

// The layered programme: cur[i] is the least SSE of the first i groups in layer + 1 clusters. Layer l only
// needs rows l+1 .. M-(K-1-l) (a later layer must still find a group for each remaining cluster), the last
// layer only row M. With `table` (K-1 rows of M+1 split points, layer l in row l-1) the split points are kept
// for backtracking; without, one scratch row serves every layer. Returns D[K-1][M].
template <class Solver>
double layered(const Groups& g, std::size_t k, Solver& solver, std::uint32_t* table) {
  const std::size_t m = g.size();
  std::vector<double> prev(m + 1, kInf), cur(m + 1, kInf);
  std::vector<std::uint32_t> scratch(table ? 0 : m + 1);
  for (std::size_t i = 1; i <= m; ++i)
    prev[i] = g.cost(0, i);
  for (std::size_t layer = 1; layer < k; ++layer) {
    const LayerRows rows{layer + 1 == k ? m : layer + 1, m - (k - 1 - layer), layer};
    std::uint32_t* arg = table ? table + (layer - 1) * (m + 1) : scratch.data();
    solver.solve(g, prev.data(), rows, cur.data(), arg);
    std::swap(prev, cur);
  }
  return prev[m];
}

template <class Solver>
OptimalClustering solve_and_backtrack(const SortedBlock& d, std::size_t k, bool merge_equal) {
  const Groups g(d, merge_equal);
  check_k(g, k);
  const std::size_t m = g.size();
  std::vector<std::uint32_t> table((k - 1) * (m + 1));
  Solver solver;
  OptimalClustering r;
  r.sse = layered(g, k, solver, table.data());
  r.bounds.assign(k + 1, 0);
  r.bounds[k] = m;
  for (std::size_t layer = k - 1, i = m; layer >= 1; --layer) {
    i = table[(layer - 1) * (m + 1) + i];
    r.bounds[layer] = i;
  }
  for (std::size_t& b : r.bounds)
    b = g.start(b);
  // Each level is its cluster's (weighted) mean summed directly (O(N) in all) and clamped to the cluster's
  // range: with data spanning dozens of orders of magnitude a prefix-sum difference can lose a small cluster
  // entirely (found by fuzzing), and the levels must stay sorted.
  const auto v = d.values();
  const auto w = d.weights();
  for (std::size_t c = 0; c < k; ++c) {
    const std::size_t lo = r.bounds[c], hi = r.bounds[c + 1];
    double sum = 0, wsum = 0;
    if (w.empty()) {
      for (std::size_t i = lo; i < hi; ++i)
        sum += v[i];
      wsum = static_cast<double>(hi - lo);
    } else {
      for (std::size_t i = lo; i < hi; ++i) {
        sum += static_cast<double>(w[i]) * v[i];
        wsum += w[i];
      }
    }
    r.centroids.push_back(std::clamp(sum / wsum, static_cast<double>(v[lo]), static_cast<double>(v[hi - 1])));
  }
  return r;
}

}  // namespace

OptimalClustering kmeans_optimal_dp(const SortedBlock& d, std::size_t k) {
  return solve_and_backtrack<Smawk>(d, k, true);
}

OptimalClustering kmeans_optimal_dnc(const SortedBlock& d, std::size_t k) {
  return solve_and_backtrack<DivideAndConquer>(d, k, true);
}

OptimalClustering kmeans_optimal_reference(const SortedBlock& d, std::size_t k) {
  return solve_and_backtrack<Exhaustive>(d, k, false);
}

double kmeans_optimal_table_bytes(std::size_t distinct, std::size_t k) {
  return k <= 1 ? 0.0
                : static_cast<double>(k - 1) * static_cast<double>(distinct + 1) * sizeof(std::uint32_t);
}

double optimal_sse(const SortedBlock& d, std::size_t k) {
  if (k == 0) throw Error("optimal_sse: K = 0; K must be >= 1");
  const Groups g(d, true);
  if (k >= g.size()) return 0.0;
  Smawk solver;
  return layered(g, k, solver, nullptr);
}

double optimal_sse(std::span<const float> values, std::span<const float> weights, std::size_t k) {
  if (values.empty()) throw Error("optimal_sse: an empty block has no codebook");
  return optimal_sse(SortedBlock(values, weights), k);
}

}  // namespace sqb::detail
