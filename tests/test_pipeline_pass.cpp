// The pipeline's one pass (fit, encode, decode and the metric sums per chunk of blocks) against slow
// references: the SIMD error sums against a scalar loop of the same fixed order on every SIMD target; a whole
// quantize call against the stages run block by block with sqb::encode / sqb::decode and measured by that
// scalar loop; and the result for every thread count.

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "detail/encode_simd.hpp"
#include "detail/error_sums.hpp"
#include "detail/measure.hpp"
#include "helpers.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

namespace {

bool same_bits(double a, double b) {
  return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b);
}

bool same_sums(const sqb::detail::ErrorSums& a, const sqb::detail::ErrorSums& b) {
  return same_bits(a.sum, b.sum) && same_bits(a.sum_sq, b.sum_sq) && same_bits(a.err_sq, b.err_sq) &&
         same_bits(a.max_err, b.max_err) && same_bits(a.wsum, b.wsum) && same_bits(a.werr, b.werr);
}

// The metrics by the obvious route: per chunk the scalar reference sums, combined in chunk order.
sqb::Metrics reference_metrics(const sqb::Tensor& x, const std::vector<float>& xhat, const sqb::Codes& codes,
                               const std::vector<sqb::Block>& blocks, std::size_t side,
                               std::span<const float> w) {
  const std::vector<sqb::detail::Chunk> chunks = sqb::detail::make_chunks(blocks);
  sqb::detail::ErrorSums t;
  for (const auto& c : chunks) {
    const auto s = sqb::detail::error_sums_reference(x.values.data() + c.begin, xhat.data() + c.begin,
                                                     w.empty() ? nullptr : w.data() + c.begin, c.length);
    t.sum += s.sum;
    t.sum_sq += s.sum_sq;
    t.err_sq += s.err_sq;
    t.max_err = std::max(t.max_err, s.max_err);
    t.wsum += s.wsum;
    t.werr += s.werr;
  }
  const double n = static_cast<double>(x.size());
  double var = 0;
  for (const auto& c : chunks)
    var += sqb::detail::centered_sum_sq_reference(x.values.data() + c.begin, c.length, t.sum / n);
  sqb::Metrics m;
  sqb::detail::finish_error_metrics(n, t, var, !w.empty(), m);
  std::vector<std::size_t> hist(codes.code_count(), 0);
  for (std::size_t i = 0; i < codes.size(); ++i)
    ++hist[codes[i]];
  sqb::detail::finish_code_metrics(hist, codes, blocks.size(), side, false, m);
  return m;
}

}  // namespace

TEST_CASE("error sums: the SIMD kernel adds in the scalar reference's order on every target", "[pass]") {
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.5f, 2.0f);
  std::uniform_real_distribution<float> u(0.0f, 3.0f);
  for (const std::size_t n : {1u, 7u, 15u, 16u, 17u, 64u, 100u, 1000u, 4099u, 32768u, 70001u}) {
    std::vector<float> x(n), xhat(n), w(n);
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = g(rng);
      xhat[i] = std::round(x[i] * 2) / 2;
      w[i] = u(rng);
    }
    const auto want = sqb::detail::error_sums_reference(x.data(), xhat.data(), nullptr, n);
    const auto want_w = sqb::detail::error_sums_reference(x.data(), xhat.data(), w.data(), n);
    const double want_c = sqb::detail::centered_sum_sq_reference(x.data(), n, 0.4375);
    std::size_t targets = 0;
    for (const auto& target : sqb::detail::compiled_targets()) {
      if (!sqb::detail::cpu_supports(target.bit)) continue;
      sqb::detail::force_target(target.bit);
      INFO("n = " << n << ", target " << target.name);
      CHECK(same_sums(sqb::detail::error_sums(x.data(), xhat.data(), nullptr, n), want));
      CHECK(same_sums(sqb::detail::error_sums(x.data(), xhat.data(), w.data(), n), want_w));
      CHECK(same_bits(sqb::detail::centered_sum_sq(x.data(), n, 0.4375), want_c));
      ++targets;
    }
    sqb::detail::force_target(0);
    CHECK(targets >= 1);
    CHECK(want.wsum == 0);
    CHECK(want_w.wsum > 0);
  }
}

TEST_CASE("chunks: whole blocks up to the chunk size, long blocks in pieces, covering the tensor in order",
          "[pass]") {
  for (const std::string g : {"tensor", "channel", "group:64", "group:100"}) {
    for (const auto& [rows, cols] : {std::pair<std::size_t, std::size_t>{3, 70000}, {300, 4096}, {7, 11}}) {
      INFO(g << " " << rows << " x " << cols);
      const auto blocks = sqb::make_blocks(rows, cols, sqb::Granularity::parse(g));
      const auto chunks = sqb::detail::make_chunks(blocks);
      std::size_t next = 0, block = 0;
      for (const auto& c : chunks) {
        CHECK(c.begin == next);
        CHECK(c.length <= sqb::detail::kChunk);
        CHECK(c.length >= 1);
        if (c.whole) {
          CHECK(c.first_block == block);
          block = c.end_block;
        } else {
          CHECK(blocks[c.first_block].length > sqb::detail::kChunk);
          if (c.begin + c.length == blocks[c.first_block].offset + blocks[c.first_block].length) ++block;
        }
        next += c.length;
      }
      CHECK(next == rows * cols);
      CHECK(block == blocks.size());
    }
  }
}

TEST_CASE("the one pass equals the stages run block by block and measured by the scalar reference",
          "[pass]") {
  const std::string spec =
      GENERATE("uniform symmetric=1", "uniform", "kmeans", "kmeans_optimal", "nf4", "phi_log");
  const std::string g = GENERATE("tensor", "channel", "group:64", "group:48");
  const bool weighted = GENERATE(false, true);
  INFO(spec << " " << g << (weighted ? " weighted" : ""));
  // 70000 columns: a tensor block is split into pieces; 40 x 1750 rows: many blocks per chunk.
  for (const auto& [rows, cols] : {std::pair<std::size_t, std::size_t>{2, 70000}, {40, 1750}}) {
    const sqb::Tensor x(rows, cols, sqbtest::draw("laplace", rows * cols, 11));
    std::vector<float> w;
    if (weighted) w = sqbtest::draw("uniform", rows * cols, 12);
    for (float& v : w)
      v = std::fabs(v);
    const auto q = sqb::make_quantizer(spec, {16, 5});
    sqb::QuantizeOptions o;
    o.granularity = sqb::Granularity::parse(g);
    o.seed = 5;
    o.weights = w;
    const sqb::Quantized r = sqb::quantize(x, *q, o);
    // The stages block by block.
    const auto blocks = sqb::make_blocks(rows, cols, o.granularity);
    sqb::Codes codes(x.size(), 16);
    std::vector<float> xhat(x.size());
    bool designs_equal = true;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const auto& b = blocks[i];
      const auto d = q->design(
          std::span<const float>(x.values).subspan(b.offset, b.length),
          {i, sqb::block_seed(5, i),
           w.empty() ? std::span<const float>() : std::span<const float>(w).subspan(b.offset, b.length)});
      designs_equal = designs_equal && d.codebook == r.designs[i].codebook;
    }
    CHECK(designs_equal);
    for (std::size_t i = 0; i < x.size(); ++i)
      xhat[i] = r.decoded[i];
    // Decoded from the result's codes with its codebooks.
    r.codes.visit([&](auto c) {
      for (std::size_t bi = 0; bi < blocks.size(); ++bi) {
        const auto& b = blocks[bi];
        std::vector<float> out(b.length);
        sqb::decode(r.designs[bi].codebook, c.subspan(b.offset, b.length), out);
        CHECK(std::memcmp(out.data(), r.decoded.data() + b.offset, b.length * sizeof(float)) == 0);
      }
    });
    if (!sqb::part_of<sqb::RefinesCodes>(*q)) {
      r.codes.visit([&](auto c) {
        std::size_t bad = 0;
        for (std::size_t bi = 0; bi < blocks.size(); ++bi) {
          const auto& b = blocks[bi];
          std::vector<std::uint8_t> e(b.length);
          sqb::encode(r.designs[bi].codebook, std::span<const float>(x.values).subspan(b.offset, b.length),
                      e);
          for (std::size_t j = 0; j < b.length; ++j)
            bad += e[j] != c[b.offset + j];
        }
        CHECK(bad == 0);
      });
    }
    const sqb::Metrics want = reference_metrics(x, xhat, r.codes, blocks, r.side.per_block, w);
    CHECK(same_bits(r.metrics.mse, want.mse));
    CHECK(same_bits(r.metrics.nmse, want.nmse));
    CHECK(same_bits(r.metrics.sqnr_db, want.sqnr_db));
    CHECK(same_bits(r.metrics.max_abs_err, want.max_abs_err));
    CHECK(same_bits(r.metrics.variance, want.variance));
    CHECK(same_bits(r.metrics.entropy_bits, want.entropy_bits));
    CHECK(same_bits(r.metrics.storage_bits, want.storage_bits));
    CHECK(std::isnan(r.metrics.wmse) == !weighted);
    if (weighted) CHECK(same_bits(r.metrics.wmse, want.wmse));
    // Against the old whole-tensor sequential sums: the same figures up to the summation order.
    sqb::Metrics seq;
    const sqb::detail::ErrorPart part{x.values, r.decoded, w};
    sqb::detail::error_metrics({&part, 1}, seq);
    CHECK(r.metrics.mse == Approx(seq.mse).epsilon(1e-12));
    CHECK(r.metrics.max_abs_err == seq.max_abs_err);
    // Every thread count, and the timed run, give the same bits.
    for (const int threads : {2, 3}) {
      o.threads = threads;
      const sqb::Quantized t = sqb::quantize(x, *q, o);
      CHECK(t.decoded == r.decoded);
      CHECK(same_bits(t.metrics.mse, r.metrics.mse));
      CHECK(same_bits(t.metrics.sqnr_db, r.metrics.sqnr_db));
      CHECK(same_bits(t.metrics.nmse, r.metrics.nmse));
      CHECK(same_bits(t.metrics.entropy_bits, r.metrics.entropy_bits));
    }
    sqb::Quantized timed;
    sqb::StageTimes st;
    sqb::quantize_into(x, *q, o, timed, &st);
    CHECK(timed.decoded == r.decoded);
    CHECK(same_bits(timed.metrics.mse, r.metrics.mse));
    CHECK(st.fit >= 0);
    CHECK(st.encode >= 0);
    CHECK(st.decode >= 0);
  }
}
