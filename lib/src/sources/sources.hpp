#pragma once
// The data sources' factories and parameter declarations, for the registry table (sources.cpp) and nothing
// else. Each source lives in its own file; only sources.cpp gives them names.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "sqb/source.hpp"
#include "sqb/spec.hpp"

namespace sqb::sources {

/// The `weights=` parameter every source declares: importance weights attached to the data it draws.
ParamSpec weights_param(bool files_allowed);

/// The `label=` parameter every source declares (see expand_source_spec).
ParamSpec label_param();

/// A rule for synthetic weights: `square` (w = x^2) or `lognormal` (w = exp(z), z ~ N(0, 1) drawn from the
/// seed: heavy-tailed importance unrelated to x). nullopt for any other text (a file, for file sources).
enum class WeightRule { square, lognormal };
std::optional<WeightRule> weight_rule(std::string_view text);

/// Fills t.weights by the rule (one weight per value, in t's order), drawing from `seed` when it is random.
void apply_weight_rule(Tensor& t, WeightRule rule, std::uint64_t seed);

std::span<const ParamSpec> npy_params();
std::unique_ptr<Source> make_npy(const Params& params, const SourceContext& ctx);
std::vector<SourceSpec> expand_npy(const SpecText& spec, const SourceContext& ctx);

std::span<const ParamSpec> safetensors_params();
std::unique_ptr<Source> make_safetensors(const Params& params, const SourceContext& ctx);
std::vector<SourceSpec> expand_safetensors(const SpecText& spec, const SourceContext& ctx);

std::span<const ParamSpec> rotated_params();
std::unique_ptr<Source> make_rotated(const Params& params, const SourceContext& ctx);

}  // namespace sqb::sources
