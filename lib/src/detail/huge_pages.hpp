#pragma once
// Big result buffers backed by transparent huge pages where the kernel offers them, private to the library.
//
// A fresh 4096 x 4096 result (64 MB of reconstruction, 16 MB of codes) is otherwise first touched a 4 KiB
// page at a time: some 20,000 page faults, a fifth of the pipeline's time at 1 thread. Asking for 2 MiB pages
// (madvise MADV_HUGEPAGE, honoured when /sys/kernel/mm/transparent_hugepage/enabled is `always` or `madvise`)
// turns them into a few dozen. Only the advice changes: the memory, its contents and the results are the
// same, and where the advice is not taken (another OS, THP off, no free huge pages) nothing else changes.

#include <cstddef>
#include <vector>

#include "sqb/buffer.hpp"

namespace sqb::detail {

using sqb::buffer_detail::advise_huge_pages;
using sqb::buffer_detail::kHugePage;

/// v.reserve(n), the new storage advised huge pages before it is first touched (when it grows).
template <class T, class A>
void reserve_advised(std::vector<T, A>& v, std::size_t n) {
  if (n > v.capacity()) {
    std::vector<T, A> fresh;
    fresh.reserve(n);
    advise_huge_pages(fresh.data(), n * sizeof(T));
    fresh.assign(v.begin(), v.end());
    v.swap(fresh);
  }
}

/// v.resize(n), with the new storage advised huge pages before it is first touched (when it grows).
template <class T, class A>
void resize_advised(std::vector<T, A>& v, std::size_t n) {
  reserve_advised(v, n);
  v.resize(n);
}

/// A vector of scratch on huge pages (sqb::Buffer: resize() leaves trivial elements unset).
template <class T>
using scratch_vector = Buffer<T>;

}  // namespace sqb::detail
