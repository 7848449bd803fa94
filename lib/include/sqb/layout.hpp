#pragma once
/// \file layout.hpp
/// How a file's N-D tensor becomes sqbench's rows x cols (rows = output channels): the `layout=` words of the
/// file sources and `sqbench export --layout`, the automatic choice `layout=auto`, and per-tensor rules for a
/// folder or checkpoint that mixes layouts.
///
/// Words: `rows` (first axis x the rest), `oihw` (PyTorch [out, in, ...]: the same, rank >= 2), `hwio`
/// (TensorFlow [..., in, out]: last axis, each row in PyTorch's order), see to_tensor; and `auto`.
///
/// `layout=auto` decides from three clues, and only when the clues present agree:
///  - the file's framework (a safetensors header's `__metadata__` "format"): `pt` or `mlx` say first axis
///    (PyTorch [out, in, ...]); `tf`, `flax` or `jax` say last axis (TensorFlow/Flax [..., in, out]);
///  - the tensor's name, its last component after '.' or '/': `weight` says first axis (a PyTorch module
///    parameter), `kernel` or `kernel:0` says last axis (Keras, Flax);
///  - a 4-D shape with exactly one pair of small axes (<= 11, a convolution's kernel): (2, 3) says first axis
///    ([out, in, kh, kw]), (0, 1) says last axis ([kh, kw, in, out]); so a (1, 1, 1024, 1024) tensor is HWIO.
/// A tensor of rank 0 or 1 is one row whatever the clues. First axis gives `oihw`, last axis `hwio`. No clue,
/// or clues that disagree, is an Error asking for a layout. Known limit: GPT-2-style `Conv1D` modules store
/// their `.weight` as [in, out] in PyTorch checkpoints; auto reads them as [out, in] (give hwio for them).

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sqb/tensor.hpp"

namespace sqb {

/// How an N-D weight tensor maps to sqbench's rows x cols (rows = output channels, so granularity=channel is
/// per output channel):
///  - rows: the first axis is the rows and the other axes are flattened in C order; a 0-D or 1-D array is one
///    row.
///  - oihw: PyTorch's [out, in, kh, kw] (any rank >= 2: Linear [out, in], Conv1d [out, in, k], Conv3d ...):
///    the same as rows, but the rank must be >= 2.
///  - hwio: TensorFlow's [kh, kw, in, out] (any rank >= 2: Dense [in, out], Conv1D [k, in, out], ...): the
///    last axis is the rows; each row is laid out in PyTorch's order [in, kh, kw], so a tensor and its
///    TensorFlow transpose give the same rows x cols tensor.
enum class Layout { rows, oihw, hwio };

/// Arranges `values` (C order, of `shape`) as rows x cols for `layout`. Throws Error (prefixed by `what`)
/// when the rank does not suit the layout.
Tensor to_tensor(std::span<const std::size_t> shape, std::span<const float> values, Layout layout,
                 std::string_view what);

/// The inverse of to_tensor: rows x cols values laid out by `layout` from a tensor of `shape`, back in that
/// tensor's own C order (what `sqbench export` writes as decoded.npy). Throws Error when the sizes differ or
/// the rank does not suit the layout.
std::vector<float> from_tensor(std::span<const std::size_t> shape, std::span<const float> laid_out,
                               Layout layout);

/// "rows", "oihw", "hwio" -> the layout; anything else (including "auto") -> nullopt.
std::optional<Layout> layout_named(std::string_view word);
std::string_view layout_word(Layout layout);  ///< the inverse

/// The layout `layout=auto` gives a tensor called `name` (a tensor name or a file stem) of `shape`, read from
/// a file whose framework is `framework` ("" when unknown). Throws Error, prefixed by `what`, saying which
/// clues were found (none, or disagreeing) and which layouts to give instead.
Layout auto_layout(std::string_view name, std::span<const std::size_t> shape, std::string_view framework,
                   std::string_view what);

/// A `layout=` value: one word (rows|oihw|hwio|auto), or rules `PATTERN:WORD,PATTERN:WORD,...,WORD` tried in
/// order against a tensor's name (safetensors) or file name (npy): the first rule whose shell-style pattern
/// (safetensors::glob_match: `*`, `?`, `[...]`) matches the whole name gives the word; a bare WORD matches
/// every name (put it last, as the default). A pattern holding ':' is split at the last ':'. Returns the
/// word. Throws Error, prefixed by `what`, for an empty rule, an unknown word (listing the valid ones), a
/// malformed pattern, or no rule matching `name` (naming it and the rules).
std::string pick_layout(std::string_view rules, std::string_view name, std::string_view what);

/// Whether `text` is a list of rules rather than a single word (it holds ',' or ':').
bool is_layout_rules(std::string_view text);

/// Checks a `layout=` value (a word, or rules as for pick_layout) without a name to match: throws Error
/// saying what is wrong (the message has no prefix).
void check_layout(std::string_view text);

}  // namespace sqb
