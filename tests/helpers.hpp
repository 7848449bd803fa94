#pragma once
// Small shared helpers for the tests.

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "sqb/distribution.hpp"
#include "sqb/metrics.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"
#include "sqb/tensor.hpp"

namespace sqbtest {

/// n draws of a registered distribution (e.g. "gaussian"), seeded.
inline std::vector<float> draw(const std::string& spec, std::size_t n, std::uint64_t seed) {
  return sqb::make_distribution(spec)->draw(n, seed).values;
}

inline sqb::Tensor tensor(std::size_t rows, std::size_t cols, std::uint64_t seed = 1) {
  return sqb::Tensor(rows, cols, draw("gaussian", rows * cols, seed));
}

/// Everything one quantization of a tensor produces, through the same library calls as a sweep cell.
struct QuantizedRun {
  std::unique_ptr<sqb::Quantizer> q;
  sqb::TensorDesign design;
  sqb::Codes codes;
  std::vector<float> recon;
  sqb::Metrics metrics;
  std::map<std::string, double> extra;  ///< the strategy's extra_metrics by name
};

inline QuantizedRun quantize(const std::string& spec, std::size_t k, const sqb::Tensor& t,
                             const std::string& granularity = "tensor", std::uint64_t seed = 0) {
  QuantizedRun r;
  r.q = sqb::make_quantizer(spec, {k, seed});
  r.design = sqb::design_tensor(*r.q, t, sqb::Granularity::parse(granularity), seed);
  r.codes = sqb::Codes(t.size(), r.q->code_count());
  sqb::encode_tensor(*r.q, t, r.design, r.codes);
  r.recon.assign(t.size(), 0.0f);
  sqb::decode_tensor(r.design, r.codes, r.recon);
  r.metrics = sqb::compute_metrics(t.values, r.recon, r.codes, r.design.blocks.size(),
                                   r.design.side_floats_per_block);
  const auto names = r.q->extra_metric_names();
  const auto values = r.q->extra_metrics(t, r.design, r.codes);
  if (names.size() != values.size())
    throw std::logic_error(spec + ": extra metric names and values differ in count");
  for (std::size_t i = 0; i < names.size(); ++i)
    r.extra[names[i]] = values[i];
  return r;
}

}  // namespace sqbtest
