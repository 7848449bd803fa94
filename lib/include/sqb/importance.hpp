#pragma once
/// \file importance.hpp
/// Activation importance: per weight, one non-negative value per input channel (the mean of x^2 over
/// calibration tokens or pixels), the statistic llama.cpp's importance matrix, SqueezeLLM and any4 weight
/// their k-means by. A vector v weights element (r, c) of the laid-out weight (rows x cols) by v[c].
///
/// The safetensors importance format: one 1-D float tensor per weight, named exactly like the weight, of
/// length = the laid-out weight's column count (`in_features` for a Linear [out, in] weight). F32 is what
/// sqbench and `sqbench.torch` write; F16, BF16 and F64 are read too.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sqb {

/// Importance vectors by weight name, and where they came from.
struct Importance {
  std::string source;  ///< the file, for messages
  std::string format;  ///< "safetensors", "gguf" or "dat"
  std::map<std::string, std::vector<float>, std::less<>> vectors;

  /// The vector for `tensor`, or nullptr.
  const std::vector<float>* find(std::string_view tensor) const;
};

/// llama.cpp's importance matrices, read from their bytes (`name` prefixes messages):
///  - GGUF imatrix (a GGUF file, version 2 or 3, whose tensors are `<weight>.in_sum2`, F32 [n] or [n, 1], the
///    sum of x^2 per input channel, and `<weight>.counts`, F32 [1] or [1, 1], the number of tokens summed):
///    importance = in_sum2 / counts. Expert (3-D, n_mat > 1) entries are refused, naming the tensor.
///  - the legacy binary `.dat`: int32 entry count; per entry int32 name length, the name, int32 ncall, int32
///    nval, nval float32 values (sums over ncall chunks); optionally int32 last chunk and a dataset name. The
///    importance is values / ncall.
/// Both validate every length against the bytes left (no allocation beyond the input's size), the GGUF
/// header's counts, key/value types, dimensions, ggml types and data ranges; names are kept as in the file
/// (llama.cpp names: see llama_to_hf).
Importance parse_gguf_imatrix(std::span<const unsigned char> bytes, const std::string& name);
Importance parse_legacy_imatrix(std::span<const unsigned char> bytes, const std::string& name);

/// The Hugging Face name of a llama.cpp tensor name of the Llama family (blk.N.ffn_down.weight ->
/// model.layers.N.mlp.down_proj.weight, blk.N.attn_q.weight -> model.layers.N.self_attn.q_proj.weight,
/// token_embd.weight -> model.embed_tokens.weight, output.weight -> lm_head.weight, ...); the name itself
/// when it is not one of them.
std::string llama_to_hf(const std::string& name);
/// The inverse map (Hugging Face -> llama.cpp).
std::string hf_to_llama(const std::string& name);

/// Renames the vectors: each rule FROM=TO (ECMAScript regex FROM over the whole name, TO its replacement with
/// $1...) is tried in order and the first that matches renames; then, for files in llama.cpp's formats
/// (gguf, dat), llama_to_hf. Two vectors renamed to one name, or a malformed rule, is an Error.
void rename_importance(Importance& imp, const std::vector<std::string>& rules);

/// Reads an importance file: GGUF imatrix (the file starts with "GGUF"), legacy .dat (the extension .dat),
/// else safetensors. Errors (sqb::Error naming the file and the tensor): the file's own
/// (see safetensors.hpp), a tensor that is not 1-D, has no elements or is not a float dtype, a negative or
/// non-finite entry (naming its index), a file with no tensors.
/// `rename`: rules as for rename_importance, applied after reading (the llama.cpp name map included).
Importance read_importance(const std::filesystem::path& path, const std::vector<std::string>& rename = {});

/// Checks one vector: non-empty, every entry finite and >= 0. Error "<where>: tensor "<name>": ..." naming
/// the first bad index.
void check_importance(std::string_view where, std::string_view tensor, std::span<const float> v);

}  // namespace sqb
