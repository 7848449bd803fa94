// The strict JSON reader behind the safetensors header and index files (lib/src/detail/json): every value
// kind and escape, what RFC 8259 forbids (each an error giving the byte offset), duplicate names, the depth
// and value-count limits, and UTF-8 validation against RFC 3629's table.

#include <catch2/catch.hpp>

#include <string>

#include "detail/json.hpp"
#include "sqb/error.hpp"

namespace json = sqb::detail::json;
using Kind = json::Value::Kind;

namespace {

json::Value parse(const std::string& s) {
  return json::parse(s, "t.json");
}

}  // namespace

TEST_CASE("json: every value kind, with offsets", "[json]") {
  const json::Value v = parse(
      " {\"a\": [1, -0, 2.5e-3, 1E+2, 0.0], \"b\": {\"c\": true, \"d\": false, \"e\": null}, \"\": "
      "\"x\"}\r\n\t");
  REQUIRE(v.kind == Kind::object);
  CHECK(v.offset == 1);
  REQUIRE(v.keys == std::vector<std::string>{"a", "b", ""});
  const json::Value& a = v.items[0];
  REQUIRE(a.kind == Kind::array);
  CHECK(a.offset == 7);
  REQUIRE(a.items.size() == 5);
  CHECK(a.items[0].text == "1");
  CHECK(a.items[0].offset == 8);
  CHECK(a.items[1].text == "-0");
  CHECK(a.items[2].text == "2.5e-3");
  CHECK(a.items[3].text == "1E+2");
  CHECK(a.items[4].text == "0.0");
  const json::Value* b = v.find("b");
  REQUIRE(b != nullptr);
  CHECK(b->find("c")->kind == Kind::boolean);
  CHECK(b->find("c")->boolean);
  CHECK_FALSE(b->find("d")->boolean);
  CHECK(b->find("e")->kind == Kind::null);
  CHECK(b->find("zz") == nullptr);
  CHECK(v.find("")->text == "x");
  // Top-level scalars are JSON texts too (RFC 8259).
  CHECK(parse("7").text == "7");
  CHECK(parse("\"s\"").text == "s");
  CHECK(parse("[]").items.empty());
  CHECK(parse("{}").keys.empty());
  // Offsets can count from the start of the file the text came from.
  CHECK(json::parse("[1, 2]", "f", 8).items[1].offset == 12);
}

TEST_CASE("json: string escapes and UTF-8 decode to UTF-8", "[json]") {
  CHECK(parse(R"("\" \\ \/ \b \f \n \r \t")").text == "\" \\ / \b \f \n \r \t");
  CHECK(parse(R"("\u0041\u00e9\u20AC")").text == "A\xC3\xA9\xE2\x82\xAC");
  CHECK(parse(R"("\ud83d\ude00")").text == "\xF0\x9F\x98\x80");  // a surrogate pair: U+1F600
  CHECK(parse(R"("\u0000")").text == std::string(1, '\0'));
  // Raw UTF-8 passes through: 2, 3 and 4 byte sequences at the edges of RFC 3629's table.
  for (const std::string s : {"\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEE\x80\x80",
                              "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF", "caf\xC3\xA9"}) {
    CHECK(parse("\"" + s + "\"").text == s);
  }
}

TEST_CASE("json: plain non-negative integers within uint64", "[json]") {
  CHECK(parse("0").as_uint64() == 0u);
  CHECK(parse("18446744073709551615").as_uint64() == 18446744073709551615u);
  CHECK_FALSE(parse("18446744073709551616").as_uint64());
  CHECK_FALSE(parse("-1").as_uint64());
  CHECK_FALSE(parse("-0").as_uint64());
  CHECK_FALSE(parse("1.0").as_uint64());
  CHECK_FALSE(parse("1e3").as_uint64());
  CHECK_FALSE(parse("\"1\"").as_uint64());
}

TEST_CASE("json: what RFC 8259 forbids is an error naming the byte", "[json]") {
  struct Case {
    std::string text;
    std::string reason;
    std::size_t at;
  };
  const Case c = GENERATE(
      Case{"", "empty text", 0}, Case{"   ", "empty text", 3}, Case{"\xEF\xBB\xBF{}", "byte order mark", 0},
      Case{"{", "expected a member name", 1},
      Case{"{\"a\" 1}", "expected ':' after a member name, found '1'", 5},
      Case{"{\"a\":1,}", "expected a member name (a string) in an object, found '}'", 7},
      Case{"{a:1}", "expected a member name", 1}, Case{"{'a':1}", "found '''", 1},
      Case{"[1,]", "unexpected ']', expected a value", 3},
      Case{"[1 2]", "expected ',' or ']' in an array", 3},
      Case{"[1", "expected ',' or ']' in an array, found end of text", 2},
      Case{"{\"a\":1", "expected ',' or '}'", 6}, Case{"{} {}", "unexpected '{' after the JSON value", 3},
      Case{"01", "leading zero", 0}, Case{"-", "a '-' without digits", 1}, Case{"+1", "unexpected '+'", 0},
      Case{".5", "unexpected '.'", 0}, Case{"1.", "expected digits after the decimal point", 2},
      Case{"1e", "expected digits in the exponent", 2}, Case{"1e+", "expected digits in the exponent", 3},
      Case{"NaN", "unexpected 'N'", 0}, Case{"[Infinity]", "unexpected 'I'", 1},
      Case{"tru", "unexpected word 'tru'", 0}, Case{"True", "unexpected 'T'", 0},
      Case{"nul", "unexpected word 'nul'", 0}, Case{"\"abc", "a string without its closing quote", 0},
      Case{"\"a\nb\"", "control character byte 0x0A", 2}, Case{"\"a\tb\"", "control character byte 0x09", 2},
      Case{"\"\\x41\"", "invalid escape '\\x'", 1}, Case{"\"\\u12\"", "four hex digits, found '\"'", 5},
      Case{"\"\\u12", "a truncated \\u escape", 1}, Case{"\"\\ude00\"", "a lone low surrogate", 1},
      Case{"\"\\ud83d\"", "a high surrogate \\u escape without", 1},
      Case{"\"\\ud83d\\u0041\"", "a high surrogate", 1}, Case{"\"\xC0\x80\"", "invalid UTF-8 (byte 0xC0)", 1},
      Case{"\"\xC1\xBF\"", "invalid UTF-8", 1}, Case{"\"\xE0\x80\x80\"", "invalid UTF-8 (byte 0xE0)", 1},
      Case{"\"\xED\xA0\x80\"", "invalid UTF-8 (byte 0xED)", 1},
      Case{"\"\xF4\x90\x80\x80\"", "invalid UTF-8", 1},
      Case{"\"\xF5\x80\x80\x80\"", "invalid UTF-8 (byte 0xF5)", 1},
      Case{"\"\x80\"", "invalid UTF-8 (byte 0x80)", 1},
      Case{"\"ab\xE2\x82\"", "invalid UTF-8 (byte 0xE2)", 3},
      Case{"\"\xFF\"", "invalid UTF-8 (byte 0xFF)", 1}, Case{"[\x01]", "unexpected byte 0x01", 1},
      Case{std::string("[1]\x00", 4), "unexpected byte 0x00 after the JSON value", 3},
      Case{"{\"a\":1,\"b\":2,\"a\":3}", "the name \"a\" appears twice in one object (first at byte 101)",
           13});
  INFO(c.text);
  try {
    json::parse(c.text, "t.json", 100);
    FAIL("no error");
  } catch (const json::ParseError& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("t.json: ") && Catch::Contains(c.reason) &&
                             Catch::EndsWith(" at byte " + std::to_string(100 + c.at)));
    CHECK(e.offset == 100 + c.at);
  }
}

TEST_CASE("json: duplicate names are found among many, at any depth", "[json]") {
  std::string s = "{\"outer\": {";
  for (int i = 0; i < 5000; ++i)
    s += "\"k" + std::to_string(i) + "\": " + std::to_string(i) + ", ";
  CHECK(parse(s + "\"last\": 0}}").items[0].keys.size() == 5001);
  CHECK_THROWS_WITH(parse(s + "\"k4321\": 0}}"), Catch::Contains("the name \"k4321\" appears twice"));
  // Equal names in different objects are fine; names differing after a NUL are different names.
  CHECK_NOTHROW(parse(R"([{"a": 1}, {"a": 2}])"));
  CHECK(parse(R"({"a\u0000b": 1, "a\u0000c": 2})").keys.size() == 2);
  CHECK_THROWS_WITH(parse(R"({"\u00e9": 1, "é": 2})"), Catch::Contains("appears twice"));
}

TEST_CASE("json: nesting and size limits", "[json]") {
  const auto nested = [](std::size_t d) { return std::string(d, '[') + std::string(d, ']'); };
  CHECK_NOTHROW(parse(nested(64)));
  CHECK_THROWS_WITH(parse(nested(65)),
                    Catch::Contains("nested deeper than 64 levels") && Catch::EndsWith("byte 64"));
  // A deep document is refused without deep recursion, whatever its length.
  CHECK_THROWS_WITH(parse(std::string(1 << 20, '[')), Catch::Contains("nested deeper than 64"));
  const json::Limits small{8, 5};
  CHECK_NOTHROW(json::parse("[[[1, 2]]]", "t", 0, small));
  CHECK_THROWS_WITH(json::parse("[1, 2, 3, 4, 5]", "t", 0, small),
                    Catch::Contains("more than 5 values") && Catch::EndsWith("byte 13"));
  CHECK_THROWS_WITH(json::parse("[[[[[[[[[]]]]]]]]]", "t", 0, {8, 100}), Catch::Contains("deeper than 8"));
}

TEST_CASE("json: quote for messages", "[json]") {
  CHECK(json::quote("a\"b\\c\n") == R"("a\"b\\c\u000a")");
  CHECK(json::quote("abcdef", 3) == "\"abc...\"");
  CHECK(json::quote("ab\xC3\xA9", 3) == "\"ab...\"");  // never cut inside a UTF-8 character
  CHECK(json::quote("ab", 2) == "\"ab\"");
}
