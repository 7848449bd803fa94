// Bad input of every kind, as a user meets it: the sqbench binary on broken configs, broken .npy files, bad
// data and unwritable or full output places. Each must exit 2 with a message naming the file (and line, key
// or index) and the reason, and must write nothing and overwrite nothing.
//
// The README's table "bad input -> what sqbench says" is generated from these cases:
//   SQB_BAD_INPUT_TABLE=/tmp/table.md build/tests/sqb_tests '[bad-input]'
// appends one markdown row per case (the scratch folder shown as DIR).

#include <catch2/catch.hpp>

#include "cli_helpers.hpp"
#include "csv.hpp"
#include "idx_helpers.hpp"

#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>

#include "files.hpp"
#include "ini_check.hpp"
#include "lock.hpp"
#include "npy_helpers.hpp"
#include "requirements.hpp"
#include "safetensors_helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"
#include "sqb/safetensors.hpp"

namespace fs = std::filesystem;
using sqbtest::raw_npy;
using sqbtest::ScratchDir;
using sqbtest::slurp;

namespace {

using sqbtest::Outcome;
using sqbtest::shell;

Outcome run_sqbench(const std::string& args, const std::string& prefix = "") {
  return shell(prefix + std::string(SQBENCH_EXE) + " " + args + " 2>&1");
}

bool is_root() {
  return ::geteuid() == 0;
}

// Root ignores file permissions, so permission cases run the binary as `nobody` through setpriv when we are
// root; "" when no such switch is needed, nullopt when it is needed but unavailable.
std::optional<std::string> unprivileged_prefix() {
  if (!is_root()) return std::string();
  if (!fs::exists("/usr/bin/setpriv")) return std::nullopt;
  return std::string("/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups ");
}

// The error line of an outcome, without the "sqbench: error: " prefix, the scratch folder shown as DIR.
std::string error_line(const Outcome& o, const fs::path& scratch) {
  const std::string tag = "sqbench: error: ";
  const auto at = o.output.find(tag);
  if (at == std::string::npos) return "";
  std::string line = o.output.substr(at + tag.size());
  line = line.substr(0, line.find('\n'));
  for (std::size_t p; !scratch.empty() && (p = line.find(scratch.string())) != std::string::npos;)
    line.replace(p, scratch.string().size(), "DIR");
  return line;
}

// One row of the README table, when SQB_BAD_INPUT_TABLE names a file.
void record(const std::string& label, const std::string& message) {
  const char* table = std::getenv("SQB_BAD_INPUT_TABLE");
  if (table == nullptr || *table == '\0') return;
  std::string escaped;
  for (const char c : message) {
    if (c == '|') escaped += '\\';
    escaped += c;
  }
  std::ofstream(table, std::ios::app) << "| " << label << " | `` " << escaped << " `` |\n";
}

const std::string kSweep = "[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\n";

// A task sweep of `task` in `modes`.
std::string task_config(const std::string& task, const std::string& modes = "qat") {
  return "[sweep]\ntask = " + task + "\nmode = " + modes + "\nquantizer = cosine\nbits = 4\n";
}

// A config reading DIR/data.npy.
std::string npy_config(const std::string& extra = "", const std::string& n = "4") {
  return "[sweep]\nquantizer = cosine\ndistribution = npy path=data.npy" + extra + "\nn = " + n + "\nk = 4\n";
}

// A config reading tensor `tensor` of DIR/data.safetensors (n omitted: the whole tensor).
std::string st_config(const std::string& tensor = "w", const std::string& extra = "") {
  return "[sweep]\nquantizer = cosine\ndistribution = safetensors path=data.safetensors tensor=" + tensor +
         extra + "\nk = 4\n";
}

struct Case {
  std::string label;
  std::string expect;
  std::function<void(const ScratchDir&)> setup;  // writes DIR/c.ini (and what it reads)
};

}  // namespace

TEST_CASE("bad configs, .npy files and data: exit 2, a message naming the file and reason, nothing written",
          "[bad-input][cli]") {
  const std::string f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  const std::string four = sqbtest::le_floats({1, 2, 3, 4});
  const auto npy = [&](const std::string& bytes, const std::string& config = npy_config()) {
    return [bytes, config](const ScratchDir& d) {
      d.write("data.npy", bytes);
      d.write("c.ini", config);
    };
  };
  const auto ini = [](const std::string& text) {
    return [text](const ScratchDir& d) { d.write("c.ini", text); };
  };
  const auto st = [](const std::string& bytes, const std::string& config = st_config()) {
    return [bytes, config](const ScratchDir& d) {
      d.write("data.safetensors", bytes);
      d.write("c.ini", config);
    };
  };
  const std::string w_header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
  // DIR/mnist: a tiny dataset folder (3 training and 2 test images of 2 x 2 pixels) whose training labels
  // (plain) and images (gzip) are given.
  const auto mnist = [](const std::string& train_labels, const std::string& train_images_gz) {
    return [=](const ScratchDir& d) {
      fs::create_directories(d.path / "mnist");
      d.write("mnist/train-labels-idx1-ubyte", train_labels);
      d.write("mnist/train-images-idx3-ubyte.gz", train_images_gz);
      d.write("mnist/t10k-images-idx3-ubyte", sqbtest::raw_idx({2, 2, 2}, std::string(8, '\x10')));
      d.write("mnist/t10k-labels-idx1-ubyte", sqbtest::raw_idx({2}, std::string("\x01\x02", 2)));
      d.write("c.ini", task_config("fashion_mnist data=mnist"));
    };
  };
  const std::string labels = sqbtest::raw_idx({3}, std::string("\x01\x02\x03", 3));
  const std::string images_gz = sqbtest::gzip(sqbtest::raw_idx({3, 2, 2}, std::string(12, '\x20')));
  const Case c = GENERATE_COPY(
      // Configs.
      Case{"config: missing file", "c.ini: cannot read the config file", [](const ScratchDir&) {}},
      Case{"config: a directory", "c.ini: is a directory, not a config file",
           [](const ScratchDir& d) { fs::create_directory(d.path / "c.ini"); }},
      Case{"config: binary garbage (an executable)",
           "c.ini:1: column 1: control character 0x7F (binary data?)",
           [](const ScratchDir& d) { d.write("c.ini", slurp(SQBENCH_EXE).substr(0, 4096)); }},
      Case{"config: a NUL byte", "c.ini:2: column 11: binary data (a NUL byte): a config is a text file",
           ini(std::string("name = x\ndescriptio\0n = y\n", 23) + kSweep)},
      Case{"config: a 10 MB line", "c.ini:1: line is longer than 65536 bytes (not a config file?)",
           ini("description = " + std::string(10 << 20, 'x') + "\n" + kSweep)},
      Case{"config: Latin-1 (non-UTF-8) bytes", "c.ini:2: column 18: byte 0xE9 is not valid UTF-8",
           ini("name = x\ndescription = caf\xe9\n" + kSweep)},
      Case{"config: a UTF-8 byte-order mark", "c.ini:1: the file starts with a UTF-8 byte-order mark",
           ini("\xEF\xBB\xBFname = x\n" + kSweep)},
      Case{"config: old Mac line endings (CR)",
           "c.ini:1: column 9: a carriage return that does not end a line",
           ini("name = x\r[sweep]\rquantizer = cosine\r")},
      Case{"config: [sweep] twice", "c.ini:7: section [sweep] appears twice (lines 1 and 7)",
           ini(kSweep + "\n[sweep]\nk = 8\n")},
      Case{"config: a line that is not `key = value` (Boost would hang on this one)",
           "c.ini:2: not a valid INI config: 'x %invalid_line% y' is neither a key = value line nor a "
           "[section]",
           ini("name = x\nx %invalid_line% y\n" + kSweep)},
      // .npy files.
      Case{"npy: not a .npy file",
           "data.npy: not a .npy file (it does not start with the magic bytes \\x93NUMPY)",
           npy("GIF89a\x01\x00\x01\x00")},
      Case{"npy: truncated header", "data.npy: truncated .npy header: the header length says",
           npy(raw_npy(f4 + std::string(60, ' ')).substr(0, 40))},
      Case{"npy: header not a Python dict literal", "data.npy: .npy header is not a Python dict literal",
           npy(raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2)", four))},
      Case{"npy: unsupported dtype", "data.npy: unsupported dtype '<c8' (complex)",
           npy(raw_npy("{'descr': '<c8', 'fortran_order': False, 'shape': (2, 2), }", four + four))},
      Case{"npy: object array", "data.npy: object array (dtype '|O')",
           npy(raw_npy("{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }", "\x80\x04]"))},
      Case{"npy: data shorter than the shape",
           "data.npy: truncated .npy file: shape (2, 2) of float32 needs 16 bytes",
           npy(raw_npy(f4, four.substr(0, 12)))},
      Case{"npy: data longer than the shape", "data.npy: 4 unexpected bytes after the data",
           npy(raw_npy(f4, four + "abcd"))},
      Case{"npy: huge shape overflowing size_t", "more elements than size_t can count",
           npy(raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967297), }",
                       four))},
      Case{"npy: empty array", "data.npy: empty array (shape (0, 4))",
           npy(raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }"))},
      Case{"npy: float64 beyond float32",
           "float64 value 1e+300 at index (1, 0) (flat 2) is outside float32's range",
           npy(raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }",
                       sqbtest::le_doubles({1, 2, 1e300, 4})))},
      Case{"npy: missing file", "data.npy: cannot open the .npy file (No such file or directory)",
           ini(npy_config())},
      Case{"data: NaN / Inf (nonfinite=error, the default)",
           "data.npy: 2 non-finite values (NaN or +-Inf) among 4; the first is +Inf at index (0, 1) (flat "
           "1); add "
           "nonfinite=drop to drop them",
           npy(raw_npy(f4, sqbtest::le_floats({1, INFINITY, NAN, 4})))},
      Case{"data: n larger than the file", "n = 5 is more than the 4 values of",
           npy(raw_npy(f4, four), npy_config("", "5"))},
      Case{"data: layout=oihw on a 1-D tensor",
           "layout=oihw needs a weight of rank >= 2 ([out, in, ...]), but the "
           "shape is (4,)",
           npy(raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", four),
               npy_config(" layout=oihw"))},
      // Task sweeps.
      Case{"task: an unknown mode",
           "c.ini:3: key 'sweep.mode': 'int8' is not a mode; valid modes: fp32|ptq|qat",
           ini(task_config("fashion_mnist", "fp32, int8"))},
      Case{"task: an unknown task",
           "c.ini:2: key 'sweep.task': task \"cifar10\": unknown task 'cifar10'; valid "
           "tasks: fashion_mnist",
           ini(task_config("cifar10"))},
      Case{"task: a bad QAT setting",
           "c.ini:2: key 'sweep.task': task \"fashion_mnist ste=straight\": parameter 'ste' must be one of "
           "identity|clipped (got 'straight')",
           ini(task_config("fashion_mnist ste=straight"))},
      Case{"task: trained levels re-designed every step",
           "c.ini:2: key 'sweep.task': task \"fashion_mnist qat=levels\": parameter 'qat' = levels needs "
           "redesign=0 (design once) or redesign=M >= 2",
           ini(task_config("fashion_mnist qat=levels"))},
      Case{"task: mode qat with qat_epochs=0",
           "c.ini:2: key 'sweep.task': mode qat needs qat_epochs >= 1 (qat_epochs=0 leaves nothing to train)",
           ini(task_config("fashion_mnist qat_epochs=0"))},
      Case{"task: both task and distribution",
           "c.ini:3: key 'sweep.task': a sweep lists either distribution or task, not both (use two sweeps)",
           ini("[sweep]\ndistribution = gaussian\ntask = fashion_mnist\nmode = ptq\nquantizer = cosine\nbits "
               "= 4\n")},
      Case{"task: neither task nor distribution",
           "c.ini: [sweep]: missing key 'distribution' (tensors to quantize) or 'task' (a network to train, "
           "quantize and evaluate): a sweep needs one of them",
           ini("[sweep]\nquantizer = cosine\nbits = 4\nn = 10\n")},
      Case{"task: n in a task sweep",
           "c.ini:6: key 'sweep.n': n does not apply to a task sweep (it quantizes the network's weights)",
           ini(task_config("fashion_mnist") + "n = 100\n")},
      Case{"task: opt_ratio in a task sweep",
           "c.ini:6: key 'sweep.opt_ratio': opt_ratio applies to tensor sweeps",
           ini(task_config("fashion_mnist") + "opt_ratio = 1\n")},
      Case{"task: mode in a distribution sweep",
           "c.ini:2: key 'sweep.mode': mode applies to task sweeps (task = ...), not to distributions",
           ini("[sweep]\nmode = ptq\n" + kSweep.substr(8))},
      Case{"task: data=DIR without the dataset",
           "c.ini: [sweep] task: task \"fashion_mnist data=mnist\": DIR/mnist/train-images-idx3-ubyte.gz: no "
           "such "
           "file (nor DIR/mnist/train-images-idx3-ubyte); a dataset folder holds MNIST's four files "
           "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
           "(each plain or .gz), as Fashion-MNIST from the Debian package dataset-fashion-mnist in "
           "/usr/share/datasets/fashion-mnist",
           ini(task_config("fashion_mnist data=mnist"))},
      // These two were taken for datasets of 41 and 74 GiB by the memory check, which read sizes from the
      // file and the gzip trailer.
      Case{"task: an IDX file with a wrong magic number",
           "c.ini: [sweep] task: task \"fashion_mnist data=mnist\": DIR/mnist/train-labels-idx1-ubyte: not an "
           "IDX file: it starts with 0x12 0x34, an IDX file with two zero bytes, then its type code and rank",
           mnist("\x12\x34" + labels.substr(2), images_gz)},
      Case{"task: a truncated .gz IDX file",
           "c.ini: [sweep] task: task \"fashion_mnist data=mnist\": DIR/mnist/train-images-idx3-ubyte.gz: "
           "truncated gzip stream (the input ends inside it)",
           mnist(labels, images_gz.substr(0, images_gz.size() - 6))},
      Case{"data: layout=auto with nothing to tell the layout",
           "data.npy: layout=auto: tensor 'data' of shape (2, 2): nothing tells its layout",
           npy(raw_npy(f4, four), npy_config(" layout=auto"))},
      // safetensors checkpoints.
      Case{"safetensors: a .npy file given as a checkpoint", "data.safetensors: ", st(raw_npy(f4, four))},
      Case{"safetensors: header length beyond the file",
           "data.safetensors: ", st(sqbtest::st_raw(w_header, four).substr(0, 30))},
      Case{"safetensors: header over 100 MB (a sparse 200 MB file)", "data.safetensors: ",
           [](const ScratchDir& d) {
             d.write("data.safetensors", std::string("\x00\xc2\xeb\x0b\x00\x00\x00\x00", 8));  // 2e8
             fs::resize_file(d.path / "data.safetensors", 200'000'100);
             d.write("c.ini", st_config());
           }},
      Case{"safetensors: header not valid JSON", "data.safetensors: ",
           st(sqbtest::st_raw("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2],}}", four))},
      Case{"safetensors: a tensor named twice", "data.safetensors: ",
           st(sqbtest::st_raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                              "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                              four))},
      Case{"safetensors: offsets beyond the data", "data.safetensors: ",
           st(sqbtest::st_raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,32]}}", four))},
      Case{"safetensors: overlapping tensors", "data.safetensors: ",
           st(sqbtest::st_raw("{\"v\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                              "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                              four))},
      Case{"safetensors: shape x dtype size not the byte range", "data.safetensors: ",
           st(sqbtest::st_raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", four))},
      Case{"safetensors: a dtype sqbench does not read", "tensor \"w\": dtype I64 is not data sqbench reads",
           st(sqbtest::st_raw("{\"w\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", four))},
      Case{"safetensors: no such tensor", "no tensor \"v\"",
           st(sqbtest::st_raw(w_header, four), st_config("v"))},
      Case{"safetensors: a tensor pattern matching nothing",
           "tensor pattern \"*.weight\" matches none of the 2 tensors, e.g. \"v\", \"w\"",
           st(sqbtest::st_raw("{\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                              "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                              four),
              st_config("*.weight"))},
      Case{"safetensors: layout=auto where the clues disagree",
           "says PyTorch-style [out, in, ...] (rows = first axis), but the name's last part 'kernel'",
           [four](const ScratchDir& d) {
             d.write("data.safetensors",
                     sqbtest::st_file({{"dense.kernel", "F32", {2, 2}, four}}, "{\"format\":\"pt\"}"));
             d.write("c.ini", st_config("dense.kernel", " layout=auto"));
           }},
      // Labels and n.
      Case{"labels: two sources with one label",
           "two sources have the label 'data': \"npy path=data.npy\" and \"npy path=other/data.npy\"; give "
           "one of them its own label=",
           [f4, four](const ScratchDir& d) {
             d.write("data.npy", raw_npy(f4, four));
             fs::create_directories(d.path / "other");
             d.write("other/data.npy", raw_npy(f4, four));
             d.write("c.ini",
                     "[sweep]\nquantizer = cosine\ndistribution = npy path=data.npy\n"
                     "distribution = npy path=other/data.npy\nk = 4\n");
           }},
      Case{"n: `all` on a synthetic law",
           "key 'n': distribution \"gaussian\": n = all (every value of a file) is for file sources (npy, "
           "safetensors); a synthetic law needs n = a number of values",
           ini("[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = all\nk = 4\n")},
      Case{"n: omitted, with a synthetic law among the sources",
           "[sweep] has no key 'n': n defaults to all (every value) only when every distribution is a file "
           "(npy, safetensors), and distribution \"laplace\" is not; give n",
           [f4, four](const ScratchDir& d) {
             d.write("data.npy", raw_npy(f4, four));
             d.write("c.ini",
                     "[sweep]\nquantizer = cosine\ndistribution = npy path=data.npy\n"
                     "distribution = laplace\nk = 4\n");
           }});
  ScratchDir dir;
  c.setup(dir);
  const fs::path out = dir.path / "out";
  const Outcome o = run_sqbench("run " + (dir.path / "c.ini").string() + " --out " + out.string());
  INFO(c.label << "\n--- output:\n" << o.output.substr(0, 2000));
  CHECK(o.status == 2);
  const std::string line = error_line(o, dir.path);
  CHECK(line.find(c.expect) != std::string::npos);
  CHECK(line.find("DIR/") != std::string::npos);     // names the file
  CHECK(o.output.find("[1/") == std::string::npos);  // no cell ran
  CHECK_FALSE(fs::exists(out));
  CHECK(o.seconds < 20);  // the 10 MB line is rejected at once, not parsed
  record(c.label, line);
}

namespace {

// A sweep whose first cell takes seconds (O(N K) k-means, about 5 s of CPU here), then a few fast cells: a
// check that happens "before any work" must end far sooner than that first cell, and must not have created
// the results folder (its results.partial.csv is written before the first cell starts).
const std::string kSlowFirst = R"([sweep.a]
quantizer = kmeans algo=naive init=uniform max_iter=40 tol=0
distribution = gaussian
n = 200000
k = 256
[sweep.b]
quantizer = uniform
distribution = laplace rows=4
n = 100000, 200000
bits = 2, 8
)";

// A task sweep: training its float model (before the first cell) takes about 10 s.
const std::string kTaskSweep =
    "[sweep]\ntask = fashion_mnist\nmode = fp32, ptq\nquantizer = cosine\nbits = 4\n";

struct PreRunCase {
  std::string label;
  std::string config;  // the whole config text
  std::string expect;  // the message, after "DIR/c.ini: " (or the start of it)
};

}  // namespace

TEST_CASE("tables, plots and memory are checked against the planned cells before the first cell runs",
          "[bad-input][cli][sweep-checks]") {
  const std::string table = "[table.t]\nrows = quantizer\ncols = bits\nvalue = mse\n";
  const std::string plot = "[plot.p]\nx = bits\ny = nmse\nseries = quantizer\nagg = mean\n";
  const PreRunCase c = GENERATE_COPY(
      PreRunCase{
          "plot: a text column as the x of a line plot",
          kSlowFirst + "[plot.p]\nx = distribution\ny = sqnr_db\nseries = quantizer\n",
          "[plot.p] key 'x': column 'distribution' holds text ('gaussian', 'laplace rows=4'), not numbers: "
          "a line plot needs a numeric x (kind = bar takes a categorical x)"},
      PreRunCase{
          "plot: a text column as the x of a scatter plot",
          kSlowFirst + "[plot.p]\nkind = scatter\nx = quantizer\ny = mse\n",
          "[plot.p] key 'x': column 'quantizer' holds text ('kmeans algo=naive init=uniform max_iter=40 "
          "tol=0', 'uniform'), not numbers: a scatter plot needs a numeric x"},
      PreRunCase{
          "plot: a text column as y (any kind)",
          kSlowFirst + "[plot.p]\nkind = bar\nx = distribution\ny = granularity\n",
          "[plot.p] key 'y': column 'granularity' holds text ('tensor'), not numbers: y must be a number"},
      PreRunCase{
          "table: a mistyped where value", kSlowFirst + table + "where = quantizer=unifrom\n",
          "[table.t] where quantizer=unifrom: no planned cell has quantizer 'unifrom'; the values are: "
          "kmeans algo=naive init=uniform max_iter=40 tol=0, uniform"},
      PreRunCase{
          "plot: a mistyped where value", kSlowFirst + plot + "where = distribution=gausian\n",
          "[plot.p] where distribution=gausian: no planned cell has distribution 'gausian'; the values "
          "are: gaussian, laplace rows=4"},
      PreRunCase{"table: one mistyped alternative of a where value",
                 kSlowFirst + table + "where = bits=2|4|8\n",
                 "[table.t] where bits=2|4|8: no planned cell has bits '4'; the values are: 2, 8"},
      PreRunCase{"table: a where number no cell has (numbers compare numerically)",
                 kSlowFirst + table + "where = n=1e5|2e6\n",
                 "[table.t] where n=1e5|2e6: no planned cell has n '2e6'; the values are: 100000, 200000"},
      PreRunCase{
          "table: where filters that exist alone but select nothing together",
          kSlowFirst + table + "where = quantizer=uniform\nwhere = distribution=gaussian\n",
          "[table.t] where quantizer=uniform, distribution=gaussian: no planned cell matches all of these "
          "together, though each value exists on its own (so the table or plot would be empty)"},
      PreRunCase{"table: cells that differ in more than the seed, without agg",
                 kSlowFirst + table + "where = quantizer=uniform\n",
                 "[table.t] (checked against the 5 planned cells before any work): table 't' cell "
                 "(quantizer=uniform, bits=2): 2 result rows fall into one cell and differ in n; add a where "
                 "filter (e.g. where = n=...) or agg = mean|median|min|max"},
      PreRunCase{"plot: points that differ in more than the seed, without agg",
                 kSlowFirst + "[plot.p]\nx = bits\ny = nmse\nseries = quantizer\n",
                 "[plot.p] (checked against the 5 planned cells before any work): plot 'p' point "
                 "(quantizer=uniform, bits=2): 2 result rows fall into one cell and differ in n; add a where "
                 "filter (e.g. where = n=...) or agg = mean|median|min|max"},
      PreRunCase{"plot: an unknown agg", kSlowFirst + "[plot.p]\nx = bits\ny = nmse\nagg = avg\n",
                 "key 'plot.p.agg': 'avg' must be one of none|mean|median|min|max"},
      PreRunCase{"plot: a reference curve on a bar plot",
                 kSlowFirst + "[plot.p]\nkind = bar\nx = bits\ny = nmse\nreference = shannon\n",
                 "[plot.p]: reference curves need a numeric x axis; kind = bar has a categorical one"},
      PreRunCase{"table: best_along = row with several values",
                 kSlowFirst + "[table.t]\nrows = quantizer\nvalue = mse, sqnr_db\nbest_along = row\n",
                 "[table.t]: best_along = row compares the columns of a row, but with several values (mse, "
                 "sqnr_db) they are different quantities; use best_along = col"},
      PreRunCase{
          "memory: a cell over max_memory", "max_memory = 20M\n" + kSlowFirst,
          "cell kmeans algo=naive init=uniform max_iter=40 tol=0 | gaussian | n=200000 k=256 tensor seed=0 "
          "needs about 13.9 MiB (n = 200000 (1 x 200000), K = 256, tensor: data 781 KiB + reconstruction "
          "781 KiB + codes 195 KiB + codebooks 3.09 KiB + design workspace 12.2 MiB + entropy coding 0 "
          "B), but max_memory "
          "allows 20 MiB and sqbench itself takes about 16 MiB of it, leaving 4 MiB; nothing was run. "
          "Use a smaller n, a finer granularity or a smaller K for it, or raise max_memory"},
      PreRunCase{
          "memory: max_memory that is not a size", "max_memory = lots\n" + kSlowFirst,
          "key 'max_memory': 'lots' must be a size in bytes, with an optional K, M, G or T (binary: 1K = "
          "1024), e.g. max_memory = 8G"},
      PreRunCase{
          "task: a per-layer text column as a plot's y",
          kTaskSweep + "[plot.p]\nx = bits\ny = layer_sqnr_db\nwhere = mode=ptq\n",
          "[plot.p] key 'y': column 'layer_sqnr_db' holds text ('layer values'), not numbers: y must be a "
          "number"},
      PreRunCase{
          "task: a mistyped mode in a where filter",
          kTaskSweep + "[table.t]\nrows = quantizer\ncols = bits\nvalue = accuracy\nwhere = mode=qta\n",
          "[table.t] where mode=qta: no planned cell has mode 'qta'; the values are: fp32, fp32_ft, ptq"},
      PreRunCase{
          "task: an hline that selects no planned cell",
          kTaskSweep + "[plot.p]\nx = bits\ny = accuracy\nwhere = mode=ptq\nhline = mode=qat\n",
          "[plot.p] hline mode=qat: no planned cell has mode 'qat'; the values are: fp32, fp32_ft, ptq"},
      PreRunCase{"kmeans_optimal: a block over max_table_gib",
                 kSlowFirst + "[sweep.c]\nquantizer = kmeans_optimal max_table_gib=0.001\ndistribution = "
                              "gaussian\nn = 200000\nk = 256\n",
                 "cell kmeans_optimal max_table_gib=0.001 | gaussian | n=200000 k=256 tensor seed=0: "
                 "kmeans_optimal: a "
                 "block of 200000 values (200000 distinct) needs 0.0134 GiB of working memory for the "
                 "programme, above "
                 "max_table_gib = 0.001; use a finer granularity or raise max_table_gib (it would stop the "
                 "run when the "
                 "cell starts)"});
  if (c.config.find("task = fashion_mnist") != std::string::npos) sqbtest::require_fashion_mnist();
  ScratchDir dir;
  dir.write("c.ini", c.config);
  const fs::path out = dir.path / "out";
  const Outcome o = run_sqbench("run " + (dir.path / "c.ini").string() + " --out " + out.string());
  INFO(c.label << "\n--- output:\n" << o.output.substr(0, 2000));
  CHECK(o.status == 2);
  const std::string line = error_line(o, dir.path);
  CHECK(line.find(c.expect) != std::string::npos);
  CHECK(line.find("DIR/c.ini") == 0);                // names the config
  CHECK(o.output.find("[1/") == std::string::npos);  // no cell ran
  CHECK_FALSE(fs::exists(out / "results.partial.csv"));
  CHECK_FALSE(fs::exists(out / "results.csv"));
  CHECK(o.seconds < 1.5);  // the first cell alone takes about 5 s of CPU
  record(c.label, line);
}

TEST_CASE("memory, another config's results, sqbench table: refused with the values or limits named",
          "[bad-input][cli][sweep-checks]") {
  ScratchDir dir;
  if (SQB_SANITIZED) {
    WARN(
        "SKIPPED the ulimit -v case (sanitized build): AddressSanitizer reserves terabytes of shadow address "
        "space at start, so a sanitized sqbench cannot start under ulimit -v 8G; the Release suite "
        "(scripts/setup release, then ctest in build/) runs it");
  } else {
    // n = 1e9 under `ulimit -v 8G` (the address space `ulimit -v` limits) used to allocate, die with exit 1
    // and leave a header-only results.partial.csv behind. (Small enough to fit the machine's memory, which is
    // checked first: max_memory stands for it, so the case does not depend on what else the machine runs.)
    const fs::path big = dir.write(
        "big.ini",
        "max_memory = 20G\n[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 1e9\nk = 16\n");
    const Outcome o = shell("/bin/bash -c 'ulimit -v 8388608; exec " + std::string(SQBENCH_EXE) + " run " +
                            big.string() + " --out " + (dir.path / "big").string() + "' 2>&1");
    INFO(o.output);
    CHECK(o.status == 2);
    CHECK(error_line(o, dir.path)
              .rfind(
                  "DIR/big.ini: cell cosine | gaussian | n=1000000000 k=16 tensor seed=0 needs about 8.38 "
                  "GiB (n = 1000000000 (1 x 1000000000), K = 16, tensor: data 3.73 GiB + reconstruction 3.73 "
                  "GiB + codes 954 MiB + codebooks 288 B + design workspace 0 B + entropy coding 0 B), "
                  "but the address-space limit (ulimit -v) allows 8 GiB",
                  0) == 0);
    CHECK_FALSE(fs::exists(dir.path / "big"));  // no results.partial.csv to block the next run
    CHECK(o.seconds < 5);
    record("memory: n = 1e9 under `ulimit -v 8G`", error_line(o, dir.path));

    // OpenBLAS used to start its worker threads when it was loaded, before main, for every command: under
    // `ulimit -v 150000` `sqbench --version` printed the version and then spun until killed, under 60000
    // OpenBLAS raised SIGINT (exit 130). A command that does not train starts no BLAS thread and works in
    // little address space (timeout turns a hang into exit 124).
    for (const std::string kib : {"150000", "60000"}) {
      for (const std::string cmd : {"--version", "codebook nf4 --bits 4"}) {
        const Outcome v = shell("/bin/bash -c 'ulimit -v " + kib + "; exec timeout 60 " +
                                std::string(SQBENCH_EXE) + " " + cmd + "' 2>&1");
        INFO("ulimit -v " << kib << "; sqbench " << cmd << "\n--- output:\n" << v.output);
        CHECK(v.status == 0);
        CHECK(v.output.find("OpenBLAS") == std::string::npos);
      }
    }
    // A run that trains is refused before any training, with the limit named.
    sqbtest::require_fashion_mnist();
    const fs::path task = dir.write("task.ini", task_config("fashion_mnist epochs=1 train_n=2000", "ptq"));
    const Outcome t = shell("/bin/bash -c 'ulimit -v 300000; exec timeout 120 " + std::string(SQBENCH_EXE) +
                            " run " + task.string() + " --out " + (dir.path / "task").string() + "' 2>&1");
    INFO(t.output);
    CHECK(t.status == 2);
    CHECK(error_line(t, dir.path).find("but the address-space limit (ulimit -v) allows 293 MiB") !=
          std::string::npos);
    CHECK(error_line(t, dir.path).find("nothing was run") != std::string::npos);
    CHECK(t.output.find("OpenBLAS") == std::string::npos);
    CHECK_FALSE(fs::exists(dir.path / "task"));
    record("memory: a task sweep under `ulimit -v 300000`", error_line(t, dir.path));
  }

  // A finished results folder of another config.
  const fs::path first = dir.write("c.ini", kSweep);
  const fs::path out = dir.path / "out";
  REQUIRE(run_sqbench("run " + first.string() + " --quiet --out " + out.string()).status == 0);
  const std::string results = slurp(out / "results.csv");
  const fs::path second = dir.write("d.ini", kSweep + "seed = 1\n");
  Outcome o = run_sqbench("run " + second.string() + " --quiet --out " + out.string());
  INFO(o.output);
  CHECK(o.status == 2);
  CHECK(error_line(o, dir.path)
            .rfind("results folder DIR/out holds the finished results of a different config "
                   "(hash ",
                   0) == 0);
  CHECK(error_line(o, dir.path)
            .find("nothing was changed: pass --fresh to replace them, or choose another "
                  "--out") != std::string::npos);
  CHECK(slurp(out / "results.csv") == results);
  record("output: a finished results folder of another config (without --fresh)", error_line(o, dir.path));

  // sqbench table with a --where value no row has.
  o = run_sqbench("table " + (out / "results.csv").string() +
                  " --rows quantizer --cols k --value mse --where distribution=gausian");
  CHECK(o.status == 2);
  CHECK(error_line(o, dir.path) ==
        "sqbench table: --where distribution=gausian: no result row has distribution "
        "'gausian'; the values are: gaussian");
  record("sqbench table: a --where value no row has", error_line(o, dir.path));

  // sqbench table's messages name its own options (--agg, --where, --cols), not the config's keys.
  const fs::path two = dir.write("two.ini", kSweep + "distribution = laplace\n");
  const fs::path two_out = dir.path / "two";
  const Outcome ran = run_sqbench("run " + two.string() + " --quiet --out " + two_out.string() + "//");
  REQUIRE(ran.status == 0);
  CHECK(ran.output.find("results in " + two_out.string() + "/\n") != std::string::npos);  // not "two///"
  const std::string csv = (two_out / "results.csv").string();
  o = run_sqbench("table " + csv + " --rows quantizer --cols k --value mse");
  CHECK(o.status == 2);
  CHECK(error_line(o, dir.path) ==
        "sqbench table cell (quantizer=cosine, k=4): 2 result rows fall into one cell and differ in "
        "distribution; add a where filter (e.g. --where distribution=...) or --agg mean|median|min|max");
  record("sqbench table: rows that differ in a key column fall into one cell", error_line(o, dir.path));
  o = run_sqbench("table " + csv + " --rows quantizer --value mse");
  CHECK(o.status == 2);
  CHECK(error_line(o, dir.path) == "sqbench table: --cols is required for a single value");
  record("sqbench table: one value without --cols", error_line(o, dir.path));
}

TEST_CASE("permissions: an unreadable config and a read-only results folder", "[bad-input][cli]") {
  const auto prefix = unprivileged_prefix();
  if (!prefix)
    FAIL(
        "running as root, the test drops to nobody with /usr/bin/setpriv, which is missing: install "
        "util-linux (part of every Debian system)");
  ScratchDir dir;
  fs::permissions(dir.path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                fs::perms::others_read | fs::perms::others_exec);
  const fs::path cfg = dir.write("c.ini", kSweep);
  fs::permissions(cfg, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  // A folder nobody may write to (as root, the binary runs as nobody; root would ignore the mode).
  const fs::path ro = dir.path / "ro";
  fs::create_directory(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                          fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  Outcome o = run_sqbench("run " + cfg.string() + " --out " + ro.string(), *prefix);
  INFO(o.output);
  CHECK(o.status == 2);
  CHECK(error_line(o, dir.path) == "results folder DIR/ro: not writable (Permission denied)");
  CHECK(o.output.find("[1/") == std::string::npos);
  record("output: read-only results folder", error_line(o, dir.path));
  // An unreadable config.
  const fs::path secret = dir.write("secret.ini", kSweep);
  fs::permissions(secret, fs::perms::none);
  o = run_sqbench("run " + secret.string() + " --out " + (dir.path / "out").string(), *prefix);
  INFO(o.output);
  CHECK(o.status == 2);
  CHECK(error_line(o, dir.path).find("DIR/secret.ini: cannot read the config file") == 0);
  CHECK_FALSE(fs::exists(dir.path / "out"));
  record("config: unreadable (mode 000)", error_line(o, dir.path));
}

TEST_CASE("output: a results folder that cannot exist is found before any work", "[bad-input][cli]") {
  ScratchDir dir;
  const fs::path cfg = dir.write("c.ini", kSweep);
  dir.write("file", "x");
  // Below a regular file: ENOTDIR for everyone, root included.
  Outcome o = run_sqbench("run " + cfg.string() + " --out " + (dir.path / "file" / "sub").string());
  CHECK(o.status == 2);
  CHECK(error_line(o, dir.path) == "results folder DIR/file/sub: cannot create it (Not a directory)");
  CHECK(o.output.find("[1/") == std::string::npos);
  record("output: results folder below a regular file", error_line(o, dir.path));
  // In /proc nobody, root included, may create folders.
  o = run_sqbench("run " + cfg.string() + " --out /proc/sqbench-results");
  INFO(o.output);
  CHECK(o.status == 2);
  CHECK(error_line(o, dir.path).starts_with("results folder /proc/sqbench-results: cannot create it ("));
  CHECK(o.output.find("[1/") == std::string::npos);
  record("output: results folder in /proc", error_line(o, dir.path));
}

TEST_CASE("ensure_writable_dir refuses folders it cannot write, root or not", "[bad-input]") {
  ScratchDir dir;
  dir.write("file", "x");
  CHECK_THROWS_WITH(sqbench::ensure_writable_dir(dir.path / "file"),
                    Catch::Contains("file: cannot create it"));
  CHECK_THROWS_WITH(sqbench::ensure_writable_dir(dir.path / "file" / "a" / "b"),
                    Catch::Contains("cannot create it (Not a directory)"));
  CHECK_THROWS_WITH(sqbench::ensure_writable_dir("/proc/sqbench"), Catch::Contains("cannot create it"));
  CHECK_THROWS_WITH(sqbench::ensure_writable_dir("/proc/self"), Catch::Contains("not writable"));
  CHECK_NOTHROW(sqbench::ensure_writable_dir(dir.path / "new" / "deep"));
  CHECK(fs::is_directory(dir.path / "new" / "deep"));
  CHECK(fs::is_empty(dir.path / "new" / "deep"));  // the probe file is gone
  // A read-only folder: as root, check it in a child that drops to nobody (root ignores the mode bits).
  const fs::path ro = dir.path / "ro";
  fs::create_directory(ro);
  fs::permissions(dir.path, fs::perms::owner_all | fs::perms::others_exec);
  fs::permissions(
      ro, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::others_read | fs::perms::others_exec);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (is_root() && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    try {
      sqbench::ensure_writable_dir(ro);
      ::_exit(1);
    } catch (const sqb::Error& e) {
      ::_exit(std::string(e.what()).find("not writable (Permission denied)") != std::string::npos ? 0 : 2);
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

namespace {

// Runs f in a child process whose file-size limit is `limit` bytes (writes beyond it fail with EFBIG, the
// way a full disk fails them with ENOSPC); returns the child's exit code.
int with_file_size_limit(rlim_t limit, const std::function<int()>& f) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // get EFBIG from write() instead of being killed
    const rlimit rl{limit, limit};
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) ::_exit(99);
    ::_exit(f());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir))
    ++n;
  return n;
}

}  // namespace

TEST_CASE("write_file_atomic: a write that fails midway leaves the previous file byte-identical",
          "[bad-input]") {
  ScratchDir dir;
  const fs::path target = dir.path / "results.csv";
  std::string previous;
  for (int i = 0; i < 200; ++i)
    previous += "row " + std::to_string(i) + ",1.0,2.0\n";
  sqbench::write_file_atomic(target, previous);
  REQUIRE(slurp(target) == previous);
  const std::string next(1 << 20, 'n');  // 1 MB, beyond the 64 KiB limit below
  const int code = with_file_size_limit(64 << 10, [&] {
    try {
      sqbench::write_file_atomic(target, next);
      return 1;
    } catch (const sqb::Error& e) {
      const std::string m = e.what();
      return m.find("results.csv: writing failed (File too large); the previous file is unchanged") !=
                     std::string::npos
                 ? 0
                 : 2;
    }
  });
  CHECK(code == 0);
  CHECK(slurp(target) == previous);
  CHECK(count_files(dir.path) == 1);  // the temporary file was removed
  // The npy writer behaves the same.
  const fs::path t = dir.path / "w.npy";
  const std::vector<std::size_t> shape = {4};
  sqb::npy::write(t, shape, std::vector<float>{1, 2, 3, 4});
  const std::string before = slurp(t);
  const std::vector<std::size_t> big = {1 << 18};
  CHECK(with_file_size_limit(64 << 10, [&] {
          try {
            sqb::npy::write(t, big, std::vector<float>(1 << 18, 1.0f));
            return 1;
          } catch (const sqb::Error& e) {
            return std::string(e.what()).find("File too large") != std::string::npos ? 0 : 2;
          }
        }) == 0);
  CHECK(slurp(t) == before);
  CHECK(count_files(dir.path) == 2);
}

TEST_CASE("a run that cannot finish writing keeps the previous results.csv byte-identical",
          "[bad-input][cli]") {
  ScratchDir dir;
  const fs::path out = dir.path / "out";
  const fs::path first = dir.write("first.ini", kSweep);
  REQUIRE(run_sqbench("run " + first.string() + " --quiet --out " + out.string()).status == 0);
  const std::string previous = slurp(out / "results.csv");
  REQUIRE(!previous.empty());
  // A bigger sweep (another config: --fresh replaces the folder) whose results.csv (about 5 KB) exceeds the
  // 1 KiB file-size limit: write() fails with EFBIG as it would with ENOSPC on a full disk.
  const fs::path second = dir.write("second.ini",
                                    "[sweep]\nquantizer = cosine\nquantizer = uniform\ndistribution = "
                                    "gaussian\nn = 100\nk = 2, 4, 8, 16, 32\n");
  const Outcome o = shell("/bin/bash -c \"trap '' XFSZ; ulimit -f 1; exec " + std::string(SQBENCH_EXE) +
                          " run " + second.string() + " --quiet --fresh --out " + out.string() + "\" 2>&1");
  INFO(o.output);
  CHECK(o.status == 2);
  // The limit is hit while appending finished cells to the partial file; the complete results stay as they
  // were.
  CHECK(error_line(o, dir.path).rfind("DIR/out/results.partial.csv: write failed (File too large)", 0) == 0);
  CHECK(slurp(out / "results.csv") == previous);
  for (const auto& e : fs::directory_iterator(out))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  // config.ini and context.json are replaced together with results.csv, so they still describe it.
  CHECK(slurp(out / "config.ini") == slurp(first));
  record("output: the file-size limit is hit while writing results.csv", error_line(o, dir.path));
}

TEST_CASE("a full disk (a tiny tmpfs) leaves the previous results intact", "[bad-input][cli]") {
  ScratchDir dir;
  const fs::path mnt = dir.path / "mnt";
  fs::create_directory(mnt);
  // Mounting needs CAP_SYS_ADMIN: root outside a container, or a container started with that capability.
  // Without it (EPERM) the test cannot run here; any other failure is the test's own.
  if (::mount("sqbench-full", mnt.c_str(), "tmpfs", 0, "size=256k") != 0) {
    const int err = errno;
    if (err != EPERM) FAIL("mounting a 256 KiB tmpfs on " << mnt << " failed: " << std::strerror(err));
    WARN(
        "SKIPPED the full-disk test: mounting its 256 KiB tmpfs needs CAP_SYS_ADMIN, which this process "
        "(uid "
        << ::getuid()
        << ") lacks; run the suite as root (in a container: one started with --cap-add SYS_ADMIN) to run it. "
        << "The file-size-limit test above covers the same write path meanwhile.");
    return;
  }
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const fs::path out = mnt / "out";
  const fs::path cfg = dir.write("c.ini", kSweep);
  REQUIRE(run_sqbench("run " + cfg.string() + " --quiet --out " + out.string()).status == 0);
  const std::string results = slurp(out / "results.csv");
  const std::string config = slurp(out / "config.ini");
  // Fill the file system to the last byte.
  {
    std::ofstream filler(mnt / "filler", std::ios::binary);
    const std::string block(4096, 'f');
    while (filler.write(block.data(), static_cast<std::streamsize>(block.size())) && filler.flush()) {
    }
  }
  const fs::path cfg2 =
      dir.write("c2.ini", "[sweep]\nquantizer = kmeans\ndistribution = laplace\nn = 200\nk = 2, 8\n");
  const Outcome o = run_sqbench("run " + cfg2.string() + " --quiet --fresh --out " + out.string());
  INFO(o.output);
  CHECK(o.status == 2);
  CHECK(error_line(o, dir.path).find("(No space left on device); the previous file is unchanged") !=
        std::string::npos);
  CHECK(slurp(out / "results.csv") == results);
  CHECK(slurp(out / "config.ini") == config);
  for (const auto& e : fs::directory_iterator(out))  // no temporary file left behind
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  record("output: the disk is full (a 256 KiB tmpfs)", error_line(o, dir.path));
}

TEST_CASE("nonfinite=drop runs and reports how many values it dropped", "[bad-input][cli]") {
  ScratchDir dir;
  const std::vector<std::size_t> shape = {2, 3};
  sqb::npy::write(dir.path / "data.npy", shape, std::vector<float>{1, NAN, 3, -INFINITY, 5, 6});
  dir.write("c.ini",
            "[sweep]\nquantizer = cosine\ndistribution = npy path=data.npy nonfinite=drop\nn = 4\nk = 2\n");
  const Outcome o =
      run_sqbench("run " + (dir.path / "c.ini").string() + " --quiet --out " + (dir.path / "o").string());
  INFO(o.output);
  REQUIRE(o.status == 0);
  std::ifstream in(dir.path / "o" / "results.csv");
  std::string header, row;
  std::getline(in, header);
  std::getline(in, row);
  const sqbench::CsvTable t = sqbench::read_csv(dir.path / "o" / "results.csv");
  REQUIRE(t.column("dropped_nonfinite"));
  CHECK(t.rows[0][*t.column("dropped_nonfinite")] == "2");
  CHECK(t.rows[0][*t.column("rows")] == "1");  // the kept values as one row
  CHECK(t.rows[0][*t.column("cols")] == "4");
}

TEST_CASE("check_ini_text: what it accepts and what it rejects, with line and column", "[bad-input][ini]") {
  const fs::path p = "c.ini";
  // Valid: UTF-8 of every length, CRLF, tabs, comments that look like sections, distinct sections.
  CHECK_NOTHROW(
      sqbench::check_ini_text("description = caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\r\n\tname = x\r\n"
                              "# [sweep]\n[sweep]\nk = 4 # [sweep]\n[other]\n",
                              p));
  CHECK_NOTHROW(sqbench::check_ini_text("", p));
  CHECK_NOTHROW(
      sqbench::check_ini_text("a = " + std::string(sqbench::kMaxConfigLineBytes - 4, 'x') + "\r\n", p));
  struct Bad {
    std::string text, expect;
  };
  const Bad b = GENERATE(
      Bad{"a = \xC0\x80\n", "c.ini:1: column 5: byte 0xC0 is not valid UTF-8"},          // overlong NUL
      Bad{"a = \xE0\x80\x80\n", "c.ini:1: column 5: byte 0xE0 is not valid UTF-8"},      // overlong
      Bad{"\na = \xED\xA0\x80\n", "c.ini:2: column 5: byte 0xED is not valid UTF-8"},    // surrogate
      Bad{"a = \xF4\x90\x80\x80\n", "c.ini:1: column 5: byte 0xF4 is not valid UTF-8"},  // > U+10FFFF
      Bad{"a = \xF5\x80\x80\x80\n", "c.ini:1: column 5: byte 0xF5 is not valid UTF-8"},  // never valid
      Bad{"a = \x80\n", "c.ini:1: column 5: byte 0x80 is not valid UTF-8"},              // lone continuation
      Bad{"a = \xE2\x82", "c.ini:1: column 5: byte 0xE2 is not valid UTF-8"},            // cut at the end
      Bad{"a = x\x1B[31m\n", "c.ini:1: column 6: control character 0x1B"},
      Bad{std::string("a = x\0", 6), "c.ini:1: column 6: binary data (a NUL byte)"},
      Bad{"a\rb = 1\n", "c.ini:1: column 2: a carriage return that does not end a line"},
      Bad{"\xEF\xBB\xBF[sweep]\n", "c.ini:1: the file starts with a UTF-8 byte-order mark"},
      Bad{"[sweep]\n[a]\n  [sweep]  # again\n", "c.ini:3: section [sweep] appears twice (lines 1 and 3)"},
      Bad{"[sweep]\n[sweep.]\n", "c.ini:2: section [sweep] appears twice (lines 1 and 2)"},
      Bad{"name = x\n  not a key  # comment\n", "c.ini:2: not a valid INI config: 'not a key' is neither"},
      Bad{"a = 1\n%invalid_line%\n", "c.ini:2: not a valid INI config: '%invalid_line%' is neither"},
      Bad{"x = 1\n" + std::string(sqbench::kMaxConfigLineBytes + 1, 'x') + "\n",
          "c.ini:2: line is longer than 65536 bytes"});
  INFO(b.text.substr(0, 60));
  CHECK_THROWS_WITH(sqbench::check_ini_text(b.text, p), Catch::StartsWith(b.expect));
}

TEST_CASE("check_ini_text rejects a 10 MB line after reading 64 KiB of it", "[bad-input][ini]") {
  const std::string text = "description = " + std::string(10 << 20, 'x') + "\n";
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(sqbench::check_ini_text(text, "c.ini"),
                    Catch::Contains("line is longer than 65536 bytes"));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(s < 0.1);  // microseconds in Release; generous for sanitizer builds
}

TEST_CASE("check_ini_text accepts every shipped config", "[bad-input][ini]") {
  for (const auto& e : fs::directory_iterator(fs::path(SQB_SOURCE_DIR) / "configs")) {
    if (e.path().extension() != ".ini") continue;
    INFO(e.path());
    CHECK_NOTHROW(sqbench::check_ini_text(slurp(e.path()), e.path()));
  }
}

TEST_CASE("read_config_file refuses devices, FIFOs, folders, huge and missing files without blocking",
          "[bad-input][ini]") {
  ScratchDir dir;
  CHECK_THROWS_WITH(sqbench::read_config_file("/dev/zero"),
                    Catch::Contains("/dev/zero: is not a regular file"));
  const fs::path fifo = dir.path / "fifo.ini";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  CHECK_THROWS_WITH(sqbench::read_config_file(fifo), Catch::Contains("fifo.ini: is not a regular file"));
  CHECK_THROWS_WITH(sqbench::read_config_file(dir.path),
                    Catch::Contains("is a directory, not a config file"));
  CHECK_THROWS_WITH(sqbench::read_config_file(dir.path / "none.ini"),
                    Catch::Contains("none.ini: cannot read the config file (No such file or directory)"));
  const fs::path huge = dir.path / "huge.ini";
  std::ofstream(huge).put('x');
  fs::resize_file(huge, sqbench::kMaxConfigBytes + 1);  // sparse: no disk space used
  CHECK_THROWS_WITH(sqbench::read_config_file(huge), Catch::Contains("huge.ini: is larger than 16 MiB"));
  const fs::path ok = dir.write("ok.ini", kSweep);
  CHECK(sqbench::read_config_file(ok) == kSweep);
  CHECK(!sqbench::read_config_file("/proc/self/status").empty());  // size 0 in stat, read to the end
}

// These run the binary on /dev/zero and a FIFO: with load_config's current std::ifstream read they would
// never end (or exhaust memory), so they are hidden until load_config reads through read_config_file().
TEST_CASE("config: /dev/zero and a FIFO are refused at once", "[bad-input][cli]") {
  ScratchDir dir;
  Outcome o = run_sqbench("run /dev/zero --out " + (dir.path / "out").string(), "timeout 5 ");
  CHECK(o.status == 2);
  CHECK(o.output.find("/dev/zero: is not a regular file") != std::string::npos);
  record("config: /dev/zero", error_line(o, dir.path));
  const fs::path fifo = dir.path / "fifo.ini";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  o = run_sqbench("run " + fifo.string() + " --out " + (dir.path / "out").string(), "timeout 5 ");
  CHECK(o.status == 2);
  CHECK(o.output.find("fifo.ini: is not a regular file") != std::string::npos);
  record("config: a FIFO", error_line(o, dir.path));
}

TEST_CASE("configs/real.ini runs every quantizer on the shipped example tensors", "[cli][npy]") {
  ScratchDir dir;
  const fs::path cfg = fs::path(SQB_SOURCE_DIR) / "configs" / "real.ini";
  const Outcome o = run_sqbench("run " + cfg.string() + " --quiet --out " + (dir.path / "real").string());
  INFO(o.output);
  REQUIRE(o.status == 0);
  std::ifstream in(dir.path / "real" / "results.csv");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  // Per file: every quantizer line x 4 bit widths x 3 granularities, less nf4 and fp4 (K = 16 only) at the
  // other 3 widths.
  std::size_t quantizers = 0;
  {
    std::ifstream config(cfg);
    for (std::string line; std::getline(config, line);)
      quantizers += line.rfind("quantizer = ", 0) == 0;
  }
  const std::size_t per_file = (quantizers * 4 - 2 * 3) * 3;
  CHECK(lines.size() == 1 + 3 * per_file);
  // Each file under its stem, with the layout its rule gives (the source column keeps the whole spec).
  std::size_t conv = 0, kernel = 0, linear = 0;
  for (const std::string& l : lines) {
    conv += l.find(",conv_oihw,all,") != std::string::npos &&
            l.find(",npy path=../tests/data/conv_oihw.npy layout=oihw,") != std::string::npos;
    kernel += l.find(",kernel_hwio,all,") != std::string::npos &&
              l.find(",npy path=../tests/data/kernel_hwio.npy layout=hwio,") != std::string::npos;
    linear += l.find(",linear_f16,all,") != std::string::npos &&
              l.find(",npy path=../tests/data/linear_f16.npy layout=oihw,") != std::string::npos;
  }
  CHECK(conv == per_file);
  CHECK(kernel == per_file);
  CHECK(linear == per_file);
}

TEST_CASE("a results folder in use, inputs changed under --resume, a plot cut short, a truncated checkpoint",
          "[bad-input][cli]") {
  ScratchDir dir;
  const auto line_of = [&](const Outcome& o) {
    // Times and process ids differ run to run.
    std::string line =
        std::regex_replace(error_line(o, dir.path), std::regex(R"(\d{4}-\d\d-\d\dT[0-9:.]+Z)"), "TIME");
    return std::regex_replace(line, std::regex(R"(pid \d+)"), "pid PID");
  };
  const std::string four = sqbtest::le_floats({1.0f, -2.0f, 0.5f, 3.0f});
  const std::string f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";
  dir.write("data.npy", sqbtest::raw_npy(f4, four));
  const fs::path cfg = dir.write("c.ini", npy_config());
  const fs::path out = dir.path / "out";
  {
    const sqbench::FolderLock held(out);
    const Outcome o = run_sqbench("run " + cfg.string() + " --quiet --out " + out.string());
    INFO(o.output);
    CHECK(o.status == 2);
    CHECK(error_line(o, dir.path)
              .find("results folder DIR/out/ is in use by another sqbench (pid " +
                    std::to_string(::getpid()) + ")") == 0);
    record("results folder: another run, render or merge holds it", line_of(o));
  }
  REQUIRE(run_sqbench("run " + cfg.string() + " --quiet --out " + out.string()).status == 0);
  dir.write("data.npy", sqbtest::raw_npy(f4, sqbtest::le_floats({1.0f, -2.0f, 0.5f, 4.0f})));
  const Outcome changed = run_sqbench("run " + cfg.string() + " --quiet --resume --out " + out.string());
  INFO(changed.output);
  CHECK(changed.status == 2);
  CHECK(error_line(changed, dir.path)
            .find("DIR/out/results.csv: cannot resume: the input DIR/data.npy changed") == 0);
  record("--resume: an input file's bytes changed", line_of(changed));

  // A plot past a file size limit (ulimit -f, in KiB).
  const fs::path plotted = dir.write("p.ini", npy_config() + "[plot.p]\nx = bits\ny = mse\n");
  const Outcome cut = shell("/bin/bash -c 'ulimit -f 8; exec " + std::string(SQBENCH_EXE) + " run " +
                            plotted.string() + " --quiet --out " + (dir.path / "plot").string() + "' 2>&1");
  INFO(cut.output);
  CHECK(cut.status == 2);
  CHECK(
      error_line(cut, dir.path).find("plot 'p' in DIR/plot/plots: p.png came out incomplete (8192 bytes)") ==
      0);
  CHECK_FALSE(fs::exists(dir.path / "plot/plots/p.png"));
  record("output: a plot cut short (`ulimit -f 8`)", line_of(cut));

  // A checkpoint truncated while open.
  std::vector<float> v(1 << 15, 0.25f);
  const fs::path st =
      dir.write("m.safetensors", sqbtest::st_file({{"w", "F32", {128, 256}, sqbtest::f32_bytes(v)}}));
  const sqb::safetensors::File f(st);
  fs::resize_file(st, 4096);
  try {
    (void)f.read("w");
    FAIL("reading a truncated mapping did not throw");
  } catch (const sqb::Error& e) {
    Outcome as_cli;
    as_cli.output = std::string("sqbench: error: ") + e.what();
    CHECK(error_line(as_cli, dir.path).find("DIR/m.safetensors: tensor \"w\": the file is now 4096 bytes") ==
          0);
    record("safetensors: the file truncated while a sweep reads it", line_of(as_cli));
  }
}

TEST_CASE("sqbench quantize: a whole checkpoint's bad input, refused before anything is written",
          "[bad-input][cli][quantize-cmd]") {
  const ScratchDir dir;
  std::vector<float> w(8 * 16), b(8, 0.5f);
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = static_cast<float>(i % 7) * 0.1f - 0.3f;
  const std::string ids = sqbtest::le_bytes(std::vector<std::uint64_t>{1, 2, 3});
  const fs::path ck =
      dir.write("m.safetensors", sqbtest::st_file({{"l.weight", "F32", {8, 16}, sqbtest::f32_bytes(w)},
                                                   {"l.bias", "F32", {8}, sqbtest::f32_bytes(b)},
                                                   {"ids", "I64", {3}, ids}}));
  const auto importance = [&](const std::string& name, std::vector<float> v) {
    return dir.write(name, sqbtest::st_file({{"l.weight", "F32", {v.size()}, sqbtest::f32_bytes(v)}}))
        .string();
  };
  std::vector<float> ok(16, 1.0f), negative = ok, nan = ok;
  negative[5] = -1.0f;
  nan[2] = std::numeric_limits<float>::quiet_NaN();
  const std::string short_imp = importance("short.safetensors", std::vector<float>(15, 1.0f)),
                    neg_imp = importance("neg.safetensors", negative),
                    nan_imp = importance("nan.safetensors", nan);
  std::vector<float> w_nan = w;
  w_nan[3 * 16 + 5] = std::numeric_limits<float>::quiet_NaN();
  const std::string nan_ck =
      dir.write("nanw.safetensors",
                sqbtest::st_file({{"l.weight", "F32", {8, 16}, sqbtest::f32_bytes(w_nan)}}))
          .string();
  dir.write("nomatch.ini", "[l.weight]\n[*.mlp.*]\nbits = 2\n");
  dir.write("int.ini", "[ids]\n[l.weight]\n");
  const std::string base = "quantize --input " + ck.string() + " --out " + (dir.path / "out").string();
  const std::string spec = " --spec kmeans --bits 2";
  struct Bad {
    std::string label, args, expect;
  };
  const std::vector<Bad> cases = {
      {"quantize: an unknown quantizer spec", " --spec kmeanz --bits 2", "unknown quantizer 'kmeanz'"},
      {"quantize: a rule that matches no tensor", spec + " --rules " + (dir.path / "nomatch.ini").string(),
       "rule [*.mlp.*] matches no tensor of DIR/m.safetensors"},
      {"quantize: a rule quantizing an integer tensor", spec + " --rules " + (dir.path / "int.ini").string(),
       "rule [ids]: tensor \"ids\" is I64, not a floating tensor"},
      {"quantize: importance of the wrong length", spec + " --importance " + short_imp,
       "importance has 15 entries, the weight laid out oihw has 16 columns"},
      {"quantize: a negative importance entry", spec + " --importance " + neg_imp,
       "DIR/neg.safetensors: tensor \"l.weight\": importance entry 5 is -1; importance (a mean of x^2) must "
       "be finite and >= 0"},
      {"quantize: a NaN importance entry", spec + " --importance " + nan_imp,
       "DIR/nan.safetensors: tensor \"l.weight\": importance entry 2 is nan"},
      {"quantize: a missing input", " --input " + (dir.path / "none.safetensors").string() + spec,
       "DIR/none.safetensors"},
      {"quantize: a malformed --shard", spec + " --shard 3/2", "--shard '3/2' is not i/n with 1 <= i <= n"},
      {"quantize: a NaN in a weight", " --input " + nan_ck + spec + " --granularity group:8",
       "DIR/nanw.safetensors: tensor \"l.weight\": data: 1 non-finite value (NaN or +-Inf); the first is NaN "
       "at index 53 (row 3, col 5)"},
  };
  for (const Bad& c : cases) {
    // A case that gives its own --input runs without the base's.
    const Outcome o = run_sqbench(c.args.find(" --input ") != std::string::npos
                                      ? "quantize --out " + (dir.path / "out").string() + c.args
                                      : base + c.args);
    INFO(c.label << "\n" << o.output);
    CHECK(o.status == 2);
    CHECK(error_line(o, dir.path).find(c.expect) != std::string::npos);
    CHECK_FALSE(fs::exists(dir.path / "out"));
    record(c.label, error_line(o, dir.path));
  }
  // --resume after the input changed: the interrupted run's journal refuses it, its partial files kept.
  const Outcome killed = shell("SQB_QUANTIZE_KILL_AFTER=1 " + std::string(SQBENCH_EXE) + " " + base + spec +
                               " --threads 1 2>&1");
  REQUIRE((killed.status == -9 || killed.status == 137));
  dir.write("m.safetensors", slurp(ck) + "");  // the same bytes, rewritten: a new modification time
  fs::last_write_time(ck, fs::last_write_time(ck) + std::chrono::seconds(3));
  const Outcome changed = run_sqbench(base + spec + " --resume");
  INFO(changed.output);
  CHECK(changed.status == 2);
  CHECK(
      error_line(changed, dir.path)
          .find(
              "DIR/out/.sqbench-quantize.journal: --resume refused: the interrupted run had other inputs or "
              "options (input/0/mtime differs)") == 0);
  CHECK(fs::exists(dir.path / "out" / "model.safetensors.partial"));
  CHECK_FALSE(fs::exists(dir.path / "out" / "model.safetensors"));
  record("quantize: --resume after the input changed", error_line(changed, dir.path));
}
