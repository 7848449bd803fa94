#pragma once
// The strategies' factories and parameter declarations, for the registry table (registry.cpp) and nothing
// else. Each strategy lives in its own file; only registry.cpp gives them names.

#include <memory>
#include <span>

#include "sqb/quantizer.hpp"
#include "sqb/spec.hpp"

namespace sqb::quantizers {

std::span<const ParamSpec> cosine_params();
std::unique_ptr<Quantizer> make_cosine(const Params& p, const BuildContext& ctx);

std::span<const ParamSpec> kmeans_params();
std::unique_ptr<Quantizer> make_kmeans(const Params& p, const BuildContext& ctx);

std::span<const ParamSpec> lloyd_max_params();
std::unique_ptr<Quantizer> make_lloyd_max(const Params& p, const BuildContext& ctx);

std::span<const ParamSpec> uniform_params();
std::unique_ptr<Quantizer> make_uniform(const Params& p, const BuildContext& ctx);

}  // namespace sqb::quantizers
