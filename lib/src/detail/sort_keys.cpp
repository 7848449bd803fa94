#include "detail/sort_keys.hpp"

#include <algorithm>
#include <bit>
#include <vector>

#include <hwy/contrib/sort/vqsort.h>

#include "detail/huge_pages.hpp"

namespace sqb::detail {

namespace {

// A Sorter owns per-instance state that sorting mutates, so one per thread.
const hwy::Sorter& sorter() {
  thread_local const hwy::Sorter s;
  return s;
}

// Below this vqsort's dispatch (and the random pivot seed it draws per call) costs more than it saves.
constexpr std::size_t kSmall = 128;

// Tiny blocks (groups of 64 and less): the keys sorted in a stack buffer, no allocation, by rank_sort_keys
// (floats and pairs), which replaced an insertion sort for pairs (whose branches mispredict). (Measured on 64
// random values: a bitonic network written as plain loops was twice as slow as that insertion sort, its
// short inner stages neither vectorising nor avoiding store-to-load chains.)
constexpr std::size_t kTiny = kRankSortMax;

// Small blocks of floats or pairs (the tiny k-means path takes up to 256): std::sort of the keys in a stack
// buffer.
constexpr std::size_t kStack = 256;

}  // namespace

void sort_floats(std::span<float> v) {
  const std::size_t n = v.size();
  if (n < 2) return;
  if (n <= kTiny) {
    std::uint32_t k[kTiny];
    for (std::size_t i = 0; i < n; ++i)
      k[i] = float_order_key(std::bit_cast<std::uint32_t>(v[i]));
    rank_sort_keys(k, n);
    for (std::size_t i = 0; i < n; ++i)
      v[i] = std::bit_cast<float>(float_from_order_key(k[i]));
    return;
  }
  if (n <= kStack) {
    std::uint32_t k[kStack];
    for (std::size_t i = 0; i < n; ++i)
      k[i] = float_order_key(std::bit_cast<std::uint32_t>(v[i]));
    std::sort(k, k + n);
    for (std::size_t i = 0; i < n; ++i)
      v[i] = std::bit_cast<float>(float_from_order_key(k[i]));
    return;
  }
  scratch_vector<std::uint32_t> keys(n);
  std::uint32_t* k = keys.data();
  for (std::size_t i = 0; i < n; ++i)
    k[i] = float_order_key(std::bit_cast<std::uint32_t>(v[i]));
  if (n < kSmall)
    std::sort(k, k + n);
  else
    sorter()(k, n, hwy::SortAscending());
  for (std::size_t i = 0; i < n; ++i)
    v[i] = std::bit_cast<float>(float_from_order_key(k[i]));
}

void sort_pairs(std::span<float> v, std::span<float> w) {
  const std::size_t n = v.size();
  if (n < 2) return;
  if (n <= kTiny) {
    std::uint64_t k[kTiny];
    for (std::size_t i = 0; i < n; ++i)
      k[i] = static_cast<std::uint64_t>(float_order_key(std::bit_cast<std::uint32_t>(v[i]))) << 32 |
             std::bit_cast<std::uint32_t>(w[i]);
    rank_sort_keys(k, n);
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = std::bit_cast<float>(float_from_order_key(static_cast<std::uint32_t>(k[i] >> 32)));
      w[i] = std::bit_cast<float>(static_cast<std::uint32_t>(k[i]));
    }
    return;
  }
  if (n <= kStack) {
    std::uint64_t k[kStack];
    for (std::size_t i = 0; i < n; ++i)
      k[i] = static_cast<std::uint64_t>(float_order_key(std::bit_cast<std::uint32_t>(v[i]))) << 32 |
             std::bit_cast<std::uint32_t>(w[i]);
    std::sort(k, k + n);
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = std::bit_cast<float>(float_from_order_key(static_cast<std::uint32_t>(k[i] >> 32)));
      w[i] = std::bit_cast<float>(static_cast<std::uint32_t>(k[i]));
    }
    return;
  }
  scratch_vector<std::uint64_t> keys(n);
  for (std::size_t i = 0; i < n; ++i) {
    keys[i] = static_cast<std::uint64_t>(float_order_key(std::bit_cast<std::uint32_t>(v[i]))) << 32 |
              std::bit_cast<std::uint32_t>(w[i]);
  }
  if (n < kSmall)
    std::sort(keys.begin(), keys.end());
  else
    sorter()(keys.data(), n, hwy::SortAscending());
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = std::bit_cast<float>(float_from_order_key(static_cast<std::uint32_t>(keys[i] >> 32)));
    w[i] = std::bit_cast<float>(static_cast<std::uint32_t>(keys[i]));
  }
}

}  // namespace sqb::detail
