#pragma once
// Threads over independent work items (the blocks of a tensor), private to the library.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "detail/reduce.hpp"
#include "sqb/error.hpp"

namespace sqb::detail {

/// threads >= 1 as given, 0 = every core; Error for a negative count.
inline int resolve_threads(int threads) {
  if (threads < 0) throw Error("threads = " + std::to_string(threads) + " must be >= 0 (0 = every core)");
  if (threads == 0) return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return threads;
}

// Runs f(i) for i in [0, n) on up to `threads` threads (the caller's among them). Items are taken in index
// order from a shared counter; which thread runs an item never affects its result. If items throw, the
// exception of the lowest failing index is rethrown (so the error a user sees does not depend on timing).
template <class F>
void parallel_for(std::size_t n, int threads, F&& f) {
  const std::size_t workers = std::min<std::size_t>(static_cast<std::size_t>(threads), n);
  if (workers <= 1) {
    for (std::size_t i = 0; i < n; ++i)
      f(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> first_failed{n};
  std::vector<std::exception_ptr> errors(n);
  const auto work = [&] {
    for (std::size_t i = next++; i < n; i = next++) {
      if (i > first_failed.load()) continue;  // a lower item failed: the rest cannot change the outcome
      try {
        f(i);
      } catch (...) {
        errors[i] = std::current_exception();
        std::size_t cur = first_failed.load();
        while (i < cur && !first_failed.compare_exchange_weak(cur, i)) {
        }
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (std::size_t t = 1; t < workers; ++t)
    pool.emplace_back(work);
  work();
  for (std::thread& t : pool)
    t.join();
  if (const std::size_t i = first_failed.load(); i < n) std::rethrow_exception(errors[i]);
}

/// Whether every value is finite (reduce.hpp's all_finite), on up to `threads` threads over pieces of a fixed
/// size, so any thread count reads the same values; a caller reports a failure with the serial check_finite,
/// which names the first bad value.
inline bool all_finite(std::span<const float> v, int threads) {
  constexpr std::size_t kPiece = std::size_t{1} << 20;
  const std::size_t pieces = (v.size() + kPiece - 1) / kPiece;
  if (pieces <= 1 || threads <= 1) return all_finite(v);
  std::atomic<bool> ok{true};
  parallel_for(pieces, threads, [&](std::size_t p) {
    if (!all_finite(v.subspan(p * kPiece, std::min(kPiece, v.size() - p * kPiece))))
      ok.store(false, std::memory_order_relaxed);
  });
  return ok.load();
}

}  // namespace sqb::detail
