#pragma once
/// \file task.hpp
/// Task accuracy: a small MLP image classifier (by default the GR-PHI proposal's TinyNet, 784 -> 256 -> ReLU
/// -> 10, no biases) trained on an IDX dataset (Fashion-MNIST by default), evaluated by top-1 accuracy and
/// cross-entropy, and fine-tuned with fake-quantized weights (quantization-aware training, QAT) through a
/// straight-through estimator.
///
/// Conventions:
///  - A weight matrix is stored [out, in], row-major, as torch.nn.Linear stores it: row o holds the weights
///    into output o, so granularity=channel (one codebook per row) is one codebook per output unit.
///  - The math is float32 with Armadillo on the BLAS that the system's alternatives select (Debian's
///    OpenBLAS when `libopenblas0-pthread` is installed; see blas_info()). The forward and backward passes
///    are written by hand: layer l computes z = W a + b, hidden layers apply ReLU (gradient 0 at z = 0, as
///    torch), the last gives logits; the loss is softmax cross-entropy via the log-sum-exp trick, averaged
///    over the batch (torch.nn.CrossEntropyLoss).
///  - Deterministic: the same seed, data and BLAS thread count give the same weights bit for bit. Random
///    numbers come from Boost.Random's mt19937_64 (platform-stable sequences).
///
/// Bad input (a spec, a file, a shape that does not fit) throws sqb::Error naming what and where.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sqb/cell.hpp"
#include "sqb/granularity.hpp"
#include "sqb/idx.hpp"
#include "sqb/metrics.hpp"
#include "sqb/quantize.hpp"
#include "sqb/spec.hpp"
#include "sqb/tensor.hpp"

namespace sqb::task {

/// Where Debian's `dataset-fashion-mnist` installs the four gzip IDX files.
inline constexpr std::string_view kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
/// The Debian package that provides them (named in the message when they are missing).
inline constexpr std::string_view kFashionMnistPackage = "dataset-fashion-mnist";
/// Classes of (Fashion-)MNIST; a label >= kClasses is an Error.
inline constexpr std::size_t kClasses = 10;

// ---------------------------------------------------------------------------------------------------------
// Data

/// Labelled images, pixels scaled to [0, 1] (byte / 255, as torchvision's ToTensor).
struct Dataset {
  std::size_t count = 0;              ///< number of examples
  std::size_t height = 0, width = 0;  ///< image size (28 x 28 for MNIST)
  std::vector<float> pixels;          ///< count x features, row-major (one image after another)
  std::vector<std::uint8_t> labels;   ///< count values, each < kClasses

  std::size_t features() const { return height * width; }
  /// The first min(n, count) examples.
  Dataset head(std::size_t n) const;
};

struct DataSplit {
  Dataset train, test;
};

/// Builds a dataset from an IDX images array (rank 3: count x height x width) and an IDX labels array
/// (rank 1: count). Throws Error starting with the file name concerned for a wrong rank, counts that
/// disagree, or a label >= kClasses (naming its index and value).
Dataset make_dataset(const idx::Array& images, std::string_view images_name, const idx::Array& labels,
                     std::string_view labels_name);

/// The file names inside a dataset folder, in MNIST's naming (Fashion-MNIST uses the same): each is tried as
/// `<name>.gz`, then `<name>` (uncompressed).
inline constexpr std::string_view kTrainImages = "train-images-idx3-ubyte";
inline constexpr std::string_view kTrainLabels = "train-labels-idx1-ubyte";
inline constexpr std::string_view kTestImages = "t10k-images-idx3-ubyte";
inline constexpr std::string_view kTestLabels = "t10k-labels-idx1-ubyte";

/// Reads the four files of `dir`. A missing file is an Error naming the paths tried and, for the default
/// folder, the Debian package that provides them; the train and test images must have the same size.
DataSplit load_dataset(const std::filesystem::path& dir = std::filesystem::path(kFashionMnistDir));

/// The files load_dataset(dir) reads, in the order train images, train labels, test images, test labels (each
/// `<name>.gz` if present, else `<name>`), found without reading them. Throws the Error load_dataset throws
/// for a missing file (naming the paths tried and the Debian package).
std::vector<std::filesystem::path> dataset_files(const std::filesystem::path& dir);

/// What a dataset folder's four files hold, from their headers alone (idx::read_header).
struct DatasetShape {
  std::size_t train = 0, test = 0;    ///< examples
  std::size_t height = 0, width = 0;  ///< image size
  std::uint64_t largest_bytes = 0;    ///< the largest file uncompressed (header + data)
  std::uint64_t largest_stored = 0;   ///< the largest file as stored (compressed or not)

  std::size_t features() const { return height * width; }
};

/// The shape of dataset_files(dir), without reading the data: throws the Error load_dataset(dir) throws for
/// a missing file, a file that is not an IDX file of unsigned bytes or does not hold what its header claims
/// (truncated or corrupt), a wrong rank, counts that disagree or test images of another size (a label >=
/// kClasses shows only when the data is read).
DatasetShape dataset_shape(const std::filesystem::path& dir);

// ---------------------------------------------------------------------------------------------------------
// The task spec: what determines a trained float model, and how a sweep's cells fine-tune and quantize it

/// The straight-through estimator's backward pass for the latent weights.
enum class Ste {
  identity,  ///< dL/dW = dL/dW_q (GR-PHI's STE)
  clipped,   ///< dL/dW = dL/dW_q where min(levels) <= W <= max(levels) of the element's block, else 0
};

/// What weights a task cell's codebook designs.
enum class Importance {
  none,
  fisher,       ///< the empirical Fisher diagonal (fisher_diagonal), [out, in]
  activations,  ///< mean x^2 per input feature (activation_importance), one weight per column
};

/// `fashion_mnist key=value ...` (see task_params() for the keys, their defaults and ranges).
struct TaskSpec {
  std::filesystem::path data{std::string(kFashionMnistDir)};  ///< the dataset folder
  std::vector<std::size_t> hidden{256};                       ///< hidden widths; empty: a linear model
  bool bias = false;                                          ///< biases in every layer
  std::size_t epochs = 10;                                    ///< float training epochs
  std::size_t batch = 64;                                     ///< minibatch size
  double lr = 1e-3;                                           ///< AdamW learning rate
  double weight_decay = 0.01;                                 ///< AdamW decoupled weight decay
  std::size_t train_n = 0;  ///< train on the first train_n images only (0: all of them)

  // The cells' recipe: how a sweep fine-tunes and quantizes the float model. Not part of canonical(), so
  // specs that differ only here share one trained float model.
  std::size_t qat_epochs = 2;  ///< QAT fine-tuning epochs, and the float fine-tuning of mode fp32_ft
  double qat_lr = 2e-4;        ///< their AdamW learning rate (batch and weight decay as the float training)
  Ste ste = Ste::identity;     ///< `ste=identity|clipped`
  std::size_t redesign = 1;    ///< `redesign=M`: QatOptions::redesign (codebooks re-designed every M steps)
  bool train_levels = false;   ///< `qat=levels`: QatOptions::train_levels (else `qat=ste`)
  /// `weights=none|fisher|activations`: what weights the designs (and the wmse figure). fisher: the float
  /// model's empirical Fisher diagonal, one weight per weight; activations: each layer's mean x^2 per input
  /// feature over the training set (activation_importance), one weight per column.
  Importance weights = Importance::none;

  /// `model=PATH.safetensors`: the float model is this checkpoint (tensors named as torch names
  /// nn.Sequential(Linear, ReLU, ..., Linear): see torch_name), not one trained from the keys above; empty:
  /// train. A float-model key: canonical() ends with " model=PATH" when it is set.
  std::filesystem::path model;

  /// The keys that determine the float model, each with its value, in task_params() order, after the name:
  /// "fashion_mnist data=... hidden=256 bias=0 epochs=10 batch=64 lr=0.001 weight_decay=0.01 train_n=0"
  /// (numbers in their shortest exact form, so equal models give equal text), then " model=PATH" when a
  /// model is given (left out otherwise, so the keys of trained models are what they always were). The
  /// recipe keys are left out.
  std::string canonical() const;
};

/// The task names a spec may start with ("fashion_mnist").
std::span<const std::string_view> task_names();
/// The declared keys: data (text), hidden (comma-separated widths in [1, 65536], or `none`), bias (0|1),
/// epochs [1, 1000], batch [1, 1e6], lr (0, 1], weight_decay [0, 1], train_n [0, 1e9]; the recipe's
/// qat_epochs [0, 1000], qat_lr (0, 1], ste (identity|clipped), redesign [0, 1e9], qat (ste|levels),
/// weights (none|fisher|activations); model (a safetensors path, or empty).
std::span<const ParamSpec> task_params();
/// Parses `fashion_mnist key=value ...`. Throws Error quoting the spec for an unknown task name (listing the
/// valid ones), an unknown key (listing the valid ones), a value out of its domain, or qat=levels with
/// redesign=1 (see QatOptions::train_levels).
TaskSpec parse_task_spec(std::string_view text);

/// The result columns a cell of this task fills, in schema order (what a task sweep plans its header and
/// checks its tables with): the network's accuracy and test_loss, with its float32 storage_bits (32) when it
/// is not quantized; when it is, the blocks and metrics over every quantized layer, wmse when the task weighs
/// importance, layer_mse and layer_sqnr_db. Never rows and cols: a network has several tensors.
std::vector<Col> cell_columns(const TaskSpec& spec, bool quantized);

/// `spec` with a relative data= folder and model= path made relative to `base_dir` (a config's folder, as a
/// source's relative path= is).
TaskSpec resolve_paths(TaskSpec spec, const std::filesystem::path& base_dir);

/// A task cell's peak memory besides what the task cells of a run share (shared_memory), from the spec and
/// its dataset's headers (dataset_shape, which throws for missing or malformed files): a copy of the model,
/// AdamW's state and the gradients; with a quantizer (ptq, qat; null for fp32 and fp32_ft) the quantized
/// weights, their codes and the strategy's design workspace for the largest block `granularity` makes of
/// any layer; one evaluation batch of 1000 images (lib/src/task/memory.cpp lists the bytes of each).
MemoryEstimate cell_memory(const TaskSpec& spec, const Quantizer* quantizer, const Granularity& granularity);

/// A float model the task cells of a run share: its task (paths resolved) and its training seed.
struct FloatModel {
  const TaskSpec* spec = nullptr;
  std::uint64_t seed = 0;
};

/// What the task cells of a run share while it lasts, given each cell's float model: each dataset once (its
/// pixels and labels, sized from the IDX files' headers without decompressing them; the largest file's bytes
/// while it is read; the first train_n images when a task trains on fewer), each float model once with its
/// Fisher diagonal. {0, ""} for no models.
MemoryEstimate shared_memory(std::span<const FloatModel> models);

// ---------------------------------------------------------------------------------------------------------
// The model

struct ModelSpec {
  std::size_t inputs = 784;
  std::vector<std::size_t> hidden{256};
  std::size_t classes = kClasses;
  bool bias = false;

  /// {inputs, hidden..., classes}: layer l maps sizes()[l] -> sizes()[l + 1].
  std::vector<std::size_t> sizes() const;
  std::size_t layers() const { return hidden.size() + 1; }
  /// Throws Error unless inputs >= 1, every hidden width >= 1 and classes >= 2.
  void validate() const;
};

/// The model a task spec trains on a dataset of `features` pixels per image.
ModelSpec model_spec(const TaskSpec& spec, std::size_t features);

struct Mlp {
  ModelSpec spec;
  std::vector<Tensor> weights;             ///< weights[l]: [sizes[l+1], sizes[l]] (out x in)
  std::vector<std::vector<float>> biases;  ///< biases[l]: sizes[l+1] values; empty vectors without bias

  /// Throws Error when the shapes do not match spec (naming the layer), or a value is not finite.
  void validate() const;
};

/// torch.nn.Linear's default initialisation (kaiming_uniform_ with a = sqrt(5)): every weight and bias of
/// layer l uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = sizes[l]; layer by layer, weights in
/// row-major order then the biases, from one mt19937_64 stream seeded by `seed`.
Mlp init_mlp(const ModelSpec& spec, std::uint64_t seed);

/// The same model with other weight matrices (e.g. quantized ones); biases kept. Throws Error on a shape
/// mismatch.
Mlp with_weights(const Mlp& model, std::vector<Tensor> weights);

// ---------------------------------------------------------------------------------------------------------
// Evaluation

struct Evaluation {
  std::size_t count = 0;    ///< examples evaluated
  std::size_t correct = 0;  ///< top-1 hits (argmax of the logits, the first index on ties)
  double accuracy = 0;      ///< correct / count
  double loss = 0;          ///< mean cross-entropy (natural log), accumulated in double
};

/// Evaluates on every example of `data` (in batches of 1000). Throws Error if data.features() !=
/// model.spec.inputs.
Evaluation evaluate(const Mlp& model, const Dataset& data);

/// The logits of `count` images (`images`: count x inputs, row-major): count x classes, row-major.
Tensor logits(const Mlp& model, std::span<const float> images, std::size_t count);

// ---------------------------------------------------------------------------------------------------------
// Training

/// torch.optim.AdamW (PyTorch 1.13, amsgrad off) for one parameter p with gradient g at step t = 1, 2, ...:
///   p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
///   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// (scalars in double, rounded to float32 once; the tensors in float32).
struct AdamW {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;

  /// Throws Error unless lr > 0, 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0 (all finite).
  void validate() const;
  /// One step over a parameter tensor: p, m, v and g have the same size; t >= 1 is this tensor's step count.
  void step(std::span<float> p, std::span<float> m, std::span<float> v, std::span<const float> g,
            std::uint64_t t) const;
};

struct TrainOptions {
  std::size_t epochs = 10;
  std::size_t batch = 64;  ///< the last partial batch is kept (torch DataLoader, drop_last=False)
  AdamW adamw;
  /// Epoch e (0-based, counted within this call) visits the examples in a Fisher-Yates permutation drawn from
  /// mt19937_64 seeded by a SplitMix64 mix of (seed, e): fine_tune and train_qat with the same seed see
  /// the same batches, so QAT is compared with float fine-tuning on identical data order.
  std::uint64_t seed = 0;
  /// Called after each epoch with its index (0-based) and mean training loss, e.g. for progress or a
  /// per-epoch evaluation (its time counts in TrainReport::seconds). Optional.
  std::function<void(std::size_t epoch, double train_loss)> on_epoch;

  void validate() const;  ///< batch >= 1 and adamw.validate(); epochs may be 0 (nothing happens)
};

struct TrainReport {
  std::vector<double> epoch_loss;  ///< mean training loss of each epoch (over the batches as trained)
  std::size_t steps = 0;           ///< optimizer steps taken
  double seconds = 0;              ///< wall time of the whole call (steady_clock)
};

/// Float training from the model's current weights with a fresh optimizer state. Throws Error if the data
/// does not fit the model (features, labels) or the options are invalid.
TrainReport train(Mlp& model, const Dataset& data, const TrainOptions& options);

/// Plain float fine-tuning: train() for `epochs` epochs at learning rate `lr`, otherwise default AdamW and
/// batch 64. The fp32 reference for QAT: the float model trained for the same extra epochs as QAT.
TrainReport fine_tune(Mlp& model, const Dataset& data, std::size_t epochs, double lr = 2e-4,
                      std::uint64_t seed = 0);

// ---------------------------------------------------------------------------------------------------------
// Quantization-aware training

/// One layer's fake quantization, as a weight transform returns it.
struct FakeQuant {
  /// W_q: the same shape as the latent weights; exactly what the forward pass uses. Must be finite.
  Tensor weights;
  /// The codebook assignment (optional: leave all three empty when only W_q is known; ste=clipped and
  /// train_levels need it). blocks are contiguous runs of the row-major tensor, in order, covering it
  /// exactly (sqb::make_blocks gives them for a granularity); levels[b] is block b's codebook (K_b >= 1
  /// finite values, any order); codes[i] indexes element i's level in its block's codebook, and
  /// weights.values[i] must equal levels[b][codes[i]] bit for bit.
  std::vector<Block> blocks;
  std::vector<std::vector<float>> levels;
  std::vector<std::uint32_t> codes;

  bool has_assignment() const { return !blocks.empty(); }
};

/// What a weight transform is asked to do.
struct TransformCall {
  std::size_t layer = 0;  ///< which weight matrix
  std::size_t step = 0;   ///< optimizer steps taken so far (0 before the first)
  /// true: design new codebooks from `latent` (then assign). false: keep the codebooks of this layer's last
  /// redesign call and only assign `latent` to them (encode + decode), so an expensive design (k-means) runs
  /// every M steps while W_q still follows the latent weights every step. A transform without separate
  /// designs may treat every call as a redesign.
  bool redesign = true;
};

/// Maps a layer's latent (float) weights ([out, in]) to its fake-quantized weights. May keep state between
/// calls (its last codebooks per layer); must be deterministic (the same calls give the same results).
using WeightTransform = std::function<FakeQuant(const TransformCall& call, const Tensor& latent)>;

/// The identity: W_q = the latent weights, no assignment. With it, train_qat equals train bit for bit.
FakeQuant identity_transform(const TransformCall& call, const Tensor& latent);

struct QatOptions {
  /// Epochs, batch, AdamW and seed of the fine-tuning (qat_epochs = 2 and lr = 2e-4 by default).
  TrainOptions train{.epochs = 2, .batch = 64, .adamw = {.lr = 2e-4}, .seed = 0, .on_epoch = {}};
  Ste ste = Ste::identity;
  /// Codebook re-design cadence (`redesign=M`): the transform is called before every step, with
  /// redesign = true before steps 0, M, 2M, ... and false in between (assign to the last codebooks); M = 0
  /// designs once, before the first step.
  std::size_t redesign = 1;
  /// `qat=levels`: the codebook levels are parameters too. The transform is called only before the
  /// re-design steps; in between, the codes stay fixed and the forward pass uses W_q[i] = levels[b][codes[i]]
  /// with the levels as trained (Deep Compression's trained shared weights). A level's gradient is the sum
  /// of dL/dW_q over the weights assigned to it; the levels are updated by the same AdamW (weight decay
  /// included), with a fresh optimizer state from each re-design (a new codebook is a new parameter). The
  /// latent weights are trained by the STE as well and shape the next design. Needs redesign != 1 (a
  /// codebook re-designed before every step would discard its trained levels before they are used): that
  /// combination is an Error.
  bool train_levels = false;

  void validate() const;
};

struct QatReport {
  TrainReport train;
  /// The quantized weights after training, per layer. STE modes: what the forward pass of one more step would
  /// use (the transform on the final latent weights, a redesign if the step count is a multiple of M, for
  /// M >= 1). train_levels: the trained levels at the last codes (W_q = levels[codes]), no further call.
  std::vector<FakeQuant> final;
  std::size_t transform_calls = 0;  ///< calls of the transform, summed over layers, the final ones included
  std::size_t redesigns = 0;        ///< of which with redesign = true
  double transform_seconds = 0;     ///< time spent inside the transform (included in train.seconds)
};

/// QAT from the model's current (float) weights: before each forward pass the fake-quantized weights are
/// (re)computed as QatOptions says, the forward pass uses them, and the backward pass gives the latent
/// weights the STE gradient. `model` ends with the trained latent weights; evaluate
/// with_weights(model, final weights) for the quantized network. Throws Error for invalid options, data that
/// does not fit, or a transform result that breaks the FakeQuant contract (naming the layer and what).
QatReport train_qat(Mlp& model, const Dataset& data, const QatOptions& options,
                    const WeightTransform& transform);

/// Post-training quantization: transform({l, 0, true}, weights[l]) for every layer.
std::vector<FakeQuant> apply_transform(const Mlp& model, const WeightTransform& transform);

// ---------------------------------------------------------------------------------------------------------
// Quantizing a network with the library's one pipeline

/// The weight transform of a quantizer: every layer's [out, in] matrix is quantized by sqb::quantize_into at
/// `granularity` (channel: one codebook per output unit, GR-PHI's per_channel). A redesign call runs the
/// whole pipeline (design, encode, decode); any other call encodes the latent weights with the codebooks of
/// the layer's last redesign (QuantizeOptions::reuse_design), so W_q still follows the latent weights every
/// step. W_q is the pipeline's reconstruction (Quantized::decoded) bit for bit, and the assignment is its
/// blocks, levels and codes. Nothing is measured during training (QuantizeOptions::measure = false; see
/// measure_network). Layer l designs from the seed block_seed(seed, l) and, when `importance` is given,
/// with importance[l] (one finite weight >= 0 per weight, [out, in]: e.g. the Fisher diagonal) as
/// QuantizeOptions::weights.
///
/// The transform keeps each layer's last result, so it is stateful and not copyable: hand it to train_qat or
/// apply_transform by reference, WeightTransform(std::ref(transform)).
class QuantizerTransform {
 public:
  /// Throws Error for a bad spec or parameter, or a K the strategy cannot serve (as make_quantizer).
  /// `column_importance` (one vector of `in` values per layer: e.g. activation_importance) weights column c
  /// of layer l by column_importance[l][c] (QuantizeOptions::column_weights): exactly the designs of the
  /// expanded full-shape `importance`. At most one of the two may be given (Error otherwise).
  QuantizerTransform(std::string_view spec, std::size_t k, Granularity granularity, std::uint64_t seed = 0,
                     std::vector<Tensor> importance = {},
                     std::vector<std::vector<float>> column_importance = {});

  /// Throws Error when importance[layer] does not have the latent weights' shape, for a redesign == false
  /// call before the layer's first redesign, and for whatever sqb::quantize_into throws (non-finite weights).
  FakeQuant operator()(const TransformCall& call, const Tensor& latent);

  const Quantizer& quantizer() const { return *quantizer_; }
  /// Layer l's last result (an empty Quantized before the layer's first call).
  const Quantized& result(std::size_t layer) const;

 private:
  std::unique_ptr<const Quantizer> quantizer_;
  Granularity granularity_;
  std::uint64_t seed_ = 0;
  std::vector<Tensor> importance_;
  std::vector<std::vector<float>> column_importance_;
  std::vector<Quantized> results_;
};

/// How far a quantized network's weights are from the weights they were quantized from.
struct NetworkQuality {
  /// Over every weight of every layer (sums in double): mse, nmse (against the variance of all weights),
  /// sqnr_db, max_abs_err and, with importance weights, wmse; entropy_bits and storage_bits are each layer's
  /// (its codes, and its blocks' side values) averaged per weight; index_bits the fixed index width.
  Metrics total;
  std::vector<Metrics> layers;  ///< each layer as sqb::quantize measures one tensor
};

/// Measures `quantized[l]` (with its assignment; K = `k` codes per block, each block storing
/// `side_per_block` float32 values) against `latent[l]`, with `importance[l]` when given. Throws Error when
/// the counts or shapes disagree or an assignment is missing.
NetworkQuality measure_network(std::span<const Tensor> latent, std::span<const FakeQuant> quantized,
                               std::size_t k, std::size_t side_per_block,
                               std::span<const Tensor> importance = {});

// ---------------------------------------------------------------------------------------------------------
// Sensitivity

/// The empirical Fisher information diagonal of every weight matrix: F[l] = (1/N) sum_i (d loss_i / d W_l)^2
/// over the N examples of `data`, per example i (the textbook empirical Fisher with the true labels, as
/// SqueezeLLM's sensitivity weights; not squared mean minibatch gradients, which depend on the batch size).
/// For a linear layer this is (delta^2) (a^2)^T summed over examples, computed in batches of 1000 in float32
/// and accumulated in double. Returned per layer as float32 [out, in], >= 0.
std::vector<Tensor> fisher_diagonal(const Mlp& model, const Dataset& data);

/// Each layer's input statistic: out[l][c] = (1/N) sum_i a_l,i[c]^2 over the N examples of `data`, where
/// a_0 is the image's pixels and a_l (l >= 1) the output of hidden layer l - 1 after its ReLU (the input of
/// the weight matrix l as the float model computes it). As sqbench.torch.calibrate gathers for nn.Linear:
/// the importance of column c of W_l (QuantizeOptions::column_weights). Forward passes in batches of 1000 in
/// float32; the squares summed in double. out[l] has model.spec.sizes()[l] values, each >= 0.
std::vector<std::vector<float>> activation_importance(const Mlp& model, const Dataset& data);

/// Column weights as full [out, in] importance weights: element (r, c) of layer l is columns[l][c] (what
/// QuantizeOptions::column_weights expands to; measure_network takes this form). Error on a size mismatch.
std::vector<Tensor> expand_columns(const Mlp& model, std::span<const std::vector<float>> columns);

// ---------------------------------------------------------------------------------------------------------
// A sweep's task cell

/// A trained float model as the task cells of a run share it: the network and the statistics their designs
/// may weigh with, computed once on the training set.
struct TrainedModel {
  Mlp mlp;
  std::vector<Tensor> fisher;                   ///< fisher_diagonal on the training set
  std::vector<std::vector<float>> activations;  ///< activation_importance on the training set
  double train_s = 0;  ///< seconds its training took (what a fp32 cell reports as train_s)
};

/// The seed of the data order of fp32_ft's and QAT's fine-tuning (the same for both, so they see the same
/// batches), drawn apart from the float training's (`seed`: the cell's).
std::uint64_t fine_tune_seed(std::uint64_t seed);

struct CellResult {
  /// Each column of cell_columns(spec, quantized), layer_mse and layer_sqnr_db in `lists`.
  CellFigures figures;
  /// The cell's training time: the float model's (fp32), the fine-tuning's (fp32_ft, qat), 0 (ptq).
  double train_s = 0;
};

/// Evaluates task cell `cell` (mode fp32, fp32_ft, ptq or qat; its quantizer, K, granularity and seed) of
/// task `spec` (parsed, paths resolved) on `model`, the float model trained with the cell's seed on
/// `train_data` (the task's training set: its first train_n images when train_n is set), and `test_data`,
/// the task's test set.
///  - fp32: the float model as it is.
///  - fp32_ft: the float model fine-tuned as QAT is (qat_epochs at qat_lr, the task's batch and weight
///    decay, data order fine_tune_seed(seed)), without a quantizer.
///  - ptq: every weight matrix quantized by QuantizerTransform (apply_transform).
///  - qat: train_qat with the same fine-tuning and the spec's ste, redesign and train_levels.
/// The weights designed with are the spec's (`weights=fisher`: model.fisher; `activations`:
/// model.activations). A quantized network is measured by measure_network against the weights it was
/// quantized from (the latent weights after QAT), its side values the strategy's per block (K per block
/// with trained levels), with the same importance; iterations is the most any layer's last design took,
/// converged the fraction of all blocks that converged. accuracy is in percent. `model` is not changed.
/// Throws Error for a cell that is not a task cell, a quantizer given to fp32/fp32_ft or missing from
/// ptq/qat, fp32_ft with qat_epochs = 0, and whatever training and quantizing throw (a model that does not
/// fit the data, NotApplicable for a quantizer that cannot give K codes).
CellResult evaluate_cell(const Cell& cell, const TaskSpec& spec, const TrainedModel& model,
                         const Dataset& train_data, const Dataset& test_data);

// ---------------------------------------------------------------------------------------------------------
// On disk

/// The text a float model is cached under: the task spec's canonical text plus " seed=S".
std::string model_key(const TaskSpec& spec, std::uint64_t seed);
/// FNV-1a 64 of `text` as 16 lowercase hex digits (sqb/spec.hpp).
using sqb::text_hash;

/// Writes `dir`/layer<l>.weight.npy ([out, in] float32), layer<l>.bias.npy (with bias) and last model.txt
/// (key, hash, layer shapes), each atomically, creating `dir`; an existing model.txt is removed first, so a
/// folder with a model.txt always holds a complete model.
void save_model(const std::filesystem::path& dir, const Mlp& model, std::string_view key);
/// True if `dir`/model.txt exists.
bool model_saved(const std::filesystem::path& dir);
/// Reads a saved model. Throws Error naming the file when model.txt is missing or malformed, its key differs
/// from `key` or its hash does not match its key, or a weight file's shape differs from `spec`.
Mlp load_model(const std::filesystem::path& dir, const ModelSpec& spec, std::string_view key);
/// Writes `dir`/layer<l>.fisher.npy ([out, in] float32) for every layer.
void save_fisher(const std::filesystem::path& dir, std::span<const Tensor> fisher);

/// The name PyTorch gives layer l's weight (or bias) in the same network written as
/// nn.Sequential(Linear, ReLU, Linear, ...): the Linear layers are modules 0, 2, 4, ..., so "0.weight",
/// "2.weight", "2.bias".
std::string torch_name(std::size_t layer, bool bias = false);

/// The model as one safetensors file (sqb::safetensors::Writer: written under a temporary name and renamed,
/// so `path` is whole or absent): F32 tensors named torch_name(l) [out, in] (torch.nn.Linear's layout, the
/// engine's own) and, with biases, torch_name(l, true); `metadata` goes to __metadata__ (with "format":
/// "pt" added unless given). `torch.nn.Sequential(...).load_state_dict` takes the tensors as they are.
void save_safetensors(const std::filesystem::path& path, const Mlp& model,
                      std::map<std::string, std::string> metadata = {});

/// Reads a model of shape `spec` from a safetensors checkpoint named as save_safetensors writes it (e.g.
/// `sqbench quantize`'s output of such a file). Each tensor may be F32, BF16 or F16 (read exactly as
/// float32). Throws Error starting with the file's name, and naming the tensor, when the file cannot be
/// opened or is not a valid safetensors file, a tensor is missing, has another shape or dtype, holds a
/// non-finite value, or the file holds a tensor the network does not have (a bias with bias=0, a layer
/// beyond the hidden widths): every name expected is listed.
Mlp load_safetensors(const std::filesystem::path& path, const ModelSpec& spec);

// ---------------------------------------------------------------------------------------------------------
// The BLAS in use (for context.json)

struct BlasInfo {
  std::string library;  ///< the resolved path of the shared object defining sgemm_, or "unknown"
  std::string config;   ///< openblas_get_config() for OpenBLAS, else empty
  int threads = -1;     ///< openblas_get_num_threads() for OpenBLAS, else -1 (unknown)
};
BlasInfo blas_info();
/// openblas_set_num_threads(n) when the BLAS is OpenBLAS; false (and nothing changes) otherwise.
bool set_blas_threads(int n);

}  // namespace sqb::task
