// Task cells through sqb::describe: every task cell of the shipped task configs keeps the memory estimate,
// the terms and the filled columns it was planned with before task cells were library cells, and a task
// cell described from its text alone says what the plan says of it. The golden
// file was written by the CLI's own task-cell estimate (task_cells.cpp) before it moved into the library;
// rewrite it with SQB_WRITE_GOLDEN=1 build/tests/sqb_tests '[task_describe]' only when an estimate changes
// on purpose, and review the diff.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "checks.hpp"
#include "config.hpp"
#include "memory.hpp"
#include "plan.hpp"
#include "requirements.hpp"
#include "sqb/cell.hpp"
#include "sqb/error.hpp"
#include "sqb/registry.hpp"
#include "sqb/task.hpp"

namespace fs = std::filesystem;

namespace {

const fs::path kGolden = fs::path(SQB_SOURCE_DIR) / "tests" / "data" / "plan_golden" / "task_cells.txt";

std::string without_source_dir(std::string s) {
  const std::string dir = std::string(SQB_SOURCE_DIR) + "/";
  for (std::size_t at; (at = s.find(dir)) != std::string::npos;)
    s.erase(at, dir.size());
  return s;
}

// What the plan says of every task cell of `name`: its label, its estimate and terms, the columns its
// planned row fills; then what check_memory adds up for 1, 2 and 4 jobs, and its refusal of a tiny limit
// (the largest cell's terms with what the task cells share).
std::string task_plan_text(const sqbench::Config& config, const std::string& name) {
  const sqbench::Plan plan = sqbench::make_plan(config);
  const sqbench::CsvTable planned = sqbench::planned_results(config, plan);
  std::ostringstream out;
  out << "# " << name << "\n";
  std::vector<std::size_t> all;
  for (std::size_t i = 0; i < plan.cells.size(); ++i) {
    const sqbench::Cell& c = plan.cells[i];
    if (!c.is_task()) continue;
    all.push_back(i);
    const sqbench::MemoryEstimate m = sqbench::estimate_cell_memory(plan, c, 2);
    out << sqbench::cell_label(plan, c) << "\n  " << m.bytes << " = " << m.terms << "\n  fills:";
    for (std::size_t col = plan.keys.size(); col < plan.header.size(); ++col) {
      if (!planned.rows[i][col].empty()) out << ' ' << plan.header[col];
    }
    out << "\n";
  }
  for (const int jobs : {1, 2, 4})
    out << "jobs " << jobs << ": " << sqbench::check_memory(config, plan, all, jobs, {}, 1) << "\n";
  sqbench::MemoryLimits tiny;
  tiny.physical = sqbench::MemoryLimit{1, "a test's limit"};
  try {
    sqbench::check_memory(config, plan, all, 1, tiny, 1);
    out << "not refused\n";
  } catch (const sqb::Error& e) {
    out << without_source_dir(e.what()) << "\n";
  }
  return out.str();
}

std::string task_plan_text(const char* name) {
  return task_plan_text(sqbench::load_config(fs::path(SQB_SOURCE_DIR) / "configs" / name), name);
}

// What the shipped configs leave out: biases, two hidden layers, a training subset (a head of the training
// set the run keeps), two tasks on one dataset, groups.
const char* const kMore = R"(name = task_describe
[sweep]
task = fashion_mnist hidden=128,64 bias=1 train_n=2000 epochs=1
task = fashion_mnist hidden=none train_n=3000 weights=fisher
mode = fp32, ptq, qat
quantizer = kmeans
quantizer = uniform
k = 4, 16
granularity = group:32, channel, tensor
seed = 0, 5

[sweep.no_fine_tuning]
task = fashion_mnist train_n=2000 qat_epochs=0 weights=activations
mode = fp32, ptq
quantizer = nf4
quantizer = kmeans_optimal
bits = 2, 4
granularity = channel
seed = 1
)";

}  // namespace

TEST_CASE("task cells keep their planned memory estimates, terms and columns", "[task_describe][cell]") {
  sqbtest::require_fashion_mnist();
  const std::string text =
      task_plan_text("qat.ini") + task_plan_text("importance.ini") +
      task_plan_text(sqbench::parse_config(fs::path(SQB_SOURCE_DIR) / "task_describe.ini", kMore), "more");
  if (std::getenv("SQB_WRITE_GOLDEN") != nullptr) {
    fs::create_directories(kGolden.parent_path());
    std::ofstream(kGolden, std::ios::binary) << text;
    WARN("wrote " << kGolden);
    return;
  }
  REQUIRE(fs::exists(kGolden));
  std::ifstream in(kGolden, std::ios::binary);
  const std::string golden((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (golden != text) {
    std::size_t at = 0;
    while (at < golden.size() && at < text.size() && golden[at] == text[at])
      ++at;
    const std::size_t line = golden.rfind('\n', at == 0 ? 0 : at - 1);
    const std::size_t from = line == std::string::npos ? 0 : line + 1;
    INFO("differs at byte " << at << "\n golden: " << golden.substr(from, 200)
                            << "\n    now: " << text.substr(from, 200));
    CHECK(golden == text);
  }
}

TEST_CASE("a task cell's description: its task's columns, its applicability and its network's memory",
          "[task_describe][cell]") {
  sqbtest::require_fashion_mnist();
  // TinyNet (784 -> 256 -> 10, no biases) on Fashion-MNIST: 203264 weights, 1050 units.
  const double p = 784.0 * 256 + 256.0 * 10, units = 784 + 256 + 10;
  sqb::Cell fp32{"", "", 0, 0, "", 3};
  fp32.task = "fashion_mnist";
  fp32.mode = sqb::TaskMode::fp32;
  const sqb::CellDescription f = sqb::describe(fp32);
  CHECK(f.applies);
  CHECK(f.columns == sqb::task::cell_columns(sqb::task::parse_task_spec("fashion_mnist"), false));
  CHECK(f.shape.values() == 0);
  // The model, AdamW's two moments and the gradients; an evaluation batch of 1000 images.
  CHECK(f.memory.bytes == static_cast<std::uint64_t>(16 * p + 8 * 1000 * units));

  sqb::Cell qat = fp32;
  qat.quantizer = "kmeans";
  qat.k = 16;
  qat.granularity = "tensor";
  qat.mode = sqb::TaskMode::qat;
  qat.task = "fashion_mnist weights=fisher";
  const sqb::CellDescription q = sqb::describe(qat);
  CHECK(q.applies);
  CHECK(q.columns == sqb::task::cell_columns(sqb::task::parse_task_spec(qat.task), true));
  CHECK(std::find(q.columns.begin(), q.columns.end(), sqb::Col::wmse) != q.columns.end());
  // Plus W_q, its codes and the trainer's assignment (22 B a weight) and k-means' workspace for the largest
  // block, the first layer (784 x 256 at granularity tensor).
  const double design = sqb::make_quantizer("kmeans", {16, 3})->design_bytes_per_value() * 784 * 256;
  CHECK(q.memory.bytes == static_cast<std::uint64_t>(38 * p + 8 * 1000 * units + design));

  // The strategy says when it cannot give K codes; the task, when it has no such mode.
  sqb::Cell nf4 = qat;
  nf4.quantizer = "nf4";
  nf4.k = 4;
  const sqb::CellDescription n = sqb::describe(nf4);
  CHECK_FALSE(n.applies);
  CHECK(n.why_not == sqb::not_applicable("nf4", 4));
  sqb::Cell ft = fp32;
  ft.mode = sqb::TaskMode::fp32_ft;
  CHECK(sqb::describe(ft).applies);
  ft.task = "fashion_mnist qat_epochs=0";
  const sqb::CellDescription no_ft = sqb::describe(ft);
  CHECK_FALSE(no_ft.applies);
  CHECK_THAT(no_ft.why_not, Catch::Contains("qat_epochs = 0"));

  // Bad cells: a quantizing mode without a quantizer, a float mode with one, a bad spec, missing data.
  sqb::Cell bad = qat;
  bad.quantizer = "";
  CHECK_THROWS_WITH(sqb::describe(bad), Catch::Contains("needs a quantizer"));
  bad = fp32;
  bad.quantizer = "kmeans";
  CHECK_THROWS_WITH(sqb::describe(bad), Catch::Contains("has no quantizer"));
  bad = fp32;
  bad.task = "fashion_mnist epochs=0";
  CHECK_THROWS_WITH(sqb::describe(bad), Catch::Contains("epochs"));
  bad.task = "fashion_mnist data=no_such_folder";
  sqb::DescribeOptions o;
  o.sources.base_dir = "/nonexistent";
  CHECK_THROWS_WITH(sqb::describe(bad, o), Catch::Contains("/nonexistent/no_such_folder"));
  // A task cell trains: evaluate() of a drawn tensor is not its evaluation.
  CHECK_THROWS_WITH(sqb::evaluate(fp32, sqb::Tensor(1, 4, {1, 2, 3, 4})), Catch::Contains("task cell"));
  CHECK(sqb::task::shared_memory({}).bytes == 0);
}

TEST_CASE("the plan's task cells are the library's: the same description from the cell's text alone",
          "[task_describe][cell]") {
  sqbtest::require_fashion_mnist();
  for (const char* name : {"qat.ini", "importance.ini"}) {
    CAPTURE(name);
    const sqbench::Config config = sqbench::load_config(fs::path(SQB_SOURCE_DIR) / "configs" / name);
    const sqbench::Plan plan = sqbench::make_plan(config);
    for (const sqbench::Cell& c : plan.cells) {
      if (!c.is_task()) continue;
      CAPTURE(sqbench::cell_label(plan, c));
      const sqb::CellDescription from_plan = plan.describe(c);
      sqb::DescribeOptions o;
      o.sources.base_dir = config.path.parent_path();
      const sqb::CellDescription alone = sqb::describe(plan.library_cell(c), o);
      CHECK(from_plan.applies);
      CHECK(alone.applies);
      CHECK(alone.columns == from_plan.columns);
      CHECK(alone.memory.bytes == from_plan.memory.bytes);
      CHECK(alone.memory.terms == from_plan.memory.terms);
      CHECK(sqbench::estimate_cell_memory(plan, c, 2).bytes == from_plan.memory.bytes);
    }
  }
}
