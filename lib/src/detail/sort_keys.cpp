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

// Tiny blocks (groups of 64 and less): the keys sorted in a stack buffer, no allocation (rank sort for
// floats, insertion sort for pairs). (Measured on 64 random values: a bitonic network written as plain loops
// was twice as slow as the insertion sort, its short inner stages neither vectorising nor avoiding
// store-to-load chains.)
constexpr std::size_t kTiny = 64;

// Small blocks of floats or pairs (the tiny k-means path takes up to 256): std::sort of the keys in a stack
// buffer.
constexpr std::size_t kStack = 256;

// Sorts n <= kTiny float keys by rank: each key's place is the number of keys below it plus the number of
// equal keys before it (a permutation, equal keys being equal bits). O(n^2) comparisons, but with no branch
// on the data and the counting loops vectorised (on signed keys, which SSE2 compares), it is about 2.5x
// faster than insertion sort on 64 random values (measured), whose branches mispredict.
void rank_sort(std::uint32_t* k, std::size_t n) {
  std::int32_t s[kTiny];
  std::uint32_t out[kTiny];
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<std::int32_t>(k[i] ^ 0x80000000u);  // signed order = unsigned order of the keys
  for (std::size_t i = 0; i < n; ++i) {
    const std::int32_t x = s[i];
    std::int32_t below = 0;
    for (std::size_t j = 0; j < n; ++j)
      below += s[j] < x;
    for (std::size_t j = 0; j < i; ++j)
      below += s[j] == x;
    out[below] = k[i];
  }
  std::copy(out, out + n, k);
}

template <class Key>
void insertion_sort(Key* k, std::size_t n) {
  for (std::size_t i = 1; i < n; ++i) {
    const Key x = k[i];
    std::size_t j = i;
    for (; j > 0 && k[j - 1] > x; --j)
      k[j] = k[j - 1];
    k[j] = x;
  }
}

}  // namespace

void sort_floats(std::span<float> v) {
  const std::size_t n = v.size();
  if (n < 2) return;
  if (n <= kTiny) {
    std::uint32_t k[kTiny];
    for (std::size_t i = 0; i < n; ++i)
      k[i] = float_order_key(std::bit_cast<std::uint32_t>(v[i]));
    rank_sort(k, n);
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
    insertion_sort(k, n);
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
