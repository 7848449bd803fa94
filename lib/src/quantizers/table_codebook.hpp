#pragma once
// The codebook shapes practitioners ship (NF4, FP4 E2M1, normal quantiles) and the empirical-quantile shape,
// for the shared scaled-table strategy (table_codebook.cpp) and its tests. Private to the library.

#include <cstddef>
#include <span>
#include <vector>

namespace sqb::quantizers {

/// torch.linspace(start, end, steps) for dtype float32, as ATen's CPU kernel computes it: the step
/// (end - start) / (steps - 1) in float32, the first steps/2 values start + step * i and the others
/// end - step * (steps - 1 - i), every operation rounded to float32 (no fused multiply-add). steps >= 2.
std::vector<float> linspace_f32(float start, float end, std::size_t steps);

/// bitsandbytes' NormalFloat4 (Dettmers et al. 2023, QLoRA; bitsandbytes `create_normal_map(offset=0.9677083,
/// use_extra_value=True)`), built as bitsandbytes builds it: 8 positive values Phi^-1(p) for the first 8 of
/// linspace_f32(0.9677083, 0.5, 9), 7 negative values -Phi^-1(p) for the first 7 of linspace_f32(0.9677083,
/// 0.5, 8), and 0, each rounded to float32, sorted, then divided by the largest in float32. Phi^-1 is
/// Boost.Math's normal quantile in double. 16 values, ascending, from -1 to 1 (asymmetric: 7 negative, 8
/// positive).
std::vector<float> nf4_table();

/// The OCP Microscaling v1.0 FP4 (E2M1) element values, by code position in ascending order:
/// -6, -4, -3, -2, -1.5, -1, -0.5, -0, +0, 0.5, 1, 1.5, 2, 3, 4, 6 (16 codes, 15 distinct values).
std::vector<float> e2m1_values();

/// The fp4 codebook shape: e2m1_values() / 6 in float32, so the largest magnitude is exactly 1 (1/12, 1/6,
/// 1/3 and 2/3 are rounded to float32; a scale of exactly 6 gives back the E2M1 values exactly).
std::vector<float> fp4_table();

/// Normal-quantile shape for K >= 2 codes: Phi^-1((i + 1/2) / K), i = 0..K-1 (the quantile at the middle of
/// each of K equal-probability bins of N(0, 1)), divided by the largest, Phi^-1((K - 1/2) / K), rounded to
/// float32. The upper half is computed and mirrored, so the table is exactly antisymmetric (0 in the middle
/// when K is odd). Throws std::invalid_argument for K < 2.
std::vector<float> normal_quantile_table(std::size_t k);

/// Empirical quantiles of a block at p_i = (i + 1/2) / K, i = 0..K-1, by numpy's default definition
/// (`numpy.quantile(x, p, method='linear')`, Hyndman-Fan type 7): with h = (N - 1) p, the value
/// x_(floor h) + (h - floor h) (x_(floor h + 1) - x_(floor h)) between order statistics. The position is
/// computed in integers and the two weights as exact ratios, so a mirror-symmetric sample gives an exactly
/// antisymmetric result. `sorted` ascending, N >= 1; K >= 1.
std::vector<double> empirical_quantiles(std::span<const float> sorted, std::size_t k);

}  // namespace sqb::quantizers
