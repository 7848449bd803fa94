// The tiny blocks' sort (sort_floats and sort_pairs on at most 64 values): a rank sort whose counting loops
// are compiled once per Highway target (foreach_target re-includes this file) and chosen at run time. A rank
// sort gives every key its place, so every target produces the same permutation: the sorted keys, equal keys
// in their input order.

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL  // as in encode_simd.cpp: AVX-512 CPUs run their own code in the portable build
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "detail/sort_keys.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "detail/rank_sort_simd.cpp"
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace sqb::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Key i's place is the number of keys j with (key_j, j) < (key_i, i): keys below it, and equal keys before
// it. One vector holds the places of a run of consecutive i; each key j is broadcast and compared with the
// run. For j before the run, key_j <= key_i counts; after it, key_j < key_i; inside it, the lane's own
// position decides. No branch depends on the keys. TU is the unsigned key (32-bit float keys, 64-bit pair
// keys), TS its signed twin.
template <typename TU, typename TS>
void RankSort(TU* HWY_RESTRICT k, std::size_t n) {
  const hn::ScalableTag<TS> d;
  using V = hn::Vec<decltype(d)>;
  const std::size_t lanes = hn::Lanes(d);
  constexpr std::size_t kMax = kRankSortMax;
  constexpr TU kTop = TU{1} << (sizeof(TU) * 8 - 1);
  // Keys as signed integers (flipping the top bit maps unsigned order to signed order, which every target
  // compares), padded to whole vectors (the padding's places are never read).
  HWY_ALIGN TS s[kMax + hn::MaxLanes(d)];
  HWY_ALIGN TS place[kMax + hn::MaxLanes(d)];
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<TS>(k[i] ^ kTop);
  for (std::size_t i = n; i < n + lanes; ++i)
    s[i] = 0;
  const V position0 = hn::Iota(d, 0);
  for (std::size_t c = 0; c < n; c += lanes) {
    const V x = hn::Load(d, s + c);
    // Minus the count (a true mask is -1). Before the run, key_j <= x_i is all c keys but those above x_i.
    V below = hn::Set(d, -static_cast<TS>(c));
    for (std::size_t j = 0; j < c; ++j)
      below = hn::Sub(below, hn::VecFromMask(d, hn::Lt(x, hn::Set(d, s[j]))));
    const std::size_t run_end = std::min(n, c + lanes);
    for (std::size_t j = c; j < run_end; ++j) {
      const V sj = hn::Set(d, s[j]);
      const auto before = hn::Lt(hn::Set(d, static_cast<TS>(j - c)), position0);
      const auto counts = hn::Or(hn::Lt(sj, x), hn::And(before, hn::Eq(sj, x)));
      below = hn::Add(below, hn::VecFromMask(d, counts));
    }
    for (std::size_t j = run_end; j < n; ++j)
      below = hn::Add(below, hn::VecFromMask(d, hn::Lt(hn::Set(d, s[j]), x)));
    hn::Store(hn::Neg(below), d, place + c);
  }
  TU out[kMax];
  for (std::size_t i = 0; i < n; ++i)
    out[place[i]] = k[i];
  std::copy(out, out + n, k);
}

void RankSortKernel(std::uint32_t* HWY_RESTRICT k, std::size_t n) {
  RankSort<std::uint32_t, std::int32_t>(k, n);
}
void RankSortKernel64(std::uint64_t* HWY_RESTRICT k, std::size_t n) {
  RankSort<std::uint64_t, std::int64_t>(k, n);
}

}  // namespace HWY_NAMESPACE
}  // namespace sqb::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sqb::detail {

HWY_EXPORT(RankSortKernel);
HWY_EXPORT(RankSortKernel64);

void rank_sort_keys(std::uint32_t* k, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(RankSortKernel)(k, n);
}

void rank_sort_keys(std::uint64_t* k, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(RankSortKernel64)(k, n);
}

}  // namespace sqb::detail
#endif  // HWY_ONCE
