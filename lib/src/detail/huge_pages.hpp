#pragma once
// Big result buffers backed by transparent huge pages where the kernel offers them, private to the library.
//
// A fresh 4096 x 4096 result (64 MB of reconstruction, 16 MB of codes) is otherwise first touched a 4 KiB
// page at a time: some 20,000 page faults, a fifth of the pipeline's time at 1 thread. Asking for 2 MiB pages
// (madvise MADV_HUGEPAGE, honoured when /sys/kernel/mm/transparent_hugepage/enabled is `always` or `madvise`)
// turns them into a few dozen. Only the advice changes: the memory, its contents and the results are the
// same, and where the advice is not taken (another OS, THP off, no free huge pages) nothing else changes.

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace sqb::detail {

/// The size of a transparent huge page on x86-64 Linux.
inline constexpr std::size_t kHugePage = std::size_t{1} << 21;

/// Advises huge pages for the whole 2 MiB pages inside [p, p + bytes); ignored below 4 MiB or off Linux.
inline void advise_huge_pages(void* p, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t kHuge = kHugePage;
  if (bytes < 2 * kHuge) return;
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

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

/// An allocator for big scratch: blocks of 4 MiB and more start on a 2 MiB boundary and are advised huge
/// pages as a whole (a block from plain new starts anywhere, and its ragged ends fault 4 KiB at a time), and
/// elements of a trivial type are left uninitialised by resize() (no zeroing pass over scratch that is
/// written before it is read; the kernel hands out zeroed pages anyway).
template <class T>
struct HugePageAllocator {
  using value_type = T;

  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < 2 * kHugePage) return static_cast<T*>(::operator new(bytes));
    void* p = ::operator new (bytes, std::align_val_t{kHugePage});
    advise_huge_pages(p, bytes);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) < 2 * kHugePage)
      ::operator delete(p);
    else
      ::operator delete (p, std::align_val_t{kHugePage});
  }
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;  // default-initialised: no zeroing for trivial types
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};

/// A vector of scratch on huge pages (see HugePageAllocator; resize() leaves trivial elements unset).
template <class T>
using scratch_vector = std::vector<T, HugePageAllocator<T>>;

}  // namespace sqb::detail
