// Task cells through sqb::describe: every task cell of the shipped task configs keeps the memory estimate,
// the terms and the filled columns it was planned with before task cells were library cells. The golden
// file was written by the CLI's own task-cell estimate (task_cells.cpp) before it moved into the library;
// rewrite it with SQB_WRITE_GOLDEN=1 build/tests/sqb_tests '[task_describe]' only when an estimate changes
// on purpose, and review the diff.

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
#include "sqb/error.hpp"

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
