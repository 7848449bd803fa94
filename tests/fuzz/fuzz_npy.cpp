// libFuzzer target: the .npy parser. Any input must either parse or throw sqb::Error (never crash, leak,
// hang, overflow or read out of bounds), and whatever parses must survive a round trip through the writer:
// serialize(parse(x)) parses to the same shape, format and values. Each float array is also laid out with
// every layout (the hwio transpose must be a permutation of the values).

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sqb/error.hpp"
#include "sqb/layout.hpp"
#include "sqb/npy.hpp"

namespace {

bool same(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) ||
         std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

[[noreturn]] void bug(const char* what) {
  __builtin_printf("fuzz_npy: invariant broken: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sqb::npy::Array a;
  try {
    a = sqb::npy::parse(std::span<const unsigned char>(data, size), "fuzz.npy");
  } catch (const sqb::Error&) {
    return 0;
  }
  const bool floating = sqb::npy::is_floating(a.format.dtype);
  if (a.size() == 0 || a.size() != (floating ? a.values.size() : a.ints.size())) bug("size");
  if ((floating ? a.ints.size() : a.values.size()) != 0) bug("both value vectors filled");

  const std::string again = floating ? sqb::npy::serialize(a.shape, a.values, a.format)
                                     : sqb::npy::serialize(a.shape, a.ints, a.format);
  const sqb::npy::Array b = sqb::npy::parse(
      std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(again.data()), again.size()),
      "again.npy");
  if (b.shape != a.shape || b.format.dtype != a.format.dtype || b.format.version != a.format.version) {
    bug("round trip: shape, dtype or version");
  }
  if (floating) {
    for (std::size_t i = 0; i < a.values.size(); ++i) {
      if (!same(a.values[i], b.values[i])) bug("round trip: float value");
    }
    double sum = 0;
    for (const float v : a.values) {
      if (std::isfinite(v)) sum += v;
    }
    for (const auto layout : {sqb::Layout::rows, sqb::Layout::oihw, sqb::Layout::hwio}) {
      try {
        const sqb::Tensor t = sqb::to_tensor(a.shape, a.values, layout, "fuzz.npy");
        if (t.size() != a.values.size() || t.rows * t.cols != t.size()) bug("layout: size");
        double tsum = 0;
        for (const float v : t.values) {
          if (std::isfinite(v)) tsum += v;
        }
        // The same values in another order: equal sums up to rounding of the order of addition.
        if (std::fabs(tsum - sum) > 1e-6 * (std::fabs(sum) + 1) && std::isfinite(sum))
          bug("layout: permutation");
      } catch (const sqb::Error&) {
        if (layout == sqb::Layout::rows) bug("layout=rows must accept every shape");
      }
    }
  } else if (b.ints != a.ints) {
    bug("round trip: integer values");
  }
  return 0;
}
