// What a task cell and the task cells of a run need in memory, from the task spec and the dataset's headers
// (task.hpp: cell_memory, shared_memory), before anything is read or trained.

#include <algorithm>
#include <set>
#include <utility>

#include "sqb/cell.hpp"
#include "sqb/task.hpp"

namespace sqb::task {

namespace {

// {features, hidden..., classes}: the layer widths of the network a task spec trains on images of
// `features` pixels (ModelSpec::sizes, without model_spec's checks: an estimate never refuses).
std::vector<std::size_t> layer_sizes(const TaskSpec& spec, std::size_t features) {
  std::vector<std::size_t> sizes = {features};
  sizes.insert(sizes.end(), spec.hidden.begin(), spec.hidden.end());
  sizes.push_back(kClasses);
  return sizes;
}

// Weights (and biases) of that network.
std::uint64_t parameters(const TaskSpec& spec, std::size_t features) {
  const std::vector<std::size_t> sizes = layer_sizes(spec, features);
  std::uint64_t p = 0;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l)
    p += static_cast<std::uint64_t>(sizes[l]) * sizes[l + 1] + (spec.bias ? sizes[l + 1] : 0);
  return p;
}

}  // namespace

MemoryEstimate cell_memory(const TaskSpec& spec, const Quantizer* quantizer, const Granularity& granularity) {
  const DatasetShape ds = dataset_shape(spec.data);
  const std::vector<std::size_t> sizes = layer_sizes(spec, ds.features());
  const double p = static_cast<double>(parameters(spec, ds.features()));
  std::size_t widest = 0;
  for (const std::size_t s : sizes)
    widest += s;
  // A copy of the model, AdamW's two moments and the gradients (16 B per weight); QAT adds W_q, its codes
  // (32-bit) and the trainer's flat assignment (16 B), the pipeline's reconstruction and codes (6 B); an
  // evaluation batch of 1000 images keeps every layer's activations and their gradients (8 B per unit).
  const bool quantized = quantizer != nullptr;
  const double model_state = 16 * p + (quantized ? 22 * p : 0);
  const double batch = 8.0 * 1000 * static_cast<double>(widest);
  double design = 0;
  if (quantized) {
    // The strategy designs one block at a time: its workspace for the largest block of any layer.
    double largest = 0;
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
      const double in = static_cast<double>(sizes[l]), out = static_cast<double>(sizes[l + 1]);
      const double block = granularity.kind == Granularity::Kind::tensor ? in * out
                           : granularity.kind == Granularity::Kind::channel
                               ? in
                               : std::min(in, static_cast<double>(granularity.group));
      largest = std::max(largest, block);
    }
    design = quantizer->design_bytes_per_value() * largest;
  }
  const double total = model_state + batch + design;
  return {static_cast<std::uint64_t>(total),
          std::to_string(static_cast<std::uint64_t>(p)) +
              " weights: model copy, optimizer state and gradients" +
              (quantized ? ", quantized weights and codes " : " ") +
              format_bytes(static_cast<std::uint64_t>(model_state)) + " + an evaluation batch " +
              format_bytes(static_cast<std::uint64_t>(batch)) + " + design workspace " +
              format_bytes(static_cast<std::uint64_t>(design))};
}

MemoryEstimate shared_memory(std::span<const FloatModel> models) {
  std::set<std::string> dirs, keys;
  std::set<std::pair<std::string, std::size_t>> heads;
  double data = 0, load = 0, weights = 0;
  for (const FloatModel& m : models) {
    const TaskSpec& spec = *m.spec;
    const DatasetShape ds = dataset_shape(spec.data);
    if (dirs.insert(spec.data.string()).second) {
      // Pixels as float32 and labels, kept; while a file is read, its bytes and the decoded bytes as well.
      data += 4.0 * static_cast<double>((ds.train + ds.test) * ds.features()) +
              static_cast<double>(ds.train + ds.test);
      load = std::max(load, static_cast<double>(ds.largest_stored + ds.largest_bytes));
    }
    // A train_n below the training set keeps a copy of its first train_n images.
    if (spec.train_n > 0 && spec.train_n < ds.train &&
        heads.insert({spec.data.string(), spec.train_n}).second)
      data += 4.0 * static_cast<double>(spec.train_n * ds.features()) + static_cast<double>(spec.train_n);
    if (keys.insert(model_key(spec, m.seed)).second)
      weights += 8.0 * static_cast<double>(parameters(spec, ds.features()));  // weights and Fisher diagonal
  }
  if (dirs.empty()) return {0, ""};
  const double total = data + load + weights;
  return {static_cast<std::uint64_t>(total),
          "task data " + format_bytes(static_cast<std::uint64_t>(data)) + " (" + std::to_string(dirs.size()) +
              " dataset(s)) + reading it " + format_bytes(static_cast<std::uint64_t>(load)) + " + " +
              std::to_string(keys.size()) + " float model(s) with their Fisher diagonals " +
              format_bytes(static_cast<std::uint64_t>(weights))};
}

}  // namespace sqb::task
