// The `npy` distribution: layouts, paths relative to the config's folder, n (whole file, seeded subsample,
// never padded), scale, non-finite values (error with count and first index, or drop and count), integer
// files, and the expansion of glob= into one spec per file.

#include <catch2/catch.hpp>

#include <algorithm>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "npy_helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"
#include "sqb/source.hpp"

namespace fs = std::filesystem;

namespace {

using TempDir = sqbtest::ScratchDir;

// v[i] = i + 1 as an array of `shape`.
std::vector<float> iota(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = static_cast<float>(i + 1);
  return v;
}

void save(const fs::path& p, std::vector<std::size_t> shape, const std::vector<float>& v,
          sqb::npy::Format f = {}) {
  sqb::npy::write(p, shape, v, f);
}

std::unique_ptr<sqb::Source> make(const std::string& spec, const fs::path& base) {
  return sqb::make_source(spec, sqb::SourceContext{base});
}

// The columns a source describes its data with, and their values.
std::vector<sqb::Col> data_columns(const sqb::Source& s) {
  const auto* d = sqb::part_of<sqb::DescribesData>(s);
  return d ? d->data_columns() : std::vector<sqb::Col>{};
}
std::vector<double> describe(const sqb::Source& s) {
  const auto* d = sqb::part_of<sqb::DescribesData>(s);
  return d ? d->describe_data() : std::vector<double>{};
}

}  // namespace

TEST_CASE("npy source: the whole file, laid out by layout=, relative to the config's folder",
          "[npy-source]") {
  TempDir dir;
  fs::create_directories(dir.path / "w");
  save(dir.path / "w" / "conv.npy", {4, 3, 2, 2}, iota(48));
  const auto d = make("npy path=w/conv.npy layout=oihw", dir.path);
  CHECK_NOTHROW(d->check_n(48));
  CHECK_NOTHROW(d->check_n(sqb::kWholeFile));
  for (const std::size_t n : {std::size_t{48}, sqb::kWholeFile}) {
    const sqb::Tensor t = d->draw(n, 7);
    CHECK(t.rows == 4);
    CHECK(t.cols == 12);
    CHECK(t.values == iota(48));
  }
  CHECK(data_columns(*d).empty());
  // layout=rows on a 1-D file is one row; hwio uses the last axis.
  save(dir.path / "bias.npy", {5}, iota(5));
  const sqb::Tensor b = make("npy path=bias.npy", dir.path)->draw(5, 0);
  CHECK((b.rows == 1 && b.cols == 5));
  save(dir.path / "dense.npy", {3, 2}, iota(6));
  const sqb::Tensor h = make("npy path=dense.npy layout=hwio", dir.path)->draw(0, 0);
  CHECK((h.rows == 2 && h.cols == 3));
  CHECK(h.values == std::vector<float>{1, 3, 5, 2, 4, 6});
  // Absolute paths ignore the base folder; no base folder means the current one.
  CHECK(make("npy path=" + (dir.path / "bias.npy").string(), "/nonexistent")->draw(0, 0).values == iota(5));
  // float16 / float64 / big-endian / Fortran files read the same.
  save(dir.path / "f16.npy", {4, 12}, iota(48), {sqb::npy::DType::float16, true, true, 2});
  CHECK(make("npy path=f16.npy", dir.path)->draw(0, 0).values == iota(48));
}

TEST_CASE("npy source: n above the file size is refused, never padded", "[npy-source]") {
  TempDir dir;
  save(dir.path / "a.npy", {4, 3}, iota(12));
  const auto d = make("npy path=a.npy", dir.path);
  CHECK_THROWS_WITH(d->check_n(13),
                    Catch::Contains("distribution \"npy path=a.npy\": n = 13 is more than the 12 "
                                    "values of") &&
                        Catch::Contains("never padded"));
  CHECK_THROWS_AS(d->draw(13, 0), sqb::Error);
}

TEST_CASE("npy source: n below the size is a seeded subsample of whole rows, or of values", "[npy-source]") {
  TempDir dir;
  const std::size_t rows = 50, cols = 4;
  save(dir.path / "a.npy", {rows, cols}, iota(rows * cols));
  const auto d = make("npy path=a.npy", dir.path);
  // n a multiple of the row length: whole rows, in file order, chosen by the seed.
  const sqb::Tensor t = d->draw(40, 3);
  REQUIRE(t.rows == 10);
  REQUIRE(t.cols == cols);
  std::set<float> firsts;
  for (std::size_t r = 0; r < t.rows; ++r) {
    const float first = t.values[r * cols];
    CHECK(std::fmod(first - 1, static_cast<float>(cols)) == 0);  // starts a row of the file
    for (std::size_t c = 0; c < cols; ++c)
      CHECK(t.values[r * cols + c] == first + static_cast<float>(c));
    if (r > 0) CHECK(first > t.values[(r - 1) * cols]);  // file order
    firsts.insert(first);
  }
  CHECK(firsts.size() == 10);
  CHECK(d->draw(40, 3).values == t.values);  // deterministic
  CHECK(d->draw(40, 4).values != t.values);  // and the seed matters
  // Otherwise single values, as one row, in file order.
  const sqb::Tensor e = d->draw(37, 3);
  REQUIRE((e.rows == 1 && e.cols == 37));
  CHECK(std::is_sorted(e.values.begin(), e.values.end()));
  CHECK(std::set<float>(e.values.begin(), e.values.end()).size() == 37);
  // Every row is equally likely: over many seeds each of 50 rows is picked about 10/50 of the time.
  std::vector<int> hits(rows, 0);
  const int trials = 2000;
  for (int s = 0; s < trials; ++s) {
    const sqb::Tensor u = d->draw(40, static_cast<std::uint64_t>(s));
    for (std::size_t r = 0; r < u.rows; ++r)
      ++hits[static_cast<std::size_t>(u.values[r * cols] - 1) / cols];
  }
  // Binomial(2000, 0.2): mean 400, sd ~17.9; 6 sd bounds.
  for (const int h : hits) {
    CHECK(h > 400 - 108);
    CHECK(h < 400 + 108);
  }
}

TEST_CASE("npy source: scale multiplies, and an overflow is an error naming the place", "[npy-source]") {
  TempDir dir;
  save(dir.path / "a.npy", {2, 2}, {1, -2, 3e37f, 4});
  CHECK(make("npy path=a.npy scale=0.5", dir.path)->draw(0, 0).values ==
        std::vector<float>{0.5f, -1, 1.5e37f, 2});
  CHECK_THROWS_WITH(
      make("npy path=a.npy scale=100", dir.path),
      Catch::Contains("scale=100 takes the value 3.00000011e+37 at row 1, col 0 beyond float32's range"));
  CHECK_THROWS_WITH(make("npy path=a.npy scale=0", dir.path), Catch::Contains("parameter 'scale' must be"));
}

TEST_CASE("npy source: non-finite values are an error with count and first index, or dropped",
          "[npy-source]") {
  TempDir dir;
  save(dir.path / "a.npy", {3, 4}, {1, 2, 3, 4, 5, NAN, 7, INFINITY, 9, 10, -INFINITY, 12});
  CHECK_THROWS_WITH(
      make("npy path=a.npy", dir.path),
      Catch::Contains("a.npy: 3 non-finite values (NaN or +-Inf) among 12; the first is NaN at index "
                      "(1, 1) (flat 5); add nonfinite=drop to drop them") &&
          Catch::StartsWith("distribution \"npy path=a.npy\": "));
  const auto d = make("npy path=a.npy nonfinite=drop", dir.path);
  const sqb::Tensor t = d->draw(0, 0);
  CHECK((t.rows == 1 && t.cols == 9));
  CHECK(t.values == std::vector<float>{1, 2, 3, 4, 5, 7, 9, 10, 12});
  CHECK(data_columns(*d) == std::vector<sqb::Col>{sqb::Col::dropped_nonfinite});
  CHECK(describe(*d) == std::vector<double>{3});
  CHECK_THROWS_WITH(d->check_n(10), Catch::Contains("more than the 9 values"));
  // A subsample draws from the kept values.
  CHECK(d->draw(5, 1).cols == 5);
  // Nothing to drop: the shape is kept and the count is 0.
  save(dir.path / "b.npy", {2, 2}, {1, 2, 3, 4});
  const auto clean = make("npy path=b.npy nonfinite=drop", dir.path);
  CHECK(clean->draw(0, 0).rows == 2);
  CHECK(describe(*clean) == std::vector<double>{0});
  save(dir.path / "c.npy", {2}, {NAN, -INFINITY});
  CHECK_THROWS_WITH(make("npy path=c.npy nonfinite=drop", dir.path),
                    Catch::Contains("all 2 values are NaN or +-Inf"));
}

TEST_CASE("npy source: integer files convert exactly or fail", "[npy-source]") {
  TempDir dir;
  const std::vector<std::size_t> shape = {2, 3};
  sqb::npy::write(dir.path / "i8.npy", shape, std::vector<std::int32_t>{-128, -1, 0, 1, 2, 127},
                  {sqb::npy::DType::int8});
  CHECK(make("npy path=i8.npy", dir.path)->draw(0, 0).values == std::vector<float>{-128, -1, 0, 1, 2, 127});
  sqb::npy::write(dir.path / "i32.npy", shape,
                  std::vector<std::int32_t>{0, 16777216, -16777216, 16777217, 0, 0},
                  {sqb::npy::DType::int32});
  CHECK_THROWS_WITH(make("npy path=i32.npy", dir.path),
                    Catch::Contains("int32 value 16777217 at flat index 3 is not exactly representable"));
}

TEST_CASE("npy source: spec errors and bad files name the spec and the file", "[npy-source]") {
  TempDir dir;
  CHECK_THROWS_WITH(make("npy", dir.path), Catch::Contains("parameter 'path' is required"));
  CHECK_THROWS_WITH(
      make("npy path=x.npy layout=nchw", dir.path),
      Catch::Contains("parameter 'layout' 'nchw' is not a layout; valid layouts: rows|oihw|hwio|auto"));
  CHECK_THROWS_WITH(make("npy path=x.npy layout=*.npy:oihw,nchw", dir.path),
                    Catch::Contains("parameter 'layout' rule 'nchw': 'nchw' is not a layout"));
  CHECK_THROWS_WITH(make("npy glob=*.npy", dir.path),
                    Catch::Contains("parameter 'glob'") && Catch::Contains("expand_source_spec"));
  CHECK_THROWS_WITH(
      make("npy path=missing.npy", dir.path),
      Catch::StartsWith("distribution \"npy path=missing.npy\": " + (dir.path / "missing.npy").string() +
                        ": cannot open the .npy file (No such file or directory)"));
  std::ofstream(dir.path / "junk.npy") << "junk";
  CHECK_THROWS_WITH(make("npy path=junk.npy", dir.path), Catch::Contains("junk.npy: not a .npy file"));
  save(dir.path / "v.npy", {5}, iota(5));
  CHECK_THROWS_WITH(make("npy path=v.npy layout=oihw", dir.path),
                    Catch::Contains("layout=oihw needs a weight"));
}

namespace {

// The specs (and labels) a distribution expands to.
std::vector<std::string> expand(const std::string& spec, const fs::path& base,
                                std::vector<std::string>* labels = nullptr) {
  std::vector<std::string> out;
  for (const sqb::SourceSpec& s : sqb::expand_source_spec(spec, sqb::SourceContext{base})) {
    out.push_back(s.spec);
    if (labels) labels->push_back(s.label);
  }
  return out;
}

}  // namespace

TEST_CASE("expand_source_spec (npy): one spec per matching file, sorted, path= in glob='s place",
          "[npy-source]") {
  TempDir dir;
  fs::create_directories(dir.path / "w" / "sub.npy");  // a folder never matches
  for (const char* name : {"b.npy", "a.npy", "c.npy.bak", ".hidden.npy", "B.npy"})
    save(dir.path / "w" / name, {2}, {1, 2});
  std::vector<std::string> labels;
  const auto specs = expand("npy layout=rows glob=w/*.npy scale=2", dir.path, &labels);
  CHECK(labels == std::vector<std::string>{"B", "a", "b"});  // the file stems
  CHECK(specs == std::vector<std::string>{"npy layout=rows path=w/B.npy scale=2",
                                          "npy layout=rows path=w/a.npy scale=2",
                                          "npy layout=rows path=w/b.npy scale=2"});
  for (const std::string& s : specs)
    CHECK_NOTHROW(make(s, dir.path));
  CHECK(expand("npy glob=" + (dir.path / "w" / "?.npy").string(), "/elsewhere").size() == 3);
  CHECK(expand("npy glob=w/.*.npy", dir.path) == std::vector<std::string>{"npy path=w/.hidden.npy"});
  // Other specs pass through untouched.
  CHECK(expand("gaussian std=2", dir.path) == std::vector<std::string>{"gaussian std=2"});
  CHECK(expand("npy path=w/a.npy", dir.path) == std::vector<std::string>{"npy path=w/a.npy"});
  // Layout rules become the layout each file gets; label= leaves the spec ({} is the default label).
  labels.clear();
  CHECK(expand("npy glob=w/*.npy layout=[ab].npy:hwio,oihw label=w:{}", dir.path, &labels) ==
        std::vector<std::string>{"npy path=w/B.npy layout=oihw", "npy path=w/a.npy layout=hwio",
                                 "npy path=w/b.npy layout=hwio"});
  CHECK(labels == std::vector<std::string>{"w:B", "w:a", "w:b"});
  CHECK_THROWS_WITH(expand("npy glob=w/*.npy layout=a.npy:hwio", dir.path),
                    Catch::Contains("layout=a.npy:hwio: no rule matches 'B.npy'"));
  CHECK_THROWS_WITH(expand("npy glob=w/*.pt", dir.path), Catch::Contains("matches no file in"));
  CHECK_THROWS_WITH(expand("npy glob=nowhere/*.npy", dir.path),
                    Catch::Contains("the folder " + (dir.path / "nowhere/").string() + " does not exist"));
  CHECK_THROWS_WITH(expand("npy glob=*/a.npy", dir.path),
                    Catch::Contains("wildcards are allowed in the file name only"));
  CHECK_THROWS_WITH(expand("npy glob=w/", dir.path), Catch::Contains("names a folder"));
  CHECK_THROWS_WITH(expand("npy path=x.npy glob=w/*.npy", dir.path),
                    Catch::Contains("give path= or glob=, not both"));
  save(dir.path / "w" / "with blank.npy", {2}, {1, 2});
  CHECK_THROWS_WITH(expand("npy glob=w/*.npy", dir.path), Catch::Contains("holds a blank"));
}

TEST_CASE("sources attach importance weights: a file of the same shape, square or lognormal",
          "[npy-source][weights]") {
  TempDir dir;
  save(dir.path / "w.npy", {2, 3}, {1, -2, 3, 4, -5, 6});
  save(dir.path / "imp.npy", {2, 3}, {0.5f, 1, 0, 2, 3, 4});
  // hwio lays out both the same way: rows = last axis.
  const sqb::Tensor t = make("npy path=w.npy weights=imp.npy layout=hwio", dir.path)->draw(0, 0);
  CHECK(t.values == std::vector<float>{1, 4, -2, -5, 3, 6});
  CHECK(t.weights == std::vector<float>{0.5f, 2, 1, 3, 0, 4});
  // A subsample takes the weights of the values it keeps.
  const sqb::Tensor s = make("npy path=w.npy weights=imp.npy", dir.path)->draw(3, 5);
  REQUIRE(s.weights.size() == 3);
  const std::vector<float> all = {1, -2, 3, 4, -5, 6}, imp = {0.5f, 1, 0, 2, 3, 4};
  for (std::size_t i = 0; i < 3; ++i) {
    const auto at = std::find(all.begin(), all.end(), s.values[i]) - all.begin();
    CHECK(s.weights[i] == imp[static_cast<std::size_t>(at)]);
  }
  const sqb::Tensor sq = make("npy path=w.npy weights=square", dir.path)->draw(0, 0);
  CHECK(sq.weights == std::vector<float>{1, 4, 9, 16, 25, 36});
  // lognormal: seeded, positive, and the data is the same as without weights.
  const auto g = sqb::make_source("gaussian weights=lognormal");
  const sqb::Tensor a = g->draw(1000, 3), b = g->draw(1000, 3);
  CHECK(a.weights == b.weights);
  CHECK(a.values == sqb::make_source("gaussian")->draw(1000, 3).values);
  CHECK(std::all_of(a.weights.begin(), a.weights.end(), [](float w) { return w > 0; }));
  // Bad weights are errors naming the weights file.
  save(dir.path / "short.npy", {3}, {1, 2, 3});
  CHECK_THROWS_WITH(make("npy path=w.npy weights=short.npy", dir.path)->draw(0, 0),
                    Catch::Contains("short.npy") && Catch::Contains("must match"));
  save(dir.path / "neg.npy", {2, 3}, {1, 1, -1, 1, 1, 1});
  CHECK_THROWS_WITH(make("npy path=w.npy weights=neg.npy", dir.path),
                    Catch::Contains("neg.npy") && Catch::Contains("finite and >= 0"));
  CHECK_THROWS_WITH(sqb::make_source("gaussian weights=imp.npy"), Catch::Contains("'weights'"));
}
