// NumPy .npy reading and writing. The header is parsed by a small recursive-descent parser for the subset of
// Python literals a header can hold (strings, integers, True/False/None, tuples, lists, dicts), never by
// anything that evaluates; every length and count is checked against the file before memory is allocated.

#include "sqb/npy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "sqb/error.hpp"

namespace sqb::npy {

namespace {

constexpr unsigned char kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr std::size_t kMaxDims = 64;  // NumPy 2's NPY_MAXDIMS
// Real headers are a few hundred bytes (a 64-D shape needs ~1.5 KB). A larger one is not a numeric array
// (NumPy itself refuses headers over 10000 bytes by default); the limit keeps a lying length field from
// making us read or allocate gigabytes.
constexpr std::size_t kMaxHeaderBytes = 1 << 20;
constexpr int kMaxNesting = 32;  // Python literal nesting; keeps the parser's recursion bounded
constexpr std::size_t kChunkElements = 1 << 16;

struct DTypeInfo {
  DType type;
  char kind;  // NumPy's kind letter: f, i, u
  std::size_t bytes;
  std::string_view name;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::float16, 'f', 2, "float16"}, {DType::float32, 'f', 4, "float32"},
    {DType::float64, 'f', 8, "float64"}, {DType::int8, 'i', 1, "int8"},
    {DType::uint8, 'u', 1, "uint8"},     {DType::int16, 'i', 2, "int16"},
    {DType::uint16, 'u', 2, "uint16"},   {DType::int32, 'i', 4, "int32"},
};

const DTypeInfo& info(DType t) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.type == t) return d;
  }
  throw std::logic_error("npy: unknown DType");
}

constexpr std::string_view kSupported =
    "sqbench reads float16, float32 and float64 data and int8, uint8, int16, uint16, int32 codes";

// The shortest text that reads back as exactly `v` ("1e+300", not "1.0000000000000001e+300").
std::string shortest(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
std::string shortest(float v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string hex_byte(unsigned char c) {
  static const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[c >> 4] + digits[c & 15];
}

// ---------------------------------------------------------------------------------------------------------
// The header: a Python literal.

struct Value {
  enum class Kind { string, integer, boolean, none, tuple, list, dict };
  Kind kind = Kind::none;
  std::string text;  // string; for integer: the digits as written
  std::uint64_t number = 0;
  bool negative = false;
  bool too_big = false;      // integer beyond uint64
  bool flag = false;         // boolean
  std::vector<Value> items;  // tuple, list; dict: the values
  std::vector<Value> keys;   // dict: the keys (std::pair<Value, Value> would need Value complete)
};

std::string_view kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::string:
      return "a string";
    case Value::Kind::integer:
      return "an integer";
    case Value::Kind::boolean:
      return "a boolean";
    case Value::Kind::none:
      return "None";
    case Value::Kind::tuple:
      return "a tuple";
    case Value::Kind::list:
      return "a list";
    case Value::Kind::dict:
      return "a dict";
  }
  return "?";
}

class LiteralParser {
 public:
  LiteralParser(std::string_view text, const std::string& name) : s_(text), name_(name) {}

  Value parse_document() {
    skip_blanks();
    Value v = parse_value(0);
    skip_blanks();
    if (pos_ != s_.size()) fail("unexpected " + describe_here() + " after the closing '}'");
    if (v.kind != Value::Kind::dict)
      fail_at(0, "the header is " + std::string(kind_name(v.kind)) + ", not a dict");
    return v;
  }

 private:
  [[noreturn]] void fail_at(std::size_t at, const std::string& what) const {
    throw Error(name_ + ": .npy header is not a Python dict literal: " + what + " (header byte " +
                std::to_string(at) + ")");
  }
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }

  std::string describe_here() const {
    if (pos_ >= s_.size()) return "end of header";
    const auto c = static_cast<unsigned char>(s_[pos_]);
    if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
    return "byte " + hex_byte(c);
  }

  void skip_blanks() {
    // Python's implicit line joining allows newlines inside brackets.
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  bool eat(char c) {
    skip_blanks();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void expect(char c, std::string_view context) {
    if (!eat(c))
      fail("expected '" + std::string(1, c) + "' " + std::string(context) + ", found " + describe_here());
  }

  Value parse_value(int depth) {
    if (depth > kMaxNesting) fail("nested deeper than " + std::to_string(kMaxNesting) + " levels");
    skip_blanks();
    if (pos_ >= s_.size()) fail("unexpected end of header, expected a value");
    const char c = s_[pos_];
    if (c == '\'' || c == '"') return parse_string();
    if (c == '{') return parse_dict(depth);
    if (c == '(') return parse_tuple(depth);
    if (c == '[') return parse_list(depth);
    if (c == '-' || c == '+' || (c >= '0' && c <= '9')) return parse_integer();
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_') return parse_name();
    fail("unexpected " + describe_here());
  }

  Value parse_string() {
    const char quote = s_[pos_];
    const std::size_t start = pos_++;
    Value v;
    v.kind = Value::Kind::string;
    while (true) {
      if (pos_ >= s_.size() || s_[pos_] == '\n') fail_at(start, "unterminated string");
      const char c = s_[pos_++];
      if (c == quote) break;
      if (c == '\\') fail_at(pos_ - 1, "escape sequences in strings are not supported");
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u >= 0x7F)
        fail_at(pos_ - 1, "byte " + hex_byte(u) + " in a string (a header is ASCII)");
      v.text += c;
    }
    return v;
  }

  Value parse_integer() {
    Value v;
    v.kind = Value::Kind::integer;
    const std::size_t start = pos_;
    if (s_[pos_] == '-' || s_[pos_] == '+') {
      v.negative = s_[pos_] == '-';
      ++pos_;
      skip_blanks();
    }
    if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') fail_at(start, "a sign without digits");
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      const auto d = static_cast<std::uint64_t>(s_[pos_] - '0');
      if (v.number > (std::numeric_limits<std::uint64_t>::max() - d) / 10) v.too_big = true;
      if (!v.too_big) v.number = v.number * 10 + d;
      v.text += s_[pos_++];
    }
    // Python 2 NumPy wrote long integers with an L suffix: (3L, 4L).
    if (pos_ < s_.size() && (s_[pos_] == 'L' || s_[pos_] == 'l')) ++pos_;
    if (pos_ < s_.size() &&
        (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.' || s_[pos_] == '_')) {
      fail("a number must be a plain integer, found " + describe_here() + " in it");
    }
    if (v.negative && v.number == 0) v.negative = false;
    return v;
  }

  Value parse_name() {
    const std::size_t start = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
      ++pos_;
    const std::string_view word = s_.substr(start, pos_ - start);
    Value v;
    if (word == "True" || word == "False") {
      v.kind = Value::Kind::boolean;
      v.flag = word == "True";
    } else if (word == "None") {
      v.kind = Value::Kind::none;
    } else {
      fail_at(start, "unexpected name '" + std::string(word.substr(0, 40)) + "' (only True, False and None)");
    }
    return v;
  }

  // Items up to `close`, separated by commas, an optional trailing comma. Returns whether a comma was seen.
  bool parse_items(char close, std::vector<Value>& out, int depth) {
    bool comma = false;
    while (!eat(close)) {
      out.push_back(parse_value(depth + 1));
      if (eat(',')) {
        comma = true;
        continue;
      }
      expect(close, "or ',' between items");
      break;
    }
    return comma;
  }

  Value parse_tuple(int depth) {
    ++pos_;
    Value v;
    v.kind = Value::Kind::tuple;
    const bool comma = parse_items(')', v.items, depth);
    // (x) is x in parentheses, not a tuple; (x,) and () are tuples.
    if (v.items.size() == 1 && !comma) return std::move(v.items[0]);
    return v;
  }

  Value parse_list(int depth) {
    ++pos_;
    Value v;
    v.kind = Value::Kind::list;
    parse_items(']', v.items, depth);
    return v;
  }

  Value parse_dict(int depth) {
    ++pos_;
    Value v;
    v.kind = Value::Kind::dict;
    while (!eat('}')) {
      Value key = parse_value(depth + 1);
      expect(':', "after a dict key");
      Value value = parse_value(depth + 1);
      v.keys.push_back(std::move(key));
      v.items.push_back(std::move(value));
      if (eat(',')) continue;
      expect('}', "or ',' between dict entries");
      break;
    }
    return v;
  }

  std::string_view s_;
  const std::string& name_;
  std::size_t pos_ = 0;
};

// ---------------------------------------------------------------------------------------------------------
// Header semantics.

struct Header {
  Format format;
  std::vector<std::size_t> shape;
  std::size_t count = 0;       // product of the shape
  std::size_t data_bytes = 0;  // count * item size
  std::size_t data_offset = 0;
};

// The dtype of a descr string like '<f4', or an Error saying what the file holds instead.
void parse_descr(const std::string& descr, const std::string& name, Format& f) {
  std::string_view code = descr;
  char order = '=';
  if (!code.empty() && (code[0] == '<' || code[0] == '>' || code[0] == '|' || code[0] == '=')) {
    order = code[0];
    code.remove_prefix(1);
  }
  // Built with append: GCC 12 warns falsely (-Wrestrict) about "'" + std::string.
  std::string quoted(1, '\'');
  quoted.append(descr, 0, 40).append(descr.size() > 40 ? "...'" : "'");
  for (const DTypeInfo& d : kDTypes) {
    if (code.size() == 2 && code[0] == d.kind && static_cast<std::size_t>(code[1] - '0') == d.bytes) {
      f.dtype = d.type;
      f.big_endian =
          order == '>' || ((order == '=' || order == '|') && std::endian::native == std::endian::big);
      if (d.bytes == 1) f.big_endian = false;
      return;
    }
  }
  if (!code.empty() && code[0] == 'O') {
    throw Error(name + ": object array (dtype " + quoted +
                "): it holds pickled Python objects, not numbers; save a numeric array, e.g. "
                "np.save(f, np.asarray(a, dtype=np.float32))");
  }
  std::string what;
  if (code == "i8") what = "int64";
  if (code == "u4") what = "uint32";
  if (code == "u8") what = "uint64";
  if (code == "f12" || code == "f16") what = "long double";
  if (code == "c8" || code == "c16" || code == "c32") what = "complex";
  if (code == "b1" || code == "?") what = "bool";
  if (!code.empty() && (code[0] == 'U' || code[0] == 'S' || code[0] == 'a')) what = "strings";
  if (!code.empty() && code[0] == 'V') what = "raw bytes (void)";
  if (code.starts_with("M8")) what = "datetime64";
  if (code.starts_with("m8")) what = "timedelta64";
  throw Error(name + ": unsupported dtype " + quoted + (what.empty() ? "" : " (" + what + ")") + "; " +
              std::string(kSupported) + " (convert with a.astype(np.float32))");
}

Header interpret(const Value& dict, const std::string& name) {
  const Value* descr = nullptr;
  const Value* fortran = nullptr;
  const Value* shape = nullptr;
  for (std::size_t e = 0; e < dict.keys.size(); ++e) {
    const Value& key = dict.keys[e];
    const Value& value = dict.items[e];
    if (key.kind != Value::Kind::string) {
      throw Error(name + ": .npy header: a key is " + std::string(kind_name(key.kind)) +
                  "; the keys are 'descr', 'fortran_order' and 'shape'");
    }
    const Value** slot = key.text == "descr"           ? &descr
                         : key.text == "fortran_order" ? &fortran
                         : key.text == "shape"         ? &shape
                                                       : nullptr;
    if (slot == nullptr) {
      throw Error(name + ": .npy header has an unexpected key '" + key.text.substr(0, 40) +
                  "'; a header has exactly 'descr', 'fortran_order' and 'shape'");
    }
    if (*slot != nullptr) throw Error(name + ": .npy header gives the key '" + key.text + "' twice");
    *slot = &value;
  }
  for (const auto& [p, key] : {std::pair{descr, "descr"}, {fortran, "fortran_order"}, {shape, "shape"}}) {
    if (p == nullptr) {
      throw Error(name + ": .npy header has no '" + key +
                  "' key (a header has exactly 'descr', 'fortran_order' and 'shape')");
    }
  }
  Header h;
  if (descr->kind == Value::Kind::list || descr->kind == Value::Kind::tuple) {
    throw Error(name + ": structured dtype (a list of fields in 'descr') is not supported; " +
                std::string(kSupported));
  }
  if (descr->kind != Value::Kind::string) {
    throw Error(name + ": .npy header: 'descr' is " + std::string(kind_name(descr->kind)) +
                ", not a dtype string like '<f4'");
  }
  parse_descr(descr->text, name, h.format);
  if (fortran->kind != Value::Kind::boolean) {
    throw Error(name + ": .npy header: 'fortran_order' is " + std::string(kind_name(fortran->kind)) +
                ", not True or False");
  }
  h.format.fortran_order = fortran->flag;
  if (shape->kind != Value::Kind::tuple) {
    throw Error(name + ": .npy header: 'shape' is " + std::string(kind_name(shape->kind)) +
                ", not a tuple of integers like (3, 4)");
  }
  if (shape->items.size() > kMaxDims) {
    throw Error(name + ": .npy header: the shape has " + std::to_string(shape->items.size()) +
                " dimensions; at most " + std::to_string(kMaxDims) + " are supported");
  }
  for (const Value& d : shape->items) {
    if (d.kind != Value::Kind::integer) {
      throw Error(name + ": .npy header: a dimension in 'shape' is " + std::string(kind_name(d.kind)) +
                  ", not an integer");
    }
    if (d.negative)
      throw Error(name + ": .npy header: negative dimension -" + d.text.substr(0, 40) + " in 'shape'");
    if (d.too_big || d.number > std::numeric_limits<std::size_t>::max()) {
      throw Error(name + ": .npy header: dimension " + d.text.substr(0, 40) +
                  " in 'shape' is too large (overflows size_t)");
    }
    h.shape.push_back(static_cast<std::size_t>(d.number));
  }
  h.count = 1;
  bool overflow = false;
  for (const std::size_t d : h.shape)
    overflow = overflow || __builtin_mul_overflow(h.count, d, &h.count);
  // An empty array is reported before an overflow: (0, 2**63, 2**63) has no elements at all.
  if (std::find(h.shape.begin(), h.shape.end(), std::size_t{0}) != h.shape.end()) {
    throw Error(name + ": empty array (shape " + shape_text(h.shape) + "): it has no values");
  }
  if (overflow) {
    throw Error(name + ": shape " + shape_text(h.shape) +
                " has more elements than size_t can count (the header is corrupt)");
  }
  if (__builtin_mul_overflow(h.count, dtype_bytes(h.format.dtype), &h.data_bytes)) {
    throw Error(name + ": shape " + shape_text(h.shape) + " of " + std::string(dtype_name(h.format.dtype)) +
                " needs more bytes than size_t can count (the header is corrupt)");
  }
  return h;
}

// Parses the preamble and header from the file's first bytes. `read_at(offset, n, dst)` copies file bytes.
template <class ReadAt>
Header read_header(ReadAt&& read_at, std::uint64_t file_size, const std::string& name) {
  unsigned char pre[12] = {};
  const std::size_t have = static_cast<std::size_t>(std::min<std::uint64_t>(file_size, sizeof pre));
  read_at(0, have, pre);
  if (file_size == 0) throw Error(name + ": empty file (0 bytes), not a .npy file");
  if (have < sizeof kMagic || std::memcmp(pre, kMagic, sizeof kMagic) != 0) {
    if (have < sizeof kMagic && std::memcmp(pre, kMagic, have) == 0) {
      throw Error(name + ": truncated .npy file: only " + std::to_string(file_size) +
                  " bytes, not even the magic string");
    }
    throw Error(name + ": not a .npy file (it does not start with the magic bytes \\x93NUMPY" +
                std::string(have >= 2 && pre[0] == 'P' && pre[1] == 'K' ? "; it looks like a zip archive, "
                                                                          "perhaps an .npz: unzip it first"
                                                                        : "") +
                ")");
  }
  if (have < 8) throw Error(name + ": truncated .npy header: no version bytes");
  const int major = pre[6];
  const int minor = pre[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    throw Error(name + ": unsupported .npy format version " + std::to_string(major) + "." +
                std::to_string(minor) + " (sqbench reads 1.0, 2.0 and 3.0)");
  }
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  if (have < 8 + len_bytes) throw Error(name + ": truncated .npy header: no header length");
  std::uint64_t hlen = pre[8] | (std::uint64_t{pre[9]} << 8);
  if (major > 1) hlen |= (std::uint64_t{pre[10]} << 16) | (std::uint64_t{pre[11]} << 24);
  const std::uint64_t offset = 8 + len_bytes + hlen;
  if (offset > file_size) {
    throw Error(name + ": truncated .npy header: the header length says " + std::to_string(hlen) +
                " bytes but the file has only " + std::to_string(file_size - 8 - len_bytes) + " after it");
  }
  if (hlen > kMaxHeaderBytes) {
    throw Error(name + ": .npy header of " + std::to_string(hlen) +
                " bytes is larger than any numeric array's (" + "limit " + std::to_string(kMaxHeaderBytes) +
                ")");
  }
  std::string text(static_cast<std::size_t>(hlen), '\0');
  read_at(8 + len_bytes, text.size(), reinterpret_cast<unsigned char*>(text.data()));
  // Version 1 and 2 headers are latin-1 and 3 is UTF-8, but every valid header is ASCII; the literal parser
  // names the first other byte.
  const Value dict = LiteralParser(text, name).parse_document();
  Header h = interpret(dict, name);
  h.format.version = major;
  h.data_offset = static_cast<std::size_t>(offset);
  const std::uint64_t remaining = file_size - offset;
  if (remaining != h.data_bytes) {
    const std::string need = "shape " + shape_text(h.shape) + " of " +
                             std::string(dtype_name(h.format.dtype)) + " needs " +
                             std::to_string(h.data_bytes) + " bytes of data";
    if (remaining < h.data_bytes) {
      throw Error(name + ": truncated .npy file: " + need + " but only " + std::to_string(remaining) +
                  " follow the header");
    }
    throw Error(name + ": " + std::to_string(remaining - h.data_bytes) +
                " unexpected bytes after the data (" + need + ", " + std::to_string(remaining) +
                " follow the header)");
  }
  return h;
}

// ---------------------------------------------------------------------------------------------------------
// Values.

template <class U>
U load(const unsigned char* p, bool swap) {
  U u;
  std::memcpy(&u, p, sizeof u);
  if (swap) {
    if constexpr (sizeof(U) == 2) u = __builtin_bswap16(u);
    if constexpr (sizeof(U) == 4) u = __builtin_bswap32(u);
    if constexpr (sizeof(U) == 8) u = __builtin_bswap64(u);
  }
  return u;
}

template <class U>
void store(unsigned char* p, U u, bool swap) {
  if (swap) {
    if constexpr (sizeof(U) == 2) u = __builtin_bswap16(u);
    if constexpr (sizeof(U) == 4) u = __builtin_bswap32(u);
    if constexpr (sizeof(U) == 8) u = __builtin_bswap64(u);
  }
  std::memcpy(p, &u, sizeof u);
}

bool needs_swap(bool big_endian) {
  return big_endian != (std::endian::native == std::endian::big);
}

// The smallest |x| that rounds to Inf in float32: FLT_MAX + half an ulp (2^128 - 2^103; the tie goes to
// the even neighbour, which is 2^128).
const double kFloatOverflow = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);

// Converts `n` file values to float32. Returns the index (within the chunk) of the first float64 value beyond
// float32's range, or n.
std::size_t decode_floats(const unsigned char* src, std::size_t n, DType t, bool swap, float* out) {
  switch (t) {
    case DType::float16:
      for (std::size_t i = 0; i < n; ++i)
        out[i] = half_to_float(load<std::uint16_t>(src + 2 * i, swap));
      return n;
    case DType::float32:
      for (std::size_t i = 0; i < n; ++i)
        out[i] = std::bit_cast<float>(load<std::uint32_t>(src + 4 * i, swap));
      return n;
    case DType::float64:
      for (std::size_t i = 0; i < n; ++i) {
        const double v = std::bit_cast<double>(load<std::uint64_t>(src + 8 * i, swap));
        // NaN and +-Inf convert as such (the caller's non-finite policy sees them); a finite value that
        // would become Inf is an error, never a silent Inf.
        if (std::isfinite(v) && std::fabs(v) >= kFloatOverflow) return i;
        out[i] = static_cast<float>(v);
      }
      return n;
    default:
      throw std::logic_error("decode_floats: integer dtype");
  }
}

void decode_ints(const unsigned char* src, std::size_t n, DType t, bool swap, std::int32_t* out) {
  for (std::size_t i = 0; i < n; ++i) {
    switch (t) {
      case DType::int8:
        out[i] = static_cast<std::int8_t>(src[i]);
        break;
      case DType::uint8:
        out[i] = src[i];
        break;
      case DType::int16:
        out[i] = static_cast<std::int16_t>(load<std::uint16_t>(src + 2 * i, swap));
        break;
      case DType::uint16:
        out[i] = load<std::uint16_t>(src + 2 * i, swap);
        break;
      case DType::int32:
        out[i] = static_cast<std::int32_t>(load<std::uint32_t>(src + 4 * i, swap));
        break;
      default:
        throw std::logic_error("decode_ints: float dtype");
    }
  }
}

// Visits the elements of an N-D array in the order of one layout and gives, for each, its flat index in the
// other: for Fortran order (first axis fastest) the matching C-order index. f(position, c_index).
template <class F>
void for_each_fortran(std::span<const std::size_t> shape, std::size_t count, F&& f) {
  const std::size_t nd = shape.size();
  std::vector<std::size_t> c_stride(nd, 1), idx(nd, 0);
  for (std::size_t k = nd; k-- > 1;)
    c_stride[k - 1] = c_stride[k] * shape[k];
  std::size_t c = 0;
  for (std::size_t pos = 0; pos < count; ++pos) {
    f(pos, c);
    // Odometer with axis 0 fastest.
    for (std::size_t k = 0; k < nd; ++k) {
      if (++idx[k] < shape[k]) {
        c += c_stride[k];
        break;
      }
      c -= (shape[k] - 1) * c_stride[k];
      idx[k] = 0;
    }
  }
}

std::string index_text(std::size_t flat, std::span<const std::size_t> shape) {
  std::vector<std::size_t> idx(shape.size());
  for (std::size_t k = shape.size(); k-- > 0;) {
    idx[k] = flat % shape[k];
    flat /= shape[k];
  }
  return shape_text(idx);
}

template <class T>
std::vector<T> fortran_to_c(const std::vector<T>& f, std::span<const std::size_t> shape) {
  std::vector<T> c(f.size());
  for_each_fortran(shape, f.size(), [&](std::size_t pos, std::size_t ci) { c[ci] = f[pos]; });
  return c;
}

template <class ReadAt>
Array load_array(ReadAt&& read_at, std::uint64_t file_size, const std::string& name) {
  const Header h = read_header(read_at, file_size, name);
  Array a;
  a.shape = h.shape;
  a.format = h.format;
  const DType t = h.format.dtype;
  const std::size_t item = dtype_bytes(t);
  const bool swap = needs_swap(h.format.big_endian);
  std::vector<unsigned char> buf(std::min(h.count, kChunkElements) * item);
  if (is_floating(t)) {
    a.values.resize(h.count);
  } else {
    a.ints.resize(h.count);
  }
  for (std::size_t first = 0; first < h.count; first += kChunkElements) {
    const std::size_t n = std::min(kChunkElements, h.count - first);
    read_at(h.data_offset + first * item, n * item, buf.data());
    if (!is_floating(t)) {
      decode_ints(buf.data(), n, t, swap, a.ints.data() + first);
      continue;
    }
    const std::size_t bad = decode_floats(buf.data(), n, t, swap, a.values.data() + first);
    if (bad < n) {
      std::size_t c_index = first + bad;
      if (h.format.fortran_order) {
        for_each_fortran(h.shape, h.count, [&](std::size_t pos, std::size_t ci) {
          if (pos == first + bad) c_index = ci;
        });
      }
      const double v = std::bit_cast<double>(load<std::uint64_t>(buf.data() + 8 * bad, swap));
      throw Error(name + ": float64 value " + shortest(v) + " at index " + index_text(c_index, h.shape) +
                  " (flat " + std::to_string(c_index) + ") is outside float32's range (|x| <= " +
                  shortest(std::numeric_limits<float>::max()) + "); rescale the tensor before saving it");
    }
  }
  if (h.format.fortran_order && h.shape.size() > 1) {
    if (is_floating(t)) {
      a.values = fortran_to_c(a.values, h.shape);
    } else {
      a.ints = fortran_to_c(a.ints, h.shape);
    }
  }
  return a;
}

// ---------------------------------------------------------------------------------------------------------
// Writing.

std::string header_for(std::span<const std::size_t> shape, const Format& f) {
  const DTypeInfo& d = info(f.dtype);
  const char order = d.bytes == 1 ? '|' : (f.big_endian ? '>' : '<');
  std::string dict = "{'descr': '";
  dict += order;
  dict += d.kind;
  dict += std::to_string(d.bytes);
  dict += "', 'fortran_order': ";
  dict += f.fortran_order ? "True" : "False";
  dict += ", 'shape': " + shape_text(shape) + ", }";
  int version = f.version;
  // NumPy's layout: the preamble plus the header (blank-padded, ending in a newline) is a multiple of 64
  // bytes, so the data is aligned for memory mapping.
  const auto padded = [&](int v) {
    const std::size_t pre = v == 1 ? 10 : 12;
    const std::size_t total = (pre + dict.size() + 1 + 63) / 64 * 64;
    return total - pre;
  };
  if (version == 0) version = padded(1) <= 0xFFFF ? 1 : 2;
  if (version < 1 || version > 3) {
    throw Error(".npy writer: format version " + std::to_string(f.version) +
                " (valid: 1, 2, 3 or 0 = automatic)");
  }
  const std::size_t hlen = padded(version);
  if (version == 1 && hlen > 0xFFFF) throw Error(".npy writer: the header does not fit format version 1.0");
  std::string out(reinterpret_cast<const char*>(kMagic), sizeof kMagic);
  out += static_cast<char>(version);
  out += '\0';
  out += static_cast<char>(hlen & 0xFF);
  out += static_cast<char>((hlen >> 8) & 0xFF);
  if (version > 1) {
    out += static_cast<char>((hlen >> 16) & 0xFF);
    out += static_cast<char>((hlen >> 24) & 0xFF);
  }
  out += dict;
  out.append(hlen - dict.size() - 1, ' ');
  out += '\n';
  return out;
}

std::size_t checked_count(std::span<const std::size_t> shape, std::size_t values) {
  if (shape.size() > kMaxDims) {
    throw Error(".npy writer: " + std::to_string(shape.size()) + " dimensions (at most " +
                std::to_string(kMaxDims) + ")");
  }
  std::size_t count = 1;
  for (const std::size_t d : shape) {
    if (__builtin_mul_overflow(count, d, &count)) throw Error(".npy writer: the shape overflows size_t");
  }
  if (count == 0) throw Error(".npy writer: empty array (shape " + shape_text(shape) + ")");
  if (count != values) {
    throw Error(".npy writer: shape " + shape_text(shape) + " has " + std::to_string(count) +
                " elements, given " + std::to_string(values));
  }
  return count;
}

// Emits the data bytes of `values` (C order) in the file's dtype, byte order and element order, in chunks.
template <class T, class Sink>
void emit_data(std::span<const std::size_t> shape, std::span<const T> values, const Format& f, Sink&& sink) {
  const DType t = f.dtype;
  const std::size_t item = dtype_bytes(t);
  const bool swap = needs_swap(f.big_endian);
  std::vector<unsigned char> buf(std::min(values.size(), kChunkElements) * item);
  std::size_t filled = 0;
  const auto put = [&](std::size_t c_index) {
    unsigned char* p = buf.data() + filled * item;
    const T v = values[c_index];
    const auto range_error = [&](std::string_view what) {
      std::string text;
      if constexpr (std::is_same_v<T, float>) {
        text = shortest(v);
      } else {
        text = std::to_string(v);
      }
      throw Error(".npy writer: value " + text + " at index " + index_text(c_index, shape) + " (flat " +
                  std::to_string(c_index) + ") " + std::string(what));
    };
    if constexpr (std::is_same_v<T, float>) {
      switch (t) {
        case DType::float16:
          if (std::fabs(v) >= 65520.0f && std::isfinite(v)) {
            range_error("is outside float16's range (|x| < 65520, max 65504)");
          }
          store(p, float_to_half(v), swap);
          break;
        case DType::float32:
          store(p, std::bit_cast<std::uint32_t>(v), swap);
          break;
        case DType::float64:
          store(p, std::bit_cast<std::uint64_t>(static_cast<double>(v)), swap);
          break;
        default:
          throw Error(".npy writer: float data cannot be stored as " + std::string(dtype_name(t)) +
                      " (write integer codes for integer dtypes)");
      }
    } else {
      const auto check = [&](std::int64_t lo, std::int64_t hi) {
        if (v < lo || v > hi) {
          range_error("is outside " + std::string(dtype_name(t)) + "'s range [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "]");
        }
      };
      switch (t) {
        case DType::int8:
          check(-128, 127);
          *p = static_cast<unsigned char>(static_cast<std::int8_t>(v));
          break;
        case DType::uint8:
          check(0, 255);
          *p = static_cast<unsigned char>(v);
          break;
        case DType::int16:
          check(-32768, 32767);
          store(p, static_cast<std::uint16_t>(static_cast<std::int16_t>(v)), swap);
          break;
        case DType::uint16:
          check(0, 65535);
          store(p, static_cast<std::uint16_t>(v), swap);
          break;
        case DType::int32:
          store(p, static_cast<std::uint32_t>(v), swap);
          break;
        default:
          throw Error(".npy writer: integer codes cannot be stored as " + std::string(dtype_name(t)) +
                      " (write float data for float dtypes)");
      }
    }
    if (++filled * item == buf.size()) {
      sink(buf.data(), buf.size());
      filled = 0;
    }
  };
  if (f.fortran_order && shape.size() > 1) {
    for_each_fortran(shape, values.size(), [&](std::size_t, std::size_t ci) { put(ci); });
  } else {
    for (std::size_t i = 0; i < values.size(); ++i)
      put(i);
  }
  if (filled > 0) sink(buf.data(), filled * item);
}

template <class T>
std::string serialize_any(std::span<const std::size_t> shape, std::span<const T> values, const Format& f) {
  checked_count(shape, values.size());
  std::string out = header_for(shape, f);
  out.reserve(out.size() + values.size() * dtype_bytes(f.dtype));
  emit_data(shape, values, f,
            [&](const unsigned char* p, std::size_t n) { out.append(reinterpret_cast<const char*>(p), n); });
  return out;
}

// Atomic replacement of `path`: temporary file in the same folder, fsync, rename, fsync of the folder.
template <class T>
void write_any(const std::filesystem::path& path, std::span<const std::size_t> shape,
               std::span<const T> values, const Format& f) {
  checked_count(shape, values.size());
  const std::string header = header_for(shape, f);
  // Validate every value before touching the disk, so a range error never leaves a temporary file behind.
  emit_data(shape, values, f, [](const unsigned char*, std::size_t) {});
  const std::filesystem::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const auto fail = [&](const std::string& what, int err) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(path.string() + ": " + what + " failed (" + std::strerror(err) +
                "); the previous file is unchanged");
  };
  if (fd < 0) fail("creating the temporary file " + tmp.filename().string(), errno);
  const auto sink = [&](const unsigned char* p, std::size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("writing", errno);
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  };
  sink(reinterpret_cast<const unsigned char*>(header.data()), header.size());
  emit_data(shape, values, f, sink);
  if (::fsync(fd) != 0) fail("fsync", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(path.string() + ": closing failed (" + std::strerror(err) +
                "); the previous file is unchanged");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(path.string() + ": renaming into place failed (" + std::strerror(err) +
                "); the previous file is unchanged");
  }
  const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : ".";
  const int dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // makes the rename durable; a failure here cannot undo it
    ::close(dfd);
  }
}

}  // namespace

std::string_view dtype_name(DType t) {
  return info(t).name;
}
std::size_t dtype_bytes(DType t) {
  return info(t).bytes;
}
bool is_floating(DType t) {
  return info(t).kind == 'f';
}

std::size_t Array::size() const {
  std::size_t n = 1;
  for (const std::size_t d : shape)
    n *= d;
  return n;
}

std::string shape_text(std::span<const std::size_t> shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  std::uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // Inf, or NaN with its payload
  } else if (exp != 0) {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // +-0
  } else {
    // Subnormal m * 2^-24: normalise so the leading 1 becomes float32's implicit bit.
    exp = 127 - 15 + 1;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
  }
  return std::bit_cast<float>(bits);
}

std::uint16_t float_to_half(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t a = x & 0x7FFFFFFFu;
  if (a > 0x7F800000u) {
    // NaN: keep the top payload bits, but never let it collapse to Inf.
    auto h = static_cast<std::uint16_t>(0x7C00u | ((a & 0x7FFFFFu) >> 13));
    if (h == 0x7C00u) ++h;
    return static_cast<std::uint16_t>(sign | h);
  }
  if (a >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // >= 65520 (and Inf): Inf
  if (a >= 0x38800000u) {
    // Normal half (|f| >= 2^-14): rebias the exponent, round the 13 dropped mantissa bits to nearest even.
    // A carry out of the mantissa correctly bumps the exponent.
    std::uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3FFu);
    const std::uint32_t rest = a & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
    return static_cast<std::uint16_t>(sign | h);
  }
  if (a <= 0x33000000u) return sign;  // |f| <= 2^-25: rounds to +-0 (2^-25 itself ties to the even 0)
  // Subnormal half: q * 2^-24 with q = (1.m * 2^e) * 2^24, i.e. the full 24-bit mantissa shifted right.
  const std::uint32_t full = (a & 0x7FFFFFu) | 0x800000u;
  const std::uint32_t shift = 126u - (a >> 23);  // 14 .. 24
  std::uint32_t q = full >> shift;
  const std::uint32_t rest = full & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (q & 1u))) ++q;
  return static_cast<std::uint16_t>(sign | q);
}

Array parse(std::span<const unsigned char> bytes, std::string_view name) {
  const std::string n(name);
  return load_array([&](std::uint64_t off, std::size_t len,
                        unsigned char* dst) { std::memcpy(dst, bytes.data() + off, len); },
                    bytes.size(), n);
}

Array read(const std::filesystem::path& path) {
  const std::string name = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    throw Error(name + ": cannot open the .npy file (" + std::strerror(err) + ")");
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(name + ": cannot stat the .npy file (" + std::strerror(errno) + ")");
  if (S_ISDIR(st.st_mode)) throw Error(name + ": is a directory, not a .npy file");
  if (!S_ISREG(st.st_mode))
    throw Error(name + ": is not a regular file (a device, FIFO or socket), not a .npy file");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  const auto read_at = [&](std::uint64_t off, std::size_t len, unsigned char* dst) {
    while (len > 0) {
      const ssize_t got = ::pread(fd, dst, len, static_cast<off_t>(off));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw Error(name + ": reading failed (" + std::string(std::strerror(errno)) + ")");
      if (got == 0) throw Error(name + ": the file shrank while being read");
      dst += got;
      off += static_cast<std::uint64_t>(got);
      len -= static_cast<std::size_t>(got);
    }
  };
  return load_array(read_at, size, name);
}

std::string serialize(std::span<const std::size_t> shape, std::span<const float> values,
                      const Format& format) {
  return serialize_any(shape, values, format);
}
std::string serialize(std::span<const std::size_t> shape, std::span<const std::int32_t> values,
                      const Format& format) {
  return serialize_any(shape, values, format);
}
void write(const std::filesystem::path& path, std::span<const std::size_t> shape,
           std::span<const float> values, const Format& format) {
  write_any(path, shape, values, format);
}
void write(const std::filesystem::path& path, std::span<const std::size_t> shape,
           std::span<const std::int32_t> values, const Format& format) {
  write_any(path, shape, values, format);
}

}  // namespace sqb::npy
