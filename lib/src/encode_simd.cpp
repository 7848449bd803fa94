// The encoder's and decoder's SIMD kernels, compiled once per Highway target (foreach_target re-includes this
// file) and chosen at run time (HWY_DYNAMIC_DISPATCH). The contract and the tiers are in
// detail/encode_simd.hpp; exactness arguments are next to the code that relies on them.

// Highway 1.0.3 compiles AVX3_DL (AVX-512 with VBMI2/VNNI/..., Ice Lake and Zen 4 on) only when asked, and
// stops with #error when the compiler's baseline already is AVX3_DL (-march=native there: the bench preset).
// Asking for it keeps that build working and lets such CPUs run their own code in the portable one.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "detail/encode_simd.hpp"

#ifndef SQB_ENCODE_SIMD_SHARED
#define SQB_ENCODE_SIMD_SHARED
namespace sqb::detail {

// What the search kernels need; built by ThresholdEncoder from the planner's choice.
struct SearchParams {
  const float* thresholds = nullptr;           // every window start + 2^steps - 1 entries are readable
  const std::int32_t* window_start = nullptr;  // per bucket; null when there is one bucket (start 0)
  float t0 = 0, inv_width = 0, top = 0;        // grid_bucket's parameters
  std::int32_t steps = 0;                      // binary-search steps over the window
};

// What the tree kernel needs (planner below): steps + (2^block_shift - 1) tables of W floats each (W =
// TreeWidth() of the target): the pivots once per search step, then one table per position inside a block.
struct TreeParams {
  const float* tables = nullptr;
  std::int32_t steps = 0;        // binary-search steps over the pivots
  std::int32_t block_shift = 0;  // log2 of the block size
};

}  // namespace sqb::detail
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "encode_simd.cpp"
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace sqb::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;
using VI = hn::Vec<DI>;

// Counts are int32 lanes (float compares give 32-bit masks); they are at most 65535, so the saturating
// demotion to the output type is exact.
template <class Index>
HWY_INLINE void store_counts(VI c, Index* HWY_RESTRICT out) {
  const hn::Rebind<Index, DI> dn;
  hn::StoreU(hn::DemoteTo(dn, c), dn, out);
}

// Four vectors of counts to 4 N consecutive outputs. On AVX-512 two packs and a lane permute narrow all four
// at once (DemoteTo would take four operations per vector).
template <class Index>
HWY_INLINE void store_counts4(VI c0, VI c1, VI c2, VI c3, Index* HWY_RESTRICT out) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  // packus works within 128-bit blocks: block b of the packed vector holds elements 4b..4b+3 of each input.
  const __m512i ab = _mm512_packus_epi32(c0.raw, c1.raw);
  const __m512i cd = _mm512_packus_epi32(c2.raw, c3.raw);
  if constexpr (sizeof(Index) == 1) {
    // dword 4b + j = elements 4b..4b+3 of input j; output dword m wants input m / 4, elements 4 (m % 4)...
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_si512(out, _mm512_permutexvar_epi32(order, _mm512_packus_epi16(ab, cd)));
  } else {
    // qword 2b + j = elements 4b..4b+3 of input j of the pair; output qword m wants input m / 4, block m % 4.
    const __m512i order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
    _mm512_storeu_si512(out, _mm512_permutexvar_epi64(order, ab));
    _mm512_storeu_si512(out + 32, _mm512_permutexvar_epi64(order, cd));
  }
#else
  const std::size_t lanes = hn::Lanes(DF());
  store_counts(c0, out);
  store_counts(c1, out + lanes);
  store_counts(c2, out + 2 * lanes);
  store_counts(c3, out + 3 * lanes);
#endif
}

// Runs `kernel` (float vector -> int32 counts) over x, whole vectors first; the last partial vector is
// padded with zeros in a buffer, so tails go through the same vector code as everything else.
template <class Index, class Kernel>
HWY_INLINE void for_each_vector(const float* HWY_RESTRICT x, std::size_t n, Index* HWY_RESTRICT out,
                                const Kernel& kernel) {
  const DF df;
  const std::size_t lanes = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    store_counts(kernel(hn::LoadU(df, x + i)), out + i);
  if (i < n) {
    constexpr std::size_t kMax = hn::MaxLanes(DF());
    HWY_ALIGN float xb[kMax] = {};
    HWY_ALIGN Index ob[kMax];
    std::memcpy(xb, x + i, (n - i) * sizeof(float));
    store_counts(kernel(hn::Load(df, xb)), ob);
    std::memcpy(out + i, ob, (n - i) * sizeof(Index));
  }
}

// Tier "count": every value against every threshold. Four vectors per pass share each broadcast threshold.
template <class Index>
void count_kernel(const float* HWY_RESTRICT t, std::size_t nt, const float* HWY_RESTRICT x, std::size_t n,
                  Index* HWY_RESTRICT out) {
  const DF df;
  const DI di;
  const std::size_t lanes = hn::Lanes(df);
  // Gt is false for NaN, so NaN counts 0; subtracting the all-ones mask adds 1.
  const auto above = [&](VF v, VF tj) { return hn::VecFromMask(di, hn::RebindMask(di, hn::Gt(v, tj))); };
  std::size_t i = 0;
  for (; i + 4 * lanes <= n; i += 4 * lanes) {
    const VF x0 = hn::LoadU(df, x + i), x1 = hn::LoadU(df, x + i + lanes);
    const VF x2 = hn::LoadU(df, x + i + 2 * lanes), x3 = hn::LoadU(df, x + i + 3 * lanes);
    VI c0 = hn::Zero(di), c1 = hn::Zero(di), c2 = hn::Zero(di), c3 = hn::Zero(di);
    for (std::size_t j = 0; j < nt; ++j) {
      const VF tj = hn::Set(df, t[j]);
      c0 = hn::Sub(c0, above(x0, tj));
      c1 = hn::Sub(c1, above(x1, tj));
      c2 = hn::Sub(c2, above(x2, tj));
      c3 = hn::Sub(c3, above(x3, tj));
    }
    store_counts4(c0, c1, c2, c3, out + i);
  }
  for_each_vector(x + i, n - i, out + i, [&](VF v) {
    VI c = hn::Zero(di);
    for (std::size_t j = 0; j < nt; ++j)
      c = hn::Sub(c, above(v, hn::Set(df, t[j])));
    return c;
  });
}

// Tier "search": the grid bucket gives a window start s with s <= index(x) <= s + S (planner below), then a
// branch-free binary search over the 2^steps - 1 thresholds from s (padded with +inf, which no value
// exceeds) adds the rest. Every lane follows the same steps; only the gathered addresses differ.
template <class Index>
void search_kernel(const SearchParams& p, const float* HWY_RESTRICT x, std::size_t n,
                   Index* HWY_RESTRICT out) {
  const DF df;
  const DI di;
  const VF t0 = hn::Set(df, p.t0), inv = hn::Set(df, p.inv_width), top = hn::Set(df, p.top);
  const float* HWY_RESTRICT t = p.thresholds;
  const std::int32_t* HWY_RESTRICT start = p.window_start;
  const std::int32_t first = p.steps > 0 ? std::int32_t{1} << (p.steps - 1) : 0;
  const auto one = [&](VF v) {
    VI pos = hn::Zero(di);
    if (start != nullptr) {
      // grid_bucket (encode_simd.hpp), operation for operation: the windows were built from it.
      VF u = hn::Mul(hn::Sub(v, t0), inv);
      u = hn::IfThenElseZero(hn::Gt(u, hn::Zero(df)), u);
      u = hn::Min(u, top);
      pos = hn::GatherIndex(di, start, hn::ConvertTo(di, u));
    }
    for (std::int32_t half = first; half > 0; half >>= 1) {
      const VF tv = hn::GatherIndex(df, t + (half - 1), pos);
      pos = hn::Add(pos, hn::IfThenElseZero(hn::RebindMask(di, hn::Lt(tv, v)), hn::Set(di, half)));
    }
    return pos;
  };
  // Two vectors per pass: their gather chains are independent, so their latencies overlap.
  const std::size_t lanes = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    const VI a = one(hn::LoadU(df, x + i));
    const VI b = one(hn::LoadU(df, x + i + lanes));
    store_counts(a, out + i);
    store_counts(b, out + i + lanes);
  }
  for_each_vector(x + i, n - i, out + i, one);
}

// Tier "tree": the thresholds live in registers as small tables read by lane permutes (no memory gathers).
// Blocks of Bs = 2^block_shift consecutive thresholds; the last one of each block is its pivot. A
// branch-free binary search over the pivots (one table) finds c, the number of pivots below x; every
// threshold of blocks before c is then below x and every one from block c's pivot on is not, so
// index(x) = c Bs + #{r < Bs - 1 : t[c Bs + r] < x}, found with one table per r (entry c = t[c Bs + r],
// +inf past the end). Table width W: the vector's lanes, or two vectors' on AVX-512 (one two-table
// permute).
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr std::size_t kTreeVectors = 2;
struct TreeIndex {
  VI raw;
};
HWY_INLINE TreeIndex tree_index(VI i) {
  return {i};
}
HWY_INLINE VF tree_lookup(const float* HWY_RESTRICT table, TreeIndex i) {
  const DF df;
  return VF{_mm512_permutex2var_ps(hn::LoadU(df, table).raw, i.raw.raw, hn::LoadU(df, table + 16).raw)};
}
#else
constexpr std::size_t kTreeVectors = 1;
using TreeIndex = decltype(hn::IndicesFromVec(DF(), hn::Zero(DI())));
HWY_INLINE TreeIndex tree_index(VI i) {
  return hn::IndicesFromVec(DF(), i);
}
HWY_INLINE VF tree_lookup(const float* HWY_RESTRICT table, TreeIndex i) {
  return hn::TableLookupLanes(hn::LoadU(DF(), table), i);
}
#endif

// Four vectors in lockstep (each step of the pivot search is a chain of dependent permutes and compares;
// four independent chains keep the units busy, and each table is loaded once for all four). kSteps > 0 and
// kShift >= 0 fix the step count and block size at compile time, so that both loops unroll and the tables
// can stay in registers; 0 / -1 take them from p.
template <int kSteps, int kShift, class Index>
void tree_kernel_fixed(const TreeParams& p, const float* HWY_RESTRICT x, std::size_t n,
                       Index* HWY_RESTRICT out) {
  const DF df;
  const DI di;
  const std::size_t width = kTreeVectors * hn::Lanes(df);
  const int steps = kSteps > 0 ? kSteps : p.steps;
  const int shift = kShift >= 0 ? kShift : p.block_shift;
  const std::size_t block_tables = (std::size_t{1} << shift) - 1;
  const float* HWY_RESTRICT pivots = p.tables;  // one table per step: entry c = pivot c + half - 1
  const float* HWY_RESTRICT blocks = p.tables + steps * width;
  // Subtracting the all-ones mask adds 1 where t < v.
  const auto add_if_below = [&](VI c, VF t, VF v) {
    return hn::Sub(c, hn::VecFromMask(di, hn::RebindMask(di, hn::Lt(t, v))));
  };
  // Step s probes pivot pos + half - 1; its table is stored shifted by half - 1 so that pos indexes it.
  const auto step = [&](VI pos, VF v, std::int32_t half, int s) {
    const VF probe = tree_lookup(pivots + s * width, tree_index(pos));
    return hn::IfThenElse(hn::RebindMask(di, hn::Lt(probe, v)), hn::Add(pos, hn::Set(di, half)), pos);
  };
  // Inside block c: blocks of up to 8 (a fixed shift of 1 to 3) are searched too, each probe chosen among
  // the tables by the masks already found (a blend instead of a count per table: 17 instead of 28
  // operations for 8); larger blocks count every table.
  const auto add_where = [&](VI c, hn::Mask<DF> m, std::int32_t k) {
    return hn::IfThenElse(hn::RebindMask(di, m), hn::Add(c, hn::Set(di, k)), c);
  };
  const auto in_block = [&](VI count, TreeIndex c, VF v) {
    const auto table = [&](int r) { return tree_lookup(blocks + r * width, c); };
    if constexpr (kShift == 1) {
      return add_where(count, hn::Lt(table(0), v), 1);
    } else if constexpr (kShift == 2) {
      const auto m1 = hn::Lt(table(1), v);
      const auto m2 = hn::Lt(hn::IfThenElse(m1, table(2), table(0)), v);
      return add_where(add_where(count, m1, 2), m2, 1);
    } else if constexpr (kShift == 3) {
      const auto m1 = hn::Lt(table(3), v);
      const auto m2 = hn::Lt(hn::IfThenElse(m1, table(5), table(1)), v);
      const VF low = hn::IfThenElse(m2, table(2), table(0)), high = hn::IfThenElse(m2, table(6), table(4));
      const auto m3 = hn::Lt(hn::IfThenElse(m1, high, low), v);
      return add_where(add_where(add_where(count, m1, 4), m2, 2), m3, 1);
    } else {
      for (std::size_t r = 0; r < block_tables; ++r)
        count = add_if_below(count, table(static_cast<int>(r)), v);
      return count;
    }
  };
  const auto single = [&](VF v) {
    VI pos = hn::Zero(di);
    for (int st = 0; st < steps; ++st)
      pos = step(pos, v, std::int32_t{1} << (steps - 1 - st), st);
    return in_block(hn::ShiftLeftSame(pos, shift), tree_index(pos), v);
  };
  const std::size_t lanes = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + 4 * lanes <= n; i += 4 * lanes) {
    const VF v0 = hn::LoadU(df, x + i), v1 = hn::LoadU(df, x + i + lanes);
    const VF v2 = hn::LoadU(df, x + i + 2 * lanes), v3 = hn::LoadU(df, x + i + 3 * lanes);
    VI p0 = hn::Zero(di), p1 = hn::Zero(di), p2 = hn::Zero(di), p3 = hn::Zero(di);
    HWY_UNROLL(8)
    for (int st = 0; st < steps; ++st) {
      const std::int32_t half = std::int32_t{1} << (steps - 1 - st);
      p0 = step(p0, v0, half, st);
      p1 = step(p1, v1, half, st);
      p2 = step(p2, v2, half, st);
      p3 = step(p3, v3, half, st);
    }
    if constexpr (kShift >= 1 && kShift <= 3) {
      store_counts4(in_block(hn::ShiftLeftSame(p0, shift), tree_index(p0), v0),
                    in_block(hn::ShiftLeftSame(p1, shift), tree_index(p1), v1),
                    in_block(hn::ShiftLeftSame(p2, shift), tree_index(p2), v2),
                    in_block(hn::ShiftLeftSame(p3, shift), tree_index(p3), v3), out + i);
    } else {
      VI c0 = hn::ShiftLeftSame(p0, shift), c1 = hn::ShiftLeftSame(p1, shift);
      VI c2 = hn::ShiftLeftSame(p2, shift), c3 = hn::ShiftLeftSame(p3, shift);
      const TreeIndex i0 = tree_index(p0), i1 = tree_index(p1), i2 = tree_index(p2), i3 = tree_index(p3);
      HWY_UNROLL(8)
      for (std::size_t r = 0; r < block_tables; ++r) {
        const float* table = blocks + r * width;
        c0 = add_if_below(c0, tree_lookup(table, i0), v0);
        c1 = add_if_below(c1, tree_lookup(table, i1), v1);
        c2 = add_if_below(c2, tree_lookup(table, i2), v2);
        c3 = add_if_below(c3, tree_lookup(table, i3), v3);
      }
      store_counts4(c0, c1, c2, c3, out + i);
    }
  }
  for_each_vector(x + i, n - i, out + i, single);
}

template <class Index>
void tree_kernel(const TreeParams& p, const float* HWY_RESTRICT x, std::size_t n, Index* HWY_RESTRICT out) {
  // The planner's shapes: one-threshold blocks with 1 to log2(W) pivot steps, or more than W/2 blocks (all
  // log2(W) steps) of 2^shift thresholds. The common ones get their own unrolled code.
  constexpr int kFullSteps = hwy::CeilLog2(kTreeVectors * hn::MaxLanes(DF()));
  if (p.block_shift == 0) {
    switch (p.steps) {
      case 1:
        return tree_kernel_fixed<1, 0>(p, x, n, out);
      case 2:
        return tree_kernel_fixed<2, 0>(p, x, n, out);
      case 3:
        return tree_kernel_fixed<3, 0>(p, x, n, out);
      case 4:
        return tree_kernel_fixed<4, 0>(p, x, n, out);
      case 5:
        return tree_kernel_fixed<5, 0>(p, x, n, out);
      default:
        return tree_kernel_fixed<0, 0>(p, x, n, out);
    }
  }
  if (kFullSteps > 0 && p.steps == kFullSteps) {
    switch (p.block_shift) {
      case 1:
        return tree_kernel_fixed<kFullSteps, 1>(p, x, n, out);
      case 2:
        return tree_kernel_fixed<kFullSteps, 2>(p, x, n, out);
      case 3:
        return tree_kernel_fixed<kFullSteps, 3>(p, x, n, out);
      default:
        return tree_kernel_fixed<kFullSteps, -1>(p, x, n, out);
    }
  }
  return tree_kernel_fixed<0, -1>(p, x, n, out);
}

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// Decode for 32 < K <= 32 kTables on AVX-512: one two-table permute per table of 32 levels (indexed by the
// code's low 5 bits), then a blend tree on bits 5, 6, 7. Cheaper than a 16-lane gather on the machines
// measured (experiments/microbench decode/...). Returns where the whole vectors end; `seen` collects the
// largest code.
template <std::size_t kTables, class Index>
std::size_t decode_permute_tables(const float* HWY_RESTRICT levels, std::size_t k,
                                  const Index* HWY_RESTRICT codes, std::size_t n, float* HWY_RESTRICT out,
                                  VI& seen) {
  const DF df;
  const DI di;
  const hn::Rebind<Index, DI> dn;
  const std::size_t lanes = hn::Lanes(df);
  HWY_ALIGN float table[32 * kTables] = {};
  std::copy(levels, levels + k, table);
  const VI last = hn::Set(di, static_cast<std::int32_t>(k - 1));
  const VI low = hn::Set(di, 31);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const VI c = hn::PromoteTo(di, hn::LoadU(dn, codes + i));
    seen = hn::Max(seen, c);
    const VI clamped = hn::Min(c, last);
    const TreeIndex at = tree_index(hn::And(clamped, low));
    const auto bit = [&](std::int32_t b) { return hn::RebindMask(df, hn::TestBit(clamped, hn::Set(di, b))); };
    VF v0 = tree_lookup(table, at), v1 = tree_lookup(table + 32, at);
    v0 = hn::IfThenElse(bit(32), v1, v0);
    if constexpr (kTables >= 4) {
      VF v2 = tree_lookup(table + 64, at), v3 = tree_lookup(table + 96, at);
      v2 = hn::IfThenElse(bit(32), v3, v2);
      if constexpr (kTables == 8) {
        VF v4 = tree_lookup(table + 128, at), v5 = tree_lookup(table + 160, at);
        VF v6 = tree_lookup(table + 192, at), v7 = tree_lookup(table + 224, at);
        v4 = hn::IfThenElse(bit(32), v5, v4);
        v6 = hn::IfThenElse(bit(32), v7, v6);
        v4 = hn::IfThenElse(bit(64), v6, v4);
        v0 = hn::IfThenElse(bit(64), v2, v0);
        v0 = hn::IfThenElse(bit(128), v4, v0);
      } else {
        v0 = hn::IfThenElse(bit(64), v2, v0);
      }
    }
    hn::StoreU(v0, df, out + i);
  }
  return i;
}
#endif

// Decode: levels[code] by permutes when the levels fit in registers, else a gather. Codes >= K are clamped
// for the load and reported afterwards.
template <class Index>
std::size_t decode_kernel(const float* HWY_RESTRICT levels, std::size_t k, const Index* HWY_RESTRICT codes,
                          std::size_t n, float* HWY_RESTRICT out) {
  const DF df;
  const DI di;
  const hn::Rebind<Index, DI> dn;
  const std::size_t lanes = hn::Lanes(df);
  const VI last = hn::Set(di, static_cast<std::int32_t>(k - 1));
  VI seen = hn::Zero(di);
  std::size_t i = 0;
  const std::size_t width = kTreeVectors * lanes;
  if (k <= width && width <= 32) {
    // Few levels: they fit one permute table (the tree tier's), no memory gather.
    HWY_ALIGN float table[32] = {};
    std::copy(levels, levels + k, table);
    for (; i + lanes <= n; i += lanes) {
      const VI c = hn::PromoteTo(di, hn::LoadU(dn, codes + i));
      seen = hn::Max(seen, c);
      hn::StoreU(tree_lookup(table, tree_index(hn::Min(c, last))), df, out + i);
    }
  }
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  else if (k <= 64) {
    i = decode_permute_tables<2>(levels, k, codes, n, out, seen);
  } else if (k <= 128) {
    i = decode_permute_tables<4>(levels, k, codes, n, out, seen);
  } else if (k <= 256) {
    i = decode_permute_tables<8>(levels, k, codes, n, out, seen);
  }
#endif
  for (; i + lanes <= n; i += lanes) {
    const VI c = hn::PromoteTo(di, hn::LoadU(dn, codes + i));
    seen = hn::Max(seen, c);
    hn::StoreU(hn::GatherIndex(df, levels, hn::Min(c, last)), df, out + i);
  }
  for (; i < n; ++i) {
    const std::size_t c = codes[i];
    seen = hn::Max(seen, hn::Set(di, static_cast<std::int32_t>(c)));
    out[i] = levels[std::min(c, k - 1)];
  }
  if (hn::GetLane(hn::MaxOfLanes(di, seen)) < static_cast<std::int32_t>(k)) return n;
  for (std::size_t j = 0; j < n; ++j) {
    if (codes[j] >= k) return j;
  }
  return n;
}

void EncodeCount8(const float* t, std::size_t nt, const float* x, std::size_t n, std::uint8_t* out) {
  count_kernel(t, nt, x, n, out);
}
void EncodeCount16(const float* t, std::size_t nt, const float* x, std::size_t n, std::uint16_t* out) {
  count_kernel(t, nt, x, n, out);
}
void EncodeSearch8(const SearchParams& p, const float* x, std::size_t n, std::uint8_t* out) {
  search_kernel(p, x, n, out);
}
void EncodeSearch16(const SearchParams& p, const float* x, std::size_t n, std::uint16_t* out) {
  search_kernel(p, x, n, out);
}
void EncodeTree8(const TreeParams& p, const float* x, std::size_t n, std::uint8_t* out) {
  tree_kernel(p, x, n, out);
}
void EncodeTree16(const TreeParams& p, const float* x, std::size_t n, std::uint16_t* out) {
  tree_kernel(p, x, n, out);
}
std::size_t Lanes32() {
  return hn::Lanes(DF());
}
// The tree tier's table width on this target (0 when a table would not beat the count: one lane).
std::size_t TreeWidth() {
  const std::size_t w = kTreeVectors * hn::Lanes(DF());
  return w >= 4 && w <= 32 ? w : 0;
}
std::size_t Decode8(const float* levels, std::size_t k, const std::uint8_t* codes, std::size_t n,
                    float* out) {
  return decode_kernel(levels, k, codes, n, out);
}
std::size_t Decode16(const float* levels, std::size_t k, const std::uint16_t* codes, std::size_t n,
                     float* out) {
  return decode_kernel(levels, k, codes, n, out);
}

// Half -> float32, exactly. float16: the 15 magnitude bits shifted into a float32's exponent and mantissa
// fields are the value times 2^-112 (subnormal halves land on float32 subnormals), so one multiplication by
// 2^112 rebiases every finite value exactly; exponent 31 (inf, NaN) is set apart. bfloat16 is the top half
// of a float32.
template <bool kBfloat16>
void convert_half(const std::uint16_t* HWY_RESTRICT bits, std::size_t n, float* HWY_RESTRICT out) {
  const DF df;
  const DI di;
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<std::uint16_t, DF> d16;
  const std::size_t lanes = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto u = hn::PromoteTo(du, hn::LoadU(d16, bits + i));
    if constexpr (kBfloat16) {
      hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(u)), df, out + i);
    } else {
      const auto magnitude = hn::And(u, hn::Set(du, 0x7fffu));
      const auto shifted = hn::ShiftLeft<13>(magnitude);
      const auto finite = hn::BitCast(du, hn::Mul(hn::BitCast(df, shifted), hn::Set(df, 0x1p112f)));
      const auto special = hn::Or(shifted, hn::Set(du, 0x7f800000u));
      const auto is_special = hn::RebindMask(du, hn::Gt(hn::BitCast(di, magnitude), hn::Set(di, 0x7bff)));
      const auto sign = hn::ShiftLeft<16>(hn::And(u, hn::Set(du, 0x8000u)));
      hn::StoreU(hn::BitCast(df, hn::Or(hn::IfThenElse(is_special, special, finite), sign)), df, out + i);
    }
  }
  for (; i < n; ++i)
    out[i] = kBfloat16 ? bfloat16_to_float(bits[i]) : float16_to_float(bits[i]);
}

void ConvertFloat16(const std::uint16_t* bits, std::size_t n, float* out) {
  convert_half<false>(bits, n, out);
}
void ConvertBfloat16(const std::uint16_t* bits, std::size_t n, float* out) {
  convert_half<true>(bits, n, out);
}

void StreamFloor(const float* x, std::size_t n, std::uint8_t* out) {
  const DI di;
  const hn::RebindToUnsigned<DF> du;
  for_each_vector(x, n, out, [&](VF v) { return hn::BitCast(di, hn::ShiftRight<24>(hn::BitCast(du, v))); });
}

std::int64_t TargetBit() {
  return HWY_TARGET;
}

}  // namespace HWY_NAMESPACE
}  // namespace sqb::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sqb::detail {

HWY_EXPORT(EncodeCount8);
HWY_EXPORT(EncodeCount16);
HWY_EXPORT(EncodeSearch8);
HWY_EXPORT(EncodeSearch16);
HWY_EXPORT(EncodeTree8);
HWY_EXPORT(EncodeTree16);
HWY_EXPORT(TreeWidth);
HWY_EXPORT(Lanes32);
HWY_EXPORT(Decode8);
HWY_EXPORT(Decode16);
HWY_EXPORT(StreamFloor);
HWY_EXPORT(ConvertFloat16);
HWY_EXPORT(ConvertBfloat16);
HWY_EXPORT(TargetBit);

namespace {

// The cost model: vector operations per vector of N values (N = the target's lanes), from forcing each tier
// on AVX-512, AVX2, SSE4 and the scalar target (K = 2..256, 2^20 values). A gather costs about 4-7 N
// operations (a gathered element every ~1.5 cycles: on the machine measured, 16 gathered floats cost as
// much as ~50 compares), which is why K <= W^2 uses the register tables instead. The planner's own scalar
// work counts about one operation per bucket entry or threshold visited.
constexpr double kCountPerThreshold = 3;  // compare, mask to vector, subtract
constexpr double kCountFixed = 4;         // load, narrow, store
constexpr double kTreePerStep = 3;        // permute, compare, blend
constexpr double kTreePerBlockTable = 3;  // permute, compare, subtract
constexpr double kTreeFixed = 7;
constexpr double kSearchFixed = 8;          // load, bucket arithmetic, narrow, store
constexpr double kSearchGatherPerLane = 5;  // a gather: this many operations per lane (AVX-512 3.6, AVX2 7)
constexpr double kScalarGather = 40;        // the same on a one-lane target
constexpr double kSearchPerStep = 3;        // besides its gather: compare, blend, add
constexpr double kSetupPerBucket = 4;       // the start table sweep
constexpr double kSetupPerThreshold = 8;    // the pass that sizes every candidate grid's windows
// The grid's table is kept within this many buckets (4 bytes each): a lookup that misses the caches costs
// more than the steps it saves.
constexpr std::size_t kMaxBuckets = std::size_t{1} << 18;

struct Grid {
  float t0 = 0, inv_width = 0, top = 0;
  std::size_t buckets = 1;
  std::size_t window = 0;  // S
};

// A grid of B buckets over [t_0, t_{T-1}], or nothing when the thresholds are all equal or the range
// overflows.
bool grid_parameters(std::span<const float> t, std::size_t buckets, Grid& g) {
  const double span = static_cast<double>(t.back()) - static_cast<double>(t.front());
  if (!(span > 0)) return false;
  const float inv = static_cast<float>(static_cast<double>(buckets) / span);
  if (!std::isfinite(inv) || !(inv > 0)) return false;
  g.t0 = t.front();
  g.inv_width = inv;
  g.top = static_cast<float>(buckets - 1);
  g.buckets = buckets;
  return true;
}

// grid_bucket(x) with x - t0 already computed (the same float operations in the same order).
std::int32_t bucket_of_offset(float d, const Grid& g) {
  float u = d * g.inv_width;
  u = u > 0.0f ? u : 0.0f;
  u = u < g.top ? u : g.top;
  return static_cast<std::int32_t>(u);
}

// Exactness of the windows. Let b(x) = grid_bucket(x) (monotone non-decreasing, NaN -> 0), c_j = b(up(t_j))
// with up(t) the next float above t (the smallest float whose count includes t_j, since t_j < x iff
// up(t_j) <= x), and note c_j is non-decreasing in j. For any x with b(x) = m:
//   - c_j < m implies up(t_j) < x (else b(up(t_j)) >= b(x)), so t_j < x: index(x) >= #{j : c_j < m} =: s_m;
//   - t_j < x implies up(t_j) <= x, so c_j <= m: index(x) <= #{j : c_j <= m}.
// So index(x) lies in [s_m, s_m + #{j : c_j = m}], and S = max_m #{j : c_j = m} bounds every window. NaN has
// bucket 0 and s_0 = 0, and compares false with every threshold: index 0.
//
// start[m] = #{j : c_j < m} from the counts #{j : c_j = m} (an exclusive prefix sum, in place).
std::vector<std::int32_t> window_starts(std::vector<std::int32_t> counts) {
  std::int32_t below = 0;
  for (auto& c : counts) {
    const std::int32_t here = c;
    c = below;
    below += here;
  }
  return counts;
}

// The next float above a finite x (std::nextafter without the library call).
float next_up(float x) {
  if (x == 0.0f) return std::numeric_limits<float>::denorm_min();
  const std::uint32_t b = std::bit_cast<std::uint32_t>(x);
  return std::bit_cast<float>(x > 0.0f ? b + 1 : b - 1);
}

struct Tree {
  std::size_t width = 0;        // W, entries per table (0: no tree on this target)
  std::size_t block_shift = 0;  // blocks of 2^block_shift thresholds
  std::size_t steps = 0;        // binary-search steps over the pivots
};

// The smallest power-of-two block that leaves at most W blocks (T + 1 <= W Bs: the last block's pivot
// position is past the end), or width 0 when even blocks of W do not fit (T + 1 > W^2).
Tree tree_shape(std::size_t nt, std::size_t width) {
  Tree tr;
  if (width == 0 || nt + 1 > width * width) return tr;
  tr.width = width;
  while ((std::size_t{1} << tr.block_shift) * width < nt + 1)
    ++tr.block_shift;
  const std::size_t bs = std::size_t{1} << tr.block_shift;
  const std::size_t blocks = (nt + 1 + bs - 1) / bs;
  tr.steps = static_cast<std::size_t>(std::bit_width(blocks - 1));  // pivots: blocks - 1
  return tr;
}

struct Plan {
  EncodeTier tier = EncodeTier::count;
  Tree tree;
  Grid grid;                        // search; buckets == 1: the plain binary search
  std::size_t steps = 0;            // search: bit_width(window)
  std::vector<std::int32_t> start;  // search with a grid: each bucket's window start
};

std::size_t search_steps(std::size_t window) {
  return static_cast<std::size_t>(std::bit_width(window));
}

Plan choose_plan(std::span<const float> t, std::size_t n, const EncodeOptions& options) {
  const std::size_t nt = t.size();
  const double lanes = static_cast<double>(HWY_DYNAMIC_DISPATCH(Lanes32)());
  const double vectors = std::ceil(static_cast<double>(n) / lanes);
  // One-lane targets (HWY_SCALAR) emulate everything a lane at a time; their gathers cost far more.
  const double gather = (lanes > 1 ? kSearchGatherPerLane : kScalarGather) * lanes;
  const auto search_cost = [&](bool lookup, std::size_t steps) {
    return vectors *
           (kSearchFixed + (lookup ? gather : 0) + static_cast<double>(steps) * (gather + kSearchPerStep));
  };

  Plan count;  // tier count
  Plan tree;
  tree.tier = EncodeTier::tree;
  tree.tree = tree_shape(nt, HWY_DYNAMIC_DISPATCH(TreeWidth)());
  Plan binary;
  binary.tier = EncodeTier::search;
  binary.grid.window = nt;
  binary.steps = search_steps(nt);
  switch (options.tier) {
    case EncodeTier::count:
      return count;
    case EncodeTier::tree:
      if (tree.tree.width == 0) throw std::invalid_argument("encode: no tree tier for this many thresholds");
      return tree;
    case EncodeTier::search:
      if (options.buckets == 1) return binary;
      break;
    case EncodeTier::automatic:
      break;
  }

  // tier search with buckets 0: the best search (grid or not), never count or tree.
  const bool search_only = options.tier == EncodeTier::search;
  const double count_cost = search_only
                                ? std::numeric_limits<double>::infinity()
                                : vectors * (kCountFixed + kCountPerThreshold * static_cast<double>(nt));
  double best_cost = count_cost;
  Plan* best = &count;
  if (tree.tree.width != 0 && !search_only) {
    const double tree_cost =
        vectors * (kTreeFixed + kTreePerStep * static_cast<double>(tree.tree.steps) +
                   kTreePerBlockTable * static_cast<double>((std::size_t{1} << tree.tree.block_shift) - 1)) +
        static_cast<double>(nt);
    if (tree_cost < best_cost) {
      best_cost = tree_cost;
      best = &tree;
    }
  }
  const double binary_cost = search_cost(false, binary.steps) + static_cast<double>(nt);
  if (binary_cost < best_cost) {
    best_cost = binary_cost;
    best = &binary;
  }
  const bool forced_grid = search_only && options.buckets > 1;
  // No grid search costs less than a lookup and one step per value.
  if (!forced_grid && best_cost <= search_cost(true, 1)) return std::move(*best);

  // c_j = grid_bucket(up(t_j)) = bucket_of_offset(up(t_j) - t0, grid) for every threshold, into counts[c_j].
  const auto histogram = [&](const Grid& g, std::vector<std::int32_t>& counts) {
    counts.assign(g.buckets, 0);
    for (const float tj : t)
      ++counts[static_cast<std::size_t>(bucket_of_offset(next_up(tj) - t.front(), g))];
  };

  Plan grid = binary;
  if (forced_grid) {
    if (grid_parameters(t, options.buckets, grid.grid)) {
      std::vector<std::int32_t> counts;
      histogram(grid.grid, counts);
      grid.grid.window = static_cast<std::size_t>(*std::max_element(counts.begin(), counts.end()));
      grid.steps = search_steps(grid.grid.window);
      grid.start = window_starts(std::move(counts));
    }
    return grid;
  }

  // Candidate grids B = Bmax / 2^s come from one histogram: with inv_B = inv_Bmax 2^-s (exact), grid_bucket
  // for B is q >> s for q = grid_bucket for Bmax (scaling by a power of two commutes with rounding; subnormal
  // products floor to 0 either way; overflow clamps to the top either way), so the counts of grid B are sums
  // of 2^s neighbouring counts of grid Bmax. Grids of fewer than T/4 buckets (windows of 4 or more on
  // average) are not tried.
  const std::size_t base = std::bit_ceil(nt);
  // At most 16 buckets per threshold and one per four values: beyond that the table costs more to build
  // (and to keep in cache) than the steps it saves.
  const std::size_t smallest = std::max<std::size_t>(base / 4, 2);
  const std::size_t largest =
      std::min({kMaxBuckets, base * 16, std::max(smallest, std::bit_floor(std::max<std::size_t>(n / 4, 1)))});
  const double thresholds_pass = kSetupPerThreshold * static_cast<double>(nt);
  Grid finest;
  if (thresholds_pass >= best_cost || largest < smallest || !grid_parameters(t, largest, finest))
    return std::move(*best);
  std::vector<std::int32_t> counts;
  histogram(finest, counts);
  int best_shift = -1;
  std::size_t size = largest;
  for (int shift = 0; size >= smallest; ++shift, size /= 2) {
    if (shift > 0) {
      for (std::size_t m = 0; m < size; ++m)
        counts[m] = counts[2 * m] + counts[2 * m + 1];
    }
    const float inv = std::ldexp(finest.inv_width, -shift);
    if (!(inv > 0)) break;
    const auto window = static_cast<std::size_t>(*std::max_element(counts.begin(), counts.begin() + size));
    const std::size_t steps = search_steps(window);
    const double cost =
        search_cost(true, steps) + kSetupPerBucket * static_cast<double>(size + largest) + thresholds_pass;
    if (cost < best_cost) {
      best_cost = cost;
      best_shift = shift;
      grid.grid = finest;
      grid.grid.buckets = size;
      grid.grid.inv_width = inv;
      grid.grid.top = static_cast<float>(size - 1);
      grid.grid.window = window;
      grid.steps = steps;
    }
  }
  if (best_shift < 0) return std::move(*best);
  // The counts of the chosen grid: recomputed from its own bucket function (which is what the kernel runs),
  // in the histogram's buffer.
  histogram(grid.grid, counts);
  grid.start = window_starts(std::move(counts));
  return grid;
}

std::int64_t cpu_target_mask() {
  // Captured before any force_target mock (only force_target installs one, and it calls this first).
  static const std::int64_t mask = hwy::SupportedTargets();
  return mask;
}

}  // namespace

ThresholdEncoder::ThresholdEncoder(std::span<const float> t, std::size_t n, const EncodeOptions& options)
    : t_(t), n_(n), options_(options) {
  if (t_.empty()) return;
  Plan plan = choose_plan(t_, n, options);
  info_.tier = plan.tier;
  info_.steps = plan.tier == EncodeTier::tree ? plan.tree.steps : plan.steps;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  if (plan.tier == EncodeTier::tree) {
    const Tree& tr = plan.tree;
    const std::size_t bs = std::size_t{1} << tr.block_shift, w = tr.width;
    info_.block_size = bs;
    tree_width_ = w;
    // Pivot c = t[c Bs + Bs - 1]. Tables 0..steps-1: step s (half = 2^(steps-1-s)) has entry c = pivot
    // c + half - 1. Then table steps + r: entry c = t[c Bs + r]. +inf wherever past the end.
    const std::size_t steps = tr.steps;
    tables_.assign((steps + bs - 1) * w, kInf);
    const auto pivot = [&](std::size_t c) {
      return c * bs + bs - 1 < t_.size() ? t_[c * bs + bs - 1] : kInf;
    };
    for (std::size_t st = 0; st < steps; ++st) {
      const std::size_t half = std::size_t{1} << (steps - 1 - st);
      for (std::size_t c = 0; c + half - 1 < w; ++c)
        tables_[st * w + c] = pivot(c + half - 1);
    }
    for (std::size_t c = 0; c < w; ++c) {
      for (std::size_t r = 0; r + 1 < bs; ++r) {
        if (c * bs + r < t_.size()) tables_[(steps + r) * w + c] = t_[c * bs + r];
      }
    }
  } else if (plan.tier == EncodeTier::search) {
    const Grid& g = plan.grid;
    info_.buckets = g.buckets;
    info_.window = g.window;
    // The search reads 2^steps - 1 thresholds from each window start. Where that runs past the end, the
    // start moves back to T - (2^steps - 1): the window still holds every threshold the count can include
    // (it ends at T), and the ones added in front are below x (they precede the true start). Only when T
    // itself is shorter than a window (always so for the plain binary search, unless T = 2^steps - 1) are
    // the thresholds copied and padded with +inf, which no value exceeds.
    const std::size_t window = (std::size_t{1} << plan.steps) - 1;
    if (g.buckets > 1 && t_.size() >= window) {
      const auto last_start = static_cast<std::int32_t>(t_.size() - window);
      for (auto& st : plan.start)
        st = std::min(st, last_start);
    } else if (g.buckets > 1 || t_.size() != window) {
      padded_.assign(t_.size() + window, kInf);
      std::copy(t_.begin(), t_.end(), padded_.begin());
    }
    if (g.buckets > 1) {
      t0_ = g.t0;
      inv_width_ = g.inv_width;
      top_ = g.top;
      start_ = std::move(plan.start);
    }
  }
}

template <class Index>
void ThresholdEncoder::run(std::span<const float> x, std::span<Index> out) const {
  const std::size_t n = x.size();
  if (n == 0) return;
  if (t_.empty()) {
    std::fill(out.begin(), out.end(), Index{0});
    return;
  }
  if (info_.tier == EncodeTier::count) {
    if constexpr (sizeof(Index) == 1) {
      HWY_DYNAMIC_DISPATCH(EncodeCount8)(t_.data(), t_.size(), x.data(), n, out.data());
    } else {
      HWY_DYNAMIC_DISPATCH(EncodeCount16)(t_.data(), t_.size(), x.data(), n, out.data());
    }
  } else if (info_.tier == EncodeTier::tree) {
    if (HWY_DYNAMIC_DISPATCH(TreeWidth)() != tree_width_) {  // the target changed since planning
      ThresholdEncoder(t_, n_, options_).run(x, out);
      return;
    }
    TreeParams p;
    p.tables = tables_.data();
    p.steps = static_cast<std::int32_t>(info_.steps);
    p.block_shift = std::countr_zero(info_.block_size);
    if constexpr (sizeof(Index) == 1) {
      HWY_DYNAMIC_DISPATCH(EncodeTree8)(p, x.data(), n, out.data());
    } else {
      HWY_DYNAMIC_DISPATCH(EncodeTree16)(p, x.data(), n, out.data());
    }
  } else {
    SearchParams p;
    p.thresholds = padded_.empty() ? t_.data() : padded_.data();
    p.steps = static_cast<std::int32_t>(info_.steps);
    if (!start_.empty()) {
      p.window_start = start_.data();
      p.t0 = t0_;
      p.inv_width = inv_width_;
      p.top = top_;
    }
    if constexpr (sizeof(Index) == 1) {
      HWY_DYNAMIC_DISPATCH(EncodeSearch8)(p, x.data(), n, out.data());
    } else {
      HWY_DYNAMIC_DISPATCH(EncodeSearch16)(p, x.data(), n, out.data());
    }
  }
}

void ThresholdEncoder::encode(std::span<const float> x, std::span<std::uint8_t> out) const {
  run(x, out);
}
void ThresholdEncoder::encode(std::span<const float> x, std::span<std::uint16_t> out) const {
  run(x, out);
}

// A short input with few thresholds (a group of 64 at K <= 32) goes straight to the count tier: planning a
// tree (its tables on the heap) would cost more than encoding the group, and every tier gives the same codes.
constexpr std::size_t kShortInput = 1024, kShortThresholds = 31;

void encode_thresholds(std::span<const float> t, std::span<const float> x, std::span<std::uint8_t> out,
                       const EncodeOptions& options) {
  if (options.tier == EncodeTier::automatic && x.size() <= kShortInput && t.size() <= kShortThresholds) {
    HWY_DYNAMIC_DISPATCH(EncodeCount8)(t.data(), t.size(), x.data(), x.size(), out.data());
    return;
  }
  ThresholdEncoder(t, x.size(), options).encode(x, out);
}
void encode_thresholds(std::span<const float> t, std::span<const float> x, std::span<std::uint16_t> out,
                       const EncodeOptions& options) {
  if (options.tier == EncodeTier::automatic && x.size() <= kShortInput && t.size() <= kShortThresholds) {
    HWY_DYNAMIC_DISPATCH(EncodeCount16)(t.data(), t.size(), x.data(), x.size(), out.data());
    return;
  }
  ThresholdEncoder(t, x.size(), options).encode(x, out);
}

EncodePlanInfo encode_plan(std::span<const float> t, std::size_t n, const EncodeOptions& options) {
  return ThresholdEncoder(t, n, options).plan();
}

bool tree_fits(std::size_t thresholds) {
  return tree_shape(thresholds, HWY_DYNAMIC_DISPATCH(TreeWidth)()).width != 0;
}

std::size_t decode_levels(std::span<const float> levels, std::span<const std::uint8_t> codes,
                          std::span<float> out) {
  return HWY_DYNAMIC_DISPATCH(Decode8)(levels.data(), levels.size(), codes.data(), codes.size(), out.data());
}
std::size_t decode_levels(std::span<const float> levels, std::span<const std::uint16_t> codes,
                          std::span<float> out) {
  return HWY_DYNAMIC_DISPATCH(Decode16)(levels.data(), levels.size(), codes.data(), codes.size(), out.data());
}

void stream_floor(std::span<const float> x, std::span<std::uint8_t> out) {
  HWY_DYNAMIC_DISPATCH(StreamFloor)(x.data(), x.size(), out.data());
}

float float16_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu;
  const std::uint32_t mantissa = bits & 0x3ffu;
  std::uint32_t out = 0;
  if (exponent == 0x1f) {
    out = sign | 0x7f800000u | (mantissa << 13);  // inf, NaN (payload kept)
  } else if (exponent != 0) {
    out = sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 -> 127
  } else {
    // zero or subnormal: mantissa * 2^-24, exact in float32 (at most 10 significant bits)
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(out);
}

float bfloat16_to_float(std::uint16_t bits) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

void float16_to_float(std::span<const std::uint16_t> bits, std::span<float> out) {
  HWY_DYNAMIC_DISPATCH(ConvertFloat16)(bits.data(), bits.size(), out.data());
}
void bfloat16_to_float(std::span<const std::uint16_t> bits, std::span<float> out) {
  HWY_DYNAMIC_DISPATCH(ConvertBfloat16)(bits.data(), bits.size(), out.data());
}

namespace {

// Values converted a chunk at a time on the direct path: small enough to stay in L1 with their codes.
constexpr std::size_t kHalfChunk = 2048;

template <class Index>
void encode_half_impl(std::span<const float> t, std::span<const std::uint16_t> bits, bool bfloat16,
                      HalfPath path, std::span<Index> out) {
  const auto convert = [bfloat16](std::span<const std::uint16_t> b, std::span<float> f) {
    if (bfloat16) {
      bfloat16_to_float(b, f);
    } else {
      float16_to_float(b, f);
    }
  };
  const std::size_t n = bits.size();
  if (path == HalfPath::table) {
    std::vector<std::uint16_t> patterns(std::size_t{1} << 16);
    for (std::size_t b = 0; b < patterns.size(); ++b)
      patterns[b] = static_cast<std::uint16_t>(b);
    std::vector<float> values(patterns.size());
    convert(patterns, values);
    std::vector<Index> table(patterns.size());
    ThresholdEncoder(t, values.size()).encode(values, std::span<Index>(table));
    for (std::size_t i = 0; i < n; ++i)
      out[i] = table[bits[i]];
    return;
  }
  const ThresholdEncoder encoder(t, n);
  float chunk[kHalfChunk];
  for (std::size_t base = 0; base < n; base += kHalfChunk) {
    const std::size_t m = std::min(kHalfChunk, n - base);
    convert(bits.subspan(base, m), std::span<float>(chunk, m));
    encoder.encode(std::span<const float>(chunk, m), out.subspan(base, m));
  }
}

}  // namespace

void encode_half_bits(std::span<const float> t, std::span<const std::uint16_t> bits, bool bfloat16,
                      HalfPath path, std::span<std::uint8_t> out) {
  encode_half_impl(t, bits, bfloat16, path, out);
}
void encode_half_bits(std::span<const float> t, std::span<const std::uint16_t> bits, bool bfloat16,
                      HalfPath path, std::span<std::uint16_t> out) {
  encode_half_impl(t, bits, bfloat16, path, out);
}

std::vector<SimdTarget> compiled_targets() {
  std::vector<SimdTarget> out;
  for (std::int64_t rest = HWY_TARGETS; rest != 0; rest &= rest - 1) {
    const std::int64_t bit = rest & -rest;
    out.push_back({bit, hwy::TargetName(bit)});
  }
  return out;
}

bool cpu_supports(std::int64_t target_bit) {
  return (cpu_target_mask() & target_bit) != 0;
}

void force_target(std::int64_t target_bit) {
  const std::int64_t cpu = cpu_target_mask();
  if (target_bit != 0 &&
      ((target_bit & HWY_TARGETS) == 0 || (target_bit & cpu) == 0 || (target_bit & (target_bit - 1)) != 0)) {
    throw std::invalid_argument("force_target: target " + std::string(hwy::TargetName(target_bit)) +
                                " is not compiled in or not supported by this CPU");
  }
  hwy::SetSupportedTargetsForTest(target_bit);
}

std::string active_target() {
  return hwy::TargetName(HWY_DYNAMIC_DISPATCH(TargetBit)());
}

}  // namespace sqb::detail
#endif  // HWY_ONCE
