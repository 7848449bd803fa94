// libFuzzer target: the safetensors reader and the strict JSON parser behind it. Every input is tried as a
// safetensors file (File::parse) and as a sharded checkpoint's index (parse_index). Either must parse or
// throw sqb::Error (never crash, leak, hang, overflow or read out of bounds), and what parses must be
// consistent: names sorted and unique, byte ranges inside the buffer, covering it exactly, of shape x dtype
// size; every readable tensor reads to exactly its raw bytes' values; every name matches itself as an escaped
// glob.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sqb/error.hpp"
#include "sqb/npy.hpp"
#include "sqb/safetensors.hpp"

namespace st = sqb::safetensors;

namespace {

[[noreturn]] void bug(const char* what) {
  __builtin_printf("fuzz_safetensors: invariant broken: %s\n", what);
  std::abort();
}

bool same(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) ||
         std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

std::string escape_glob(const std::string& name) {
  std::string out;
  for (const char c : name) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

void check_file(const st::File& f, std::size_t size) {
  const auto& ts = f.tensors();
  const auto& names = f.names();
  if (names.size() != ts.size()) bug("names() and tensors() differ in size");
  const std::uint64_t buffer = size - f.data_offset();
  std::vector<const st::TensorInfo*> by_offset;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const st::TensorInfo& t = ts[i];
    if (t.name != names[i]) bug("names() out of step with tensors()");
    if (i > 0 && !(ts[i - 1].name < t.name)) bug("tensors not sorted and unique");
    if (t.begin > t.end || t.end > buffer) bug("byte range outside the buffer");
    // size * bits / 8 without overflow: the validated range bounds it.
    const std::uint64_t bits = st::dtype_bits(t.dtype);
    std::uint64_t count = 1;
    bool zero = false;
    for (const std::size_t d : t.shape) {
      zero = zero || d == 0;
      if (!zero && __builtin_mul_overflow(count, d, &count)) bug("validated shape overflows");
    }
    if (zero) count = 0;
    if (count / 8 * bits + count % 8 * bits / 8 != t.end - t.begin)
      bug("byte range is not shape x dtype size");
    if (f.find(t.name) != &t) bug("find() does not return the entry");
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const st::TensorInfo* a, const st::TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t covered = 0;
  for (const st::TensorInfo* t : by_offset) {
    if (t->begin != covered) bug("ranges overlap or leave a hole");
    covered = t->end;
  }
  if (covered != buffer) bug("ranges do not end at the buffer's end");

  // Read what is readable (bounded, so a large zero-filled tensor cannot make the run slow).
  std::size_t budget = 1 << 20;
  for (const st::TensorInfo& t : ts) {
    if (!st::is_readable(t.dtype) || t.size() == 0) {
      bool threw = false;
      try {
        (void)f.read(t.name);
      } catch (const sqb::Error&) {
        threw = true;
      }
      if (!threw) bug("read() accepted an unreadable or empty tensor");
      continue;
    }
    if (t.size() > budget) continue;
    budget -= t.size();
    const auto raw = f.raw(t.name);
    st::Array a;
    try {
      a = f.read(t.name);
    } catch (const sqb::Error&) {
      if (t.dtype != st::DType::F64) bug("read() failed on a non-F64 tensor");
      continue;  // an F64 value beyond float32's range
    }
    if (a.values.size() != t.size() || a.shape != t.shape || a.dtype != t.dtype) bug("read(): size or shape");
    for (std::size_t i = 0; i < a.values.size(); ++i) {
      float want = 0;
      if (t.dtype == st::DType::F32) {
        std::uint32_t u;
        std::memcpy(&u, raw.data() + 4 * i, 4);
        want = std::bit_cast<float>(u);
      } else if (t.dtype == st::DType::BF16) {
        std::uint16_t u;
        std::memcpy(&u, raw.data() + 2 * i, 2);
        want = std::bit_cast<float>(static_cast<std::uint32_t>(u) << 16);
      } else if (t.dtype == st::DType::F16) {
        std::uint16_t u;
        std::memcpy(&u, raw.data() + 2 * i, 2);
        want = sqb::npy::half_to_float(u);
      } else {
        double d;
        std::memcpy(&d, raw.data() + 8 * i, 8);
        want = static_cast<float>(d);
      }
      if (!same(a.values[i], want)) bug("read(): a value differs from its raw bytes");
    }
  }
  // Globs: every name matches itself escaped; "*" matches everything.
  for (std::size_t i = 0; i < names.size() && i < 16; ++i) {
    if (!st::glob_match(escape_glob(names[i]), names[i])) bug("a name does not match itself as a glob");
  }
  if (!names.empty() && st::glob_names(names, "*", "fuzz") != names) bug("'*' does not match every name");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const unsigned char> bytes(data, size);
  try {
    const st::File f = st::File::parse(bytes, "fuzz.safetensors");
    check_file(f, size);
  } catch (const sqb::Error&) {
  }
  try {
    const auto map =
        st::parse_index(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.index.json");
    if (map.empty()) bug("an empty weight_map parsed");
    for (std::size_t i = 1; i < map.size(); ++i) {
      if (!(map[i - 1].first < map[i].first)) bug("weight_map not sorted and unique");
    }
  } catch (const sqb::Error&) {
  }
  // The input as a glob pattern against a few names: a match or an Error.
  if (size < 64) {
    try {
      const std::string_view pattern(reinterpret_cast<const char*>(data), size);
      (void)st::glob_match(pattern, "model.layers.0.mlp.up_proj.weight");
      (void)st::glob_match(pattern, "");
    } catch (const sqb::Error&) {
    }
  }
  return 0;
}
