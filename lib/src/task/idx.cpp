// IDX files, plain or gzip. The header is read first (through zlib when compressed), then its claimed size is
// checked against the limit before any data is kept; the output buffer grows only as real bytes arrive, so a
// header that lies costs at most what the stream actually holds.

#include "sqb/idx.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>

#include "sqb/error.hpp"

namespace sqb::idx {

namespace {

constexpr std::size_t kChunk = std::size_t{1} << 16;

std::string hex_byte(unsigned char c) {
  static const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[c >> 4] + digits[c & 15];
}

std::string plural(std::size_t n, std::string_view one) {
  return std::to_string(n) + " " + std::string(one) + (n == 1 ? "" : "s");
}

// Reading the header needs to know what the type codes mean to say what an unsupported file holds.
std::string type_description(unsigned char code) {
  switch (code) {
    case 0x08:
      return "unsigned bytes";
    case 0x09:
      return "signed bytes";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "";
  }
}

// Validates what there is of the header so far. Returns the header length (4 + 4 R) once the first four
// bytes are known, 0 before that.
class HeaderCheck {
 public:
  explicit HeaderCheck(std::string name) : name_(std::move(name)) {}

  [[noreturn]] void fail(const std::string& what) const { throw Error(name_ + ": " + what); }

  std::size_t header_bytes(std::span<const unsigned char> head) const {
    if (head.size() < 4) return 0;
    if (head[0] != 0 || head[1] != 0) {
      fail("not an IDX file: it starts with " + hex_byte(head[0]) + " " + hex_byte(head[1]) +
           ", an IDX file with two zero bytes, then its type code and rank");
    }
    const unsigned char type = head[2];
    if (type != 0x08) {
      const std::string what = type_description(type);
      if (what.empty()) {
        fail("unknown IDX type code " + hex_byte(type) +
             " (valid: 0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E "
             "float64); sqbench reads unsigned bytes (0x08)");
      }
      fail("holds " + what + " (type code " + hex_byte(type) +
           "); sqbench reads IDX files of unsigned bytes (type code 0x08), as MNIST and Fashion-MNIST hold");
    }
    if (head[3] == 0) fail("rank 0: an IDX array needs at least one dimension");
    return 4 + 4 * static_cast<std::size_t>(head[3]);
  }

  // The dims and the total file size they claim (header + data), checked for overflow, zeros and the limit.
  std::size_t dims(std::span<const unsigned char> head, std::size_t max_bytes,
                   std::vector<std::size_t>& out) const {
    const std::size_t rank = head[3];
    out.assign(rank, 0);
    std::size_t count = 1;
    bool overflow = false;
    for (std::size_t i = 0; i < rank; ++i) {
      const unsigned char* p = head.data() + 4 + 4 * i;
      const std::size_t d =
          (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
      out[i] = d;
      if (d == 0)
        fail("dimension " + std::to_string(i) + " is 0 (an empty array; the dimensions are " +
             dims_text(out) + ")");
      if (count > std::numeric_limits<std::size_t>::max() / d)
        overflow = true;
      else
        count *= d;
    }
    const std::size_t header = 4 + 4 * rank;
    if (overflow || count > std::numeric_limits<std::size_t>::max() - header) {
      fail("the dimensions " + dims_text(out) + " overflow a byte count (size_t)");
    }
    if (count + header > max_bytes) {
      fail("the dimensions " + dims_text(out) + " need " + std::to_string(count + header) +
           " bytes, more than the limit of " + std::to_string(max_bytes) + " bytes");
    }
    return count;
  }

  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

Array parse_plain(std::span<const unsigned char> bytes, const HeaderCheck& check, std::size_t max_bytes) {
  const std::size_t header = check.header_bytes(bytes);
  if (header == 0 || bytes.size() < header) {
    check.fail("truncated header: " + plural(bytes.size(), "byte") + ", the header needs " +
               std::to_string(header == 0 ? 4 : header));
  }
  Array a;
  const std::size_t count = check.dims(bytes, max_bytes, a.dims);
  const std::size_t have = bytes.size() - header;
  if (have < count) {
    check.fail("truncated data: the dimensions " + dims_text(a.dims) + " need " + std::to_string(count) +
               " bytes, the file has " + std::to_string(have));
  }
  if (have > count) {
    check.fail(plural(have - count, "byte") + " after the data (the dimensions " + dims_text(a.dims) +
               " need " + std::to_string(count) + ")");
  }
  a.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return a;
}

bool is_gzip(std::span<const unsigned char> bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B;
}

// A gzip stream (one or more members) inflated chunk by chunk.
class Inflater {
 public:
  Inflater(std::span<const unsigned char> in, const HeaderCheck& check) : in_(in), check_(check) {
    // 16 + MAX_WBITS: gzip wrapper only (a zlib or raw stream is corrupt here).
    if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) throw std::bad_alloc();
    z_.next_in = const_cast<Bytef*>(in_.data());
    z_.avail_in = static_cast<uInt>(std::min<std::size_t>(in_.size(), std::numeric_limits<uInt>::max()));
    fed_ = z_.avail_in;
  }
  ~Inflater() { inflateEnd(&z_); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Inflates up to out.size() bytes into out; returns how many. 0 means the stream has ended (after all its
  // members, with nothing but the end of input after the last one).
  std::size_t read(std::span<unsigned char> out) {
    std::size_t got = 0;
    while (got < out.size() && !done_) {
      if (z_.avail_in == 0 && fed_ < in_.size()) {
        const std::size_t more = std::min<std::size_t>(in_.size() - fed_, std::numeric_limits<uInt>::max());
        z_.next_in = const_cast<Bytef*>(in_.data() + fed_);
        z_.avail_in = static_cast<uInt>(more);
        fed_ += more;
      }
      const std::size_t want = std::min<std::size_t>(out.size() - got, std::numeric_limits<uInt>::max());
      z_.next_out = out.data() + got;
      z_.avail_out = static_cast<uInt>(want);
      const int rc = inflate(&z_, Z_NO_FLUSH);
      got += want - z_.avail_out;
      if (rc == Z_STREAM_END) {
        const std::size_t pos = static_cast<std::size_t>(z_.next_in - in_.data());
        const std::size_t rest = in_.size() - pos;
        if (rest == 0) {
          done_ = true;
        } else if (rest >= 2 && in_[pos] == 0x1F && in_[pos + 1] == 0x8B) {
          inflateReset(&z_);  // another member
        } else {
          check_.fail(plural(rest, "byte") + " of garbage after the gzip stream");
        }
      } else if (rc == Z_BUF_ERROR) {
        if (z_.avail_in == 0 && fed_ == in_.size())
          check_.fail("truncated gzip stream (the input ends inside it)");
        if (z_.avail_out != 0) check_.fail("corrupt gzip stream (no progress)");
      } else if (rc != Z_OK) {
        check_.fail(std::string("corrupt gzip stream: ") +
                    (z_.msg ? z_.msg : "zlib error " + std::to_string(rc)));
      }
    }
    return got;
  }

 private:
  std::span<const unsigned char> in_;
  const HeaderCheck& check_;
  z_stream z_{};
  std::size_t fed_ = 0;
  bool done_ = false;
};

// Inflates and checks a gzip stream's IDX header; returns the element count its dimensions claim.
std::size_t inflate_header(Inflater& inf, const HeaderCheck& check, std::size_t max_bytes,
                           std::vector<std::size_t>& dims) {
  unsigned char head[4 + 4 * 255];
  std::size_t have = 0;
  auto fill_to = [&](std::size_t n) {
    while (have < n) {
      const std::size_t got = inf.read(std::span(head + have, n - have));
      if (got == 0) {
        check.fail("truncated header: " + plural(have, "byte") + " after decompression, the header needs " +
                   std::to_string(n));
      }
      have += got;
    }
  };
  fill_to(4);
  const std::size_t header = check.header_bytes(std::span<const unsigned char>(head, have));
  fill_to(header);
  return check.dims(std::span<const unsigned char>(head, header), max_bytes, dims);
}

Array parse_gzip(std::span<const unsigned char> bytes, const HeaderCheck& check, std::size_t max_bytes) {
  Inflater inf(bytes, check);
  Array a;
  const std::size_t count = inflate_header(inf, check, max_bytes, a.dims);
  // Grow with the data actually inflated, never to the claimed size up front.
  std::size_t size = 0;
  while (size < count) {
    const std::size_t want = std::min(count - size, std::max(kChunk, size));
    a.data.resize(size + want);
    const std::size_t got = inf.read(std::span(a.data.data() + size, want));
    size += got;
    if (got < want) {
      check.fail("truncated data: the dimensions " + dims_text(a.dims) + " need " + std::to_string(count) +
                 " bytes, the decompressed file has " + std::to_string(size));
    }
  }
  unsigned char extra[kChunk];
  const std::size_t more = inf.read(std::span(extra, sizeof extra));
  if (more > 0) {
    check.fail((more < sizeof extra ? plural(more, "byte") : "more than " + plural(more, "byte")) +
               " after the data (the dimensions " + dims_text(a.dims) + " need " + std::to_string(count) +
               ")");
  }
  return a;
}

}  // namespace

Array parse(std::span<const unsigned char> bytes, std::string_view name, std::size_t max_bytes) {
  const HeaderCheck check{std::string(name)};
  if (bytes.empty()) check.fail("the file is empty (an IDX file starts with a 4-byte magic number)");
  return is_gzip(bytes) ? parse_gzip(bytes, check, max_bytes) : parse_plain(bytes, check, max_bytes);
}

namespace {

// The size of the regular file `path`, at most max_bytes; an Error naming it otherwise.
std::size_t checked_size(const std::string& name, std::size_t max_bytes) {
  struct stat st {};
  if (::stat(name.c_str(), &st) != 0) {
    throw Error(name + ": cannot open: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) throw Error(name + ": not a regular file");
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    throw Error(name + ": " + std::to_string(st.st_size) + " bytes, more than the limit of " +
                std::to_string(max_bytes) + " bytes");
  }
  return static_cast<std::size_t>(st.st_size);
}

// `size` bytes of `in` from `offset`.
std::vector<unsigned char> read_bytes(std::ifstream& in, const std::string& name, std::size_t offset,
                                      std::size_t size) {
  std::vector<unsigned char> bytes(size);
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (static_cast<std::size_t>(in.gcount()) != size)
    throw Error(name + ": read error (file changed while reading?)");
  return bytes;
}

}  // namespace

Array read(const std::filesystem::path& path, std::size_t max_bytes) {
  const std::string name = path.string();
  const std::size_t size = checked_size(name, max_bytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(name + ": cannot open: " + std::strerror(errno));
  return parse(read_bytes(in, name, 0, size), name, max_bytes);
}

Header read_header(const std::filesystem::path& path, std::size_t max_bytes) {
  const std::string name = path.string();
  const std::size_t size = checked_size(name, max_bytes);
  const HeaderCheck check{name};
  if (size == 0) check.fail("the file is empty (an IDX file starts with a 4-byte magic number)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(name + ": cannot open: " + std::strerror(errno));
  // The header (at most 1024 bytes) comes first in the stream, so the first chunk holds it even deflated.
  const std::vector<unsigned char> start = read_bytes(in, name, 0, std::min(size, kChunk));
  Header h;
  std::size_t header = 0, count = 0;
  std::uint64_t recorded = size;  // what the container says the file holds, header + data
  if (is_gzip(start)) {
    Inflater inf(start, check);
    count = inflate_header(inf, check, max_bytes, h.dims);
    header = 4 + 4 * h.dims.size();
    if (size < 18) check.fail("truncated gzip stream (the input ends inside it)");
    const std::vector<unsigned char> isize = read_bytes(in, name, size - 4, 4);
    recorded = std::uint64_t{isize[0]} | std::uint64_t{isize[1]} << 8 | std::uint64_t{isize[2]} << 16 |
               std::uint64_t{isize[3]} << 24;
    h.bytes = header + count;
    if (recorded == (h.bytes & 0xFFFFFFFFu)) return h;
  } else {
    header = check.header_bytes(start);
    if (header == 0 || start.size() < header) {
      check.fail("truncated header: " + plural(start.size(), "byte") + ", the header needs " +
                 std::to_string(header == 0 ? 4 : header));
    }
    count = check.dims(start, max_bytes, h.dims);
    h.bytes = header + count;
    if (recorded == h.bytes) return h;
  }
  // The file and its header disagree: reading it all gives the exact reason (or finds it valid after all).
  const Array a = read(path, max_bytes);
  return {a.dims, 4 + 4 * a.dims.size() + a.data.size()};
}

std::string dims_text(const std::vector<std::size_t>& dims) {
  std::string s;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += " x ";
    s += std::to_string(dims[i]);
  }
  return s;
}

}  // namespace sqb::idx
