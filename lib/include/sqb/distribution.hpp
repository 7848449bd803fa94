#pragma once
/// \file distribution.hpp
/// Data sources for sweeps: seeded synthetic laws (Boost.Random, so the same seed gives the same numbers on
/// every run and platform) and, later, files. Chosen by spec strings like `gaussian mean=0 std=1`, from one
/// registry table.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sqb/granularity.hpp"
#include "sqb/quantizer.hpp"
#include "sqb/spec.hpp"
#include "sqb/tensor.hpp"

namespace sqb {

/// One finished sweep cell, as a distribution sees it when it adds figures of its own (the rotated-vector law
/// reports TurboQuant's per-vector distortions, say).
struct CellView {
  const Tensor& data;
  std::span<const float> recon;  ///< the decoded tensor
  std::size_t k = 0;
  Granularity granularity;
  std::uint64_t seed = 0;
  /// Builds the cell's quantizer spec for another K (e.g. b-1 bits), seeded like the cell.
  std::function<std::unique_ptr<Quantizer>(std::size_t k)> make_quantizer;
};

class Distribution {
 public:
  virtual ~Distribution() = default;
  /// The tensor for one cell: n elements drawn from `seed`. Synthetic laws honour the spec's rows= (n must be
  /// a multiple of it). Throws Error when n is not valid for this source.
  virtual Tensor draw(std::size_t n, std::uint64_t seed) const = 0;
  /// Throws Error if draw(n, ...) would (checked while planning a sweep, before any work).
  virtual void check_n(std::size_t n) const = 0;

  /// Figures this source adds to each result row (column names), and their values for a cell (NaN = empty).
  virtual std::vector<std::string> extra_metric_names() const { return {}; }
  virtual std::vector<double> extra_metrics(const CellView& /*cell*/) const { return {}; }
};

/// Where a distribution is built: the folder relative paths in its spec are resolved against.
struct DistributionContext {
  std::filesystem::path base_dir;
};

struct DistributionEntry {
  std::string_view name;
  std::string_view description;
  std::span<const ParamSpec> params;
  std::unique_ptr<Distribution> (*make)(const Params& params, const DistributionContext& ctx);
};

std::span<const DistributionEntry> distribution_registry();
const DistributionEntry& find_distribution(std::string_view name);  ///< throws Error listing the valid names
std::unique_ptr<Distribution> make_distribution(std::string_view spec, const DistributionContext& ctx = {});

}  // namespace sqb
