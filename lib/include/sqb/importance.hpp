#pragma once
/// \file importance.hpp
/// Activation importance: per weight, one non-negative value per input channel (the mean of x^2 over
/// calibration tokens or pixels), the statistic llama.cpp's importance matrix, SqueezeLLM and any4 weight their
/// k-means by. A vector v weights element (r, c) of the laid-out weight (rows x cols) by v[c].
///
/// The safetensors importance format: one 1-D float tensor per weight, named exactly like the weight, of
/// length = the laid-out weight's column count (`in_features` for a Linear [out, in] weight). F32 is what
/// sqbench and `sqbench.torch` write; F16, BF16 and F64 are read too.

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
  std::string format;  ///< "safetensors"
  std::map<std::string, std::vector<float>, std::less<>> vectors;

  /// The vector for `tensor`, or nullptr.
  const std::vector<float>* find(std::string_view tensor) const;
};

/// Reads a safetensors importance file. Errors (sqb::Error naming the file and the tensor): the file's own
/// (see safetensors.hpp), a tensor that is not 1-D, has no elements or is not a float dtype, a negative or
/// non-finite entry (naming its index), a file with no tensors.
Importance read_importance(const std::filesystem::path& path);

/// Checks one vector: non-empty, every entry finite and >= 0. Error "<where>: tensor "<name>": ..." naming
/// the first bad index.
void check_importance(std::string_view where, std::string_view tensor, std::span<const float> v);

}  // namespace sqb
