// The Python module `sqbench`: a thin front door to the library's calls (sqb::quantize, the registry, the
// data-free codebooks). numpy arrays in and out; float32 C-contiguous input is quantized in place, without a
// copy; the GIL is released while quantizing; sqb::Error becomes ValueError with the CLI's message.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "sqb/layout.hpp"
#include "sqb/sqb.hpp"

namespace py = pybind11;

namespace {

// The input as rows x cols float32 values: a view of the caller's buffer when it is float32 and C-contiguous,
// else a converted copy (float16 exactly; float64 rounded to nearest, an error beyond float32's range).
struct Input {
  std::vector<std::size_t> shape;  // the input's own shape
  std::size_t rows = 1, cols = 1;
  std::vector<float> copy;  // empty when viewing the caller's buffer
  std::span<const float> values;
};

Input read_input(const py::buffer& x, const char* what) {
  const py::buffer_info info = x.request();
  Input in;
  std::size_t n = 1;
  for (const py::ssize_t d : info.shape) {
    in.shape.push_back(static_cast<std::size_t>(d));
    n *= static_cast<std::size_t>(d);
  }
  if (n == 0) throw sqb::Error(std::string(what) + ": the array is empty (shape has a zero)");
  // 1-D is one row; 2-D rows x cols; higher ranks rows = first axis (PyTorch's [out, in, ...]).
  if (in.shape.size() >= 2) {
    in.rows = in.shape[0];
    in.cols = n / in.rows;
  } else {
    in.cols = n;
  }
  const std::string fmt = info.format;
  const char kind = fmt.empty() ? '?' : fmt.back();
  const bool native = fmt.size() == 1 || fmt[0] == '=' || fmt[0] == '@' || fmt[0] == '<';
  const bool is_f32 = kind == 'f' && info.itemsize == 4 && native;
  const bool is_f16 = kind == 'e' && info.itemsize == 2 && native;
  const bool is_f64 = kind == 'd' && info.itemsize == 8 && native;
  if (!is_f32 && !is_f16 && !is_f64) {
    throw sqb::Error(std::string(what) + ": element format '" + fmt +
                     "' is not supported; give float32, float16 or float64 values");
  }
  // C-contiguous?
  bool contiguous = true;
  py::ssize_t expect = info.itemsize;
  for (std::size_t d = info.shape.size(); d-- > 0;) {
    if (info.shape[d] != 1 && info.strides[d] != expect) contiguous = false;
    expect *= info.shape[d];
  }
  if (is_f32 && contiguous) {
    in.values = {static_cast<const float*>(info.ptr), n};
    return in;
  }
  // Copy element by element in C order, following the strides.
  in.copy.resize(n);
  std::vector<py::ssize_t> index(info.shape.size(), 0);
  const auto* base = static_cast<const unsigned char*>(info.ptr);
  for (std::size_t i = 0; i < n; ++i) {
    py::ssize_t offset = 0;
    for (std::size_t d = 0; d < index.size(); ++d)
      offset += index[d] * info.strides[d];
    const unsigned char* p = base + offset;
    if (is_f32) {
      std::memcpy(&in.copy[i], p, 4);
    } else if (is_f16) {
      std::uint16_t h;
      std::memcpy(&h, p, 2);
      in.copy[i] = sqb::npy::half_to_float(h);
    } else {
      double v;
      std::memcpy(&v, p, 8);
      if (std::isfinite(v) && std::fabs(v) > static_cast<double>(std::numeric_limits<float>::max()) &&
          static_cast<float>(v) == std::numeric_limits<float>::infinity() * (v > 0 ? 1.0f : -1.0f)) {
        // The shortest text that reads back as v: 1e+300, not its 301 digits.
        char text[32];
        char* end = std::to_chars(text, text + sizeof text, v).ptr;
        throw sqb::Error(std::string(what) + ": the float64 value " +
                         std::string(text, static_cast<std::size_t>(end - text)) + " at flat index " +
                         std::to_string(i) + " is beyond float32's range (|x| <= 3.4028235e+38)");
      }
      in.copy[i] = static_cast<float>(v);
    }
    for (std::size_t d = index.size(); d-- > 0;) {
      if (++index[d] < info.shape[d]) break;
      index[d] = 0;
    }
  }
  in.values = in.copy;
  return in;
}

// A shape as numpy prints it: (64, 128), (5,).
std::string shape_text(const std::vector<std::size_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// A result as Python sees it: numpy arrays (owned by this object, exposed without copies) and a dict.
struct PyResult {
  sqb::Quantized q;
  sqb::StageTimes times;
  std::vector<std::size_t> input_shape;
  std::string spec;
  std::vector<float> decoded_input;  // the reconstruction in the input's C order when a layout reorders it
  double opt_ratio = std::numeric_limits<double>::quiet_NaN();
  bool has_opt_ratio = false;
};

template <class T>
py::array_t<T> owned_array(std::vector<std::size_t> shape, const T* data, py::handle owner) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  return py::array_t<T>(s, data, owner);
}

py::object codes_of(const PyResult& r, py::handle self) {
  const std::vector<std::size_t> shape = {r.q.rows, r.q.cols};
  return r.q.codes.visit([&](auto c) -> py::object {
    using Index = std::remove_const_t<typename decltype(c)::element_type>;
    return owned_array<Index>(shape, c.data(), self);
  });
}

template <class Get>
py::array_t<float> per_block(const PyResult& r, std::size_t width, Get&& get) {
  const std::size_t nb = r.q.blocks.size();
  py::array_t<float> out(
      std::vector<py::ssize_t>{static_cast<py::ssize_t>(nb), static_cast<py::ssize_t>(width)});
  float* p = out.mutable_data();
  for (std::size_t b = 0; b < nb; ++b) {
    const std::span<const float> v = get(b);
    std::copy(v.begin(), v.end(), p + b * width);
  }
  return out;
}

py::dict metrics_of(const sqb::Quantized& q) {
  py::dict d;
  for (const sqb::Figure& f : q.metric_columns()) {
    d[py::str(std::string(sqb::column_name(f.column)))] =
        std::isnan(f.value) ? py::object(py::none()) : py::object(py::float_(f.value));
  }
  return d;
}

std::size_t resolve_k(std::optional<std::size_t> k, std::optional<int> bits) {
  if (k.has_value() == bits.has_value()) throw sqb::Error("give exactly one of k= and bits=");
  if (bits) return sqb::codes_for_bits(*bits);
  if (*k < 1 || static_cast<std::size_t>(*k) > sqb::kMaxCodes)
    throw sqb::Error("k = " + std::to_string(*k) + " is outside " + sqb::k_range());
  return *k;
}

PyResult quantize(const py::buffer& x, const std::string& spec, std::optional<std::size_t> k,
                  std::optional<int> bits, const std::string& granularity, std::uint64_t seed, int threads,
                  const std::optional<py::buffer>& weights, const std::optional<std::string>& layout,
                  const std::optional<std::string>& name, bool opt_ratio, bool coded) {
  const std::size_t kk = resolve_k(k, bits);
  Input in = read_input(x, "x");
  // A layout rearranges x into rows x cols (rows = output channels); without one, rows = the first axis.
  std::optional<sqb::Layout> lay;
  if (layout) {
    if (*layout == "auto") {
      if (!name)
        throw sqb::Error("layout='auto' decides from the tensor's name: give name= (e.g. 'fc.kernel')");
      lay = sqb::auto_layout(*name, in.shape, "", "x (" + *name + ")");
    } else if (*layout == "io") {
      // A Dense/Linear weight stored [in, out]: the two-axis case of hwio.
      if (in.shape.size() != 2)
        throw sqb::Error("layout='io' is for a 2-D [in, out] weight; x has shape " + shape_text(in.shape));
      lay = sqb::Layout::hwio;
    } else {
      lay = sqb::layout_named(*layout);
      if (!lay)
        throw sqb::Error("layout '" + *layout +
                         "' is not one of rows, oihw, hwio, io (= hwio for [in, out]), auto");
    }
  } else if (name) {
    throw sqb::Error("name= is only used with layout='auto'");
  }
  sqb::Tensor laid;
  if (lay) {
    laid = sqb::to_tensor(in.shape, in.values, *lay, "x");
    in.rows = laid.rows;
    in.cols = laid.cols;
    in.values = laid.values;
  }
  std::optional<Input> w;
  sqb::Tensor laid_w;
  bool per_column = false;
  if (weights) {
    w = read_input(*weights, "weights");
    // Weights pair with values by position, so any other shape (a transposed or flattened array, even of as
    // many elements) would weight the wrong values. A 1-D vector of the laid-out column count is activation
    // importance: one weight per input channel, the same for every row.
    if (w->shape.size() == 1 && w->shape[0] == in.cols && w->shape != in.shape) {
      per_column = true;
    } else if (w->shape != in.shape) {
      throw sqb::Error("weights: shape " + shape_text(w->shape) + " is not x's shape " +
                       shape_text(in.shape) + " nor a per-column vector (" + std::to_string(in.cols) +
                       ",) (one importance weight per element of x in x's shape, or one per column of the "
                       "laid-out x)");
    } else if (lay) {
      laid_w = sqb::to_tensor(w->shape, w->values, *lay, "weights");
      w->values = laid_w.values;
    }
    if (std::all_of(w->values.begin(), w->values.end(), [](float v) { return v == 0.0f; })) {
      // The pipeline designs a block whose weights are all zero as unweighted, and wmse (weighted by zeros)
      // has no value: say so rather than hand back a result that looks weighted.
      if (PyErr_WarnEx(PyExc_UserWarning,
                       "sqbench.quantize: every importance weight is 0, so x is quantized unweighted (as "
                       "without weights) and metrics['wmse'] is None",
                       1) != 0)
        throw py::error_already_set();
    }
  }
  sqb::QuantizeOptions opt;
  opt.granularity = sqb::Granularity::parse(granularity);
  opt.seed = seed;
  opt.threads = threads;
  opt.coded = coded;
  if (w && per_column) {
    opt.column_weights = w->values;
  } else if (w) {
    opt.weights = w->values;
  }
  PyResult r;
  r.input_shape = in.shape;
  r.spec = spec;
  {
    py::gil_scoped_release release;
    const std::unique_ptr<sqb::Quantizer> q = sqb::make_quantizer(spec, {kk, seed});
    const sqb::TensorView view(in.rows, in.cols, in.values);
    sqb::quantize_into(view, *q, opt, r.q, &r.times);
    if (lay && *lay == sqb::Layout::hwio && in.shape.size() >= 2)
      r.decoded_input = sqb::from_tensor(in.shape, r.q.decoded, *lay);
    if (opt_ratio) {
      // The figure the CLI's opt_ratio column gives: the result's (weighted) MSE over the least any K-level
      // codebook per block reaches.
      const double optimum = sqb::optimal_mse(view, kk, opt);
      const bool weighted = !opt.weights.empty() || !opt.column_weights.empty();
      const double measured = weighted ? r.q.metrics.wmse : r.q.metrics.mse;
      r.opt_ratio = std::isnan(measured) ? NAN
                    : optimum > 0        ? measured / optimum
                                         : (measured == 0 ? 1.0 : INFINITY);
      r.has_opt_ratio = true;
    }
  }
  return r;
}

// The shared encoder on its own: code = number of thresholds < x, for a codebook designed elsewhere.
py::array encode_with(const py::buffer& x, const py::buffer& thresholds) {
  const Input in = read_input(x, "x");
  const Input th = read_input(thresholds, "thresholds");
  sqb::check_finite(in.values, "x");
  sqb::check_finite(th.values, "thresholds");
  if (th.values.size() > sqb::kMaxCodes - 1) {
    throw sqb::Error("thresholds: at most " + std::to_string(sqb::kMaxCodes - 1) +
                     " (K <= " + std::to_string(sqb::kMaxCodes) + " codes)");
  }
  std::vector<float> levels(th.values.size() + 1);
  // Levels only matter for decoding; the codebook is built from the thresholds as given.
  std::vector<double> bounds(th.values.begin(), th.values.end());
  for (std::size_t i = 0; i < levels.size(); ++i)
    levels[i] = i < th.values.size() ? th.values[i] : th.values.empty() ? 0.0f : th.values.back();
  for (std::size_t i = 1; i < bounds.size(); ++i) {
    if (!(bounds[i] >= bounds[i - 1]))
      throw sqb::Error("thresholds must be ascending (index " + std::to_string(i) + ")");
  }
  const sqb::Codebook cb = sqb::Codebook::with_boundaries(levels, bounds);
  std::vector<py::ssize_t> shape(in.shape.begin(), in.shape.end());
  if (levels.size() <= 256) {
    py::array_t<std::uint8_t> out(shape);
    std::span<std::uint8_t> o(out.mutable_data(), in.values.size());
    py::gil_scoped_release release;
    sqb::encode(cb, in.values, o);
    return out;
  }
  py::array_t<std::uint16_t> out(shape);
  std::span<std::uint16_t> o(out.mutable_data(), in.values.size());
  py::gil_scoped_release release;
  sqb::encode(cb, in.values, o);
  return out;
}

py::dict data_free_codebook(const std::string& spec, int bits) {
  const std::unique_ptr<sqb::Quantizer> q = sqb::make_quantizer(spec, {sqb::codes_for_bits(bits), 0});
  const auto* part = sqb::part_of<sqb::DesignsWithoutData>(*q);
  if (!part) {
    throw sqb::Error(
        "quantizer \"" + spec +
        "\" designs its codebook from the data (a learned codebook): there is no codebook without "
        "data; quantize() a tensor instead");
  }
  const sqb::DataFreeCodebook c = part->data_free_codebook();
  py::dict d;
  d["levels"] = py::array_t<double>(static_cast<py::ssize_t>(c.levels.size()), c.levels.data());
  d["thresholds"] = py::array_t<double>(static_cast<py::ssize_t>(c.boundaries.size()), c.boundaries.data());
  d["applied_as"] = c.applied_as;
  d["scaled"] = c.scaled;
  return d;
}

// A safetensors tensor as a float32 numpy array of its own shape (F16, BF16 exactly, F64 rounded).
py::array_t<float> read_safetensors(const std::string& path, const std::string& tensor) {
  sqb::safetensors::Array a;
  {
    py::gil_scoped_release release;
    a = sqb::safetensors::Checkpoint(path).read(tensor);
  }
  std::vector<py::ssize_t> shape(a.shape.begin(), a.shape.end());
  py::array_t<float> out;
  try {
    out = py::array_t<float>(shape);
  } catch (py::error_already_set& e) {
    // numpy's own refusal (e.g. more dimensions than an ndarray holds) does not say which tensor.
    throw sqb::Error(path + ": tensor \"" + tensor + "\" of " + std::to_string(shape.size()) +
                     " dimensions cannot be a numpy array (numpy: " + std::string(py::str(e.value())) + ")");
  }
  std::copy(a.values.begin(), a.values.end(), out.mutable_data());
  return out;
}

std::vector<std::string> safetensors_names(const std::string& path,
                                           const std::optional<std::string>& pattern) {
  const sqb::safetensors::Checkpoint c(path);
  if (!pattern) return c.names();
  // A pattern that matches nothing is an empty list here (Checkpoint::match refuses it, as a sweep must).
  sqb::safetensors::glob_match(*pattern, "");  // a malformed pattern is still a ValueError
  std::vector<std::string> out;
  for (const std::string& name : c.names())
    if (sqb::safetensors::glob_match(*pattern, name)) out.push_back(name);
  return out;
}

// What a data source gives a sweep cell: the laid-out values (rows, cols) and its importance weights.
py::tuple draw_source(const std::string& spec, const std::optional<std::size_t>& n, std::uint64_t seed) {
  sqb::Tensor t;
  {
    py::gil_scoped_release release;
    t = sqb::make_source(spec)->draw(n ? *n : sqb::kWholeFile, seed);
  }
  const std::vector<py::ssize_t> shape = {static_cast<py::ssize_t>(t.rows), static_cast<py::ssize_t>(t.cols)};
  py::array_t<float> values(shape);
  std::copy(t.values.begin(), t.values.end(), values.mutable_data());
  py::object weights = py::none();
  if (!t.weights.empty()) {
    py::array_t<float> w(shape);
    std::copy(t.weights.begin(), t.weights.end(), w.mutable_data());
    weights = std::move(w);
  }
  return py::make_tuple(std::move(values), std::move(weights));
}

py::list expand_sources(const std::string& spec) {
  py::list out;
  for (const sqb::SourceSpec& s : sqb::expand_source_spec(spec)) {
    py::dict d;
    d["spec"] = s.spec;
    d["label"] = s.label;
    out.append(d);
  }
  return out;
}

py::list quantizers() {
  py::list out;
  for (const sqb::QuantizerEntry& e : sqb::quantizer_registry()) {
    py::list params;
    for (const sqb::ParamSpec& p : e.params) {
      py::dict pd;
      pd["name"] = p.name;
      pd["default"] = p.default_value.empty() ? py::object(py::none()) : py::object(py::str(p.default_value));
      pd["domain"] = p.describe_domain();
      pd["help"] = p.help;
      params.append(pd);
    }
    py::dict d;
    d["name"] = std::string(e.name);
    d["description"] = std::string(e.description);
    d["levels"] = std::string(e.levels);
    d["randomized"] = e.randomized;
    d["params"] = params;
    out.append(d);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() =
      "sqbench: scalar (1-D codebook) quantization.\n\n"
      "    r = sqbench.quantize(w, \"kmeans\", bits=4, granularity=\"channel\")\n"
      "    print(r.metrics[\"sqnr_db\"], r.codes.shape, r.codebooks.shape)\n\n"
      "quantizers() lists the strategies and their parameters (the same registry as `sqbench list`).";
  m.attr("__version__") = std::string(sqb::version());

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const sqb::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  py::class_<PyResult>(m, "Quantized", "Everything one quantize() call produced.")
      .def_property_readonly(
          "codes", [](py::object self) { return codes_of(self.cast<const PyResult&>(), self); },
          "the code (level index) of every element, uint8 (K <= 256) or uint16, shape (rows, cols) as laid "
          "out")
      .def_property_readonly(
          "codebooks",
          [](const PyResult& r) {
            return per_block(r, r.q.code_count,
                             [&](std::size_t b) { return r.q.designs[b].codebook.levels(); });
          },
          "each block's K levels, float32, shape (blocks, K): decoded = codebooks[block, code]")
      .def_property_readonly(
          "thresholds",
          [](const PyResult& r) {
            return per_block(r, r.q.code_count - 1,
                             [&](std::size_t b) { return r.q.designs[b].codebook.thresholds(); });
          },
          "each block's K-1 thresholds: code = number of thresholds < x (numpy.searchsorted side='left')")
      .def_property_readonly(
          "side",
          [](const PyResult& r) {
            return per_block(r, r.q.side.per_block,
                             [&](std::size_t b) { return std::span<const float>(r.q.designs[b].side); });
          },
          "what a deployment stores per block to rebuild its codebook, float32, shape (blocks, side values)")
      .def_property_readonly("side_description", [](const PyResult& r) { return r.q.side.description; })
      .def_property_readonly(
          "blocks",
          [](const PyResult& r) {
            py::array_t<std::int64_t> out(
                std::vector<py::ssize_t>{static_cast<py::ssize_t>(r.q.blocks.size()), 2});
            auto* p = out.mutable_data();
            for (std::size_t b = 0; b < r.q.blocks.size(); ++b) {
              p[2 * b] = static_cast<std::int64_t>(r.q.blocks[b].offset);
              p[2 * b + 1] = static_cast<std::int64_t>(r.q.blocks[b].length);
            }
            return out;
          },
          "each block's (offset, length) in the row-major (rows, cols) layout")
      .def_property_readonly(
          "decoded",
          [](py::object self) {
            const auto& r = self.cast<const PyResult&>();
            return owned_array<float>(
                r.input_shape, r.decoded_input.empty() ? r.q.decoded.data() : r.decoded_input.data(), self);
          },
          "the reconstruction, float32, in the input's shape")
      .def_property_readonly(
          "metrics",
          [](const PyResult& r) {
            py::dict d = metrics_of(r.q);
            if (r.has_opt_ratio) {
              d[py::str(std::string(sqb::column_name(sqb::Col::opt_ratio)))] =
                  std::isnan(r.opt_ratio) ? py::object(py::none()) : py::object(py::float_(r.opt_ratio));
            }
            return d;
          },
          "the metric columns by their results.csv names (mse, nmse, sqnr_db, ...)")
      .def_property_readonly(
          "timings",
          [](const PyResult& r) {
            py::dict d;
            d["fit_s"] = r.times.fit;
            d["encode_s"] = r.times.encode;
            d["decode_s"] = r.times.decode;
            return d;
          },
          "seconds this call spent designing, encoding and decoding (one run, not a median: time repeated "
          "calls for figures)")
      .def_property_readonly("k", [](const PyResult& r) { return r.q.code_count; })
      .def_property_readonly(
          "shape", [](const PyResult& r) { return py::make_tuple(r.q.rows, r.q.cols); },
          "(rows, cols) as laid out")
      .def_property_readonly("granularity", [](const PyResult& r) { return r.q.granularity.to_string(); })
      .def_property_readonly("spec", [](const PyResult& r) { return r.spec; })
      .def("__repr__", [](const PyResult& r) {
        return "<sqbench.Quantized " + r.spec + ", K=" + std::to_string(r.q.code_count) + ", " +
               std::to_string(r.q.rows) + "x" + std::to_string(r.q.cols) + ", " +
               std::to_string(r.q.blocks.size()) + " block(s), mse=" + std::to_string(r.q.metrics.mse) + ">";
      });

  m.def("quantize", &quantize, py::arg("x"), py::arg("spec"), py::kw_only(), py::arg("k") = py::none(),
        py::arg("bits") = py::none(), py::arg("granularity") = "tensor", py::arg("seed") = 0,
        py::arg("threads") = 1, py::arg("weights") = py::none(), py::arg("layout") = py::none(),
        py::arg("name") = py::none(), py::arg("opt_ratio") = false, py::arg("coded") = false,
        "Quantize x (any float32/float16/float64 array; 1-D is one row, 2-D rows x cols, higher ranks rows = "
        "first axis) with the quantizer `spec` at K = k codes or 2**bits. granularity: tensor | channel | "
        "group:G. threads: blocks designed and encoded in parallel (0 = every core); the result is the same "
        "for every value. weights: optional importance per element of x, in x's shape (any other shape is a "
        "ValueError), or a 1-D vector of one weight per column of the laid-out x (activation importance, "
        "broadcast along rows), for weighted objectives and the wmse metric; all zero: a UserWarning, x is "
        "quantized unweighted and wmse is None. layout: None (rows = first axis), 'rows', 'oihw', 'hwio' "
        "(TensorFlow [..., in, out]; 'io' is the same for a Dense [in, out] kernel) or 'auto' with name= "
        "(the tensor's name decides); codes are laid out, .decoded is in x's shape. opt_ratio=True adds "
        "metrics['opt_ratio'] (MSE, or wmse when weighted, over the least any K-level codebook per block "
        "reaches). coded: also measure metrics['coded_bits'] (a real rANS pass over the codes, encoded, "
        "decoded "
        "and checked; it costs more than the rest of the call), else it is None. Raises ValueError for a bad "
        "spec, parameter or data.");
  m.def("codebook", &data_free_codebook, py::arg("spec"), py::arg("bits"),
        "The codebook of a data-free quantizer (nf4, fp4, normal_quantile, uniform, cosine, phi_log, "
        "lloyd_max): a dict of levels, thresholds, how a block applies them (applied_as) and whether a "
        "per-block scale multiplies them (scaled). ValueError for a learned codebook.");
  m.def("encode", &encode_with, py::arg("x"), py::arg("thresholds"),
        "The shared encoder alone: codes[i] = number of thresholds < x[i] (numpy.searchsorted(thresholds, x, "
        "side='left')), uint8 for up to 255 thresholds, else uint16, in x's shape. thresholds: ascending "
        "float32.");
  m.def(
      "read_safetensors", &read_safetensors, py::arg("path"), py::arg("tensor"),
      "One tensor of a safetensors checkpoint (a .safetensors file, or a sharded checkpoint's "
      "model.safetensors.index.json) as a float32 numpy array of its own shape: F32 as stored, F16 and BF16 "
      "converted exactly, F64 rounded to nearest (beyond float32's range: ValueError). The file is "
      "memory-mapped and only this tensor's bytes are read. ValueError for a missing tensor (listing names "
      "near it), another dtype (naming it) or a malformed file.");
  m.def("safetensors_names", &safetensors_names, py::arg("path"), py::arg("pattern") = py::none(),
        "The tensor names of a safetensors checkpoint, sorted; with pattern (*, ?, [...], e.g. "
        "'*.mlp.*.weight') only those it matches ([] when none does; ValueError for a malformed pattern).");
  m.def(
      "draw", &draw_source, py::arg("spec"), py::arg("n") = py::none(), py::arg("seed") = 0,
      "The data a sweep cell gets from a distribution spec (e.g. 'safetensors path=m.safetensors "
      "tensor=a.weight layout=auto', 'gaussian rows=4'): a tuple (values, weights) of float32 arrays of "
      "shape "
      "(rows, cols) as laid out (weights None unless the spec has weights=). n: the number of values "
      "(None = the whole file; synthetic laws need it); relative paths are relative to the working folder.");
  m.def("sources", &expand_sources, py::arg("spec"),
        "The sources a distribution spec stands for (a glob over files or tensors expanded, sorted), each a "
        "dict of its spec and its label (the results' source and distribution columns).");
  m.def("quantizers", &quantizers,
        "The registry: name, description, levels and parameters of every quantizer.");
  m.def(
      "columns",
      []() {
        py::list out;
        for (const sqb::ColumnInfo& c : sqb::column_schema()) {
          py::dict d;
          d["name"] = std::string(c.name);
          d["kind"] = std::string(sqb::kind_name(c.kind));
          d["unit"] = std::string(c.unit);
          d["better"] = c.better == sqb::Better::lower    ? "lower"
                        : c.better == sqb::Better::higher ? "higher"
                                                          : "";
          d["meaning"] = std::string(c.meaning);
          out.append(d);
        }
        return out;
      },
      "The result-column schema (names as in results.csv and Quantized.metrics).");
  add_checkpoint_bindings(m);
  add_harness_bindings(m);
}
