// Task sweeps through `sqbench run`: every mode on real Fashion-MNIST (a few thousand images, one epoch), far
// above chance; the float models trained once and reused by a rerun and --resume; the same config twice (and
// with --jobs 2, and as merged shards) giving identical non-timing columns. And the table and plot options a
// task study needs, on hand-made results: spread = std, dash, hline.

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_helpers.hpp"
#include "config.hpp"
#include "csv.hpp"
#include "plot.hpp"
#include "requirements.hpp"
#include "sqb/error.hpp"
#include "sqb/idx.hpp"
#include "sqb/task.hpp"
#include "table.hpp"

using namespace sqbtest;
using Catch::Matchers::Contains;

namespace {

// data=mini: the first 2500 training and 1000 test images of Fashion-MNIST (written by mini_dataset), so
// that each run reads 3 MB instead of inflating 30.
const std::string kTaskTiny = R"(name = tasktiny
[sweep]
task = fashion_mnist data=mini epochs=1 train_n=2000 qat_epochs=1
mode = fp32, qat, ptq
quantizer = uniform symmetric=1
quantizer = cosine
bits = 4
granularity = channel
seed = 0, 1

# Trained levels, the clipped STE and Fisher weights at once, on the same float model as seed 0 above.
[sweep.levels]
task = fashion_mnist data=mini epochs=1 train_n=2000 qat_epochs=1 redesign=0 qat=levels ste=clipped weights=fisher
mode = qat
quantizer = kmeans
k = 4
granularity = tensor

[table.acc]
rows = quantizer, mode
cols = bits
value = accuracy
where = mode=ptq|qat
where = task=fashion_mnist data=mini epochs=1 train_n=2000 qat_epochs=1
spread = std

[plot.acc]
x = bits
y = accuracy
series = quantizer
dash = mode
where = mode=qat|ptq
hline = mode=fp32
)";

// results.csv without the timing columns (which differ between runs).
std::vector<std::vector<std::string>> quality_part(const fs::path& csv) {
  const sqbench::CsvTable t = sqbench::read_csv(csv);
  std::vector<std::size_t> keep;
  for (std::size_t i = 0; i < t.header.size(); ++i) {
    const std::string& h = t.header[i];
    if (h.size() < 2 || h.substr(h.size() - 2) != "_s") {
      if (h.find("_s_") == std::string::npos) keep.push_back(i);
    }
  }
  std::vector<std::vector<std::string>> out(1);
  for (const std::size_t i : keep)
    out[0].push_back(t.header[i]);
  for (const auto& r : t.rows) {
    out.emplace_back();
    for (const std::size_t i : keep)
      out.back().push_back(r[i]);
  }
  return out;
}

// The integer after "key": in a context.json.
long json_count(const fs::path& context, const std::string& key) {
  const std::string text = slurp(context);
  const auto at = text.find("\"" + key + "\": ");
  if (at == std::string::npos) return -1;
  return std::stol(text.substr(at + key.size() + 4));
}

// model.txt of every float model under `out`/models, with its modification time.
std::vector<std::pair<fs::path, long>> saved_models(const fs::path& out) {
  std::vector<std::pair<fs::path, long>> found;
  for (const auto& e : fs::directory_iterator(out / "models")) {
    if (!e.is_directory()) continue;
    struct stat st {};
    ::stat((e.path() / "model.txt").c_str(), &st);
    found.emplace_back(e.path(), st.st_mtim.tv_sec * 1000000000L + st.st_mtim.tv_nsec);
  }
  std::sort(found.begin(), found.end());
  return found;
}

// The first `n` items of an installed IDX file, written uncompressed to `to` (the header's count changed).
void idx_head(const std::string& name, std::size_t n, const fs::path& to) {
  const sqb::idx::Array a = sqb::idx::read(fs::path(sqb::task::kFashionMnistDir) / (name + ".gz"));
  std::string out = {0, 0, 8, static_cast<char>(a.dims.size())};
  std::size_t item = 1;
  for (std::size_t d = 0; d < a.dims.size(); ++d) {
    const std::size_t v = d == 0 ? n : a.dims[d];
    if (d > 0) item *= v;
    for (const int shift : {24, 16, 8, 0})
      out += static_cast<char>((v >> shift) & 0xFF);
  }
  out.append(reinterpret_cast<const char*>(a.data.data()), n * item);
  std::ofstream(to / name, std::ios::binary) << out;
}

void mini_dataset(const fs::path& dir) {
  fs::create_directory(dir);
  idx_head("train-images-idx3-ubyte", 2500, dir);
  idx_head("train-labels-idx1-ubyte", 2500, dir);
  idx_head("t10k-images-idx3-ubyte", 1000, dir);
  idx_head("t10k-labels-idx1-ubyte", 1000, dir);
}

}  // namespace

TEST_CASE("a task sweep runs every mode far above chance, trains each float model once, and is deterministic",
          "[task-sweep][cli]") {
  sqbtest::require_fashion_mnist();
  TempDir dir;
  mini_dataset(dir.path / "mini");
  const fs::path config = dir.write("t.ini", kTaskTiny);
  const fs::path out = dir.path / "out";
  Outcome o = run_cli("run " + config.string() + " --out " + out.string() + " --jobs 2");
  INFO(o.output);
  REQUIRE(o.status == 0);

  const sqbench::CsvTable t = sqbench::read_csv(out / "results.csv");
  // The keys of a task config: no distribution and n; task and mode.
  const std::vector<std::string> keys(t.header.begin(), t.header.begin() + 7);
  CHECK(keys == std::vector<std::string>{"quantizer", "task", "mode", "k", "bits", "granularity", "seed"});
  CHECK_FALSE(t.column("distribution"));
  CHECK(t.column("train_s"));
  // 2 seeds x (fp32, fp32_ft, 2 quantizers x qat, ptq) + the levels cell.
  REQUIRE(t.rows.size() == 13);
  const auto at = [&](std::size_t r, const char* c) { return t.rows[r][*t.column(c)]; };
  std::size_t fp32 = 0, fp32_ft = 0, ptq = 0, qat = 0;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    INFO("row " << r << ": " << at(r, "quantizer") << " | " << at(r, "mode"));
    const double acc = std::stod(at(r, "accuracy"));
    CHECK(acc > 50);  // chance is 10%; one epoch on 2000 images reaches about 70%
    CHECK(acc <= 100);
    CHECK(std::stod(at(r, "test_loss")) > 0);
    const std::string mode = at(r, "mode");
    if (mode == "fp32" || mode == "fp32_ft") {
      (mode == "fp32" ? fp32 : fp32_ft)++;
      CHECK(at(r, "quantizer") == "none");
      CHECK(at(r, "k").empty());
      CHECK(at(r, "bits") == "32");
      CHECK(at(r, "storage_bits") == "32");
      CHECK(at(r, "mse").empty());
    } else {
      (mode == "ptq" ? ptq : qat)++;
      CHECK(std::stod(at(r, "mse")) > 0);
      CHECK(std::stod(at(r, "storage_bits")) > std::stod(at(r, "bits")));  // plus the side values
      const std::string layers = at(r, "layer_mse");
      CHECK(std::count(layers.begin(), layers.end(), ' ') == 1);  // two layers
      CHECK(at(r, "wmse").empty() == (at(r, "task").find("weights=fisher") == std::string::npos));
    }
    if (mode == "ptq") CHECK(std::stod(at(r, "train_s")) == 0);
    if (mode == "qat" || mode == "fp32_ft") CHECK(std::stod(at(r, "train_s")) > 0);
  }
  CHECK(fp32 == 2);
  CHECK(fp32_ft == 2);
  CHECK(ptq == 4);
  CHECK(qat == 5);
  // The levels sweep shares seed 0's float model (its recipe keys are not part of the model's key).
  CHECK(json_count(out / "context.json", "float_models_trained") == 2);
  CHECK(json_count(out / "context.json", "float_models_loaded") == 0);
  {
    std::ifstream in(out / "context.json");
    const nlohmann::json context = nlohmann::json::parse(in);
    CHECK(context["libraries"]["blas"]["library"].is_string());
  }
  const auto models = saved_models(out);
  REQUIRE(models.size() == 2);
  for (const auto& [m, mtime] : models) {
    for (const char* f : {"model.txt", "training.txt", "layer0.weight.npy", "layer1.weight.npy",
                          "layer0.fisher.npy", "layer1.fisher.npy"})
      CHECK(fs::exists(m / f));
  }
  CHECK(slurp(out / "tables.md").find(" ± ") != std::string::npos);
  const std::string gp = slurp(out / "plots" / "acc.gp");
  CHECK(gp.find("lt 1 dt 1 title \"uniform symmetric=1, qat\"") != std::string::npos);
  CHECK(gp.find("lt 1 dt 2 title \"uniform symmetric=1, ptq\"") != std::string::npos);
  CHECK(gp.find("title \"mode=fp32: ") != std::string::npos);

  fs::copy_file(out / "results.csv", dir.path / "first.csv");

  {  // A rerun (with --jobs 1) loads the float models instead of training them, and gives the same results.
    o = run_cli("run " + config.string() + " --out " + out.string() + " --quiet");
    INFO(o.output);
    REQUIRE(o.status == 0);
    CHECK(json_count(out / "context.json", "float_models_trained") == 0);
    CHECK(json_count(out / "context.json", "float_models_loaded") == 2);
    CHECK(saved_models(out) == models);  // model.txt untouched
    CHECK(quality_part(out / "results.csv") == quality_part(dir.path / "first.csv"));
  }
  {  // --resume finishes an interrupted run with the same results.
    // An interrupted run: the first 5 finished cells in results.partial.csv, no results.csv.
    const std::vector<std::string> lines = lines_of(out / "results.csv");
    std::string partial;
    for (std::size_t i = 0; i < 6; ++i)
      partial += lines[i] + "\n";
    std::ofstream(out / "results.partial.csv") << partial;
    fs::remove(out / "results.csv");
    o = run_cli("run " + config.string() + " --out " + out.string() + " --resume --quiet");
    INFO(o.output);
    REQUIRE(o.status == 0);
    CHECK(json_count(out / "context.json", "float_models_loaded") == 2);
    CHECK(quality_part(out / "results.csv") == quality_part(dir.path / "first.csv"));
  }
  {  // Two shards (each training its own float models) merged give the same results.
    for (const char* s : {"0/2", "1/2"}) {
      o = run_cli("run " + config.string() + " --out " +
                  (dir.path / ("shard" + std::string(1, s[0]))).string() + " --shard " + s + " --quiet");
      INFO(o.output);
      REQUIRE(o.status == 0);
    }
    o = run_cli("merge " + (dir.path / "shard0").string() + " " + (dir.path / "shard1").string() + " --out " +
                (dir.path / "merged").string() + " --quiet");
    INFO(o.output);
    REQUIRE(o.status == 0);
    CHECK(quality_part(dir.path / "merged" / "results.csv") == quality_part(dir.path / "first.csv"));
  }
}

TEST_CASE("spread = std: mean ± sample standard deviation over the seeds, to the mean's last decimal",
          "[task-sweep][table]") {
  sqbench::CsvTable t;
  t.header = {"quantizer", "bits", "seed", "accuracy", "mse"};
  t.rows = {{"a", "2", "0", "88.1", "1.5e-05"},
            {"a", "2", "1", "88.4", "1.7e-05"},
            {"a", "2", "2", "88.7", "1.6e-05"},
            {"b", "2", "0", "80", "3e-05"}};
  sqbench::TableSpec spec;
  spec.id = "t";
  spec.rows = "quantizer";
  spec.cols = "bits";
  spec.value = "accuracy";
  spec.spread = "std";
  spec.digits = 3;
  const sqbench::Provenance prov{"c", "h"};
  // mean 88.4, sample std sqrt(((-0.3)^2 + 0 + 0.3^2) / 2) = 0.3; a single row has no spread.
  const std::string md = sqbench::render_table(t, spec, sqbench::TableFormat::md, prov);
  CHECK_THAT(md, Contains("| a | **88.4 ± 0.3** |"));
  CHECK_THAT(md, Contains("| b | 80 |"));
  CHECK_THAT(md, Contains("mean ± std (n - 1) of 3 seeds"));
  CHECK_THAT(sqbench::render_table(t, spec, sqbench::TableFormat::latex, prov),
             Contains("$\\mathbf{88.4 \\pm 0.3}$"));
  spec.value = "mse";  // scientific: (mean ± std) x 10^e; std 1e-6
  spec.best = "none";
  CHECK_THAT(sqbench::render_table(t, spec, sqbench::TableFormat::md, prov),
             Contains("| a | (1.60 ± 0.10)e-5 |"));
  CHECK_THAT(sqbench::render_table(t, spec, sqbench::TableFormat::latex, prov),
             Contains("$(1.60 \\pm 0.10)\\times 10^{-5}$"));
  // Without it, the table is the plain mean, as before.
  spec.spread = "none";
  CHECK_THAT(sqbench::render_table(t, spec, sqbench::TableFormat::md, prov), Contains("| a | 1.60e-5 |"));
  // Only means have a standard deviation.
  TempDir dir;
  const fs::path c =
      dir.write("c.ini",
                "[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\n[table.t]\nrows = "
                "quantizer\ncols = k\nvalue = mse\nspread = std\nagg = median\n");
  CHECK_THROWS_WITH(sqbench::load_config(c), Contains("[table.t]: spread = std shows mean ± std") &&
                                                 Contains("use agg = none or mean"));
}

TEST_CASE("dash splits each series by a column's values, hline draws the y of matching rows",
          "[task-sweep][plot]") {
  sqbench::CsvTable t;
  t.header = {"quantizer", "mode", "bits", "seed", "accuracy"};
  t.rows = {{"none", "fp32", "32", "0", "88"}, {"none", "fp32", "32", "1", "89"},
            {"q", "ptq", "2", "0", "50"},      {"q", "ptq", "4", "0", "80"},
            {"q", "qat", "2", "0", "70"},      {"q", "qat", "4", "0", "85"},
            {"r", "qat", "4", "0", "86"}};
  sqbench::PlotSpec p;
  p.id = "p";
  p.x = "bits";
  p.y = "accuracy";
  p.series = "quantizer";
  p.dash = "mode";
  p.where = {{"mode", "qat|ptq"}};
  p.hlines = {{{"mode", "fp32"}}};
  const sqbench::PlotScript s = sqbench::plot_script(t, p, {"c", "h"});
  // The where filter's order: qat solid (dt 1), ptq dashed (dt 2); each series its own colour (lt).
  CHECK_THAT(s.gp, Contains("index 0 using 1:2 with linespoints lw 2 ps 1.1 lt 1 dt 1 title \"q, qat\""));
  CHECK_THAT(s.gp, Contains("index 1 using 1:2 with linespoints lw 2 ps 1.1 lt 1 dt 2 title \"q, ptq\""));
  CHECK_THAT(s.gp, Contains("index 2 using 1:2 with linespoints lw 2 ps 1.1 lt 2 dt 1 title \"r, qat\""));
  CHECK(s.gp.find("r, ptq") == std::string::npos);  // no rows, no line
  CHECK_THAT(s.dat, Contains("# series 0: q / qat\n2 70\n4 85\n"));
  CHECK_THAT(s.dat, Contains("# series 1: q / ptq\n2 50\n4 80\n"));
  // The hline: the mean of the fp32 rows (both seeds), whatever the plot's where.
  CHECK_THAT(
      s.gp,
      Contains("88.5 with lines dt 3 lw 2 lc rgb '#000000' title \"mode=fp32: 88.5 (mean of 2 seeds)\""));
  // Without a where on the dash column, the results' order: ptq first.
  p.where.clear();
  p.where.push_back({"quantizer", "q"});
  CHECK_THAT(sqbench::plot_script(t, p, {"c", "h"}).gp, Contains("lt 1 dt 1 title \"q, ptq\""));
  // An hline must select rows.
  p.hlines = {{{"mode", "fp16"}}};
  CHECK_THROWS_WITH(sqbench::plot_script(t, p, {"c", "h"}),
                    Contains("hline mode=fp16: no result rows match"));
  // dash and hline are line and scatter options.
  TempDir dir;
  const std::string sweep = "[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\n";
  CHECK_THROWS_WITH(sqbench::load_config(dir.write(
                        "a.ini", sweep + "[plot.p]\nkind = bar\nx = k\ny = mse\ndash = quantizer\n")),
                    Contains("dash splits lines"));
  CHECK_THROWS_WITH(
      sqbench::load_config(dir.write("b.ini", sweep + "[plot.p]\nx = k\ny = mse\nhline = quantizer\n")),
      Contains("key 'plot.p.hline'") && Contains("column=value"));
}
