#pragma once
/// \file safetensors.hpp
/// Hugging Face safetensors checkpoints in: single files, sharded checkpoints (`*.safetensors.index.json`),
/// and shell-style globs over tensor names.
///
/// A safetensors file is: 8 bytes, a little-endian uint64 N; N bytes of UTF-8 JSON (the header, possibly
/// padded with blanks); then the data buffer. The header is an object mapping each tensor name to
/// `{"dtype": "BF16", "shape": [4096, 11008], "data_offsets": [begin, end]}` (byte offsets into the data
/// buffer, end exclusive, values little-endian in C order), plus an optional `"__metadata__"` object of
/// string -> string. As the format's specification demands, the tensors' byte ranges cover the data buffer
/// exactly: no overlap, no hole, nothing after the last one.
///
/// sqbench reads F32, F16, BF16 and F64 tensors as float32 data. A file may hold tensors of any dtype the
/// format defines (an I64 `position_ids` buffer is common); they are listed and their byte ranges validated,
/// and only reading one as data is an error that names it.
///
/// Every problem is an sqb::Error whose message starts with the file's name and, where a tensor is
/// involved, names it: a file shorter than 8 bytes, a header length beyond the file or over 100 MB
/// (100,000,000 bytes, the reference implementation's limit), a header that is not strict JSON (RFC 8259;
/// the message gives the byte offset in the file) or not an object, a tensor named twice, an entry that is
/// not an object or lacks or adds a key, an unknown dtype, a shape that is not a list of non-negative
/// integers, an element count or byte size beyond uint64, data_offsets not two non-negative integers, begin >
/// end, a range beyond the data buffer, a range whose length is not shape x dtype size, overlapping ranges,
/// bytes of the buffer that belong to no tensor, `__metadata__` that is not string -> string, a path that is
/// a directory, FIFO or device (refused before anything is read, so nothing hangs).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sqb::safetensors {

/// Every dtype the safetensors format defines. F32, F16, BF16 and F64 can be read as data (is_readable);
/// the rest are known so that files holding them open and messages can name them.
enum class DType : std::uint8_t {
  F64,
  F32,
  F16,
  BF16,
  I64,
  I32,
  I16,
  I8,
  U64,
  U32,
  U16,
  U8,
  BOOL,
  F8_E4M3,
  F8_E5M2,
  F8_E8M0,
  F6_E2M3,
  F6_E3M2,
  F4,
  C64,
};

std::string_view dtype_name(DType t);  ///< the header's spelling: "BF16", "F8_E4M3", ...
std::size_t dtype_bits(DType t);       ///< bits per element: 16 for BF16; 4 for F4, 6 for F6_*
bool is_readable(DType t);             ///< F32, F16, BF16, F64

/// One tensor's header entry.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::size_t> shape;  ///< empty for a scalar (one element); a zero extent means no elements
  std::uint64_t begin = 0;         ///< byte range [begin, end) in the data buffer (after the header)
  std::uint64_t end = 0;
  std::size_t size() const;  ///< element count: the product of shape (1 for a scalar)
};

/// A tensor read as float32, values in C (row-major) order.
struct Array {
  std::vector<std::size_t> shape;
  DType dtype = DType::F32;  ///< as stored in the file
  std::vector<float> values;
  std::size_t size() const;  ///< number of elements: the product of shape (1 for a scalar)
};

/// One safetensors file, memory-mapped read-only. Opening validates the whole header (not the data: any bit
/// pattern is a value); reading a tensor touches only its own byte range. Copies share the mapping, which
/// lives until the last copy is gone. Const member functions may be called from several threads at once.
///
/// A file that another process truncates while it is mapped would raise SIGBUS on a later read of the lost
/// pages: raw() and read() check the file's current size first and throw Error naming the file and tensor
/// instead (a truncation racing with the copy itself remains possible; checkpoints are not written in place).
class File {
 public:
  /// Opens, maps and validates `path` (Error "<path>: <reason>"; see the file comment). `path` must be a
  /// regular file (or a link to one).
  explicit File(const std::filesystem::path& path);

  /// The same for a file's bytes already in memory (the fuzz entry point). The File refers to `bytes`
  /// without copying them: they must outlive it and every copy of it. `name` prefixes messages.
  static File parse(std::span<const unsigned char> bytes, std::string_view name);

  const std::string& name() const;  ///< the path as given, or parse()'s name
  /// Every tensor, sorted by name (bytewise).
  const std::vector<TensorInfo>& tensors() const;
  const std::vector<std::string>& names() const;  ///< the tensors' names, sorted
  /// The `__metadata__` object (empty when absent).
  const std::map<std::string, std::string>& metadata() const;
  /// Byte offset of the data buffer in the file (8 + the header length).
  std::uint64_t data_offset() const;

  /// The tensor's entry, or nullptr.
  const TensorInfo* find(std::string_view tensor) const;
  /// The tensor's entry; Error "<file>: no tensor "<tensor>"" listing a few names near it when absent.
  const TensorInfo& info(std::string_view tensor) const;
  /// The tensor's raw bytes (little-endian, C order), a view into the mapping.
  std::span<const unsigned char> raw(std::string_view tensor) const;

  /// Reads one tensor as float32 in C order. F32 is copied, F16 and BF16 convert exactly (subnormals, +-Inf
  /// and NaN with its sign and payload included), F64 rounds to nearest (values below float32's smallest
  /// subnormal become +-0). Non-finite values are returned as they are: what to do with them is the
  /// caller's decision. Errors name the file and tensor: an absent tensor, a dtype that is not readable
  /// (naming it and the readable ones), a tensor with no elements, an F64 value beyond float32's range
  /// (naming its index, e.g. "(1, 0) (flat 2)").
  Array read(std::string_view tensor) const;
  /// read()'s values (and errors) into `out`, which holds exactly the tensor's element count (else
  /// std::logic_error), converted on `threads` threads (0: every core) over pieces of a fixed size: the
  /// same values bit for bit for any thread count, with no allocation.
  void read_into(std::string_view tensor, std::span<float> out, int threads) const;

 private:
  void check_readable(const TensorInfo& t) const;
  void convert_range(const TensorInfo& t, float* out, std::size_t begin, std::size_t end) const;
  struct State;
  File() = default;
  std::shared_ptr<const State> s_;
};

/// The `weight_map` of a sharded checkpoint's index file, `{"metadata": {...}, "weight_map": {tensor name:
/// shard file name}}` (other top-level keys are ignored), sorted by tensor name. A shard is named relative to
/// the index's folder: a relative path without "." or ".." components. Errors (prefixed by `name`): not
/// strict JSON (with the byte offset), no weight_map object, an empty weight_map, a tensor named twice, a
/// shard that is not a string or not such a path, `metadata` present but not an object.
std::vector<std::pair<std::string, std::string>> parse_index(std::string_view json, std::string_view name);

/// A checkpoint: one safetensors file, or a sharded one given by its index file (a path ending in ".json",
/// e.g. `model.safetensors.index.json`). Shards are opened when a tensor in them is first needed (listing
/// names reads only the index), so a checkpoint with a shard missing still serves the tensors of the others.
/// Thread-safe like File; copies share the opened shards.
class Checkpoint {
 public:
  /// Opens the file or reads the index (Error "<path>: <reason>"; a folder is an Error naming what to give).
  explicit Checkpoint(const std::filesystem::path& path);

  const std::string& name() const;  ///< the path as given
  bool sharded() const;
  /// Every tensor in the checkpoint, sorted by name.
  const std::vector<std::string>& names() const;
  /// The file holding `tensor` (the shard, or the file itself). Error when the checkpoint has no such tensor.
  std::filesystem::path file_of(std::string_view tensor) const;
  /// The tensor's header entry (opens its shard). Error when absent from the checkpoint, when its shard
  /// cannot be opened, or when the shard does not hold it (naming index, shard and tensor).
  TensorInfo info(std::string_view tensor) const;
  /// File::read on the tensor's shard.
  Array read(std::string_view tensor) const;
  /// The `__metadata__` of the file holding the tensor (opens its shard): e.g. {"format": "pt"}.
  std::map<std::string, std::string> metadata_of(std::string_view tensor) const;
  /// The names matching a shell-style glob (see glob_match), sorted. Error when none match.
  std::vector<std::string> match(std::string_view pattern) const;

 private:
  struct State;
  std::shared_ptr<State> s_;
};

/// Whether `name` as a whole matches the shell-style `pattern`: `*` any run of characters (dots included:
/// `*.mlp.*.weight` matches `model.layers.0.mlp.down_proj.weight`), `?` one character, `[abc]` `[a-z]` one
/// of a set, `[!abc]` or `[^abc]` one not in it (a `]` right after `[`, `[!` or `[^` is a member), `\c` the
/// character c itself. Characters are Unicode code points (names and pattern are UTF-8). Throws Error
/// naming the pattern when it is not valid UTF-8, has an unterminated `[`, a range whose ends are reversed,
/// a POSIX class such as `[[:alpha:]]` (not supported), or ends in a lone `\`.
bool glob_match(std::string_view pattern, std::string_view name);

/// The names that match `pattern`, sorted bytewise, without duplicates. When none match: Error
/// "<where>: tensor pattern '<pattern>' matches none of the <N> tensors (e.g. ...)" showing a few names,
/// those sharing the longest prefix with the pattern's literal start first.
std::vector<std::string> glob_names(std::span<const std::string> names, std::string_view pattern,
                                    std::string_view where);

// -----------------------------------------------------------------------------------------------------------
// Writing

/// float32 -> bfloat16 bits, rounded to nearest, ties to even (the top 16 bits of the float32 after adding
/// 0x7FFF plus the lowest kept bit); overflow past bfloat16's largest finite value becomes +-Inf. Equal to
/// torch's `.to(torch.bfloat16)` bit for bit for every non-NaN value; every NaN becomes 0x7FC0 (torch's
/// scalar conversion; its vectorised kernels give 0xFFFF).
std::uint16_t float_to_bf16(float f);
/// bfloat16 bits -> float32, exact (the bits are the top half of a float32).
float bf16_to_float(std::uint16_t h);
/// float32 -> IEEE binary16 bits, rounded to nearest, ties to even, overflow to +-Inf (from 65520 on);
/// NaN becomes sign | 0x7E00 as in PyTorch's `.half()`.
std::uint16_t float_to_f16(float f);

/// Bytes a tensor of `dtype` and `shape` occupies (a sub-byte dtype's bits must fill whole bytes). Error
/// naming `tensor` when the count or the size overflows uint64 or the bits do not fill whole bytes.
std::uint64_t byte_size(DType dtype, std::span<const std::size_t> shape, std::string_view tensor);

/// One tensor to write: its name, dtype and shape (the data comes later, through Writer::write).
struct Entry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::size_t> shape;
};

/// Writes one safetensors file in place, tensor by tensor, never holding more than the caller passes in.
///
/// The constructor lays the whole file out from the entries and writes the header up front: the tensors are
/// placed by decreasing element size (F64/I64 first, then 4-, 2- and 1-byte dtypes, sub-byte ones last) and
/// by name within a size, back to back from the data buffer's start, and the header is padded with blanks so
/// that the buffer starts at a multiple of 8 bytes; every tensor is then aligned to its own element size, so
/// a reader may map it as an array of its dtype. `__metadata__` comes first in the header.
///
/// Everything goes to a temporary file beside `path` (`<path>.tmp-<pid>-<n>`) that commit() renames to
/// `path` once every byte of every tensor has been written; a Writer destroyed before commit() (an error, a
/// crash of the caller's loop) removes the temporary, and a killed process leaves only the temporary name,
/// so no file under the final name is ever half-written. write() may be called from several threads at
/// once, for different byte ranges; commit() from one.
///
/// Errors (sqb::Error naming the file and tensor): a name that is not valid UTF-8, empty, "__metadata__" or
/// given twice, metadata keys or values that are not valid UTF-8, a header over 100 MB, a write beyond a
/// tensor's bytes, commit() with bytes of a tensor never written (naming it), I/O failures (with strerror).
/// A Writer that outlives its process: it writes to the fixed name `partial` (instead of a per-process
/// temporary), leaves it in place when destroyed uncommitted, and with `reopen` continues a partial file an
/// earlier Writer of the same entries and metadata left behind (Error when its size or header differ).
/// What the earlier run finished is the caller's record: mark_written() declares those tensors present.
struct Partial {
  std::filesystem::path path;
  bool reopen = false;
};

class Writer {
 public:
  Writer(const std::filesystem::path& path, std::vector<Entry> tensors,
         std::map<std::string, std::string> metadata = {}, std::optional<Partial> partial = std::nullopt);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  const std::filesystem::path& path() const;       ///< the final name
  const std::filesystem::path& temp_path() const;  ///< the name written until commit()
  /// Every tensor's entry with its byte range in the data buffer, sorted by name.
  const std::vector<TensorInfo>& tensors() const;
  const TensorInfo& info(std::string_view tensor) const;  ///< Error when the writer has no such tensor
  std::uint64_t data_offset() const;                      ///< 8 + the padded header length
  std::uint64_t file_size() const;

  /// Raw little-endian bytes of the tensor, placed `offset` bytes into its data.
  void write(std::string_view tensor, std::span<const unsigned char> bytes, std::uint64_t offset = 0);
  /// float32 values converted to the tensor's dtype (F32 as is, F64 exactly, F16 and BF16 rounded to
  /// nearest even as above), the first one being element `first` of the tensor (C order). Error for another
  /// dtype.
  void write_values(std::string_view tensor, std::span<const float> values, std::size_t first = 0);
  /// Declares the tensor's bytes written by an earlier run into the reopened partial file.
  void mark_written(std::string_view tensor);
  /// Flushes the bytes written so far to disk (fdatasync): what a journal of finished tensors records must
  /// survive a crash.
  void sync();
  /// Checks that every tensor's bytes were all written, flushes the file to disk and renames it to path().
  void commit();
  bool committed() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

/// A whole file at once: the entries with their raw little-endian bytes (each of byte_size()), written
/// through a Writer and committed.
struct Blob {
  Entry entry;
  std::span<const unsigned char> bytes;
};
void write_file(const std::filesystem::path& path, std::span<const Blob> tensors,
                const std::map<std::string, std::string>& metadata = {});

}  // namespace sqb::safetensors
