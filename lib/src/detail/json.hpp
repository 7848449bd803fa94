#pragma once
// A strict JSON (RFC 8259) reader for file headers and index files (safetensors headers, sharded-checkpoint
// index files): the whole text is parsed into a tree of Values, and anything RFC 8259 does not allow is an
// error naming the byte offset. Stricter than the RFC where the RFC leaves a choice: duplicate keys in an
// object are an error (a safetensors header must not name a tensor twice), a lone UTF-16 surrogate in a
// \u escape is an error (it has no UTF-8 form), and a byte order mark is an error.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sqb/error.hpp"

namespace sqb::detail::json {

/// Bounds that keep a hostile document from exhausting the stack or memory: nesting deeper than max_depth
/// arrays/objects, or more than max_values values in all (each costs ~100 bytes in the tree), is an error.
struct Limits {
  std::size_t max_depth = 64;
  std::size_t max_values = std::size_t{1} << 22;
};

struct Value {
  enum class Kind : std::uint8_t { null, boolean, number, string, array, object };
  Kind kind = Kind::null;
  bool boolean = false;
  std::size_t offset = 0;         ///< where the value starts, in the units of parse()'s `base` + byte index
  std::string text;               ///< string: the decoded UTF-8 text; number: the literal as written
  std::vector<Value> items;       ///< array: the elements; object: the member values, in document order
  std::vector<std::string> keys;  ///< object: the member names (decoded), parallel to items

  /// Object member by name, or nullptr (also for a non-object). Linear: for the small objects it is used on.
  const Value* find(std::string_view key) const;
  /// A number literal that is a plain non-negative integer (no sign, fraction or exponent) within uint64.
  std::optional<std::uint64_t> as_uint64() const;
};

/// "null", "a boolean", "a number", "a string", "an array", "an object".
std::string_view kind_name(Value::Kind k);

/// Thrown by parse(): message "<context>: <reason> at byte <offset>" (the offset counted from `base`).
class ParseError : public Error {
 public:
  ParseError(const std::string& context, const std::string& reason, std::size_t offset);
  std::size_t offset;  ///< base + the index of the offending byte in the text
  std::string reason;
};

/// Parses one JSON text (any value at the top level, whitespace around it allowed). `context` starts every
/// message (e.g. "model.safetensors: invalid JSON header"); `base` is added to reported offsets, so they can
/// count from the start of the file the text came from. Throws ParseError.
Value parse(std::string_view text, std::string_view context, std::size_t base = 0, const Limits& limits = {});

/// The text as a JSON string literal, quotes included, for messages: "a\"b" (control characters escaped,
/// other bytes as they are); at most `max_bytes` of the text, then "...".
std::string quote(std::string_view text, std::size_t max_bytes = 80);

}  // namespace sqb::detail::json
