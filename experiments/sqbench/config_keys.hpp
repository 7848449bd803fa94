#pragma once
// What a config may say, section by section: every key's name, value type, allowed values, whether it may
// repeat or is required, and a one-line help. The parser (config.cpp) validates and reads keys from these
// tables, and `sqbench list config` prints them, so the parser, its messages and the listing cannot disagree.

#include <string>
#include <string_view>
#include <vector>

namespace sqbench {

/// How a key's value is read and checked before the key's own handler sees it.
enum class KeyKind {
  text,           ///< any text
  column,         ///< a result column name (checked later, against the planned cells)
  integer,        ///< one integer in `allowed` (lo..hi)
  integers,       ///< comma-separated integers, each in `allowed` (lo..hi), or the key's `word`
  boolean,        ///< 1|0|true|false|yes|no
  choice,         ///< one of `allowed` (a|b|c)
  choices,        ///< comma-separated, each one of `allowed` (a|b|c)
  bytes,          ///< a byte count with an optional K, M, G or T (1K = 1024)
  spec,           ///< a spec of the registry `allowed` names: quantizer, distribution or task
  granularities,  ///< comma-separated granularities: tensor | channel | group:G
  filter,         ///< column=value
  filters,        ///< comma-separated column=value filters
};

/// Whether a section must give a key. `required` keys are checked by the parser itself ("missing key 'x'");
/// a `conditional` key's condition (`KeyInfo::required_when`) is checked by its section's own code.
enum class Need { optional, required, conditional };

struct KeyInfo {
  std::string name;
  KeyKind kind = KeyKind::text;
  /// choice(s): "a|b|c"; integer(s): the range as messages show it ("1..1000"); spec: the registry.
  std::string allowed;
  bool repeatable = false;  ///< may be given on several lines (each line adds to a list)
  Need need = Need::optional;
  std::string required_when;  ///< for Need::conditional: "required <this>", e.g. "in a task sweep"
  std::string help;           ///< one line
  std::string default_value;  ///< what applies when the key is not given, as users read it ("" none)
  std::string word;           ///< integers: a word accepted besides numbers ("all" for n), else ""
  double min = 0, max = 0;    ///< integer(s): the range `allowed` shows
};

/// One kind of section: the top level (""), sweep, table or plot.
struct SectionInfo {
  std::string kind;       ///< "" (top level), "sweep", "table", "plot"
  std::string header;     ///< as users write it: "top level", "[sweep] or [sweep.<id>]", "[table.<id>]", ...
  std::string help;       ///< one line
  bool needs_id = false;  ///< [table.<id>] and [plot.<id>]: a bare [table] is an error
  std::vector<KeyInfo> keys;
};

/// Every section kind with its keys, in the order `sqbench list config` prints them (top level, sweep,
/// table, plot); within a section, keys in the order messages list them.
const std::vector<SectionInfo>& config_sections();

/// A key's type as the listing shows it: "integer in 1..1000", "one of line|scatter|bar", "quantizer spec",
/// "list of integers in 1..16", ...
std::string describe_kind(const KeyInfo& key);

/// The text `sqbench list config` prints: every section and its keys (type, repeatable, required, help).
std::string config_keys_listing();

}  // namespace sqbench
