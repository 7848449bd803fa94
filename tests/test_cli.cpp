// The sqbench CLI as a user runs it: a small config gives the expected CSV, each bad config exits 2 with a
// message naming the key, and nothing is written when a config is bad.

#include <catch2/catch.hpp>

#include <filesystem>
#include <set>

#include "cli_helpers.hpp"
#include "sqb/columns.hpp"

namespace fs = std::filesystem;

using sqbtest::lines_of;
using sqbtest::Outcome;
using sqbtest::run_cli;
using sqbtest::TempDir;

namespace {

const char* kSmall = R"(name = small
repeats = 1
[sweep]
quantizer = cosine
quantizer = kmeans init=quantile
quantizer = uniform symmetric=1
distribution = gaussian
distribution = laplace scale=0.5 rows=10
n = 1000
n = 2000
k = 2
k = 16
granularity = tensor
granularity = channel
seed = 0
)";

}  // namespace

TEST_CASE("sqbench run writes results.csv with the expected header and one row per cell", "[cli]") {
  TempDir dir;
  const fs::path cfg = dir.write("small.ini", kSmall);
  const Outcome o = run_cli("run " + cfg.string() + " --quiet --out " + (dir.path / "out").string());
  INFO(o.output);
  REQUIRE(o.status == 0);
  const auto lines = lines_of(dir.path / "out" / "results.csv");
  REQUIRE(!lines.empty());
  CHECK(
      lines[0] ==
      "quantizer,distribution,n,k,bits,granularity,seed,source,rows,cols,blocks,mse,nmse,sqnr_db,max_abs_err,"
      "entropy_bits,storage_bits,coded_bits,wmse,iterations,converged,fit_s,fit_s_min,fit_s_mad,encode_s,"
      "encode_s_min,encode_s_mad,decode_s,decode_s_min,decode_s_mad,quantize_s,quantize_s_min,quantize_s_mad,"
      "threads,config_hash");
  // 3 quantizers x 2 distributions x 2 n x 2 k x 2 granularities, minus uniform symmetric=1 at k=2 (8 cells).
  CHECK(lines.size() == 1 + 48 - 8);
  CHECK(o.output.find("skipping 8 cells") != std::string::npos);
  CHECK(fs::exists(dir.path / "out" / "config.ini"));
}

TEST_CASE("sqbench run: the default results folder is results/<name>", "[cli]") {
  TempDir dir;
  const fs::path cfg = dir.write(
      "c.ini", "name = tiny\n[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\n");
  const Outcome o =
      run_cli("run " + cfg.string() + " --quiet --out " + (dir.path / "results" / "tiny").string());
  REQUIRE(o.status == 0);
  CHECK(lines_of(dir.path / "results" / "tiny" / "results.csv").size() == 2);
  const std::string cmd =
      "cd " + dir.path.string() + " && " + SQBENCH_EXE + " run c.ini --quiet > /dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  CHECK(fs::exists(dir.path / "results" / "tiny" / "results.csv"));
}

TEST_CASE("bad configs exit 2 with a message naming the key, and write nothing", "[cli]") {
  struct Case {
    std::string body;
    std::string expect;
  };
  const std::string base = "[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\n";
  const Case c = GENERATE_COPY(
      Case{"[sweep]\nquantiser = cosine\ndistribution = gaussian\nn = 100\nk = 4\n",
           "key 'sweep.quantiser': unknown key"},
      Case{"[sweep]\nquantizer = cosinus\ndistribution = gaussian\nn = 100\nk = 4\n",
           "unknown quantizer 'cosinus'"},
      Case{"[sweep]\nquantizer = cosine foo=1\ndistribution = gaussian\nn = 100\nk = 4\n",
           "unknown parameter 'foo'"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gauss\nn = 100\nk = 4\n",
           "unknown distribution 'gauss'"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = ten\nk = 4\n",
           "key 'sweep.n': 'ten' is not an integer"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 0\nk = 4\n",
           "key 'sweep.n': '0' is out of range"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 0\n",
           "key 'sweep.k': '0' is out of range"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 65537\n",
           "key 'sweep.k': '65537' is out of range"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nbits = 17\n", "key 'sweep.bits'"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\nbits = 2\n",
           "either k or bits"},
      Case{"[sweep]\ndistribution = gaussian\nn = 100\nk = 4\n", "[sweep]: missing key 'quantizer'"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\n", "[sweep]: missing key 'k'"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 1.5\nk = 4\n",
           "key 'sweep.n': '1.5' is not an integer"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\ngranularity = rows\n",
           "key 'sweep.granularity'"},
      Case{"repeats = 0\n" + base, "key 'repeats'"},
      Case{"colour = red\n" + base, "key 'colour': unknown key"},
      Case{"name = a\nname = b\n" + base, "key 'name': given more than once"},
      Case{base + "[plots]\nx = 1\n", "unknown section [plots]"},
      Case{"[sweep]\nquantizer = cosine\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\n",
           "listed twice"},
      Case{"[sweep]\nquantizer = uniform symmetric=1\ndistribution = gaussian\nn = 100\nk = 2\n",
           "no usable cell"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gaussian rows=3\nn = 100\nk = 4\n",
           "not a multiple of rows"},
      Case{"this is not an ini file\n", "not a valid INI config"});
  TempDir dir;
  const fs::path cfg = dir.write("bad.ini", c.body);
  const fs::path out = dir.path / "out";
  const Outcome o = run_cli("run " + cfg.string() + " --quiet --out " + out.string());
  INFO(c.body << "\n--- output:\n" << o.output);
  CHECK(o.status == 2);
  CHECK(o.output.find(c.expect) != std::string::npos);
  CHECK(o.output.find(cfg.string()) != std::string::npos);  // names the file
  CHECK_FALSE(fs::exists(out / "results.csv"));
}

TEST_CASE("sqbench usage errors exit 2, while --help, --version and list exit 0", "[cli]") {
  CHECK(run_cli("").status == 2);
  CHECK(run_cli("frobnicate").status == 2);
  CHECK(run_cli("run").status == 2);
  CHECK(run_cli("run /nonexistent/config.ini").status == 2);
  CHECK(run_cli("run /tmp").status == 2);
  CHECK(run_cli("run --bogus x.ini").status == 2);
  CHECK(run_cli("--help").status == 0);
  const Outcome v = run_cli("--version");
  CHECK(v.status == 0);
  CHECK(v.output.find("sqbench 0.") != std::string::npos);
  const Outcome l = run_cli("list");
  CHECK(l.status == 0);
  CHECK(l.output.find("kmeans") != std::string::npos);
  CHECK(l.output.find("max_iter=300") != std::string::npos);
}

TEST_CASE("an unwritable results folder is an error before any work", "[cli]") {
  TempDir dir;
  const fs::path cfg =
      dir.write("c.ini", "[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\n");
  dir.write("file", "x");
  const Outcome o = run_cli("run " + cfg.string() + " --quiet --out " + (dir.path / "file" / "sub").string());
  CHECK(o.status == 2);
  CHECK(o.output.find("results folder") != std::string::npos);
}

TEST_CASE("docs/running.md's column table is the column schema's (sqbench columns)", "[cli][columns]") {
  const std::string readme = sqbtest::slurp(fs::path(SQB_SOURCE_DIR) / "docs" / "running.md");
  const std::string begin = "<!-- sqbench columns: begin -->\n", end = "<!-- sqbench columns: end -->";
  const auto a = readme.find(begin), b = readme.find(end);
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  INFO("regenerate the docs' generated blocks: scripts/readme_blocks");
  CHECK(readme.substr(a + begin.size(), b - a - begin.size()) == sqb::column_table_markdown());
  const sqbtest::Outcome o = sqbtest::run_cli("columns", false);
  CHECK(o.status == 0);
  CHECK(o.output == sqb::column_table_markdown());
}

TEST_CASE("docs/quantizers.md's sqbench list block is what sqbench list prints", "[cli]") {
  const std::string readme = sqbtest::slurp(fs::path(SQB_SOURCE_DIR) / "docs" / "quantizers.md");
  const std::string marker = "<!-- sqbench list -->\n```\n";
  const auto a = readme.find(marker);
  REQUIRE(a != std::string::npos);
  const auto b = readme.find("```\n", a + marker.size());
  REQUIRE(b != std::string::npos);
  const sqbtest::Outcome o = sqbtest::run_cli("list", false);
  REQUIRE(o.status == 0);
  INFO("regenerate the docs' generated blocks: scripts/readme_blocks");
  CHECK(readme.substr(a + marker.size(), b - a - marker.size()) == o.output);
}

TEST_CASE("docs/configs.md's sqbench list config block is what sqbench list config prints", "[cli]") {
  const std::string doc = sqbtest::slurp(fs::path(SQB_SOURCE_DIR) / "docs" / "configs.md");
  const std::string marker = "<!-- sqbench list config -->\n```\n";
  const auto a = doc.find(marker);
  REQUIRE(a != std::string::npos);
  const auto b = doc.find("```\n", a + marker.size());
  REQUIRE(b != std::string::npos);
  const sqbtest::Outcome o = sqbtest::run_cli("list config", false);
  REQUIRE(o.status == 0);
  INFO("regenerate the docs' generated blocks: scripts/readme_blocks");
  CHECK(doc.substr(a + marker.size(), b - a - marker.size()) == o.output);
}

TEST_CASE("column schema: every name once, unknown names are errors listing the columns", "[columns]") {
  std::set<std::string> names;
  for (const sqb::ColumnInfo& c : sqb::column_schema()) {
    CHECK(names.insert(std::string(c.name)).second);
    CHECK(sqb::column_named(c.name) == c.id);
    CHECK_FALSE(c.meaning.empty());
  }
  CHECK_THROWS_WITH(sqb::column_named("sqnr"),
                    Catch::Contains("unknown result column 'sqnr'") && Catch::Contains("sqnr_db"));
  CHECK(sqb::column_info(sqb::Col::sqnr_db).better == sqb::Better::higher);
  CHECK(sqb::column_info(sqb::Col::mse).better == sqb::Better::lower);
  CHECK(sqb::column_info(sqb::Col::iterations).better == sqb::Better::none);
}
