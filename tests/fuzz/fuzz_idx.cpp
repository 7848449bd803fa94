// libFuzzer target: the IDX reader (plain and gzip) and the dataset builder. Any input must either parse or
// throw sqb::Error (never crash, leak, hang, overflow or allocate past the size limit), and whatever parses
// must be consistent: the dims multiply to the data size, the plain IDX bytes written back parse to the same
// array, and a rank-3 array becomes a dataset of pixels in [0, 1] (a rank-1 one a labels array, accepted
// exactly when every label is < 10).

#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "sqb/error.hpp"
#include "sqb/idx.hpp"
#include "sqb/task.hpp"

namespace {

[[noreturn]] void bug(const char* what) {
  __builtin_printf("fuzz_idx: invariant broken: %s\n", what);
  std::abort();
}

// 1 MiB: keeps the fuzzer's memory small; the limit itself is part of what is tested.
constexpr std::size_t kLimit = std::size_t{1} << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sqb::idx::Array a;
  try {
    a = sqb::idx::parse(std::span<const unsigned char>(data, size), "fuzz.idx", kLimit);
  } catch (const sqb::Error&) {
    return 0;
  }
  std::size_t count = 1;
  for (const std::size_t d : a.dims) {
    if (d == 0) bug("zero dimension accepted");
    count *= d;
  }
  if (a.dims.empty() || a.dims.size() > 255 || count != a.data.size()) bug("dims and data disagree");
  if (count + 4 + 4 * a.dims.size() > kLimit) bug("size limit exceeded");

  std::string again{'\0', '\0', '\x08', static_cast<char>(a.dims.size())};
  for (const std::size_t d : a.dims) {
    for (int b = 3; b >= 0; --b)
      again += static_cast<char>((d >> (8 * b)) & 0xFF);
  }
  again.append(a.data.begin(), a.data.end());
  const sqb::idx::Array b = sqb::idx::parse(
      std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(again.data()), again.size()),
      "again.idx");
  if (b.dims != a.dims || b.data != a.data) bug("round trip");

  if (a.dims.size() == 3) {
    sqb::idx::Array labels;
    labels.dims = {a.dims[0]};
    labels.data.assign(a.dims[0], 0);
    const sqb::task::Dataset d = sqb::task::make_dataset(a, "fuzz.idx", labels, "labels");
    if (d.count != a.dims[0] || d.pixels.size() != a.size()) bug("dataset size");
    for (const float p : d.pixels) {
      if (!(p >= 0.0f && p <= 1.0f)) bug("pixel outside [0, 1]");
    }
  } else if (a.dims.size() == 1) {
    sqb::idx::Array images;
    images.dims = {a.dims[0], 1, 1};
    images.data.assign(a.dims[0], 0);
    bool valid = true;
    for (const std::uint8_t l : a.data)
      valid = valid && l < sqb::task::kClasses;
    try {
      sqb::task::make_dataset(images, "images", a, "fuzz.idx");
      if (!valid) bug("a label >= 10 accepted");
    } catch (const sqb::Error&) {
      if (valid) bug("valid labels refused");
    }
  }
  return 0;
}
