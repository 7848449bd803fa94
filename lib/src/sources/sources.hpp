#pragma once
// The data sources' factories and parameter declarations, for the registry table (sources.cpp) and nothing
// else. Each source lives in its own file; only sources.cpp gives them names.

#include <memory>
#include <span>

#include "sqb/source.hpp"
#include "sqb/spec.hpp"

namespace sqb::sources {

std::span<const ParamSpec> npy_params();
std::unique_ptr<Source> make_npy(const Params& params, const SourceContext& ctx);

std::span<const ParamSpec> rotated_params();
std::unique_ptr<Source> make_rotated(const Params& params, const SourceContext& ctx);

}  // namespace sqb::sources
