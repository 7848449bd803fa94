// libFuzzer target: spec strings (SpecText::parse, Params validation) through the registries, and what the
// strategies then build. Input: byte 0 picks K, byte 1 the granularity, the rows and n, then the spec text up
// to a newline, then (optionally) raw float32 data. A quantizer spec is built (make_quantizer) and, if valid,
// quantizes the data (or a fixed 4 x 16 tensor) through sqb::quantize: codebooks must be finite, sorted and
// of size K, reconstructions finite. A distribution spec is built and draws n values. Anything but sqb::Error
// escaping is a finding.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "sqb/error.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "sqb/spec.hpp"

namespace {

// K values that matter: 1, tiny, odd, powers of two, more than the 64 values of the tensor. Larger K only
// multiplies user-requested work (refine=100000 at K=65536 is legitimately slow), which is not a bug.
constexpr std::size_t kK[] = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 64, 65, 100, 128, 255, 256};

// The tensor to quantize: the input's bytes after the spec as float32 values (non-finite ones, which the
// sweep rejects before any strategy sees them, become 0), or a fixed 4 x 16 tensor with distinct values,
// ties, a constant row and a wide range when fewer than 4 bytes follow.
sqb::Tensor data(std::string_view bytes, std::uint8_t shape_byte) {
  const std::size_t n = std::min<std::size_t>(bytes.size() / 4, 256);
  if (n == 0) {
    sqb::Tensor x(4, 16);
    for (std::size_t i = 0; i < x.size(); ++i) {
      const auto d = static_cast<double>(i);
      const double v =
          i < 16 ? std::sin(d) : (i < 32 ? 0.25 : (i < 48 ? static_cast<double>(i % 3) : d * 1e3));
      x.values[i] = static_cast<float>(v);
    }
    return x;
  }
  std::size_t rows = 1 + (shape_byte >> 4) % 4;
  if (n % rows != 0) rows = 1;
  sqb::Tensor x(rows, n / rows);
  std::memcpy(x.values.data(), bytes.data(), n * 4);
  for (float& v : x.values) {
    if (!std::isfinite(v)) v = 0.0f;
  }
  return x;
}

[[noreturn]] void bug(const char* what) {
  __builtin_printf("fuzz_spec: invariant broken: %s\n", what);
  __builtin_trap();
}

bool is_distribution(std::string_view spec) {
  try {
    const sqb::SpecText t = sqb::SpecText::parse(spec, "distribution");
    for (const auto& e : sqb::source_registry()) {
      if (e.name == t.name) return true;
    }
  } catch (const sqb::Error&) {
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t k = kK[bytes[0] % std::size(kK)];
  const std::uint8_t g = bytes[1];
  // The spec is the text up to the first newline; what follows is the data.
  const std::string_view rest(reinterpret_cast<const char*>(bytes) + 2, size - 2);
  const std::size_t nl = rest.find('\n');
  const std::string spec(rest.substr(0, nl));
  if (is_distribution(spec)) {
    try {
      const auto d = sqb::make_source(spec);
      const std::size_t n = 1 + g;
      d->check_n(n);
      const sqb::Tensor t = d->draw(n, g);
      if (t.size() != n || t.rows * t.cols != n) bug("distribution: wrong size");
    } catch (const sqb::Error&) {
    }
    return 0;
  }
  std::unique_ptr<sqb::Quantizer> q;
  try {
    q = sqb::make_quantizer(spec, {k, g});
  } catch (const sqb::Error&) {
    return 0;
  }
  if (q->code_count() != k) bug("code_count != K");
  const sqb::Granularity gran = g % 3 == 0 ? sqb::Granularity{}
                                : g % 3 == 1
                                    ? sqb::Granularity{sqb::Granularity::Kind::channel, 0}
                                    : sqb::Granularity{sqb::Granularity::Kind::group, 1u + g / 3u % 20u};
  const sqb::Tensor t = data(nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1), g);
  const sqb::Quantized r = sqb::quantize(t, *q, {.granularity = gran, .seed = g});
  for (const sqb::BlockDesign& b : r.designs) {
    const auto levels = b.codebook.levels();
    if (levels.size() != k) bug("codebook size != K");
    if (!std::is_sorted(levels.begin(), levels.end())) bug("levels not sorted");
    for (const float l : levels) {
      if (!std::isfinite(l)) bug("non-finite level");
    }
  }
  for (const float v : r.decoded) {
    if (!std::isfinite(v)) bug("non-finite reconstruction");
  }
  return 0;
}
