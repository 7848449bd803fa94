#pragma once
// The `npy` distribution (a tensor read from a .npy file), for the table in distribution.cpp.

#include <memory>
#include <span>

#include "sqb/distribution.hpp"
#include "sqb/spec.hpp"

namespace sqb {

std::span<const ParamSpec> npy_params();
std::unique_ptr<Distribution> make_npy(const Params& params, const DistributionContext& ctx);

}  // namespace sqb
