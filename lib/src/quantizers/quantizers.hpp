#pragma once
// The strategies' factories and parameter declarations, for the registry table (registry.cpp) and nothing
// else. Each strategy lives in its own file; only registry.cpp gives them names.

#include <memory>
#include <span>

#include "sqb/error.hpp"  // NotApplicable, thrown by the factories
#include "sqb/quantizer.hpp"
#include "sqb/spec.hpp"

namespace sqb::quantizers {

/// The `weighted` parameter of the strategies that honour importance weights (kmeans, kmeans_optimal).
inline ParamSpec weighted_param() {
  return {"weighted",
          ParamSpec::Kind::integer,
          "1",
          0,
          1,
          false,
          {},
          "1: minimise the importance-weighted error when the data has weights; 0: ignore them (the plain "
          "objective, for a weighted-vs-unweighted comparison on the same data)"};
}

/// The block's weights, or none when the strategy was told to ignore them.
inline std::span<const float> used_weights(bool weighted, std::span<const float> w) {
  return weighted ? w : std::span<const float>();
}

/// What a learned codebook stores per block: its K levels.
inline SideValues learned_side(std::size_t k) {
  return {k, "the K levels (float32, ascending)"};
}

std::span<const ParamSpec> cosine_params();
std::unique_ptr<Quantizer> make_cosine(const Params& p, const BuildContext& ctx);

std::span<const ParamSpec> kmeans_params();
std::unique_ptr<Quantizer> make_kmeans(const Params& p, const BuildContext& ctx);

std::span<const ParamSpec> kmeans_optimal_params();
std::unique_ptr<Quantizer> make_kmeans_optimal(const Params& p, const BuildContext& ctx);
std::span<const ParamSpec> phi_log_params();
std::unique_ptr<Quantizer> make_phi_log(const Params& p, const BuildContext& ctx);
std::span<const ParamSpec> lloyd_max_params();
std::unique_ptr<Quantizer> make_lloyd_max(const Params& p, const BuildContext& ctx);

std::span<const ParamSpec> uniform_params();
std::unique_ptr<Quantizer> make_uniform(const Params& p, const BuildContext& ctx);

// table_codebook.cpp: fixed or empirical codebook shapes times a scale per block.
std::span<const ParamSpec> nf4_params();
std::unique_ptr<Quantizer> make_nf4(const Params& p, const BuildContext& ctx);
std::span<const ParamSpec> fp4_params();
std::unique_ptr<Quantizer> make_fp4(const Params& p, const BuildContext& ctx);
std::span<const ParamSpec> normal_quantile_params();
std::unique_ptr<Quantizer> make_normal_quantile(const Params& p, const BuildContext& ctx);
std::span<const ParamSpec> quantile_params();
std::unique_ptr<Quantizer> make_quantile(const Params& p, const BuildContext& ctx);

}  // namespace sqb::quantizers
