// The Python module's checkpoint calls: writing safetensors files and reading importance files.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "sqb/error.hpp"
#include "sqb/importance.hpp"
#include "sqb/safetensors.hpp"

namespace py = pybind11;
namespace st = sqb::safetensors;

void add_quantize_checkpoint_binding(py::module_& m);

namespace {

// numpy dtype (kind, itemsize) -> the safetensors dtype that stores it as is.
std::optional<st::DType> dtype_of(char kind, py::ssize_t size) {
  switch (kind) {
    case 'f':
      return size == 8   ? std::optional(st::DType::F64)
             : size == 4 ? std::optional(st::DType::F32)
             : size == 2 ? std::optional(st::DType::F16)
                         : std::nullopt;
    case 'i':
      return size == 8   ? std::optional(st::DType::I64)
             : size == 4 ? std::optional(st::DType::I32)
             : size == 2 ? std::optional(st::DType::I16)
             : size == 1 ? std::optional(st::DType::I8)
                         : std::nullopt;
    case 'u':
      return size == 8   ? std::optional(st::DType::U64)
             : size == 4 ? std::optional(st::DType::U32)
             : size == 2 ? std::optional(st::DType::U16)
             : size == 1 ? std::optional(st::DType::U8)
                         : std::nullopt;
    case 'b':
      return size == 1 ? std::optional(st::DType::BOOL) : std::nullopt;
    default:
      return std::nullopt;
  }
}

st::DType parse_dtype(const std::string& text, const std::string& where) {
  for (const st::DType d : {st::DType::F64, st::DType::F32, st::DType::F16, st::DType::BF16, st::DType::I64,
                            st::DType::I32, st::DType::I16, st::DType::I8, st::DType::U64, st::DType::U32,
                            st::DType::U16, st::DType::U8, st::DType::BOOL}) {
    if (st::dtype_name(d) == text) return d;
  }
  throw sqb::Error(where + ": dtype '" + text +
                   "' is not one write_safetensors writes (F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, "
                   "U16, U8, BOOL)");
}

// One tensor ready to write: its entry and its little-endian bytes (kept alive by `keep`).
struct Pending {
  st::Entry entry;
  py::array keep;             // the contiguous little-endian array whose bytes are written (raw case)
  std::vector<float> values;  // float data to convert (converted case)
  bool convert = false;
};

Pending prepare(const std::string& path, const std::string& name, const py::handle& value) {
  const std::string where = path + ": tensor \"" + name + "\"";
  py::module_ np = py::module_::import("numpy");
  py::object arr_obj = py::reinterpret_borrow<py::object>(value);
  std::optional<std::string> want;
  if (py::isinstance<py::tuple>(value)) {
    const auto t = value.cast<py::tuple>();
    if (t.size() != 2 || !py::isinstance<py::str>(t[1]))
      throw sqb::Error(where + ": a tuple value must be (array, dtype string such as \"BF16\")");
    arr_obj = t[0];
    want = t[1].cast<std::string>();
  }
  py::array a = np.attr("ascontiguousarray")(arr_obj);
  // Little-endian bytes whatever the array's byte order.
  py::object dt = a.attr("dtype");
  if (dt.attr("byteorder").cast<std::string>() == ">") a = a.attr("astype")(dt.attr("newbyteorder")("<"));
  const char kind = a.dtype().kind();
  const py::ssize_t size = a.dtype().itemsize();
  const auto native = dtype_of(kind, size);
  Pending p;
  p.entry.name = name;
  for (py::ssize_t d = 0; d < a.ndim(); ++d)
    p.entry.shape.push_back(static_cast<std::size_t>(a.shape(d)));
  if (!want) {
    if (!native) {
      throw sqb::Error(where + ": numpy dtype " + py::str(a.dtype()).cast<std::string>() +
                       " has no safetensors dtype (give float64/32/16, (u)int8..64 or bool, or a tuple "
                       "(array, \"BF16\"))");
    }
    p.entry.dtype = *native;
    p.keep = a;
    return p;
  }
  p.entry.dtype = parse_dtype(*want, where);
  const std::size_t want_bytes = st::dtype_bits(p.entry.dtype) / 8;
  if (native && *native == p.entry.dtype) {
    p.keep = a;
  } else if (kind == 'f' && (p.entry.dtype == st::DType::F32 || p.entry.dtype == st::DType::F16 ||
                             p.entry.dtype == st::DType::BF16 || p.entry.dtype == st::DType::F64)) {
    // Float values converted to the stored dtype (BF16 and F16 rounded to nearest even).
    py::array_t<float, py::array::c_style | py::array::forcecast> f(a);
    p.values.assign(f.data(), f.data() + f.size());
    p.convert = true;
  } else if ((kind == 'i' || kind == 'u') && static_cast<std::size_t>(size) == want_bytes) {
    p.keep = a;  // the stored bits themselves, e.g. a bfloat16 tensor's int16 view
  } else {
    throw sqb::Error(where + ": cannot store numpy dtype " + py::str(a.dtype()).cast<std::string>() + " as " +
                     *want + " (give float values to convert, or integers of the same width as raw bits)");
  }
  return p;
}

void write_safetensors(const std::string& path, const py::dict& tensors,
                       const std::optional<std::map<std::string, std::string>>& metadata) {
  std::vector<Pending> pending;
  for (const auto& [k, v] : tensors) {
    if (!py::isinstance<py::str>(k)) throw sqb::Error(path + ": tensor names must be strings");
    pending.push_back(prepare(path, k.cast<std::string>(), v));
  }
  std::vector<st::Entry> entries;
  for (const Pending& p : pending)
    entries.push_back(p.entry);
  py::gil_scoped_release release;
  st::Writer w(path, std::move(entries), metadata.value_or(std::map<std::string, std::string>{}));
  for (const Pending& p : pending) {
    if (p.convert) {
      w.write_values(p.entry.name, p.values);
    } else {
      const auto* bytes = static_cast<const unsigned char*>(p.keep.data());
      w.write(p.entry.name, {bytes, static_cast<std::size_t>(p.keep.nbytes())});
    }
  }
  w.commit();
}

py::dict read_importance(const std::string& path, const std::optional<std::vector<std::string>>& rename) {
  sqb::Importance imp;
  {
    py::gil_scoped_release release;
    imp = sqb::read_importance(path, rename.value_or(std::vector<std::string>{}));
  }
  py::dict out;
  for (const auto& [name, v] : imp.vectors) {
    py::array_t<float> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    out[py::str(name)] = a;
  }
  return out;
}

}  // namespace

void add_checkpoint_bindings(py::module_& m) {
  m.def(
      "write_safetensors", &write_safetensors, py::arg("path"), py::arg("tensors"),
      py::arg("metadata") = py::none(),
      "Write a safetensors file: tensors is a dict name -> numpy array (stored in its own dtype: float64/32/"
      "16, (u)int8..64, bool) or (array, dtype) with dtype a safetensors name such as \"BF16\" (float "
      "values are converted, BF16 and F16 by round-to-nearest-even exactly as torch's .to(); integers of "
      "the same width are taken as the stored bits). metadata: optional dict str -> str (__metadata__). "
      "The file is written under a temporary name and renamed when complete; tensors are 8-byte-aligned "
      "as the format allows. ValueError for a bad name, dtype or I/O failure.");
  m.def(
      "read_importance", &read_importance, py::arg("path"), py::arg("rename") = py::none(),
      "An importance file (safetensors of 1-D float vectors named like the weights: the mean of x^2 per "
      "input channel; or llama.cpp's imatrix, GGUF or legacy .dat, its Llama names mapped to Hugging Face's; "
      "rename: a list of 'FROM=TO' regex rules) as a dict name -> float32 array. ValueError for a vector "
      "that is not 1-D, empty, "
      "negative or non-finite (naming the tensor and index).");
  add_quantize_checkpoint_binding(m);
}

#include <tuple>

#include "sqb/checkpoint.hpp"
#include "sqb/quantize.hpp"

namespace {

py::list quantize_checkpoint_py(const std::string& input, const std::string& out,
                                const std::optional<std::string>& spec, std::optional<int> bits,
                                std::optional<std::size_t> k, const std::string& granularity,
                                const std::optional<std::string>& rules,
                                const std::optional<std::string>& importance, int threads, bool pack,
                                bool opt_ratio, bool coded,
                                const std::optional<std::vector<std::string>>& rename, bool resume,
                                const std::optional<std::string>& shard) {
  sqb::CheckpointOptions o;
  o.input = input;
  o.out = out;
  o.spec = spec.value_or("");
  if (bits && k) throw sqb::Error("give bits= or k=, not both");
  if (bits) o.k = sqb::codes_for_bits(*bits);
  if (k) o.k = *k;
  o.granularity = granularity;
  if (rules) {
    // A path to a rules file, or the rules' INI text itself.
    if (rules->find('[') == std::string::npos) {
      std::ifstream f(*rules, std::ios::binary);
      if (!f) throw sqb::Error(*rules + ": cannot open the rules file");
      std::stringstream ss;
      ss << f.rdbuf();
      o.rules = sqb::parse_rules(ss.str(), *rules);
    } else {
      o.rules = sqb::parse_rules(*rules, "rules");
    }
  }
  if (importance) o.importance = *importance;
  if (rename) o.rename = *rename;
  o.threads = threads;
  o.pack = pack;
  o.opt_ratio = opt_ratio;
  o.coded = coded;
  o.resume = resume;
  if (shard) std::tie(o.shard_index, o.shard_count) = sqb::parse_shard(*shard);
  o.command = "sqbench.quantize_checkpoint (Python)";
  std::vector<sqb::ReportRow> rows;
  {
    py::gil_scoped_release release;
    rows = sqb::quantize_checkpoint(o);
  }
  py::list out_rows;
  for (const sqb::ReportRow& r : rows) {
    py::dict d;
    for (const std::string& c : sqb::report_columns()) {
      const auto it = r.find(c);
      d[py::str(c)] = it == r.end() ? std::string() : it->second;
    }
    out_rows.append(d);
  }
  return out_rows;
}

}  // namespace

void add_quantize_checkpoint_binding(py::module_& m) {
  m.def("quantize_checkpoint", &quantize_checkpoint_py, py::arg("input"), py::arg("out"), py::kw_only(),
        py::arg("spec") = py::none(), py::arg("bits") = py::none(), py::arg("k") = py::none(),
        py::arg("granularity") = "channel", py::arg("rules") = py::none(), py::arg("importance") = py::none(),
        py::arg("threads") = 0, py::arg("pack") = false, py::arg("opt_ratio") = false,
        py::arg("coded") = false, py::arg("rename") = py::none(), py::arg("resume") = false,
        py::arg("shard") = py::none(),
        "What `sqbench quantize` does: quantize a safetensors checkpoint into the folder `out` "
        "(model.safetensors or the input's shards, report.csv, manifest.json, packed.safetensors with pack). "
        "rules: a rules file's path or its INI text. Returns the report rows (dicts of report.csv's columns "
        "as text; the totals row last). resume=True continues an interrupted run into `out` (the same inputs "
        "and options); shard=\"i/n\" quantizes part i of n into out/shard-i-of-n/ (assembled by "
        "merge_checkpoint_shards or `sqbench merge`).");
  m.def(
      "merge_checkpoint_shards",
      [](const std::vector<std::string>& shards, const std::string& out) {
        std::vector<std::filesystem::path> dirs(shards.begin(), shards.end());
        std::vector<sqb::ReportRow> rows;
        {
          py::gil_scoped_release release;
          rows = sqb::merge_checkpoint_shards(dirs, out, "sqbench.merge_checkpoint_shards (Python)");
        }
        py::list out_rows;
        for (const sqb::ReportRow& r : rows) {
          py::dict d;
          for (const std::string& c : sqb::report_columns()) {
            const auto it = r.find(c);
            d[py::str(c)] = it == r.end() ? std::string() : it->second;
          }
          out_rows.append(d);
        }
        return out_rows;
      },
      py::arg("shards"), py::arg("out"),
      "What `sqbench merge` does with the shard folders of quantize_checkpoint(..., shard=\"i/n\"): the "
      "checkpoint, index, report.csv and manifest.json in `out`, byte for byte one unsharded run's; returns "
      "the report rows.");
}
