// Contract tests over the whole registry and the Phi/Rho proposal's checklist: every quantizer, every
// K, every granularity. A (quantizer, K) pair the strategy declares not applicable is skipped with a message.

#include <catch2/catch.hpp>

#include <cmath>
#include <iostream>
#include <limits>

#include "helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/metrics.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

namespace {

using sqbtest::registry_names;

using Result = sqb::Quantized;

// Quantizes through the one pipeline, or returns false (and says why) when the strategy does not serve K.
bool run(const std::string& spec, std::size_t k, const sqb::Tensor& t, sqb::Granularity g, Result& r,
         std::uint64_t seed = 0) {
  try {
    r = sqb::quantize(t, spec, k, {.granularity = g, .seed = seed});
  } catch (const sqb::NotApplicable& e) {
    WARN("skipped (not applicable): " << e.what());
    return false;
  }
  return true;
}

}  // namespace

TEST_CASE("contract: sorted levels, thresholds between neighbours, K levels, stable decode-encode",
          "[contract]") {
  const std::string name = GENERATE(from_range(registry_names()));
  const std::size_t k = GENERATE(1, 2, 3, 4, 16, 256, 1000);
  const sqb::Tensor t = sqbtest::tensor(4, 2000, 11);
  Result r;
  INFO(name << " K=" << k);
  if (!run(name, k, t, sqb::Granularity::parse("channel"), r)) return;
  REQUIRE(r.designs.size() == 4);
  for (const sqb::BlockDesign& d : r.designs) {
    const auto lv = d.codebook.levels();
    const auto th = d.codebook.thresholds();
    REQUIRE(lv.size() == k);
    REQUIRE(th.size() == k - 1);
    CHECK(std::is_sorted(lv.begin(), lv.end()));
    for (std::size_t i = 0; i + 1 < k; ++i) {
      CHECK(th[i] >= lv[i]);
      CHECK(th[i] <= lv[i + 1]);
    }
    for (const float v : lv)
      CHECK(std::isfinite(v));
  }
  // Decoding, re-encoding the reconstruction with the same codebooks and decoding again changes nothing.
  const std::vector<float> recon2 = sqbtest::reencode(r, *sqb::make_quantizer(name, {k, 0}), r.decoded);
  CHECK(recon2 == sqbtest::vec(r.decoded));
  CHECK(std::isfinite(r.metrics.mse));
  CHECK(r.metrics.entropy_bits <= sqb::index_bits(k) + 1e-12);
}

TEST_CASE("contract: MSE does not rise with more bits on the same data", "[contract]") {
  const std::string name = GENERATE(from_range(registry_names()));
  const sqb::Tensor t = sqbtest::tensor(1, 20000, 12);
  double prev = std::numeric_limits<double>::infinity();
  for (unsigned b = 1; b <= 8; ++b) {
    Result r;
    if (!run(name, std::size_t{1} << b, t, {}, r)) continue;
    INFO(name << " bits=" << b);
    CHECK(r.metrics.mse <= prev * (1 + 1e-9));
    prev = r.metrics.mse;
  }
}

TEST_CASE("contract: a symmetric sample gets a symmetric codebook (deterministic strategies)", "[contract]") {
  const std::string name = GENERATE(from_range(registry_names()));
  if (sqb::find_quantizer(name).randomized) {
    WARN("skipped for " << name << ": its default initialisation is random, so symmetry holds only in law");
    return;
  }
  if (!sqb::find_quantizer(name).mirror_symmetric) {
    WARN("skipped for " << name
                        << ": its codebook is a fixed asymmetric table (registry: mirror_symmetric = false)");
    return;
  }
  std::vector<float> x = sqbtest::draw("gaussian", 5000, 13);
  const std::size_t half = x.size();
  for (std::size_t i = 0; i < half; ++i)
    x.push_back(-x[i]);
  const sqb::Tensor t(1, x.size(), x);
  for (const std::size_t k : {2, 3, 8, 16}) {
    Result r;
    if (!run(name, k, t, {}, r)) continue;
    const auto lv = r.designs[0].codebook.levels();
    const float span = lv.back() - lv.front();
    INFO(name << " K=" << k);
    for (std::size_t i = 0; i < k; ++i)
      CHECK(std::abs(lv[i] + lv[k - 1 - i]) <= 1e-5f * span);
  }
}

TEST_CASE("checklist: constant tensors give a finite codebook, MSE 0 and no NaN", "[contract][checklist]") {
  const std::string name = GENERATE(from_range(registry_names()));
  const float value = GENERATE(0.0f, 3.5f, -1e30f);
  const sqb::Tensor t(2, 50, std::vector<float>(100, value));
  for (const std::string g : {"tensor", "channel", "group:7"}) {
    for (const std::size_t k : {1, 2, 16, 256}) {
      Result r;
      if (!run(name, k, t, sqb::Granularity::parse(g), r)) continue;
      INFO(name << " value=" << value << " K=" << k << " " << g);
      CHECK(r.metrics.mse == 0.0);
      CHECK_FALSE(std::isnan(r.metrics.nmse));
      CHECK_FALSE(std::isnan(r.metrics.sqnr_db));
      for (const float v : r.decoded)
        CHECK(v == value);
    }
  }
}

TEST_CASE("checklist: K = 1, K = 2, K > N and tiny N", "[contract][checklist]") {
  const std::string name = GENERATE(from_range(registry_names()));
  for (const std::size_t n : {1, 2, 3, 5}) {
    const sqb::Tensor t = sqbtest::tensor(1, n, 20 + n);
    for (const std::size_t k : {1, 2, 8, 256}) {
      Result r;
      if (!run(name, k, t, {}, r)) continue;
      INFO(name << " N=" << n << " K=" << k);
      CHECK(std::isfinite(r.metrics.mse));
      for (const float v : r.decoded)
        CHECK(std::isfinite(v));
      if (k == 1) CHECK(r.metrics.entropy_bits == 0.0);
    }
  }
}

TEST_CASE("checklist: shape round trip at every granularity", "[contract][checklist]") {
  const std::string name = GENERATE(from_range(registry_names()));
  const std::string g = GENERATE("tensor", "channel", "group:1", "group:16", "group:37", "group:1000");
  const sqb::Tensor t = sqbtest::tensor(3, 100, 21);
  Result r;
  if (!run(name, 16, t, sqb::Granularity::parse(g), r)) return;
  REQUIRE(r.decoded.size() == t.size());
  // Each element is reconstructed by its own block's codebook.
  for (std::size_t b = 0; b < r.blocks.size(); ++b) {
    const auto lv = r.designs[b].codebook.levels();
    for (std::size_t i = 0; i < r.blocks[b].length; ++i) {
      const std::size_t at = r.blocks[b].offset + i;
      CHECK(r.decoded[at] == lv[r.codes[at]]);
    }
  }
  // Quantizing one row alone gives the same result as that row inside the tensor (per-channel and per-group;
  // randomized strategies draw per block, so only deterministic ones can be compared this way).
  if (g != "tensor" && !sqb::find_quantizer(name).randomized) {
    const sqb::Tensor row(1, t.cols, std::vector<float>(t.row(1).begin(), t.row(1).end()));
    Result single;
    REQUIRE(run(name, 16, row, sqb::Granularity::parse(g), single));
    CHECK(std::equal(single.decoded.begin(), single.decoded.end(),
                     r.decoded.begin() + static_cast<std::ptrdiff_t>(t.cols)));
  }
}

TEST_CASE("checklist: determinism — same spec and seed give identical codebooks and indices",
          "[contract][checklist]") {
  const std::string name = GENERATE(from_range(registry_names()));
  const sqb::Tensor t = sqbtest::tensor(2, 3000, 22);
  Result a, b;
  if (!run(name, 16, t, sqb::Granularity::parse("channel"), a, 5)) return;
  REQUIRE(run(name, 16, t, sqb::Granularity::parse("channel"), b, 5));
  for (std::size_t i = 0; i < a.designs.size(); ++i)
    CHECK(a.designs[i].codebook == b.designs[i].codebook);
  for (std::size_t i = 0; i < t.size(); ++i)
    CHECK(a.codes[i] == b.codes[i]);
}

TEST_CASE("bad data: NaN or Inf is an error naming how many and the first index, and empty data is an error",
          "[contract][baddata]") {
  const std::string name = GENERATE(from_range(registry_names()));
  std::vector<float> x = sqbtest::draw("gaussian", 100, 23);
  x[17] = std::numeric_limits<float>::quiet_NaN();
  x[40] = std::numeric_limits<float>::infinity();
  x[41] = -std::numeric_limits<float>::infinity();
  const sqb::Tensor t(2, 50, x);
  // K = 4, or the first K the entry serves (nf4 and fp4 are K = 16 only).
  std::unique_ptr<sqb::Quantizer> q;
  for (const std::size_t k : {4, 16, 256}) {
    try {
      q = sqb::make_quantizer(name, {k, 0});
      break;
    } catch (const sqb::NotApplicable&) {
    }
  }
  REQUIRE(q);
  CHECK_THROWS_WITH(sqb::quantize(t, *q), Catch::Contains("3 non-finite values") &&
                                              Catch::Contains("NaN at index 17 (row 0, col 17)"));
  CHECK_THROWS_AS(sqb::quantize(sqb::Tensor(), *q), sqb::Error);
}

TEST_CASE("quantize_into with reuse_design encodes new data with the codebooks of an earlier call",
          "[contract][pipeline]") {
  const sqb::Tensor a = sqbtest::tensor(3, 500, 31), b = sqbtest::tensor(3, 500, 32);
  const auto q = sqb::make_quantizer("kmeans", {16, 0});
  sqb::QuantizeOptions opt;
  opt.granularity = sqb::Granularity::parse("channel");
  sqb::Quantized r;
  sqb::quantize_into(a, *q, opt, r);
  const auto designs = r.designs;
  opt.reuse_design = true;
  sqb::quantize_into(b, *q, opt, r);
  for (std::size_t i = 0; i < designs.size(); ++i)
    CHECK(r.designs[i].codebook == designs[i].codebook);
  CHECK(sqbtest::vec(r.decoded) == sqbtest::reencode(r, *q, b.values));  // b encoded with a's codebooks
  CHECK(r.decoded != sqb::quantize(b, *q, {.granularity = opt.granularity}).decoded);
  sqb::Quantized fresh;
  CHECK_THROWS_WITH(sqb::quantize_into(b, *q, opt, fresh), Catch::Contains("reuse_design"));
}

TEST_CASE("threads: every strategy gives bit-identical results for every thread count",
          "[contract][threads]") {
  const std::string name = GENERATE(from_range(registry_names()));
  // 37 rows of 301: more blocks than threads, and a tensor-granularity run whose one long block is encoded
  // in chunks by several threads.
  const sqb::Tensor t = sqbtest::tensor(37, 301, 41);
  for (const char* g : {"channel", "group:64", "tensor"}) {
    Result one;
    if (!run(name, 16, t, sqb::Granularity::parse(g), one, 9)) return;
    for (const int threads : {2, 3, 8}) {
      INFO(name << " " << g << " threads=" << threads);
      const sqb::Quantized many = sqb::quantize(
          t, name, 16, {.granularity = sqb::Granularity::parse(g), .seed = 9, .threads = threads});
      REQUIRE(many.designs.size() == one.designs.size());
      for (std::size_t i = 0; i < one.designs.size(); ++i)
        CHECK(many.designs[i].codebook == one.designs[i].codebook);
      CHECK(many.decoded == one.decoded);
      std::size_t mismatches = 0;
      for (std::size_t i = 0; i < t.size(); ++i)
        mismatches += many.codes[i] != one.codes[i];
      CHECK(mismatches == 0);
      CHECK(many.metrics.mse == one.metrics.mse);
    }
  }
  // A long tensor-granularity block (several encode chunks of 2^16).
  const sqb::Tensor big = sqbtest::tensor(1, 300000, 42);
  Result a;
  if (!run(name, 16, big, {}, a, 9)) return;
  const sqb::Quantized b = sqb::quantize(big, name, 16, {.seed = 9, .threads = 2});
  CHECK(b.decoded == a.decoded);
}
