#pragma once
// The cells of a task sweep (`task = fashion_mnist ...`, `mode = fp32, ptq, qat`): a network is trained once
// per (task spec, seed) and kept on disk beside the results, then the library's sqb::task::evaluate_cell
// evaluates each cell on it: the float model as it is (fp32), fine-tuned as long as QAT (fp32_ft), its weight
// matrices quantized with the cell's quantizer (ptq), or fine-tuned through the quantizer with a
// straight-through estimator (qat). This file trains, caches and loads the models and writes the rows.
//
// On disk, <results>/models/<h>/ (h = FNV-1a of sqb::task::model_key: the task's float-model keys and the
// seed) holds layer<l>.weight.npy ([out, in] float32), model.safetensors (the same weights under PyTorch's
// names: 0.weight, 2.weight, ...), layer<l>.fisher.npy (the empirical Fisher diagonal on the training set),
// training.txt (seconds, per-epoch loss, test accuracy, the BLAS) and model.txt, written last (its key and
// hash). A model is trained under an exclusive lock (flock on <h>.lock, so neither another job of this run
// nor another process sharing the folder trains it twice or reads it half-written); a run, a rerun or
// --resume that finds it loads it instead. A task with model=PATH.safetensors takes that checkpoint as its
// float model (nothing trained, nothing kept on disk).

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.hpp"
#include "plan.hpp"
#include "sqb/columns.hpp"
#include "sqb/task.hpp"

namespace sqbench {

/// The folder a float model of `spec` trained with `seed` is kept in: `out`/models/<hash of its key>.
std::filesystem::path model_dir(const std::filesystem::path& out, const sqb::task::TaskSpec& spec,
                                std::uint64_t seed);

/// The BLAS threads of a run with task cells: 1, whatever --jobs, so J jobs use J cores. OpenBLAS's sgemm
/// rounds differently with 2 threads than with 1 (a TinyNet's test loss moved in the 9th digit here), so a
/// thread count that followed --jobs would make the results, and every later run reusing a cached float
/// model, depend on the --jobs of the run that trained it.
inline constexpr int kTaskBlasThreads = 1;

/// What the task cells of a run share: each dataset is read once; each float model is trained (or loaded)
/// once and kept in memory, read-only, while the run lasts. Thread-safe.
class TaskRunner {
 public:
  /// `out` is the run's results folder; `note` receives progress lines (training started/finished, loaded).
  TaskRunner(const Plan& plan, std::filesystem::path out, std::function<void(const std::string&)> note);

  /// Trains or loads the float model of every (task, seed) among `cells` (indices into plan.cells), up to
  /// `jobs` at a time; stops starting new ones once `stop` is set.
  void prepare(const std::vector<std::size_t>& cells, int jobs, const std::atomic<bool>& stop);

  /// Runs a task cell and returns its row (the plan's header): sqb::task::evaluate_cell on its float model,
  /// with the key, train_s and config_hash fields.
  std::vector<std::string> run(const Config& config, const Cell& cell);

  std::size_t models_trained() const { return trained_; }
  std::size_t models_loaded() const { return loaded_; }

 private:
  struct Data {
    sqb::task::DataSplit split;
    std::map<std::size_t, sqb::task::Dataset> heads;  // train_n -> the first train_n training images
  };

  Data& data(const std::filesystem::path& dir);
  const sqb::task::Dataset& train_set(const sqb::task::TaskSpec& spec);
  const sqb::task::TrainedModel& model(std::size_t task, std::uint64_t seed);
  sqb::task::TrainedModel train_or_load(const sqb::task::TaskSpec& spec, std::uint64_t seed);
  sqb::task::TrainedModel train_or_load_weights(const sqb::task::TaskSpec& spec, std::uint64_t seed);

  const Plan& plan_;
  std::filesystem::path out_;
  std::function<void(const std::string&)> note_;
  std::mutex mu_;  // guards the maps (not the entries, which have their own locks)
  std::map<std::string, std::shared_ptr<std::pair<std::mutex, std::unique_ptr<Data>>>> data_;
  std::map<std::string, std::shared_ptr<std::pair<std::mutex, std::unique_ptr<sqb::task::TrainedModel>>>>
      models_;
  std::atomic<std::size_t> trained_{0}, loaded_{0};
};

}  // namespace sqbench
