#include "inputs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "context.hpp"
#include "sqb/error.hpp"
#include "sqb/safetensors.hpp"
#include "sqb/spec.hpp"

namespace sqbench {

namespace fs = std::filesystem;

namespace {

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// A source spec's value for `key`, or "".
std::string spec_value(const sqb::SpecText& spec, std::string_view key) {
  for (const auto& [k, v] : spec.args)
    if (k == key) return v;
  return "";
}

}  // namespace

std::string file_hash(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw sqb::Error(path.string() + ": cannot read it to fingerprint it (" + std::strerror(errno) + ")");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), &XXH3_freeState);
  if (!state || XXH3_64bits_reset(state.get()) != XXH_OK) throw std::bad_alloc();
  constexpr std::size_t kBlock = std::size_t{1} << 22;
  std::unique_ptr<char[]> buf(new char[kBlock]);
  for (;;) {
    const ssize_t got = ::read(fd, buf.get(), kBlock);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0)
      throw sqb::Error(path.string() + ": reading it to fingerprint it failed (" + std::strerror(errno) +
                       ")");
    if (got == 0) break;
    XXH3_64bits_update(state.get(), buf.get(), static_cast<std::size_t>(got));
  }
  return hex64(XXH3_64bits_digest(state.get()));
}

InputFingerprint fingerprint_stat(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw sqb::Error(path.string() + ": cannot read it to fingerprint it (" + std::strerror(errno) + ")");
  InputFingerprint f;
  f.path = path.string();
  f.size = static_cast<std::uint64_t>(st.st_size);
  char date[32];
  std::tm tm{};
  ::gmtime_r(&st.st_mtim.tv_sec, &tm);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  char ns[16];
  std::snprintf(ns, sizeof ns, ".%09ldZ", static_cast<long>(st.st_mtim.tv_nsec));
  f.mtime = std::string(date) + ns;
  return f;
}

InputFingerprint fingerprint(const fs::path& path) {
  InputFingerprint f = fingerprint_stat(path);
  f.hash = file_hash(path);
  return f;
}

std::vector<fs::path> plan_inputs(const Config& config, const Plan& plan) {
  const fs::path base = fs::absolute(config.path).parent_path();
  std::set<fs::path> files;
  const auto add = [&](const fs::path& p) {
    std::error_code ec;
    const fs::path abs = p.is_relative() ? base / p : p;
    files.insert(fs::weakly_canonical(abs, ec).empty() ? abs.lexically_normal()
                                                       : fs::weakly_canonical(abs, ec));
  };
  const auto weights_file = [](const std::string& w) {
    return !w.empty() && w != "square" && w != "lognormal";
  };
  for (const std::string& d : plan.distributions) {
    const sqb::SpecText spec = sqb::SpecText::parse(d, "distribution");
    if (spec.name != "npy" && spec.name != "safetensors") continue;
    const std::string path = spec_value(spec, "path");
    if (!path.empty()) {
      add(path);
      const std::string tensor = spec_value(spec, "tensor");
      if (spec.name == "safetensors" && fs::path(path).extension() == ".json" && !tensor.empty()) {
        const fs::path abs = fs::path(path).is_relative() ? base / path : fs::path(path);
        add(sqb::safetensors::Checkpoint(abs).file_of(tensor));
      }
    }
    if (const std::string w = spec_value(spec, "weights"); weights_file(w)) add(w);
  }
  for (const sqb::task::TaskSpec& t : plan.task_specs) {
    for (const fs::path& f : sqb::task::dataset_files(t.data))
      add(f);
    if (!t.model.empty()) add(t.model);
  }
  return {files.begin(), files.end()};
}

std::vector<InputFingerprint> fingerprints(const std::vector<fs::path>& files) {
  std::vector<InputFingerprint> out;
  out.reserve(files.size());
  for (const fs::path& f : files)
    out.push_back(fingerprint(f));
  return out;
}

nlohmann::ordered_json inputs_json(const std::vector<InputFingerprint>& inputs) {
  nlohmann::ordered_json j = nlohmann::ordered_json::array();
  for (const InputFingerprint& f : inputs)
    j.push_back({{"path", f.path}, {"size", f.size}, {"mtime", f.mtime}, {"xxh3_64", f.hash}});
  return j;
}

std::optional<std::vector<InputFingerprint>> read_inputs(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  const nlohmann::json root = nlohmann::json::parse(in, nullptr, false);
  if (root.is_discarded()) throw sqb::Error(file.string() + ": not valid JSON");
  const auto inputs = root.is_object() ? root.find("inputs") : root.end();
  if (inputs == root.end()) return std::nullopt;
  const auto bad = [&] {
    return sqb::Error(file.string() + ": \"inputs\" is not a list of {path, size, mtime, xxh3_64}");
  };
  if (!inputs->is_array()) throw bad();
  std::vector<InputFingerprint> out;
  for (const nlohmann::json& v : *inputs) {
    if (!v.is_object()) throw bad();
    const auto path = v.find("path"), size = v.find("size"), mtime = v.find("mtime"),
               hash = v.find("xxh3_64");
    if (path == v.end() || size == v.end() || mtime == v.end() || hash == v.end() || !path->is_string() ||
        !size->is_number_unsigned() || !mtime->is_string() || !hash->is_string()) {
      throw bad();
    }
    out.push_back({path->get<std::string>(), size->get<std::uint64_t>(), mtime->get<std::string>(),
                   hash->get<std::string>()});
  }
  return out;
}

void check_same_inputs(const std::vector<InputFingerprint>& then, const std::vector<InputFingerprint>& now,
                       const std::string& what) {
  std::map<std::string, const InputFingerprint*> old;
  for (const InputFingerprint& f : then)
    old[f.path] = &f;
  for (const InputFingerprint& f : now) {
    const auto it = old.find(f.path);
    if (it == old.end()) {
      throw sqb::Error(what + ": the input " + f.path +
                       " was not read by the run it continues; nothing was changed");
    }
    const InputFingerprint& o = *it->second;
    if (o.size != f.size || o.hash != f.hash) {
      throw sqb::Error(what + ": the input " + f.path + " changed since the results were computed (then " +
                       std::to_string(o.size) + " bytes, modified " + o.mtime + ", xxh3_64 " + o.hash +
                       "; now " + std::to_string(f.size) + " bytes, modified " + f.mtime + ", xxh3_64 " +
                       f.hash + "); nothing was changed: restore the file, or start over with --fresh");
    }
    old.erase(it);
  }
  if (!old.empty()) {
    throw sqb::Error(what + ": the run it continues also read " + old.begin()->first +
                     ", which this run does not; nothing was changed");
  }
}

}  // namespace sqbench
