// Importance files: read, then validated as a whole before any quantization uses them.

#include "sqb/importance.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

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

Importance read_importance(const std::filesystem::path& path, const std::vector<std::string>& rename) {
  namespace st = sqb::safetensors;
  {
    std::ifstream f(path, std::ios::binary);
    char magic[4] = {};
    f.read(magic, 4);
    const bool gguf = f.gcount() == 4 && std::string_view(magic, 4) == "GGUF";
    if (gguf || path.extension() == ".dat") {
      if (!std::filesystem::is_regular_file(path))
        throw Error(path.string() + ": not a regular file (an importance matrix is expected)");
      f.clear();
      f.seekg(0);
      std::stringstream ss;
      ss << f.rdbuf();
      const std::string text = ss.str();
      const std::span<const unsigned char> bytes(reinterpret_cast<const unsigned char*>(text.data()),
                                                 text.size());
      Importance imp =
          gguf ? parse_gguf_imatrix(bytes, path.string()) : parse_legacy_imatrix(bytes, path.string());
      rename_importance(imp, rename);
      return imp;
    }
  }
  Importance imp;
  imp.source = path.string();
  imp.format = "safetensors";
  const st::File f(path);
  if (f.tensors().empty())
    throw Error(imp.source + ": the importance file holds no tensors (one 1-D vector per weight expected)");
  for (const st::TensorInfo& t : f.tensors()) {
    const std::string head = imp.source + ": tensor " + detail::json::quote(t.name) + ": ";
    if (t.shape.size() != 1) {
      throw Error(head +
                  "an importance entry is a 1-D vector (one value per input channel), not a tensor "
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
  if (!rename.empty()) rename_importance(imp, rename);
  return imp;
}

}  // namespace sqb

// -----------------------------------------------------------------------------------------------------------
// llama.cpp importance matrices

namespace sqb {

namespace {

// A bounds-checked little-endian cursor over untrusted bytes.
struct Cursor {
  std::span<const unsigned char> b;
  std::size_t at = 0;
  const std::string& name;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(name + ": " + what + " (at byte " + std::to_string(at) + ")");
  }
  void need(std::uint64_t n, const char* what) const {
    if (n > b.size() - at) fail(std::string("the file ends inside ") + what);
  }
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
      v = static_cast<T>(v | (static_cast<T>(b[at + i]) << (8 * i)));
    at += sizeof(T);
    return v;
  }
  std::uint32_t u32(const char* what) { return get<std::uint32_t>(what); }
  std::uint64_t u64(const char* what) { return get<std::uint64_t>(what); }
  float f32(const char* what) { return std::bit_cast<float>(u32(what)); }
  std::string str(std::uint64_t len, const char* what) {
    need(len, what);
    std::string s(reinterpret_cast<const char*>(b.data() + at), static_cast<std::size_t>(len));
    at += static_cast<std::size_t>(len);
    return s;
  }
  void skip(std::uint64_t n, const char* what) {
    need(n, what);
    at += static_cast<std::size_t>(n);
  }
};

// GGUF metadata value types and their sizes (0 = variable).
std::uint64_t gguf_scalar_size(std::uint32_t type) {
  switch (type) {
    case 0:
    case 1:
    case 7:
      return 1;  // u8, i8, bool
    case 2:
    case 3:
      return 2;  // u16, i16
    case 4:
    case 5:
    case 6:
      return 4;  // u32, i32, f32
    case 10:
    case 11:
    case 12:
      return 8;  // u64, i64, f64
    default:
      return 0;
  }
}

void gguf_skip_value(Cursor& c, std::uint32_t type, int depth) {
  if (depth > 2) c.fail("GGUF metadata arrays nested too deeply");
  if (const std::uint64_t s = gguf_scalar_size(type)) {
    c.skip(s, "a metadata value");
  } else if (type == 8) {
    c.skip(c.u64("a string length"), "a metadata string");
  } else if (type == 9) {
    const std::uint32_t inner = c.u32("an array type");
    const std::uint64_t count = c.u64("an array length");
    if (const std::uint64_t each = gguf_scalar_size(inner)) {
      if (count > (c.b.size() - c.at) / each) c.fail("a metadata array longer than the file");
      c.skip(count * each, "a metadata array");
    } else {
      if (count > c.b.size() - c.at) c.fail("a metadata array longer than the file");
      for (std::uint64_t i = 0; i < count; ++i)
        gguf_skip_value(c, inner, depth + 1);
    }
  } else {
    c.fail("unknown GGUF metadata value type " + std::to_string(type) + " (0..12 exist)");
  }
}

void add_vector(Importance& imp, const std::string& tensor, std::vector<float> v) {
  check_importance(imp.source, tensor, v);
  if (!imp.vectors.emplace(tensor, std::move(v)).second)
    throw Error(imp.source + ": tensor " + detail::json::quote(tensor) + " appears twice");
}

}  // namespace

Importance parse_gguf_imatrix(std::span<const unsigned char> bytes, const std::string& name) {
  Importance imp;
  imp.source = name;
  imp.format = "gguf";
  Cursor c{bytes, 0, name};
  if (c.str(4, "the magic") != "GGUF") c.fail("not a GGUF file (no \"GGUF\" magic)");
  const std::uint32_t version = c.u32("the version");
  if (version != 2 && version != 3) c.fail("GGUF version " + std::to_string(version) + " (2 and 3 are read)");
  const std::uint64_t n_tensors = c.u64("the tensor count"), n_kv = c.u64("the metadata count");
  // Every entry takes at least 8 bytes: counts beyond the file are lies, caught before any allocation.
  if (n_tensors > bytes.size() / 8 || n_kv > bytes.size() / 8)
    c.fail("tensor or metadata count beyond the file");
  std::uint64_t alignment = 32;
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.str(c.u64("a key length"), "a key");
    const std::uint32_t type = c.u32("a value type");
    if (key == "general.alignment") {
      if (type != 4) c.fail("general.alignment is not a uint32");
      alignment = c.u32("general.alignment");
      if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        c.fail("general.alignment is not a power of two");
    } else {
      gguf_skip_value(c, type, 0);
    }
  }
  struct Info {
    std::string name;
    std::vector<std::uint64_t> dims;
    std::uint64_t offset, count;
  };
  std::vector<Info> infos;
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    Info t;
    t.name = c.str(c.u64("a tensor name length"), "a tensor name");
    const std::uint32_t nd = c.u32("a dimension count");
    if (nd < 1 || nd > 4)
      c.fail("tensor " + detail::json::quote(t.name) + " has " + std::to_string(nd) + " dimensions (1..4)");
    t.count = 1;
    for (std::uint32_t d = 0; d < nd; ++d) {
      t.dims.push_back(c.u64("a dimension"));
      if (__builtin_mul_overflow(t.count, t.dims.back(), &t.count)) c.fail("tensor dimensions overflow");
    }
    const std::uint32_t type = c.u32("a tensor type");
    if (type != 0) {
      c.fail("tensor " + detail::json::quote(t.name) + " has ggml type " + std::to_string(type) +
             "; an imatrix holds F32 (type 0) tensors only");
    }
    t.offset = c.u64("a tensor offset");
    infos.push_back(std::move(t));
  }
  const std::uint64_t data = (c.at + alignment - 1) / alignment * alignment;
  if (data > bytes.size()) c.fail("the data section starts beyond the file");
  const auto values_of = [&](const Info& t) {
    std::uint64_t bytes_needed;
    if (__builtin_mul_overflow(t.count, std::uint64_t{4}, &bytes_needed) || t.offset > bytes.size() - data ||
        bytes_needed > bytes.size() - data - t.offset) {
      throw Error(name + ": tensor " + detail::json::quote(t.name) + ": its data lies beyond the file");
    }
    std::vector<float> v(static_cast<std::size_t>(t.count));
    Cursor d{bytes, static_cast<std::size_t>(data + t.offset), name};
    for (float& x : v)
      x = d.f32("tensor data");
    return v;
  };
  std::map<std::string, const Info*> sums, counts;
  for (const Info& t : infos) {
    const auto ends = [&](std::string_view s) { return t.name.size() > s.size() && t.name.ends_with(s); };
    if (ends(".in_sum2")) {
      sums[t.name.substr(0, t.name.size() - 8)] = &t;
    } else if (ends(".counts")) {
      counts[t.name.substr(0, t.name.size() - 7)] = &t;
    } else {
      throw Error(name + ": tensor " + detail::json::quote(t.name) +
                  " is neither <weight>.in_sum2 nor <weight>.counts (is this an imatrix GGUF?)");
    }
  }
  if (sums.empty()) throw Error(name + ": the GGUF file holds no <weight>.in_sum2 tensors (not an imatrix?)");
  for (const auto& [w, s] : sums) {
    const auto ct = counts.find(w);
    if (ct == counts.end())
      throw Error(name + ": " + detail::json::quote(w + ".in_sum2") + " has no .counts");
    if (s->count == 0 || (!s->dims.empty() && s->dims[0] == 0)) {
      throw Error(name + ": tensor " + detail::json::quote(w + ".in_sum2") + " holds no values");
    }
    const std::uint64_t n_mat = s->dims.size() > 1 ? s->count / s->dims[0] : 1;
    if (n_mat != 1 || ct->second->count != 1) {
      throw Error(name + ": tensor " + detail::json::quote(w) + " has " + std::to_string(n_mat) +
                  " matrices (experts); sqbench reads dense weights' importance only");
    }
    std::vector<float> v = values_of(*s);
    const float n = values_of(*ct->second)[0];
    if (!(n > 0.0f) || !std::isfinite(n)) {
      throw Error(name + ": " + detail::json::quote(w + ".counts") + " is " + number_text(n) +
                  " (a token count must be > 0)");
    }
    for (float& x : v)
      x /= n;
    add_vector(imp, w, std::move(v));
  }
  for (const auto& [w, ct] : counts)
    if (!sums.count(w)) throw Error(name + ": " + detail::json::quote(w + ".counts") + " has no .in_sum2");
  return imp;
}

Importance parse_legacy_imatrix(std::span<const unsigned char> bytes, const std::string& name) {
  Importance imp;
  imp.source = name;
  imp.format = "dat";
  Cursor c{bytes, 0, name};
  const auto n = static_cast<std::int32_t>(c.u32("the entry count"));
  if (n <= 0) c.fail("the entry count " + std::to_string(n) + " is not positive");
  if (static_cast<std::uint64_t>(n) > bytes.size() / 12) c.fail("the entry count is beyond the file");
  for (std::int32_t e = 0; e < n; ++e) {
    const auto len = static_cast<std::int32_t>(c.u32("a name length"));
    if (len <= 0) c.fail("entry " + std::to_string(e) + ": name length " + std::to_string(len));
    const std::string tensor = c.str(static_cast<std::uint64_t>(len), "a name");
    const auto ncall = static_cast<std::int32_t>(c.u32("ncall"));
    const auto nval = static_cast<std::int32_t>(c.u32("nval"));
    if (nval <= 0)
      c.fail("tensor " + detail::json::quote(tensor) + ": nval " + std::to_string(nval) + " is not positive");
    if (ncall <= 0)
      c.fail("tensor " + detail::json::quote(tensor) + ": ncall " + std::to_string(ncall) +
             " is not positive");
    c.need(static_cast<std::uint64_t>(nval) * 4, "the values");
    std::vector<float> v(static_cast<std::size_t>(nval));
    for (float& x : v)
      x = c.f32("the values") / static_cast<float>(ncall);
    add_vector(imp, tensor, std::move(v));
  }
  // Optional trailer: the last chunk and the dataset's name.
  if (c.at < bytes.size()) {
    (void)c.u32("the last chunk");
    const auto len = static_cast<std::int32_t>(c.u32("the dataset name length"));
    if (len < 0) c.fail("a negative dataset name length");
    (void)c.str(static_cast<std::uint64_t>(len), "the dataset name");
    if (c.at != bytes.size()) c.fail("bytes after the dataset name");
  }
  return imp;
}

namespace {

// llama.cpp's per-block tensor names of the Llama family and their Hugging Face counterparts.
constexpr std::pair<std::string_view, std::string_view> kLlamaBlock[] = {
    {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"},
    {"ffn_gate", "mlp.gate_proj"},
    {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
    {"attn_norm", "input_layernorm"},
    {"ffn_norm", "post_attention_layernorm"},
};
constexpr std::pair<std::string_view, std::string_view> kLlamaTop[] = {
    {"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"}};

// Splits "<stem>.<suffix>" where suffix is "weight" or "bias".
bool split_param(std::string_view n, std::string_view& stem, std::string_view& suffix) {
  for (const std::string_view s : {std::string_view(".weight"), std::string_view(".bias")}) {
    if (n.size() > s.size() && n.ends_with(s)) {
      stem = n.substr(0, n.size() - s.size());
      suffix = s;
      return true;
    }
  }
  return false;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

}  // namespace

std::string llama_to_hf(const std::string& name) {
  std::string_view stem, suffix;
  if (!split_param(name, stem, suffix)) return name;
  for (const auto& [l, h] : kLlamaTop)
    if (stem == l) return std::string(h) + std::string(suffix);
  if (!stem.starts_with("blk.")) return name;
  const std::string_view rest = stem.substr(4);
  const auto dot = rest.find('.');
  if (dot == std::string_view::npos || !all_digits(rest.substr(0, dot))) return name;
  const std::string_view part = rest.substr(dot + 1);
  for (const auto& [l, h] : kLlamaBlock) {
    if (part == l) {
      return "model.layers." + std::string(rest.substr(0, dot)) + "." + std::string(h) + std::string(suffix);
    }
  }
  return name;
}

std::string hf_to_llama(const std::string& name) {
  std::string_view stem, suffix;
  if (!split_param(name, stem, suffix)) return name;
  for (const auto& [l, h] : kLlamaTop)
    if (stem == h) return std::string(l) + std::string(suffix);
  if (!stem.starts_with("model.layers.")) return name;
  const std::string_view rest = stem.substr(13);
  const auto dot = rest.find('.');
  if (dot == std::string_view::npos || !all_digits(rest.substr(0, dot))) return name;
  const std::string_view part = rest.substr(dot + 1);
  for (const auto& [l, h] : kLlamaBlock) {
    if (part == h)
      return "blk." + std::string(rest.substr(0, dot)) + "." + std::string(l) + std::string(suffix);
  }
  return name;
}

void rename_importance(Importance& imp, const std::vector<std::string>& rules) {
  std::vector<std::pair<std::regex, std::string>> compiled;
  for (const std::string& r : rules) {
    const auto eq = r.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("--rename '" + r + "': expected FROM=TO (a regex over the whole name and its replacement)");
    try {
      compiled.emplace_back(std::regex(r.substr(0, eq)), r.substr(eq + 1));
    } catch (const std::regex_error& e) {
      throw Error("--rename '" + r + "': the pattern is not a valid regex (" + e.what() + ")");
    }
  }
  const bool llama = imp.format == "gguf" || imp.format == "dat";
  std::map<std::string, std::vector<float>, std::less<>> out;
  std::map<std::string, std::string> from;
  for (auto& [n, v] : imp.vectors) {
    std::string to = n;
    bool renamed = false;
    for (const auto& [re, fmt] : compiled) {
      if (std::regex_match(n, re)) {
        to = std::regex_replace(n, re, fmt);
        renamed = true;
        break;
      }
    }
    if (!renamed && llama) to = llama_to_hf(n);
    if (const auto it = from.find(to); it != from.end()) {
      throw Error(imp.source + ": tensors " + detail::json::quote(it->second) + " and " +
                  detail::json::quote(n) + " are both renamed to " + detail::json::quote(to));
    }
    from[to] = n;
    out.emplace(to, std::move(v));
  }
  imp.vectors = std::move(out);
}

}  // namespace sqb
