#include "detail/lloyd_1d.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numbers>
#include <queue>
#include <set>
#include <string>
#include <utility>

#include <boost/random/mersenne_twister.hpp>
#include <boost/random/uniform_real_distribution.hpp>

#include "detail/sort_keys.hpp"
#include "sqb/codebook.hpp"
#include "sqb/error.hpp"

namespace sqb::detail {

WeightedElements positive_weight_elements(std::span<const float> values, std::span<const float> weights) {
  WeightedElements out;
  if (weights.empty()) return out;
  if (weights.size() != values.size()) {
    throw Error("weights: " + std::to_string(weights.size()) + " weights for " +
                std::to_string(values.size()) + " values; give one weight per value (or none)");
  }
  double total = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (!std::isfinite(weights[i]) || weights[i] < 0) {
      throw Error("weights: element " + std::to_string(i) + " is " + std::to_string(weights[i]) +
                  "; weights must be finite and >= 0");
    }
    total += weights[i];
  }
  if (total == 0) return out;
  out.weighted = true;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (weights[i] > 0) {
      out.values.push_back(values[i]);
      out.weights.push_back(weights[i]);
    }
  }
  return out;
}

SortedBlock::SortedBlock(std::span<const float> block, std::span<const float> weights) {
  WeightedElements we = positive_weight_elements(block, weights);
  if (!we.weighted) {
    v_.assign(block.begin(), block.end());
    sort_floats(v_);
    double total = 0;
    for (const float x : v_)
      total += x;
    shift_ = total / static_cast<double>(v_.size());
    s_.resize(v_.size() + 1);
    s2_.resize(v_.size() + 1);
    abs_s_.resize(v_.size() + 1);
    s_[0] = s2_[0] = abs_s_[0] = 0;
    for (std::size_t i = 0; i < v_.size(); ++i) {
      const double c = static_cast<double>(v_[i]) - shift_;
      s_[i + 1] = s_[i] + c;
      s2_[i + 1] = s2_[i] + c * c;
      abs_s_[i + 1] = abs_s_[i] + std::fabs(s_[i + 1]);
    }
  } else {
    // Sort (value, weight) pairs: ties in value are ordered by weight, so the prefix sums (and every result)
    // do not depend on the input order.
    const std::size_t n = we.values.size();
    v_ = std::move(we.values);
    w_ = std::move(we.weights);
    sort_pairs(v_, w_);
    double total = 0, total_w = 0;
    for (std::size_t i = 0; i < n; ++i) {
      total += static_cast<double>(w_[i]) * v_[i];
      total_w += w_[i];
    }
    shift_ = total / total_w;
    s_.resize(n + 1);
    s2_.resize(n + 1);
    abs_s_.resize(n + 1);
    ws_.resize(n + 1);
    abs_ws_.resize(n + 1);
    s_[0] = s2_[0] = abs_s_[0] = ws_[0] = abs_ws_[0] = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double w = w_[i];
      const double c = static_cast<double>(v_[i]) - shift_;
      s_[i + 1] = s_[i] + w * c;
      s2_[i + 1] = s2_[i] + w * c * c;
      abs_s_[i + 1] = abs_s_[i] + std::fabs(s_[i + 1]);
      ws_[i + 1] = ws_[i] + w;
      abs_ws_[i + 1] = abs_ws_[i] + ws_[i + 1];
    }
  }
  distinct_ = v_.empty() ? 0 : 1;
  for (std::size_t i = 1; i < v_.size(); ++i)
    distinct_ += v_[i] != v_[i - 1];
}

bool SortedBlock::sum_is_accurate(std::size_t lo, std::size_t hi) const {
  // s_[hi] is built from s_[lo] by hi - lo additions, each rounding by at most eps |s_i|; the error already
  // in s_[lo] cancels in the difference.
  const double eps = std::numeric_limits<double>::epsilon();
  const double err = eps * (abs_s_[hi] - abs_s_[lo] + std::fabs(s_[hi]));
  const double scale = std::max(std::fabs(v_[lo]), std::fabs(v_[hi - 1]));
  if (w_.empty()) return err <= 1e-7 * scale * static_cast<double>(hi - lo);
  // Weighted: the mean's error is (err_s + |s| err_w / w) / w to first order; each product w * (x - shift)
  // adds its own rounding, at most eps w |x - shift|.
  const double w = weight(lo, hi);
  const double err_w = eps * (abs_ws_[hi] - abs_ws_[lo] + ws_[hi]);
  const double far = std::max(std::fabs(v_[lo] - shift_), std::fabs(v_[hi - 1] - shift_));
  return w > 0 && err + eps * w * far + std::fabs(sum(lo, hi)) * err_w / w <= 1e-7 * scale * w;
}

std::size_t SortedBlock::count_at_or_below(double t) const {
  return static_cast<std::size_t>(
      std::upper_bound(v_.begin(), v_.end(), t,
                       [](double a, float b) { return a < static_cast<double>(b); }) -
      v_.begin());
}

std::vector<double> SortedBlock::levels_if_few_distinct(std::size_t k) const {
  std::vector<double> out;
  for (std::size_t i = 0; i < v_.size(); ++i) {
    if (i == 0 || v_[i] != v_[i - 1]) {
      if (out.size() == k) return {};
      out.push_back(v_[i]);
    }
  }
  out.resize(k, out.back());
  return out;
}

namespace {

// Per-cluster statistics after an assignment: what the update and the empty-cluster rule need.
struct ClusterStats {
  std::vector<std::size_t> count;
  std::vector<double> sse;     // within-cluster SSE about the updated centroid
  std::vector<double> lo, hi;  // smallest and largest member
};

// Empty clusters are re-seeded deterministically, one at a time in index order: each takes the member
// farthest from its centroid (the smaller value on a tie) of the not-yet-split cluster with the largest SSE
// (the lower index on a tie) among those holding two or more distinct values. Both Lloyd implementations
// apply this same rule to the same statistics, so they keep producing the same iterates. Returns true if
// anything was re-seeded.
bool reseed_empty(std::vector<double>& c, ClusterStats& st) {
  const std::size_t k = c.size();
  bool changed = false;
  std::vector<bool> split(k, false);
  for (std::size_t j = 0; j < k; ++j) {
    if (st.count[j] != 0) continue;
    std::size_t donor = k;
    for (std::size_t m = 0; m < k; ++m) {
      if (st.count[m] == 0 || split[m] || !(st.hi[m] > st.lo[m])) continue;
      if (donor == k || st.sse[m] > st.sse[donor]) donor = m;
    }
    if (donor == k) continue;  // nothing left to split: fewer distinct values than centroids
    split[donor] = true;
    const double d_lo = c[donor] - st.lo[donor];
    const double d_hi = st.hi[donor] - c[donor];
    c[j] = d_hi > d_lo ? st.hi[donor] : st.lo[donor];
    changed = true;
  }
  if (changed) std::sort(c.begin(), c.end());
  return changed;
}

// tol = 0 means "run to the exact fixed point": the SSE is a difference of prefix sums, and late in a slow
// Lloyd run its per-iteration decrease can be smaller than that rounding noise, so "no decrease" is not a
// safe stopping test; only an unchanged assignment is.
bool should_stop(double prev_sse, double sse, double tol) {
  if (sse == 0) return true;
  if (tol <= 0 || !std::isfinite(prev_sse)) return false;
  return (prev_sse - sse) <= tol * prev_sse;
}

}  // namespace

LloydResult lloyd_sorted(const SortedBlock& data, std::vector<double> init, const LloydOptions& opt) {
  const std::size_t k = init.size();
  const std::size_t n = data.size();
  LloydResult r;
  r.centroids = std::move(init);
  std::vector<double>& c = r.centroids;
  std::vector<std::size_t> bounds(k + 1, 0), prev_bounds;
  ClusterStats st{std::vector<std::size_t>(k), std::vector<double>(k), std::vector<double>(k),
                  std::vector<double>(k)};
  const std::span<const float> v = data.values(), w = data.weights();
  double prev_sse = std::numeric_limits<double>::infinity();
  bool reseeded = false;
  for (int it = 0; it < opt.max_iter; ++it) {
    // Assignment: value x joins cluster j when t_{j-1} < x <= t_j, t_j = (c_j + c_{j+1}) / 2.
    bounds[0] = 0;
    bounds[k] = n;
    for (std::size_t j = 1; j < k; ++j)
      bounds[j] = data.count_at_or_below((c[j - 1] + c[j]) * 0.5);
    if (!reseeded && bounds == prev_bounds) {  // fixed point: the update would reproduce c exactly
      r.converged = true;
      break;
    }
    // Update.
    double sse = 0;
    for (std::size_t j = 0; j < k; ++j) {
      const std::size_t lo = bounds[j], hi = bounds[j + 1];
      st.count[j] = hi - lo;
      if (hi == lo) {
        st.sse[j] = 0;
        continue;
      }
      const double cnt = data.weight(lo, hi);
      st.lo[j] = v[lo];
      st.hi[j] = v[hi - 1];
      double mean = st.lo[j];
      st.sse[j] = 0;
      if (st.hi[j] > st.lo[j]) {
        if (data.sum_is_accurate(lo, hi)) {
          const double s = data.sum(lo, hi);
          mean = data.shift() + s / cnt;
          st.sse[j] = std::max(0.0, data.sum_sq(lo, hi) - s * s / cnt);
        } else if (w.empty()) {
          // Values spanning many orders of magnitude (zeros next to 1e31): the prefix sums cannot resolve
          // this cluster, so sum it directly (found by fuzz_spec: prefix-sum means left their clusters and
          // the centroids their order). On data of one scale only a few tiny clusters next to 0 at K >= 4096.
          double sum = 0;
          for (std::size_t i = lo; i < hi; ++i)
            sum += v[i];
          mean = sum / cnt;
          for (std::size_t i = lo; i < hi; ++i)
            st.sse[j] += (v[i] - mean) * (v[i] - mean);
        } else {
          // The same for weights: also tiny weights after huge ones, whose prefix-sum difference is noise.
          double sum = 0, wsum = 0;
          for (std::size_t i = lo; i < hi; ++i) {
            sum += static_cast<double>(w[i]) * v[i];
            wsum += w[i];
          }
          mean = sum / wsum;
          for (std::size_t i = lo; i < hi; ++i)
            st.sse[j] += w[i] * (v[i] - mean) * (v[i] - mean);
        }
      }
      // A mean lies within its cluster's range; the clamp only removes rounding.
      c[j] = std::clamp(mean, st.lo[j], st.hi[j]);
      sse += st.sse[j];
    }
    r.iterations = it + 1;
    r.sse = sse;
    reseeded = reseed_empty(c, st);
    prev_bounds = bounds;
    if (!reseeded && should_stop(prev_sse, sse, opt.tol)) {
      r.converged = true;
      break;
    }
    prev_sse = sse;
  }
  return r;
}

namespace {

// Lloyd on unsorted data, given how to label every value with a centroid: `assign(data, c, label)`. The
// update (one pass: weights, sums, squares about the current centroid, ranges), the empty-cluster rule and
// the stopping rules are shared by the two labelling strategies below. `w` is empty (unweighted) or holds the
// positive weights of `data`; the unweighted instance keeps the original arithmetic (no multiplications by
// 1).
template <bool Weighted, class Assign>
LloydResult lloyd_labelled(std::span<const float> data, std::span<const float> w, std::vector<double> init,
                           const LloydOptions& opt, Assign&& assign) {
  const std::size_t k = init.size();
  const std::size_t n = data.size();
  LloydResult r;
  r.centroids = std::move(init);
  std::vector<double>& c = r.centroids;
  std::vector<std::uint16_t> label(n), prev_label;  // K <= 65536
  std::vector<double> sum(k), sum_sq(k), wsum(Weighted ? k : 0);
  ClusterStats st{std::vector<std::size_t>(k), std::vector<double>(k), std::vector<double>(k),
                  std::vector<double>(k)};
  double prev_sse = std::numeric_limits<double>::infinity();
  bool reseeded = false;
  for (int it = 0; it < opt.max_iter; ++it) {
    assign(data, c, std::span<std::uint16_t>(label));
    if (!reseeded && label == prev_label) {
      r.converged = true;
      break;
    }
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(sum_sq.begin(), sum_sq.end(), 0.0);
    std::fill(wsum.begin(), wsum.end(), 0.0);
    std::fill(st.count.begin(), st.count.end(), 0);
    std::fill(st.lo.begin(), st.lo.end(), std::numeric_limits<double>::infinity());
    std::fill(st.hi.begin(), st.hi.end(), -std::numeric_limits<double>::infinity());
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint16_t j = label[i];
      // Squares about the current centroid (not about 0) keep the SSE free of cancellation.
      const double x = data[i], d = x - c[j];
      if constexpr (Weighted) {
        const double wi = w[i];
        sum[j] += wi * x;
        sum_sq[j] += wi * d * d;
        wsum[j] += wi;
      } else {
        sum[j] += x;
        sum_sq[j] += d * d;
      }
      ++st.count[j];
      st.lo[j] = std::min(st.lo[j], x);
      st.hi[j] = std::max(st.hi[j], x);
    }
    double sse = 0;
    for (std::size_t j = 0; j < k; ++j) {
      if (st.count[j] == 0) {
        st.sse[j] = 0;
        continue;
      }
      const double cnt = Weighted ? wsum[j] : static_cast<double>(st.count[j]);
      // A mean lies within its cluster's range (the clamp removes rounding, as in lloyd_sorted); the SSE
      // about it is the SSE about the old centroid minus cnt * (mean - old)^2.
      const double mean = std::clamp(sum[j] / cnt, st.lo[j], st.hi[j]);
      st.sse[j] = std::max(0.0, sum_sq[j] - cnt * (mean - c[j]) * (mean - c[j]));
      c[j] = mean;
      sse += st.sse[j];
    }
    r.iterations = it + 1;
    r.sse = sse;
    reseeded = reseed_empty(c, st);
    prev_label = label;
    if (!reseeded && should_stop(prev_sse, sse, opt.tol)) {
      r.converged = true;
      break;
    }
    prev_sse = sse;
  }
  return r;
}

// Runs lloyd_labelled on the values and weights that matter (see positive_weight_elements).
template <class Assign>
LloydResult lloyd_labelled_weighted(std::span<const float> data, std::span<const float> weights,
                                    std::vector<double> init, const LloydOptions& opt, Assign&& assign) {
  const WeightedElements we = positive_weight_elements(data, weights);
  if (!we.weighted) return lloyd_labelled<false>(data, {}, std::move(init), opt, assign);
  return lloyd_labelled<true>(we.values, we.weights, std::move(init), opt, assign);
}

}  // namespace

LloydResult lloyd_naive(std::span<const float> data, std::vector<double> init, const LloydOptions& opt,
                        std::span<const float> weights) {
  return lloyd_labelled_weighted(
      data, weights, std::move(init), opt,
      [](std::span<const float> x, const std::vector<double>& c, std::span<std::uint16_t> label) {
        // The nearest centroid by squared distance; a tie goes to the lower one when x is at or below their
        // midpoint, the rule lloyd_sorted applies. Rounding keeps the order of distances but can merge them:
        // for x = 5e31, (x - 0)^2 == (x - 1608)^2 in double, and "the lower one wins" then sent x to the
        // centroid farthest from it and broke the centroids' order (found by fuzz_spec).
        const std::size_t k = c.size();
        for (std::size_t i = 0; i < x.size(); ++i) {
          const double xi = x[i];
          std::size_t best = 0;
          double best_d = (xi - c[0]) * (xi - c[0]);
          for (std::size_t j = 1; j < k; ++j) {
            const double d = (xi - c[j]) * (xi - c[j]);
            if (d < best_d || (d == best_d && xi > (c[best] + c[j]) * 0.5)) {
              best_d = d;
              best = j;
            }
          }
          label[i] = static_cast<std::uint16_t>(best);
        }
      });
}

LloydResult lloyd_encoded(std::span<const float> data, std::vector<double> init, const LloydOptions& opt,
                          std::span<const float> weights) {
  return lloyd_labelled_weighted(
      data, weights, std::move(init), opt,
      [](std::span<const float> x, const std::vector<double>& c, std::span<std::uint16_t> label) {
        encode(Codebook::nearest(std::span<const double>(c)), x, label);
      });
}

std::vector<double> cosine_levels(double lo, double hi, std::size_t k) {
  const double center = 0.5 * (lo + hi);
  const double half_span = 0.5 * (hi - lo);
  std::vector<double> out(k);
  for (std::size_t i = 1; i <= k; ++i) {
    const double node =
        std::cos(static_cast<double>(2 * i - 1) * std::numbers::pi / static_cast<double>(2 * k));
    out[i - 1] = center + half_span * node;
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<double> init_uniform(const SortedBlock& d, std::size_t k) {
  const double lo = d.min(), hi = d.max();
  std::vector<double> out(k);
  if (k == 1) {
    out[0] = 0.5 * (lo + hi);
    return out;
  }
  for (std::size_t j = 0; j < k; ++j) {
    out[j] = lo + (hi - lo) * static_cast<double>(j) / static_cast<double>(k - 1);
  }
  return out;
}

std::vector<double> init_quantile(const SortedBlock& d, std::size_t k) {
  const std::size_t n = d.size();
  std::vector<double> out(k);
  if (!d.weighted()) {
    for (std::size_t j = 0; j < k; ++j) {
      const std::size_t rank = std::min(n - 1, (2 * j + 1) * n / (2 * k));
      out[j] = d.values()[rank];
    }
    return out;
  }
  // The first position whose cumulative weight exceeds the target (with unit weights: the rank above).
  const double total = d.total_weight();
  std::size_t i = 0;
  for (std::size_t j = 0; j < k; ++j) {
    // (2j + 1) W / (2K) in this order: with integer weights it is exact or rounds away from integers, so
    // unit weights give the ranks above.
    const double target = static_cast<double>(2 * j + 1) * total / static_cast<double>(2 * k);
    while (i + 1 < n && !(d.weight(0, i + 1) > target))
      ++i;
    out[j] = d.values()[i];
  }
  return out;
}

std::vector<double> init_cosine(const SortedBlock& d, std::size_t k) {
  return cosine_levels(d.min(), d.max(), k);
}

namespace {

// A candidate for the next greedy centre: the value of a gap between centres farthest from both ends.
struct GreedyCandidate {
  double dist;
  double value;
  bool operator<(const GreedyCandidate& o) const {  // max-heap: larger distance first, then smaller value
    if (dist != o.dist) return dist < o.dist;
    return value > o.value;
  }
};

}  // namespace

std::vector<double> init_greedy(const SortedBlock& d, float first, std::size_t k) {
  const std::span<const float> v = d.values();
  const auto idx_above = [&](double a) {  // first index with value > a
    return static_cast<std::size_t>(
        std::upper_bound(v.begin(), v.end(), a,
                         [](double x, float y) { return x < static_cast<double>(y); }) -
        v.begin());
  };
  const auto idx_at_or_above = [&](double b) {  // first index with value >= b
    return static_cast<std::size_t>(
        std::lower_bound(v.begin(), v.end(), b,
                         [](float x, double y) { return static_cast<double>(x) < y; }) -
        v.begin());
  };
  std::priority_queue<GreedyCandidate> heap;
  const double inf = std::numeric_limits<double>::infinity();
  // Push the best candidate of the open gap (a, b) between centres (a = -inf / b = +inf at the ends).
  const auto push_gap = [&](double a, double b) {
    const std::size_t lo = std::isinf(a) ? 0 : idx_above(a);
    const std::size_t hi = std::isinf(b) ? v.size() : idx_at_or_above(b);
    if (lo >= hi) return;
    const auto dist = [&](double x) { return std::min(x - a, b - x); };
    if (std::isinf(a)) {
      heap.push({b - v[lo], v[lo]});
      return;
    }
    if (std::isinf(b)) {
      heap.push({v[hi - 1] - a, v[hi - 1]});
      return;
    }
    const std::size_t m = std::clamp(idx_above((a + b) * 0.5), lo, hi);  // first value above the midpoint
    GreedyCandidate best{-1, 0};
    if (m > lo) best = {dist(v[m - 1]), v[m - 1]};
    if (m < hi && (best.dist < 0 || best < GreedyCandidate{dist(v[m]), v[m]})) best = {dist(v[m]), v[m]};
    heap.push(best);
  };
  std::set<double> centres{static_cast<double>(first)};
  push_gap(-inf, first);
  push_gap(first, inf);
  while (centres.size() < k && !heap.empty()) {
    const GreedyCandidate c = heap.top();
    heap.pop();
    const auto it = centres.insert(c.value).first;
    const double left = it == centres.begin() ? -inf : *std::prev(it);
    const double right = std::next(it) == centres.end() ? inf : *std::next(it);
    push_gap(left, c.value);
    push_gap(c.value, right);
  }
  return {centres.begin(), centres.end()};
}

std::vector<double> init_greedy_reference(std::span<const float> data, std::size_t k) {
  std::vector<double> centres{data[0]};
  std::vector<double> dist(data.size(), std::numeric_limits<double>::infinity());
  while (centres.size() < k) {
    const double c = centres.back();
    std::size_t best = 0;
    for (std::size_t i = 0; i < data.size(); ++i) {
      dist[i] = std::min(dist[i], std::abs(static_cast<double>(data[i]) - c));
      if (dist[i] > dist[best] || (dist[i] == dist[best] && data[i] < data[best])) best = i;
    }
    if (dist[best] == 0) break;
    centres.push_back(data[best]);
  }
  std::sort(centres.begin(), centres.end());
  return centres;
}

std::vector<double> init_kmeanspp(const SortedBlock& d, std::size_t k, std::uint64_t seed) {
  const std::span<const float> v = d.values();
  const std::size_t n = v.size();
  boost::random::mt19937_64 gen(seed);
  boost::random::uniform_real_distribution<double> unit(0.0, 1.0);

  // Segment tree over the D^2 weights; internal nodes are recomputed from their children (never updated by
  // differences), so rounding cannot drift.
  const std::size_t p = std::bit_ceil(n);
  std::vector<double> tree(2 * p, 0.0);
  const auto rebuild = [&](std::size_t lo, std::size_t hi) {  // leaves [lo, hi) changed
    std::size_t a = (lo + p) / 2, b = (hi - 1 + p) / 2;
    while (a >= 1) {
      for (std::size_t j = a; j <= b; ++j)
        tree[j] = tree[2 * j] + tree[2 * j + 1];
      if (a == 1) break;
      a /= 2;
      b /= 2;
    }
  };

  std::set<double> centres;
  const std::span<const float> w = d.weights();
  std::size_t first = 0;
  if (w.empty()) {
    first = std::min(n - 1, static_cast<std::size_t>(unit(gen) * static_cast<double>(n)));
  } else {
    // The first centre with probability proportional to its weight: the first position whose cumulative
    // weight exceeds u W.
    const double u = unit(gen) * d.total_weight();
    std::size_t lo = 0, hi = n - 1;
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (d.weight(0, mid + 1) > u)
        hi = mid;
      else
        lo = mid + 1;
    }
    first = lo;
  }
  const double c0 = v[first];
  centres.insert(c0);
  // Sampling weight w * D^2 (D^2 without weights).
  const auto mass = [&](std::size_t i, double c) {
    const double d2 = (v[i] - c) * (v[i] - c);
    return w.empty() ? d2 : w[i] * d2;
  };
  for (std::size_t i = 0; i < n; ++i)
    tree[p + i] = mass(i, c0);
  rebuild(0, n);

  while (centres.size() < k) {
    const double total = tree[1];
    if (!(total > 0)) break;
    double u = unit(gen) * total;
    std::size_t node = 1;
    while (node < p) {
      node *= 2;
      if (u >= tree[node]) {
        u -= tree[node];
        ++node;
      }
    }
    std::size_t i = std::min(node - p, n - 1);
    // Rounding in the descent can land on a zero-weight leaf next to the intended one; step to a positive
    // one.
    if (!(tree[p + i] > 0)) {
      std::size_t j = i;
      while (j > 0 && !(tree[p + j] > 0))
        --j;
      if (!(tree[p + j] > 0)) {
        j = i;
        while (j + 1 < n && !(tree[p + j] > 0))
          ++j;
      }
      i = j;
    }
    const double c = v[i];
    const auto it = centres.insert(c).first;
    const double left = it == centres.begin() ? -std::numeric_limits<double>::infinity() : *std::prev(it);
    const double right =
        std::next(it) == centres.end() ? std::numeric_limits<double>::infinity() : *std::next(it);
    // Values strictly between the midpoints to the neighbouring centres now have c as nearest centre.
    const double t_lo = (left + c) * 0.5, t_hi = (c + right) * 0.5;
    const std::size_t lo = std::isinf(left) ? 0 : d.count_at_or_below(t_lo);
    std::size_t hi = std::isinf(right) ? n : d.count_at_or_below(t_hi);
    if (lo >= hi) continue;
    for (std::size_t j = lo; j < hi; ++j)
      tree[p + j] = std::min(tree[p + j], mass(j, c));
    rebuild(lo, hi);
  }
  return {centres.begin(), centres.end()};
}

}  // namespace sqb::detail
