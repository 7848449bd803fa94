// Metrics, spec strings and parameters, granularity, and the seeded data generators.

#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <set>

#include "detail/measure.hpp"
#include "helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/granularity.hpp"
#include "sqb/metrics.hpp"
#include "sqb/registry.hpp"
#include "sqb/source.hpp"
#include "sqb/spec.hpp"

using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

TEST_CASE("entropy of a histogram equals the closed form", "[metrics]") {
  const std::vector<std::size_t> uniform8(8, 100);
  CHECK_THAT(sqb::entropy_bits(uniform8), WithinRel(3.0, 1e-15));
  const std::vector<std::size_t> skewed = {50, 25, 25, 0};  // H = 1.5 bits
  CHECK_THAT(sqb::entropy_bits(skewed), WithinRel(1.5, 1e-15));
  const std::vector<std::size_t> one = {0, 42, 0};
  CHECK(sqb::entropy_bits(one) == 0.0);
}

TEST_CASE("metrics on a hand example", "[metrics]") {
  const std::vector<float> x = {1.0f, -1.0f, 3.0f, 1.0f};
  const std::vector<float> y = {1.5f, -1.0f, 2.0f, 1.0f};
  sqb::Codes codes(4, 4);
  codes.visit([](auto c) {
    c[0] = 0;
    c[1] = 1;
    c[2] = 2;
    c[3] = 0;
  });
  const sqb::Metrics m = sqb::detail::compute_metrics(x, y, codes, 2, 3);
  CHECK_THAT(m.mse, WithinRel((0.25 + 0 + 1 + 0) / 4.0, 1e-15));
  CHECK(m.max_abs_err == 1.0);
  CHECK_THAT(m.variance, WithinRel(2.0, 1e-15));  // mean 1, deviations 0,4,4,0
  CHECK_THAT(m.nmse, WithinRel(0.3125 / 2.0, 1e-15));
  CHECK_THAT(m.sqnr_db, WithinRel(10 * std::log10(3.0 / 0.3125), 1e-12));
  CHECK_THAT(m.entropy_bits, WithinRel(1.5, 1e-15));
  CHECK(m.index_bits == 2);
  CHECK_THAT(m.storage_bits, WithinRel(2.0 + 2 * 3 * 32 / 4.0, 1e-15));
}

TEST_CASE("metrics: lossless gives SQNR +inf and NMSE 0, never NaN", "[metrics]") {
  const std::vector<float> zero(10, 0.0f);
  sqb::Codes codes(10, 1);
  const sqb::Metrics m = sqb::detail::compute_metrics(zero, zero, codes, 1, 1);
  CHECK(m.mse == 0);
  CHECK(m.nmse == 0);
  CHECK(std::isinf(m.sqnr_db));
  CHECK(m.sqnr_db > 0);
}

TEST_CASE("metrics near FLT_MAX do not overflow (sums in double)", "[metrics]") {
  const std::vector<float> x = {FLT_MAX, -FLT_MAX, FLT_MAX};
  const std::vector<float> y = {FLT_MAX, FLT_MAX, -FLT_MAX};
  sqb::Codes codes(3, 2);
  const sqb::Metrics m = sqb::detail::compute_metrics(x, y, codes, 1, 2);
  CHECK(std::isfinite(m.mse));
  CHECK_THAT(m.mse, WithinRel(2.0 * 4.0 * double(FLT_MAX) * FLT_MAX / 3.0, 1e-12));
  CHECK(std::isfinite(m.variance));
  CHECK(std::isfinite(m.sqnr_db));
}

TEST_CASE("index bits", "[metrics]") {
  CHECK(sqb::index_bits(1) == 0);
  CHECK(sqb::index_bits(2) == 1);
  CHECK(sqb::index_bits(3) == 2);
  CHECK(sqb::index_bits(256) == 8);
  CHECK(sqb::index_bits(257) == 9);
  CHECK(sqb::index_bits(65536) == 16);
}

TEST_CASE("spec strings: parsing and canonical form", "[spec]") {
  const auto s = sqb::SpecText::parse("  kmeans   init=quantile\tmax_iter=5 ", "quantizer");
  CHECK(s.name == "kmeans");
  CHECK(s.canonical() == "kmeans init=quantile max_iter=5");
  CHECK_THROWS_WITH(sqb::SpecText::parse("", "quantizer"), Catch::Contains("empty quantizer spec"));
  CHECK_THROWS_WITH(sqb::SpecText::parse("kmeans init", "quantizer"),
                    Catch::Contains("'init' is not of the form key=value"));
  CHECK_THROWS_WITH(sqb::SpecText::parse("kmeans init=", "quantizer"),
                    Catch::Contains("'init' has no value"));
  CHECK_THROWS_WITH(sqb::SpecText::parse("kmeans =3", "quantizer"), Catch::Contains("no key"));
  CHECK_THROWS_WITH(sqb::SpecText::parse("kmeans tol=1 tol=2", "quantizer"),
                    Catch::Contains("'tol' is given twice"));
}

TEST_CASE("unknown quantizer lists the valid names, bad parameters name themselves and the valid ones",
          "[spec]") {
  CHECK_THROWS_WITH(sqb::make_quantizer("kmean", {4, 0}), Catch::Contains("unknown quantizer 'kmean'") &&
                                                              Catch::Contains("kmeans") &&
                                                              Catch::Contains("cosine"));
  CHECK_THROWS_WITH(sqb::make_quantizer("kmeans inti=greedy", {4, 0}),
                    Catch::Contains("unknown parameter 'inti'") && Catch::Contains("init, max_iter"));
  CHECK_THROWS_WITH(
      sqb::make_quantizer("kmeans init=random", {4, 0}),
      Catch::Contains("parameter 'init' must be one of kmeans++|greedy") && Catch::Contains("got 'random'"));
  CHECK_THROWS_WITH(sqb::make_quantizer("kmeans max_iter=ten", {4, 0}),
                    Catch::Contains("parameter 'max_iter' must be integer"));
  CHECK_THROWS_WITH(sqb::make_quantizer("cosine refine=-1", {4, 0}), Catch::Contains("parameter 'refine'"));
  CHECK_THROWS_WITH(sqb::make_quantizer("kmeans tol=nan", {4, 0}), Catch::Contains("parameter 'tol'"));
  CHECK_THROWS_WITH(sqb::make_quantizer("cosine", {0, 0}), Catch::Contains("outside 1..65536"));
  CHECK_THROWS_WITH(sqb::make_quantizer("cosine", {65537, 0}), Catch::Contains("outside 1..65536"));
  CHECK_NOTHROW(sqb::make_quantizer("kmeans max_iter=1e3", {4, 0}));
}

TEST_CASE("registry: names are unique and every parameter default is valid", "[spec]") {
  std::set<std::string_view> names;
  for (const auto& e : sqb::quantizer_registry()) {
    CHECK(names.insert(e.name).second);
    CHECK_FALSE(e.description.empty());
    CHECK_NOTHROW(sqb::Params(e.params, {}, std::string(e.name)));
  }
}

TEST_CASE("granularity parsing and blocks", "[granularity]") {
  CHECK(sqb::Granularity::parse("tensor").kind == sqb::Granularity::Kind::tensor);
  CHECK(sqb::Granularity::parse("group:64").group == 64);
  CHECK(sqb::Granularity::parse("group:64").to_string() == "group:64");
  CHECK_THROWS_WITH(sqb::Granularity::parse("group:0"), Catch::Contains("group:G"));
  CHECK_THROWS_WITH(sqb::Granularity::parse("row"), Catch::Contains("tensor, channel or group:G"));
  const auto blocks = sqb::make_blocks(2, 10, sqb::Granularity::parse("group:4"));
  REQUIRE(blocks.size() == 6);
  CHECK(blocks[2].offset == 8);
  CHECK(blocks[2].length == 2);  // the short last group of row 0
  CHECK(blocks[3].offset == 10);
  CHECK(sqb::make_blocks(3, 5, sqb::Granularity::parse("channel")).size() == 3);
  CHECK(sqb::make_blocks(3, 5, {}).size() == 1);
}

TEST_CASE("distributions: seeded, reproducible, shaped by rows", "[data]") {
  const auto a = sqbtest::draw("gaussian", 1000, 42);
  CHECK(a == sqbtest::draw("gaussian", 1000, 42));
  CHECK(a != sqbtest::draw("gaussian", 1000, 43));
  const sqb::Tensor t = sqb::make_source("laplace rows=4")->draw(100, 1);
  CHECK(t.rows == 4);
  CHECK(t.cols == 25);
  CHECK_THROWS_WITH(sqb::make_source("laplace rows=3")->draw(100, 1),
                    Catch::Contains("not a multiple of rows"));
  CHECK_THROWS_WITH(sqb::make_source("gausian"), Catch::Contains("valid distributions: gaussian"));
  CHECK_THROWS_WITH(sqb::make_source("uniform lo=2 hi=1"), Catch::Contains("'hi'"));
  CHECK_THROWS_WITH(sqb::make_source("gaussian std=0"), Catch::Contains("'std'"));
}

TEST_CASE("distributions: Boost.Random streams are pinned (same numbers on every platform)", "[data]") {
  // Regression pins: if these change, every published result changes. They come from Boost 1.74's mt19937_64
  // and ziggurat normal, which are header code and do not depend on the standard library.
  const auto g = sqbtest::draw("gaussian", 3, 0);
  const auto u = sqbtest::draw("uniform lo=0 hi=1", 3, 0);
  INFO("gaussian: " << g[0] << " " << g[1] << " " << g[2] << "  uniform: " << u[0] << " " << u[1] << " "
                    << u[2]);
  CHECK(g == std::vector<float>{-0x1.4e60dp-2f, 0x1.743a4cp+0f, -0x1.8fd22p-2f});
  CHECK(u == std::vector<float>{0x1.4741bep-3f, 0x1.fbfa74p-1f, 0x1.442642p-5f});
}

TEST_CASE("distributions: moments are right", "[data]") {
  const auto moments = [](const std::vector<float>& x) {
    double s = 0, s2 = 0;
    for (const float v : x)
      s += v;
    const double m = s / static_cast<double>(x.size());
    for (const float v : x)
      s2 += (v - m) * (v - m);
    return std::pair{m, s2 / static_cast<double>(x.size())};
  };
  const std::size_t n = 400000;
  auto [m1, v1] = moments(sqbtest::draw("gaussian mean=2 std=3", n, 1));
  CHECK_THAT(m1, WithinAbs(2.0, 0.03));
  CHECK_THAT(v1, WithinRel(9.0, 0.02));
  auto [m2, v2] = moments(sqbtest::draw("laplace scale=2", n, 1));
  CHECK_THAT(m2, WithinAbs(0.0, 0.02));
  CHECK_THAT(v2, WithinRel(8.0, 0.03));
  auto [m3, v3] = moments(sqbtest::draw("uniform lo=-1 hi=3", n, 1));
  CHECK_THAT(m3, WithinAbs(1.0, 0.01));
  CHECK_THAT(v3, WithinRel(16.0 / 12.0, 0.01));
  auto [m4, v4] = moments(sqbtest::draw("student_t nu=5", n, 1));
  CHECK_THAT(m4, WithinAbs(0.0, 0.02));
  CHECK_THAT(v4, WithinRel(5.0 / 3.0, 0.05));
}
