#include "config_keys.hpp"

namespace sqbench {

std::string describe_kind(const KeyInfo& key) {
  switch (key.kind) {
    case KeyKind::text:
      return "text";
    case KeyKind::column:
      return "a result column (sqbench columns)";
    case KeyKind::integer:
      return "an integer in " + key.allowed;
    case KeyKind::integers:
      return "integers in " + key.allowed + ", comma-separated";
    case KeyKind::boolean:
      return "1|0|true|false|yes|no";
    case KeyKind::choice:
      return "one of " + key.allowed;
    case KeyKind::choices:
      return "some of " + key.allowed + ", comma-separated";
    case KeyKind::bytes:
      return "a size in bytes with an optional K, M, G or T (1K = 1024), e.g. 8G";
    case KeyKind::spec:
      return "a " + key.allowed + " spec (sqbench list)";
    case KeyKind::granularities:
      return "tensor|channel|group:G, comma-separated";
    case KeyKind::filter:
      return "column=value (value: a|b for alternatives)";
    case KeyKind::filters:
      return "column=value filters, comma-separated";
  }
  return "text";
}

std::string config_keys_listing() {
  std::string out =
      "Config keys (sqbench run CONFIG): an INI file, top-level keys first, then sections. Every key is\n"
      "given once unless repeatable: a repeatable key's lines add to one list.\n";
  for (const SectionInfo& section : config_sections()) {
    out += "\n" + section.header + " - " + section.help + "\n";
    for (const KeyInfo& key : section.keys) {
      std::string notes;
      const auto note = [&](const std::string& n) { notes += (notes.empty() ? "" : "; ") + n; };
      if (key.repeatable) note("repeatable");
      if (key.need == Need::required) note("required");
      if (key.need == Need::conditional) note("required " + key.required_when);
      if (!key.default_value.empty()) note("default: " + key.default_value);
      out += "  " + key.name + " = " + describe_kind(key) + "\n";
      if (!notes.empty()) out += "      (" + notes + ")\n";
      out += "      " + key.help + "\n";
    }
  }
  return out;
}

}  // namespace sqbench
