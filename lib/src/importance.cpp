// Importance files: read, then validated as a whole before any quantization uses them.

#include "sqb/importance.hpp"

#include <charconv>
#include <cmath>

#include "detail/json.hpp"
#include "sqb/error.hpp"
#include "sqb/safetensors.hpp"

namespace sqb {

namespace {

std::string number_text(float v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

const std::vector<float>* Importance::find(std::string_view tensor) const {
  const auto it = vectors.find(tensor);
  return it == vectors.end() ? nullptr : &it->second;
}

void check_importance(std::string_view where, std::string_view tensor, std::span<const float> v) {
  const std::string head = std::string(where) + ": tensor " + detail::json::quote(tensor) + ": ";
  if (v.empty()) throw Error(head + "the importance vector is empty");
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]) || v[i] < 0.0f) {
      throw Error(head + "importance entry " + std::to_string(i) + " is " + number_text(v[i]) +
                  "; importance (a mean of x^2) must be finite and >= 0");
    }
  }
}

Importance read_importance(const std::filesystem::path& path) {
  namespace st = sqb::safetensors;
  Importance imp;
  imp.source = path.string();
  imp.format = "safetensors";
  const st::File f(path);
  if (f.tensors().empty())
    throw Error(imp.source + ": the importance file holds no tensors (one 1-D vector per weight expected)");
  for (const st::TensorInfo& t : f.tensors()) {
    const std::string head = imp.source + ": tensor " + detail::json::quote(t.name) + ": ";
    if (t.shape.size() != 1) {
      throw Error(head + "an importance entry is a 1-D vector (one value per input channel), not a tensor "
                         "of " +
                  std::to_string(t.shape.size()) + " dimensions");
    }
    if (!st::is_readable(t.dtype)) {
      throw Error(head + "dtype " + std::string(st::dtype_name(t.dtype)) +
                  " is not a float dtype (importance is F32; F16, BF16 and F64 are read too)");
    }
    if (t.shape[0] == 0) throw Error(head + "the importance vector is empty");
    st::Array a = f.read(t.name);
    check_importance(imp.source, t.name, a.values);
    imp.vectors.emplace(t.name, std::move(a.values));
  }
  return imp;
}

}  // namespace sqb
