// The result-column schema: the only place a column's name is spelled.

#include "sqb/columns.hpp"

#include "sqb/error.hpp"

namespace sqb {

namespace {

using K = ColumnKind;
using B = Better;

// clang-format off
constexpr ColumnInfo kColumns[] = {
    {Col::quantizer, "quantizer", K::key, B::none, "", "", "",
     "the quantizer spec (canonical: the registry name, then its parameters as written)", false},
    {Col::distribution, "distribution", K::key, B::none, "", "", "",
     "the data source's label (what tables and plots show): label= if given, else the file's stem (npy), the "
     "tensor's name (safetensors) or the spec itself (canonical, like quantizer); the full spec is `source`",
     false},
    {Col::task, "task", K::key, B::none, "", "", "",
     "a task sweep's task spec (canonical, like quantizer): the network, its float training and the cells' "
     "recipe; the column is present only in results of a config with a task sweep (so are mode and the "
     "task figures)", false},
    {Col::mode, "mode", K::key, B::none, "", "", "",
     "a task cell's mode: fp32 (the float model, quantizer none, bits 32), fp32_ft (it fine-tuned as long as "
     "QAT), ptq or qat", false},
    {Col::n, "n", K::key, B::none, "elements", "N (elements)", "",
     "elements drawn from the source (`all` = every value of a file)"},
    {Col::k, "k", K::key, B::none, "levels", "K (levels)", "", "number of codes K per codebook"},
    {Col::bits, "bits", K::key, B::none, "bits", "bits per element (index width)", "",
     "ceil(log2 K), the fixed index width"},
    {Col::granularity, "granularity", K::key, B::none, "", "", "",
     "which elements share a codebook: tensor, channel (one per row) or group:G", false},
    {Col::seed, "seed", K::key, B::none, "", "", "", "the cell's seed (data and randomised designs)"},
    {Col::source, "source", K::key, B::none, "", "", "",
     "the data source's full spec (canonical, without label=; a glob expanded to this file or tensor, layout "
     "rules to the layout that applies)", false},

    {Col::rows, "rows", K::shape, B::none, "", "", "", "rows of the tensor as laid out"},
    {Col::cols, "cols", K::shape, B::none, "", "", "", "columns of the tensor as laid out"},
    {Col::blocks, "blocks", K::shape, B::none, "", "", "", "how many codebooks the tensor got"},

    {Col::mse, "mse", K::metric, B::lower, "", "MSE", "", "mean (x - x~)^2, accumulated in double"},
    {Col::nmse, "nmse", K::metric, B::lower, "", "NMSE (MSE / variance)", "",
     "mse / variance(x) (0 when lossless, inf if the data is constant and the error is not)"},
    {Col::sqnr_db, "sqnr_db", K::metric, B::higher, "dB", "SQNR (dB)", "SQNR",
     "10 log10(mean(x^2) / mse); inf when lossless"},
    {Col::max_abs_err, "max_abs_err", K::metric, B::lower, "", "max |error|", "", "max |x - x~|"},
    {Col::entropy_bits, "entropy_bits", K::metric, B::lower, "bits/element", "index entropy (bits/element)", "",
     "empirical entropy of the indices (what an ideal entropy coder would need)"},
    {Col::storage_bits, "storage_bits", K::metric, B::lower, "bits/element", "storage (bits/element)", "",
     "fixed-width index bits + every codebook's float32 side values, per element"},
    {Col::coded_bits, "coded_bits", K::metric, B::lower, "bits/element", "entropy-coded size (bits/element)", "",
     "measured: the codes as one rANS stream with a static frequency table for the tensor (header + table + "
     "payload; decoded and checked equal to the codes) + every codebook's float32 side values, per element"},
    {Col::wmse, "wmse", K::metric, B::lower, "", "weighted MSE", "",
     "sum_i w_i (x_i - x~_i)^2 / sum_i w_i with the cell's importance weights (empty without weights)"},
    {Col::iterations, "iterations", K::metric, B::none, "", "Lloyd iterations", "",
     "Lloyd iterations (max over blocks; for lloyd_max the Lloyd + Newton steps of its solved table)"},
    {Col::converged, "converged", K::metric, B::none, "", "", "",
     "fraction of blocks whose iterative design converged (1 for closed-form codebooks; lloyd_max: residual "
     "<= 1e-12)"},

    {Col::opt_ratio, "opt_ratio", K::figure, B::lower, "", "MSE / optimal MSE", "",
     "the cell's mse (its wmse when the source gives weights) / the exact least MSE of any K-level codebook "
     "per block on the same blocks (1 = optimal); asked for with opt_ratio = 1, empty above opt_ratio_max_n"},
    {Col::exp_entropy_bits, "exp_entropy_bits", K::figure, B::lower, "bits/element", "", "",
     "phi_log: empirical entropy of the exponent stream per element (after clipping and sharing; the zero "
     "level is one more symbol)"},
    {Col::exp_storage_bits, "exp_storage_bits", K::figure, B::lower, "bits/element", "", "",
     "phi_log: entropy-coded storage per element: a sign bit per non-zero, the exponent entropy (per group "
     "with cluster=C, plus zero flags), and the scales"},
    {Col::exp_coded_bits, "exp_coded_bits", K::figure, B::lower, "bits/element", "", "",
     "phi_log: measured size of the seed's {sign bit, exponent} coding (sqbench export --coded writes it): a "
     "raw sign bit per non-zero element, the exponents as one rANS stream (one per group with cluster=C, and "
     "the zero flags as a second stream when zero=1 and cluster=C), and the scales, per element"},
    {Col::dropped_nonfinite, "dropped_nonfinite", K::figure, B::none, "elements", "", "",
     "npy source with nonfinite=drop: how many NaN/Inf values were dropped"},

    {Col::dmse, "dmse", K::figure, B::lower, "", "", "",
     "rotated: measured D_mse = mean over vectors of ||x - x~||^2 (x~ = the cell's reconstruction); b = log2 k, "
     "and the reference columns are empty when k is not a power of two"},
    {Col::dmse_se, "dmse_se", K::figure, B::none, "", "", "", "rotated: standard error of dmse"},
    {Col::dmse_exact, "dmse_exact", K::figure, B::none, "", "", "",
     "rotated: d * C(f_d, b), the sphere law's Lloyd-Max distortion: E[dmse] exactly for `lloyd_max law=sphere "
     "d=data` (a lower limit for any other scalar codebook)"},
    {Col::dmse_limit, "dmse_limit", K::figure, B::none, "", "", "",
     "rotated: C(N(0,1), b), the d -> infinity limit"},
    {Col::dmse_paper, "dmse_paper", K::figure, B::none, "", "", "",
     "rotated: TurboQuant's quoted values 0.36, 0.117, 0.03, 0.009 (b = 1..4)"},
    {Col::dmse_upper, "dmse_upper", K::figure, B::none, "", "", "",
     "rotated: the paper's upper bound sqrt(3) pi/2 * 4^-b (Theorem 1)"},
    {Col::dmse_lower, "dmse_lower", K::figure, B::none, "", "", "",
     "rotated: the paper's lower bound 4^-b (Theorem 3)"},
    {Col::d_dprod, "d_dprod", K::figure, B::lower, "", "", "",
     "rotated: d * D_prod of TurboQuant_prod: the cell's quantizer at b-1 bits (nothing at b = 1) plus a 1-bit "
     "QJL sketch of the residual r, x~ = x~_mse + ||r|| sqrt(pi/2)/d S^T sign(S r), S a d x d N(0,1) matrix "
     "(fresh every d vectors); D_prod = E(<y, x~> - <y, x>)^2 over `queries` random unit queries y per vector"},
    {Col::d_dprod_se, "d_dprod_se", K::figure, B::none, "", "", "", "rotated: standard error of d_dprod"},
    {Col::d_dprod_exact, "d_dprod_exact", K::figure, B::none, "", "", "",
     "rotated: (pi/2 - 1/d) * d C(f_d, b-1) (= 1 at b - 1 = 0): exactly E[d_dprod] for unit queries and the "
     "sphere codebook, since Var(QJL) = ((pi/2)||r||^2 - <y, r>^2)/d and E<y, r>^2 = ||r||^2/d"},
    {Col::d_dprod_limit, "d_dprod_limit", K::figure, B::none, "", "", "",
     "rotated: (pi/2) C(N(0,1), b-1): 1.5708, 0.5708, 0.1845, 0.0543 for b = 1..4"},
    {Col::d_dprod_paper, "d_dprod_paper", K::figure, B::none, "", "", "",
     "rotated: the paper's 1.57, 0.56, 0.18, 0.047 (b = 1..4; 0.047 came from its rounded 0.03)"},
    {Col::prod_bias, "prod_bias", K::figure, B::none, "", "", "",
     "rotated: multiplicative bias of TurboQuant_prod: the least-squares slope of <y, x~> on <y, x>, minus 1 "
     "(0 = unbiased)"},
    {Col::prod_bias_se, "prod_bias_se", K::figure, B::none, "", "", "",
     "rotated: standard error of prod_bias (each vector's queries are one cluster)"},
    {Col::mse_bias, "mse_bias", K::figure, B::none, "", "", "",
     "rotated: the same bias for the cell's own b-bit reconstruction"},
    {Col::mse_bias_se, "mse_bias_se", K::figure, B::none, "", "", "", "rotated: standard error of mse_bias"},
    {Col::mse_bias_exact, "mse_bias_exact", K::figure, B::none, "", "", "",
     "rotated: -dmse_exact: E<y, x~> = (1 - D_mse) <y, x> for a Lloyd-Max codebook (centroid condition)"},

    {Col::accuracy, "accuracy", K::figure, B::higher, "%", "test accuracy (%)", "accuracy",
     "task: top-1 accuracy of the (quantized) network on the whole test set (10,000 images for "
     "Fashion-MNIST), in percent"},
    {Col::test_loss, "test_loss", K::figure, B::lower, "nats", "test loss (cross-entropy)", "",
     "task: mean cross-entropy on the test set (natural log)"},
    {Col::layer_mse, "layer_mse", K::figure, B::none, "", "", "",
     "task: each weight matrix's mse, input layer first, separated by spaces (mse, sqnr_db, storage_bits "
     "are over every weight of the network)", false},
    {Col::layer_sqnr_db, "layer_sqnr_db", K::figure, B::none, "dB", "", "",
     "task: each weight matrix's sqnr_db, input layer first, separated by spaces", false},

    {Col::fit_s, "fit_s", K::timing, B::lower, "s", "fit time (s, median)", "",
     "median seconds of the timed repeats to design every codebook of the tensor"},
    {Col::fit_s_min, "fit_s_min", K::timing, B::lower, "s", "", "", "fastest repeat of fit_s"},
    {Col::fit_s_mad, "fit_s_mad", K::timing, B::none, "s", "", "", "median absolute deviation of fit_s"},
    {Col::encode_s, "encode_s", K::timing, B::lower, "s", "encode time (s, median)", "",
     "median seconds to encode the tensor (shared encoder, plus a strategy's code refinement)"},
    {Col::encode_s_min, "encode_s_min", K::timing, B::lower, "s", "", "", "fastest repeat of encode_s"},
    {Col::encode_s_mad, "encode_s_mad", K::timing, B::none, "s", "", "", "median absolute deviation of encode_s"},
    {Col::decode_s, "decode_s", K::timing, B::lower, "s", "decode time (s, median)", "",
     "median seconds to decode the tensor"},
    {Col::decode_s_min, "decode_s_min", K::timing, B::lower, "s", "", "", "fastest repeat of decode_s"},
    {Col::decode_s_mad, "decode_s_mad", K::timing, B::none, "s", "", "", "median absolute deviation of decode_s"},
    {Col::quantize_s, "quantize_s", K::timing, B::lower, "s", "quantize time: fit + encode (s, median)", "",
     "median of fit + encode of the same repeat (TorchAO's from_float)"},
    {Col::quantize_s_min, "quantize_s_min", K::timing, B::lower, "s", "", "", "fastest repeat of quantize_s"},
    {Col::quantize_s_mad, "quantize_s_mad", K::timing, B::none, "s", "", "",
     "median absolute deviation of quantize_s"},

    {Col::threads, "threads", K::timing, B::none, "threads", "", "",
     "threads each timed repeat (and the cell's quality run) used: blocks designed and encoded in parallel "
     "(--threads; the results do not depend on it)"},
    {Col::train_s, "train_s", K::timing, B::lower, "s", "training time (s)", "",
     "task: seconds of training in the cell: fp32 the float model's (when it was trained), fp32_ft and qat "
     "the fine-tuning (QAT's transform calls included), ptq 0"},

    {Col::config_hash, "config_hash", K::provenance, B::none, "", "", "",
     "FNV-1a 64 of the config text (--resume and merge check it)", false},
};
// clang-format on

constexpr bool schema_in_order() {
  for (std::size_t i = 0; i < std::size(kColumns); ++i) {
    if (static_cast<std::size_t>(kColumns[i].id) != i) return false;
  }
  return std::size(kColumns) == kColumnCount;
}
static_assert(schema_in_order(), "kColumns must list every Col once, in enum order");

}  // namespace

std::string_view kind_name(ColumnKind k) {
  switch (k) {
    case K::key:
      return "key";
    case K::shape:
      return "shape";
    case K::metric:
      return "metric";
    case K::figure:
      return "figure";
    case K::timing:
      return "timing";
    case K::provenance:
      return "provenance";
  }
  return "?";
}

std::span<const ColumnInfo> column_schema() {
  return kColumns;
}

const ColumnInfo& column_info(Col c) {
  return kColumns[static_cast<std::size_t>(c)];
}

std::string_view column_name(Col c) {
  return column_info(c).name;
}

std::optional<Col> find_column(std::string_view name) {
  for (const ColumnInfo& c : kColumns) {
    if (c.name == name) return c.id;
  }
  return std::nullopt;
}

Col column_named(std::string_view name) {
  if (const auto c = find_column(name)) return *c;
  std::string all;
  for (const ColumnInfo& c : kColumns)
    all += (all.empty() ? "" : ", ") + std::string(c.name);
  throw Error("unknown result column '" + std::string(name) + "'; the columns are: " + all);
}

std::string column_table_markdown() {
  std::string out = "| column | kind | unit | better | meaning |\n|---|---|---|---|---|\n";
  for (const ColumnInfo& c : kColumns) {
    std::string meaning;
    for (const char ch : c.meaning) {
      if (ch == '|') meaning += '\\';  // a pipe would end the markdown cell
      meaning += ch;
    }
    const char* better = c.better == B::lower ? "lower" : c.better == B::higher ? "higher" : "";
    out += "| `" + std::string(c.name) + "` | " + std::string(kind_name(c.kind)) + " | " +
           std::string(c.unit) + " | " + better + " | " + meaning + " |\n";
  }
  return out;
}

}  // namespace sqb
