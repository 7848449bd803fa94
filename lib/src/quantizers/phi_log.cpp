// phi_log: the golden-ratio logarithmic quantizer of the "GR-PHI" proposal, for any base > 1.
//
// Contract (docs/codebooks.md, "phi_log", has the user-facing version):
//  - Levels: +-s * base^e for the integer exponents e_min..e_max (M = e_max - e_min + 1 of them), plus an
//  exact
//    0 with zero=1: L = 2M + zero levels, sorted ascending. Code layout: 0..M-1 negative (e = e_max - code),
//    then the zero level (code M) if any, then positive (e = e_min + code - M - zero). A cell with K > L
//    codes repeats the top level in codes L..K-1; those spare codes are never emitted (see refine).
//  - s per block: max |w| (scale=absmax, one float32 stored per block) or 1 (scale=none: the seed's raw
//    exponents, nothing stored).
//  - Assignment is the shared threshold encoder with this strategy's boundaries: round=log puts the
//    boundary between two same-sign levels at their geometric mean (= rounding log_base(|w|/s) to the nearest
//    integer, the seed's rule), round=nearest at their arithmetic mean. Between 0 and +-m (m = s*base^e_min)
//    the boundary is +-m/2 under both rules. A value exactly on a boundary goes to the level of SMALLER
//    magnitude on both sides of 0 (the encoder sends ties to the lower index, so the negative-side
//    boundaries are moved one double down). Without a zero level the boundary between -m and +m sits at 0
//    and 0 (and -0) go to +m: the seed's export writes sign bit 1 for w >= 0 and clips log(eps) to e_min.
//    No logarithm is ever evaluated on the data, so |w| = 0 cannot produce -inf or NaN.
//  - cluster=C: the seed's cluster_exponents, applied to the codes after assignment (refine_codes).

#include <algorithm>
#include <boost/math/constants/constants.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "detail/reduce.hpp"
#include "quantizers/quantizers.hpp"
#include "sqb/coding.hpp"
#include "sqb/error.hpp"
#include "sqb/metrics.hpp"
#include "sqb/quantize.hpp"

namespace sqb::quantizers {

namespace {

struct PhiLogSetup {
  double base = 0;
  bool absmax = true;
  bool zero = false;
  bool log_rule = true;
  std::size_t cluster = 0;
  std::int64_t e_min = 0, e_max = 0;
  std::size_t k = 0;
};

// A double as the shortest text that reads back as the same value.
std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  for (int digits = 1; digits <= 17; ++digits) {
    char shorter[32];
    std::snprintf(shorter, sizeof shorter, "%.*g", digits, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

// Rounds num / den to the nearest integer, ties to even (torch.round), exactly (den > 0).
std::int64_t round_half_even(std::int64_t num, std::int64_t den) {
  std::int64_t q = num / den, r = num % den;
  if (r < 0) {  // floor division
    q -= 1;
    r += den;
  }
  if (2 * r > den || (2 * r == den && (q % 2 != 0))) ++q;
  return q;
}

// Calls f(start, length, padding) for every cluster group of a block: groups of C consecutive elements that
// start at each row start and at the block's start (so they never cross a row, nor a block boundary at
// granularity group:G); the last group of a run may be shorter, with C - length seed-style padding zeros.
template <class F>
void for_each_cluster(const BlockPlace& place, std::size_t n, std::size_t c, F&& f) {
  const std::size_t cols = place.cols == 0 ? n : place.cols;
  std::size_t i = 0;
  while (i < n) {
    const std::size_t run = std::min(n - i, cols - (place.offset + i) % cols);
    for (std::size_t g = 0; g < run; g += c) {
      const std::size_t len = std::min(c, run - g);
      f(i + g, len, c - len);
    }
    i += run;
  }
}

class PhiLog final : public Quantizer,
                     public RefinesCodes,
                     public ReportsFigures,
                     public ExportsArrays,
                     public DesignsWithoutData {
 public:
  explicit PhiLog(const PhiLogSetup& s)
      : Quantizer(s.k, s.absmax ? SideValues{1, "s = max |w| of the block (levels +-s*base^e)"}
                                : SideValues{0, "nothing (scale=none: s = 1)"}),
        s_(s),
        m_(static_cast<std::size_t>(s.e_max - s.e_min + 1)),
        z_(s.zero ? 1 : 0),
        l_(2 * m_ + z_) {}

  BlockDesign design(std::span<const float> block, const BlockInfo&) const override {
    const double s = s_.absmax ? static_cast<double>(detail::abs_max(block)) : 1.0;
    auto [levels, bounds] = ladder(s);
    std::vector<float> side;
    if (s_.absmax) side.push_back(static_cast<float>(s));
    return {Codebook::with_boundaries(std::move(levels), bounds), 0, true, std::move(side)};
  }

  // The ladder for s = 1: the levels as they are with scale=none, the shape a block's max |w| multiplies with
  // scale=absmax.
  DataFreeCodebook data_free_codebook() const override {
    const auto [levels, bounds] = ladder(1.0);
    DataFreeCodebook c;
    c.levels.assign(levels.begin(), levels.end());
    c.boundaries = bounds;
    c.scaled = s_.absmax;
    c.applied_as = s_.absmax ? "times the block's max |w| (scale=absmax)" : "as they are (scale=none)";
    return c;
  }

  void refine_codes(std::span<const float>, const Codebook&, const BlockPlace& place,
                    CodeSpan codes) const override {
    std::visit([&](auto c) { refine(place, c); }, codes);
  }

  // The seed's export_packed: a sign bit (1 = non-negative, as `W >= 0`) and an int16 exponent per element,
  // here taken from the codes, so clipping and exponent sharing are in them. w~ = s * (sign ? 1 : -1) *
  // base^e; the zero level (zero=1) has no exponent and is written as INT16_MIN.
  std::vector<ExportArray> export_arrays(const Quantized& r) const override {
    const Codes& codes = r.codes;
    ExportArray signs{
        "signs", "uint8", {}, "1 where the level is non-negative (the seed's sign_bit), else 0"};
    ExportArray exps{"exponents",
                     "int16",
                     {},
                     "the level's exponent e (w~ = s * sign * base^e); -32768 marks the exact zero level"};
    signs.values.reserve(codes.size());
    exps.values.reserve(codes.size());
    codes.visit([&](auto c) {
      for (const auto code : c) {
        const std::size_t sym = symbol(code);
        const bool zero_level = s_.zero && sym == m_;
        signs.values.push_back(std::min<std::size_t>(code, l_ - 1) >= m_ ? 1 : 0);
        exps.values.push_back(zero_level
                                  ? std::numeric_limits<std::int16_t>::min()
                                  : static_cast<std::int32_t>(s_.e_min + static_cast<std::int64_t>(sym)));
      }
    });
    return {std::move(signs), std::move(exps)};
  }

  // The seed's {sign bit, exponent} coding as deployable streams; their sizes are exp_coded_bits.
  std::vector<ExportStream> export_streams(const Quantized& r) const override {
    const Coded c = code_streams(r);
    std::vector<ExportStream> out;
    out.push_back(
        {"signs.bits", c.signs,
         "one bit per non-zero element (every element without zero=1), in the laid-out row-major "
         "order: 1 = non-negative (the seed's sign_bit), 0 = negative; bit i is bit i % 8 of byte i / 8 "
         "(numpy.unpackbits(b, bitorder='little')), the pad bits zero"});
    out.push_back(
        {"exponents.rans", c.exponents.bytes,
         (s_.cluster > 1
              ? "rANS stream (sqbench's format, see the manifest's rans_format) of one exponent symbol j per "
                "group of C = " +
                    std::to_string(s_.cluster) +
                    " consecutive elements of a row within a block (groups start at each block's start and "
                    "each row's start; an all-zero group has none), in the laid-out row-major order: every "
                    "non-zero member of the group is s * sign * base^(e_min + j)"
              : "rANS stream (sqbench's format, see the manifest's rans_format) of one symbol j per element "
                "in the laid-out row-major order: the level is s * sign * base^(e_min + j)" +
                    std::string(s_.zero ? "; j = M is the exact zero level (no sign bit)" : "")) +
             "; s = the block's side value" + (s_.absmax ? "" : " (1 with scale=none)") +
             ", base = " + number_text(s_.base) + ", e_min = " + std::to_string(s_.e_min) +
             ", M = " + std::to_string(m_) + " exponents"});
    if (!c.zeros.bytes.empty()) {
      out.push_back(
          {"zeros.rans", c.zeros.bytes,
           "rANS stream of one flag per element in the laid-out row-major order: 1 = the exact zero "
           "level (it has no sign bit and takes no part in its group's exponent)"});
    }
    return out;
  }

  std::vector<Col> figure_columns() const override {
    return {Col::exp_entropy_bits, Col::exp_storage_bits, Col::exp_coded_bits};
  }

  // code_streams: the exponent (2 bytes) and sign symbols (1) before coding, grown by push_back, the decoded
  // copy each stream is checked against (2), the rANS stream (at most the index bits, 2 b / 8) and the
  // encoder's first reserve (1/2). Measured at K = 16 (n = 4e6): 6.0 bytes a value above the pipeline's.
  double figure_bytes_per_value() const override { return 6.5 + index_bits(code_count()) / 4.0; }

  std::vector<double> figures(const Quantized& d) const override {
    const Codes& codes = d.codes;
    const std::size_t n = codes.size();
    const std::size_t zero_symbol = m_;
    std::vector<std::size_t> elem_hist(m_ + 1, 0), group_hist(m_ + 1, 0);
    std::size_t nonzero = 0;
    codes.visit([&](auto c) {
      for (const auto code : c) {
        const std::size_t sym = symbol(code);
        ++elem_hist[sym];
        nonzero += sym != zero_symbol;
      }
      if (s_.cluster > 1) {
        // One exponent per group (after refine every non-zero member carries it); an all-zero group needs
        // none, its zero flags say so.
        for (const Block& b : d.blocks) {
          for_each_cluster({b.offset, d.cols}, b.length, s_.cluster,
                           [&](std::size_t start, std::size_t len, std::size_t) {
                             for (std::size_t j = 0; j < len; ++j) {
                               const std::size_t sym = symbol(c[b.offset + start + j]);
                               if (sym != zero_symbol) {
                                 ++group_hist[sym];
                                 break;
                               }
                             }
                           });
        }
      }
    });
    const double nd = static_cast<double>(n);
    const double h_elem = entropy_bits(elem_hist);
    double exponent_bits = h_elem;
    if (s_.cluster > 1) {
      std::size_t groups = 0;
      for (const std::size_t g : group_hist)
        groups += g;
      exponent_bits = entropy_bits(group_hist) * static_cast<double>(groups) / nd;
      if (s_.zero) {
        const std::size_t flags[] = {n - nonzero, nonzero};
        exponent_bits += entropy_bits(flags);
      }
    }
    const double scale_bits = 32.0 * static_cast<double>(d.blocks.size() * d.side.per_block) / nd;
    const Coded coded = code_streams(d);
    const double coded_bits = 8.0 * static_cast<double>(coded.signs.size()) +
                              static_cast<double>(coded.exponents.total_bits() + coded.zeros.total_bits());
    return {h_elem, static_cast<double>(nonzero) / nd + exponent_bits + scale_bits,
            coded_bits / nd + scale_bits};
  }

 private:
  struct Coded {
    std::vector<std::uint8_t> signs;  // packed, one bit per non-zero element
    RansEncoded exponents, zeros;     // zeros: only with cluster > 1 and zero=1
  };

  // The streams of the {sign bit, exponent} coding, each rANS stream decoded and compared before it is used.
  Coded code_streams(const Quantized& d) const {
    std::vector<std::uint8_t> signs, flags;
    std::vector<std::uint16_t> exps;
    const auto is_zero = [&](std::size_t sym) { return s_.zero && sym == m_; };
    d.codes.visit([&](auto c) {
      const auto sign = [&](std::size_t code) {
        return static_cast<std::uint8_t>(std::min<std::size_t>(code, l_ - 1) >= m_ ? 1 : 0);
      };
      if (s_.cluster <= 1) {
        for (const auto code : c) {
          const std::size_t sym = symbol(code);
          exps.push_back(static_cast<std::uint16_t>(sym));
          if (!is_zero(sym)) signs.push_back(sign(code));
        }
        return;
      }
      // Blocks in storage order and groups in order within each: together the row-major order.
      for (const Block& b : d.blocks) {
        for_each_cluster({b.offset, d.cols}, b.length, s_.cluster,
                         [&](std::size_t start, std::size_t len, std::size_t) {
                           bool any = false;
                           for (std::size_t j = 0; j < len; ++j) {
                             const std::size_t code = c[b.offset + start + j];
                             const std::size_t sym = symbol(code);
                             if (s_.zero) flags.push_back(is_zero(sym) ? 1 : 0);
                             if (is_zero(sym)) continue;
                             signs.push_back(sign(code));
                             if (!any) exps.push_back(static_cast<std::uint16_t>(sym));
                             any = true;
                           }
                         });
      }
    });
    const auto coded = [](const auto& symbols, std::size_t alphabet) {
      RansEncoded e = rans_encode(std::span(symbols), alphabet);
      const std::vector<std::uint16_t> back = rans_decode(e.bytes, symbols.size());
      if (!std::equal(back.begin(), back.end(), symbols.begin(), symbols.end()))
        throw std::logic_error("phi_log: a decoded rANS stream differs from its symbols (a coder bug)");
      return e;
    };
    Coded out;
    out.signs = pack_codes(signs, 1);
    out.exponents = coded(exps, m_ + z_);
    if (s_.cluster > 1 && s_.zero) out.zeros = coded(flags, 2);
    return out;
  }

  // K float32 levels (+-s*base^e, the zero level, spare copies of the top) and their K-1 exact boundaries.
  std::pair<std::vector<float>, std::vector<double>> ladder(double s) const {
    std::vector<double> mag(m_);  // float32 magnitudes s*base^e, e = e_min + j, held in double
    for (std::size_t j = 0; j < m_; ++j)
      mag[j] = magnitude(s, s_.e_min + static_cast<std::int64_t>(j));

    std::vector<float> levels(s_.k);
    for (std::size_t i = 0; i < m_; ++i)
      levels[i] = mag[m_ - 1 - i] == 0 ? 0.0f : static_cast<float>(-mag[m_ - 1 - i]);
    if (s_.zero) levels[m_] = 0.0f;
    for (std::size_t j = 0; j < m_; ++j)
      levels[m_ + z_ + j] = static_cast<float>(mag[j]);
    for (std::size_t i = l_; i < s_.k; ++i)
      levels[i] = levels[l_ - 1];

    // Boundary magnitudes: between ladder neighbours by the rounding rule; to the zero level at m/2.
    const auto between = [&](double p, double q) { return s_.log_rule ? std::sqrt(p * q) : 0.5 * (p + q); };
    // Ties go to the smaller magnitude: on the positive side that is the lower index already; on the
    // negative side the boundary moves one double down, so the float comparison x > threshold becomes
    // x >= -b (every float below -b is <= the next double below it).
    const auto negative = [](double b) {
      return std::nextafter(-b, -std::numeric_limits<double>::infinity());
    };
    std::vector<double> bounds(s_.k - 1);
    for (std::size_t i = 0; i + 1 < s_.k; ++i) {
      double b = 0;
      if (i + 1 < m_) {  // two negative levels: -mag[m-1-i] < -mag[m-2-i]
        b = negative(between(mag[m_ - 2 - i], mag[m_ - 1 - i]));
      } else if (i + 1 == m_) {  // last negative level to the zero level, or to +mag[0]
        b = negative(s_.zero ? 0.5 * mag[0] : 0.0);
      } else if (s_.zero && i == m_) {  // zero level to +mag[0]
        b = 0.5 * mag[0];
      } else if (i + 1 < l_) {
        const std::size_t j = i - m_ - z_;  // positive mag[j] to mag[j + 1]
        b = between(mag[j], mag[j + 1]);
      } else {
        b = levels[i];  // spare codes
      }
      // Degenerate ladders (underflow to 0, overflow clamped to FLT_MAX) have equal neighbours.
      bounds[i] = std::clamp(b, static_cast<double>(levels[i]), static_cast<double>(levels[i + 1]));
    }
    return {std::move(levels), std::move(bounds)};
  }

  float magnitude(double s, std::int64_t e) const {
    if (s == 0) return 0.0f;
    const double v = s * std::pow(s_.base, static_cast<double>(e));
    // Overflow is only possible with e > 0 (scale=none or e_max > 0); no data value exceeds FLT_MAX anyway.
    return v <= std::numeric_limits<float>::max() ? static_cast<float>(v) : std::numeric_limits<float>::max();
  }

  // Exponent-stream symbol of a code: e - e_min for a signed level, m_ for the zero level.
  std::size_t symbol(std::size_t code) const {
    code = std::min(code, l_ - 1);
    if (code < m_) return m_ - 1 - code;
    if (s_.zero && code == m_) return m_;
    return code - m_ - z_;
  }

  template <class Index>
  void refine(const BlockPlace& place, std::span<Index> codes) const {
    // Spare codes (K > L) hold copies of the top level; values above it land on the last copy. Map them to
    // the real top code so the code stream and its entropy do not depend on K.
    if (s_.k > l_) {
      for (Index& c : codes)
        c = static_cast<Index>(std::min<std::size_t>(c, l_ - 1));
    }
    if (s_.cluster <= 1) return;
    const std::size_t zero_code = s_.zero ? m_ : s_.k;  // never matches without a zero level
    for_each_cluster(
        place, codes.size(), s_.cluster, [&](std::size_t start, std::size_t len, std::size_t pad) {
          // The seed averages the exponents of the group padded with zeros (torch.cat of new_zeros), rounds
          // half to even, and drops the padding. Zero codes (zero=1) have no exponent: they stay 0 and are
          // left out.
          std::int64_t sum = 0, count = static_cast<std::int64_t>(pad);
          bool any = false;
          for (std::size_t j = start; j < start + len; ++j) {
            if (codes[j] == zero_code) continue;
            sum += s_.e_min + static_cast<std::int64_t>(symbol(codes[j]));
            ++count;
            any = true;
          }
          if (!any) return;
          // The mean of in-range exponents stays in range except when padding zeros pull it outside [e_min,
          // e_max] (0 not in the range): the seed would leave the ladder there; we clip.
          const std::int64_t e = std::clamp(round_half_even(sum, count), s_.e_min, s_.e_max);
          for (std::size_t j = start; j < start + len; ++j) {
            if (codes[j] == zero_code) continue;
            const bool neg = codes[j] < m_;
            codes[j] = static_cast<Index>(neg ? static_cast<std::size_t>(s_.e_max - e)
                                              : m_ + z_ + static_cast<std::size_t>(e - s_.e_min));
          }
        });
  }

  PhiLogSetup s_;
  std::size_t m_;  // exponents in the ladder
  std::size_t z_;  // 1 with a zero level
  std::size_t l_;  // distinct codes used: 2 m_ + z_
};

}  // namespace

std::span<const ParamSpec> phi_log_params() {
  static const ParamSpec params[] = {
      {"base",
       ParamSpec::Kind::real,
       "phi",
       1,
       1e6,
       true,
       {"phi", "sqrt2"},
       "ladder ratio: phi = (1 + sqrt 5) / 2 (GR-PHI), 2 (the log2 quantizer), sqrt2, or any number > 1"},
      {"scale",
       ParamSpec::Kind::choice,
       "absmax",
       0,
       0,
       false,
       {"absmax", "none"},
       "s per codebook: absmax = max |w| (stored as one float32; e = 0 is the largest magnitude), none = 1 "
       "(the "
       "seed's raw exponents)"},
      {"bits",
       ParamSpec::Kind::integer,
       "",
       2,
       16,
       false,
       {},
       "B-1 exponent bits + a sign bit: e_max (default 0) down to e_max - (2^(B-1) - 1); zero=1 spends one "
       "exponent on the zero level. Unset: the range comes from the cell's K (or e_min/e_max)"},
      {"e_min",
       ParamSpec::Kind::integer,
       "",
       -1e6,
       1e6,
       false,
       {},
       "smallest exponent (not with bits=); alone, the range length comes from K"},
      {"e_max",
       ParamSpec::Kind::integer,
       "",
       -1e6,
       1e6,
       false,
       {},
       "largest exponent (default 0 unless e_min and K fix it); with bits= it anchors the range"},
      {"zero",
       ParamSpec::Kind::integer,
       "0",
       0,
       1,
       false,
       {},
       "1 = an exact 0 level: |w| <= s*base^e_min / 2 becomes 0 (and stays 0 under cluster=)"},
      {"round",
       ParamSpec::Kind::choice,
       "log",
       0,
       0,
       false,
       {"log", "nearest"},
       "log: round log_base(|w|/s) (boundary = geometric mean of neighbours, the seed's rule); nearest: "
       "nearest "
       "level (arithmetic mean). Ties go to the smaller magnitude"},
      {"cluster",
       ParamSpec::Kind::integer,
       "0",
       0,
       1e9,
       false,
       {},
       "C > 1: the seed's cluster_exponents - C consecutive elements of a row share their rounded mean "
       "exponent "
       "(signs kept; a short last group is zero-padded in the mean)"},
  };
  return params;
}

std::unique_ptr<Quantizer> make_phi_log(const Params& p, const BuildContext& ctx) {
  PhiLogSetup s;
  s.base = p.is("base", "phi")     ? boost::math::constants::phi<double>()
           : p.is("base", "sqrt2") ? boost::math::constants::root_two<double>()
                                   : p.real("base");
  s.absmax = p.is("scale", "absmax");
  s.zero = p.integer("zero") == 1;
  s.log_rule = p.is("round", "log");
  s.cluster = static_cast<std::size_t>(p.integer("cluster"));
  s.k = ctx.k;
  const std::int64_t z = s.zero ? 1 : 0;
  const std::int64_t k = static_cast<std::int64_t>(ctx.k);
  const bool has_bits = p.given("bits"), has_min = p.given("e_min"), has_max = p.given("e_max");
  if (has_bits && has_min) {
    p.fail("e_min",
           "cannot be combined with bits= (bits=B sets e_min = e_max - (2^(B-1) - 1 - zero)); give "
           "e_max to move the range, or e_min and e_max without bits=");
  }
  if (has_min && has_max && p.integer("e_min") > p.integer("e_max")) {
    p.fail("e_min", "= " + p.text("e_min") + " is above e_max = " + p.text("e_max"));
  }
  // M, the number of exponents: fixed by bits= or by both ends, otherwise the most that K codes hold.
  std::int64_t m = 0;
  std::string fixed_by;
  if (has_bits) {
    m = (std::int64_t{1} << (p.integer("bits") - 1)) - z;
    fixed_by = "bits=" + p.text("bits");
  } else if (has_min && has_max) {
    m = p.integer("e_max") - p.integer("e_min") + 1;
    fixed_by = "e_min=" + p.text("e_min") + " e_max=" + p.text("e_max");
  } else {
    if (!s.zero && k % 2 != 0) {
      throw NotApplicable(p.context() + ": without zero=1 the levels come in +- pairs, so K = " +
                          std::to_string(k) + " must be even (or set zero=1, or bits=/e_min/e_max)");
    }
    m = (k - z) / 2;
    if (m < 1) {
      throw NotApplicable(p.context() + ": K = " + std::to_string(k) + " codes cannot hold +-s" +
                          (s.zero ? " and 0 (zero=1 needs K >= 3)" : " (needs K >= 2)"));
    }
  }
  const std::int64_t levels = 2 * m + z;
  if (levels > k) {
    throw NotApplicable(p.context() + ": " + fixed_by + " gives " + std::to_string(levels) +
                        " levels, more than the cell's K = " + std::to_string(k) + " codes");
  }
  if (has_max) {
    s.e_max = p.integer("e_max");
    s.e_min = s.e_max - (m - 1);
  } else if (has_min) {
    s.e_min = p.integer("e_min");
    s.e_max = s.e_min + (m - 1);
  } else {
    s.e_max = 0;
    s.e_min = -(m - 1);
  }
  return std::make_unique<PhiLog>(s);
}

}  // namespace sqb::quantizers
