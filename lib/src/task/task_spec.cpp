// The task spec `fashion_mnist key=value ...`, validated through the same ParamSpec/Params machinery as the
// quantizer and distribution specs, so messages and `sqbench list` read alike.

#include <array>
#include <charconv>
#include <cstdio>
#include <string>

#include "sqb/error.hpp"
#include "sqb/task.hpp"

namespace sqb::task {

namespace {

constexpr std::array<std::string_view, 1> kNames = {"fashion_mnist"};

std::string shortest(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  return std::string(buf, r.ptr);
}

std::vector<ParamSpec> make_params() {
  using K = ParamSpec::Kind;
  return {
      {"data",
       K::text,
       std::string(kFashionMnistDir),
       0,
       0,
       false,
       {},
       "folder of the four IDX files (train/t10k images/labels, plain or .gz; MNIST's layout)"},
      {"hidden",
       K::text,
       "256",
       0,
       0,
       false,
       {},
       "hidden layer widths, comma-separated (512,256), each in [1, 65536]; none for a linear model"},
      {"bias", K::choice, "0", 0, 0, false, {"0", "1"}, "biases in every layer (torch.nn.Linear bias=)"},
      {"epochs", K::integer, "10", 1, 1000, false, {}, "float training epochs"},
      {"batch", K::integer, "64", 1, 1e6, false, {}, "minibatch size (the last partial batch is kept)"},
      {"lr", K::real, "0.001", 0, 1, true, {}, "AdamW learning rate"},
      {"weight_decay", K::real, "0.01", 0, 1, false, {}, "AdamW decoupled weight decay"},
      {"train_n", K::integer, "0", 0, 1e9, false, {}, "train on the first train_n images only (0: all)"},
      {"model",
       K::text,
       "",
       0,
       0,
       false,
       {},
       "a safetensors checkpoint (0.weight [hidden, 784], 2.weight [10, hidden]: torch's names, "
       "F32/BF16/F16) "
       "used as the float model instead of training one (e.g. sqbench quantize's output)"},
      // The cells' recipe (not part of the float model's key).
      {"qat_epochs",
       K::integer,
       "2",
       0,
       1000,
       false,
       {},
       "QAT fine-tuning epochs; mode fp32 also reports the float model fine-tuned as long (fp32_ft)"},
      {"qat_lr", K::real, "0.0002", 0, 1, true, {}, "AdamW learning rate of that fine-tuning"},
      {"ste",
       K::choice,
       "identity",
       0,
       0,
       false,
       {"identity", "clipped"},
       "straight-through estimator: identity, or clipped (no gradient outside the codebook's range)"},
      {"redesign",
       K::integer,
       "1",
       0,
       1e9,
       false,
       {},
       "QAT re-designs the codebooks every M steps (0: once) and assigns to them in between"},
      {"qat",
       K::choice,
       "ste",
       0,
       0,
       false,
       {"ste", "levels"},
       "ste: train the latent weights through the STE; levels: train the codebook levels too"},
      {"weights",
       K::choice,
       "none",
       0,
       0,
       false,
       {"none", "fisher", "activations"},
       "importance weights of the designs (wmse): fisher = the float model's Fisher diagonal; activations = "
       "each layer's mean x^2 per input feature over the training set, per column"},
  };
}

std::vector<std::size_t> parse_hidden(const std::string& text, const std::string& context) {
  if (text == "none") return {};
  std::vector<std::size_t> out;
  std::size_t i = 0;
  while (true) {
    const std::size_t j = text.find(',', i);
    const std::string item = text.substr(i, j == std::string::npos ? std::string::npos : j - i);
    const auto v = parse_integer(item);
    if (!v || *v < 1 || *v > 65536) {
      throw Error(context +
                  ": parameter 'hidden' must be comma-separated widths in [1, 65536] or none (got '" + text +
                  "')");
    }
    out.push_back(static_cast<std::size_t>(*v));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  return out;
}

}  // namespace

std::span<const std::string_view> task_names() {
  return kNames;
}

std::span<const ParamSpec> task_params() {
  static const std::vector<ParamSpec> params = make_params();
  return params;
}

TaskSpec parse_task_spec(std::string_view text) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    throw Error("empty task spec: give a task name, e.g. \"fashion_mnist hidden=256\"");
  }
  const SpecText st = SpecText::parse(text, "task");
  const std::string context = "task \"" + std::string(text) + "\"";
  bool known = false;
  for (const auto n : kNames)
    known = known || n == st.name;
  if (!known) {
    std::string valid;
    for (const auto n : kNames)
      valid += (valid.empty() ? "" : ", ") + std::string(n);
    throw Error(context + ": unknown task '" + st.name + "'; valid tasks: " + valid);
  }
  const Params p(task_params(), st.args, context);
  TaskSpec s;
  s.data = p.text("data");
  s.hidden = parse_hidden(p.text("hidden"), context);
  s.bias = p.is("bias", "1");
  s.epochs = static_cast<std::size_t>(p.integer("epochs"));
  s.batch = static_cast<std::size_t>(p.integer("batch"));
  s.lr = p.real("lr");
  s.weight_decay = p.real("weight_decay");
  s.train_n = static_cast<std::size_t>(p.integer("train_n"));
  s.qat_epochs = static_cast<std::size_t>(p.integer("qat_epochs"));
  s.qat_lr = p.real("qat_lr");
  s.ste = p.is("ste", "clipped") ? Ste::clipped : Ste::identity;
  s.redesign = static_cast<std::size_t>(p.integer("redesign"));
  s.train_levels = p.is("qat", "levels");
  s.weights = p.is("weights", "fisher")        ? Importance::fisher
              : p.is("weights", "activations") ? Importance::activations
                                               : Importance::none;
  s.model = p.text("model");
  if (s.train_levels && s.redesign == 1) {
    p.fail("qat",
           "= levels needs redesign=0 (design once) or redesign=M >= 2: a codebook re-designed before "
           "every step would discard its trained levels before they are used");
  }
  return s;
}

std::string TaskSpec::canonical() const {
  std::string h;
  for (std::size_t i = 0; i < hidden.size(); ++i) {
    if (i) h += ',';
    h += std::to_string(hidden[i]);
  }
  return std::string(kNames[0]) + " data=" + data.string() + " hidden=" + (h.empty() ? "none" : h) +
         " bias=" + (bias ? "1" : "0") + " epochs=" + std::to_string(epochs) +
         " batch=" + std::to_string(batch) + " lr=" + shortest(lr) +
         " weight_decay=" + shortest(weight_decay) + " train_n=" + std::to_string(train_n) +
         (model.empty() ? "" : " model=" + model.string());
}

TaskSpec resolve_paths(TaskSpec spec, const std::filesystem::path& base_dir) {
  if (spec.data.is_relative()) spec.data = base_dir / spec.data;
  if (!spec.model.empty() && spec.model.is_relative()) spec.model = base_dir / spec.model;
  return spec;
}

std::string model_key(const TaskSpec& spec, std::uint64_t seed) {
  return spec.canonical() + " seed=" + std::to_string(seed);
}

std::vector<Col> cell_columns(const TaskSpec& spec, bool quantized) {
  std::vector<Col> out;
  for (const ColumnInfo& c : column_schema()) {
    bool fills = false;
    switch (c.id) {
      case Col::accuracy:
      case Col::test_loss:
      case Col::storage_bits:
        fills = true;
        break;
      case Col::blocks:
      case Col::mse:
      case Col::nmse:
      case Col::sqnr_db:
      case Col::max_abs_err:
      case Col::entropy_bits:
      case Col::iterations:
      case Col::converged:
      case Col::layer_mse:
      case Col::layer_sqnr_db:
        fills = quantized;
        break;
      case Col::wmse:
        fills = quantized && spec.weights != Importance::none;
        break;
      default:
        break;
    }
    if (fills) out.push_back(c.id);
  }
  return out;
}

}  // namespace sqb::task
