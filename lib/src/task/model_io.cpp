// A trained float model on disk: one .npy per weight matrix and bias, the same tensors as model.safetensors
// under PyTorch's names (for torch and `sqbench quantize`), and model.txt (written last) with the key it was
// trained under and the key's hash, so a cached model is reused only for the same spec and seed.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "sqb/error.hpp"
#include "sqb/npy.hpp"
#include "sqb/safetensors.hpp"
#include "sqb/task.hpp"

namespace sqb::task {

namespace {

namespace fs = std::filesystem;

constexpr const char* kModelFile = "model.txt";

std::string layer_file(std::size_t l, std::string_view what) {
  return "layer" + std::to_string(l) + "." + std::string(what) + ".npy";
}

std::string list_text(const std::vector<std::size_t>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s.empty() ? "none" : s;
}

// Temporary file beside the target, fsync, rename, fsync of the folder: the target is whole or absent.
void write_atomically(const fs::path& path, const std::string& text) {
  const std::string tmp = path.string() + ".tmp" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path.string() + ": cannot write: " + std::strerror(errno));
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(path.string() + ": cannot write: " + std::strerror(err));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(path.string() + ": cannot write: " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(path.string() + ": cannot write: " + std::strerror(err));
  }
  const int dfd =
      ::open(path.parent_path().empty() ? "." : path.parent_path().c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void make_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) throw Error(dir.string() + ": cannot create the folder: " + ec.message());
}

}  // namespace

void save_model(const fs::path& dir, const Mlp& model, std::string_view key) {
  model.validate();
  if (key.find('\n') != std::string_view::npos) throw Error("save_model: the key must be one line");
  make_dir(dir);
  // A model replaced in place is incomplete until its new model.txt lands.
  std::error_code ec;
  fs::remove(dir / kModelFile, ec);
  for (std::size_t l = 0; l < model.weights.size(); ++l) {
    const Tensor& w = model.weights[l];
    const std::size_t shape[2] = {w.rows, w.cols};
    npy::write(dir / layer_file(l, "weight"), shape, w.values);
    if (model.spec.bias) {
      const std::size_t bshape[1] = {model.biases[l].size()};
      npy::write(dir / layer_file(l, "bias"), bshape, model.biases[l]);
    }
  }
  save_safetensors(dir / "model.safetensors", model, {{"sqbench_model_key", std::string(key)}});
  std::ostringstream s;
  s << "# sqbench float model: layer<l>.weight.npy is [out, in] float32; model.safetensors holds the same "
       "tensors under torch's names (nn.Sequential(Linear, ReLU, Linear): 0.weight, 2.weight)\n"
    << "key = " << key << "\n"
    << "hash = " << text_hash(key) << "\n"
    << "inputs = " << model.spec.inputs << "\n"
    << "hidden = " << list_text(model.spec.hidden) << "\n"
    << "classes = " << model.spec.classes << "\n"
    << "bias = " << (model.spec.bias ? 1 : 0) << "\n";
  write_atomically(dir / kModelFile, s.str());
}

bool model_saved(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / kModelFile, ec);
}

Mlp load_model(const fs::path& dir, const ModelSpec& spec, std::string_view key) {
  spec.validate();
  const fs::path info = dir / kModelFile;
  const std::string name = info.string();
  std::ifstream in(info);
  if (!in)
    throw Error(name + ": cannot open: " + std::strerror(errno) + " (no saved model in " + dir.string() +
                ")");
  std::map<std::string, std::string> kv;
  std::size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find(" = ");
    if (eq == std::string::npos)
      throw Error(name + ":" + std::to_string(line_no) + ": not of the form 'key = value'");
    kv[line.substr(0, eq)] = line.substr(eq + 3);
  }
  for (const char* k : {"key", "hash", "inputs", "hidden", "classes", "bias"}) {
    if (!kv.contains(k)) throw Error(name + ": missing '" + std::string(k) + " = ...'");
  }
  if (kv["hash"] != text_hash(kv["key"])) {
    throw Error(name + ": the hash " + kv["hash"] + " does not match its key (hash " + text_hash(kv["key"]) +
                "): the file was edited or damaged");
  }
  if (kv["key"] != key) {
    throw Error(name + ": holds the model for \"" + kv["key"] + "\" (hash " + kv["hash"] + "), not for \"" +
                std::string(key) + "\" (hash " + text_hash(key) + ")");
  }
  const std::string want = std::to_string(spec.inputs) + " " + list_text(spec.hidden) + " " +
                           std::to_string(spec.classes) + " " + (spec.bias ? "1" : "0");
  const std::string have = kv["inputs"] + " " + kv["hidden"] + " " + kv["classes"] + " " + kv["bias"];
  if (want != have) {
    throw Error(name + ": the saved network (inputs hidden classes bias: " + have +
                ") is not the one expected (" + want + ")");
  }
  Mlp m;
  m.spec = spec;
  const auto sizes = spec.sizes();
  for (std::size_t l = 0; l < spec.layers(); ++l) {
    const fs::path wf = dir / layer_file(l, "weight");
    npy::Array a = npy::read(wf);
    if (a.format.dtype != npy::DType::float32 ||
        a.shape != std::vector<std::size_t>{sizes[l + 1], sizes[l]}) {
      throw Error(wf.string() + ": holds " + std::string(npy::dtype_name(a.format.dtype)) + " " +
                  npy::shape_text(a.shape) + ", expected float32 (" + std::to_string(sizes[l + 1]) + ", " +
                  std::to_string(sizes[l]) + ")");
    }
    m.weights.emplace_back(sizes[l + 1], sizes[l], std::move(a.values));
    std::vector<float> b;
    if (spec.bias) {
      const fs::path bf = dir / layer_file(l, "bias");
      npy::Array ba = npy::read(bf);
      if (ba.format.dtype != npy::DType::float32 || ba.shape != std::vector<std::size_t>{sizes[l + 1]}) {
        throw Error(bf.string() + ": holds " + std::string(npy::dtype_name(ba.format.dtype)) + " " +
                    npy::shape_text(ba.shape) + ", expected float32 (" + std::to_string(sizes[l + 1]) + ",)");
      }
      b = std::move(ba.values);
    }
    m.biases.push_back(std::move(b));
  }
  m.validate();
  return m;
}

std::string torch_name(std::size_t layer, bool bias) {
  return std::to_string(2 * layer) + (bias ? ".bias" : ".weight");
}

void save_safetensors(const fs::path& path, const Mlp& model, std::map<std::string, std::string> metadata) {
  model.validate();
  namespace st = sqb::safetensors;
  std::vector<st::Entry> entries;
  for (std::size_t l = 0; l < model.weights.size(); ++l) {
    entries.push_back({torch_name(l), st::DType::F32, {model.weights[l].rows, model.weights[l].cols}});
    if (model.spec.bias) entries.push_back({torch_name(l, true), st::DType::F32, {model.biases[l].size()}});
  }
  metadata.try_emplace("format", "pt");
  st::Writer w(path, std::move(entries), std::move(metadata));
  for (std::size_t l = 0; l < model.weights.size(); ++l) {
    w.write_values(torch_name(l), model.weights[l].values);
    if (model.spec.bias) w.write_values(torch_name(l, true), model.biases[l]);
  }
  w.commit();
}

Mlp load_safetensors(const fs::path& path, const ModelSpec& spec) {
  spec.validate();
  namespace st = sqb::safetensors;
  const std::string name = path.string();
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(name + ": no such file (model= names a safetensors checkpoint)");
  const st::Checkpoint ck(path);
  const auto sizes = spec.sizes();
  std::vector<std::string> expected;
  for (std::size_t l = 0; l < spec.layers(); ++l) {
    expected.push_back(torch_name(l));
    if (spec.bias) expected.push_back(torch_name(l, true));
  }
  std::string list;
  for (const std::string& e : expected)
    list += (list.empty() ? "" : ", ") + e;
  const std::string network = "the network (inputs " + std::to_string(spec.inputs) + ", hidden " +
                              list_text(spec.hidden) + ", bias " + (spec.bias ? "1" : "0") +
                              ") has the tensors " + list;
  for (const std::string& t : ck.names()) {
    if (std::find(expected.begin(), expected.end(), t) == expected.end())
      throw Error(name + ": tensor \"" + t + "\" is not part of the network: " + network +
                  " (set hidden= and bias= to the checkpoint's network)");
  }
  const auto read = [&](const std::string& tensor, std::vector<std::size_t> shape) {
    if (std::find(ck.names().begin(), ck.names().end(), tensor) == ck.names().end())
      throw Error(name + ": no tensor \"" + tensor + "\": " + network);
    const st::TensorInfo info = ck.info(tensor);
    if (info.dtype != st::DType::F32 && info.dtype != st::DType::BF16 && info.dtype != st::DType::F16)
      throw Error(name + ": tensor \"" + tensor + "\" is " + std::string(st::dtype_name(info.dtype)) +
                  "; a model tensor must be F32, BF16 or F16");
    if (info.shape != shape) {
      const auto text = [](const std::vector<std::size_t>& v) {
        std::string t = "[";
        for (std::size_t i = 0; i < v.size(); ++i)
          t += (i ? ", " : "") + std::to_string(v[i]);
        return t + "]";
      };
      throw Error(name + ": tensor \"" + tensor + "\" has shape " + text(info.shape) + ", expected " +
                  text(shape) + " ([out, in] as torch.nn.Linear; set hidden= to the checkpoint's widths)");
    }
    st::Array a = ck.read(tensor);
    for (std::size_t i = 0; i < a.values.size(); ++i) {
      if (!std::isfinite(a.values[i]))
        throw Error(name + ": tensor \"" + tensor + "\" holds a non-finite value at flat index " +
                    std::to_string(i));
    }
    return std::move(a.values);
  };
  Mlp m;
  m.spec = spec;
  for (std::size_t l = 0; l < spec.layers(); ++l) {
    m.weights.emplace_back(sizes[l + 1], sizes[l], read(torch_name(l), {sizes[l + 1], sizes[l]}));
    m.biases.push_back(spec.bias ? read(torch_name(l, true), {sizes[l + 1]}) : std::vector<float>{});
  }
  m.validate();
  return m;
}

void save_fisher(const fs::path& dir, std::span<const Tensor> fisher) {
  make_dir(dir);
  for (std::size_t l = 0; l < fisher.size(); ++l) {
    const std::size_t shape[2] = {fisher[l].rows, fisher[l].cols};
    npy::write(dir / layer_file(l, "fisher"), shape, fisher[l].values);
  }
}

}  // namespace sqb::task
