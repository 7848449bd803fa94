#include "task_cells.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "csv.hpp"
#include "files.hpp"
#include "sqb/cell.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"

namespace sqbench {

namespace fs = std::filesystem;
using sqb::Col;
namespace task = sqb::task;

namespace {

// An exclusive flock on a file, held while the object lives. flock locks belong to the open file
// description, so two threads of this process that each open the file exclude each other as two processes do.
class FileLock {
 public:
  explicit FileLock(const fs::path& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw sqb::Error(path.string() + ": cannot create the lock file (" + std::strerror(errno) + ")");
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd_);
      throw sqb::Error(path.string() + ": cannot lock (" + std::strerror(err) + ")");
    }
  }
  ~FileLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

std::string layer_file(std::size_t l, const char* what) {
  return "layer" + std::to_string(l) + "." + what + ".npy";
}

// training.txt: "key = value" lines, for people and for the fp32 cell's train_s on later runs.
double read_train_seconds(const fs::path& file) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("train_s = ", 0) == 0) {
      if (const auto v = parse_field_number(line.substr(10))) return *v;
    }
  }
  throw sqb::Error(file.string() +
                   ": no 'train_s = ...' line (the model folder is damaged: delete it to retrain)");
}

std::string numbers_text(const std::vector<double>& v) {
  std::string s;
  for (const double x : v) {
    if (!s.empty()) s += ' ';
    s += format_number(x, 6);
  }
  return s;
}

}  // namespace

fs::path model_dir(const fs::path& out, const task::TaskSpec& spec, std::uint64_t seed) {
  return out / "models" / task::text_hash(task::model_key(spec, seed));
}

TaskRunner::TaskRunner(const Plan& plan, fs::path out, std::function<void(const std::string&)> note)
    : plan_(plan), out_(std::move(out)), note_(std::move(note)) {}

TaskRunner::Data& TaskRunner::data(const fs::path& dir) {
  std::shared_ptr<std::pair<std::mutex, std::unique_ptr<Data>>> slot;
  {
    std::lock_guard lock(mu_);
    auto& s = data_[dir.string()];
    if (!s) s = std::make_shared<std::pair<std::mutex, std::unique_ptr<Data>>>();
    slot = s;
  }
  std::lock_guard lock(slot->first);
  if (!slot->second) {
    auto d = std::make_unique<Data>();
    d->split = task::load_dataset(dir);
    slot->second = std::move(d);
  }
  return *slot->second;
}

const task::Dataset& TaskRunner::train_set(const task::TaskSpec& spec) {
  Data& d = data(spec.data);
  if (spec.train_n == 0 || spec.train_n >= d.split.train.count) return d.split.train;
  std::lock_guard lock(mu_);  // heads are added under the map lock; a std::map entry never moves
  auto it = d.heads.find(spec.train_n);
  if (it == d.heads.end()) it = d.heads.emplace(spec.train_n, d.split.train.head(spec.train_n)).first;
  return it->second;
}

task::TrainedModel TaskRunner::train_or_load(const task::TaskSpec& spec, std::uint64_t seed) {
  task::TrainedModel m = train_or_load_weights(spec, seed);
  // One forward pass over the training set; cheap beside the Fisher diagonal, so not kept on disk.
  m.activations = task::activation_importance(m.mlp, train_set(spec));
  return m;
}

task::TrainedModel TaskRunner::train_or_load_weights(const task::TaskSpec& spec, std::uint64_t seed) {
  const std::string key = task::model_key(spec, seed);
  if (!spec.model.empty()) {
    // A given checkpoint is the float model: nothing is trained or cached; its statistics come from it.
    const task::Dataset& train = train_set(spec);
    task::TrainedModel m;
    m.mlp = task::load_safetensors(spec.model, task::model_spec(spec, train.features()));
    m.fisher = task::fisher_diagonal(m.mlp, train);
    ++loaded_;
    note_("float model " + key + ": read from " + spec.model.string());
    return m;
  }
  const fs::path dir = model_dir(out_, spec, seed);
  ensure_writable_dir(dir.parent_path());
  // Another job or process may be training this model now: wait for it rather than train it twice.
  const FileLock lock(dir.parent_path() / (dir.filename().string() + ".lock"));
  const task::Dataset& train = train_set(spec);
  const task::ModelSpec mspec = task::model_spec(spec, train.features());
  task::TrainedModel m;
  if (task::model_saved(dir)) {
    m.mlp = task::load_model(dir, mspec, key);
    for (std::size_t l = 0; l < mspec.layers(); ++l) {
      const fs::path f = dir / layer_file(l, "fisher");
      sqb::npy::Array a = sqb::npy::read(f);
      const sqb::Tensor& w = m.mlp.weights[l];
      if (a.shape != std::vector<std::size_t>{w.rows, w.cols}) {
        throw sqb::Error(f.string() + ": holds " + sqb::npy::shape_text(a.shape) + ", expected (" +
                         std::to_string(w.rows) + ", " + std::to_string(w.cols) +
                         ") (the model folder is damaged: delete it to retrain)");
      }
      m.fisher.emplace_back(w.rows, w.cols, std::move(a.values));
    }
    m.train_s = read_train_seconds(dir / "training.txt");
    // A folder from before the models were also kept under torch's names gets its safetensors file now.
    if (!fs::exists(dir / "model.safetensors"))
      task::save_safetensors(dir / "model.safetensors", m.mlp, {{"sqbench_model_key", key}});
    ++loaded_;
    note_("float model " + key + ": loaded from " + dir.string());
    return m;
  }
  note_("float model " + key + ": training (" + std::to_string(spec.epochs) +
        (spec.epochs == 1 ? " epoch on " : " epochs on ") + std::to_string(train.count) + " images)");
  m.mlp = task::init_mlp(mspec, seed);
  task::TrainOptions o;
  o.epochs = spec.epochs;
  o.batch = spec.batch;
  o.adamw.lr = spec.lr;
  o.adamw.weight_decay = spec.weight_decay;
  o.seed = seed;
  const task::TrainReport r = task::train(m.mlp, train, o);
  m.fisher = task::fisher_diagonal(m.mlp, train);
  m.train_s = r.seconds;
  const task::Evaluation e = task::evaluate(m.mlp, data(spec.data).split.test);
  const task::BlasInfo blas = task::blas_info();
  std::ostringstream t;
  t << "# sqbench float model training (model.txt is written last: a folder without it is incomplete)\n"
    << "key = " << key << "\n"
    << "train_s = " << format_number(r.seconds, 6) << "\n"
    << "steps = " << r.steps << "\n"
    << "epoch_loss = " << numbers_text(r.epoch_loss) << "\n"
    << "test_accuracy = " << format_number(e.accuracy, 6) << "\n"
    << "test_loss = " << format_number(e.loss, 6) << "\n"
    << "blas = " << blas.library << "\n"
    << "blas_threads = " << blas.threads << "\n";
  task::save_fisher(dir, m.fisher);
  write_file_atomic(dir / "training.txt", t.str());
  task::save_model(dir, m.mlp, key);  // model.txt last
  ++trained_;
  char acc[32];
  std::snprintf(acc, sizeof acc, "%.2f%%", 100 * e.accuracy);
  note_("float model " + key + ": trained in " + format_number(r.seconds, 3) + " s, test accuracy " + acc +
        "; saved to " + dir.string());
  return m;
}

const task::TrainedModel& TaskRunner::model(std::size_t t, std::uint64_t seed) {
  const task::TaskSpec& spec = plan_.task_specs[t];
  std::shared_ptr<std::pair<std::mutex, std::unique_ptr<task::TrainedModel>>> slot;
  {
    std::lock_guard lock(mu_);
    auto& s = models_[task::model_key(spec, seed)];
    if (!s) s = std::make_shared<std::pair<std::mutex, std::unique_ptr<task::TrainedModel>>>();
    slot = s;
  }
  std::lock_guard lock(slot->first);
  if (!slot->second) slot->second = std::make_unique<task::TrainedModel>(train_or_load(spec, seed));
  return *slot->second;
}

void TaskRunner::prepare(const std::vector<std::size_t>& cells, int jobs, const std::atomic<bool>& stop) {
  std::vector<std::pair<std::size_t, std::uint64_t>> todo;
  std::set<std::string> keys;
  for (const std::size_t i : cells) {
    const Cell& c = plan_.cells[i];
    if (!c.is_task()) continue;
    if (keys.insert(task::model_key(plan_.task_specs[c.d], c.seed)).second) todo.emplace_back(c.d, c.seed);
  }
  std::atomic<std::size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mu;
  const auto work = [&] {
    for (std::size_t i = next++; i < todo.size() && !stop; i = next++) {
      try {
        model(todo[i].first, todo[i].second);
      } catch (...) {
        std::lock_guard lock(failure_mu);
        if (!failure) failure = std::current_exception();
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int j = 1; j < std::min<int>(jobs, static_cast<int>(todo.size())); ++j)
    pool.emplace_back(work);
  work();
  for (std::thread& t : pool)
    t.join();
  if (failure) std::rethrow_exception(failure);
}

std::vector<std::string> TaskRunner::run(const Config& config, const Cell& c) {
  const task::TaskSpec& spec = plan_.task_specs[c.d];
  const task::CellResult r = task::evaluate_cell(plan_.library_cell(c), spec, model(c.d, c.seed),
                                                 train_set(spec), data(spec.data).split.test);
  std::vector<std::string> row = plan_.key_fields(c);
  row.resize(plan_.header.size());
  for (const sqb::Figure& f : r.figures.figures) {
    row[plan_.position(f.column)] =
        std::isnan(f.value) ? "" : format_number(f.value, f.column == Col::converged ? 4 : 10);
  }
  for (const sqb::FigureList& f : r.figures.lists)
    row[plan_.position(f.column)] = numbers_text(f.values);
  row[plan_.position(Col::train_s)] = format_number(r.train_s, 6);
  row[plan_.position(Col::config_hash)] = config.hash;
  return row;
}

}  // namespace sqbench
