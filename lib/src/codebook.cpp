#include "sqb/codebook.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <string>

#include "detail/encode_simd.hpp"
#include "detail/huge_pages.hpp"
#include "sqb/error.hpp"

namespace sqb {

namespace {

// float_at_or_below without branches, so the threshold loops of a codebook pipeline and vectorise (they run
// for every threshold of every block: 15 per group of 64 values at 4 bits). Round to nearest, then one
// float32 step down (std::nextafter towards -inf) when that rounded up: the magnitude shrinks for f > 0 (+inf
// included: it becomes the largest float), grows for f < 0, and below +-0 comes the smallest negative
// subnormal.
inline float at_or_below(double b) {
  const float f = static_cast<float>(b);
  const auto bits = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t down = f > 0.0f ? bits - 1 : f < 0.0f ? bits + 1 : 0x80000001u;
  return std::bit_cast<float>(static_cast<double>(f) > b ? down : bits);
}

}  // namespace

float float_at_or_below(double b) {
  return at_or_below(b);
}

namespace {

void check_levels(std::span<const float> levels) {
  if (levels.empty()) throw Error("codebook: no levels (K must be >= 1)");
  if (levels.size() > kMaxCodes)
    throw Error("codebook: " + std::to_string(levels.size()) + " levels (at most " +
                std::to_string(kMaxCodes) + ")");
  for (std::size_t i = 0; i < levels.size(); ++i) {
    if (!std::isfinite(levels[i])) throw Error("codebook: level " + std::to_string(i) + " is not finite");
    if (i > 0 && levels[i] < levels[i - 1]) {
      throw Error("codebook: levels not sorted ascending at index " + std::to_string(i));
    }
  }
}

}  // namespace

Codebook Codebook::nearest_of(const float* levels, std::size_t k) {
  check_levels({levels, k});
  Codebook cb;
  cb.values_.resize(2 * k - 1);
  float* v = cb.values_.data();
  std::copy(levels, levels + k, v);
  for (std::size_t i = 0; i + 1 < k; ++i) {
    // The sum of two floats is exact in double unless their exponents differ by more than 29, in which case
    // the smaller one cannot move the midpoint by a float32 ulp anyway.
    const double mid = (static_cast<double>(v[i]) + static_cast<double>(v[i + 1])) * 0.5;
    v[k + i] = at_or_below(mid);
  }
  return cb;
}

Codebook Codebook::nearest(std::vector<float> levels) {
  return nearest_of(levels.data(), levels.size());
}

Codebook Codebook::nearest(std::span<const float> levels) {
  return nearest_of(levels.data(), levels.size());
}

Codebook Codebook::nearest(std::span<const double> levels) {
  SmallFloats<kInline> f;
  f.resize(levels.size());
  for (std::size_t i = 0; i < levels.size(); ++i)
    f[i] = static_cast<float>(levels[i]);
  return nearest_of(f.data(), f.size());
}

Codebook Codebook::with_boundaries(std::vector<float> levels, std::span<const double> boundaries) {
  check_levels(levels);
  if (boundaries.size() + 1 != levels.size()) {
    throw Error("codebook: " + std::to_string(levels.size()) + " levels need " +
                std::to_string(levels.size() - 1) + " boundaries, got " + std::to_string(boundaries.size()));
  }
  for (std::size_t i = 0; i < boundaries.size(); ++i) {
    const double b = boundaries[i];
    if (!(b >= levels[i] && b <= levels[i + 1])) {
      throw Error("codebook: boundary " + std::to_string(i) + " (" + std::to_string(b) +
                  ") is not between its levels");
    }
  }
  const std::size_t k = levels.size();
  Codebook cb;
  cb.values_.resize(2 * k - 1);
  std::copy(levels.begin(), levels.end(), cb.values_.begin());
  for (std::size_t i = 0; i < boundaries.size(); ++i)
    cb.values_[k + i] = at_or_below(boundaries[i]);
  return cb;
}

namespace {

template <class Index>
void check_encode(const Codebook& cb, std::size_t values, std::size_t outputs, const char* what) {
  if (outputs != values) {
    throw Error(std::string(what) + ": " + std::to_string(values) + " values but " + std::to_string(outputs) +
                " outputs");
  }
  const std::size_t k = cb.size();
  if (k == 0) throw Error(std::string(what) + ": empty codebook");
  if (k - 1 > std::numeric_limits<Index>::max()) {
    throw Error(std::string(what) + ": K = " + std::to_string(k) + " does not fit the index type");
  }
}

template <class Index>
void encode_impl(const Codebook& cb, std::span<const float> x, std::span<Index> out) {
  check_encode<Index>(cb, x.size(), out.size(), "encode");
  detail::encode_thresholds(cb.thresholds(), x, out);
}

template <class Index>
void decode_impl(const Codebook& cb, std::span<const Index> codes, std::span<float> out) {
  if (out.size() != codes.size()) {
    throw Error("decode: " + std::to_string(codes.size()) + " codes but " + std::to_string(out.size()) +
                " outputs");
  }
  const std::size_t k = cb.size();
  if (k == 0) throw Error("decode: empty codebook");
  const std::size_t bad = detail::decode_levels(cb.levels(), codes, out);
  if (bad < codes.size()) {
    throw Error("decode: code " + std::to_string(codes[bad]) + " at index " + std::to_string(bad) +
                " is out of range for a codebook of " + std::to_string(k) + " levels");
  }
}

template <class Index>
void encode_half_impl(const Codebook& cb, std::span<const std::uint16_t> bits, HalfFormat format,
                      std::span<Index> out) {
  check_encode<Index>(cb, bits.size(), out.size(), "encode_half");
  detail::encode_half_bits(
      cb.thresholds(), bits, format == HalfFormat::bfloat16,
      half_table_pays(cb.size(), bits.size()) ? detail::HalfPath::table : detail::HalfPath::direct, out);
}

}  // namespace

void encode(const Codebook& cb, std::span<const float> x, std::span<std::uint8_t> out) {
  encode_impl(cb, x, out);
}
void encode(const Codebook& cb, std::span<const float> x, std::span<std::uint16_t> out) {
  encode_impl(cb, x, out);
}
void decode(const Codebook& cb, std::span<const std::uint8_t> codes, std::span<float> out) {
  decode_impl(cb, codes, out);
}
void decode(const Codebook& cb, std::span<const std::uint16_t> codes, std::span<float> out) {
  decode_impl(cb, codes, out);
}

bool half_table_pays(std::size_t k, std::size_t n) {
  // See the header for the measurements behind these thresholds.
  if (k <= 64) return false;
  return n >= (k <= 256 ? std::size_t{1} << 18 : std::size_t{1} << 17);
}
void encode_half(const Codebook& cb, std::span<const std::uint16_t> bits, HalfFormat format,
                 std::span<std::uint8_t> out) {
  encode_half_impl(cb, bits, format, out);
}
void encode_half(const Codebook& cb, std::span<const std::uint16_t> bits, HalfFormat format,
                 std::span<std::uint16_t> out) {
  encode_half_impl(cb, bits, format, out);
}

std::vector<std::uint16_t> nearest_centroid_indices(std::span<const float> values,
                                                    std::span<const float> centroids) {
  const Codebook cb = Codebook::nearest(std::vector<float>(centroids.begin(), centroids.end()));
  std::vector<std::uint16_t> out(values.size());
  encode(cb, values, std::span<std::uint16_t>(out));
  return out;
}

Codes Codes::for_overwrite(std::size_t n, std::size_t k) {
  if (k == 0 || k > kMaxCodes) throw Error("codes: K = " + std::to_string(k) + " is outside " + k_range());
  Codes c;
  c.k_ = k;
  // Huge pages where offered (detail/huge_pages.hpp); the storage is first touched by whoever writes it.
  if (k <= 256) {
    Narrow v;
    detail::resize_advised(v, n);
    c.data_ = std::move(v);
  } else {
    Wide v;
    detail::resize_advised(v, n);
    c.data_ = std::move(v);
  }
  return c;
}

Codes::Codes(std::size_t n, std::size_t k) : Codes(for_overwrite(n, k)) {
  visit([](auto v) { std::fill(v.begin(), v.end(), 0); });
}

std::size_t Codes::size() const {
  return std::visit([](const auto& v) { return v.size(); }, data_);
}

std::size_t Codes::operator[](std::size_t i) const {
  return std::visit([i](const auto& v) { return static_cast<std::size_t>(v[i]); }, data_);
}

}  // namespace sqb
