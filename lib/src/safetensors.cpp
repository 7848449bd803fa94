// safetensors reading. The header is parsed by the strict JSON reader in detail/json and then checked entry
// by entry; all arithmetic on shapes and offsets is overflow-checked before anything is allocated or read, so
// a lying header can cost at most its own length (<= 100 MB) in memory.

#include "sqb/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>

#include "detail/json.hpp"
#include "detail/parallel.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"

namespace sqb::safetensors {

namespace {

namespace json = sqb::detail::json;
using json::quote;

// The reference implementation's limit; real headers are kilobytes (a few MB for 10^5 tensors).
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// An index file maps names to shard files: ~100 bytes per tensor, so even 10^6 tensors fit.
constexpr std::uint64_t kMaxIndexBytes = 100'000'000;

struct DTypeInfo {
  DType type;
  std::string_view name;
  std::size_t bits;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 64},        {DType::F32, "F32", 32},        {DType::F16, "F16", 16},
    {DType::BF16, "BF16", 16},      {DType::I64, "I64", 64},        {DType::I32, "I32", 32},
    {DType::I16, "I16", 16},        {DType::I8, "I8", 8},           {DType::U64, "U64", 64},
    {DType::U32, "U32", 32},        {DType::U16, "U16", 16},        {DType::U8, "U8", 8},
    {DType::BOOL, "BOOL", 8},       {DType::F8_E4M3, "F8_E4M3", 8}, {DType::F8_E5M2, "F8_E5M2", 8},
    {DType::F8_E8M0, "F8_E8M0", 8}, {DType::F6_E2M3, "F6_E2M3", 6}, {DType::F6_E3M2, "F6_E3M2", 6},
    {DType::F4, "F4", 4},           {DType::C64, "C64", 64},
};

constexpr std::string_view kReadable = "F32, F16, BF16 and F64";

const DTypeInfo& info_of(DType t) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.type == t) return d;
  }
  throw std::logic_error("safetensors: unknown DType");
}

std::string all_dtype_names() {
  std::string s;
  for (const DTypeInfo& d : kDTypes)
    s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

std::string shape_text(std::span<const std::size_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// The C-order index of flat element `flat`, as "(1, 0)".
std::string index_text(std::size_t flat, std::span<const std::size_t> shape) {
  std::vector<std::size_t> idx(shape.size());
  for (std::size_t k = shape.size(); k-- > 0;) {
    idx[k] = flat % shape[k];
    flat /= shape[k];
  }
  std::string s = "(";
  for (std::size_t i = 0; i < idx.size(); ++i)
    s += (i ? ", " : "") + std::to_string(idx[i]);
  return s + (idx.size() == 1 ? ",)" : ")");
}

std::string shortest(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

template <class U>
U load_le(const unsigned char* p) {
  U u;
  std::memcpy(&u, p, sizeof u);
  if constexpr (std::endian::native == std::endian::big) {
    if constexpr (sizeof(U) == 2) u = __builtin_bswap16(u);
    if constexpr (sizeof(U) == 4) u = __builtin_bswap32(u);
    if constexpr (sizeof(U) == 8) u = __builtin_bswap64(u);
  }
  return u;
}

// A few names of a sorted list near `key` (where it would be inserted: the names sharing its longest prefix),
// quoted, for "no such tensor" messages.
std::string names_near(const std::vector<std::string>& sorted, std::string_view key, std::size_t count = 5) {
  if (sorted.empty()) return "no tensors";
  const auto it = std::lower_bound(sorted.begin(), sorted.end(), key,
                                   [](const std::string& a, std::string_view b) { return a < b; });
  const std::size_t at = static_cast<std::size_t>(it - sorted.begin());
  const std::size_t first =
      at >= count / 2 ? std::min(at - count / 2, sorted.size() - std::min(count, sorted.size())) : 0;
  std::string s = std::to_string(sorted.size()) + " tensor" + (sorted.size() == 1 ? "" : "s") + ", e.g. ";
  for (std::size_t i = first; i < std::min(sorted.size(), first + count); ++i)
    s += (i > first ? ", " : "") + quote(sorted[i]);
  if (sorted.size() > count) s += ", ...";
  return s;
}

// A hint for files that are obviously something else, from their first bytes.
std::string format_hint(std::span<const unsigned char> head) {
  const auto starts = [&](std::string_view magic) {
    return head.size() >= magic.size() && std::memcmp(head.data(), magic.data(), magic.size()) == 0;
  };
  if (starts("\x93NUMPY")) return " (it is a NumPy .npy file: use the npy source)";
  if (starts("PK\x03\x04"))
    return " (it is a zip archive, perhaps a PyTorch .pt/.bin checkpoint: convert it)";
  if (head.size() >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5)
    return " (it is a Python pickle, perhaps a PyTorch .bin checkpoint: convert it)";
  if (starts("GGUF")) return " (it is a GGUF file)";
  return " (not a safetensors file?)";
}

// Opens `path` read-only after checking it is a regular file. Returns the fd (caller closes) and its size.
int open_regular(const std::filesystem::path& path, const std::string& name, std::string_view what,
                 std::uint64_t& size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    std::string hint;
    if (err == EISDIR) hint = "; it is a directory";
    throw Error(name + ": cannot open the " + std::string(what) + " (" + std::strerror(err) + ")" + hint);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(name + ": cannot stat the " + std::string(what) + " (" + std::strerror(err) + ")");
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    std::string hint;
    for (const char* f : {"model.safetensors.index.json", "model.safetensors"}) {
      if (std::filesystem::exists(path / f)) {
        hint = " (it holds " + std::string(f) + ")";
        break;
      }
    }
    throw Error(name + ": is a directory, not a " + std::string(what) +
                "; give a .safetensors file or a sharded checkpoint's .index.json" + hint);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(name + ": is not a regular file (a device, FIFO or socket), not a " + std::string(what));
  }
  size = static_cast<std::uint64_t>(st.st_size);
  return fd;
}

struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

// -----------------------------------------------------------------------------------------------------------
// DType, TensorInfo, Array

std::string_view dtype_name(DType t) {
  return info_of(t).name;
}
std::size_t dtype_bits(DType t) {
  return info_of(t).bits;
}
bool is_readable(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}

std::size_t TensorInfo::size() const {
  std::size_t n = 1;
  for (const std::size_t d : shape)
    n *= d;
  return n;
}

std::size_t Array::size() const {
  std::size_t n = 1;
  for (const std::size_t d : shape)
    n *= d;
  return n;
}

// -----------------------------------------------------------------------------------------------------------
// File

struct File::State {
  std::string name;
  const unsigned char* bytes = nullptr;  // the whole file
  std::uint64_t size = 0;
  void* mapping = nullptr;  // owned when not null
  std::size_t mapping_size = 0;
  std::uint64_t data_offset = 0;
  std::vector<TensorInfo> tensors;  // sorted by name
  std::vector<std::string> names;   // the same order
  std::map<std::string, std::string> metadata;
  unsigned char head[8] = {};  // the bytes of a file too short to map
  int fd = -1;                 // the mapped file, kept open to see its size now (owned when >= 0)

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() {
    if (mapping != nullptr) ::munmap(mapping, mapping_size);
    if (fd >= 0) ::close(fd);
  }

  // Reading a page of the mapping past the file's current end raises SIGBUS: a file truncated since it was
  // opened must fail here, with its name, before the tensor's bytes are touched.
  void check_still_holds(const TensorInfo& t) const {
    if (fd < 0) return;
    struct stat st {};
    if (::fstat(fd, &st) != 0) return;
    const std::uint64_t end = data_offset + t.end;
    if (static_cast<std::uint64_t>(st.st_size) < end) {
      fail_tensor(t.name, "the file is now " + std::to_string(st.st_size) +
                              " bytes, but the tensor's data ends at byte " + std::to_string(end) +
                              " (it was " + std::to_string(size) +
                              " bytes when opened): it was truncated or rewritten in place while being read");
    }
  }

  [[noreturn]] void fail(const std::string& what) const { throw Error(name + ": " + what); }
  [[noreturn]] void fail_tensor(const std::string& tensor, const std::string& what) const {
    throw Error(name + ": tensor " + quote(tensor) + ": " + what);
  }

  void parse_header();
  TensorInfo parse_entry(const std::string& tensor, const json::Value& v, std::uint64_t buffer) const;
  void check_coverage(std::uint64_t buffer) const;
};

void File::State::parse_header() {
  if (size < 8) {
    fail("only " + std::to_string(size) + " bytes; a safetensors file starts with an 8-byte header length" +
         (size == 0 ? std::string(" (the file is empty)")
                    : format_hint({bytes, static_cast<std::size_t>(size)})));
  }
  const std::uint64_t n = load_le<std::uint64_t>(bytes);
  if (n > size - 8) {
    fail("the header length " + std::to_string(n) + " (the first 8 bytes) goes beyond the end of the file (" +
         std::to_string(size) + " bytes)" +
         format_hint({bytes, static_cast<std::size_t>(std::min<std::uint64_t>(size, 8))}));
  }
  if (n > kMaxHeaderBytes) {
    fail("a header of " + std::to_string(n) + " bytes is over the safetensors limit of " +
         std::to_string(kMaxHeaderBytes) + " bytes (100 MB)");
  }
  data_offset = 8 + n;
  const std::uint64_t buffer = size - data_offset;
  const std::string_view text(reinterpret_cast<const char*>(bytes + 8), static_cast<std::size_t>(n));
  const json::Value root = json::parse(text, name + ": invalid JSON header", 8);
  if (root.kind != json::Value::Kind::object) {
    fail("the header is " + std::string(json::kind_name(root.kind)) +
         ", not a JSON object of tensors (name -> {dtype, shape, data_offsets})");
  }
  tensors.reserve(root.keys.size());
  for (std::size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& key = root.keys[i];
    const json::Value& v = root.items[i];
    if (key == "__metadata__") {
      if (v.kind != json::Value::Kind::object) {
        fail("__metadata__ is " + std::string(json::kind_name(v.kind)) + ", not an object of strings");
      }
      for (std::size_t j = 0; j < v.keys.size(); ++j) {
        if (v.items[j].kind != json::Value::Kind::string) {
          fail("__metadata__ " + quote(v.keys[j]) + " is " + std::string(json::kind_name(v.items[j].kind)) +
               ", not a string (the format allows only string -> string)");
        }
        metadata.emplace(v.keys[j], v.items[j].text);
      }
      continue;
    }
    tensors.push_back(parse_entry(key, v, buffer));
  }
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  names.reserve(tensors.size());
  for (const TensorInfo& t : tensors)
    names.push_back(t.name);
  check_coverage(buffer);
}

TensorInfo File::State::parse_entry(const std::string& tensor, const json::Value& v,
                                    std::uint64_t buffer) const {
  constexpr std::string_view kKeys = "\"dtype\", \"shape\" and \"data_offsets\"";
  if (v.kind != json::Value::Kind::object) {
    fail_tensor(tensor, "the entry is " + std::string(json::kind_name(v.kind)) + ", not an object with " +
                            std::string(kKeys));
  }
  const json::Value* dtype = nullptr;
  const json::Value* shape = nullptr;
  const json::Value* offsets = nullptr;
  for (std::size_t i = 0; i < v.keys.size(); ++i) {
    const std::string& k = v.keys[i];
    const json::Value** slot = k == "dtype"          ? &dtype
                               : k == "shape"        ? &shape
                               : k == "data_offsets" ? &offsets
                                                     : nullptr;
    if (slot == nullptr) {
      fail_tensor(tensor,
                  "unexpected key " + quote(k) + " (an entry has exactly " + std::string(kKeys) + ")");
    }
    *slot = &v.items[i];
  }
  for (const auto& [p, key] : {std::pair{dtype, "dtype"}, {shape, "shape"}, {offsets, "data_offsets"}}) {
    if (p == nullptr)
      fail_tensor(tensor, "no \"" + std::string(key) + "\" (an entry has " + std::string(kKeys) + ")");
  }
  TensorInfo t;
  t.name = tensor;
  if (dtype->kind != json::Value::Kind::string) {
    fail_tensor(tensor,
                "dtype is " + std::string(json::kind_name(dtype->kind)) + ", not a string like \"BF16\"");
  }
  const auto d = std::find_if(std::begin(kDTypes), std::end(kDTypes),
                              [&](const DTypeInfo& x) { return x.name == dtype->text; });
  if (d == std::end(kDTypes)) {
    fail_tensor(tensor, "unknown dtype " + quote(dtype->text) + " (the safetensors dtypes are " +
                            all_dtype_names() + "; sqbench reads " + std::string(kReadable) + ")");
  }
  t.dtype = d->type;

  if (shape->kind != json::Value::Kind::array) {
    fail_tensor(tensor, "shape is " + std::string(json::kind_name(shape->kind)) +
                            ", not a list of non-negative integers like [4096, 11008]");
  }
  for (const json::Value& dim : shape->items) {
    const auto u = dim.as_uint64();
    if (!u || *u > std::numeric_limits<std::size_t>::max()) {
      const std::string what = dim.kind == json::Value::Kind::number ? dim.text
                               : dim.kind == json::Value::Kind::string
                                   ? quote(dim.text)
                                   : std::string(json::kind_name(dim.kind));
      fail_tensor(tensor, "shape: dimension " + what + " is not a non-negative integer within uint64");
    }
    t.shape.push_back(static_cast<std::size_t>(*u));
  }
  // A zero extent means no elements, whatever the others are; only then can the product overflow.
  std::uint64_t count = 1;
  bool overflow = false;
  for (const std::size_t dim : t.shape)
    overflow = overflow || __builtin_mul_overflow(count, static_cast<std::uint64_t>(dim), &count);
  if (std::find(t.shape.begin(), t.shape.end(), std::size_t{0}) != t.shape.end()) {
    count = 0;
    overflow = false;
  }
  if (overflow)
    fail_tensor(tensor, "shape " + shape_text(t.shape) + " has more elements than uint64 can count");
  // Bytes = count * bits / 8 without a wider type: whole eighths of the count first, then the rest.
  const std::uint64_t bits = d->bits;
  if ((count % 8) * bits % 8 != 0) {
    fail_tensor(tensor, "shape " + shape_text(t.shape) + " of " + std::string(d->name) + " (" +
                            std::to_string(bits) + " bits each) does not fill whole bytes");
  }
  std::uint64_t need = 0;
  if (__builtin_mul_overflow(count / 8, bits, &need) ||
      __builtin_add_overflow(need, (count % 8) * bits / 8, &need)) {
    fail_tensor(tensor, "shape " + shape_text(t.shape) + " of " + std::string(d->name) +
                            " needs more bytes than uint64 can count");
  }

  if (offsets->kind != json::Value::Kind::array || offsets->items.size() != 2 ||
      !offsets->items[0].as_uint64() || !offsets->items[1].as_uint64()) {
    fail_tensor(tensor, "data_offsets is not a list of two non-negative integers [begin, end]");
  }
  t.begin = *offsets->items[0].as_uint64();
  t.end = *offsets->items[1].as_uint64();
  const std::string range = "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
  if (t.begin > t.end) fail_tensor(tensor, range + ": begin is after end");
  if (t.end > buffer) {
    fail_tensor(tensor, range + " go beyond the data buffer (" + std::to_string(buffer) +
                            " bytes after the " + std::to_string(data_offset) + "-byte header)");
  }
  if (t.end - t.begin != need) {
    fail_tensor(tensor, range + " hold " + std::to_string(t.end - t.begin) + " bytes, but shape " +
                            shape_text(t.shape) + " of " + std::string(d->name) + " needs " +
                            std::to_string(need));
  }
  return t;
}

void File::State::check_coverage(std::uint64_t buffer) const {
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(tensors.size());
  for (const TensorInfo& t : tensors)
    by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const auto range = [](const TensorInfo* t) {
    return "[" + std::to_string(t->begin) + ", " + std::to_string(t->end) + "]";
  };
  std::uint64_t covered = 0;
  const TensorInfo* last = nullptr;  // the tensor ending at `covered`
  for (const TensorInfo* t : by_offset) {
    if (t->begin < covered) {
      fail("tensors " + quote(last->name) + " (data_offsets " + range(last) + ") and " + quote(t->name) +
           " (data_offsets " + range(t) + ") overlap");
    }
    if (t->begin > covered) {
      fail("bytes [" + std::to_string(covered) + ", " + std::to_string(t->begin) +
           ") of the data buffer belong to no tensor (" +
           (last ? "between " + quote(last->name) + " and " + quote(t->name) : "before " + quote(t->name)) +
           "); a safetensors file has no holes");
    }
    covered = t->end;
    last = t;
  }
  if (covered != buffer) {
    fail(std::to_string(buffer - covered) + " bytes after the last tensor's data belong to no tensor (" +
         (last ? quote(last->name) + " ends at " + std::to_string(covered)
               : std::string("there are no tensors")) +
         ", the data buffer has " + std::to_string(buffer) + " bytes); a safetensors file has no holes");
  }
}

File::File(const std::filesystem::path& path) {
  auto s = std::make_shared<State>();
  s->name = path.string();
  std::uint64_t size = 0;
  const int fd = open_regular(path, s->name, "safetensors file", size);
  const FdCloser closer{fd};
  s->size = size;
  if (size >= 8) {
    if (size > std::numeric_limits<std::size_t>::max()) s->fail("too large to map");
    void* m = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) s->fail("cannot memory-map the file (" + std::string(std::strerror(errno)) + ")");
    s->mapping = m;
    s->mapping_size = static_cast<std::size_t>(size);
    s->fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    s->bytes = static_cast<const unsigned char*>(m);
  } else {
    // Too short to be a safetensors file: read the few bytes for the message.
    const ssize_t got = ::pread(fd, s->head, static_cast<std::size_t>(size), 0);
    s->size = got > 0 ? static_cast<std::uint64_t>(got) : 0;
    s->bytes = s->head;
  }
  s->parse_header();
  s_ = std::move(s);
}

File File::parse(std::span<const unsigned char> bytes, std::string_view name) {
  auto s = std::make_shared<State>();
  s->name = std::string(name);
  s->bytes = bytes.data();
  s->size = bytes.size();
  s->parse_header();
  File f;
  f.s_ = std::move(s);
  return f;
}

const std::string& File::name() const {
  return s_->name;
}
const std::vector<TensorInfo>& File::tensors() const {
  return s_->tensors;
}
const std::vector<std::string>& File::names() const {
  return s_->names;
}
const std::map<std::string, std::string>& File::metadata() const {
  return s_->metadata;
}
std::uint64_t File::data_offset() const {
  return s_->data_offset;
}

const TensorInfo* File::find(std::string_view tensor) const {
  const auto it = std::lower_bound(s_->tensors.begin(), s_->tensors.end(), tensor,
                                   [](const TensorInfo& a, std::string_view b) { return a.name < b; });
  return it != s_->tensors.end() && it->name == tensor ? &*it : nullptr;
}

const TensorInfo& File::info(std::string_view tensor) const {
  const TensorInfo* t = find(tensor);
  if (t == nullptr)
    s_->fail("no tensor " + quote(tensor) + "; the file has " + names_near(s_->names, tensor));
  return *t;
}

std::span<const unsigned char> File::raw(std::string_view tensor) const {
  const TensorInfo& t = info(tensor);
  s_->check_still_holds(t);
  return {s_->bytes + s_->data_offset + t.begin, static_cast<std::size_t>(t.end - t.begin)};
}

// Checks that `t` is a tensor read() reads (a readable dtype, some elements, still in the file), failing
// as read() does.
void File::check_readable(const TensorInfo& t) const {
  if (!is_readable(t.dtype)) {
    s_->fail_tensor(t.name, "dtype " + std::string(dtype_name(t.dtype)) +
                                " is not data sqbench reads (it reads " + std::string(kReadable) + ")");
  }
  if (t.size() == 0)
    s_->fail_tensor(t.name, "shape " + shape_text(t.shape) + " has no elements: there is nothing to read");
  s_->check_still_holds(t);
}

// Elements [begin, end) of `t` as float32 into out[begin, end): the one conversion read() and read_into()
// share, so any split of a tensor into ranges gives the same values.
void File::convert_range(const TensorInfo& t, float* out, std::size_t begin, std::size_t end) const {
  const unsigned char* src = s_->bytes + s_->data_offset + t.begin;
  switch (t.dtype) {
    case DType::F32:
      if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(out + begin, src + 4 * begin, (end - begin) * 4);
      } else {
        for (std::size_t i = begin; i < end; ++i)
          out[i] = std::bit_cast<float>(load_le<std::uint32_t>(src + 4 * i));
      }
      break;
    case DType::F16:
      for (std::size_t i = begin; i < end; ++i)
        out[i] = sqb::npy::half_to_float(load_le<std::uint16_t>(src + 2 * i));
      break;
    case DType::BF16:
      // bfloat16 is the top half of a float32: widening is exact, NaN payloads included.
      for (std::size_t i = begin; i < end; ++i)
        out[i] = std::bit_cast<float>(static_cast<std::uint32_t>(load_le<std::uint16_t>(src + 2 * i)) << 16);
      break;
    case DType::F64: {
      // The smallest |x| that rounds to Inf in float32: FLT_MAX + half an ulp (the tie goes to 2^128).
      const double overflow = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);
      for (std::size_t i = begin; i < end; ++i) {
        const double v = std::bit_cast<double>(load_le<std::uint64_t>(src + 8 * i));
        if (std::isfinite(v) && std::fabs(v) >= overflow) {
          s_->fail_tensor(t.name, "F64 value " + shortest(v) + " at index " + index_text(i, t.shape) +
                                      " (flat " + std::to_string(i) +
                                      ") is outside float32's range (|x| <= " +
                                      shortest(static_cast<double>(std::numeric_limits<float>::max())) + ")");
        }
        out[i] = static_cast<float>(v);
      }
      break;
    }
    default:
      throw std::logic_error("safetensors: readable dtype without a conversion");
  }
}

Array File::read(std::string_view tensor) const {
  const TensorInfo& t = info(tensor);
  check_readable(t);
  Array a;
  a.shape = t.shape;
  a.dtype = t.dtype;
  a.values.resize(t.size());
  convert_range(t, a.values.data(), 0, t.size());
  return a;
}

void File::read_into(std::string_view tensor, std::span<float> out, int threads) const {
  const TensorInfo& t = info(tensor);
  check_readable(t);
  const std::size_t n = t.size();
  if (out.size() != n) {
    throw std::logic_error("safetensors: read_into of " + std::to_string(n) + " values into " +
                           std::to_string(out.size()));
  }
  // Pieces of a fixed size, each converted whole by one thread; an F64 range error is the lowest piece's
  // first, as read() would report it.
  constexpr std::size_t kPiece = std::size_t{1} << 20;
  detail::parallel_for((n + kPiece - 1) / kPiece, detail::resolve_threads(threads), [&](std::size_t p) {
    convert_range(t, out.data(), p * kPiece, std::min(n, (p + 1) * kPiece));
  });
}

// -----------------------------------------------------------------------------------------------------------
// Sharded checkpoints

std::vector<std::pair<std::string, std::string>> parse_index(std::string_view text, std::string_view name) {
  const std::string n(name);
  const json::Value root = json::parse(text, n + ": invalid JSON in the index file");
  if (root.kind != json::Value::Kind::object) {
    throw Error(n + ": the index is " + std::string(json::kind_name(root.kind)) +
                ", not an object {\"metadata\": {...}, \"weight_map\": {tensor: shard file}}");
  }
  if (const json::Value* m = root.find("metadata"); m != nullptr && m->kind != json::Value::Kind::object)
    throw Error(n + ": the index's \"metadata\" is " + std::string(json::kind_name(m->kind)) +
                ", not an object");
  const json::Value* map = root.find("weight_map");
  if (map == nullptr) throw Error(n + ": the index has no \"weight_map\" (tensor name -> shard file)");
  if (map->kind != json::Value::Kind::object)
    throw Error(n + ": the index's \"weight_map\" is " + std::string(json::kind_name(map->kind)) +
                ", not an object");
  if (map->keys.empty()) throw Error(n + ": the index's \"weight_map\" lists no tensors");
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(map->keys.size());
  for (std::size_t i = 0; i < map->keys.size(); ++i) {
    const json::Value& shard = map->items[i];
    const std::string where = n + ": weight_map: tensor " + quote(map->keys[i]);
    if (shard.kind != json::Value::Kind::string) {
      throw Error(where + ": the shard is " + std::string(json::kind_name(shard.kind)) + ", not a file name");
    }
    const std::filesystem::path p(shard.text);
    bool plain = !shard.text.empty() && p.is_relative() && shard.text.find('\0') == std::string::npos;
    for (const auto& part : p)
      plain = plain && part != "." && part != ".." && !part.empty();
    if (!plain || shard.text.back() == '/') {
      throw Error(where + ": shard " + quote(shard.text) +
                  " is not a file name relative to the index's folder (no absolute path, '.' or '..')");
    }
    out.emplace_back(map->keys[i], shard.text);
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Checkpoint::State {
  std::string name;
  std::filesystem::path folder;
  bool sharded = false;
  std::vector<std::string> names;
  std::vector<std::string> shard_of;  // parallel to names when sharded
  std::optional<File> single;
  std::mutex mutex;
  std::map<std::string, File> shards;  // opened shards by file name

  std::size_t index_of(std::string_view tensor) const {
    const auto it = std::lower_bound(names.begin(), names.end(), tensor,
                                     [](const std::string& a, std::string_view b) { return a < b; });
    if (it == names.end() || *it != tensor) {
      throw Error(name + ": no tensor " + quote(tensor) + "; the checkpoint has " +
                  names_near(names, tensor));
    }
    return static_cast<std::size_t>(it - names.begin());
  }

  // The file holding `tensor`, opened (once) under the lock.
  File file_for(std::string_view tensor) {
    if (!sharded) {
      index_of(tensor);
      return *single;
    }
    const std::string& shard = shard_of[index_of(tensor)];
    const std::lock_guard lock(mutex);
    auto it = shards.find(shard);
    if (it == shards.end()) {
      try {
        it = shards.emplace(shard, File(folder / shard)).first;
      } catch (const Error& e) {
        throw Error(name + ": tensor " + quote(tensor) + " is in shard " + quote(shard) + ": " + e.what());
      }
    }
    if (it->second.find(tensor) == nullptr) {
      throw Error(name + ": the weight_map puts tensor " + quote(tensor) + " in " + quote(shard) +
                  ", but that shard has no such tensor");
    }
    return it->second;
  }
};

Checkpoint::Checkpoint(const std::filesystem::path& path) : s_(std::make_shared<State>()) {
  s_->name = path.string();
  s_->folder = path.parent_path();
  if (path.extension() != ".json") {
    s_->single.emplace(path);
    s_->names = s_->single->names();
    return;
  }
  s_->sharded = true;
  std::uint64_t size = 0;
  const int fd = open_regular(path, s_->name, "sharded checkpoint index (.index.json)", size);
  const FdCloser closer{fd};
  if (size > kMaxIndexBytes) {
    throw Error(s_->name + ": an index file of " + std::to_string(size) + " bytes is over the limit of " +
                std::to_string(kMaxIndexBytes));
  }
  std::string text(static_cast<std::size_t>(size), '\0');
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t got = ::pread(fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw Error(s_->name + ": reading failed (" + std::string(std::strerror(errno)) + ")");
    if (got == 0) throw Error(s_->name + ": the file shrank while being read");
    done += static_cast<std::size_t>(got);
  }
  for (auto& [tensor, shard] : parse_index(text, s_->name)) {
    s_->names.push_back(std::move(tensor));
    s_->shard_of.push_back(std::move(shard));
  }
}

const std::string& Checkpoint::name() const {
  return s_->name;
}
bool Checkpoint::sharded() const {
  return s_->sharded;
}
const std::vector<std::string>& Checkpoint::names() const {
  return s_->names;
}
std::filesystem::path Checkpoint::file_of(std::string_view tensor) const {
  const std::size_t i = s_->index_of(tensor);
  return s_->sharded ? s_->folder / s_->shard_of[i] : std::filesystem::path(s_->name);
}
TensorInfo Checkpoint::info(std::string_view tensor) const {
  return s_->file_for(tensor).info(tensor);
}
Array Checkpoint::read(std::string_view tensor) const {
  return s_->file_for(tensor).read(tensor);
}
std::map<std::string, std::string> Checkpoint::metadata_of(std::string_view tensor) const {
  return s_->file_for(tensor).metadata();
}
std::vector<std::string> Checkpoint::match(std::string_view pattern) const {
  return glob_names(s_->names, pattern, s_->name);
}

// -----------------------------------------------------------------------------------------------------------
// Globs

namespace {

// UTF-8 -> code points. Bytes that are not valid UTF-8 become U+DC80 + byte (Python's surrogateescape), so
// every string decodes and distinct strings stay distinct; `valid` says whether that was needed.
std::u32string decode_utf8(std::string_view s, bool& valid) {
  std::u32string out;
  out.reserve(s.size());
  valid = true;
  for (std::size_t i = 0; i < s.size();) {
    const auto b = [&](std::size_t k) -> unsigned {
      return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0x100u;
    };
    const auto cont = [](unsigned c, unsigned lo = 0x80, unsigned hi = 0xBF) { return c >= lo && c <= hi; };
    const unsigned c0 = b(0);
    std::size_t len = 0;
    char32_t cp = 0;
    if (c0 < 0x80) {
      len = 1, cp = c0;
    } else if (c0 >= 0xC2 && c0 <= 0xDF && cont(b(1))) {
      len = 2, cp = ((c0 & 0x1F) << 6) | (b(1) & 0x3F);
    } else if (c0 >= 0xE0 && c0 <= 0xEF && cont(b(1), c0 == 0xE0 ? 0xA0 : 0x80, c0 == 0xED ? 0x9F : 0xBF) &&
               cont(b(2))) {
      len = 3, cp = ((c0 & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    } else if (c0 >= 0xF0 && c0 <= 0xF4 && cont(b(1), c0 == 0xF0 ? 0x90 : 0x80, c0 == 0xF4 ? 0x8F : 0xBF) &&
               cont(b(2)) && cont(b(3))) {
      len = 4, cp = ((c0 & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    } else {
      valid = false;
      len = 1, cp = 0xDC00 + c0;
    }
    out += cp;
    i += len;
  }
  return out;
}

struct GlobToken {
  enum class Kind : std::uint8_t { literal, one, run, set };
  Kind kind = Kind::literal;
  char32_t c = 0;
  bool negate = false;
  std::vector<std::pair<char32_t, char32_t>> ranges;

  bool matches(char32_t x) const {
    switch (kind) {
      case Kind::literal:
        return x == c;
      case Kind::one:
        return true;
      case Kind::set: {
        bool in = false;
        for (const auto& [lo, hi] : ranges)
          in = in || (x >= lo && x <= hi);
        return in != negate;
      }
      case Kind::run:
        break;
    }
    return false;
  }
};

std::vector<GlobToken> compile_glob(std::string_view pattern) {
  const auto fail = [&](const std::string& why) {
    throw Error("tensor pattern " + quote(pattern) + ": " + why);
  };
  bool valid = true;
  const std::u32string p = decode_utf8(pattern, valid);
  if (!valid) fail("not valid UTF-8");
  std::vector<GlobToken> out;
  for (std::size_t i = 0; i < p.size();) {
    GlobToken t;
    const char32_t c = p[i];
    if (c == U'*') {
      t.kind = GlobToken::Kind::run;
      ++i;
      if (!out.empty() && out.back().kind == GlobToken::Kind::run) continue;  // ** is *
    } else if (c == U'?') {
      t.kind = GlobToken::Kind::one;
      ++i;
    } else if (c == U'\\') {
      if (i + 1 >= p.size()) fail("ends in a lone '\\'");
      t.c = p[i + 1];
      i += 2;
    } else if (c == U'[') {
      t.kind = GlobToken::Kind::set;
      std::size_t j = i + 1;
      if (j < p.size() && (p[j] == U'!' || p[j] == U'^')) {
        t.negate = true;
        ++j;
      }
      const auto member = [&](std::size_t& k) -> char32_t {
        if (p[k] == U'\\') {
          if (k + 1 >= p.size()) fail("ends in a lone '\\'");
          ++k;
        } else if (p[k] == U'[' && k + 1 < p.size() &&
                   (p[k + 1] == U':' || p[k + 1] == U'=' || p[k + 1] == U'.')) {
          fail("POSIX classes such as [[:alpha:]] are not supported; list the characters, e.g. [a-zA-Z]");
        }
        return p[k++];
      };
      bool first = true;
      while (true) {
        if (j >= p.size()) fail("'[' without its closing ']'");
        if (p[j] == U']' && !first) break;
        first = false;
        const char32_t lo = member(j);
        char32_t hi = lo;
        if (j + 1 < p.size() && p[j] == U'-' && p[j + 1] != U']') {
          ++j;
          hi = member(j);
          if (hi < lo) fail("the range in '[...]' has its ends reversed");
        }
        t.ranges.emplace_back(lo, hi);
      }
      i = j + 1;
    } else {
      t.c = c;
      ++i;
    }
    out.push_back(std::move(t));
  }
  return out;
}

bool match_tokens(const std::vector<GlobToken>& toks, const std::u32string& s) {
  // Greedy with backtracking to the last '*': each '*' only ever needs to grow, so this is O(|p| |s|).
  std::size_t p = 0, n = 0, star = std::u32string::npos, mark = 0;
  while (n < s.size()) {
    if (p < toks.size() && toks[p].kind == GlobToken::Kind::run) {
      star = p++;
      mark = n;
    } else if (p < toks.size() && toks[p].matches(s[n])) {
      ++p;
      ++n;
    } else if (star != std::u32string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < toks.size() && toks[p].kind == GlobToken::Kind::run)
    ++p;
  return p == toks.size();
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view name) {
  bool valid = true;
  return match_tokens(compile_glob(pattern), decode_utf8(name, valid));
}

std::vector<std::string> glob_names(std::span<const std::string> names, std::string_view pattern,
                                    std::string_view where) {
  const std::vector<GlobToken> toks = compile_glob(pattern);
  std::vector<std::string> out;
  for (const std::string& n : names) {
    bool valid = true;
    if (match_tokens(toks, decode_utf8(n, valid))) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.empty()) {
    std::vector<std::string> sorted(names.begin(), names.end());
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    const std::string_view literal = pattern.substr(0, pattern.find_first_of("*?[\\"));
    throw Error(std::string(where) + ": tensor pattern " + quote(pattern) + " matches none of the " +
                (sorted.empty() ? std::string("0 tensors") : names_near(sorted, literal)));
  }
  return out;
}

}  // namespace sqb::safetensors
