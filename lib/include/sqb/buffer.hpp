#pragma once
/// \file buffer.hpp
/// The storage of a result's big arrays (Quantized::decoded and Quantized::designs): a std::vector in every
/// way but two, both about what fresh storage costs, neither about its contents.
///  - resize() default-initialises new elements instead of value-initialising them: floats are left unset
///    rather than zeroed, and an aggregate such as BlockDesign gets its member initialisers without a memset
///    of the whole element first. The pipeline writes every element itself, and those zeroing passes ran on
///    one thread before the parallel work began (a fifth of a 4-bit quantization of 4096 x 4096 values in
///    groups of 64).
///  - Blocks of 4 MiB and more start on a 2 MiB boundary and are advised transparent huge pages as a whole
///    (madvise MADV_HUGEPAGE, honoured when /sys/kernel/mm/transparent_hugepage/enabled is `always` or
///    `madvise`), so first touching them costs a few dozen page faults instead of some 16,000. Where the
///    advice is not taken (another OS, THP off, no free huge pages) nothing else changes.
///
/// Read it like a vector (data, size, [], begin/end, a std::span); copy it out with
/// `std::vector<float>(b.begin(), b.end())`.

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace sqb {

namespace buffer_detail {

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

}  // namespace buffer_detail

/// The allocator of Buffer: blocks of 4 MiB and more start on a 2 MiB boundary and are advised huge pages
/// (a block from plain new starts anywhere, and its ragged ends fault 4 KiB at a time); elements of a
/// trivial type are default-initialised, that is left unset, by resize() (others get their default
/// constructor without a zeroing pass first).
template <class T>
struct BufferAllocator {
  using value_type = T;

  BufferAllocator() = default;
  template <class U>
  BufferAllocator(const BufferAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < 2 * buffer_detail::kHugePage) return static_cast<T*>(::operator new(bytes));
    void* p = ::operator new (bytes, std::align_val_t{buffer_detail::kHugePage});
    buffer_detail::advise_huge_pages(p, bytes);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) < 2 * buffer_detail::kHugePage)
      ::operator delete(p);
    else
      ::operator delete (p, std::align_val_t{buffer_detail::kHugePage});
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
  bool operator==(const BufferAllocator<U>&) const noexcept {
    return true;
  }
};

/// A vector whose resize() leaves trivial elements unset, on huge pages when big (see above).
template <class T>
using Buffer = std::vector<T, BufferAllocator<T>>;

}  // namespace sqb
