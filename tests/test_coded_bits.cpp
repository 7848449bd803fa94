// coded_bits: the measured entropy-coded size of every quantized tensor (one rANS stream of its codes with a
// static frequency table, plus the side values), for every strategy; how close it is to the entropy; and
// phi_log's exp_coded_bits, the size of the {sign bit, exponent} streams `sqbench export --coded` writes.

#include <catch2/catch.hpp>

#include <cmath>

#include "helpers.hpp"
#include "sqb/coding.hpp"
#include "sqb/error.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

namespace {

using sqbtest::registry_names;

double figure(const sqb::Quantized& r, sqb::Col c) {
  for (const sqb::Figure& f : r.metric_columns()) {
    if (f.column == c) return f.value;
  }
  FAIL("no figure " << sqb::column_name(c));
  return 0;
}

}  // namespace

TEST_CASE("coded_bits is the rANS stream of the codes plus the side values, per element", "[coded-bits]") {
  const std::string name = GENERATE(from_range(registry_names()));
  const std::size_t k = GENERATE(4, 16, 256, 4096);
  const std::string gran = GENERATE("tensor", "group:64");
  INFO(name << " K=" << k << " " << gran);
  const sqb::Tensor x(8, 2500, sqbtest::draw("laplace", 20000, 3));
  sqb::Quantized r;
  try {
    r = sqb::quantize(x, name, k, {.granularity = sqb::Granularity::parse(gran), .coded = true});
  } catch (const sqb::NotApplicable& e) {
    return;  // nf4 and fp4 serve K = 16 only
  }
  const double n = 20000;
  const std::uint64_t stream = r.codes.visit([&](auto c) { return sqb::rans_coded_bits(c, k); });
  const double side = 32.0 * static_cast<double>(r.blocks.size() * r.side.per_block);
  CHECK(r.metrics.coded_bits == (static_cast<double>(stream) + side) / n);
  CHECK(figure(r, sqb::Col::coded_bits) == r.metrics.coded_bits);
  // The payload costs at least the entropy (less its 32-bit final state) and, for K <= 256 on 20000 codes,
  // at most 0.02 bits more per code (frequencies rounded to 2^M, the state); the header and the frequency
  // table come on top, a few bytes per level in use.
  const sqb::RansEncoded e = r.codes.visit([&](auto c) { return sqb::rans_encode(c, k); });
  CHECK(e.total_bits() == stream);
  CHECK(e.payload_bits_per_symbol() >= r.metrics.entropy_bits - 32 / n);
  if (k <= 256) CHECK(e.payload_bits_per_symbol() <= r.metrics.entropy_bits + 0.02);
  std::size_t present = 0;
  std::vector<bool> seen(k, false);
  for (std::size_t i = 0; i < r.codes.size(); ++i) {
    present += !seen[r.codes[i]];
    seen[r.codes[i]] = true;
  }
  CHECK(e.header_bytes + e.table_bytes <= 8 + 3 * present);
}

TEST_CASE("coded_bits on hand-made codes: one symbol, two symbols, the timed repeats skip it",
          "[coded-bits]") {
  // A constant tensor: every code the same; the stream is its header, a one-entry table and the state.
  const sqb::Tensor c(1, 1000, std::vector<float>(1000, 0.5f));
  const sqb::Quantized r = sqb::quantize(c, "uniform", 4, {.coded = true});
  const std::vector<std::uint8_t> codes(1000, static_cast<std::uint8_t>(r.codes[0]));
  CHECK(r.metrics.coded_bits ==
        (static_cast<double>(sqb::rans_coded_bits(codes, 4)) + 2 * 32.0) / 1000);  // uniform stores min, max
  CHECK(r.metrics.entropy_bits == 0);
  CHECK(r.metrics.coded_bits < 0.2);
  // With measure = false (a sweep's timed repeats) nothing is coded.
  sqb::QuantizeOptions timed;
  timed.measure = false;
  const sqb::Quantized t = sqb::quantize(c, "uniform", 4, timed);
  CHECK(t.metrics.coded_bits == 0);
}

TEST_CASE("coded_bits is measured only when asked, and asking changes no other metric", "[coded-bits]") {
  const sqb::Tensor x(16, 512, sqbtest::draw("laplace", 16 * 512, 5));
  const std::string gran = GENERATE("tensor", "channel", "group:64");
  const sqb::Quantized plain = sqb::quantize(x, "kmeans", 16, {.granularity = sqb::Granularity::parse(gran)});
  const sqb::Quantized coded =
      sqb::quantize(x, "kmeans", 16, {.granularity = sqb::Granularity::parse(gran), .coded = true});
  CHECK(std::isnan(plain.metrics.coded_bits));
  CHECK(std::isnan(figure(plain, sqb::Col::coded_bits)));
  const std::uint64_t stream = coded.codes.visit([&](auto c) { return sqb::rans_coded_bits(c, 16); });
  CHECK(coded.metrics.coded_bits ==
        (static_cast<double>(stream) + 32.0 * static_cast<double>(coded.blocks.size() * 16)) /
            static_cast<double>(x.size()));
  const std::vector<sqb::Figure> a = plain.metric_columns(), b = coded.metric_columns();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(sqb::column_name(a[i].column));
    if (a[i].column == sqb::Col::coded_bits) continue;
    CHECK(std::isnan(a[i].value) == std::isnan(b[i].value));
    if (!std::isnan(a[i].value)) CHECK(a[i].value == b[i].value);
  }
  CHECK(plain.codes.visit([&](auto c) { return std::vector<std::size_t>(c.begin(), c.end()); }) ==
        coded.codes.visit([&](auto c) { return std::vector<std::size_t>(c.begin(), c.end()); }));
}

TEST_CASE("phi_log: exp_coded_bits is the size of its coded streams, close to the entropy estimate",
          "[coded-bits][phi_log]") {
  const std::string spec =
      GENERATE("phi_log", "phi_log zero=1", "phi_log cluster=4", "phi_log cluster=8 zero=1",
               "phi_log base=2 scale=none e_min=-9 e_max=-2");
  INFO(spec);
  const sqb::Tensor x(10, 2000, sqbtest::draw("gaussian std=0.05", 20000, 5));
  const auto q = sqb::make_quantizer(spec, {16, 0});
  const sqb::Quantized r =
      sqb::quantize(x, *q, {.granularity = sqb::Granularity::parse("channel"), .coded = true});
  const auto* ex = sqb::part_of<sqb::ExportsArrays>(*q);
  REQUIRE(ex != nullptr);
  std::size_t bytes = 0;
  std::vector<std::string> names;
  for (const sqb::ExportStream& s : ex->export_streams(r)) {
    bytes += s.bytes.size();
    names.push_back(s.name);
  }
  const bool zeros = spec.find("cluster=8 zero=1") != std::string::npos;
  CHECK(names == (zeros ? std::vector<std::string>{"signs.bits", "exponents.rans", "zeros.rans"}
                        : std::vector<std::string>{"signs.bits", "exponents.rans"}));
  const double scales = 32.0 * static_cast<double>(r.blocks.size() * r.side.per_block);
  const double coded = figure(r, sqb::Col::exp_coded_bits);
  CHECK(coded == (8.0 * static_cast<double>(bytes) + scales) / 20000);
  // The estimate counts the sign bits and the exponent entropy without any table or rounding.
  const double estimate = figure(r, sqb::Col::exp_storage_bits);
  CHECK(coded >= estimate - 0.01);
  CHECK(coded <= estimate + 0.02);
  // With exponent sharing the streams are smaller than coding every code.
  if (spec.find("cluster=") != std::string::npos) CHECK(coded < r.metrics.coded_bits);
}
