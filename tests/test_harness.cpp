// The experiment harness as a researcher uses it: determinism, --jobs, resume after SIGINT/SIGKILL, shards
// and merge, tables, plots, context.json, and bad inputs.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "cli_helpers.hpp"
#include "csv.hpp"
#include "sqb/columns.hpp"

using namespace sqbtest;

namespace {

const std::string kTiny = R"(name = tiny
repeats = 2
[sweep]
quantizer = cosine
quantizer = kmeans init=quantile
quantizer = uniform
distribution = gaussian
distribution = laplace rows=4
n = 2000
k = 4, 16
granularity = tensor, channel
seed = 0, 1

[table.mse]
rows = quantizer
cols = k
value = mse
where = distribution=gaussian
where = granularity=tensor

[plot.mse_vs_bits]
x = bits
y = nmse
series = quantizer
logy = 1
where = granularity=tensor
where = distribution=gaussian
reference = panter_dite
reference = shannon
)";

// A sweep slow enough to interrupt: each cell is a few hundred milliseconds of O(N K) k-means.
const std::string kSlow = R"(name = slow
repeats = 1
[sweep]
quantizer = kmeans algo=naive init=uniform max_iter=20 tol=0
distribution = gaussian
n = 100000
k = 64
seed = 0, 1, 2, 3, 4, 5, 6, 7
)";

// The results without the timing columns (which differ between runs).
std::vector<std::vector<std::string>> quality_part(const fs::path& csv) {
  const sqbench::CsvTable t = sqbench::read_csv(csv);
  std::vector<std::vector<std::string>> out;
  std::vector<std::size_t> keep;
  for (std::size_t i = 0; i < t.header.size(); ++i) {
    // Timing columns (the seconds, and the thread count they were taken with) differ run to run.
    const auto c = sqb::find_column(t.header[i]);
    REQUIRE(c);
    if (sqb::column_info(*c).kind != sqb::ColumnKind::timing) keep.push_back(i);
  }
  out.emplace_back();
  for (const std::size_t i : keep)
    out.back().push_back(t.header[i]);
  for (const auto& r : t.rows) {
    out.emplace_back();
    for (const std::size_t i : keep)
      out.back().push_back(r[i]);
  }
  return out;
}

std::size_t count_lines(const fs::path& p) {
  return lines_of(p).size();
}

// Starts sqbench in the background; returns its pid.
pid_t spawn(const std::vector<std::string>& args) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    std::string exe = SQBENCH_EXE;
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execv(SQBENCH_EXE, argv.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

TEST_CASE(
    "same config and seeds give identical results apart from timings, also with --jobs 2 and --threads 3",
    "[harness]") {
  TempDir dir;
  const fs::path cfg = dir.write("tiny.ini", kTiny);
  const Outcome a = run_cli("run " + cfg.string() + " --quiet --out " + (dir.path / "a").string());
  REQUIRE(a.status == 0);
  const Outcome b = run_cli("run " + cfg.string() + " --quiet --jobs 2 --out " + (dir.path / "b").string());
  REQUIRE(b.status == 0);
  CHECK(quality_part(dir.path / "a" / "results.csv") == quality_part(dir.path / "b" / "results.csv"));
  // --threads: each cell's blocks in parallel, the same numbers; the threads column says how many.
  const Outcome c =
      run_cli("run " + cfg.string() + " --quiet --threads 3 --out " + (dir.path / "c").string());
  REQUIRE(c.status == 0);
  CHECK(quality_part(dir.path / "a" / "results.csv") == quality_part(dir.path / "c" / "results.csv"));
  const sqbench::CsvTable tc = sqbench::read_csv(dir.path / "c" / "results.csv");
  CHECK(tc.rows.front()[*tc.column("threads")] == "3");
  CHECK(count_lines(dir.path / "a" / "results.csv") == 1 + 3 * 2 * 2 * 2 * 2);
  CHECK_FALSE(fs::exists(dir.path / "a" / "results.partial.csv"));
}

TEST_CASE("the results folder has the config, context.json, tables and plots", "[harness]") {
  TempDir dir;
  const fs::path cfg = dir.write("tiny.ini", kTiny);
  const fs::path out = dir.path / "out";
  REQUIRE(run_cli("run " + cfg.string() + " --quiet --out " + out.string()).status == 0);
  CHECK(slurp(out / "config.ini") == kTiny);
  const std::string ctx = slurp(out / "context.json");
  for (const char* key :
       {"\"date\"", "\"cpu_model\"", "\"cores\"", "\"caches\"", "\"compiler\"", "\"flags\"", "\"build_type\"",
        "\"version\"", "\"git_sha\"", "\"git_dirty\"", "\"boost\"", "\"armadillo\"", "\"google_benchmark\"",
        "\"hash\"", "\"seed_policy\"", "\"timing\"", "\"complete\": true"}) {
    CHECK(ctx.find(key) != std::string::npos);
  }
  const std::string md = slurp(out / "tables.md");
  CHECK(md.find("| quantizer \\ k | 4 | 16 |") != std::string::npos);
  CHECK(md.find("**") != std::string::npos);  // best per column in bold
  CHECK(md.find("mean of 2 seeds") != std::string::npos);
  CHECK(md.find("Config tiny (hash ") != std::string::npos);
  const std::string tex = slurp(out / "tables.tex");
  CHECK(tex.find("\\toprule") != std::string::npos);
  CHECK(tex.find("\\mathbf{") != std::string::npos);
  for (const char* ext : {".png", ".svg", ".gp", ".dat"}) {
    CHECK(fs::exists(out / "plots" / (std::string("mse_vs_bits") + ext)));
  }
  CHECK(slurp(out / "plots" / "mse_vs_bits.png").substr(1, 3) == "PNG");
  CHECK(slurp(out / "plots" / "mse_vs_bits.gp").find("hash") != std::string::npos);
}

TEST_CASE("a sweep interrupted by SIGINT or SIGKILL resumes to the same results as an uninterrupted run",
          "[harness][resume]") {
  const int sig = GENERATE(SIGINT, SIGKILL);
  TempDir dir;
  const fs::path cfg = dir.write("slow.ini", kSlow);
  REQUIRE(run_cli("run " + cfg.string() + " --quiet --out " + (dir.path / "whole").string()).status == 0);

  const fs::path out = dir.path / "cut";
  const pid_t pid = spawn({"run", cfg.string(), "--quiet", "--out", out.string()});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline &&
         !(fs::exists(out / "results.partial.csv") && count_lines(out / "results.partial.csv") >= 3)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(::kill(pid, sig) == 0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (sig == SIGINT) {
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 130);  // finished the cell in flight, then stopped
  } else {
    CHECK(WIFSIGNALED(status));
  }
  REQUIRE(fs::exists(out / "results.partial.csv"));
  CHECK_FALSE(fs::exists(out / "results.csv"));
  const std::size_t kept = count_lines(out / "results.partial.csv") - 1;
  INFO("cells kept after the signal: " << kept);
  CHECK(kept >= 2);

  // Without --resume the interrupted run is protected.
  const Outcome refused = run_cli("run " + cfg.string() + " --quiet --out " + out.string());
  CHECK(refused.status == 2);
  CHECK(refused.output.find("--resume") != std::string::npos);

  const Outcome resumed = run_cli("run " + cfg.string() + " --resume --out " + out.string());
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  CHECK(resumed.output.find("resuming: " + std::to_string(kept) + " of 8 cells already done") !=
        std::string::npos);
  CHECK(quality_part(out / "results.csv") == quality_part(dir.path / "whole" / "results.csv"));
  CHECK_FALSE(fs::exists(out / "results.partial.csv"));
}

TEST_CASE("resume drops a torn last line left by a kill mid-write", "[harness][resume]") {
  TempDir dir;
  const fs::path cfg = dir.write("tiny.ini", kTiny);
  const fs::path out = dir.path / "out";
  REQUIRE(run_cli("run " + cfg.string() + " --quiet --out " + out.string()).status == 0);
  const auto lines = lines_of(out / "results.csv");
  // Fake an interrupted run: the header, two complete rows and half of a third.
  std::string partial =
      lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n" + lines[3].substr(0, lines[3].size() / 2);
  fs::remove(out / "results.csv");
  std::ofstream(out / "results.partial.csv") << partial;
  const Outcome o = run_cli("run " + cfg.string() + " --resume --out " + out.string());
  INFO(o.output);
  REQUIRE(o.status == 0);
  CHECK(o.output.find("dropped the last, incomplete line") != std::string::npos);
  CHECK(o.output.find("resuming: 2 of 48 cells") != std::string::npos);
  CHECK(lines_of(out / "results.csv").size() == lines.size());
}

TEST_CASE("resume with a different config is refused and changes nothing", "[harness][resume]") {
  TempDir dir;
  const fs::path cfg = dir.write("tiny.ini", kTiny);
  const fs::path out = dir.path / "out";
  REQUIRE(run_cli("run " + cfg.string() + " --quiet --out " + out.string()).status == 0);
  const std::string before = slurp(out / "results.csv");
  std::string other = kTiny;
  other.replace(other.find("n = 2000"), 8, "n = 3000");
  const fs::path cfg2 = dir.write("other.ini", other);
  const Outcome o = run_cli("run " + cfg2.string() + " --quiet --resume --out " + out.string());
  CHECK(o.status == 2);
  CHECK(o.output.find("different config") != std::string::npos);
  CHECK(slurp(out / "results.csv") == before);
}

TEST_CASE("fresh runs discard an interrupted run, and --resume with --fresh is refused",
          "[harness][resume]") {
  TempDir dir;
  const fs::path cfg = dir.write("tiny.ini", kTiny);
  const fs::path out = dir.path / "out";
  fs::create_directories(out);
  std::ofstream(out / "results.partial.csv") << "junk\n";
  CHECK(run_cli("run " + cfg.string() + " --quiet --resume --fresh --out " + out.string()).status == 2);
  CHECK(run_cli("run " + cfg.string() + " --quiet --fresh --out " + out.string()).status == 0);
  CHECK(count_lines(out / "results.csv") == 49);
}

TEST_CASE("shards 0/3, 1/3 and 2/3 merged equal the unsharded run", "[harness][shard]") {
  TempDir dir;
  const fs::path cfg = dir.write("tiny.ini", kTiny);
  REQUIRE(run_cli("run " + cfg.string() + " --quiet --out " + (dir.path / "whole").string()).status == 0);
  std::string shard_dirs;
  for (int i = 0; i < 3; ++i) {
    const fs::path d = dir.path / ("s" + std::to_string(i));
    const Outcome o =
        run_cli("run " + cfg.string() + " --quiet --shard " + std::to_string(i) + "/3 --out " + d.string());
    REQUIRE(o.status == 0);
    CHECK_FALSE(fs::exists(d / "tables.md"));  // a shard alone renders nothing
    shard_dirs += " " + d.string();
  }
  const Outcome m = run_cli("merge" + shard_dirs + " --quiet --out " + (dir.path / "merged").string());
  INFO(m.output);
  REQUIRE(m.status == 0);
  CHECK(quality_part(dir.path / "merged" / "results.csv") ==
        quality_part(dir.path / "whole" / "results.csv"));
  CHECK(fs::exists(dir.path / "merged" / "tables.md"));
  CHECK(fs::exists(dir.path / "merged" / "plots" / "mse_vs_bits.png"));

  // A missing or repeated shard, or a shard of another config, is refused.
  CHECK(run_cli("merge " + (dir.path / "s0").string() + " " + (dir.path / "s1").string() + " --quiet --out " +
                (dir.path / "bad").string())
            .output.find("shard 2 of 3 is missing") != std::string::npos);
  CHECK(run_cli("merge" + shard_dirs + " " + (dir.path / "s1").string() + " --quiet --out " +
                (dir.path / "bad").string())
            .status == 2);
  std::string other = kTiny;
  other.replace(other.find("repeats = 2"), 11, "repeats = 1");
  const fs::path cfg2 = dir.write("other.ini", other);
  REQUIRE(
      run_cli("run " + cfg2.string() + " --quiet --shard 2/3 --out " + (dir.path / "x2").string()).status ==
      0);
  const Outcome mixed =
      run_cli("merge " + (dir.path / "s0").string() + " " + (dir.path / "s1").string() + " " +
              (dir.path / "x2").string() + " --quiet --out " + (dir.path / "bad").string());
  CHECK(mixed.status == 2);
  CHECK(mixed.output.find("different config") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path / "bad" / "results.csv"));
}

TEST_CASE("SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT select the shard", "[harness][shard]") {
  TempDir dir;
  const fs::path cfg = dir.write("tiny.ini", kTiny);
  const std::string env = "cd " + dir.path.string() +
                          " && SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=2 ";
  REQUIRE(std::system((env + SQBENCH_EXE + " run tiny.ini --quiet > /dev/null 2>&1").c_str()) == 0);
  CHECK(fs::exists(dir.path / "results" / "tiny" / "shard-1-of-2" / "results.csv"));
  CHECK(count_lines(dir.path / "results" / "tiny" / "shard-1-of-2" / "results.csv") == 1 + 24);
}

TEST_CASE("overlapping sweeps run a shared cell once, and where accepts alternatives", "[harness]") {
  TempDir dir;
  const fs::path cfg = dir.write("o.ini", R"([sweep.a]
quantizer = cosine
quantizer = uniform
distribution = gaussian
n = 1000, 2000
k = 4
[sweep.b]
quantizer = cosine
distribution = gaussian
n = 2000
k = 4, 8
[table.t]
rows = quantizer
cols = n
value = mse
where = k=4
where = quantizer=cosine|uniform
)");
  const fs::path out = dir.path / "out";
  const Outcome o = run_cli("run " + cfg.string() + " --quiet --out " + out.string());
  INFO(o.output);
  REQUIRE(o.status == 0);
  CHECK(count_lines(out / "results.csv") == 1 + 4 + 1);  // a: 4 cells; b: 2 cells, one of them shared with a
  const std::string md = slurp(out / "tables.md");
  CHECK(md.find("| cosine |") != std::string::npos);
  CHECK(md.find("| uniform |") != std::string::npos);
}

TEST_CASE("the Slurm template runs a shard and the shards merge", "[harness][shard]") {
  TempDir dir;
  const fs::path cfg = dir.write("tiny.ini", kTiny);
  const std::string script = std::string(SQB_SOURCE_DIR) + "/scripts/slurm/sweep.sbatch";
  for (int task = 1; task <= 2; ++task) {  // an array declared as --array=1-2
    const std::string cmd =
        "SLURM_SUBMIT_DIR=" + dir.path.string() + " SLURM_ARRAY_TASK_ID=" + std::to_string(task) +
        " SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=2 SLURM_CPUS_PER_TASK=2 SQBENCH=" + SQBENCH_EXE +
        " bash " + script + " " + cfg.string() + " > /dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  const fs::path shards = dir.path / "results" / "tiny";
  const Outcome m =
      run_cli("merge " + (shards / "shard-0-of-2").string() + " " + (shards / "shard-1-of-2").string() +
              " --quiet --out " + (dir.path / "merged").string());
  INFO(m.output);
  REQUIRE(m.status == 0);
  CHECK(count_lines(dir.path / "merged" / "results.csv") == 49);
}

TEST_CASE("sqbench table renders markdown, LaTeX and CSV with filters", "[harness][table]") {
  TempDir dir;
  const fs::path cfg = dir.write("tiny.ini", kTiny);
  const fs::path out = dir.path / "out";
  REQUIRE(run_cli("run " + cfg.string() + " --quiet --out " + out.string()).status == 0);
  const std::string csv = (out / "results.csv").string();
  const Outcome md = run_cli("table " + csv +
                             " --rows quantizer --cols k --value sqnr_db --where distribution=gaussian "
                             "--where granularity=channel --where seed=1");
  INFO(md.output);
  REQUIRE(md.status == 0);
  CHECK(md.output.find("higher is better") != std::string::npos);
  CHECK(md.output.find("Config tiny") != std::string::npos);
  const Outcome tex = run_cli("table " + csv +
                              " --rows quantizer --cols k --value mse --where distribution=gaussian "
                              "--where granularity=tensor --format latex");
  CHECK(tex.status == 0);
  CHECK(tex.output.find("\\bottomrule") != std::string::npos);
  const Outcome c =
      run_cli("table " + csv + " --rows quantizer --cols k --value mse --agg mean --format csv");
  CHECK(c.status == 0);
  CHECK(c.output.find("quantizer,4,16\n") != std::string::npos);

  // Rows that differ in more than the seed need a filter or an explicit aggregate.
  const Outcome mixed = run_cli("table " + csv + " --rows quantizer --cols k --value mse");
  CHECK(mixed.status == 2);
  CHECK(mixed.output.find("differ in distribution") != std::string::npos);
  const Outcome missing = run_cli("table " + csv + " --rows quantizer --cols k --value msee");
  CHECK(missing.status == 2);
  CHECK(missing.output.find("no column 'msee'") != std::string::npos);
  CHECK(run_cli("table " + csv + " --rows quantizer --cols k --value mse --where colour=red").status == 2);
}

TEST_CASE("harness config errors: typo'd sections and keys, missing columns, bad table and plot settings",
          "[harness][badconfig]") {
  struct Case {
    std::string body, expect;
  };
  const std::string sweep = "[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\n";
  const Case c = GENERATE_COPY(
      Case{sweep + "[tabel.x]\nrows = quantizer\n", "unknown section [tabel.x]"},
      Case{sweep + "[table.x]\nrows = quantizer\ncols = k\nvalue = mse\ncolour = red\n",
           "key 'table.x.colour': unknown key"},
      Case{sweep + "[table.x]\nrows = quantizer\ncols = k\nvalue = msee\n",
           "[table.x] key 'value': no result column 'msee'"},
      Case{sweep + "[table.x]\nrows = quantizer\ncols = k\nvalue = mse\nwhere = colour=red\n",
           "no result column 'colour'"},
      Case{sweep + "[table.x]\nrows = quantizer\ncols = k\n", "missing key 'value'"},
      Case{sweep + "[plot.p]\nx = bits\ny = mse\nreference = moon\n", "unknown reference curve 'moon'"},
      Case{sweep + "[plot.p]\nx = bits\ny = mse\nlogy = maybe\n", "key 'plot.p.logy'"},
      Case{sweep + "[plot]\nx = bits\n", "name it [plot.<id>]"},
      Case{"[sweep]\nquantizer = cosine\ndistribution = gaussian\nn =\nk = 4\n",
           "key 'sweep.n': has no value"},
      Case{"name = x\n", "no [sweep] section"});
  TempDir dir;
  const fs::path cfg = dir.write("bad.ini", c.body);
  const Outcome o = run_cli("run " + cfg.string() + " --quiet --out " + (dir.path / "out").string());
  INFO(c.body << "\n--- output:\n" << o.output);
  CHECK(o.status == 2);
  CHECK(o.output.find(c.expect) != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path / "out" / "results.csv"));
  CHECK_FALSE(fs::exists(dir.path / "out" / "results.partial.csv"));
}

TEST_CASE("tables with several value columns and with combined column keys", "[harness][table]") {
  TempDir dir;
  const fs::path cfg = dir.write("tiny.ini", kTiny);
  const fs::path out = dir.path / "out";
  REQUIRE(run_cli("run " + cfg.string() + " --quiet --out " + out.string()).status == 0);
  const std::string csv = (out / "results.csv").string();
  const Outcome multi = run_cli("table " + csv +
                                " --rows quantizer --value mse,sqnr_db --where k=16 "
                                "--where distribution=gaussian --where granularity=tensor");
  INFO(multi.output);
  REQUIRE(multi.status == 0);
  CHECK(multi.output.find("| quantizer | mse | sqnr\\_db |") != std::string::npos);
  const Outcome combo = run_cli("table " + csv +
                                " --rows quantizer --cols distribution,k --value mse "
                                "--where granularity=tensor");
  INFO(combo.output);
  REQUIRE(combo.status == 0);
  CHECK(combo.output.find("| gaussian / 4 | gaussian / 16 | laplace rows=4 / 4 | laplace rows=4 / 16 |") !=
        std::string::npos);
  CHECK(run_cli("table " + csv + " --rows quantizer --cols k --value mse,sqnr_db").status == 2);
}
