// A checkpoint in, a quantized checkpoint out. Two phases: a plan (every tensor's fate, layout, K, importance
// vector and output layout, all checked) built from the headers alone, then the work, one tensor at a time,
// into files laid out up front and renamed when complete. Nothing is written before the plan is whole.

#include "sqb/checkpoint.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <future>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "detail/error_sums.hpp"
#include "detail/huge_pages.hpp"
#include "detail/kmeans_dp.hpp"
#include "detail/measure.hpp"
#include "detail/parallel.hpp"
#include "sqb/codebook.hpp"
#include "sqb/coding.hpp"
#include "sqb/error.hpp"
#include "sqb/granularity.hpp"
#include "sqb/importance.hpp"
#include "sqb/layout.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/safetensors.hpp"
#include "sqb/version.hpp"

namespace sqb {

namespace fs = std::filesystem;
namespace st = sqb::safetensors;

namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::string number(double v) {
  if (std::isnan(v)) return "";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string shape_text(const std::vector<std::size_t>& shape) {
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += 'x';
    s += std::to_string(shape[i]);
  }
  return s.empty() ? "scalar" : s;
}

bool is_float(st::DType t) {
  return st::is_readable(t);
}

bool default_selected(const st::TensorInfo& t) {
  if (!is_float(t.dtype) || t.shape.size() < 2 || t.size() == 0) return false;
  const std::string& n = t.name;
  const auto ends = [&](std::string_view s) { return n.size() >= s.size() && n.ends_with(s); };
  return ends("weight") || ends("kernel");
}

// FNV-1a 64 of a byte range: the input fingerprint the manifest records (header bytes and size identify a
// safetensors file's layout; the data is not hashed so fingerprinting stays free).
std::uint64_t fnv1a(std::span<const unsigned char> bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// What happens to one tensor.
struct Job {
  std::string name;
  std::size_t file = 0;  // index into the input files
  st::TensorInfo info;
  bool quantize = false;
  int rule = -1;  // -1: the default selection
  std::string spec, granularity, layout_word;
  Layout layout = Layout::oihw;
  std::size_t k = 0, rows = 0, cols = 0, blocks = 0, side_per_block = 0;
  const std::vector<float>* importance = nullptr;
};

struct InputFile {
  fs::path path;
  std::string out_name;  // the file name in the output folder
  st::File file;
};

// A lock on the output folder for the run's duration: two runs into one folder would interleave.
struct FolderLock {
  int fd = -1;
  fs::path p;
  explicit FolderLock(const fs::path& dir) : p(dir / ".sqbench-quantize.lock") {
    fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) throw Error(p.string() + ": cannot create the folder's lock file");
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      throw Error(dir.string() + ": another sqbench quantize is writing into this folder (it holds " +
                  p.filename().string() + "); wait for it or choose another --out");
    }
  }
  ~FolderLock() {
    if (fd >= 0) {
      ::unlink(p.c_str());
      ::close(fd);
    }
  }
};

void write_text_atomically(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw Error(path.string() + ": cannot write");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error(path.string() + ": cannot rename the temporary file to it (" + ec.message() + ")");
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// Drops the mapped input pages of a tensor already consumed: they are file-backed and clean, so the kernel
// would reclaim them anyway, but until then they count as resident memory and a 2 GB checkpoint would look
// like a 2 GB process.
void release_pages(std::span<const unsigned char> bytes) {
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<std::uintptr_t>(bytes.data()) + page - 1) / page * page;
  const auto end = (reinterpret_cast<std::uintptr_t>(bytes.data()) + bytes.size()) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

constexpr const char* kJournal = ".sqbench-quantize.journal";
// Elements per slab of a channel or group granularity tensor (quantize_in_slabs): at group:64 about 9 MB of
// designs and 2 MB of slab codes, and 64 chunks of work for the threads.
constexpr std::size_t kSlabElements = std::size_t{1} << 21;
constexpr std::size_t kWholeTensor = std::numeric_limits<std::size_t>::max();
constexpr const char* kJournalFormat = "sqbench-quantize-journal 1";
constexpr const char* kPackRecipe =
    "for each quantized tensor T (see tensors): b = max(1, ceil(log2 k)); n = rows * cols; codes = "
    "np.unpackbits(packed[T + '.codes'], bitorder='little')[:n * b].reshape(n, b) @ (1 << "
    "np.arange(b)); "
    "for each block i with (offset, length) = packed[T + '.blocks'][i]: x[offset:offset + length] = "
    "packed[T + '.codebooks'][i][codes[offset:offset + length]]; x is the laid-out rows x cols tensor "
    "(layout oihw/rows: reshape to shape; hwio: reshape to (rows, in, kh, kw) and move the first axis "
    "last)";

std::string mtime_of(const fs::path& p) {
  return std::to_string(fs::last_write_time(p).time_since_epoch().count());
}

std::string header_hash(const InputFile& f) {
  std::string head(static_cast<std::size_t>(f.file.data_offset()), '\0');
  std::ifstream in(f.path, std::ios::binary);
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  return hex64(
      fnv1a({reinterpret_cast<const unsigned char*>(head.data()), static_cast<std::size_t>(in.gcount())}));
}

// What the finishing step needs that a shard's journal carries to `sqbench merge`.
struct RunBase {
  nlohmann::json manifest;  // without tensors and command
  std::string index;        // the input's index text ("" for one file)
  std::vector<std::string> outputs;
  bool pack = false;
  std::size_t jobs = 0;
  nlohmann::json to_json() const {
    return {{"manifest", manifest}, {"index", index}, {"outputs", outputs}, {"pack", pack}, {"jobs", jobs}};
  }
  static RunBase from_json(const nlohmann::json& j) {
    RunBase b;
    b.manifest = j.at("manifest");
    b.index = j.at("index").get<std::string>();
    b.outputs = j.at("outputs").get<std::vector<std::string>>();
    b.pack = j.at("pack").get<bool>();
    b.jobs = j.at("jobs").get<std::size_t>();
    return b;
  }
};

// Shard of each job (1-based): the jobs by decreasing cost (quantized elements; a copied tensor costs its
// bytes / 8, copying being far cheaper than designing codebooks), ties by job order, each to the least loaded
// shard (ties to the lowest index). Deterministic: every array task computes the same split.
std::vector<std::size_t> assign_shards(const std::vector<Job>& jobs, std::size_t n) {
  std::vector<std::uint64_t> cost(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i)
    cost[i] = jobs[i].quantize ? jobs[i].info.size() : (jobs[i].info.end - jobs[i].info.begin) / 8;
  std::vector<std::size_t> order(jobs.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return cost[a] > cost[b]; });
  std::vector<std::uint64_t> load(std::max<std::size_t>(n, 1), 0);
  std::vector<std::size_t> owner(jobs.size(), 1);
  for (const std::size_t j : order) {
    const std::size_t s = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[s] += cost[j];
    owner[j] = s + 1;
  }
  return owner;
}

struct JournalEntry {
  std::string tensor;
  std::vector<std::pair<std::string, std::string>> writes;  // (output file, tensor) written in full
  ReportRow row;                                            // empty for a copied tensor
  nlohmann::json manifest;
};

struct Journal {
  nlohmann::json header;
  std::map<std::size_t, JournalEntry> done;  // by job index
  bool complete = false;
  std::uint64_t valid_bytes = 0;  // the length of the whole lines; a torn last line (a kill) is dropped
};

Journal read_journal(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error(p.string() + ": cannot open the run's journal");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  Journal j;
  std::size_t at = 0;
  int lineno = 0;
  while (at < text.size()) {
    const auto nl = text.find('\n', at);
    if (nl == std::string::npos) break;  // torn: the process died while appending it
    const std::string line = text.substr(at, nl - at);
    ++lineno;
    nlohmann::json v;
    try {
      v = nlohmann::json::parse(line);
    } catch (const std::exception&) {
      throw Error(p.string() + ":" + std::to_string(lineno) +
                  ": not a journal line of sqbench quantize; remove the folder and start again");
    }
    try {
      if (lineno == 1) {
        if (v.value("journal", std::string()) != kJournalFormat)
          throw Error(p.string() + ": not a journal of this sqbench (" + std::string(kJournalFormat) + ")");
        j.header = v;
      } else if (v.contains("complete")) {
        j.complete = true;
      } else {
        JournalEntry e;
        e.tensor = v.at("tensor").get<std::string>();
        for (const auto& w : v.at("writes"))
          e.writes.emplace_back(w.at(0).get<std::string>(), w.at(1).get<std::string>());
        if (!v.at("row").is_null()) e.row = v.at("row").get<std::map<std::string, std::string>>();
        e.manifest = v.at("manifest");
        j.done[v.at("job").get<std::size_t>()] = std::move(e);
      }
    } catch (const nlohmann::json::exception& e) {
      throw Error(p.string() + ":" + std::to_string(lineno) + ": a journal line without its fields (" +
                  e.what() + ")");
    }
    at = nl + 1;
    j.valid_bytes = at;
  }
  if (lineno == 0) throw Error(p.string() + ": an empty journal; remove the folder and start again");
  return j;
}

// The first key where two JSON values differ, as a path ("input/0/mtime").
std::string first_difference(const nlohmann::json& a, const nlohmann::json& b, const std::string& at = "") {
  if (a.is_object() && b.is_object()) {
    for (const auto& [k, v] : a.items()) {
      if (!b.contains(k)) return at + k;
      if (v != b.at(k)) return first_difference(v, b.at(k), at + k + "/");
    }
    for (const auto& [k, v] : b.items())
      if (!a.contains(k)) return at + k;
  }
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (std::size_t i = 0; i < a.size(); ++i)
      if (a[i] != b[i]) return first_difference(a[i], b[i], at + std::to_string(i) + "/");
  }
  return at.empty() ? "everything" : at.substr(0, at.size() - (at.back() == '/' ? 1 : 0));
}

void check_same_run(const Journal& j, const nlohmann::json& header, const fs::path& p) {
  if (j.header.at("fingerprint") != header.at("fingerprint") || j.header.at("shard") != header.at("shard") ||
      j.header.at("base") != header.at("base")) {
    const std::string what = j.header.at("fingerprint") != header.at("fingerprint")
                                 ? first_difference(header.at("fingerprint"), j.header.at("fingerprint"))
                             : j.header.at("shard") != header.at("shard") ? std::string("shard")
                                                                          : std::string("the plan");
    throw Error(p.string() + ": --resume refused: the interrupted run had other inputs or options (" + what +
                " differs); remove the folder to start again, or resume with the same command");
  }
}

// Appends one line per finished tensor, flushed to disk before the line of the next.
class JournalAppender {
 public:
  JournalAppender(const fs::path& p, std::uint64_t keep, const std::string& header_line) : p_(p) {
    fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0) throw Error(p.string() + ": cannot open the run's journal (" + std::strerror(errno) + ")");
    if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0 || ::lseek(fd_, 0, SEEK_END) < 0)
      fail("cannot truncate");
    if (!header_line.empty()) put(header_line);
  }
  ~JournalAppender() {
    if (fd_ >= 0) ::close(fd_);
  }
  JournalAppender(const JournalAppender&) = delete;
  JournalAppender& operator=(const JournalAppender&) = delete;
  void add(std::size_t job, const JournalEntry& e) {
    nlohmann::json w = nlohmann::json::array();
    for (const auto& [f, t] : e.writes)
      w.push_back({f, t});
    put(nlohmann::json({{"job", job},
                        {"tensor", e.tensor},
                        {"writes", w},
                        {"row", e.row.empty() ? nlohmann::json() : nlohmann::json(e.row)},
                        {"manifest", e.manifest}})
            .dump());
  }
  void complete() { put(R"({"complete":true})"); }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(p_.string() + ": " + what + " (" + std::strerror(errno) + ")");
  }
  void put(std::string line) {
    line += '\n';
    const char* p = line.data();
    std::size_t n = line.size();
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("cannot write");
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    if (::fdatasync(fd_) != 0) fail("cannot flush");
  }
  fs::path p_;
  int fd_ = -1;
};

// Totals: per-element figures averaged with each tensor's element count as its weight (empty when some
// tensor's is: wmse without importance, coded_bits when not measured); max_abs_err the max; times summed.
ReportRow totals_row(const std::vector<ReportRow>& rows) {
  ReportRow total;
  total["tensor"] = "(total)";
  double n = 0;
  std::map<std::string, double> sums;
  std::set<std::string> missing;  // averaged columns empty in some row
  double max_err = 0;
  const std::vector<std::string> averaged = {"mse",          "nmse",       "entropy_bits",
                                             "storage_bits", "coded_bits", "wmse"};
  for (const ReportRow& r : rows) {
    const double rn = std::stod(r.at("n"));
    n += rn;
    for (const std::string& c : averaged) {
      if (r.at(c).empty()) {
        missing.insert(c);
        continue;
      }
      sums[c] += rn * std::stod(r.at(c));
    }
    max_err = std::max(max_err, std::stod(r.at("max_abs_err")));
    for (const char* c : {"fit_s", "encode_s", "decode_s"})
      sums[c] += std::stod(r.at(c));
  }
  total["n"] = number(n);
  for (const std::string& c : averaged)
    total[c] = n == 0 || missing.count(c) ? "" : number(sums[c] / n);
  total["max_abs_err"] = number(max_err);
  for (const char* c : {"fit_s", "encode_s", "decode_s"})
    total[c] = number(sums[c]);
  return total;
}

// The index, report.csv and manifest.json of a finished run (the data files are committed already); the
// manifest last, its presence saying the folder is complete. `shards`: how many shards were merged (0: none).
std::vector<ReportRow> finish_outputs(const fs::path& out, const RunBase& base, std::vector<ReportRow> rows,
                                      const nlohmann::json& manifest_tensors, const std::string& command,
                                      std::size_t shards) {
  rows.push_back(totals_row(rows));
  std::string csv;
  const std::vector<std::string> cols = report_columns();
  for (std::size_t i = 0; i < cols.size(); ++i) {
    if (i > 0) csv += ',';
    csv += cols[i];
  }
  csv += "\n";
  for (const ReportRow& r : rows) {
    for (std::size_t i = 0; i < cols.size(); ++i) {
      const auto it = r.find(cols[i]);
      if (i > 0) csv += ',';
      csv += csv_field(it == r.end() ? "" : it->second);
    }
    csv += "\n";
  }
  nlohmann::json m = base.manifest;
  m["command"] = command;
  if (shards > 0) m["merged_shards"] = shards;
  m["tensors"] = manifest_tensors;
  if (!base.index.empty()) write_text_atomically(out / "model.safetensors.index.json", base.index);
  write_text_atomically(out / "report.csv", csv);
  write_text_atomically(out / "manifest.json", m.dump(2) + "\n");
  return rows;
}

// optimal_mse of a channel or group granularity tensor without expanding its column weights to the tensor's
// shape (the library's call holds one weight per element): each block lies in one row, so its weights are a
// slice of the column vector. The same sums in the same order as optimal_mse (the blocks' least SSE in
// block order, over the element count or over the weights summed element by element), so the same bits.
double optimal_mse_by_rows(TensorView x, std::size_t k, const QuantizeOptions& qo) {
  check_finite(x.values, "data", x.cols);
  const std::span<const float> cw = qo.column_weights;
  const std::vector<Block> blocks = make_blocks(x.rows, x.cols, qo.granularity);
  std::vector<double> sse(blocks.size());
  detail::parallel_for(blocks.size(), detail::resolve_threads(qo.threads), [&](std::size_t i) {
    const Block& b = blocks[i];
    sse[i] = detail::optimal_sse(x.values.subspan(b.offset, b.length),
                                 cw.empty() ? cw : cw.subspan(b.offset % x.cols, b.length), k);
  });
  double total = 0;
  for (const double v : sse)
    total += v;
  if (cw.empty()) return total / static_cast<double>(x.size());
  double wsum = 0;
  for (std::size_t r = 0; r < x.rows; ++r)
    for (const float w : cw)
      wsum += w;
  return wsum > 0 ? total / wsum : std::numeric_limits<double>::quiet_NaN();
}

// What quantize_in_slabs hands back: the whole tensor's result without its designs (blocks, codes, metrics
// and figures as the one-call pipeline computes them) and the two design figures, taken over every slab.
struct SlabbedResult {
  Quantized shell;
  int iterations = 0;
  std::size_t converged = 0;
  StageTimes times;
};

// How many of `codes` hold each value, counted in pieces on `threads` threads (each piece's counts fit 32
// bits) and added up: integer counts, so any split gives the same histogram. The byte counter makes one
// pass over its piece per code value, so a one-byte code's piece is small enough to stay in cache over its
// K passes (a 16 MB piece went to memory K times); a wide code's piece stays large, its counts table being
// K entries per piece.
std::vector<std::size_t> code_histogram(const Codes& codes, int threads) {
  const std::size_t k = codes.code_count();
  const std::size_t kPiece = std::size_t{1} << (k <= 256 ? 16 : 24);
  const std::size_t pieces = (codes.size() + kPiece - 1) / kPiece;
  std::vector<std::uint32_t> counts(pieces * k, 0);
  codes.visit([&](auto c) {
    detail::parallel_for(pieces, threads, [&](std::size_t p) {
      const std::size_t b = p * kPiece;
      detail::count_codes(c.subspan(b, std::min(kPiece, c.size() - b)), &counts[p * k], k);
    });
  });
  std::vector<std::size_t> hist(k, 0);
  for (std::size_t p = 0; p < pieces; ++p)
    for (std::size_t v = 0; v < k; ++v)
      hist[v] += counts[p * k + v];
  return hist;
}

// Quantizes a channel or group granularity tensor in slabs of whole rows, so that only one slab's designs
// (about 280 bytes per block: a codebook's levels and thresholds and the side values, each a small heap
// vector) are held at a time instead of the whole tensor's. Blocks never cross rows at these granularities,
// so each slab is an independent pipeline call; it designs block i as the global block `first + i`
// (QuantizeOptions::block_offset), hence the same seeds and codebooks, and keeps its reconstruction. The
// error sums are taken over the whole tensor's measure chunks (detail::make_chunks of all its blocks), one
// sum per chunk combined in chunk order, as one pipeline call does; a chunk that straddles two slabs is
// gathered into a carry buffer. The chunks a slab completes are measured and written out on the call's
// threads. The code figures come from the whole tensor's codes, so every output byte and report figure is
// what one call gives. The packed file's codebooks, side values and block table are written per slab; the
// codes stay whole (one or two bytes per element) for the packed codes, the histogram and the rANS pass.
SlabbedResult quantize_in_slabs(const Job& j, TensorView view, const Quantizer& q, QuantizeOptions qo,
                                std::size_t slab_elements, st::Writer& w, st::Writer* packed) {
  const std::size_t R = view.rows, C = view.cols, n = view.size(), k = q.code_count();
  std::vector<Block> blocks = make_blocks(R, C, qo.granularity);
  const std::vector<detail::Chunk> chunks = detail::make_chunks(blocks);
  const int threads = detail::resolve_threads(qo.threads);
  // The values are finite: check_data_finite read every stored value before any output was written.
  const std::span<const float> cw = qo.column_weights;
  const bool weighted = !cw.empty(), coded = qo.coded;
  qo.check_input = false;
  qo.measure = false;
  qo.coded = false;
  qo.keep_decoded = true;  // the slab's reconstruction, decoded on the call's threads
  SlabbedResult out;
  Codes codes = Codes::for_overwrite(n, k);  // every element is a slab's copy
  const std::size_t slab_rows = std::max<std::size_t>(1, slab_elements / C);
  const std::size_t side_per_block = q.side_values().per_block;

  // Chunk ci's error sums (its reconstruction at xhat) and its values written out.
  std::vector<detail::ErrorSums> sums(chunks.size());
  const auto finish_chunk = [&](std::size_t ci, const float* xhat) {
    const detail::Chunk& c = chunks[ci];
    thread_local std::vector<float> scratch;
    const float* cwp = nullptr;
    if (weighted) {
      const std::size_t c0 = c.begin % C;
      if (c0 + c.length <= C) {
        cwp = cw.data() + c0;
      } else {
        // The column weights repeated row piece by row piece (a chunk spans several rows at group:G).
        scratch.resize(c.length);
        for (std::size_t i = 0, col = c0; i < c.length; col = 0) {
          const std::size_t m = std::min(C - col, c.length - i);
          std::copy_n(cw.data() + col, m, scratch.data() + i);
          i += m;
        }
        cwp = scratch.data();
      }
    }
    sums[ci] = detail::error_sums(view.values.data() + c.begin, xhat, cwp, c.length);
    w.write_values(j.name, std::span<const float>(xhat, c.length), c.begin);
  };
  std::vector<float> carry(detail::kChunk);  // a chunk begun in an earlier slab: its first `fill` values
  std::size_t ci = 0, fill = 0;

  Quantized r;
  std::size_t first_block = 0;
  for (std::size_t r0 = 0; r0 < R; r0 += slab_rows) {
    const std::size_t rows = std::min(slab_rows, R - r0), base = r0 * C, end = base + rows * C;
    const TensorView slab(rows, C, view.values.subspan(base, rows * C));
    qo.block_offset = first_block;
    StageTimes t;
    quantize_into(slab, q, qo, r, &t);
    out.times.fit += t.fit;
    out.times.encode += t.encode;
    out.times.decode += t.decode;
    out.iterations = std::max(out.iterations, r.max_iterations());
    out.converged += r.converged_blocks();
    codes.visit([&](auto all) {
      r.codes.visit([&](auto part) {
        using A = std::remove_cv_t<typename decltype(all)::element_type>;
        using P = std::remove_cv_t<typename decltype(part)::element_type>;
        if constexpr (std::is_same_v<A, P>) {
          std::copy(part.begin(), part.end(), all.begin() + static_cast<std::ptrdiff_t>(base));
        } else {
          throw std::logic_error("a slab's codes are of another width than the tensor's");
        }
      });
    });
    // The chunks this slab completes: those inside it are read from its reconstruction in place, on the
    // threads; one begun in an earlier slab, or running into the next, goes through the carry buffer.
    std::vector<std::size_t> inside;
    for (; ci < chunks.size() && chunks[ci].begin < end; ++ci) {
      const detail::Chunk& c = chunks[ci];
      if (fill == 0 && c.begin >= base && c.begin + c.length <= end) {
        inside.push_back(ci);
        continue;
      }
      const std::size_t from = c.begin + fill, to = std::min(c.begin + c.length, end);
      if (from < base) throw std::logic_error("slab chunks do not tile the tensor in storage order");
      std::copy(r.decoded.begin() + static_cast<std::ptrdiff_t>(from - base),
                r.decoded.begin() + static_cast<std::ptrdiff_t>(to - base), carry.begin() + fill);
      fill += to - from;
      if (fill < c.length) break;  // continues in the next slab
      finish_chunk(ci, carry.data());
      fill = 0;
    }
    detail::parallel_for(inside.size(), threads, [&](std::size_t i) {
      finish_chunk(inside[i], r.decoded.data() + (chunks[inside[i]].begin - base));
    });
    if (packed) {
      std::vector<float> cbs, side;
      std::vector<std::int64_t> table;
      cbs.reserve(r.blocks.size() * k);
      side.reserve(r.blocks.size() * side_per_block);
      table.reserve(r.blocks.size() * 2);
      for (std::size_t i = 0; i < r.blocks.size(); ++i) {
        const auto lv = r.designs[i].codebook.levels();
        cbs.insert(cbs.end(), lv.begin(), lv.end());
        side.insert(side.end(), r.designs[i].side.begin(), r.designs[i].side.end());
        table.push_back(static_cast<std::int64_t>(base + r.blocks[i].offset));
        table.push_back(static_cast<std::int64_t>(r.blocks[i].length));
      }
      packed->write_values(j.name + ".codebooks", cbs, first_block * k);
      if (side_per_block > 0) packed->write_values(j.name + ".side", side, first_block * side_per_block);
      packed->write(j.name + ".blocks",
                    {reinterpret_cast<const unsigned char*>(table.data()), table.size() * 8},
                    first_block * 16);
    }
    first_block += r.blocks.size();
  }
  if (ci != chunks.size() || fill != 0 || first_block != blocks.size())
    throw std::logic_error("the slabs did not cover the tensor");
  r = {};
  detail::ErrorSums total;
  for (const detail::ErrorSums& c : sums)
    total += c;

  // The rest of the measure stage: the variance about the mean, the codes' histogram and rANS pass, the
  // strategy's figures, each over the whole tensor.
  Quantized& s = out.shell;
  s.rows = R;
  s.cols = C;
  s.granularity = qo.granularity;
  s.code_count = k;
  s.side = q.side_values();
  s.codes = std::move(codes);
  const double mean = total.sum / static_cast<double>(n);
  std::vector<double> var_sums(chunks.size());  // per chunk on the threads, added in chunk order
  detail::parallel_for(chunks.size(), threads, [&](std::size_t i) {
    var_sums[i] = detail::centered_sum_sq(view.values.data() + chunks[i].begin, chunks[i].length, mean);
  });
  double var_sum = 0;
  for (const double v : var_sums)
    var_sum += v;
  detail::finish_error_metrics(static_cast<double>(n), total, var_sum, weighted, s.metrics);
  const std::vector<std::size_t> hist = code_histogram(s.codes, threads);
  detail::finish_code_metrics(hist, s.codes, blocks.size(), side_per_block, coded, s.metrics);
  s.blocks = std::move(blocks);
  if (const ReportsFigures* rf = part_of<ReportsFigures>(q)) {
    const std::vector<Col> cols = rf->figure_columns();
    const std::vector<double> values = rf->figures(s);
    if (cols.size() != values.size())
      throw std::logic_error("strategy figures: names and values differ in count");
    for (std::size_t i = 0; i < cols.size(); ++i)
      s.figures.push_back({cols[i], values[i]});
  }
  return out;
}

// Whether every stored value of a floating tensor is finite, read from its raw little-endian bytes without
// converting them: a NaN or an infinity has every exponent bit set in each of these formats. On `threads`
// threads over pieces; a value's exponent bits XOR `exponent` are zero exactly when it is not finite, and
// the loop keeps their minimum, a reduction the compiler vectorises (an OR of compares stayed scalar).
template <class U>
bool raw_finite_as(std::span<const unsigned char> raw, U exponent, int threads) {
  constexpr std::size_t kPiece = std::size_t{1} << 22;  // bytes
  const std::size_t count = raw.size() / sizeof(U), per = kPiece / sizeof(U);
  std::atomic<bool> ok{true};
  detail::parallel_for((count + per - 1) / per, threads, [&](std::size_t p) {
    const std::size_t b = p * per, e = std::min(count, b + per);
    U least = std::numeric_limits<U>::max();
    for (std::size_t i = b; i < e; ++i) {
      U v;
      std::memcpy(&v, raw.data() + i * sizeof(U), sizeof(U));
      if constexpr (std::endian::native == std::endian::big) {
        if constexpr (sizeof(U) == 2) v = __builtin_bswap16(v);
        if constexpr (sizeof(U) == 4) v = __builtin_bswap32(v);
        if constexpr (sizeof(U) == 8) v = __builtin_bswap64(v);
      }
      least = std::min(least, static_cast<U>((v & exponent) ^ exponent));
    }
    if (least == 0) ok.store(false, std::memory_order_relaxed);
  });
  return ok.load();
}

bool raw_all_finite(std::span<const unsigned char> raw, st::DType dtype, int threads) {
  switch (dtype) {
    case st::DType::BF16:
      return raw_finite_as<std::uint16_t>(raw, 0x7F80u, threads);
    case st::DType::F16:
      return raw_finite_as<std::uint16_t>(raw, 0x7C00u, threads);
    case st::DType::F32:
      return raw_finite_as<std::uint32_t>(raw, 0x7F800000u, threads);
    case st::DType::F64:
      return raw_finite_as<std::uint64_t>(raw, 0x7FF0000000000000u, threads);
    default:
      throw std::logic_error("raw_all_finite: not a floating dtype");
  }
}

// The data check of every tensor this run quantizes, before anything is written: a non-finite value is an
// Error naming the input, the tensor and the value's index in the tensor as laid out (what the pipeline's
// check would say, after some tensors were written).
void check_data_finite(const std::vector<Job>& jobs, const std::vector<InputFile>& files,
                       const std::vector<std::size_t>& owner, std::size_t shard, const std::string& in_name,
                       int threads) {
  for (std::size_t ji = 0; ji < jobs.size(); ++ji) {
    const Job& j = jobs[ji];
    if (!j.quantize || owner[ji] != shard) continue;
    const st::File& f = files[j.file].file;
    const bool finite = raw_all_finite(f.raw(j.name), j.info.dtype, threads);
    release_pages(f.raw(j.name));  // the scan must not hold the whole model resident
    if (finite) continue;
    const st::Array a = f.read(j.name);
    try {
      if (j.layout == Layout::hwio && a.shape.size() >= 2) {
        const Tensor t = to_tensor(a.shape, a.values, j.layout, j.name);
        check_finite(t.values, "data", t.cols);
      } else {
        check_finite(a.values, "data", j.cols);
      }
    } catch (const Error& e) {
      throw Error(in_name + ": tensor \"" + j.name + "\": " + e.what());
    }
  }
}

// The buffer a slabbed tensor is read into, kept from one tensor to the next and grown to the largest: a
// fresh one per tensor would be zeroed and first touched page by page every time (with the codes' zeroing,
// about a tenth of a BF16 run's CPU at group:64).
struct Workspace {
  std::unique_ptr<float[]> values;
  std::size_t capacity = 0;
  std::span<float> values_for(std::size_t n) {
    if (n > capacity) {
      values.reset();
      values = std::make_unique_for_overwrite<float[]>(n);
      detail::advise_huge_pages(values.get(), n * sizeof(float));
      capacity = n;
    }
    return {values.get(), n};
  }
};

// Quantizes one tensor into its output file (and the packed file), filling the journal entry's report row,
// manifest entry and the packed tensors it wrote. Memory: the tensor as float32 (the workspace's buffer when
// slabbed, else dropped once quantized), the reconstruction and the codes; the output is converted chunk by
// chunk, in the stored order.
void quantize_job(const CheckpointOptions& o, const std::string& in_name, const Job& j, const st::File& file,
                  st::Writer& w, st::Writer* packed, Workspace& ws, JournalEntry& d) {
  const bool transposed = j.layout == Layout::hwio && j.info.shape.size() >= 2;
  const Granularity granularity = Granularity::parse(j.granularity);
  const bool slabbed =
      !transposed && granularity.kind != Granularity::Kind::tensor && o.slab_elements != kWholeTensor;
  st::Array a;
  Tensor laid;
  TensorView view;
  if (slabbed) {
    // Converted on the threads into the buffer the run keeps from tensor to tensor.
    const std::span<float> values = ws.values_for(j.rows * j.cols);
    file.read_into(j.name, values, o.threads);
    view = TensorView(j.rows, j.cols, values);
  } else {
    a = file.read(j.name);
  }
  release_pages(file.raw(j.name));
  if (transposed) {
    laid = to_tensor(a.shape, a.values, j.layout, j.name);
    a.values = {};  // the laid-out copy is all that is needed now
    a.values.shrink_to_fit();
    view = TensorView(laid.rows, laid.cols, laid.values);
  } else if (!slabbed) {
    view = TensorView(j.rows, j.cols, a.values);
  }
  QuantizeOptions qo;
  qo.granularity = granularity;
  qo.seed = o.seed;
  qo.threads = o.threads;
  qo.coded = o.coded;  // the report's coded_bits column: a real rANS pass per tensor, when asked
  if (j.importance) qo.column_weights = *j.importance;
  // The reconstruction is decoded again from the codes a chunk at a time as it is written, unless it has to
  // be gathered back from a transposed layout.
  qo.keep_decoded = transposed;
  const std::unique_ptr<Quantizer> q = make_quantizer(j.spec, {j.k, o.seed});
  double optimum = std::numeric_limits<double>::quiet_NaN();
  try {
    if (o.opt_ratio) optimum = slabbed ? optimal_mse_by_rows(view, j.k, qo) : optimal_mse(view, j.k, qo);
  } catch (const Error& e) {
    throw Error(in_name + ": tensor \"" + j.name + "\": " + e.what());
  }
  const std::size_t n = view.size();
  std::vector<Figure> columns;
  StageTimes times;
  Metrics metrics;
  if (slabbed) {
    SlabbedResult s;
    try {
      s = quantize_in_slabs(j, view, *q, qo, o.slab_elements == 0 ? kSlabElements : o.slab_elements, w,
                            packed);
    } catch (const Error& e) {
      throw Error(in_name + ": tensor \"" + j.name + "\": " + e.what());
    }
    a.values = {};
    a.values.shrink_to_fit();
    columns = s.shell.metric_columns();
    for (Figure& f : columns) {
      if (f.column == Col::iterations) f.value = static_cast<double>(s.iterations);
      if (f.column == Col::converged)
        f.value = static_cast<double>(s.converged) / static_cast<double>(s.shell.blocks.size());
    }
    times = s.times;
    metrics = s.shell.metrics;
    if (packed) {
      const unsigned b = std::max(1u, index_bits(j.k));
      const std::vector<std::uint8_t> bits = s.shell.codes.visit([&](auto c) { return pack_codes(c, b); });
      packed->write(j.name + ".codes", bits);
    }
  } else {
    Quantized r;
    try {
      quantize_into(view, *q, qo, r, &times);
    } catch (const Error& e) {
      throw Error(in_name + ": tensor \"" + j.name + "\": " + e.what());
    }
    // The input values are not needed any more.
    a.values = {};
    a.values.shrink_to_fit();
    laid.values = {};
    laid.values.shrink_to_fit();
    if (transposed) {
      // Laid-out (r, c) is stored element c * R + r: gathered back chunk by chunk.
      const std::size_t R = j.rows, C = j.cols;
      constexpr std::size_t kChunk = std::size_t{1} << 16;
      std::vector<float> buf(std::min(n, kChunk));
      for (std::size_t at = 0; at < n; at += kChunk) {
        const std::size_t m = std::min(kChunk, n - at);
        for (std::size_t i = 0; i < m; ++i) {
          const std::size_t f = at + i;
          buf[i] = r.decoded[(f % R) * C + f / R];
        }
        w.write_values(j.name, std::span<const float>(buf.data(), m), at);
      }
    } else {
      // Blocks in storage order tile the tensor: each decoded into the buffer, written when it is full.
      constexpr std::size_t kChunk = std::size_t{1} << 16;
      std::vector<float> buf(std::min(n, kChunk));
      std::size_t at = 0, fill = 0;
      r.codes.visit([&](auto codes) {
        for (std::size_t i = 0; i < r.blocks.size(); ++i) {
          const Block& b = r.blocks[i];
          if (b.offset != at + fill) throw std::logic_error("blocks do not tile the tensor in storage order");
          for (std::size_t done = 0; done < b.length;) {
            const std::size_t m = std::min(b.length - done, buf.size() - fill);
            decode(r.designs[i].codebook, codes.subspan(b.offset + done, m),
                   std::span<float>(buf).subspan(fill, m));
            done += m;
            fill += m;
            if (fill == buf.size()) {
              w.write_values(j.name, std::span<const float>(buf.data(), fill), at);
              at += fill;
              fill = 0;
            }
          }
        }
      });
      if (fill > 0) w.write_values(j.name, std::span<const float>(buf.data(), fill), at);
    }
    r.decoded = {};
    r.decoded.shrink_to_fit();
    if (packed) {
      const unsigned b = std::max(1u, index_bits(j.k));
      const std::vector<std::uint8_t> bits = r.codes.visit([&](auto c) { return pack_codes(c, b); });
      packed->write(j.name + ".codes", bits);
      std::vector<float> cbs, side;
      std::vector<std::int64_t> blocks;
      for (std::size_t i = 0; i < r.blocks.size(); ++i) {
        const auto lv = r.designs[i].codebook.levels();
        cbs.insert(cbs.end(), lv.begin(), lv.end());
        side.insert(side.end(), r.designs[i].side.begin(), r.designs[i].side.end());
        blocks.push_back(static_cast<std::int64_t>(r.blocks[i].offset));
        blocks.push_back(static_cast<std::int64_t>(r.blocks[i].length));
      }
      packed->write_values(j.name + ".codebooks", cbs);
      if (j.side_per_block > 0) packed->write_values(j.name + ".side", side);
      packed->write(j.name + ".blocks",
                    {reinterpret_cast<const unsigned char*>(blocks.data()), blocks.size() * 8});
    }
    columns = r.metric_columns();
    metrics = r.metrics;
  }
  double ratio = std::numeric_limits<double>::quiet_NaN();
  if (o.opt_ratio) {
    const double measured = j.importance ? metrics.wmse : metrics.mse;
    ratio = std::isnan(measured) ? NAN : optimum > 0 ? measured / optimum : (measured == 0 ? 1.0 : INFINITY);
  }
  if (packed) {
    for (const char* suffix : {".codes", ".codebooks", ".blocks"})
      d.writes.push_back({"packed.safetensors", j.name + suffix});
    if (j.side_per_block > 0) d.writes.push_back({"packed.safetensors", j.name + ".side"});
  }
  ReportRow& row = d.row;
  row["tensor"] = j.name;
  row["shape"] = shape_text(j.info.shape);
  row["dtype"] = std::string(st::dtype_name(j.info.dtype));
  row[std::string(column_name(Col::quantizer))] = j.spec;
  row[std::string(column_name(Col::n))] = std::to_string(n);
  row[std::string(column_name(Col::k))] = std::to_string(j.k);
  row[std::string(column_name(Col::bits))] = number(std::log2(static_cast<double>(j.k)));
  row[std::string(column_name(Col::granularity))] = j.granularity;
  for (const Figure& f : columns)
    row[std::string(column_name(f.column))] = number(f.value);
  row[std::string(column_name(Col::opt_ratio))] = number(ratio);
  row[std::string(column_name(Col::fit_s))] = number(times.fit);
  row[std::string(column_name(Col::encode_s))] = number(times.encode);
  row[std::string(column_name(Col::decode_s))] = number(times.decode);
  d.manifest = {{"shape", j.info.shape},
                {"dtype", std::string(st::dtype_name(j.info.dtype))},
                {"quantizer", j.spec},
                {"k", j.k},
                {"granularity", j.granularity},
                {"layout", j.layout_word},
                {"rows", j.rows},
                {"cols", j.cols},
                {"blocks", j.blocks},
                {"importance", j.importance != nullptr},
                {"side", q->side_values().description}};
}

}  // namespace

std::vector<CheckpointRule> parse_rules(const std::string& text, const std::string& where) {
  std::vector<CheckpointRule> rules;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  std::vector<bool> has_k;
  constexpr const char* kKeys = "spec, bits, k, granularity, layout, importance, skip";
  while (std::getline(in, line)) {
    ++lineno;
    const std::string at = where + ":" + std::to_string(lineno) + ": ";
    const auto hash = line.find_first_of("#;");
    if (hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line.back() != ']' || line.size() < 3)
        throw Error(at + "a rule starts with [GLOB] (a tensor-name pattern such as [*.mlp.*])");
      CheckpointRule r;
      r.pattern = trim(line.substr(1, line.size() - 2));
      st::glob_match(r.pattern, "");  // a malformed pattern is an error here
      rules.push_back(r);
      has_k.push_back(false);
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) throw Error(at + "expected KEY = VALUE (keys: " + kKeys + ")");
    if (rules.empty()) throw Error(at + "a key before the first [GLOB] rule");
    const std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    CheckpointRule& r = rules.back();
    const auto as_bool = [&](std::string_view yes, std::string_view no) {
      if (value == yes || value == "true" || value == "1") return true;
      if (value == no || value == "false" || value == "0") return false;
      throw Error(at + key + " = '" + value + "' is not " + std::string(yes) + " or " + std::string(no));
    };
    if (key == "spec") {
      r.spec = value;
    } else if (key == "bits" || key == "k") {
      if (has_k.back()) throw Error(at + "give bits or k once per rule");
      has_k.back() = true;
      std::size_t v = 0;
      const auto res = std::from_chars(value.data(), value.data() + value.size(), v);
      if (res.ec != std::errc() || res.ptr != value.data() + value.size())
        throw Error(at + key + " = '" + value + "' is not a whole number");
      try {
        r.k = key == "bits" ? codes_for_bits(static_cast<int>(std::min<std::size_t>(v, 1000))) : v;
      } catch (const Error& e) {
        throw Error(at + e.what());
      }
      if (r.k < 1 || r.k > kMaxCodes) throw Error(at + "k = " + value + " is outside " + k_range());
    } else if (key == "granularity") {
      try {
        (void)Granularity::parse(value);
      } catch (const Error& e) {
        throw Error(at + e.what());
      }
      r.granularity = value;
    } else if (key == "layout") {
      if (value != "auto" && !layout_named(value))
        throw Error(at + "layout = '" + value + "' is not one of rows, oihw, hwio, auto");
      r.layout = value;
    } else if (key == "importance") {
      r.importance = as_bool("on", "off");
    } else if (key == "skip") {
      r.skip = as_bool("true", "false");
    } else {
      throw Error(at + "unknown key '" + key + "' (keys: " + kKeys + ")");
    }
  }
  if (rules.empty()) throw Error(where + ": no rules (a rule is a [GLOB] section)");
  return rules;
}

std::vector<std::string> report_columns() {
  std::vector<std::string> cols = {"tensor", "shape", "dtype"};
  for (const Col c : {Col::quantizer,
                      Col::n,
                      Col::k,
                      Col::bits,
                      Col::granularity,
                      Col::rows,
                      Col::cols,
                      Col::blocks,
                      Col::mse,
                      Col::nmse,
                      Col::sqnr_db,
                      Col::max_abs_err,
                      Col::entropy_bits,
                      Col::storage_bits,
                      Col::coded_bits,
                      Col::wmse,
                      Col::iterations,
                      Col::converged,
                      Col::opt_ratio,
                      Col::fit_s,
                      Col::encode_s,
                      Col::decode_s})
    cols.emplace_back(column_name(c));
  return cols;
}

std::vector<ReportRow> quantize_checkpoint(const CheckpointOptions& o) {
  // ---- Plan: inputs, selection, layouts, importance, output names; everything checked before any write.
  const std::string in_name = o.input.string();
  std::vector<InputFile> files;
  std::string index_text;
  if (o.input.extension() == ".json") {
    std::ifstream f(o.input, std::ios::binary);
    if (!f) throw Error(in_name + ": cannot open the sharded checkpoint's index");
    std::stringstream ss;
    ss << f.rdbuf();
    index_text = ss.str();
    std::vector<std::string> shards;
    for (const auto& [tensor, shard] : st::parse_index(index_text, in_name))
      if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    std::sort(shards.begin(), shards.end());
    for (const std::string& s : shards)
      files.push_back({o.input.parent_path() / s, s, st::File(o.input.parent_path() / s)});
  } else {
    files.push_back({o.input, "model.safetensors", st::File(o.input)});
  }
  if (o.rules.empty() && (o.spec.empty() || o.k == 0))
    throw Error("give a quantizer spec and bits (or k), or rules");
  std::optional<Importance> imp;
  if (!o.importance.empty()) imp = read_importance(o.importance, o.rename);

  std::vector<Job> jobs;
  std::vector<std::size_t> rule_hits(o.rules.size(), 0);
  for (std::size_t fi = 0; fi < files.size(); ++fi) {
    const std::string framework = [&] {
      const auto& m = files[fi].file.metadata();
      const auto it = m.find("format");
      return it == m.end() ? std::string() : it->second;
    }();
    for (const st::TensorInfo& t : files[fi].file.tensors()) {
      Job j;
      j.name = t.name;
      j.file = fi;
      j.info = t;
      j.spec = o.spec;
      j.k = o.k;
      j.granularity = o.granularity;
      j.layout_word = "auto";
      bool use_importance = true;
      if (o.rules.empty()) {
        j.quantize = default_selected(t);
      } else {
        for (std::size_t r = 0; r < o.rules.size(); ++r) {
          if (!st::glob_match(o.rules[r].pattern, t.name)) continue;
          ++rule_hits[r];
          const CheckpointRule& rule = o.rules[r];
          j.rule = static_cast<int>(r);
          j.quantize = !rule.skip;
          if (!rule.spec.empty()) j.spec = rule.spec;
          if (rule.k != 0) j.k = rule.k;
          if (!rule.granularity.empty()) j.granularity = rule.granularity;
          j.layout_word = rule.layout;
          use_importance = rule.importance;
          break;
        }
        if (j.quantize) {
          const std::string head =
              "rule [" + o.rules[static_cast<std::size_t>(j.rule)].pattern + "]: tensor \"" + t.name + "\"";
          if (!is_float(t.dtype)) {
            throw Error(head + " is " + std::string(st::dtype_name(t.dtype)) +
                        ", not a floating tensor (F32, F16, BF16, F64): add a skip rule before it");
          }
          if (t.size() == 0) throw Error(head + " has no elements: add a skip rule before it");
          if (j.spec.empty() || j.k == 0)
            throw Error(head + ": the rule gives no spec or bits/k, and neither does the command");
        }
      }
      if (j.quantize) {
        const std::string what = in_name + ": tensor \"" + t.name + "\"";
        if (j.layout_word == "auto") {
          j.layout = auto_layout(t.name, t.shape, framework, what);
        } else {
          j.layout = *layout_named(j.layout_word);
        }
        j.layout_word = std::string(layout_word(j.layout));
        // rows x cols as to_tensor lays it out.
        if (t.shape.size() < 2) {
          j.rows = 1;
          j.cols = t.size();
        } else if (j.layout == Layout::hwio) {
          j.rows = t.shape.back();
          j.cols = t.size() / j.rows;
        } else {
          j.rows = t.shape[0];
          j.cols = t.size() / j.rows;
        }
        const Granularity g = Granularity::parse(j.granularity);
        j.blocks = make_blocks(j.rows, j.cols, g).size();
        const std::unique_ptr<Quantizer> q = make_quantizer(j.spec, {j.k, o.seed});
        j.side_per_block = q->side_values().per_block;
        if (imp && use_importance) {
          j.importance = imp->find(t.name);
          if (j.importance == nullptr) {
            throw Error(imp->source + ": no importance vector for the quantized tensor \"" + t.name +
                        "\" (give one, or a rule with importance = off for it)");
          }
          if (j.importance->size() != j.cols) {
            throw Error(imp->source + ": tensor \"" + t.name + "\": importance has " +
                        std::to_string(j.importance->size()) + " entries, the weight laid out " +
                        j.layout_word + " has " + std::to_string(j.cols) +
                        " columns (one per input channel)");
          }
        }
      }
      jobs.push_back(std::move(j));
    }
  }
  for (std::size_t r = 0; r < o.rules.size(); ++r) {
    if (rule_hits[r] == 0) {
      throw Error("rule [" + o.rules[r].pattern + "] matches no tensor of " + in_name +
                  " (or every tensor it matches is taken by an earlier rule)");
    }
  }
  if (std::none_of(jobs.begin(), jobs.end(), [](const Job& j) { return j.quantize; }))
    throw Error(in_name +
                ": no tensor is selected for quantization (floating, rank >= 2, named *weight or "
                "*kernel); give rules to choose them");

  // ---- The run's description: what the journal is fingerprinted against and what the manifest says.
  std::map<std::string, std::string> sq_meta = {{"sqbench.version", std::string(version())}};
  {
    nlohmann::json rj = nlohmann::json::array();
    for (const CheckpointRule& r : o.rules)
      rj.push_back({{"match", r.pattern},
                    {"skip", r.skip},
                    {"spec", r.spec},
                    {"k", r.k},
                    {"granularity", r.granularity},
                    {"layout", r.layout},
                    {"importance", r.importance}});
    sq_meta["sqbench.rules"] =
        o.rules.empty() ? "default: " + o.spec + " k=" + std::to_string(o.k) + " granularity=" + o.granularity
                        : rj.dump();
  }
  RunBase base;
  base.index = index_text;
  base.pack = o.pack;
  base.jobs = jobs.size();
  for (const InputFile& f : files)
    base.outputs.push_back(f.out_name);
  {
    nlohmann::json& m = base.manifest;
    m["sqbench_version"] = std::string(version());
    nlohmann::json inputs = nlohmann::json::array();
    for (const InputFile& f : files)
      inputs.push_back(
          {{"file", f.path.string()}, {"bytes", fs::file_size(f.path)}, {"header_fnv1a64", header_hash(f)}});
    m["input"] = {{"path", in_name}, {"files", inputs}};
    m["rules"] = o.rules.empty() ? nlohmann::json(sq_meta["sqbench.rules"])
                                 : nlohmann::json::parse(sq_meta["sqbench.rules"]);
    m["importance"] =
        imp ? nlohmann::json({{"file", imp->source}, {"format", imp->format}}) : nlohmann::json();
    if (o.pack) m["pack"] = {{"file", "packed.safetensors"}, {"decode", kPackRecipe}};
  }
  // The fingerprint a resumed run must match: every input file's header, size and modification time, the
  // importance file's bytes, and every option that changes a byte of the output (not the thread count).
  nlohmann::json fingerprint;
  {
    nlohmann::json in = nlohmann::json::array();
    for (const InputFile& f : files)
      in.push_back({{"file", f.path.string()},
                    {"bytes", fs::file_size(f.path)},
                    {"mtime", mtime_of(f.path)},
                    {"header_fnv1a64", header_hash(f)}});
    fingerprint["input"] = in;
    if (imp) {
      std::ifstream f(o.importance, std::ios::binary);
      std::stringstream ss;
      ss << f.rdbuf();
      const std::string b = ss.str();
      fingerprint["importance"] = {
          {"file", o.importance.string()},
          {"bytes", b.size()},
          {"mtime", mtime_of(o.importance)},
          {"fnv1a64", hex64(fnv1a({reinterpret_cast<const unsigned char*>(b.data()), b.size()}))}};
    } else {
      fingerprint["importance"] = nullptr;
    }
    fingerprint["options"] = {{"spec", o.spec},
                              {"k", o.k},
                              {"granularity", o.granularity},
                              {"rules", sq_meta["sqbench.rules"]},
                              {"rename", o.rename},
                              {"pack", o.pack},
                              {"opt_ratio", o.opt_ratio},
                              {"coded", o.coded},
                              {"seed", o.seed},
                              {"sqbench_version", std::string(version())}};
  }

  // ---- This run's share: every job, or the jobs of shard i of n (balanced by size, deterministic).
  const std::size_t si = o.shard_index, sn = o.shard_count;
  if (sn < 1 || si < 1 || si > sn)
    throw Error("--shard " + std::to_string(si) + "/" + std::to_string(sn) + ": give i/n with 1 <= i <= n");
  const std::vector<std::size_t> owner = assign_shards(jobs, sn);
  const fs::path work = sn == 1 ? o.out : o.out / shard_folder_name(si, sn);
  check_data_finite(jobs, files, owner, si, in_name, detail::resolve_threads(o.threads));

  std::error_code ec;
  fs::create_directories(work, ec);
  if (ec) throw Error(work.string() + ": cannot create the output folder (" + ec.message() + ")");
  const FolderLock lock(work);
  if (sn == 1) {
    // Outputs must not replace anything: a folder holding them is refused.
    std::vector<std::string> outputs = {"report.csv", "manifest.json"};
    for (const InputFile& f : files)
      outputs.push_back(f.out_name);
    if (!index_text.empty()) outputs.push_back("model.safetensors.index.json");
    if (o.pack) outputs.push_back("packed.safetensors");
    for (const std::string& n : outputs) {
      if (fs::exists(o.out / n))
        throw Error((o.out / n).string() +
                    " exists: choose another --out folder (results are never replaced)");
    }
  }
  const fs::path journal_path = work / kJournal;
  nlohmann::json header = {{"journal", kJournalFormat},
                           {"fingerprint", fingerprint},
                           {"shard", {si, sn}},
                           {"base", base.to_json()},
                           {"command", o.command}};
  Journal journal;
  const bool continuing = fs::exists(journal_path);
  if (continuing) {
    if (!o.resume) {
      throw Error(journal_path.string() +
                  ": an earlier run into this folder was interrupted; give --resume to keep its finished "
                  "tensors, or remove the folder");
    }
    journal = read_journal(journal_path);
    check_same_run(journal, header, journal_path);
  }
  if (journal.complete) {
    // A finished shard: nothing left to do.
    std::vector<ReportRow> rows;
    for (auto& [job, d] : journal.done)
      if (!d.row.empty()) rows.push_back(d.row);
    rows.push_back(totals_row(rows));
    return rows;
  }

  std::unique_ptr<st::Writer> packed;
  if (o.pack) {
    std::vector<st::Entry> entries;
    for (const Job& j : jobs) {
      if (!j.quantize) continue;
      const unsigned b = std::max(1u, index_bits(j.k));
      entries.push_back({j.name + ".codes", st::DType::U8, {packed_bytes(j.rows * j.cols, b)}});
      entries.push_back({j.name + ".codebooks", st::DType::F32, {j.blocks, j.k}});
      entries.push_back({j.name + ".blocks", st::DType::I64, {j.blocks, 2}});
      if (j.side_per_block > 0)
        entries.push_back({j.name + ".side", st::DType::F32, {j.blocks, j.side_per_block}});
    }
    packed = std::make_unique<st::Writer>(o.out / "packed.safetensors", std::move(entries), sq_meta,
                                          st::Partial{work / "packed.safetensors.partial", continuing});
  }
  std::vector<std::unique_ptr<st::Writer>> writers;
  for (std::size_t fi = 0; fi < files.size(); ++fi) {
    std::vector<st::Entry> entries;
    for (const st::TensorInfo& t : files[fi].file.tensors())
      entries.push_back({t.name, t.dtype, t.shape});
    std::map<std::string, std::string> meta = files[fi].file.metadata();
    for (const auto& [k, v] : sq_meta)
      meta[k] = v;
    writers.push_back(
        std::make_unique<st::Writer>(o.out / files[fi].out_name, std::move(entries), meta,
                                     st::Partial{work / (files[fi].out_name + ".partial"), continuing}));
  }
  const auto writer_of = [&](const std::string& file) -> st::Writer& {
    if (file == "packed.safetensors" && packed) return *packed;
    for (std::size_t fi = 0; fi < files.size(); ++fi)
      if (files[fi].out_name == file) return *writers[fi];
    throw Error(journal_path.string() + ": names an output file \"" + file + "\" this run does not write");
  };
  // What the journal says is finished is present in the reopened files.
  for (const auto& [job, d] : journal.done) {
    if (job >= jobs.size() || jobs[job].name != d.tensor || owner[job] != si)
      throw Error(journal_path.string() + ": job " + std::to_string(job) + " (\"" + d.tensor +
                  "\") is not one of this run's tensors");
    for (const auto& [file, tensor] : d.writes)
      writer_of(file).mark_written(tensor);
  }
  JournalAppender append(journal_path, continuing ? journal.valid_bytes : 0, continuing ? "" : header.dump());
  long kill_after = -1;  // the test hook: SIGKILL this process after that many finished tensors
  if (const char* e = std::getenv("SQB_QUANTIZE_KILL_AFTER")) kill_after = std::strtol(e, nullptr, 10);
  long finished_here = 0;
  Workspace ws;
  // The previous tensor's flush and journal line, on their own thread while this thread works on the next
  // tensor (the disk's flush of a tensor is otherwise time both cores sit idle). At most one is pending, so
  // the journal's lines keep the jobs' order, and each line is written only once its tensor's bytes are on
  // disk, as before. Declared after the writers and the journal it uses: an exception unwinding from here
  // waits for it before they close.
  std::future<void> pending;
  const auto settle = [&] {
    if (pending.valid()) pending.get();  // rethrows the flush's or the journal's Error
  };

  for (std::size_t ji = 0; ji < jobs.size(); ++ji) {
    const Job& j = jobs[ji];
    if (owner[ji] != si || journal.done.count(ji)) continue;
    if (kill_after >= 0 && finished_here >= kill_after) {
      settle();  // the tensors finished so far are in the journal, as the hook's count says
      ::raise(SIGKILL);
    }
    const std::size_t fi = j.file;
    st::Writer& w = *writers[fi];
    JournalEntry d;
    d.tensor = j.name;
    d.writes.push_back({files[fi].out_name, j.name});
    if (!j.quantize) {
      w.write(j.name, files[fi].file.raw(j.name));
      release_pages(files[fi].file.raw(j.name));
    } else {
      quantize_job(o, in_name, j, files[fi].file, w, packed.get(), ws, d);
    }
    settle();
    pending = std::async(std::launch::async, [&w, &packed, &append, ji, q = j.quantize, line = d] {
      w.sync();
      if (packed && q) packed->sync();
      append.add(ji, line);
    });
    journal.done.emplace(ji, std::move(d));
    ++finished_here;
  }
  settle();

  std::vector<ReportRow> rows;
  nlohmann::json manifest_tensors = nlohmann::json::object();
  for (const auto& [job, d] : journal.done) {
    if (d.row.empty()) continue;
    rows.push_back(d.row);
    manifest_tensors[d.tensor] = d.manifest;
  }
  if (sn > 1) {
    // A shard leaves its partial files and journal for `sqbench merge`.
    append.complete();
    rows.push_back(totals_row(rows));
    return rows;
  }
  // Completion order: data files, then the index, the report and the manifest last (its presence says done).
  if (packed) packed->commit();
  for (auto& w : writers)
    w->commit();
  rows = finish_outputs(o.out, base, rows, manifest_tensors, o.command, 0);
  fs::remove(journal_path, ec);
  return rows;
}

bool is_checkpoint_shard(const fs::path& dir) {
  return fs::is_regular_file(dir / kJournal);
}

std::string shard_folder_name(std::size_t i, std::size_t n) {
  return "shard-" + std::to_string(i) + "-of-" + std::to_string(n);
}

std::pair<std::size_t, std::size_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  std::size_t i = 0, n = 0;
  const auto num = [&](std::string_view s, std::size_t& v) {
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
  };
  if (slash == std::string::npos || !num(std::string_view(text).substr(0, slash), i) ||
      !num(std::string_view(text).substr(slash + 1), n) || n < 1 || i < 1 || i > n) {
    throw Error("--shard '" + text +
                "' is not i/n with 1 <= i <= n (e.g. --shard 2/8: the second of 8 parts)");
  }
  return {i, n};
}

std::vector<ReportRow> merge_checkpoint_shards(const std::vector<fs::path>& shards, const fs::path& out_dir,
                                               const std::string& command) {
  if (shards.empty()) throw Error("sqbench merge: give the checkpoint's shard folders");
  std::vector<Journal> journals;
  std::vector<nlohmann::json> headers;
  std::size_t n = 0;
  std::map<std::size_t, fs::path> by_index;
  for (const fs::path& d : shards) {
    const fs::path jp = d / kJournal;
    if (!fs::is_regular_file(jp))
      throw Error(d.string() + ": not a shard folder of `sqbench quantize --shard` (it has no " +
                  std::string(kJournal) + ")");
    Journal j = read_journal(jp);
    const auto& sh = j.header.at("shard");
    const std::size_t i = sh.at(0).get<std::size_t>(), sn = sh.at(1).get<std::size_t>();
    if (n == 0) n = sn;
    if (sn != n)
      throw Error(d.string() + ": a shard of " + std::to_string(sn) + " parts, the others are of " +
                  std::to_string(n));
    if (!journals.empty() && j.header.at("fingerprint") != journals.front().header.at("fingerprint"))
      throw Error(d.string() + ": its input or options differ from " + shards.front().string() + "'s (" +
                  first_difference(j.header.at("fingerprint"), journals.front().header.at("fingerprint")) +
                  "); shards of one run only");
    if (by_index.count(i))
      throw Error(d.string() + ": shard " + std::to_string(i) + " is given twice (also " +
                  by_index[i].string() + ")");
    if (!j.complete)
      throw Error(d.string() + ": shard " + std::to_string(i) + " of " + std::to_string(n) +
                  " has not finished (run it again with --resume)");
    by_index[i] = d;
    journals.push_back(std::move(j));
  }
  std::string missing;
  for (std::size_t i = 1; i <= n; ++i)
    if (!by_index.count(i)) missing += (missing.empty() ? "" : ", ") + std::to_string(i);
  if (!missing.empty())
    throw Error("sqbench merge: shard(s) " + missing + " of " + std::to_string(n) + " are missing");
  const RunBase base = RunBase::from_json(journals.front().header.at("base"));

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw Error(out_dir.string() + ": cannot create the output folder (" + ec.message() + ")");
  const FolderLock lock(out_dir);
  std::vector<std::string> files = base.outputs;
  if (base.pack) files.push_back("packed.safetensors");
  for (const std::string& f : files)
    if (fs::exists(out_dir / f))
      throw Error((out_dir / f).string() +
                  " exists: choose another --out folder (results are never replaced)");
  // Each output file: the layout of the shards' partial files (one layout for all), every tensor's bytes from
  // the shard that wrote it.
  std::vector<std::unique_ptr<st::Writer>> writers;
  for (const std::string& f : files) {
    const st::File first(shards.front() / (f + ".partial"));
    std::vector<st::Entry> entries;
    for (const st::TensorInfo& t : first.tensors())
      entries.push_back({t.name, t.dtype, t.shape});
    auto w = std::make_unique<st::Writer>(out_dir / f, std::move(entries), first.metadata());
    if (w->data_offset() != first.data_offset())
      throw Error(first.name() +
                  ": its header is not the one this sqbench lays out; merge with the sqbench "
                  "that wrote the shards");
    std::set<std::string> seen;
    for (std::size_t s = 0; s < shards.size(); ++s) {
      const st::File part(shards[s] / (f + ".partial"));
      for (const auto& [job, d] : journals[s].done) {
        for (const auto& [file, tensor] : d.writes) {
          if (file != f) continue;
          if (!seen.insert(tensor).second)
            throw Error(shards[s].string() + ": tensor \"" + tensor + "\" of " + f +
                        " was written by two shards");
          w->write(tensor, part.raw(tensor));
          release_pages(part.raw(tensor));
        }
      }
    }
    writers.push_back(std::move(w));
  }
  std::map<std::size_t, const JournalEntry*> all;
  for (const Journal& j : journals)
    for (const auto& [job, d] : j.done)
      all[job] = &d;
  if (all.size() != base.jobs)
    throw Error("sqbench merge: the shards finished " + std::to_string(all.size()) + " of " +
                std::to_string(base.jobs) + " tensors");
  std::vector<ReportRow> rows;
  nlohmann::json manifest_tensors = nlohmann::json::object();
  for (const auto& [job, d] : all) {
    if (d->row.empty()) continue;
    rows.push_back(d->row);
    manifest_tensors[d->tensor] = d->manifest;
  }
  for (auto& w : writers)
    w->commit();
  (void)command;
  return finish_outputs(out_dir, base, rows, manifest_tensors,
                        journals.front().header.value("command", std::string()), n);
}

}  // namespace sqb
