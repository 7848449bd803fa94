#pragma once
/// \file registry.hpp
/// The quantizer registry: one table of name -> factory, description and parameters. It is the only place a
/// quantizer's name is spelled; the CLI's `list`, config validation, the contract tests and the
/// micro-benchmarks all read it.

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "sqb/error.hpp"
#include "sqb/quantizer.hpp"
#include "sqb/spec.hpp"

namespace sqb {

struct QuantizerEntry {
  std::string_view name;
  std::string_view description;  ///< one line
  std::span<const ParamSpec> params;
  std::string_view levels;  ///< how many distinct levels a setting gives, for `sqbench list`
  bool randomized;          ///< its default design draws random numbers (from the cell's seed)
  std::unique_ptr<Quantizer> (*make)(const Params& params, const BuildContext& ctx);
  /// A mirror-symmetric sample gets a mirror-symmetric codebook. False for fixed asymmetric tables (NF4 has 7
  /// negative and 8 positive levels); the contract test skips those.
  bool mirror_symmetric = true;
};

/// Every registered quantizer, in display order.
std::span<const QuantizerEntry> quantizer_registry();

/// The entry called `name`; throws Error listing the valid names.
const QuantizerEntry& find_quantizer(std::string_view name);

/// Parses and validates a spec string (throws Error naming the bad name/parameter and the valid ones) and
/// builds the quantizer for ctx.k codes. A strategy that cannot produce ctx.k codes throws NotApplicable.
std::unique_ptr<Quantizer> make_quantizer(std::string_view spec, const BuildContext& ctx);

}  // namespace sqb
