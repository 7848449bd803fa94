#pragma once
/// \file spec.hpp
/// Spec strings (`name key=value ...`) and the typed, validated parameters they carry.
///
/// A spec names a registry entry and sets some of its parameters, e.g. `kmeans init=kmeans++ max_iter=300
/// seed=1`. Tokens are separated by blanks; a value has no blanks; a key may appear once. Every parameter is
/// declared in the registry with its kind, default and range, so an unknown key or a malformed value is an
/// Error that names it and lists what is valid.

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sqb {

/// Declaration of one parameter.
struct ParamSpec {
  enum class Kind {
    integer,  ///< an integer in [min, max]
    real,     ///< a finite number in [min, max] (and > min when min_exclusive)
    choice,   ///< one of `choices`
    text,     ///< any non-empty token (a path, a pattern)
  };
  std::string name;
  Kind kind = Kind::real;
  std::string default_value;  ///< as text; empty means "unset" (the strategy decides, see help)
  double min = 0;
  double max = 0;
  bool min_exclusive = false;
  /// For choice: the valid words. For integer/real: extra words also accepted (e.g. sigma=data).
  std::vector<std::string> choices;
  std::string help;

  /// "integer in [1, 100000]", "one of kmeans++|greedy", ... for messages and `sqbench list`.
  std::string describe_domain() const;
};

/// A spec string split into its name and key=value pairs (in the order written), not yet validated.
struct SpecText {
  std::string name;
  std::vector<std::pair<std::string, std::string>> args;

  /// Parses `name key=value ...`. Throws Error (quoting the text) on an empty spec, a token without '=',
  /// an empty key or value, or a repeated key. `what` names the source in messages ("quantizer",
  /// "distribution").
  static SpecText parse(std::string_view text, std::string_view what);
  /// Canonical text: the name and the pairs as written, single-spaced.
  std::string canonical() const;
};

/// Validated parameter values: every declared parameter, set or defaulted.
class Params {
 public:
  /// Validates `given` against `decl`; `context` prefixes messages (e.g. `quantizer "kmeans init=foo"`).
  Params(std::span<const ParamSpec> decl, const std::vector<std::pair<std::string, std::string>>& given,
         std::string context);

  bool has(std::string_view name) const;    ///< set explicitly or has a non-empty default
  bool given(std::string_view name) const;  ///< set explicitly in the spec
  const std::string& text(std::string_view name) const;
  std::int64_t integer(std::string_view name) const;
  double real(std::string_view name) const;
  /// True when the parameter's value is the word `word` (for choice parameters and numeric-or-word ones).
  bool is(std::string_view name, std::string_view word) const;
  const std::string& context() const { return context_; }

  /// Throws Error "<context>: parameter 'name' <message>" — for cross-parameter checks in factories.
  [[noreturn]] void fail(std::string_view name, std::string_view message) const;

 private:
  const ParamSpec& decl_of(std::string_view name) const;
  std::span<const ParamSpec> decl_;
  std::map<std::string, std::string, std::less<>> values_;
  std::map<std::string, bool, std::less<>> given_;
  std::string context_;
};

/// Parses a whole token as a finite double (accepts 1e4, -0.5, 0x1p-3). std::nullopt if it is not one.
std::optional<double> parse_number(std::string_view text);
/// Parses a whole token as an integer, also in exponent form when exact (1e4 -> 10000). std::nullopt
/// otherwise.
std::optional<std::int64_t> parse_integer(std::string_view text);

/// FNV-1a 64 of `text` as 16 lowercase hex digits: how config texts and float-model keys are named.
std::string text_hash(std::string_view text);

}  // namespace sqb
