// A recursive-descent JSON parser. Recursion is bounded by Limits::max_depth, memory by Limits::max_values
// (and by the text's length, which the callers bound); every byte is checked against RFC 8259's grammar and,
// inside strings, against UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).

#include "detail/json.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <numeric>

namespace sqb::detail::json {

namespace {

std::string describe_byte(unsigned char c) {
  static const char* digits = "0123456789ABCDEF";
  if (c >= 0x20 && c < 0x7F) return std::string("'") + static_cast<char>(c) + "'";
  return std::string("byte 0x") + digits[c >> 4] + digits[c & 15];
}

class Parser {
 public:
  Parser(std::string_view text, std::string_view context, std::size_t base, const Limits& limits)
      : s_(text), context_(context), base_(base), limits_(limits) {}

  Value parse_document() {
    if (s_.size() >= 3 && s_.substr(0, 3) == "\xEF\xBB\xBF")
      fail_at(0, "a byte order mark (RFC 8259 forbids one)");
    skip_ws();
    if (pos_ >= s_.size()) fail("empty text, expected a JSON value");
    Value v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected " + here() + " after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail_at(std::size_t at, const std::string& reason) const {
    throw ParseError(std::string(context_), reason, base_ + at);
  }
  [[noreturn]] void fail(const std::string& reason) const { fail_at(pos_, reason); }

  std::string here() const {
    if (pos_ >= s_.size()) return "end of text";
    return describe_byte(static_cast<unsigned char>(s_[pos_]));
  }

  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  void count_value() {
    if (++values_ > limits_.max_values)
      fail("more than " + std::to_string(limits_.max_values) + " values (the limit for one document)");
  }

  Value parse_value(std::size_t depth) {
    skip_ws();
    if (pos_ >= s_.size()) fail("unexpected end of text, expected a value");
    count_value();
    const char c = s_[pos_];
    switch (c) {
      case '{':
        return parse_object(depth + 1);
      case '[':
        return parse_array(depth + 1);
      case '"': {
        Value v;
        v.kind = Value::Kind::string;
        v.offset = base_ + pos_;
        v.text = parse_string();
        return v;
      }
      case 't':
        return parse_literal("true", Value::Kind::boolean, true);
      case 'f':
        return parse_literal("false", Value::Kind::boolean, false);
      case 'n':
        return parse_literal("null", Value::Kind::null, false);
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
        fail("unexpected " + here() + ", expected a value");
    }
  }

  Value parse_literal(std::string_view word, Value::Kind kind, bool flag) {
    if (s_.substr(pos_, word.size()) != word) {
      std::size_t end = pos_;
      while (end < s_.size() && end - pos_ < 20 && std::isalnum(static_cast<unsigned char>(s_[end])))
        ++end;
      fail("unexpected word '" + std::string(s_.substr(pos_, end - pos_)) +
           "', expected a value (JSON's literals are true, false and null)");
    }
    Value v;
    v.kind = kind;
    v.boolean = flag;
    v.offset = base_ + pos_;
    pos_ += word.size();
    return v;
  }

  Value parse_number() {
    const std::size_t start = pos_;
    const auto digits = [&] {
      const std::size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
      return pos_ - from;
    };
    if (s_[pos_] == '-') ++pos_;
    if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') fail("a '-' without digits");
    if (s_[pos_] == '0') {
      ++pos_;
      if (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
        fail_at(start, "a number with a leading zero (not JSON)");
    } else {
      digits();
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) fail("expected digits after the decimal point");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) fail("expected digits in the exponent");
    }
    Value v;
    v.kind = Value::Kind::number;
    v.offset = base_ + start;
    v.text = std::string(s_.substr(start, pos_ - start));
    return v;
  }

  unsigned hex4(std::size_t at) const {
    unsigned u = 0;
    for (std::size_t i = at; i < at + 4; ++i) {
      if (i >= s_.size()) fail_at(at - 2, "a truncated \\u escape");
      const char c = s_[i];
      u <<= 4;
      if (c >= '0' && c <= '9') {
        u |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        u |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        u |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        fail_at(i,
                "a \\u escape needs four hex digits, found " + describe_byte(static_cast<unsigned char>(c)));
      }
    }
    return u;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // Length of the valid UTF-8 sequence of a non-ASCII lead byte at `at`, or 0 (RFC 3629's table).
  std::size_t utf8_length(std::size_t at) const {
    const auto b = [&](std::size_t i) -> unsigned {
      return at + i < s_.size() ? static_cast<unsigned char>(s_[at + i]) : 0x100u;
    };
    const auto cont = [](unsigned c, unsigned lo = 0x80, unsigned hi = 0xBF) { return c >= lo && c <= hi; };
    const unsigned c0 = b(0);
    if (c0 >= 0xC2 && c0 <= 0xDF) return cont(b(1)) ? 2 : 0;
    if (c0 == 0xE0) return cont(b(1), 0xA0) && cont(b(2)) ? 3 : 0;
    if ((c0 >= 0xE1 && c0 <= 0xEC) || c0 == 0xEE || c0 == 0xEF) return cont(b(1)) && cont(b(2)) ? 3 : 0;
    if (c0 == 0xED) return cont(b(1), 0x80, 0x9F) && cont(b(2)) ? 3 : 0;  // no UTF-16 surrogates
    if (c0 == 0xF0) return cont(b(1), 0x90) && cont(b(2)) && cont(b(3)) ? 4 : 0;
    if (c0 >= 0xF1 && c0 <= 0xF3) return cont(b(1)) && cont(b(2)) && cont(b(3)) ? 4 : 0;
    if (c0 == 0xF4) return cont(b(1), 0x80, 0x8F) && cont(b(2)) && cont(b(3)) ? 4 : 0;
    return 0;
  }

  // At the opening quote; returns the decoded text and leaves pos_ after the closing quote.
  std::string parse_string() {
    const std::size_t start = pos_++;
    std::string out;
    while (true) {
      // Copy the run of plain ASCII in one go.
      std::size_t run = pos_;
      while (run < s_.size()) {
        const auto c = static_cast<unsigned char>(s_[run]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++run;
      }
      out.append(s_.data() + pos_, run - pos_);
      pos_ = run;
      if (pos_ >= s_.size()) fail_at(start, "a string without its closing quote");
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("control character " + describe_byte(c) + " in a string (it must be escaped)");
      if (c >= 0x80) {
        const std::size_t len = utf8_length(pos_);
        if (len == 0) fail("invalid UTF-8 (" + describe_byte(c) + ") in a string");
        out.append(s_.data() + pos_, len);
        pos_ += len;
        continue;
      }
      // A backslash escape.
      if (pos_ + 1 >= s_.size()) fail_at(start, "a string without its closing quote");
      const char e = s_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = hex4(pos_);
          const std::size_t esc = pos_ - 2;
          pos_ += 4;
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at(esc, "a lone low surrogate \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(pos_, 2) != "\\u") fail_at(esc, "a high surrogate \\u escape without its low half");
            const unsigned lo = hex4(pos_ + 2);
            if (lo < 0xDC00 || lo > 0xDFFF) fail_at(esc, "a high surrogate \\u escape without its low half");
            pos_ += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          fail_at(pos_ - 2, "invalid escape '\\" + std::string(1, e) +
                                "' (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
      }
    }
  }

  Value parse_array(std::size_t depth) {
    if (depth > limits_.max_depth)
      fail("arrays and objects nested deeper than " + std::to_string(limits_.max_depth) + " levels");
    Value v;
    v.kind = Value::Kind::array;
    v.offset = base_ + pos_;
    ++pos_;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return v;
    }
    while (true) {
      v.items.push_back(parse_value(depth));
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return v;
      }
      fail("expected ',' or ']' in an array, found " + here());
    }
  }

  Value parse_object(std::size_t depth) {
    if (depth > limits_.max_depth)
      fail("arrays and objects nested deeper than " + std::to_string(limits_.max_depth) + " levels");
    Value v;
    v.kind = Value::Kind::object;
    v.offset = base_ + pos_;
    ++pos_;
    std::vector<std::size_t> key_at;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return v;
    }
    while (true) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"')
        fail("expected a member name (a string) in an object, found " + here());
      key_at.push_back(pos_);
      v.keys.push_back(parse_string());
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') fail("expected ':' after a member name, found " + here());
      ++pos_;
      v.items.push_back(parse_value(depth));
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        break;
      }
      fail("expected ',' or '}' in an object, found " + here());
    }
    // Duplicate names: sort the member indices by name (O(m log m), so a header naming 10^5 tensors is
    // cheap).
    if (v.keys.size() > 1) {
      std::vector<std::size_t> order(v.keys.size());
      std::iota(order.begin(), order.end(), std::size_t{0});
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return v.keys[a] < v.keys[b]; });
      for (std::size_t i = 1; i < order.size(); ++i) {
        if (v.keys[order[i]] == v.keys[order[i - 1]]) {
          fail_at(key_at[order[i]], "the name " + quote(v.keys[order[i]]) +
                                        " appears twice in one object (first at byte " +
                                        std::to_string(base_ + key_at[order[i - 1]]) + ")");
        }
      }
    }
    return v;
  }

  std::string_view s_;
  std::string_view context_;
  std::size_t base_;
  Limits limits_;
  std::size_t pos_ = 0;
  std::size_t values_ = 0;
};

}  // namespace

ParseError::ParseError(const std::string& context, const std::string& why, std::size_t at)
    : Error(context + ": " + why + " at byte " + std::to_string(at)), offset(at), reason(why) {}

const Value* Value::find(std::string_view key) const {
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] == key) return &items[i];
  }
  return nullptr;
}

std::optional<std::uint64_t> Value::as_uint64() const {
  if (kind != Kind::number || text.empty()) return std::nullopt;
  if (text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  std::uint64_t u = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), u);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size()) return std::nullopt;
  return u;
}

std::string_view kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::null:
      return "null";
    case Value::Kind::boolean:
      return "a boolean";
    case Value::Kind::number:
      return "a number";
    case Value::Kind::string:
      return "a string";
    case Value::Kind::array:
      return "an array";
    case Value::Kind::object:
      return "an object";
  }
  return "?";
}

Value parse(std::string_view text, std::string_view context, std::size_t base, const Limits& limits) {
  return Parser(text, context, base, limits).parse_document();
}

std::string quote(std::string_view text, std::size_t max_bytes) {
  static const char* digits = "0123456789abcdef";
  // Cut on a character boundary, never inside a UTF-8 sequence.
  std::size_t cut = std::min(max_bytes, text.size());
  while (cut > 0 && cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
    --cut;
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == cut) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\u00";
      out += digits[c >> 4];
      out += digits[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace sqb::detail::json
