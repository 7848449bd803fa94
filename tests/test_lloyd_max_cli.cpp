// `sqbench codebook`: every format prints the solved codebook exactly (shortest round-trip numbers), and bad
// input exits 2 with a message naming the parameter.

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cmath>
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
  CHECK_THAT(t.output, Catch::Contains("0.021604310642152305"));  // tests/data/REFERENCE.md: 0.02160431064
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

TEST_CASE("sqbench codebook prints every data-free codebook, a scaled shape gets its best N(0,1) fit",
          "[cli][codebook]") {
  // tests/data/REFERENCE.md: best-scale MSE on N(0,1) of NF4 0.0098993 and of FP4 (E2M1) 0.0126849 (7 digits
  // given).
  struct Case {
    const char* spec;
    double mse;
  };
  for (const Case c : {Case{"nf4", 0.0098993}, Case{"fp4", 0.0126849}}) {
    INFO(c.spec);
    const std::string json = sqbench::codebook_report(c.spec, "4", "json");
    const auto at = json.find("\"mse\": ");
    REQUIRE(at != std::string::npos);
    CHECK_THAT(std::stod(json.substr(at + 7)),
               Catch::Matchers::WithinAbs(c.mse, 5e-8));  // REFERENCE rounds to 1e-7
    CHECK(json_array(json, "levels").size() == 16);
    CHECK(json_array(json, "thresholds").size() == 15);
  }
  // The bitsandbytes NF4 table, exactly as tests/data/REFERENCE.md lists it (float32 values).
  const std::vector<double> nf4 = json_array(sqbench::codebook_report("nf4", "4", "json"), "levels");
  CHECK(static_cast<float>(nf4[1]) == -0.6961928009986877f);
  CHECK(static_cast<float>(nf4[8]) == 0.07958029955625534f);
  // A ladder with scale=none is printed as it is (no fit): +-phi^e for e = -3..0.
  const std::string phi = sqbench::codebook_report("phi_log scale=none bits=3", "3", "json");
  const std::vector<double> lv = json_array(phi, "levels");
  REQUIRE(lv.size() == 8);
  CHECK_THAT(lv[7], Catch::Matchers::WithinRel(1.0, 1e-7));
  CHECK_THAT(lv[4], Catch::Matchers::WithinRel(std::pow((1 + std::sqrt(5.0)) / 2, -3.0), 1e-7));
  CHECK(phi.find("\"n01\"") == std::string::npos);
  // Every format works for every data-free entry, and learned ones are refused by name.
  for (const char* spec : {"normal_quantile", "uniform symmetric=1", "uniform", "cosine", "phi_log"}) {
    for (const char* format : {"text", "csv", "md", "json"})
      CHECK_NOTHROW(sqbench::codebook_report(spec, "4", format));
  }
  const Outcome o = run_cli("codebook \"quantile\" --bits 4");
  CHECK(o.status == 2);
  CHECK_THAT(o.output, Catch::Contains("learned codebook") && Catch::Contains("nf4"));
  CHECK_THAT(run_cli("codebook \"cosine refine=1\" --bits 4").output, Catch::Contains("learned codebook"));
}
