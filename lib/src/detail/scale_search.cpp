#include "detail/scale_search.hpp"

#include <algorithm>
#include <boost/math/quadrature/gauss.hpp>
#include <boost/math/tools/minima.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

namespace sqb::detail {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Sum of (x - level)^2 over a run of floats. Four partial sums break the dependency chain of the additions
// (a single double accumulator is bound by the add latency, and the compiler may not reassociate).
double run_sse(const float* x, std::size_t n, double level) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const double d0 = x[i] - level, d1 = x[i + 1] - level, d2 = x[i + 2] - level, d3 = x[i + 3] - level;
    a0 += d0 * d0;
    a1 += d1 * d1;
    a2 += d2 * d2;
    a3 += d3 * d3;
  }
  for (; i < n; ++i) {
    const double d = x[i] - level;
    a0 += d * d;
  }
  return (a0 + a1) + (a2 + a3);
}

double run_sum(const float* x, std::size_t n) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += x[i];
    a1 += x[i + 1];
    a2 += x[i + 2];
    a3 += x[i + 3];
  }
  for (; i < n; ++i)
    a0 += x[i];
  return (a0 + a1) + (a2 + a3);
}

// Calls f(i, lo, hi) for every cell i of the codebook s*T that holds sorted[lo, hi) (non-empty runs only
// when walking by value). The rule is the shared encoder's: x goes to the lower level when it is at or below
// the midpoint. With no more cells than values the K-1 boundaries are binary-searched in the data (O(K log
// n)); otherwise each value's nearest level is binary-searched in the table (O(n log K)).
template <class F>
void for_each_cell(std::span<const float> sorted, std::span<const double> t, double s, F&& f) {
  const std::size_t k = t.size(), n = sorted.size();
  if (k <= n) {
    std::size_t lo = 0;
    for (std::size_t i = 0; i + 1 < k; ++i) {
      const double mid = 0.5 * (s * t[i] + s * t[i + 1]);
      const std::size_t hi = static_cast<std::size_t>(
          std::upper_bound(sorted.begin() + static_cast<std::ptrdiff_t>(lo), sorted.end(), mid,
                           [](double m, float x) { return m < static_cast<double>(x); }) -
          sorted.begin());
      if (hi > lo) f(i, lo, hi);
      lo = hi;
    }
    if (n > lo) f(k - 1, lo, n);
    return;
  }
  std::size_t lo = 0;
  while (lo < n) {
    const double x = sorted[lo];
    // First level >= x, then the nearer of it and its lower neighbour (a tie goes to the lower one).
    std::size_t j = static_cast<std::size_t>(
        std::lower_bound(t.begin(), t.end(), x, [s](double ti, double v) { return s * ti < v; }) - t.begin());
    if (j == k) {
      j = k - 1;
    } else if (j > 0 && x - s * t[j - 1] <= s * t[j] - x) {
      j = j - 1;
    }
    std::size_t hi = lo + 1;
    while (hi < n && sorted[hi] == sorted[lo])
      ++hi;
    f(j, lo, hi);
    lo = hi;
  }
}

// Brent's method inside [lo, hi]: precision 2^-26 relative (the SSE is flat to second order at a vertex, so
// a finer scale changes the SSE by less than 1e-15 of itself).
template <class F>
std::pair<double, double> brent(F&& f, double lo, double hi) {
  std::uintmax_t max_iter = 80;
  return boost::math::tools::brent_find_minima(f, lo, hi, 26, max_iter);
}

// For smooth objectives (the Gaussian MSE): evaluates f on reference * 2^(j/8) for j in [j_lo, j_hi], then
// runs Brent in the brackets of the three lowest local minima of the grid. Returns the best point seen.
template <class F>
ScaleFit grid_then_brent(F&& f, double reference, int j_lo, int j_hi) {
  constexpr int kPerOctave = 8;
  constexpr std::size_t kBrackets = 3;
  const std::size_t m = static_cast<std::size_t>(j_hi - j_lo + 1);
  std::vector<double> s(m), v(m);
  ScaleFit best{0, std::numeric_limits<double>::infinity(), 0};
  for (std::size_t i = 0; i < m; ++i) {
    s[i] = reference * std::exp2(static_cast<double>(j_lo + static_cast<int>(i)) / kPerOctave);
    v[i] = f(s[i]);
    if (v[i] < best.value) best = {s[i], v[i], 0};
  }
  // Local minima of the grid (a plateau counts once, at its first point), lowest first.
  std::vector<std::size_t> minima;
  for (std::size_t i = 0; i < m; ++i) {
    const bool left_ok = i == 0 || v[i] < v[i - 1];
    const bool right_ok = i + 1 == m || v[i] <= v[i + 1];
    if (left_ok && right_ok) minima.push_back(i);
  }
  std::sort(minima.begin(), minima.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  if (minima.size() > kBrackets) minima.resize(kBrackets);
  for (const std::size_t i : minima) {
    const double lo = s[i == 0 ? 0 : i - 1], hi = s[i + 1 == m ? m - 1 : i + 1];
    const auto [x, fx] = brent(f, lo, hi);
    if (fx < best.value) best = {x, fx, 0};
  }
  return best;
}

}  // namespace

double scaled_table_sse(std::span<const float> sorted, std::span<const double> table, double s) {
  double sse = 0;
  for_each_cell(sorted, table, s, [&](std::size_t i, std::size_t lo, std::size_t hi) {
    sse += run_sse(sorted.data() + lo, hi - lo, s * table[i]);
  });
  return sse;
}

namespace {

// One sign of a block as weighted points in order of increasing |x|: each point stands for a run of sorted
// values (equal values, or a bin of values within a relative width epsilon) by their mean.
struct Points {
  std::vector<double> abs;  // |mean|, ascending
  std::vector<double> sum;  // sum of the values (signed)
  std::vector<double> weight;
  std::vector<double> sum_prefix, weight_prefix;  // [j] = over points < j
};

// Groups sorted values (all of one sign, given in order of increasing |x|) into points. epsilon = 0 merges
// only equal values (exact); epsilon > 0 also merges a run while its largest |x| is within (1 + epsilon) of
// its smallest, and every value below `floor` in magnitude into one point.
template <class It>
Points make_points(It first, It last, double epsilon, double floor) {
  Points p;
  p.sum_prefix.push_back(0);
  p.weight_prefix.push_back(0);
  while (first != last) {
    const double start = std::fabs(static_cast<double>(*first));
    const double limit = start < floor ? floor : start * (1 + epsilon);
    double sum = 0, w = 0;
    while (first != last && std::fabs(static_cast<double>(*first)) <= limit) {
      sum += *first;
      w += 1;
      ++first;
    }
    p.abs.push_back(std::fabs(sum) / w);
    p.sum.push_back(sum);
    p.weight.push_back(w);
    p.sum_prefix.push_back(p.sum_prefix.back() + sum);
    p.weight_prefix.push_back(p.weight_prefix.back() + w);
  }
  return p;
}

struct Block {
  Points pos, neg;
  double zero_weight = 0;
  double sxx = 0;  // sum x^2 over the block
};

Block make_block(std::span<const float> sorted, double epsilon, double floor) {
  const auto first_nonneg = std::lower_bound(sorted.begin(), sorted.end(), 0.0f);
  const auto first_pos = std::upper_bound(sorted.begin(), sorted.end(), 0.0f);
  Block b;
  b.pos = make_points(first_pos, sorted.end(), epsilon, floor);
  b.neg = make_points(std::make_reverse_iterator(first_nonneg), sorted.rend(), epsilon, floor);
  b.zero_weight = static_cast<double>(first_pos - first_nonneg);
  b.sxx = run_sse(sorted.data(), sorted.size(), 0.0);
  return b;
}

constexpr std::size_t kCandidates = 4;
constexpr std::size_t kLinearLists = 24;  // up to this many event lists, a linear scan instead of a heap

// The breakpoint sweep (see the header) over the pieces in [s_lo, s_hi] (s_lo >= 0). Returns the scales of
// the best vertices by the sweep's running sums, which lose digits to cancellation (sum x^2 - sum(x T_a)^2 /
// sum(T_a^2) when the SSE is tiny next to sum x^2), so the caller re-evaluates them directly.
std::vector<double> sweep_candidates(const Block& b, std::span<const double> t, double s_lo, double s_hi) {
  const std::size_t k = t.size();
  std::vector<double> mid(k - 1);
  for (std::size_t i = 0; i + 1 < k; ++i)
    mid[i] = 0.5 * (t[i] + t[i + 1]);
  const auto zero_cell =
      static_cast<std::size_t>(std::lower_bound(mid.begin(), mid.end(), 0.0) - mid.begin());  // #{m_i < 0}

  // s -> 0+: negative values in cell 0, positive ones in cell K-1, zeros in zero_cell.
  double sxt = t[0] * b.neg.sum_prefix.back() + t[k - 1] * b.pos.sum_prefix.back();
  double stt = b.neg.weight_prefix.back() * t[0] * t[0] + b.pos.weight_prefix.back() * t[k - 1] * t[k - 1] +
               b.zero_weight * t[zero_cell] * t[zero_cell];

  // One event list per non-zero midpoint. Positive m_i: the positive points by increasing |x| cross it at
  // s = |x| / m_i and move from cell i+1 to cell i. Negative m_i: the negative points by increasing |x| cross
  // it at s = |x| / |m_i| and move from cell i to cell i+1. Events at equal s (equal midpoints) may come in
  // any order, and so may all events before s_lo: the updates telescope, so a list's events up to s_lo are
  // applied at once from the prefix sums.
  struct List {
    const Points* p;
    double rate;       // 1 / |m_i|
    double d_t, d_t2;  // T_to - T_from, T_to^2 - T_from^2
    std::size_t end;   // one past the last event <= s_hi
  };
  struct Event {
    double s;
    std::uint32_t list, pos;
  };
  std::vector<List> lists;
  std::vector<Event> heap;
  for (std::size_t i = 0; i + 1 < k; ++i) {
    List l{};
    if (mid[i] > 0) {
      l = {&b.pos, 1 / mid[i], t[i] - t[i + 1], t[i] * t[i] - t[i + 1] * t[i + 1], 0};
    } else if (mid[i] < 0) {
      l = {&b.neg, -1 / mid[i], t[i + 1] - t[i], t[i + 1] * t[i + 1] - t[i] * t[i], 0};
    } else {
      continue;
    }
    const std::vector<double>& a = l.p->abs;
    const auto before = [&](double limit) {
      return static_cast<std::size_t>(
          std::partition_point(a.begin(), a.end(), [&](double v) { return v * l.rate <= limit; }) -
          a.begin());
    };
    const std::size_t first = s_lo > 0 ? before(s_lo) : 0;
    l.end = std::isinf(s_hi) ? a.size() : before(s_hi);
    sxt += l.p->sum_prefix[first] * l.d_t;
    stt += l.p->weight_prefix[first] * l.d_t2;
    if (first < l.end) {
      heap.push_back(
          {a[first] * l.rate, static_cast<std::uint32_t>(lists.size()), static_cast<std::uint32_t>(first)});
    }
    lists.push_back(l);
  }
  std::vector<std::pair<double, double>> best;  // (approximate SSE, scale), ascending, at most kCandidates
  auto offer = [&](double value, double s) {
    if (best.size() == kCandidates && !(value < best.back().first)) return;
    best.insert(std::upper_bound(best.begin(), best.end(), std::make_pair(value, s)), {value, s});
    if (best.size() > kCandidates) best.pop_back();
  };
  if (s_lo == 0) offer(b.sxx, 0.0);  // every level 0
  // The piece on [a, c] is sxx - 2 s sxt + s^2 stt; its vertex sxt / stt, if inside, is a candidate.
  auto check = [&](double a, double c) {
    if (stt > 0 && sxt > 0 && sxt >= a * stt && sxt <= c * stt) {
      const double v = sxt / stt;
      offer(std::max(0.0, b.sxx - sxt * v), v);
    }
  };
  double s_prev = s_lo;
  auto apply = [&](Event& e) {  // applies e and advances it to its list's next event (s = inf at the end)
    if (e.s > s_prev) {
      check(s_prev, e.s);
      s_prev = e.s;
    }
    const List& l = lists[e.list];
    sxt += l.p->sum[e.pos] * l.d_t;
    stt += l.p->weight[e.pos] * l.d_t2;
    e.s = ++e.pos < l.end ? l.p->abs[e.pos] * l.rate : kInf;
  };
  if (heap.size() <= kLinearLists) {
    // Few lists: a branch-free scan for the smallest s beats a heap, whose comparisons mispredict.
    std::vector<double> next(heap.size());
    for (std::size_t i = 0; i < heap.size(); ++i)
      next[i] = heap[i].s;
    for (;;) {
      std::size_t m = 0;
      for (std::size_t i = 1; i < next.size(); ++i)
        m = next[i] < next[m] ? i : m;
      if (next.empty() || next[m] == kInf) break;
      apply(heap[m]);
      next[m] = heap[m].s;
    }
  } else {
    // A binary min-heap on s with replace-top (an event is usually followed by its list's next one).
    auto sift_down = [&](std::size_t i) {
      const std::size_t n = heap.size();
      const Event e = heap[i];
      for (;;) {
        std::size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap[c + 1].s < heap[c].s) ++c;
        if (!(heap[c].s < e.s)) break;
        heap[i] = heap[c];
        i = c;
      }
      heap[i] = e;
    };
    for (std::size_t i = heap.size(); i-- > 0;)
      sift_down(i);
    while (!heap.empty()) {
      apply(heap.front());
      if (heap.front().s == kInf) {
        heap.front() = heap.back();
        heap.pop_back();
      }
      if (!heap.empty()) sift_down(0);
    }
  }
  check(s_prev, s_hi);

  std::vector<double> scales;
  for (const auto& c : best)
    scales.push_back(c.second);
  return scales;
}

// The best of the sweep's candidates, evaluated on the block.
ScaleFit best_candidate(std::span<const float> sorted, std::span<const double> t,
                        const std::vector<double>& candidates, ScaleFit best) {
  for (const double s : candidates) {
    const double v = scaled_table_sse(sorted, t, s);
    ++best.evaluations;
    if (v < best.value) best = {s, v, best.evaluations};
  }
  return best;
}

// Sum of squared distances from the sorted values to [lo, hi] (lo <= 0 <= hi): a lower bound on the SSE of
// every scale whose levels all lie in [lo, hi] (the cost of clipping).
double clip_cost(std::span<const float> sorted, double lo, double hi) {
  double c = 0;
  for (std::size_t i = 0; i < sorted.size() && sorted[i] < lo; ++i)
    c += (sorted[i] - lo) * (sorted[i] - lo);
  for (std::size_t i = sorted.size(); i-- > 0 && sorted[i] > hi;)
    c += (sorted[i] - hi) * (sorted[i] - hi);
  return c;
}

// Sum of squared distances from the values in (neg, pos) to the set {0 if zero_level} U (-inf, neg] U
// [pos, inf) (neg <= 0 <= pos; an infinite end stands for "no level on that side"): a lower bound on the SSE
// of every scale whose levels all lie in that set (the cost of the gap around zero).
double gap_cost(std::span<const float> sorted, double neg, double pos, bool zero_level) {
  const auto first = std::upper_bound(sorted.begin(), sorted.end(), neg,
                                      [](double v, float x) { return v < static_cast<double>(x); });
  double c = 0;
  for (auto it = first; it != sorted.end() && static_cast<double>(*it) < pos; ++it) {
    const double x = *it;
    double d = std::min(x - neg, pos - x);
    if (zero_level) d = std::min(d, std::fabs(x));
    c += d * d;
  }
  return c;
}

// A window [s_lo, s_hi] holding every scale whose SSE can be below `bound`: scales below s_lo clip too much,
// scales above s_hi leave too wide a gap around zero. Both costs are monotone in s; each end is found to
// 1/64 octave by bisection on log s, rounded outwards.
std::pair<double, double> prune(std::span<const float> sorted, std::span<const double> t, double reference,
                                double bound) {
  double t_lo = 0, t_hi = 0, t_neg = -kInf, t_pos = kInf;
  bool zero_level = false;
  for (const double v : t) {
    t_lo = std::min(t_lo, v), t_hi = std::max(t_hi, v);
    if (v < 0) t_neg = t_neg == -kInf ? v : std::max(t_neg, v);
    if (v > 0) t_pos = std::min(t_pos, v);
    zero_level = zero_level || v == 0;
  }
  auto clip = [&](double s) { return clip_cost(sorted, s * t_lo, s * t_hi); };              // decreasing in s
  auto gap = [&](double s) { return gap_cost(sorted, s * t_neg, s * t_pos, zero_level); };  // increasing
  // Walk out from the reference an octave at a time until the bound holds (at most kRange octaves; beyond
  // that the window stays open), then bisect that octave to 1/64 octave, keeping the safe side.
  constexpr int kRange = 64;
  double s_lo = 0, s_hi = kInf;
  for (int o = 0; o < kRange; ++o) {
    if (clip(reference * std::exp2(-o)) >= bound) {
      double a = -o, b = a + 1;  // clip(2^a ref) >= bound, and (for o > 0) clip(2^b ref) < bound
      while (o > 0 && b - a > 1.0 / 64) {
        const double m = 0.5 * (a + b);
        (clip(reference * std::exp2(m)) >= bound ? a : b) = m;
      }
      s_lo = reference * std::exp2(a);
      break;
    }
  }
  for (int o = 0; o < kRange; ++o) {
    if (gap(reference * std::exp2(o)) >= bound) {
      double a = o - 1, b = o;  // gap(2^b ref) >= bound, and (for o > 0) gap(2^a ref) < bound
      while (o > 0 && b - a > 1.0 / 64) {
        const double m = 0.5 * (a + b);
        (gap(reference * std::exp2(m)) >= bound ? b : a) = m;
      }
      s_hi = reference * std::exp2(b);
      break;
    }
  }
  return {s_lo, s_hi};
}

}  // namespace

ScaleFit best_block_scale(std::span<const float> sorted, std::span<const double> table,
                          std::size_t max_events) {
  double tmax = 0;
  for (const double t : table)
    tmax = std::max(tmax, std::fabs(t));
  const double xmax =
      sorted.empty() ? 0.0 : std::max(std::fabs(double{sorted.front()}), std::fabs(double{sorted.back()}));
  if (tmax == 0 || xmax == 0 || table.size() == 1) {
    // Every level is 0, or a single level s*T_0 whose best scale is the least-squares one.
    const double s = table.size() == 1 && table[0] != 0 && !sorted.empty()
                         ? std::max(0.0, run_sum(sorted.data(), sorted.size()) /
                                             (static_cast<double>(sorted.size()) * table[0]))
                         : 0.0;
    return {s, scaled_table_sse(sorted, table, s), 1};
  }
  const ScaleFit none{0, std::numeric_limits<double>::infinity(), 0};
  const std::size_t n = sorted.size(), k = table.size();
  const Block exact = make_block(sorted, 0.0, 0.0);
  if (n * (k - 1) <= max_events) {
    // Only the scales that can beat the absmax scale need sweeping.
    const double absmax_scale = xmax / tmax;
    const ScaleFit start{absmax_scale, scaled_table_sse(sorted, table, absmax_scale), 1};
    const auto [s_lo, s_hi] = prune(sorted, table, absmax_scale, start.value);
    return best_candidate(sorted, table, sweep_candidates(exact, table, s_lo, s_hi), start);
  }
  // Large block: first the sweep over geometric bins of relative width epsilon (all values below 2^-20
  // max|x| in one bin per sign), at most about max_events / (K-1) of them. Every value keeps its position
  // within epsilon, so the tails, which decide the optimum of heavy-tailed blocks, stay resolved (evenly
  // spaced order statistics lose them). Then the exact sweep of the whole block, but only over the window (1
  // + w)^+-1 around that optimum, w = 2% + 16 epsilon.
  const double epsilon =
      std::max(std::ldexp(1.0, -10),
               2.0 * 20.0 * std::log(2.0) * static_cast<double>(k - 1) / static_cast<double>(max_events));
  const Block binned = make_block(sorted, epsilon, std::ldexp(xmax, -20));
  ScaleFit best = best_candidate(sorted, table, sweep_candidates(binned, table, 0, kInf), none);
  if (best.scale > 0) {
    const double w = 1.02 + 16 * epsilon;
    best =
        best_candidate(sorted, table, sweep_candidates(exact, table, best.scale / w, best.scale * w), best);
  }
  return best;
}

double gaussian_table_mse(std::span<const double> table, double s) {
  const std::size_t k = table.size();
  // int_a^inf (z - m)^2 phi(z) dz in closed form; erfc keeps Q(a) accurate far in the upper tail.
  auto upper_tail = [](double a, double m) {
    const double q = 0.5 * std::erfc(a / std::sqrt(2.0));
    const double phi = std::exp(-0.5 * a * a) / std::sqrt(2.0 * M_PI);
    return (1 + m * m) * q + (a - 2 * m) * phi;
  };
  if (k == 1) return 1 + s * table[0] * s * table[0];
  auto mid = [&](std::size_t i) { return 0.5 * (s * table[i] + s * table[i + 1]); };
  // Lower end cell (-inf, b_0] by the mirror image z -> -z of an upper tail.
  double mse = upper_tail(-mid(0), -s * table[0]) + upper_tail(mid(k - 2), s * table[k - 1]);
  // Bounded cells: Gauss-Legendre on pieces at most 0.5 wide, clipped to [-40, 40] (phi(40) ~ 1e-348).
  constexpr double kEdge = 40.0, kPiece = 0.5;
  for (std::size_t i = 1; i + 1 < k; ++i) {
    const double a = std::max(mid(i - 1), -kEdge), b = std::min(mid(i), kEdge);
    if (!(b > a)) continue;
    const double m = s * table[i];
    auto f = [m](double z) { return (z - m) * (z - m) * std::exp(-0.5 * z * z); };
    const auto pieces = static_cast<int>(std::ceil((b - a) / kPiece));
    const double w = (b - a) / pieces;
    double cell = 0;
    for (int p = 0; p < pieces; ++p) {
      cell += boost::math::quadrature::gauss<double, 10>::integrate(f, a + p * w,
                                                                    p + 1 == pieces ? b : a + (p + 1) * w);
    }
    mse += cell / std::sqrt(2.0 * M_PI);
  }
  return mse;
}

ScaleFit best_gaussian_scale(std::span<const double> table) {
  double tmax = 0;
  for (const double t : table)
    tmax = std::max(tmax, std::fabs(t));
  if (tmax == 0) throw std::invalid_argument("best_gaussian_scale: the table is all zeros");
  int evaluations = 0;
  auto mse = [&](double s) {
    ++evaluations;
    return gaussian_table_mse(table, s);
  };
  ScaleFit best = grid_then_brent(mse, 1.0 / tmax, -80, 48);
  best.evaluations = evaluations;
  return best;
}

}  // namespace sqb::detail
