// The config key tables (config_keys.hpp): the parser, its messages and `sqbench list config` all read them,
// so these tests walk the tables themselves: a key added to a table is checked here without a new line.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "config.hpp"
#include "config_keys.hpp"
#include "sqb/error.hpp"
#include "text.hpp"

using Catch::Contains;
using Catch::StartsWith;
using sqbench::KeyInfo;
using sqbench::KeyKind;
using sqbench::SectionInfo;

namespace {

// A config whose first line opens a section of kind `kind` ("t" its id) and whose next lines are `body`;
// for the top level, `body` alone (so a key on the body's first line is on line 2, or 1 at the top level).
std::string in_section(const SectionInfo& section, const std::string& body) {
  return section.kind.empty() ? body : "[" + section.kind + ".t]\n" + body;
}

// The dotted name messages give a key of `section`.
std::string dotted(const SectionInfo& section, const KeyInfo& key) {
  return section.kind.empty() ? key.name : section.kind + ".t." + key.name;
}

// "c.ini:L: key 'DOTTED': ": how every message about one setting starts.
std::string prefix(const SectionInfo& section, const KeyInfo& key, int line) {
  return "c.ini:" + std::to_string(line + (section.kind.empty() ? 0 : 1)) + ": key '" + dotted(section, key) +
         "': ";
}

// The error parse_config gives for `text` ("" when it accepts it). Tables and plots alone are a valid config
// when it is loaded for its outputs, so each section can be tested on its own.
std::string error_of(const std::string& text) {
  try {
    sqbench::parse_config("c.ini", text, sqbench::ConfigUse::outputs);
  } catch (const sqb::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("config key tables: the top level, sweep, table and plot, each key named once with a help line",
          "[config-keys]") {
  const auto& sections = sqbench::config_sections();
  REQUIRE(sections.size() == 4);
  CHECK(sections[0].kind.empty());
  CHECK(sections[1].kind == "sweep");
  CHECK(sections[2].kind == "table");
  CHECK(sections[3].kind == "plot");
  for (const SectionInfo& section : sections) {
    std::vector<std::string> names;
    for (const KeyInfo& key : section.keys) {
      INFO(section.header << " " << key.name);
      CHECK(std::find(names.begin(), names.end(), key.name) == names.end());
      names.push_back(key.name);
      CHECK_FALSE(key.help.empty());
      CHECK((key.need == sqbench::Need::conditional) == !key.required_when.empty());
      const bool ranged = key.kind == KeyKind::integer || key.kind == KeyKind::integers;
      CHECK(ranged == (key.max > key.min));
      if (key.kind == KeyKind::choice || key.kind == KeyKind::choices || key.kind == KeyKind::spec || ranged)
        CHECK_FALSE(key.allowed.empty());
    }
  }
}

TEST_CASE("sqbench list config prints every key of every section the parser accepts", "[config-keys][cli]") {
  const sqbtest::Outcome o = sqbtest::run_cli("list config", false);
  REQUIRE(o.status == 0);
  CHECK(o.output.starts_with(sqbench::config_keys_listing()));
  CHECK(o.output.find("panter_dite") != std::string::npos);  // the reference curves a plot may name
  const auto& sections = sqbench::config_sections();
  for (std::size_t i = 0; i < sections.size(); ++i) {
    const SectionInfo& section = sections[i];
    // The section's block: from its header line to the next section's.
    const auto begin = o.output.find("\n" + section.header + " - " + section.help + "\n");
    REQUIRE(begin != std::string::npos);
    const auto end =
        i + 1 < sections.size() ? o.output.find("\n" + sections[i + 1].header + " - ") : o.output.size();
    const std::string block = o.output.substr(begin, end - begin);
    for (const KeyInfo& key : section.keys) {
      INFO(section.header << " " << key.name);
      CHECK(block.find("\n  " + key.name + " = " + sqbench::describe_kind(key) + "\n") != std::string::npos);
      CHECK(block.find("      " + key.help + "\n") != std::string::npos);
      // The parser knows the key: whatever it says about a strange value, it is not "unknown key".
      CHECK_THAT(error_of(in_section(section, key.name + " = ?\n")), !Contains("unknown key"));
    }
    // And it knows no other: an unknown key's message lists exactly the table's keys, in its order.
    std::vector<std::string> names;
    for (const KeyInfo& key : section.keys)
      names.push_back(key.name);
    const std::string bogus = error_of(in_section(section, "bogus = 1\n"));
    CHECK_THAT(bogus, Contains("unknown key") && Contains("; valid keys: " + sqbench::join(names)));
  }
  CHECK(sqbtest::run_cli("list configs").status == 2);
  CHECK(sqbtest::run_cli("list config extra").status == 2);
}

TEST_CASE("every key kind's errors come from the table: repeats, values, ranges, choices, required keys",
          "[config-keys][bad-input]") {
  for (const SectionInfo& section : sqbench::config_sections()) {
    for (const KeyInfo& key : section.keys) {
      INFO(section.header << " " << key.name);
      const std::string at2 = prefix(section, key, 2);
      CHECK(error_of(in_section(section, key.name + " =\n")) == prefix(section, key, 1) + "has no value");

      const std::string twice = error_of(in_section(section, key.name + " = ?\n" + key.name + " = ?\n"));
      if (key.repeatable) {
        CHECK_THAT(twice, !Contains("given more than once"));
      } else {
        CHECK_THAT(twice, StartsWith(at2 + "given more than once ("));
      }

      const auto error_for = [&](const std::string& value) {
        return error_of(in_section(section, key.name + " = " + value + "\n"));
      };
      const std::string at = prefix(section, key, 1);
      switch (key.kind) {
        case KeyKind::choice:
          CHECK(error_for("zzz") == at + "'zzz' must be one of " + key.allowed);
          break;
        case KeyKind::choices:
          CHECK(error_for("zzz") ==
                at + "'zzz' is not a " + key.name + "; valid " + key.name + "s: " + key.allowed);
          break;
        case KeyKind::boolean:
          CHECK(error_for("maybe") == at + "'maybe' must be one of 1|0|true|false|yes|no");
          break;
        case KeyKind::integer: {
          const std::string expect = " must be an integer in " + key.allowed + " (" + key.help + ")";
          CHECK(error_for("x") == at + "'x'" + expect);
          const std::string over = std::to_string(static_cast<long long>(key.max) + 1);
          CHECK(error_for(over) == at + "'" + over + "'" + expect);
          break;
        }
        case KeyKind::integers: {
          const std::string what = " (" + key.name + " must be in " + key.allowed + ")";
          CHECK(error_for("x") == at + "'x' is not an integer" + what);
          const std::string under = std::to_string(static_cast<long long>(key.min) - 1);
          CHECK(error_for(under) == at + "'" + under + "' is out of range" + what);
          CHECK(error_for(",1") == at + "'' is not an integer" + what);
          break;
        }
        case KeyKind::bytes:
          CHECK_THAT(error_for("lots"), StartsWith(at + "'lots' must be a size in bytes"));
          break;
        case KeyKind::spec:
          CHECK_THAT(error_for("nosuch"), StartsWith(at) && Contains("unknown " + key.allowed + " 'nosuch'"));
          break;
        case KeyKind::granularities:
          CHECK_THAT(error_for("nosuch"), StartsWith(at) && Contains("nosuch"));
          break;
        case KeyKind::filter:
        case KeyKind::filters:
          CHECK_THAT(error_for("nosuch"),
                     StartsWith(at + "where filter 'nosuch' must be of the form column=value"));
          break;
        case KeyKind::text:
        case KeyKind::column:
          break;
      }

      // A required key left out: every other required key given, this one missing.
      if (key.need == sqbench::Need::required) {
        std::string others;
        for (const KeyInfo& other : section.keys)
          if (other.need == sqbench::Need::required && other.name != key.name)
            others += other.name + " = k\n";
        CHECK(error_of(in_section(section, others)) ==
              "c.ini: [" + section.kind + ".t]: missing key '" + key.name + "'");
      }
    }
  }
}

TEST_CASE("config key errors name the file, line and section, and a bare table or plot section needs an id",
          "[config-keys][bad-input]") {
  CHECK(error_of("[sweep]\nquantiser = cosine\n") ==
        "c.ini:2: key 'sweep.quantiser': unknown key in [sweep]; valid keys: quantizer, distribution, task, "
        "mode, n, k, bits, granularity, seed, repeats, opt_ratio");
  CHECK(error_of("[tables.x]\nrows = k\n") ==
        "c.ini:2: key 'tables.x.rows': unknown section [tables.x]; valid sections: [sweep] or [sweep.<id>], "
        "[table.<id>], [plot.<id>]");
  CHECK(error_of("[table]\nrows = k\n") == "c.ini: [table]: name it [table.<id>], e.g. [table.mse]");
  CHECK(error_of("[plot]\nx = k\n") == "c.ini: [plot]: name it [plot.<id>], e.g. [plot.mse]");
  CHECK(error_of("name = a\nname = b\n") ==
        "c.ini:2: key 'name': given more than once (no key of the top "
        "level may repeat)");
  CHECK(error_of("[plot.p]\nx = k\nx = n\n") ==
        "c.ini:3: key 'plot.p.x': given more than once (in [plot.<id>] only where, reference and hline may "
        "repeat)");
}
