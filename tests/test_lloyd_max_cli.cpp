// `sqbench codebook`: every format prints the solved codebook exactly (shortest round-trip numbers), and bad
// input exits 2 with a message naming the parameter.

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <sstream>

#include "cli_helpers.hpp"
#include "codebook_cmd.hpp"
#include "sqb/error.hpp"
#include "sqb/lloyd_max.hpp"

namespace {

using sqbtest::Outcome;
using sqbtest::run_cli;

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep))
    out.push_back(cur);
  return out;
}

// The numbers of a JSON array value `"key": [a, b, ...]`.
std::vector<double> json_array(const std::string& text, const std::string& key) {
  const auto at = text.find("\"" + key + "\": [");
  REQUIRE(at != std::string::npos);
  const auto open = text.find('[', at), close = text.find(']', at);
  std::vector<double> out;
  for (const std::string& f : split(text.substr(open + 1, close - open - 1), ','))
    out.push_back(std::stod(f));
  return out;
}

}  // namespace

TEST_CASE("sqbench codebook prints the exact sphere codebook in every format", "[cli][lloyd_max]") {
  const auto sol = sqb::lloyd_max_solution(sqb::Law::sphere(128), 3);

  const Outcome t = run_cli("codebook \"lloyd_max law=sphere d=128\" --bits 3", false);
  REQUIRE(t.status == 0);
  CHECK_THAT(t.output, Catch::Contains("0.021604310642152305"));  // REFERENCE.md: 0.02160431064
  CHECK_THAT(t.output, Catch::Contains("d * mse (TurboQuant D_mse)    0.0339659257939"));
  CHECK_THAT(t.output, Catch::Contains("converged"));

  const Outcome c = run_cli("codebook \"lloyd_max law=sphere d=128\" --bits 3 --format csv", false);
  REQUIRE(c.status == 0);
  const auto lines = split(c.output, '\n');
  REQUIRE(lines.size() == 9);
  const auto header = split(lines[0], ',');
  const auto col = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    REQUIRE(it != header.end());
    return static_cast<std::size_t>(it - header.begin());
  };
  for (std::size_t i = 0; i < 8; ++i) {
    const auto f = split(lines[i + 1], ',');
    REQUIRE(f.size() == header.size());
    CHECK(std::stod(f[col("level")]) == sol->levels[i]);  // round trip, not rounded
    CHECK(std::stod(f[col("probability")]) == sol->probabilities[i]);
    CHECK(f[col("units")] == "value");
    CHECK(std::stod(f[col("d_mse")]) == 128 * sol->mse);
  }

  const Outcome j = run_cli("codebook \"lloyd_max law=sphere d=128\" --bits 3 --format json", false);
  REQUIRE(j.status == 0);
  CHECK(json_array(j.output, "levels") == sol->levels);
  CHECK(json_array(j.output, "thresholds") == sol->thresholds);
  CHECK_THAT(j.output, Catch::Contains("\"converged\": true"));

  const Outcome m = run_cli("codebook \"lloyd_max law=sphere d=128\" --bits 3 --format md", false);
  REQUIRE(m.status == 0);
  CHECK_THAT(m.output,
             Catch::Contains("| index | level | lower threshold | upper threshold | probability |"));
  CHECK(split(m.output, '\n').size() > 10);
}

TEST_CASE("sqbench codebook: sigma, scale and sigma=data units", "[cli][lloyd_max]") {
  const auto g = sqb::lloyd_max_solution(sqb::Law::gaussian(), 2);
  // d=64 -> sigma = 1/8, scale=2 -> levels x 1/4.
  const std::string fixed = sqbench::codebook_report("lloyd_max d=64 scale=2", "2", "json");
  const auto lv = json_array(fixed, "levels");
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(lv[i] == g->levels[i] / 4);
  // Default sigma=data: the unit table, flagged as block-sigma units.
  const std::string data = sqbench::codebook_report("lloyd_max", "2", "json");
  CHECK(json_array(data, "levels") == g->levels);
  CHECK_THAT(data, Catch::Contains("\"units\": \"block_sigma\""));
  CHECK_THAT(sqbench::codebook_report("lloyd_max law=student_t nu=4", "1", "text"),
             Catch::Contains("student_t nu=4"));
}

TEST_CASE("sqbench codebook: bad input exits 2 naming the parameter", "[cli][lloyd_max][baddata]") {
  struct Case {
    const char* args;
    const char* names;
  };
  for (const Case c :
       {Case{"codebook \"lloyd_max\" --bits 0", "'--bits'"},
        Case{"codebook \"lloyd_max\" --bits 17", "'--bits'"},
        Case{"codebook \"lloyd_max\" --bits two", "'--bits'"}, Case{"codebook \"lloyd_max\"", "'--bits'"},
        Case{"codebook \"lloyd_max\" --bits 2 --format xml", "'--format'"},
        Case{"codebook \"lloyd_max law=sphere d=1\" --bits 2", "'d'"},
        Case{"codebook \"lloyd_max law=sphere\" --bits 2", "'d'"},
        Case{"codebook \"lloyd_max law=sphere d=data\" --bits 2", "'d'"},
        Case{"codebook \"lloyd_max sigma=0\" --bits 2", "'sigma'"},
        Case{"codebook \"lloyd_max sigma=-2\" --bits 2", "'sigma'"},
        Case{"codebook \"lloyd_max law=student_t nu=2\" --bits 2", "'nu'"},
        Case{"codebook \"kmeans\" --bits 2", "kmeans"}, Case{"codebook --bits 2", "SPEC"}}) {
    INFO(c.args);
    const Outcome o = run_cli(c.args);
    CHECK(o.status == 2);
    CHECK_THAT(o.output, Catch::Contains(c.names));
  }
  CHECK(run_cli("codebook --help").status == 0);
}
