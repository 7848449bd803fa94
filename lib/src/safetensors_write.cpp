// safetensors writing: the file is laid out completely before the first data byte is written (header up
// front, every tensor at a fixed offset), so tensors can be written in any order, from several threads, one
// at a time, and the caller never holds more than one tensor.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <mutex>

#include "detail/json.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"
#include "sqb/safetensors.hpp"

namespace sqb::safetensors {

namespace {

using sqb::detail::json::quote;

constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3Fu);
    }
    // Overlong forms, surrogates and code points past U+10FFFF have no place in UTF-8.
    const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// A JSON string literal: quotes, backslashes and control characters escaped, other UTF-8 as is.
void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

std::size_t element_bytes(DType t) {
  const std::size_t bits = dtype_bits(t);
  return bits >= 8 ? bits / 8 : 1;
}

[[maybe_unused]] void put_le16(unsigned char* p, std::uint16_t v) {
  p[0] = static_cast<unsigned char>(v & 0xFF);
  p[1] = static_cast<unsigned char>(v >> 8);
}
[[maybe_unused]] void put_le32(unsigned char* p, std::uint32_t v) {
  for (int b = 0; b < 4; ++b)
    p[b] = static_cast<unsigned char>((v >> (8 * b)) & 0xFF);
}
[[maybe_unused]] void put_le64(unsigned char* p, std::uint64_t v) {
  for (int b = 0; b < 8; ++b)
    p[b] = static_cast<unsigned char>((v >> (8 * b)) & 0xFF);
}

// out[j] = convert(values[j]) as little-endian U, for every j.
template <class U, class Convert>
void convert_into(std::span<const float> values, unsigned char* out, Convert convert) {
  for (std::size_t j = 0; j < values.size(); ++j) {
    const U v = convert(values[j]);
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(out + sizeof(U) * j, &v, sizeof(U));
    } else if constexpr (sizeof(U) == 2) {
      put_le16(out + 2 * j, v);
    } else if constexpr (sizeof(U) == 4) {
      put_le32(out + 4 * j, v);
    } else {
      put_le64(out + 8 * j, v);
    }
  }
}

std::atomic<unsigned> temp_counter{0};

}  // namespace

std::uint16_t float_to_bf16(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  // Adding 0x7FFF + the lowest kept bit carries into the kept half exactly when the dropped half is above
  // one half, or exactly one half with an odd kept half; a carry out of the mantissa bumps the exponent
  // (up to Inf), as rounding should. A NaN becomes the quiet NaN (a select, not a branch: vectorizable).
  const auto rounded = static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  return (u & 0x7FFFFFFFu) > 0x7F800000u ? std::uint16_t{0x7FC0u} : rounded;
}

float bf16_to_float(std::uint16_t h) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

std::uint16_t float_to_f16(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>(((u >> 16) & 0x8000u) | 0x7E00u);
  return sqb::npy::float_to_half(f);
}

std::uint64_t byte_size(DType dtype, std::span<const std::size_t> shape, std::string_view tensor) {
  std::uint64_t count = 1;
  bool overflow = false;
  for (const std::size_t d : shape)
    overflow = overflow || __builtin_mul_overflow(count, static_cast<std::uint64_t>(d), &count);
  if (std::find(shape.begin(), shape.end(), std::size_t{0}) != shape.end()) return 0;
  const std::uint64_t bits = dtype_bits(dtype);
  std::uint64_t bytes = 0;
  if (overflow || __builtin_mul_overflow(count / 8, bits, &bytes) ||
      __builtin_add_overflow(bytes, (count % 8) * bits / 8, &bytes)) {
    throw Error("tensor " + quote(tensor) + ": its size overflows uint64");
  }
  if ((count % 8) * bits % 8 != 0) {
    throw Error("tensor " + quote(tensor) + ": " + std::to_string(count) + " elements of " +
                std::string(dtype_name(dtype)) + " do not fill whole bytes");
  }
  return bytes;
}

struct Writer::State {
  std::filesystem::path path, temp;
  std::string name;                                                           // the final path, for messages
  std::vector<TensorInfo> tensors;                                            // sorted by name
  std::vector<std::vector<std::pair<std::uint64_t, std::uint64_t>>> written;  // per tensor: [begin, end)
  std::uint64_t data_offset = 0, file_size = 0;
  int fd = -1;
  bool committed = false, keep = false;
  std::mutex mu;

  [[noreturn]] void fail(const std::string& what) const { throw Error(name + ": " + what); }
  [[noreturn]] void fail_io(const std::string& what) const {
    fail(what + " " + temp.string() + " (" + std::strerror(errno) + ")");
  }
  std::size_t index(std::string_view tensor) const {
    const auto it = std::lower_bound(tensors.begin(), tensors.end(), tensor,
                                     [](const TensorInfo& t, std::string_view n) { return t.name < n; });
    if (it == tensors.end() || it->name != tensor)
      fail("the writer has no tensor " + quote(tensor) + " (it was not in the layout)");
    return static_cast<std::size_t>(it - tensors.begin());
  }
  void pwrite_all(const unsigned char* p, std::size_t n, std::uint64_t at) const {
    while (n > 0) {
      const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(at));
      if (w < 0) {
        if (errno == EINTR) continue;
        fail_io("cannot write");
      }
      p += w;
      n -= static_cast<std::size_t>(w);
      at += static_cast<std::uint64_t>(w);
    }
  }
};

Writer::Writer(const std::filesystem::path& path, std::vector<Entry> entries,
               std::map<std::string, std::string> metadata, std::optional<Partial> partial)
    : s_(std::make_unique<State>()) {
  s_->path = path;
  s_->name = path.string();
  // Validate names and metadata before touching the file system.
  for (const Entry& e : entries) {
    if (e.name.empty()) s_->fail("a tensor with an empty name");
    if (e.name == "__metadata__") s_->fail("\"__metadata__\" cannot name a tensor (the header reserves it)");
    if (!valid_utf8(e.name)) s_->fail("tensor name " + quote(e.name) + " is not valid UTF-8");
  }
  {
    std::vector<std::string_view> names;
    for (const Entry& e : entries)
      names.push_back(e.name);
    std::sort(names.begin(), names.end());
    const auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end()) s_->fail("tensor " + quote(*dup) + " is given twice");
  }
  for (const auto& [k, v] : metadata) {
    if (!valid_utf8(k) || !valid_utf8(v))
      s_->fail("__metadata__ entry " + quote(k) + " is not valid UTF-8 text");
  }
  // Layout: larger elements first keeps every tensor aligned to its element size once the buffer starts
  // at a multiple of 8.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    const std::size_t ea = element_bytes(a.dtype), eb = element_bytes(b.dtype);
    if (ea != eb) return ea > eb;
    if (dtype_bits(a.dtype) != dtype_bits(b.dtype)) return dtype_bits(a.dtype) > dtype_bits(b.dtype);
    return a.name < b.name;
  });
  std::uint64_t at = 0;
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!first) header += ',';
      first = false;
      append_json_string(header, k);
      header += ':';
      append_json_string(header, v);
    }
    header += '}';
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    std::uint64_t bytes;
    try {
      bytes = byte_size(e.dtype, e.shape, e.name);
    } catch (const Error& err) {
      s_->fail(err.what());
    }
    TensorInfo t;
    t.name = e.name;
    t.dtype = e.dtype;
    t.shape = e.shape;
    t.begin = at;
    if (__builtin_add_overflow(at, bytes, &t.end)) s_->fail("the tensors' total size overflows uint64");
    at = t.end;
    if (header.size() > 1) header += ',';
    append_json_string(header, t.name);
    header += ":{\"dtype\":\"" + std::string(dtype_name(t.dtype)) + "\",\"shape\":[";
    for (std::size_t d = 0; d < t.shape.size(); ++d) {
      if (d > 0) header += ',';
      header += std::to_string(t.shape[d]);
    }
    header += "],\"data_offsets\":[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]}";
    s_->tensors.push_back(std::move(t));
    if (header.size() > kMaxHeaderBytes) s_->fail("the header would be over 100,000,000 bytes");
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kMaxHeaderBytes) s_->fail("the header would be over 100,000,000 bytes");
  std::sort(s_->tensors.begin(), s_->tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  s_->written.resize(s_->tensors.size());
  s_->data_offset = 8 + header.size();
  s_->file_size = s_->data_offset + at;

  std::string prefix(8, '\0');
  put_le64(reinterpret_cast<unsigned char*>(prefix.data()), header.size());
  prefix += header;
  if (partial) {
    s_->temp = partial->path;
    s_->keep = true;
  } else {
    s_->temp = path;
    s_->temp += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(temp_counter++);
  }
  if (partial && partial->reopen) {
    // Continue an earlier run's file: it must be this very layout, or resuming would mix two outputs.
    s_->fd = ::open(s_->temp.c_str(), O_RDWR | O_CLOEXEC);
    if (s_->fd < 0) s_->fail_io("cannot reopen the partial file");
    struct stat sb {};
    std::string head(prefix.size(), '\0');
    const bool same_size =
        ::fstat(s_->fd, &sb) == 0 && static_cast<std::uint64_t>(sb.st_size) == s_->file_size;
    const bool same_head =
        same_size && ::pread(s_->fd, head.data(), head.size(), 0) == static_cast<ssize_t>(head.size()) &&
        head == prefix;
    if (!same_head) {
      ::close(s_->fd);
      s_->fd = -1;
      s_->fail("the partial file " + s_->temp.string() +
               " was laid out for other tensors or metadata; it cannot be continued");
    }
    return;
  }
  s_->fd = ::open(s_->temp.c_str(), O_WRONLY | O_CREAT | (partial ? O_TRUNC : O_EXCL) | O_CLOEXEC, 0666);
  if (s_->fd < 0) s_->fail_io("cannot create");
  try {
    if (::ftruncate(s_->fd, static_cast<off_t>(s_->file_size)) != 0) s_->fail_io("cannot size");
    s_->pwrite_all(reinterpret_cast<const unsigned char*>(prefix.data()), prefix.size(), 0);
  } catch (...) {
    ::close(s_->fd);
    ::unlink(s_->temp.c_str());
    throw;
  }
}

Writer::~Writer() {
  if (s_ == nullptr) return;
  if (s_->fd >= 0) ::close(s_->fd);
  if (!s_->committed && !s_->keep) ::unlink(s_->temp.c_str());
}

const std::filesystem::path& Writer::path() const {
  return s_->path;
}
const std::filesystem::path& Writer::temp_path() const {
  return s_->temp;
}
const std::vector<TensorInfo>& Writer::tensors() const {
  return s_->tensors;
}
const TensorInfo& Writer::info(std::string_view tensor) const {
  return s_->tensors[s_->index(tensor)];
}
std::uint64_t Writer::data_offset() const {
  return s_->data_offset;
}
std::uint64_t Writer::file_size() const {
  return s_->file_size;
}
bool Writer::committed() const {
  return s_->committed;
}

void Writer::write(std::string_view tensor, std::span<const unsigned char> bytes, std::uint64_t offset) {
  if (s_->committed) s_->fail("write after commit");
  const std::size_t i = s_->index(tensor);
  const TensorInfo& t = s_->tensors[i];
  const std::uint64_t size = t.end - t.begin;
  if (offset > size || bytes.size() > size - offset) {
    s_->fail("tensor " + quote(t.name) + ": a write of " + std::to_string(bytes.size()) + " bytes at " +
             std::to_string(offset) + " is beyond its " + std::to_string(size) + " bytes");
  }
  s_->pwrite_all(bytes.data(), bytes.size(), s_->data_offset + t.begin + offset);
  const std::lock_guard<std::mutex> lock(s_->mu);
  s_->written[i].emplace_back(offset, offset + bytes.size());
}

void Writer::write_values(std::string_view tensor, std::span<const float> values, std::size_t first) {
  const TensorInfo& t = info(tensor);
  const std::size_t width = dtype_bits(t.dtype) / 8;
  if (t.dtype != DType::F32 && t.dtype != DType::F64 && t.dtype != DType::F16 && t.dtype != DType::BF16) {
    s_->fail("tensor " + quote(t.name) + ": float values cannot be written as " +
             std::string(dtype_name(t.dtype)) + " (F32, F64, F16 and BF16 can)");
  }
  if (first > t.size() || values.size() > t.size() - first) {
    s_->fail("tensor " + quote(t.name) + ": values " + std::to_string(first) + ".." +
             std::to_string(first + values.size()) + " are beyond its " + std::to_string(t.size()) +
             " elements");
  }
  // Converted in chunks so a tensor of any size costs a fixed buffer; one loop per dtype, so each is
  // a plain loop the compiler vectorizes (the BF16 rounding is the model's whole write cost otherwise).
  constexpr std::size_t kChunk = std::size_t{1} << 16;
  std::vector<unsigned char> buf(std::min(values.size(), kChunk) * width);
  for (std::size_t at = 0; at < values.size(); at += kChunk) {
    const std::span<const float> chunk = values.subspan(at, std::min(kChunk, values.size() - at));
    unsigned char* p = buf.data();
    switch (t.dtype) {
      case DType::F32:
        convert_into<std::uint32_t>(chunk, p, [](float v) { return std::bit_cast<std::uint32_t>(v); });
        break;
      case DType::F64:
        convert_into<std::uint64_t>(
            chunk, p, [](float v) { return std::bit_cast<std::uint64_t>(static_cast<double>(v)); });
        break;
      case DType::F16:
        convert_into<std::uint16_t>(chunk, p, [](float v) { return float_to_f16(v); });
        break;
      default:
        convert_into<std::uint16_t>(chunk, p, [](float v) { return float_to_bf16(v); });
        break;
    }
    write(tensor, {buf.data(), chunk.size() * width}, (first + at) * width);
  }
}

void Writer::mark_written(std::string_view tensor) {
  const std::size_t i = s_->index(tensor);
  const std::lock_guard<std::mutex> lock(s_->mu);
  s_->written[i].emplace_back(0, s_->tensors[i].end - s_->tensors[i].begin);
}

void Writer::sync() {
  if (s_->committed) return;
  if (::fdatasync(s_->fd) != 0) s_->fail_io("cannot flush");
}

void Writer::commit() {
  if (s_->committed) return;
  for (std::size_t i = 0; i < s_->tensors.size(); ++i) {
    auto& w = s_->written[i];
    std::sort(w.begin(), w.end());
    std::uint64_t covered = 0;
    for (const auto& [b, e] : w) {
      if (b > covered) break;
      covered = std::max(covered, e);
    }
    const TensorInfo& t = s_->tensors[i];
    if (covered < t.end - t.begin) {
      s_->fail("tensor " + quote(t.name) + ": bytes " + std::to_string(covered) + ".." +
               std::to_string(t.end - t.begin) + " were never written (nothing was renamed; the file is " +
               "incomplete)");
    }
  }
  if (::fsync(s_->fd) != 0) s_->fail_io("cannot flush");
  if (::close(s_->fd) != 0) {
    s_->fd = -1;
    s_->fail_io("cannot close");
  }
  s_->fd = -1;
  std::error_code ec;
  std::filesystem::rename(s_->temp, s_->path, ec);
  if (ec) s_->fail("cannot rename " + s_->temp.string() + " to it (" + ec.message() + ")");
  s_->committed = true;
}

void write_file(const std::filesystem::path& path, std::span<const Blob> tensors,
                const std::map<std::string, std::string>& metadata) {
  std::vector<Entry> entries;
  entries.reserve(tensors.size());
  for (const Blob& b : tensors)
    entries.push_back(b.entry);
  Writer w(path, std::move(entries), metadata);
  for (const Blob& b : tensors) {
    const TensorInfo& t = w.info(b.entry.name);
    if (b.bytes.size() != t.end - t.begin) {
      throw Error(path.string() + ": tensor " + quote(t.name) + ": " + std::to_string(b.bytes.size()) +
                  " bytes given for " + std::string(dtype_name(t.dtype)) + " shape of " +
                  std::to_string(t.end - t.begin) + " bytes");
    }
    w.write(t.name, b.bytes);
  }
  w.commit();
}

}  // namespace sqb::safetensors
