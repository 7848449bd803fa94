// The measure stage's sums (detail/error_sums.hpp), compiled once per Highway target (foreach_target
// re-includes this file) and chosen at run time. Each lane of an accumulator holds one of the 16 fixed
// positions i % 16, whatever the vector width, so every target adds the same numbers in the same order.

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "detail/error_sums.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "measure_simd.cpp"
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace sqb::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr std::size_t kPositions = 16;
using DD = hn::CappedTag<double, 8>;
using VD = hn::Vec<DD>;

template <bool kWeighted>
void sums_kernel(const float* HWY_RESTRICT x, const float* HWY_RESTRICT xhat, const float* HWY_RESTRICT w,
                 std::size_t n, ErrorSums& out) {
  const DD dd;
  const hn::Rebind<float, DD> df;
  constexpr std::size_t kLanes = hn::MaxLanes(DD());
  constexpr std::size_t kVecs = kPositions / kLanes;
  static_assert(kVecs * kLanes == kPositions);
  VD s[kVecs], q[kVecs], e2[kVecs], ws[kVecs], we[kVecs];
  for (std::size_t v = 0; v < kVecs; ++v) {
    s[v] = q[v] = e2[v] = ws[v] = we[v] = hn::Zero(dd);
  }
  VD mx = hn::Zero(dd);
  std::size_t i = 0;
  for (; i + kPositions <= n; i += kPositions) {
    for (std::size_t v = 0; v < kVecs; ++v) {
      const std::size_t j = i + v * kLanes;
      const VD xv = hn::PromoteTo(dd, hn::LoadU(df, x + j));
      const VD e = hn::Sub(xv, hn::PromoteTo(dd, hn::LoadU(df, xhat + j)));
      s[v] = hn::Add(s[v], xv);
      q[v] = hn::Add(q[v], hn::Mul(xv, xv));
      e2[v] = hn::Add(e2[v], hn::Mul(e, e));
      mx = hn::Max(mx, hn::Abs(e));
      if constexpr (kWeighted) {
        const VD wv = hn::PromoteTo(dd, hn::LoadU(df, w + j));
        ws[v] = hn::Add(ws[v], wv);
        we[v] = hn::Add(we[v], hn::Mul(hn::Mul(wv, e), e));
      }
    }
  }
  HWY_ALIGN double lanes[5][kPositions];
  for (std::size_t v = 0; v < kVecs; ++v) {
    hn::Store(s[v], dd, lanes[0] + v * kLanes);
    hn::Store(q[v], dd, lanes[1] + v * kLanes);
    hn::Store(e2[v], dd, lanes[2] + v * kLanes);
    hn::Store(ws[v], dd, lanes[3] + v * kLanes);
    hn::Store(we[v], dd, lanes[4] + v * kLanes);
  }
  double max_err = hn::GetLane(hn::MaxOfLanes(dd, mx));
  // The tail continues each position's sum.
  for (std::size_t p = 0; i < n; ++i, ++p) {
    const double xv = x[i];
    const double e = xv - static_cast<double>(xhat[i]);
    lanes[0][p] += xv;
    lanes[1][p] += xv * xv;
    lanes[2][p] += e * e;
    max_err = std::max(max_err, std::abs(e));
    if constexpr (kWeighted) {
      const double wv = w[i];
      lanes[3][p] += wv;
      lanes[4][p] += wv * e * e;
    }
  }
  out = {};
  for (std::size_t p = 0; p < kPositions; ++p) {
    out.sum += lanes[0][p];
    out.sum_sq += lanes[1][p];
    out.err_sq += lanes[2][p];
    out.wsum += lanes[3][p];
    out.werr += lanes[4][p];
  }
  out.max_err = max_err;
}

void ErrorSumsKernel(const float* x, const float* xhat, const float* w, std::size_t n, ErrorSums* out) {
  if (w) {
    sums_kernel<true>(x, xhat, w, n, *out);
  } else {
    sums_kernel<false>(x, xhat, w, n, *out);
  }
}

double CenteredKernel(const float* HWY_RESTRICT x, std::size_t n, double mean) {
  const DD dd;
  const hn::Rebind<float, DD> df;
  constexpr std::size_t kLanes = hn::MaxLanes(DD());
  constexpr std::size_t kVecs = kPositions / kLanes;
  VD acc[kVecs];
  for (std::size_t v = 0; v < kVecs; ++v)
    acc[v] = hn::Zero(dd);
  const VD m = hn::Set(dd, mean);
  std::size_t i = 0;
  for (; i + kPositions <= n; i += kPositions) {
    for (std::size_t v = 0; v < kVecs; ++v) {
      const VD d = hn::Sub(hn::PromoteTo(dd, hn::LoadU(df, x + i + v * kLanes)), m);
      acc[v] = hn::Add(acc[v], hn::Mul(d, d));
    }
  }
  HWY_ALIGN double lanes[kPositions];
  for (std::size_t v = 0; v < kVecs; ++v)
    hn::Store(acc[v], dd, lanes + v * kLanes);
  for (std::size_t p = 0; i < n; ++i, ++p) {
    const double d = static_cast<double>(x[i]) - mean;
    lanes[p] += d * d;
  }
  double total = 0;
  for (const double v : lanes)
    total += v;
  return total;
}

// hist[c] += #{i : codes[i] == c} for c < k: per value, a compare per vector of bytes and a masked add of 1
// into byte counters, flushed into 64-bit sums before a counter could wrap (255 rounds).
void CountBytesKernel(const std::uint8_t* HWY_RESTRICT codes, std::size_t n, std::uint32_t* hist,
                      std::size_t k) {
  const hn::ScalableTag<std::uint8_t> d8;
  const hn::Repartition<std::uint64_t, decltype(d8)> d64;
  const std::size_t lanes = hn::Lanes(d8);
  const std::size_t whole = n / lanes * lanes;
  constexpr std::size_t kRounds = 255;
  for (std::size_t c = 0; c < k; ++c) {
    const auto value = hn::Set(d8, static_cast<std::uint8_t>(c));
    const auto one = hn::Set(d8, std::uint8_t{1});
    auto sums = hn::Zero(d64);
    for (std::size_t i = 0; i < whole;) {
      auto acc = hn::Zero(d8);
      const std::size_t end = std::min(whole, i + kRounds * lanes);
      for (; i < end; i += lanes)
        acc = hn::Add(acc, hn::IfThenElseZero(hn::Eq(hn::LoadU(d8, codes + i), value), one));
      sums = hn::Add(sums, hn::SumsOf8(acc));
    }
    std::uint64_t total = hn::GetLane(hn::SumOfLanes(d64, sums));
    for (std::size_t i = whole; i < n; ++i)
      total += codes[i] == c;
    hist[c] += static_cast<std::uint32_t>(total);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace sqb::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sqb::detail {

HWY_EXPORT(ErrorSumsKernel);
HWY_EXPORT(CenteredKernel);
HWY_EXPORT(CountBytesKernel);

void count_bytes_by_value(const std::uint8_t* codes, std::size_t n, std::uint32_t* hist, std::size_t k) {
  HWY_DYNAMIC_DISPATCH(CountBytesKernel)(codes, n, hist, k);
}

ErrorSums error_sums(const float* x, const float* xhat, const float* w, std::size_t n) {
  ErrorSums out;
  HWY_DYNAMIC_DISPATCH(ErrorSumsKernel)(x, xhat, w, n, &out);
  return out;
}

double centered_sum_sq(const float* x, std::size_t n, double mean) {
  return HWY_DYNAMIC_DISPATCH(CenteredKernel)(x, n, mean);
}

ErrorSums error_sums_reference(const float* x, const float* xhat, const float* w, std::size_t n) {
  double acc[5][16] = {};
  double max_err = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t p = i % 16;
    const double xv = x[i];
    const double e = xv - static_cast<double>(xhat[i]);
    acc[0][p] += xv;
    acc[1][p] += xv * xv;
    acc[2][p] += e * e;
    max_err = std::max(max_err, std::abs(e));
    if (w) {
      acc[3][p] += static_cast<double>(w[i]);
      acc[4][p] += static_cast<double>(w[i]) * e * e;
    }
  }
  ErrorSums out;
  for (std::size_t p = 0; p < 16; ++p) {
    out.sum += acc[0][p];
    out.sum_sq += acc[1][p];
    out.err_sq += acc[2][p];
    out.wsum += acc[3][p];
    out.werr += acc[4][p];
  }
  out.max_err = max_err;
  return out;
}

double centered_sum_sq_reference(const float* x, std::size_t n, double mean) {
  double acc[16] = {};
  for (std::size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    acc[i % 16] += d * d;
  }
  double total = 0;
  for (const double v : acc)
    total += v;
  return total;
}

}  // namespace sqb::detail
#endif  // HWY_ONCE
