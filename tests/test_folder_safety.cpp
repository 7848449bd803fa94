// What a results folder guarantees: one run at a time (a lock), inputs that cannot change under --resume or
// merge (fingerprints), resumed rows that are checked, outputs that are complete or absent, and views that
// never mix two runs.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "cli_helpers.hpp"
#include "csv.hpp"
#include "inputs.hpp"
#include "lock.hpp"
#include "safetensors_helpers.hpp"
#include "sqb/safetensors.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

using namespace sqbtest;

namespace {

// A sweep slow enough to overlap with another command: each cell is a few hundred milliseconds of k-means.
const std::string kSlow = R"(name = slow
repeats = 1
[sweep]
quantizer = kmeans algo=naive init=uniform max_iter=20 tol=0
distribution = gaussian
n = 100000
k = 64
seed = 0, 1, 2, 3, 4, 5, 6, 7
)";

const std::string kQuick = R"(name = quick
repeats = 1
[sweep]
quantizer = kmeans init=quantile
quantizer = uniform
distribution = gaussian
n = 2000
k = 4, 16
seed = 0
)";

// Starts sqbench in the background (its output discarded); returns its pid.
pid_t spawn(const std::vector<std::string>& args) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<std::string> copy = args;
    std::string exe = SQBENCH_EXE;
    std::vector<char*> argv{exe.data()};
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

// Waits until `pred` holds (up to two minutes).
template <class Pred>
bool wait_for(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Every file under `dir` (except the lock file) with its bytes: the folder's state.
std::map<std::string, std::string> folder_state(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().filename() == sqbench::FolderLock::kFileName) continue;
    out[fs::relative(e.path(), dir).string()] = slurp(e.path());
  }
  return out;
}

}  // namespace

TEST_CASE("a results folder is one run's: a second run, render or merge into it exits 2 naming the holder",
          "[safety][lock]") {
  TempDir dir;
  const fs::path cfg = dir.write("slow.ini", kSlow);
  const fs::path out = dir.path / "out";
  const pid_t first = spawn({"run", cfg.string(), "--quiet", "--out", out.string()});
  const fs::path lock = out / sqbench::FolderLock::kFileName;
  REQUIRE(wait_for([&] { return fs::exists(lock) && slurp(lock) == std::to_string(first) + "\n"; }));

  for (const std::string& args : {"run " + cfg.string() + " --quiet --out " + out.string(),
                                  "run " + cfg.string() + " --quiet --resume --out " + out.string(),
                                  "run " + cfg.string() + " --quiet --fresh --out " + out.string(),
                                  "render " + out.string(), "merge " + out.string()}) {
    const Outcome o = run_cli(args);
    INFO(args << "\n" << o.output);
    CHECK(o.status == 2);
    CHECK(contains(o.output, "results folder " + out.string() + "/ is in use by another sqbench (pid " +
                                 std::to_string(first) + ")"));
    CHECK(o.seconds < 5);  // at once: it does not wait for the holder
  }
  // The holder is killed: the kernel drops its lock, and --resume takes the folder over.
  REQUIRE(::kill(first, SIGKILL) == 0);
  int status = 0;
  ::waitpid(first, &status, 0);
  const Outcome resumed = run_cli("run " + cfg.string() + " --quiet --resume --out " + out.string());
  INFO(resumed.output);
  CHECK(resumed.status == 0);
  CHECK(lines_of(out / "results.csv").size() == 9);
}

TEST_CASE("the shards of one array run at once, each in its own folder", "[safety][lock][shard]") {
  TempDir dir;
  dir.write("slow.ini", kSlow);
  const Outcome o =
      shell("cd " + dir.path.string() + " && (" + SQBENCH_EXE + " run slow.ini --quiet --shard 0/2 & " +
            SQBENCH_EXE + " run slow.ini --quiet --shard 1/2 & wait) 2>&1 && " + SQBENCH_EXE +
            " merge results/slow/shard-0-of-2 results/slow/shard-1-of-2 --quiet 2>&1");
  INFO(o.output);
  CHECK(o.status == 0);
  CHECK(lines_of(dir.path / "results/slow/results.csv").size() == 9);
}

namespace {

// A safetensors checkpoint with one F32 tensor "w" (200 x 500), every value multiplied by `scale`.
std::string checkpoint(float scale) {
  std::vector<float> v(200 * 500);
  std::uint32_t state = 1;
  for (float& x : v) {
    state = state * 1664525u + 1013904223u;
    x = scale * (static_cast<float>(state >> 8) / 16777216.0f - 0.5f);
  }
  return st_file({{"w", "F32", {200, 500}, f32_bytes(v)}});
}

// Cells slow enough to interrupt, over the checkpoint above.
const std::string kSlowFile = R"(name = slowfile
repeats = 1
[sweep]
quantizer = kmeans algo=naive init=uniform max_iter=20 tol=0
distribution = safetensors path=w.safetensors tensor=w
k = 64
seed = 0, 1, 2, 3, 4, 5, 6, 7
)";

}  // namespace

TEST_CASE("file_hash is XXH3-64 of the whole file, read in blocks", "[safety][inputs]") {
  TempDir dir;
  // The published value for no bytes.
  CHECK(sqbench::file_hash(dir.write("empty", "")) == "2d06800538d394c2");
  // Across the 4 MiB read block: the same as one XXH3_64bits call over the bytes in memory.
  for (const std::size_t n : {std::size_t{1}, std::size_t{240}, std::size_t{4} << 20,
                              (std::size_t{4} << 20) + 7, (std::size_t{9} << 20) + 3}) {
    std::string bytes(n, '\0');
    std::uint64_t s = n;
    for (char& c : bytes) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      c = static_cast<char>(s >> 56);
    }
    char want[17];
    std::snprintf(want, sizeof want, "%016llx",
                  static_cast<unsigned long long>(XXH3_64bits(bytes.data(), n)));
    INFO("bytes: " << n);
    CHECK(sqbench::file_hash(dir.write("f", bytes)) == want);
    bytes[n / 2] ^= 1;
    CHECK(sqbench::file_hash(dir.write("f", bytes)) != want);
  }
}

TEST_CASE("resume refuses when an input file changed since the results were computed", "[safety][inputs]") {
  TempDir dir;
  const fs::path file = dir.write("w.safetensors", checkpoint(1.0f));
  const fs::path cfg = dir.write("slow.ini", kSlowFile);
  const fs::path out = dir.path / "out";

  SECTION("an interrupted run (results.partial.csv)") {
    const pid_t pid = spawn({"run", cfg.string(), "--quiet", "--out", out.string()});
    REQUIRE(wait_for([&] {
      return fs::exists(out / "results.partial.csv") && lines_of(out / "results.partial.csv").size() >= 3;
    }));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    const std::string partial = slurp(out / "results.partial.csv");
    dir.write("w.safetensors", checkpoint(100.0f));  // same size, other values
    const Outcome o = run_cli("run " + cfg.string() + " --quiet --resume --out " + out.string());
    INFO(o.output);
    CHECK(o.status == 2);
    CHECK(contains(o.output, "the input " + fs::canonical(file).string() + " changed since the results"));
    CHECK(slurp(out / "results.partial.csv") == partial);
    CHECK_FALSE(fs::exists(out / "results.csv"));
    // The same bytes again (a new mtime): the run continues.
    dir.write("w.safetensors", checkpoint(1.0f));
    const Outcome again = run_cli("run " + cfg.string() + " --quiet --resume --out " + out.string());
    INFO(again.output);
    CHECK(again.status == 0);
    CHECK(lines_of(out / "results.csv").size() == 9);
    const auto recorded = sqbench::read_inputs(out / "context.json");
    REQUIRE(recorded);
    CHECK(std::any_of(recorded->begin(), recorded->end(), [&](const sqbench::InputFingerprint& f) {
      return f.path == fs::canonical(file).string() && f.size == fs::file_size(file);
    }));
  }
  SECTION("a finished run (results.csv and context.json)") {
    REQUIRE(run_cli("run " + cfg.string() + " --quiet --out " + out.string()).status == 0);
    const std::string before = slurp(out / "results.csv");
    dir.write("w.safetensors", checkpoint(100.0f));
    const Outcome o = run_cli("run " + cfg.string() + " --quiet --resume --out " + out.string());
    INFO(o.output);
    CHECK(o.status == 2);
    CHECK(contains(o.output, "the input " + fs::canonical(file).string() + " changed since the results"));
    CHECK(slurp(out / "results.csv") == before);
  }
  SECTION("merge of shards that read different bytes") {
    const std::string base = "cd " + dir.path.string() + " && " + SQBENCH_EXE + " ";
    REQUIRE(shell(base + "run slow.ini --quiet --shard 0/2").status == 0);
    dir.write("w.safetensors", checkpoint(100.0f));
    REQUIRE(shell(base + "run slow.ini --quiet --shard 1/2").status == 0);
    const Outcome o = shell(base + "merge results/slowfile/shard-0-of-2 results/slowfile/shard-1-of-2 2>&1");
    INFO(o.output);
    CHECK(o.status == 2);
    CHECK(contains(o.output, "the input " + fs::canonical(file).string() + " changed"));
    CHECK_FALSE(fs::exists(dir.path / "results/slowfile/results.csv"));
  }
}

TEST_CASE("resume checks results.partial.csv row by row: a bad row is dropped, warned about and recomputed",
          "[safety][resume]") {
  TempDir dir;
  const fs::path cfg = dir.write("quick.ini", kQuick);
  const fs::path out = dir.path / "out";
  REQUIRE(run_cli("run " + cfg.string() + " --quiet --out " + out.string()).status == 0);
  const sqbench::CsvTable whole = sqbench::read_csv(out / "results.csv");
  REQUIRE(whole.rows.size() == 4);
  const std::size_t mse = *whole.column("mse");
  // Row 1: a number that does not parse; row 2: a field missing; row 3: a key no cell has; row 4 intact.
  std::vector<std::vector<std::string>> rows = whole.rows;
  rows[0][mse] = "abc";
  rows[1].erase(rows[1].begin() + static_cast<std::ptrdiff_t>(mse));
  std::vector<std::string> stranger = rows[2];
  stranger[*whole.column("k")] = "8";
  std::string text = sqbench::csv_line(whole.header);
  for (const auto& r : {rows[0], rows[1], stranger, rows[3]})
    text += sqbench::csv_line(r);
  fs::remove(out / "results.csv");
  std::ofstream(out / "results.partial.csv") << text;

  const Outcome o = run_cli("run " + cfg.string() + " --quiet --resume --out " + out.string());
  INFO(o.output);
  REQUIRE(o.status == 0);
  const std::string p = (out / "results.partial.csv").string();
  CHECK(contains(o.output, p + ":2: its mse field 'abc' is not a number; the row is dropped and its cell "
                               "computed again"));
  CHECK(contains(o.output, p + ":3: " + std::to_string(whole.header.size() - 1) + " fields, the header has " +
                               std::to_string(whole.header.size())));
  CHECK(contains(o.output, p + ":4: its key (quantizer="));
  CHECK(contains(o.output,
                 "k=8 | bits=2 | granularity=tensor | seed=0 | source=gaussian) is no cell of this config"));
  const sqbench::CsvTable resumed = sqbench::read_csv(out / "results.csv");
  REQUIRE(resumed.rows.size() == 4);
  CHECK_FALSE(contains(slurp(out / "results.csv"), "abc"));
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(resumed.rows[i][mse] == whole.rows[i][mse]);
}

namespace {

// quick with a table and a plot; `extra_where` is added to both.
std::string viewed(const std::string& name, const std::string& extra_where) {
  return "name = " + name + R"(
repeats = 1
[sweep]
quantizer = kmeans init=quantile
quantizer = uniform
distribution = gaussian
n = 2000
k = 4, 16
seed = 0

[table.mse]
rows = quantizer
cols = k
value = mse
)" + extra_where +
         R"(
[plot.nmse]
x = bits
y = nmse
series = quantizer
)" + extra_where +
         "\n";
}

}  // namespace

TEST_CASE(
    "a plot that cannot be written completely (file size limit) exits non-zero and leaves the previous one",
    "[safety][outputs]") {
  TempDir dir;
  const fs::path out = dir.path / "out";
  REQUIRE(run_cli("run " + dir.write("a.ini", viewed("a", "")).string() + " --quiet --out " + out.string())
              .status == 0);
  REQUIRE(fs::file_size(out / "plots/nmse.png") > 20000);  // so that a 16 KiB limit cuts it
  const auto before = folder_state(out);
  // Another title: every output would change. `ulimit -f 16`: no file may grow past 16 KiB.
  std::string b = viewed("a", "");
  b.replace(b.find("series = quantizer"), 18, "series = quantizer\ntitle = another");
  const fs::path cfg = dir.write("b.ini", b);
  const Outcome o = shell("/bin/bash -c 'ulimit -f 16; exec " + std::string(SQBENCH_EXE) + " run " +
                          cfg.string() + " --quiet --fresh --out " + out.string() + "' 2>&1");
  INFO(o.output);
  CHECK(o.status != 0);
  CHECK(contains(o.output, "plot 'nmse' in " + (out / "plots").string() +
                               ": nmse.png came out incomplete (16384 bytes)"));
  auto after = folder_state(out);
  // The finished cells are kept for --resume; every other file is as it was, and no staging file is left.
  after.erase("results.partial.csv");
  after.erase("results.partial.inputs.json");
  CHECK(after == before);
}

TEST_CASE(
    "a fresh run: one whose views fail leaves the folder's results and views, a successful one removes the "
    "old views",
    "[safety][outputs]") {
  TempDir dir;
  const fs::path out = dir.path / "out";
  REQUIRE(run_cli("run " + dir.write("a.ini", viewed("a", "")).string() + " --quiet --out " + out.string())
              .status == 0);
  const auto before = folder_state(out);
  // A filter on a result column cannot be checked before the cells run: it matches nothing afterwards.
  const Outcome o = run_cli("run " + dir.write("b.ini", viewed("b", "where = mse=5")).string() +
                            " --quiet --fresh --out " + out.string());
  INFO(o.output);
  CHECK(o.status == 2);
  CHECK(contains(o.output, "no result rows match the where filters"));
  CHECK(contains(o.output, "still holds its earlier results, tables and plots"));
  auto after = folder_state(out);
  after.erase("results.partial.csv");
  after.erase("results.partial.inputs.json");
  CHECK(after == before);
  // A config without views replaces the results: A's table and plot go with A's results.
  std::string c = viewed("c", "");
  c = c.substr(0, c.find("[table.mse]"));
  const Outcome ok =
      run_cli("run " + dir.write("c.ini", c).string() + " --quiet --fresh --out " + out.string());
  INFO(ok.output);
  CHECK(ok.status == 0);
  for (const char* gone : {"tables.md", "tables.tex", "plots/nmse.png", "plots/nmse.svg", "plots/nmse.gp",
                           "plots/nmse.dat", "results.partial.csv", "results.partial.inputs.json"})
    CHECK_FALSE(fs::exists(out / gone));
}

TEST_CASE("a memory-mapped checkpoint truncated after it was opened gives an error naming it, not SIGBUS",
          "[safety][safetensors]") {
  TempDir dir;
  // Tensors large enough to span many pages, so the lost ones are beyond the new end of the file.
  std::vector<float> a(1 << 16, 1.5f), b(1 << 16, -2.0f);
  const fs::path file =
      dir.write("m.safetensors",
                st_file({{"a", "F32", {256, 256}, f32_bytes(a)}, {"b", "F32", {256, 256}, f32_bytes(b)}}));
  const sqb::safetensors::File f(file);
  CHECK(f.read("b").values == b);
  // Cut after "a": b's pages are gone.
  fs::resize_file(file, f.data_offset() + 4 * a.size());
  CHECK_THROWS_WITH(f.read("b"), Catch::StartsWith(file.string() + ": tensor \"b\": the file is now ") &&
                                     Catch::Contains("truncated or rewritten in place while being read"));
  CHECK_THROWS_WITH(f.raw("b"), Catch::Contains("truncated"));
  // A tensor whose bytes are all still in the file reads as before.
  CHECK(f.read("a").values == a);
}

TEST_CASE("bar plots: the axis starts at 0, the first turned label fits, the legend has its own title",
          "[safety][plot]") {
  TempDir dir;
  const fs::path cfg = dir.write("bars.ini", R"(name = bars
repeats = 1
[sweep]
quantizer = kmeans init=quantile
quantizer = uniform
distribution = gaussian label=model.layers.0.nv1.f32.weight
distribution = laplace label=model.layers.0.mlp.down_proj.weight
distribution = laplace scale=2 label=model.layers.1.self_attn.q_proj.weight
distribution = uniform label=model.embed_tokens.weight
n = 5000
k = 16
seed = 0
[plot.bars]
kind = bar
x = distribution
y = sqnr_db
series = quantizer
)");
  const fs::path out = dir.path / "out";
  const Outcome o = run_cli("run " + cfg.string() + " --quiet --out " + out.string());
  INFO(o.output);
  REQUIRE(o.status == 0);
  const std::string gp = slurp(out / "plots/bars.gp");
  INFO(gp);
  // Every SQNR here is between 8 and 25 dB: gnuplot alone would start the axis near the shortest bar.
  CHECK(contains(gp, "set yrange [0:*]\n"));
  CHECK(contains(gp, "set xtics nomirror noenhanced rotate by 30 right\n"));
  // "model.layers.0.nv1.f32.weight" (29 characters) hangs 0.87 * 29 characters left of the first tic.
  CHECK(contains(gp, "set lmargin 27\n"));
  CHECK(contains(gp, "unset xlabel\n"));
  CHECK(contains(gp, "set key box lc rgb '#999999' title \"quantizer\"\n"));
  CHECK(fs::file_size(out / "plots/bars.png") > 10000);
}
