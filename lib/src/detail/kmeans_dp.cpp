#include "detail/kmeans_dp.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "detail/huge_pages.hpp"
#include "detail/lloyd_1d.hpp"
#include "detail/sort_keys.hpp"
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
    start_.reserve((merge_equal ? d.distinct_count() : v.size()) + 1);
    for (std::size_t i = 0; i < v.size(); ++i)
      if (!merge_equal || i == 0 || v[i] != v[i - 1]) start_.push_back(i);
    start_.push_back(v.size());
    p_.resize(start_.size());
    for (std::size_t m = 0; m < start_.size(); ++m)
      p_[m] = {d.sum(0, start_[m]), d.sum_sq(0, start_[m]), d.weight(0, start_[m])};
  }

  // Groups straight from sorted values (and weights, empty or all > 0), without a SortedBlock: the prefix
  // sums follow SortedBlock's recurrences (the same shift, the same order of additions), so when every run of
  // equal values is a group the groups equal Groups(SortedBlock(values, weights), true) bit for bit. With
  // `min_length` > 1 a group starts only at a run of equal values at least `min_length` positions after the
  // previous group's start: runs are never split, and there are at most N / min_length + 1 groups.
  Groups(std::span<const float> v, std::span<const float> w, std::size_t min_length, double max_span = 0) {
    const std::size_t n = v.size();
    double shift = 0;
    if (w.empty()) {
      double total = 0;
      for (const float x : v)
        total += x;
      shift = total / static_cast<double>(n);
    } else {
      double total = 0, total_w = 0;
      for (std::size_t i = 0; i < n; ++i) {
        total += static_cast<double>(w[i]) * v[i];
        total_w += w[i];
      }
      shift = total / total_w;
    }
    // Each group starts at its own position, so there are at most n + 1 entries: sized so, left unset
    // (scratch_vector) and written by index; only the pages written are ever touched.
    start_.resize(n + 1);
    p_.resize(n + 1);
    std::size_t m = 0;
    double s = 0, s2 = 0, ws = 0;
    std::size_t next = 0;
    double first = 0;  // the value that starts the current group
    for (std::size_t i = 0; i < n; ++i) {
      if ((i >= next || static_cast<double>(v[i]) - first > max_span) && (i == 0 || v[i] != v[i - 1])) {
        start_[m] = i;
        p_[m++] = {s, s2, w.empty() ? static_cast<double>(i) : ws};
        next = i + min_length;
        first = v[i];
      }
      const double c = static_cast<double>(v[i]) - shift;
      if (w.empty()) {
        s += c;
        s2 += c * c;
      } else {
        const double wi = w[i];
        s += wi * c;
        s2 += wi * c * c;
        ws += wi;
      }
    }
    start_[m] = n;
    p_[m++] = {s, s2, w.empty() ? static_cast<double>(n) : ws};
    start_.resize(m);
    p_.resize(m);
    runs_ = min_length == 1;
  }

  // Every stride-th group of `fine` merged into one (the last takes the rest): the same prefix sums at fewer
  // starts, so a partition of the coarse groups costs exactly what it costs on the fine ones.
  Groups(const Groups& fine, std::size_t stride) {
    const std::size_t m = fine.size();
    for (std::size_t c = 0; c < m; c += stride) {
      start_.push_back(fine.start_[c]);
      p_.push_back(fine.p_[c]);
    }
    start_.push_back(fine.start_[m]);
    p_.push_back(fine.p_[m]);
    runs_ = stride == 1 && fine.runs_;
  }

  std::size_t size() const { return start_.size() - 1; }
  std::size_t start(std::size_t m) const { return start_[m]; }

  // Weighted SSE of groups [j, i) about their weighted mean. The prefix sums are of values centred on the
  // block's mean, so the difference of squares loses at most log10(offset^2 / spread^2) digits for a
  // cluster far from the centre (about 5 of 16 for the outermost of 256 Gaussian clusters) — far below what
  // could change an optimal split. One group (one distinct value) costs exactly 0; a weight that rounded
  // to 0 (tiny weights after huge ones) costs 0 rather than 0/0.
  double cost(std::size_t j, std::size_t i) const {
    if (i <= j + 1 && runs_) return 0.0;
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
  scratch_vector<std::size_t> start_;  // on huge pages: a million groups are 32 MB
  scratch_vector<Prefix> p_;
  bool runs_ = true;  // every group is one run of equal values (or one position), so costs exactly 0 alone
};

// The SSE of a partition: its clusters' costs added left to right (the order in which the layered programme
// adds them, so it reports the same number).
double partition_sse(const Groups& g, const std::vector<std::uint32_t>& b) {
  double sse = 0;
  for (std::size_t t = 0; t + 1 < b.size(); ++t)
    sse += g.cost(b[t], b[t + 1]);
  return sse;
}

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

// One pass of the Lagrangian search at penalty `lambda` over groups 1..m (see Lagrangian::solve): f[i]
// is the least penalised cost of the first i groups, cnt[i] its cluster count and par[i] where its last
// cluster starts; dq_j / dq_s are the candidate deque's workspace. Every array holds m + 1 entries. One
// function for the general and the tiny-block search, so both take the same steps in the same order.
template <class G>
void lagrangian_pass(const G& g, std::size_t m, double lambda, double* f, std::uint32_t* cnt,
                     std::uint32_t* par, std::uint32_t* dq_j, std::uint32_t* dq_s) {
  const auto val = [&](std::size_t j, std::size_t r) { return f[j] + g.cost(j, r); };
  const auto beats = [&](std::size_t a, std::size_t b, std::size_t r) {  // candidate a over b at row r
    const double va = val(a, r), vb = val(b, r);
    return (va < vb) | ((va == vb) & (cnt[a] < cnt[b]));  // no branch: evaluations can overlap
  };
  f[0] = 0;
  cnt[0] = 0;
  std::size_t head = 0, tail = 0, offset = 1;
  dq_j[tail] = 0;
  dq_s[tail++] = 1;
  for (std::size_t i = 1; i <= m; ++i) {
    while (tail - head >= 2 && dq_s[head + 1] <= i)
      ++head;
    const std::size_t j = dq_j[head];
    f[i] = val(j, i) + lambda;
    cnt[i] = cnt[j] + 1;
    par[i] = static_cast<std::uint32_t>(j);
    if (i == m) break;
    while (tail > head && beats(i, dq_j[tail - 1], std::max<std::size_t>(dq_s[tail - 1], i + 1)))
      --tail;
    if (tail == head) {
      dq_j[tail] = static_cast<std::uint32_t>(i);
      dq_s[tail++] = static_cast<std::uint32_t>(i + 1);
      continue;
    }
    const std::size_t b = dq_j[tail - 1];
    const std::size_t lo = std::max<std::size_t>(dq_s[tail - 1], i + 1);  // i does not beat b here
    // Where i overtakes b, in (lo, m] if anywhere: gallop from the previous candidate's offset (it moves
    // little from one candidate to the next), outwards by doubling steps, then bisect (below, above].
    std::size_t below = lo, above = 0;
    std::size_t r = std::min(lo + offset, m);
    if (beats(i, b, r)) {
      above = r;
      for (std::size_t step = 1; above - below > 1;) {
        const std::size_t q = above - std::min(step, above - below - 1);
        if (!beats(i, b, q)) {
          below = q;
          break;
        }
        above = q;
        step *= 2;
      }
    } else {
      below = r;
      for (std::size_t step = 1; below < m; step *= 2) {
        r = std::min(below + step, m);
        if (beats(i, b, r)) {
          above = r;
          break;
        }
        below = r;
      }
      if (above == 0) continue;  // i never overtakes b
    }
    // The bisection two steps at a time while two more are certain (width >= 4 leaves both halves wider
    // than 1): the middle and both possible next middles are evaluated together, independent of each other,
    // then the same two decisions are taken as one step at a time would take them (the same points, so the
    // same answer even where rounding made `beats` non-monotone), without a branch on the outcome.
    while (above - below >= 4) {
      const std::size_t mid = below + (above - below) / 2;
      const std::size_t q_lo = below + (mid - below) / 2, q_hi = mid + (above - mid) / 2;
      const bool at_mid = beats(i, b, mid), at_lo = beats(i, b, q_lo), at_hi = beats(i, b, q_hi);
      const std::size_t q = at_mid ? q_lo : q_hi;
      const bool at_q = at_mid ? at_lo : at_hi;
      const std::size_t lo2 = at_mid ? below : mid, hi2 = at_mid ? mid : above;
      below = at_q ? lo2 : q;
      above = at_q ? q : hi2;
    }
    while (above - below > 1) {
      const std::size_t mid = below + (above - below) / 2;
      if (beats(i, b, mid))
        above = mid;
      else
        below = mid;
    }
    offset = above - lo;
    dq_j[tail] = static_cast<std::uint32_t>(i);
    dq_s[tail++] = static_cast<std::uint32_t>(above);
  }
}

// Lagrangian relaxation (one of the approaches Gronlund et al. 2017 survey; the "Aliens trick"): for a
// penalty lambda per cluster, min over partitions into any number c of clusters of SSE + lambda c is one
// concave least-weight subsequence problem, solved in one pass. The least SSE with c clusters, D(c), is
// convex in c (SSE is Monge), so some lambda makes a K-cluster partition optimal, and that partition is then
// optimal among all with K clusters.
class Lagrangian {
 public:
  struct Solution {
    double lambda = 0;
    std::size_t clusters = 0;
    double sse = 0;                     // of the partition, summed from its clusters
    double g = 0;                       // sse + lambda * clusters as the pass computed it
    std::vector<std::uint32_t> bounds;  // group indices 0 = b_0 < ... < b_c = M
  };

  explicit Lagrangian(const Groups& g)
      : g_(g),
        f_(g.size() + 1),
        cnt_(g.size() + 1),
        par_(g.size() + 1),
        dq_j_(g.size() + 1),
        dq_s_(g.size() + 1) {}

  // F(i) = min_j F(j) + SSE(j, i) + lambda over the first i groups. A candidate j that beats an older one
  // at row r beats it at every later row (Monge), so the candidates live in a deque, each owning the rows
  // from its start on; a new candidate pops the candidates it beats at their start and finds where it
  // overtakes the last one by galloping (about eleven cost evaluations per group in all on N(0,1) data;
  // O(M log M) in the worst case). Exact ties in value go to the candidate with fewer clusters.
  Solution solve(double lambda) {
    const std::size_t m = g_.size();
    lagrangian_pass(g_, m, lambda, f_.data(), cnt_.data(), par_.data(), dq_j_.data(), dq_s_.data());
    Solution s;
    s.lambda = lambda;
    s.clusters = cnt_[m];
    s.g = f_[m];
    s.bounds.resize(s.clusters + 1);
    for (std::size_t c = s.clusters, i = m; c > 0; --c) {
      s.bounds[c] = static_cast<std::uint32_t>(i);
      i = par_[i];
    }
    s.bounds[0] = 0;
    s.sse = partition_sse(g_, s.bounds);
    return s;
  }

 private:
  const Groups& g_;
  // Scratch written before it is read in every pass (no zeroing), on huge pages where offered: at a million
  // groups the first touch of 4 KiB pages cost as much as a pass.
  scratch_vector<double> f_;
  scratch_vector<std::uint32_t> cnt_, par_, dq_j_, dq_s_;
};

// Two partitions optimal for the same lambda, `p` with fewer clusters than k and `q` with more, give an
// optimal one with exactly k (D is linear between their counts): some cluster of q, [q_t, q_t+1), lies
// inside a cluster [p_s-1, p_s) of p with t - s + 1 = k - |p|; then q_0..q_t followed by p_s..p_end has k
// clusters, and exchanging the nested pair for the crossing pair costs nothing more (Monge), so both halves
// of the exchange stay optimal. Such a t exists because t - s + 1 rises by at most one per cluster of q, and
// only across a nested cluster, from 0 to |q| - |p|.
std::vector<std::uint32_t> splice(const std::vector<std::uint32_t>& p, const std::vector<std::uint32_t>& q,
                                  std::size_t k) {
  const std::size_t kp = p.size() - 1, kq = q.size() - 1;
  std::size_t s = 1;
  for (std::size_t t = 0; t < kq; ++t) {
    while (p[s] <= q[t])
      ++s;  // p[s-1] <= q[t] < p[s]
    if (t + 1 == s + (k - kp) && q[t + 1] <= p[s]) {
      std::vector<std::uint32_t> out(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(t + 1));
      out.insert(out.end(), p.begin() + static_cast<std::ptrdiff_t>(s), p.end());
      return out;
    }
  }
  return {};  // not reached for partitions of the right shape
}

// The Lagrangian search for exactly k clusters, 2 <= k < M. Returns group bounds (k + 1 entries), or
// nothing after 200 passes (never seen; the caller then runs the layered programme).
//
// Each pass at some lambda gives a partition with c clusters, optimal for c; c falls as lambda grows. The
// search keeps the best partition on each side of k, A (the most clusters below k) and B (the fewest above),
// starting from the trivial ones (one cluster; every group alone, SSE 0 when groups are runs of equal
// values). Until passes have landed on both sides, lambda moves by the high-resolution law D(c) ~ c^-2, i.e.
// c ~ lambda^-1/3, with the step doubled (in log) while the count does not move. Then, while the bracket is
// wider than 8 clusters (and for at most 12 steps), regula falsi (Illinois) on log c against log lambda aims
// at k. Then the chord slope (SSE_A - SSE_B) / (c_B - c_A): a pass there either finds a partition strictly
// below the chord with a count strictly inside the bracket, or shows D linear from c_A to c_B, and then A and
// B are both optimal at that lambda and are spliced. So every chord pass narrows the bracket or ends the
// search. Regula falsi alone stalls where D(c) is nearly linear (the lambda interval of k is then tiny) and
// the chord tests the middle count directly; the mix averaged 3.9 passes over 60 blocks of 2e5 values (5
// laws, float32 and float16, K = 3..4096), at most 16. "Strictly below" has no tolerance: a partition below
// the chord by rounding only is still optimal for its count, so taking it as the new A or B is never wrong,
// while a tolerance would let a splice miss the optimum by that much (seen: 1e-12 of the one-cluster SSE with
// 8 eps per cluster, against 6e-17 without).
std::vector<std::uint32_t> lagrangian_bounds(const Groups& g, std::size_t k, double lambda_hint) {
  const std::size_t m = g.size();
  Lagrangian lg(g);
  const double sse1 = g.cost(0, m);
  const double kd = static_cast<double>(k);
  Lagrangian::Solution a, b;
  a.lambda = kInf;
  a.clusters = 1;
  a.sse = sse1;
  a.bounds = {0, static_cast<std::uint32_t>(m)};
  b.lambda = 0;
  b.clusters = m;
  // B's bounds and SSE are written out only once a pass has missed k: at a million groups they cost a tenth
  // of a pass, and the first pass usually lands (see lambda_hint).
  const auto write_b = [&] {
    if (!b.bounds.empty()) return;
    resize_advised(b.bounds, m + 1);
    for (std::size_t i = 0; i <= m; ++i)
      b.bounds[i] = static_cast<std::uint32_t>(i);
    b.sse = partition_sse(g, b.bounds);  // 0 when every group is one run of equal values; not for a sketch's
  };
  bool seen_a = false, seen_b = false;  // a pass has landed on that side (its lambda is finite and > 0)
  double lambda = lambda_hint > 0 && std::isfinite(lambda_hint) ? lambda_hint : 2 * sse1 / (kd * kd * kd);
  double jump = 1;                    // grows while one-sided passes keep landing on the same count
  double weight_a = 1, weight_b = 1;  // Illinois: the endpoint kept twice in a row counts half
  char last_side = 0;
  int secant_steps = 0;
  bool jumps_failed = false;
  for (int pass = 0; pass < 200; ++pass) {
    bool chord = false;
    const bool bracketed = seen_a && seen_b;
    if (bracketed || pass >= 24 || jumps_failed) {
      write_b();
      const std::size_t width = b.clusters - a.clusters;
      lambda = (a.sse - b.sse) / static_cast<double>(width);
      chord = true;
      if (bracketed && width > 8 && secant_steps < 12) {
        // Regula falsi on log c - log k against log lambda (c ~ lambda^-1/3 makes it nearly linear).
        const double fa = std::log(static_cast<double>(a.clusters) / kd) * weight_a;  // < 0
        const double fb = std::log(static_cast<double>(b.clusters) / kd) * weight_b;  // > 0
        const double t = fa / (fa - fb);
        const double secant = std::exp(std::log(a.lambda) + t * (std::log(b.lambda) - std::log(a.lambda)));
        if (secant > b.lambda && secant < a.lambda) {
          lambda = secant;
          chord = false;
          ++secant_steps;
        }
      }
    }
    if (!(lambda > 0) || !std::isfinite(lambda)) {
      if (chord) return splice(a.bounds, b.bounds, k);  // D is flat (0) from c_A on
      jumps_failed = true;  // the power law under- or overflowed: chord steps from here
      continue;
    }
    Lagrangian::Solution s = lg.solve(lambda);
    if (s.clusters == k) return std::move(s.bounds);
    write_b();
    if (chord) {
      const double on_chord = a.sse + lambda * static_cast<double>(a.clusters);
      const bool inside = s.clusters > a.clusters && s.clusters < b.clusters;
      if (!inside || !(s.g < on_chord)) return splice(a.bounds, b.bounds, k);
    }
    // The next jump, used while one side has no pass yet: by the power law, doubled (in log) each time the
    // count does not move.
    const std::size_t before = s.clusters < k ? a.clusters : b.clusters;
    jump = s.clusters == before && !bracketed ? 2 * jump : 1;
    lambda *= std::clamp(std::pow(static_cast<double>(s.clusters) / kd, 3.0 * jump), 1e-3, 1e3);
    // Ties in count keep the newer partition, whose lambda is finite.
    const char side = s.clusters < k ? 'a' : 'b';
    if (side == 'a') {
      seen_a = true;
      if (s.clusters > a.clusters || (s.clusters == a.clusters && s.sse <= a.sse)) a = std::move(s);
      weight_a = 1;
      if (last_side == 'a') weight_b *= 0.5;
    } else {
      seen_b = true;
      if (s.clusters < b.clusters || (s.clusters == b.clusters && s.sse <= b.sse)) b = std::move(s);
      weight_b = 1;
      if (last_side == 'b') weight_a *= 0.5;
    }
    last_side = side;
  }
  return {};
}

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
double layered(const Groups& g, std::size_t k, std::uint32_t* table) {
  const std::size_t m = g.size();
  Solver solver;
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

// The layered programme with its split table, backtracked to K + 1 group bounds.
template <class Solver>
std::vector<std::uint32_t> layered_bounds(const Groups& g, std::size_t k) {
  const std::size_t m = g.size();
  std::vector<std::uint32_t> table((k - 1) * (m + 1));
  layered<Solver>(g, k, table.data());
  std::vector<std::uint32_t> b(k + 1, 0);
  b[k] = static_cast<std::uint32_t>(m);
  for (std::size_t layer = k - 1, i = m; layer >= 1; --layer) {
    i = table[(layer - 1) * (m + 1) + i];
    b[layer] = static_cast<std::uint32_t>(i);
  }
  return b;
}

enum class Method { lagrangian, smawk, dnc, exhaustive };

std::vector<std::uint32_t> optimal_bounds(const Groups& g, std::size_t k, Method method);

// A first penalty for the Lagrangian search on a large block: the middle of the interval of lambda where
// K clusters are optimal, [D(K) - D(K+1), D(K-1) - D(K)], estimated on the block cut into about
// kCoarseGroups runs of consecutive groups (exact programmes on a restricted problem, cheap). A pass on the
// whole block costs tens of milliseconds at a million values, and the estimate usually makes the first one
// land on K (the search then needs no other); 0 (no hint) for small blocks, where passes are cheap.
constexpr std::size_t kCoarseGroups = 4096;

double lambda_hint(const Groups& g, std::size_t k) {
  const std::size_t m = g.size();
  if (m < 8 * kCoarseGroups || k < 2) return 0;
  const std::size_t per = std::max<std::size_t>(kCoarseGroups, 16 * (k + 1));
  // At K so large that the coarse problem would be the block itself (stride 1) there is nothing cheaper to
  // solve, and the nested searches would ask for the same estimate again without end.
  const std::size_t stride = (m + per - 1) / per;
  if (stride < 2) return 0;
  const Groups coarse(g, stride);
  if (k + 1 >= coarse.size()) return 0;
  const double below = partition_sse(coarse, optimal_bounds(coarse, k - 1, Method::lagrangian));
  const double above = partition_sse(coarse, optimal_bounds(coarse, k + 1, Method::lagrangian));
  return (below - above) / 2;
}

// Group bounds of an optimal partition into k clusters (1 <= k <= M).
std::vector<std::uint32_t> optimal_bounds(const Groups& g, std::size_t k, Method method) {
  const std::size_t m = g.size();
  if (k == m || k == 1) {  // every group alone, or one cluster: nothing to search
    std::vector<std::uint32_t> b(k + 1);
    for (std::size_t c = 0; c <= k; ++c)
      b[c] = static_cast<std::uint32_t>(c == k ? m : c);
    return b;
  }
  switch (method) {
    case Method::lagrangian:
      if (auto b = lagrangian_bounds(g, k, lambda_hint(g, k)); !b.empty()) return b;
      return layered_bounds<DivideAndConquer>(g, k);
    case Method::smawk:
      return layered_bounds<Smawk>(g, k);
    case Method::dnc:
      return layered_bounds<DivideAndConquer>(g, k);
    case Method::exhaustive:
      break;
  }
  return layered_bounds<Exhaustive>(g, k);
}

// The partition's bounds in sorted positions, its SSE and its levels.
OptimalClustering finish(const Groups& g, const std::vector<std::uint32_t>& gb, std::span<const float> v,
                         std::span<const float> w) {
  const std::size_t k = gb.size() - 1;
  OptimalClustering r;
  r.sse = partition_sse(g, gb);
  r.bounds.resize(k + 1);
  for (std::size_t c = 0; c <= k; ++c)
    r.bounds[c] = g.start(gb[c]);
  // Each level is its cluster's (weighted) mean summed directly (O(N) in all) and clamped to the cluster's
  // range: with data spanning dozens of orders of magnitude a prefix-sum difference can lose a small cluster
  // entirely (found by fuzzing), and the levels must stay sorted.
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

OptimalClustering solve(const SortedBlock& d, std::size_t k, Method method) {
  const Groups g(d, method != Method::exhaustive);
  check_k(g, k);
  return finish(g, optimal_bounds(g, k, method), d.values(), d.weights());
}

}  // namespace

OptimalClustering kmeans_optimal_dp(const SortedBlock& d, std::size_t k) {
  return solve(d, k, Method::lagrangian);
}

OptimalClustering kmeans_optimal_smawk(const SortedBlock& d, std::size_t k) {
  return solve(d, k, Method::smawk);
}

OptimalClustering kmeans_optimal_dnc(const SortedBlock& d, std::size_t k) {
  return solve(d, k, Method::dnc);
}

OptimalClustering kmeans_optimal_reference(const SortedBlock& d, std::size_t k) {
  return solve(d, k, Method::exhaustive);
}

SketchResult kmeans_sketch(std::span<const float> values, std::span<const float> weights, std::size_t k,
                           std::size_t runs, const std::function<void(std::size_t)>& check_distinct) {
  if (values.empty()) throw Error("kmeans_optimal: an empty block has no codebook");
  if (k == 0) throw Error("kmeans_optimal: K = 0; K must be >= 1");
  if (runs < 2 * k) {
    throw Error("kmeans_optimal: sketch = " + std::to_string(runs) + " runs for K = " + std::to_string(k) +
                "; sketch must be at least 2 K");
  }
  // The elements of positive weight, sorted, as SortedBlock keeps them.
  WeightedElements we = positive_weight_elements(values, weights);
  std::vector<float>& v = we.values;
  std::vector<float>& w = we.weights;
  if (w.empty()) {
    reserve_advised(v, values.size());
    v.assign(values.begin(), values.end());
    sort_floats(v);
  } else {
    sort_pairs(v, w);
  }
  SketchResult out;
  std::size_t distinct = 1;
  for (std::size_t i = 1; i < v.size(); ++i)
    distinct += v[i] != v[i - 1];
  out.distinct = distinct;
  if (distinct <= k) {  // SortedBlock::levels_if_few_distinct: the values, the last repeated
    for (std::size_t i = 0; i < v.size(); ++i)
      if (i == 0 || v[i] != v[i - 1]) out.centroids.push_back(v[i]);
    out.centroids.resize(k, out.centroids.back());
    return out;
  }
  if (check_distinct) check_distinct(distinct);
  // At most `runs` groups: every run of equal values when there are that few (the exact programme), else
  // runs of at least ceil(N / runs) consecutive positions.
  std::size_t min_length = distinct <= runs ? 1 : (v.size() + runs - 1) / runs;
  // A group also ends where its values span more than 1/runs of the block's range: otherwise a group of a
  // heavy tail's outliers (far apart, where the optimal clusters are small) would be one cluster.
  const double span =
      min_length == 1 ? 0 : (static_cast<double>(v.back()) - v.front()) / static_cast<double>(runs);
  Groups g(v, w, min_length, span);
  // Long runs of equal values can leave fewer groups than the programme needs: shorter groups then.
  while (g.size() < 2 * k && min_length > 1) {
    min_length /= 2;
    g = Groups(v, w, min_length, span);
  }
  check_k(g, k);
  OptimalClustering r = finish(g, optimal_bounds(g, k, Method::lagrangian), v, w);
  out.centroids = std::move(r.centroids);
  out.sse = r.sse;
  out.groups = g.size();
  return out;
}

namespace {

// The tiny path: kmeans_sketch's exact programme (every run of equal values a group) for a block of at most
// kTinyBlock values, on fixed-size buffers. Every number is computed by the same expression, from the same
// operands, in the same order as in Groups(v, {}, 1), Lagrangian::solve, lagrangian_bounds, splice and
// finish above, so the passes run at the same penalties, take the same branches and end on the same
// partition: the levels are bit for bit the general path's, whichever of several tied optima it picks. Any
// change to the general search must be made here too (tests/test_kmeans_fast.cpp compares them). The one
// exception is the scan below, which blocks of few groups per cluster take instead of these passes.
constexpr std::size_t kTinyCap = kTinyBlock + 1;

struct TinyGroups {
  std::size_t m = 0;                              // groups (distinct values)
  std::uint32_t start[kTinyCap];                  // sorted position of each group's first value, then N
  double s[kTinyCap], s2[kTinyCap], w[kTinyCap];  // the block's centred prefix sums at each start

  // Groups::cost with every group one run of equal values.
  double cost(std::size_t j, std::size_t i) const { return i <= j + 1 ? 0.0 : far(j, i); }
  // The same for a cluster of at least two groups (i >= j + 2). A weight can round away in the prefix sums
  // (a denormal after a huge one), so the wt > 0 test stays; the quotient is computed either way (discarded
  // when wt is 0), so a loop over i vectorises.
  double far(std::size_t j, std::size_t i) const {
    const double wt = w[i] - w[j];
    const double st = s[i] - s[j];
    const double sse = std::max(0.0, (s2[i] - s2[j]) - st * st / wt);
    return wt > 0 ? sse : 0.0;
  }
};

struct TinyPartition {
  std::size_t clusters = 0;
  double lambda = 0, sse = 0, g = 0;
  std::uint32_t bounds[kTinyCap];
};

// Groups of at most kTinyTable: every cost computed once, by TinyGroups::cost's expression (so to the same
// bits), before the search; the passes then look them up instead of dividing.
constexpr std::size_t kTinyTable = 64;

struct TinyCostTable {
  std::size_t m = 0;
  double c[(kTinyTable + 1) * (kTinyTable + 1)];

  TinyCostTable(const TinyGroups& g, bool weighted) : m(g.m) {
    for (std::size_t j = 0; j <= m; ++j) {
      double* row = c + j * (kTinyTable + 1);
      const double sj = g.s[j], s2j = g.s2[j], wj = g.w[j];
      for (std::size_t i = j; i <= std::min(j + 1, m); ++i)
        row[i] = 0.0;
      if (weighted) {
        for (std::size_t i = j + 2; i <= m; ++i)
          row[i] = g.far(j, i);
        continue;
      }
      // Unweighted, the weights are positions, so wt >= 2 here and the general cost's wt > 0 test always
      // holds: without it the loop vectorises.
      for (std::size_t i = j + 2; i <= m; ++i) {
        const double wt = g.w[i] - wj;
        const double st = g.s[i] - sj;
        row[i] = std::max(0.0, (g.s2[i] - s2j) - st * st / wt);
      }
    }
  }
  double cost(std::size_t j, std::size_t i) const { return c[j * (kTinyTable + 1) + i]; }
  double far(std::size_t j, std::size_t i) const { return cost(j, i); }
};

template <class G>
double tiny_partition_sse(const G& g, const std::uint32_t* b, std::size_t clusters) {
  double sse = 0;
  for (std::size_t t = 0; t < clusters; ++t)
    sse += g.cost(b[t], b[t + 1]);
  return sse;
}

// The k + 1 group bounds of the partition a pass ended on: `clusters` splits followed back from group m.
void tiny_backtrack(const std::uint32_t* par, std::size_t m, std::size_t clusters, std::uint32_t* bounds) {
  for (std::size_t c = clusters, i = m; c > 0; --c) {
    bounds[c] = static_cast<std::uint32_t>(i);
    i = par[i];
  }
  bounds[0] = 0;
}

template <class G>
void scan_pass(const G& g, double lambda, double* f, std::uint32_t* cnt, std::uint32_t* par,
               bool exhaustive = false);

// Lagrangian::solve, with the general path's pass or (Scan) the scan's; all but the partition's SSE, which
// tiny_lagrangian_bounds computes (by the same sum) only for a pass that missed K.
template <class G, bool Scan = false>
class TinyLagrangian {
 public:
  explicit TinyLagrangian(const G& g) : g_(g) {}

  void solve(double lambda, TinyPartition& out) {
    const std::size_t m = g_.m;
    if constexpr (Scan)
      scan_pass(g_, lambda, f_, cnt_, par_);
    else
      lagrangian_pass(g_, m, lambda, f_, cnt_, par_, dq_j_, dq_s_);
    out.lambda = lambda;
    out.clusters = cnt_[m];
    out.g = f_[m];
    tiny_backtrack(par_, m, out.clusters, out.bounds);
  }

 private:
  const G& g_;
  double f_[kTinyCap];
  std::uint32_t cnt_[kTinyCap], par_[kTinyCap], dq_j_[kTinyCap], dq_s_[kTinyCap];
};

// The scan: the tiny path's own pass, for blocks whose clusters average at most kTinyScanRun groups (m <=
// kTinyScanRun K: groups of 64 at K >= 8, of 128 at K >= 16; weighted blocks only up to kTinyTable groups,
// on the cost table). The differences from the general path, both for speed, neither for the optimum:
// - Unweighted, the cost of groups [j, i) multiplies by 1/(n_i - n_j), a table of reciprocals of the
//   cluster's value count (an integer <= kTinyBlock), instead of dividing: (s2_i - s2_j) - (s_i - s_j)^2 *
//   (1/n), clamped at 0. It may differ from the quotient in the last bit. (Weighted, the cost table holds
//   the general path's quotients.)
// - A pass scans, for row i, only the candidates j in [opt(i-1), i-1], where opt(i-1) is the split row i-1
//   chose: the leftmost minimiser of f[j] + cost(j, i) is monotone in i because the costs are Monge (with
//   ties in value broken by fewer clusters, the order of value + eps * clusters, still Monge), so nothing to
//   the left of opt(i-1) can win. That is about m * (m / K) evaluations per pass (about 330 at 64 / 16)
//   instead of the general pass's deque and galloping (about 11 per group): the row's least value first,
//   then the leftmost candidate of fewest clusters among those equal to it. (Written with SSE2's minsd,
//   maxsd and cmpeqsd so that no branch depends on the data, it was 15% slower, measured: the branches of
//   the plain form are well predicted.)
// The search around the passes (first penalty, jumps, regula falsi, chord, splice) is the general path's.
// So the partition is optimal like the general path's, and where the optimum is unique the levels are the
// same bit for bit; where several partitions tie (in exact arithmetic, or within the last bits of rounding)
// the two paths may pick different ones, of the same SSE to rounding (tests/test_kmeans_fast.cpp checks
// both, and the scan's pass against an exhaustive one).
// (At 16 groups a cluster, groups of 64 at K = 4, the scan's evaluations, about 1,100 a pass, made it
// 0.8-0.95x as fast as the deque on the cost table, measured with Google Benchmark's kmeans_tiny rows.)
constexpr std::size_t kTinyScanRun = 8;

struct TinyReciprocals {
  double v[kTinyCap];
  TinyReciprocals() {
    v[0] = 0;
    for (std::size_t t = 1; t < kTinyCap; ++t)
      v[t] = 1.0 / static_cast<double>(t);
  }
};
const TinyReciprocals kTinyInverse;

struct TinyScanCosts {
  std::size_t m = 0;
  const double* s = nullptr;  // TinyGroups' prefix sums
  const double* s2 = nullptr;
  std::int32_t count[kTinyCap];  // values before each group's start (the unweighted prefix weight)

  explicit TinyScanCosts(const TinyGroups& g) : m(g.m), s(g.s), s2(g.s2) {
    for (std::size_t i = 0; i <= m; ++i)
      count[i] = static_cast<std::int32_t>(g.start[i]);
  }
  double cost(std::size_t j, std::size_t i) const { return i <= j + 1 ? 0.0 : far(j, i); }
  // A cluster of at least two groups (i >= j + 2).
  double far(std::size_t j, std::size_t i) const {
    const double st = s[i] - s[j];
    const double c = (s2[i] - s2[j]) - st * st * kTinyInverse.v[count[i] - count[j]];
    return c > 0.0 ? c : 0.0;
  }
};

// Weighted blocks on the scan: TinyCostTable's entries (TinyGroups::far, so the same bits), but only those
// the passes read: row i's window [lo, i - 2] the first time a pass asks for it (prepare_row), about a
// quarter of the m^2 / 2 entries at 64 values and K = 16. Stored by row i, so a window is contiguous.
class TinyLazyCostTable {
 public:
  explicit TinyLazyCostTable(const TinyGroups& g) : m(g.m), g_(g) {
    for (std::size_t i = 0; i <= m; ++i)
      low_[i] = static_cast<std::uint32_t>(i > 0 ? i - 1 : 0);  // nothing held yet
  }
  // Makes far(j, i) readable for every j in [lo, i - 2].
  void prepare_row(std::size_t i, std::size_t lo) const {
    if (lo >= low_[i]) return;
    double* row = c_ + i * (kTinyTable + 1);
    for (std::size_t j = lo; j < low_[i]; ++j)
      row[j] = g_.far(j, i);
    low_[i] = static_cast<std::uint32_t>(lo);
  }
  double cost(std::size_t j, std::size_t i) const {
    if (i <= j + 1) return 0.0;
    return j >= low_[i] ? far(j, i) : g_.far(j, i);
  }
  double far(std::size_t j, std::size_t i) const { return c_[i * (kTinyTable + 1) + j]; }

  std::size_t m = 0;

 private:
  const TinyGroups& g_;
  mutable std::uint32_t low_[kTinyCap];  // row i holds j in [low_[i], i - 2]
  mutable double c_[(kTinyTable + 1) * (kTinyTable + 1)];
};

// One scan pass at `lambda`: f[i], cnt[i] and par[i] as lagrangian_pass defines them, over candidates
// [par[i-1], i-1] (par[0] = 0). Candidate i-1 (a group alone, cost 0) is taken last: it is the rightmost, so
// it wins only when strictly better in (value, clusters). With `exhaustive` every j < i is a candidate: the
// slow reference the tests hold the scan to.
template <class G>
void scan_pass(const G& g, double lambda, double* f, std::uint32_t* cnt, std::uint32_t* par,
               bool exhaustive) {
  const std::size_t m = g.m;
  f[0] = 0;
  cnt[0] = 0;
  std::size_t lo = 0;
  double v[kTinyCap];
  for (std::size_t i = 1; i <= m; ++i) {
    if (exhaustive) lo = 0;
    if constexpr (requires { g.prepare_row(i, lo); }) g.prepare_row(i, lo);
    double best = kInf;
    for (std::size_t j = lo; j + 1 < i; ++j) {
      v[j] = f[j] + g.far(j, i);
      best = v[j] < best ? v[j] : best;
    }
    // The leftmost of fewest clusters among the candidates at the least value: the smallest key
    // clusters * 2^9 + j (both <= kTinyBlock < 2^9), all ones for the others.
    std::uint32_t key = ~0u;
    for (std::size_t j = lo; j + 1 < i; ++j) {
      const std::uint32_t kj = v[j] == best ? (cnt[j] << 9) | static_cast<std::uint32_t>(j) : ~0u;
      key = kj < key ? kj : key;
    }
    std::size_t bj = key & 511u;
    const double alone = f[i - 1];
    const bool take_alone = (alone < best) | ((alone == best) & ((cnt[i - 1] << 9) < (key & ~511u)));
    best = take_alone ? alone : best;
    bj = take_alone || key == ~0u ? i - 1 : bj;  // (no candidate matched: only with NaN, never seen)
    f[i] = best + lambda;
    cnt[i] = cnt[bj] + 1;
    par[i] = static_cast<std::uint32_t>(bj);
    lo = bj;
  }
}

// splice, into `out` (k + 1 bounds); false where the general splice returns nothing.
bool tiny_splice(const TinyPartition& p, const TinyPartition& q, std::size_t k, std::uint32_t* out) {
  const std::size_t kp = p.clusters, kq = q.clusters;
  std::size_t s = 1;
  for (std::size_t t = 0; t < kq; ++t) {
    while (p.bounds[s] <= q.bounds[t])
      ++s;
    if (t + 1 == s + (k - kp) && q.bounds[t + 1] <= p.bounds[s]) {
      std::size_t n = 0;
      for (std::size_t c = 0; c <= t; ++c)
        out[n++] = q.bounds[c];
      for (std::size_t c = s; c <= kp; ++c)
        out[n++] = p.bounds[c];
      return n == k + 1;
    }
  }
  return false;
}

// lagrangian_bounds with no hint (a tiny block is far below the coarse estimate's 8 x 4096 groups), 2 <= k <
// m. Writes k + 1 group bounds; false after 200 passes or an empty splice (the caller then runs the general
// path, as lagrangian_bounds' caller falls back to divide and conquer).
template <class G, class Solver = TinyLagrangian<G>>
bool tiny_lagrangian_bounds(const G& g, std::size_t k, std::uint32_t* out) {
  const std::size_t m = g.m;
  Solver lg(g);
  const double sse1 = g.cost(0, m);
  const double kd = static_cast<double>(k);
  TinyPartition slots[3];
  TinyPartition* a = &slots[0];
  TinyPartition* b = &slots[1];
  TinyPartition* s = &slots[2];
  a->lambda = kInf;
  a->clusters = 1;
  a->sse = sse1;
  a->bounds[0] = 0;
  a->bounds[1] = static_cast<std::uint32_t>(m);
  b->lambda = 0;
  b->clusters = m;
  for (std::size_t i = 0; i <= m; ++i)
    b->bounds[i] = static_cast<std::uint32_t>(i);
  b->sse = 0;  // every cluster one group: tiny_partition_sse adds m costs of exactly 0.0
  bool seen_a = false, seen_b = false;
  double lambda = 2 * sse1 / (kd * kd * kd);
  double jump = 1;
  double weight_a = 1, weight_b = 1;
  char last_side = 0;
  int secant_steps = 0;
  bool jumps_failed = false;
  for (int pass = 0; pass < 200; ++pass) {
    bool chord = false;
    const bool bracketed = seen_a && seen_b;
    if (bracketed || pass >= 24 || jumps_failed) {
      const std::size_t width = b->clusters - a->clusters;
      lambda = (a->sse - b->sse) / static_cast<double>(width);
      chord = true;
      if (bracketed && width > 8 && secant_steps < 12) {
        const double fa = std::log(static_cast<double>(a->clusters) / kd) * weight_a;
        const double fb = std::log(static_cast<double>(b->clusters) / kd) * weight_b;
        const double t = fa / (fa - fb);
        const double secant = std::exp(std::log(a->lambda) + t * (std::log(b->lambda) - std::log(a->lambda)));
        if (secant > b->lambda && secant < a->lambda) {
          lambda = secant;
          chord = false;
          ++secant_steps;
        }
      }
    }
    if (!(lambda > 0) || !std::isfinite(lambda)) {
      if (chord) return tiny_splice(*a, *b, k, out);
      jumps_failed = true;
      continue;
    }
    lg.solve(lambda, *s);
    if (s->clusters == k) {
      std::copy(s->bounds, s->bounds + k + 1, out);
      return true;
    }
    // The partition's SSE, which only a pass that missed K needs (for the chords and the bracket).
    s->sse = tiny_partition_sse(g, s->bounds, s->clusters);
    if (chord) {
      const double on_chord = a->sse + lambda * static_cast<double>(a->clusters);
      const bool inside = s->clusters > a->clusters && s->clusters < b->clusters;
      if (!inside || !(s->g < on_chord)) return tiny_splice(*a, *b, k, out);
    }
    const std::size_t before = s->clusters < k ? a->clusters : b->clusters;
    jump = s->clusters == before && !bracketed ? 2 * jump : 1;
    lambda *= std::clamp(std::pow(static_cast<double>(s->clusters) / kd, 3.0 * jump), 1e-3, 1e3);
    const char side = s->clusters < k ? 'a' : 'b';
    if (side == 'a') {
      seen_a = true;
      if (s->clusters > a->clusters || (s->clusters == a->clusters && s->sse <= a->sse)) std::swap(a, s);
      weight_a = 1;
      if (last_side == 'a') weight_b *= 0.5;
    } else {
      seen_b = true;
      if (s->clusters < b->clusters || (s->clusters == b->clusters && s->sse <= b->sse)) std::swap(b, s);
      weight_b = 1;
      if (last_side == 'b') weight_a *= 0.5;
    }
    last_side = side;
  }
  return false;
}

void check_tiny(std::size_t n, std::size_t k, std::size_t levels) {
  if (n == 0 || n > kTinyBlock || k == 0 || k > kTinyBlock || levels != k) {
    throw Error("kmeans_tiny: " + std::to_string(n) + " values, K = " + std::to_string(k) + ", " +
                std::to_string(levels) + " levels; needs 1.." + std::to_string(kTinyBlock) +
                " values, K in 1.." + std::to_string(kTinyBlock) + " and K levels");
  }
}

// Groups(v, w, 1) on n sorted values (weights all > 0 when Weighted): the same shift and prefix recurrences,
// in the same order and type.
template <bool Weighted>
void tiny_groups(const float* v, const float* w, std::size_t n, TinyGroups& g) {
  double shift = 0;
  if (Weighted) {
    double total = 0, total_w = 0;
    for (std::size_t i = 0; i < n; ++i) {
      total += static_cast<double>(w[i]) * v[i];
      total_w += w[i];
    }
    shift = total / total_w;
  } else {
    double total = 0;
    for (std::size_t i = 0; i < n; ++i)
      total += v[i];
    shift = total / static_cast<double>(n);
  }
  double s = 0, s2 = 0, ws = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (i == 0 || v[i] != v[i - 1]) {
      g.start[g.m] = static_cast<std::uint32_t>(i);
      g.s[g.m] = s;
      g.s2[g.m] = s2;
      g.w[g.m] = Weighted ? ws : static_cast<double>(i);
      ++g.m;
    }
    const double c = static_cast<double>(v[i]) - shift;
    if (Weighted) {
      const double wi = w[i];
      s += wi * c;
      s2 += wi * c * c;
      ws += wi;
    } else {
      s += c;
      s2 += c * c;
    }
  }
  const std::size_t m = g.m;
  g.start[m] = static_cast<std::uint32_t>(n);
  g.s[m] = s;
  g.s2[m] = s2;
  g.w[m] = Weighted ? ws : static_cast<double>(n);
}

// The tiny path on n sorted values `v` (with their weights `w`, all > 0, when Weighted): kmeans_sketch from
// its distinct count on. Returns false where the general path must run instead (the search did not settle,
// never seen).
template <bool Weighted>
bool tiny_sorted(const float* v, const float* w, std::size_t n, std::size_t k, std::span<double> levels,
                 const std::function<void(std::size_t)>& check_distinct) {
  std::size_t distinct = 1;
  for (std::size_t i = 1; i < n; ++i)
    distinct += v[i] != v[i - 1];
  if (distinct <= k) {  // the values, the last repeated (kmeans_sketch's few-distinct case)
    std::size_t c = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (i == 0 || v[i] != v[i - 1]) levels[c++] = v[i];
    for (; c < k; ++c)
      levels[c] = levels[c - 1];
    return true;
  }
  if (check_distinct) check_distinct(distinct);
  TinyGroups g;
  tiny_groups<Weighted>(v, w, n, g);
  const std::size_t m = g.m;
  std::uint32_t gb[kTinyCap];
  if (k == 1) {
    gb[0] = 0;
    gb[1] = static_cast<std::uint32_t>(m);
  } else if (!Weighted && m <= kTinyScanRun * k) {
    const TinyScanCosts costs(g);
    if (!tiny_lagrangian_bounds<TinyScanCosts, TinyLagrangian<TinyScanCosts, true>>(costs, k, gb))
      return false;
  } else if (Weighted && m <= kTinyScanRun * k && m <= kTinyTable) {
    // Weighted, the scan runs on the cost table's quotients (the general path's, to the same bits), each
    // computed when a pass first reads it.
    const TinyLazyCostTable costs(g);
    if (!tiny_lagrangian_bounds<TinyLazyCostTable, TinyLagrangian<TinyLazyCostTable, true>>(costs, k, gb))
      return false;
  } else if (m <= kTinyTable) {
    if (!tiny_lagrangian_bounds(TinyCostTable(g, Weighted), k, gb)) return false;
  } else {
    if (!tiny_lagrangian_bounds(g, k, gb)) return false;
  }
  // finish: each level its cluster's (weighted) mean summed directly, clamped to the cluster's range.
  for (std::size_t c = 0; c < k; ++c) {
    const std::size_t lo = g.start[gb[c]], hi = g.start[gb[c + 1]];
    double sum = 0, wsum = 0;
    if (Weighted) {
      for (std::size_t i = lo; i < hi; ++i) {
        sum += static_cast<double>(w[i]) * v[i];
        wsum += w[i];
      }
    } else {
      for (std::size_t i = lo; i < hi; ++i)
        sum += v[i];
      wsum = static_cast<double>(hi - lo);
    }
    levels[c] = std::clamp(sum / wsum, static_cast<double>(v[lo]), static_cast<double>(v[hi - 1]));
  }
  return true;
}

}  // namespace

void kmeans_tiny(std::span<const float> values, std::size_t k, std::span<double> levels,
                 const std::function<void(std::size_t)>& check_distinct) {
  const std::size_t n = values.size();
  check_tiny(n, k, levels.size());
  float v[kTinyBlock];
  std::copy(values.begin(), values.end(), v);
  sort_floats(std::span<float>(v, n));
  if (!tiny_sorted<false>(v, nullptr, n, k, levels, check_distinct)) {
    const SketchResult r = kmeans_sketch(values, {}, k, std::max(n, 2 * k));
    std::copy(r.centroids.begin(), r.centroids.end(), levels.begin());
  }
}

void kmeans_tiny(std::span<const float> values, std::span<const float> weights, std::size_t k,
                 std::span<double> levels, const std::function<void(std::size_t)>& check_distinct) {
  const std::size_t n = values.size();
  check_tiny(n, k, levels.size());
  if (weights.empty()) return kmeans_tiny(values, k, levels, check_distinct);
  // positive_weight_elements on the stack: the same checks (it names the fault when one fails), the same
  // total, the elements of positive weight in their order.
  bool bad = weights.size() != n;
  double total = 0;
  for (std::size_t i = 0; i < n && !bad; ++i) {
    bad = !std::isfinite(weights[i]) || weights[i] < 0;
    total += weights[i];
  }
  if (bad) positive_weight_elements(values, weights);                     // throws, naming the fault
  if (total == 0) return kmeans_tiny(values, k, levels, check_distinct);  // all zero: unweighted
  float v[kTinyBlock], w[kTinyBlock];
  std::size_t np = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (weights[i] > 0) {
      v[np] = values[i];
      w[np++] = weights[i];
    }
  }
  sort_pairs(std::span<float>(v, np), std::span<float>(w, np));
  if (!tiny_sorted<true>(v, w, np, k, levels, check_distinct)) {
    const SketchResult r = kmeans_sketch(values, weights, k, std::max(n, 2 * k));
    std::copy(r.centroids.begin(), r.centroids.end(), levels.begin());
  }
}

TinyPass tiny_scan_pass(std::span<const float> values, double lambda, bool exhaustive) {
  const std::size_t n = values.size();
  check_tiny(n, 1, 1);
  if (!(lambda > 0) || !std::isfinite(lambda)) throw Error("tiny_scan_pass: lambda must be finite and > 0");
  float v[kTinyBlock];
  std::copy(values.begin(), values.end(), v);
  sort_floats(std::span<float>(v, n));
  TinyGroups g;
  tiny_groups<false>(v, nullptr, n, g);
  const TinyScanCosts costs(g);
  double f[kTinyCap];
  std::uint32_t cnt[kTinyCap], par[kTinyCap];
  scan_pass(costs, lambda, f, cnt, par, exhaustive);
  TinyPass out;
  out.f = f[g.m];
  out.bounds.resize(cnt[g.m] + 1);
  tiny_backtrack(par, g.m, cnt[g.m], out.bounds.data());
  return out;
}

double kmeans_optimal_dp_bytes(std::size_t distinct) {
  // Groups: 3 prefix sums and a start per distinct value (32 bytes); a Lagrangian pass: F, counts, parents
  // and the deque (24); up to four partitions of at most M + 1 bounds (16).
  return 72.0 * static_cast<double>(distinct + 1);
}

double optimal_sse(const SortedBlock& d, std::size_t k) {
  if (k == 0) throw Error("optimal_sse: K = 0; K must be >= 1");
  const Groups g(d, true);
  if (k >= g.size()) return 0.0;
  return partition_sse(g, optimal_bounds(g, k, Method::lagrangian));
}

double optimal_sse(std::span<const float> values, std::span<const float> weights, std::size_t k) {
  if (values.empty()) throw Error("optimal_sse: an empty block has no codebook");
  return optimal_sse(SortedBlock(values, weights), k);
}

}  // namespace sqb::detail
