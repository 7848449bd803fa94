// The `safetensors` source: one tensor of a safetensors checkpoint (a file, or a sharded checkpoint's
// index), memory-mapped, so only that tensor's bytes are read; tensor=PATTERN is expanded into one source per
// matching tensor.

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "sources/file_source.hpp"
#include "sources/sources.hpp"
#include "sqb/error.hpp"
#include "sqb/safetensors.hpp"

namespace sqb {

namespace fs = std::filesystem;
namespace st = safetensors;

namespace {

// One Checkpoint per file while any source holds it: a glob over a model's tensors makes hundreds of sources,
// and each opening its own mapping would parse the header hundreds of times and map the file as often
// (address space a `ulimit -v` counts). A file replaced on disk (another size or time) is opened afresh.
std::shared_ptr<const st::Checkpoint> open_checkpoint(const fs::path& path) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<const st::Checkpoint>> open;
  std::string key = path.string();
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    for (const auto v : {static_cast<long long>(info.st_dev), static_cast<long long>(info.st_ino),
                         static_cast<long long>(info.st_size), static_cast<long long>(info.st_mtim.tv_sec),
                         static_cast<long long>(info.st_mtim.tv_nsec)}) {
      key.push_back('|');
      key.append(std::to_string(v));
    }
  }
  const std::lock_guard lock(mu);
  if (auto c = open[key].lock()) return c;
  auto c = std::make_shared<const st::Checkpoint>(path);
  open[key] = c;
  for (auto it = open.begin(); it != open.end();)  // forget the expired ones
    it = it->second.expired() ? open.erase(it) : std::next(it);
  return c;
}

bool is_pattern(std::string_view name) {
  return name.find_first_of("*?[") != std::string_view::npos;
}

bool is_checkpoint(const fs::path& p) {
  return p.extension() == ".safetensors" || p.extension() == ".json";
}

class SafetensorsSource final : public sources::FileSource {
 public:
  SafetensorsSource(const fs::path& file, std::string tensor, const fs::path& weights_file,
                    sources::FileSettings settings)
      : FileSource(std::move(settings)),
        file_(file),
        tensor_(std::move(tensor)),
        weights_file_(weights_file) {
    checkpoint_ = open_checkpoint(file_);
    if (checkpoint_->names().empty() ||
        !std::binary_search(checkpoint_->names().begin(), checkpoint_->names().end(), tensor_)) {
      if (is_pattern(tensor_)) {
        throw Error(file_.string() + ": tensor=" + tensor_ +
                    " is a pattern; the config loader expands it into one distribution per tensor "
                    "(sqb::expand_source_spec), and this spec reached the data source unexpanded");
      }
      checkpoint_->info(tensor_);  // throws: no such tensor, listing names near it
    }
    const auto meta = checkpoint_->metadata_of(tensor_);
    if (const auto f = meta.find("format"); f != meta.end()) framework_ = f->second;
    if (!weights_file_.empty() && is_checkpoint(weights_file_)) weights_ = open_checkpoint(weights_file_);
    open();
  }

 private:
  sources::FileTensor read() const override {
    st::Array a = checkpoint_->read(tensor_);
    return {std::move(a.shape), std::move(a.values)};
  }

  // Weights from a .npy of the same shape, or from the tensor of the same name in another checkpoint (a
  // Fisher or activation-statistics file saved beside the model).
  std::vector<float> read_weights(const std::vector<std::size_t>& shape) const override {
    if (weights_file_.empty()) return {};
    std::vector<std::size_t> got;
    std::vector<float> values;
    if (weights_) {
      st::Array w = weights_->read(tensor_);
      got = std::move(w.shape);
      values = std::move(w.values);
    } else {
      npy::Array w = npy::read(weights_file_);
      if (!npy::is_floating(w.format.dtype)) {
        throw Error(weights_file_.string() + ": holds " + std::string(npy::dtype_name(w.format.dtype)) +
                    " values; weights are float16/float32/float64");
      }
      got = std::move(w.shape);
      values = std::move(w.values);
    }
    if (got != shape) {
      throw Error(weights_file_.string() + ": weights of shape " + npy::shape_text(got) + " for tensor \"" +
                  tensor_ + "\" of shape " + npy::shape_text(shape) + " (" + file_.string() +
                  "); they must match");
    }
    return values;
  }

  std::string layout_name() const override { return tensor_; }
  std::string framework() const override { return framework_; }
  std::string what() const override { return file_.string() + ": tensor \"" + tensor_ + "\""; }

  fs::path file_;
  std::string tensor_;
  fs::path weights_file_;
  std::shared_ptr<const st::Checkpoint> checkpoint_, weights_;
  std::string framework_;
};

}  // namespace

namespace sources {

std::span<const ParamSpec> safetensors_params() {
  static const std::vector<ParamSpec> params = [] {
    std::vector<ParamSpec> p = {
        {"path",
         ParamSpec::Kind::text,
         "",
         0,
         0,
         false,
         {},
         "the .safetensors file, or a sharded checkpoint's model.safetensors.index.json (its weight_map is "
         "followed), relative to the config's folder"},
        {"tensor",
         ParamSpec::Kind::text,
         "",
         0,
         0,
         false,
         {},
         "the tensor's name, or a pattern (*, ?, [...]; e.g. *.mlp.*.weight): one distribution per matching "
         "tensor (sorted), expanded when the config is read"},
    };
    for (ParamSpec& f : file_params(", or a safetensors file (its tensor of the same name)"))
      p.push_back(std::move(f));
    return p;
  }();
  return params;
}

std::unique_ptr<Source> make_safetensors(const Params& p, const SourceContext& ctx) {
  if (!p.given("path")) {
    p.fail("path", "is required: the .safetensors file (or model.safetensors.index.json) to read");
  }
  if (!p.given("tensor")) p.fail("tensor", "is required: the tensor's name, or a pattern such as *.weight");
  fs::path weights_file;
  FileSettings settings = file_settings(p, ctx, weights_file);
  try {
    return std::make_unique<SafetensorsSource>(resolve(p.text("path"), ctx.base_dir), p.text("tensor"),
                                               weights_file, std::move(settings));
  } catch (const Error& e) {
    // Opening the file (its header) and finding the tensor: named after the spec, like reading it.
    if (std::string_view(e.what()).starts_with(p.context())) throw;
    throw Error(p.context() + ": " + e.what());
  }
}

std::vector<SourceSpec> expand_safetensors(const SpecText& text, const SourceContext& ctx) {
  const std::string context = "distribution \"" + text.canonical() + "\"";
  std::string path, tensor;
  for (const auto& [k, v] : text.args) {
    if (k == "path") path = v;
    if (k == "tensor") tensor = v;
  }
  if (path.empty() || tensor.empty())
    return {{text.canonical(), text.canonical()}};  // make_ says what is missing
  std::vector<std::string> names{tensor};
  if (is_pattern(tensor)) {
    try {
      const auto checkpoint = open_checkpoint(resolve(path, ctx.base_dir));
      if (!std::binary_search(checkpoint->names().begin(), checkpoint->names().end(), tensor))
        names = checkpoint->match(tensor);
    } catch (const Error& e) {
      throw Error(context + ": " + e.what());
    }
  }
  std::vector<SourceSpec> out;
  for (const std::string& name : names) {
    if (name.find_first_of(" \t\r\n") != std::string::npos) {
      throw Error(
          context + ": tensor=" + tensor + " matches \"" + name +
          "\", whose name holds a blank; a spec value cannot (select the others with a narrower pattern)");
    }
    SpecText one = text;
    for (auto& kv : one.args) {
      if (kv.first == "tensor") kv.second = name;
    }
    narrow_layout(one, name, context);
    out.push_back({one.canonical(), name});
  }
  return out;
}

}  // namespace sources

}  // namespace sqb
