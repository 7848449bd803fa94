// The IDX reader (plain and gzip), the dataset builder and loader: hand-made files parse to what was written,
// every malformed file gives an Error naming the file and the reason, and the installed Fashion-MNIST has the
// published shape, class balance and pixel statistics.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <numeric>
#include <string>
#include <vector>

#include "idx_helpers.hpp"
#include "npy_helpers.hpp"
#include "requirements.hpp"
#include "sqb/error.hpp"
#include "sqb/idx.hpp"
#include "sqb/task.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using sqbtest::bytes_of;
using sqbtest::gzip;
using sqbtest::raw_idx;
using TempDir = sqbtest::ScratchDir;

namespace {

std::string bytes_iota(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>(i * 7 % 256);
  return s;
}

sqb::idx::Array parse(const std::string& bytes, std::size_t max_bytes = sqb::idx::kDefaultMaxBytes) {
  return sqb::idx::parse(bytes_of(bytes), "f.idx", max_bytes);
}

void check_error(const std::string& bytes, const std::string& reason,
                 std::size_t max_bytes = sqb::idx::kDefaultMaxBytes) {
  INFO("expected: " << reason);
  REQUIRE_THROWS_MATCHES(parse(bytes, max_bytes), sqb::Error,
                         Catch::Matchers::Predicate<sqb::Error>(
                             [&](const sqb::Error& e) {
                               const std::string m = e.what();
                               return m.rfind("f.idx: ", 0) == 0 && m.find(reason) != std::string::npos;
                             },
                             "message starts with the name and contains \"" + reason + "\""));
}

}  // namespace

TEST_CASE("idx: plain and gzip files parse to the dims and bytes written", "[task][idx]") {
  const std::string data = bytes_iota(3 * 4 * 5);
  const std::string file = raw_idx({3, 4, 5}, data);
  for (const std::string& bytes : {file, gzip(file)}) {
    const sqb::idx::Array a = parse(bytes);
    CHECK(a.dims == std::vector<std::size_t>{3, 4, 5});
    REQUIRE(a.size() == data.size());
    CHECK(std::equal(a.data.begin(), a.data.end(), data.begin(),
                     [](std::uint8_t x, char y) { return x == static_cast<std::uint8_t>(y); }));
  }
  // Concatenated gzip members are one stream (as gunzip reads them), split anywhere.
  for (const std::size_t cut : {std::size_t{1}, std::size_t{10}, std::size_t{16}, file.size() - 1}) {
    const sqb::idx::Array a = parse(gzip(file.substr(0, cut)) + gzip(file.substr(cut)));
    CHECK(a.dims == std::vector<std::size_t>{3, 4, 5});
    CHECK(a.size() == data.size());
  }
  // Rank 1 (labels) and a big rank.
  CHECK(parse(raw_idx({7}, bytes_iota(7))).dims == std::vector<std::size_t>{7});
  CHECK(parse(raw_idx({1, 1, 1, 1, 1, 1, 2}, "ab")).dims.size() == 7);
  // A larger file, so that decompression runs over several output chunks.
  const std::string big = raw_idx({300, 28, 28}, bytes_iota(300 * 28 * 28));
  CHECK(parse(gzip(big)).size() == 300 * 28 * 28);
}

TEST_CASE("idx: malformed files name the file and the reason", "[task][idx]") {
  const std::string good = raw_idx({2, 3}, "abcdef");
  check_error("", "empty");
  check_error(std::string("\x01\x00\x08\x01", 4) + std::string(4, '\0'), "not an IDX file");
  check_error(std::string("\x00\x01\x08\x01", 4), "not an IDX file");
  check_error("PK\x03\x04zipfile", "not an IDX file");
  check_error(raw_idx({2, 3}, std::string(24, 'x'), 0x0D), "float32 (type code 0x0D)");
  check_error(raw_idx({2, 3}, std::string(6, 'x'), 0x09), "signed bytes (type code 0x09)");
  check_error(raw_idx({2, 3}, "abcdef", 0x07), "unknown IDX type code 0x07");
  check_error(raw_idx({}, "", 0x08, 0), "rank 0");
  check_error(good.substr(0, 3), "truncated header");
  check_error(good.substr(0, 9), "truncated header");
  check_error(raw_idx({2, 0}, ""), "dimension 1 is 0");
  check_error(raw_idx({0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, ""), "overflow");
  check_error(raw_idx({1000, 1000}, ""), "limit", 4096);
  check_error(good.substr(0, good.size() - 1),
              "truncated data: the dimensions 2 x 3 need 6 bytes, the file has 5");
  check_error(good + "z", "1 byte after the data");
  check_error(good + "zzz", "3 bytes after the data");

  // gzip: a lying header claims far more than the stream holds (and the cap is checked before inflating on).
  check_error(gzip(raw_idx({100000, 1000}, "abc")), "limit", 1 << 20);
  check_error(gzip(raw_idx({1000, 1000}, "abc")), "truncated data");
  check_error(gzip(good + "zz"), "after the data");
  check_error(gzip(good.substr(0, 7)), "truncated header");
  const std::string gz = gzip(good);
  check_error(gz.substr(0, gz.size() - 4), "truncated gzip stream");
  check_error(gz.substr(0, 12), "truncated gzip stream");
  check_error(gz + "garbage", "after the gzip stream");
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] = static_cast<char>(bad_crc[bad_crc.size() - 6] ^ 0x55);
  check_error(bad_crc, "corrupt gzip stream");
  std::string bad_method = gz;
  bad_method[2] = 7;  // compression method other than deflate
  check_error(bad_method, "corrupt gzip stream");
  std::string bad_block = gz;
  bad_block[10] = static_cast<char>(0xFF);  // first deflate block header: reserved block type 3
  check_error(bad_block, "corrupt gzip stream");
}

TEST_CASE("idx: read() reports missing files, folders and oversized files", "[task][idx]") {
  TempDir dir;
  const fs::path f = dir.write("x.idx", raw_idx({2}, "ab"));
  CHECK(sqb::idx::read(f).dims == std::vector<std::size_t>{2});
  REQUIRE_THROWS_WITH(sqb::idx::read(dir.path / "nope.idx"),
                      StartsWith((dir.path / "nope.idx").string()) && Contains("cannot open"));
  REQUIRE_THROWS_WITH(sqb::idx::read(dir.path),
                      StartsWith(dir.path.string()) && Contains("not a regular file"));
  REQUIRE_THROWS_WITH(sqb::idx::read(f, 5), Contains("limit"));
  REQUIRE_THROWS_WITH(sqb::idx::read(dir.write("bad.idx", "\x01\x02")),
                      StartsWith((dir.path / "bad.idx").string()));
}

TEST_CASE("idx: read_header gives the dims without the data and names a corrupt or truncated file",
          "[task][idx]") {
  TempDir dir;
  const std::string file = raw_idx({300, 28, 28}, bytes_iota(300 * 28 * 28));
  const std::uint64_t bytes = 16 + 300 * 28 * 28;
  for (const std::string& stored : {file, gzip(file)}) {
    const sqb::idx::Header h = sqb::idx::read_header(dir.write("f.idx", stored));
    CHECK(h.dims == std::vector<std::size_t>{300, 28, 28});
    CHECK(h.bytes == bytes);
  }
  // Two gzip members: the trailer holds the second's length only, so the whole file is read, and is valid.
  const sqb::idx::Header two =
      sqb::idx::read_header(dir.write("two.gz", gzip(file.substr(0, 1000)) + gzip(file.substr(1000))));
  CHECK(two.dims == std::vector<std::size_t>{300, 28, 28});
  CHECK(two.bytes == bytes);
  const auto fails = [&](const std::string& stored, const std::string& reason) {
    const fs::path p = dir.write("bad.idx", stored);
    INFO(reason);
    REQUIRE_THROWS_WITH(sqb::idx::read_header(p), StartsWith(p.string() + ": ") && Contains(reason));
  };
  // A wrong magic number, plain or compressed; these used to pass as the sizes of 41-74 GiB datasets.
  fails("\x12\x34\x08\x01" + file.substr(4), "not an IDX file: it starts with 0x12 0x34");
  fails(gzip("\x12\x34\x08\x01" + file.substr(4)), "not an IDX file: it starts with 0x12 0x34");
  // A .gz cut short: its last four bytes are not a length (they were read as one).
  const std::string gz = gzip(file);
  fails(gz.substr(0, gz.size() / 2), "truncated gzip stream");
  fails(file.substr(0, file.size() - 5), "truncated data");
  fails(file + "xyz", "3 bytes after the data");
  fails(gzip(file + "xyz"), "3 bytes after the data");
  fails("", "the file is empty");
  fails(std::string("\x00\x00\x08", 3), "truncated header");
  REQUIRE_THROWS_WITH(sqb::idx::read_header(dir.path / "nope.idx"), Contains("cannot open"));
}

TEST_CASE("task: dataset_shape reads the four headers and checks them as load_dataset does", "[task][idx]") {
  TempDir dir;
  dir.write("train-images-idx3-ubyte.gz", gzip(raw_idx({3, 2, 5}, bytes_iota(30))));
  dir.write("train-labels-idx1-ubyte", raw_idx({3}, std::string("\x01\x02\x03", 3)));
  dir.write("t10k-images-idx3-ubyte", raw_idx({2, 2, 5}, bytes_iota(20)));
  dir.write("t10k-labels-idx1-ubyte.gz", gzip(raw_idx({2}, std::string("\x04\x05", 2))));
  const sqb::task::DatasetShape s = sqb::task::dataset_shape(dir.path);
  CHECK(s.train == 3);
  CHECK(s.test == 2);
  CHECK(s.features() == 10);
  CHECK(s.largest_bytes == 16 + 30);
  CHECK(s.largest_stored == fs::file_size(dir.path / "train-images-idx3-ubyte.gz"));
  const auto fails = [&](const std::string& reason) {
    INFO(reason);
    REQUIRE_THROWS_WITH(sqb::task::dataset_shape(dir.path), Contains(reason));
    REQUIRE_THROWS_WITH(sqb::task::load_dataset(dir.path), Contains(reason));
  };
  SECTION("labels that disagree with the images") {
    dir.write("train-labels-idx1-ubyte", raw_idx({4}, std::string("\x01\x02\x03\x04", 4)));
    fails("4 labels for 3 images");
  }
  SECTION("test images of another size") {
    dir.write("t10k-images-idx3-ubyte", raw_idx({2, 5, 2}, bytes_iota(20)));
    fails("test images are 5 x 2, the training images");
  }
  SECTION("a truncated file") {
    const std::string gz = gzip(raw_idx({3, 2, 5}, bytes_iota(30)));
    dir.write("train-images-idx3-ubyte.gz", gz.substr(0, gz.size() - 6));
    fails((dir.path / "train-images-idx3-ubyte.gz").string() + ": truncated gzip stream");
  }
}

TEST_CASE("task: make_dataset scales pixels and checks ranks, counts and labels", "[task][idx]") {
  const sqb::idx::Array images =
      parse(raw_idx({2, 2, 3}, std::string("\x00\x33\xff\x01\x02\x80\x00\x00\x00\x00\x00\x00", 12)));
  const sqb::idx::Array labels = parse(raw_idx({2}, std::string("\x09\x00", 2)));
  const sqb::task::Dataset d = sqb::task::make_dataset(images, "img", labels, "lab");
  CHECK(d.count == 2);
  CHECK(d.height == 2);
  CHECK(d.width == 3);
  CHECK(d.features() == 6);
  REQUIRE(d.pixels.size() == 12);
  // byte / 255 in float32, as torchvision's ToTensor: exact at 0 and 255.
  CHECK(d.pixels[0] == 0.0f);
  CHECK(d.pixels[1] == 51.0f / 255.0f);
  CHECK(d.pixels[2] == 1.0f);
  CHECK(d.pixels[5] == 128.0f / 255.0f);
  CHECK(d.labels == std::vector<std::uint8_t>{9, 0});
  CHECK(d.head(1).count == 1);
  CHECK(d.head(1).pixels.size() == 6);
  CHECK(d.head(5).count == 2);

  REQUIRE_THROWS_WITH(sqb::task::make_dataset(labels, "img", labels, "lab"),
                      StartsWith("img: ") && Contains("rank 1") && Contains("3"));
  REQUIRE_THROWS_WITH(sqb::task::make_dataset(images, "img", images, "lab"),
                      StartsWith("lab: ") && Contains("rank 3"));
  const sqb::idx::Array three = parse(raw_idx({3}, std::string("\x01\x02\x03", 3)));
  REQUIRE_THROWS_WITH(sqb::task::make_dataset(images, "img", three, "lab"),
                      StartsWith("lab: ") && Contains("3 labels") && Contains("2 images"));
  const sqb::idx::Array bad = parse(raw_idx({2}, std::string("\x01\x0a", 2)));
  REQUIRE_THROWS_WITH(sqb::task::make_dataset(images, "img", bad, "lab"),
                      StartsWith("lab: ") && Contains("label 1 is 10") && Contains("0..9"));
}

TEST_CASE("task: load_dataset reads a folder of plain or gzip files and names what is missing",
          "[task][idx]") {
  TempDir dir;
  const std::string train_img = raw_idx({3, 2, 2}, bytes_iota(12));
  const std::string test_img = raw_idx({2, 2, 2}, bytes_iota(8));
  dir.write("train-images-idx3-ubyte.gz", gzip(train_img));
  dir.write("train-labels-idx1-ubyte", raw_idx({3}, std::string("\x01\x02\x03", 3)));
  dir.write("t10k-images-idx3-ubyte", test_img);
  SECTION("missing test labels") {
    REQUIRE_THROWS_WITH(sqb::task::load_dataset(dir.path),
                        Contains((dir.path / "t10k-labels-idx1-ubyte.gz").string()) &&
                            Contains((dir.path / "t10k-labels-idx1-ubyte").string()) &&
                            Contains("dataset-fashion-mnist"));
  }
  SECTION("complete") {
    dir.write("t10k-labels-idx1-ubyte.gz", gzip(raw_idx({2}, std::string("\x04\x05", 2))));
    const sqb::task::DataSplit s = sqb::task::load_dataset(dir.path);
    CHECK(s.train.count == 3);
    CHECK(s.test.count == 2);
    CHECK(s.train.labels == std::vector<std::uint8_t>{1, 2, 3});
    CHECK(s.test.labels == std::vector<std::uint8_t>{4, 5});
    CHECK(s.test.pixels[7] == static_cast<float>(7 * 7) / 255.0f);
  }
  SECTION("train and test images of different sizes") {
    dir.write("t10k-labels-idx1-ubyte.gz", gzip(raw_idx({2}, std::string("\x04\x05", 2))));
    dir.write("t10k-images-idx3-ubyte", raw_idx({2, 1, 4}, bytes_iota(8)));
    REQUIRE_THROWS_WITH(sqb::task::load_dataset(dir.path), Contains("1 x 4") && Contains("2 x 2"));
  }
  SECTION("a corrupt file is named") {
    dir.write("t10k-labels-idx1-ubyte", "\x00\x00\x08");
    REQUIRE_THROWS_WITH(sqb::task::load_dataset(dir.path),
                        StartsWith((dir.path / "t10k-labels-idx1-ubyte").string()));
  }
}

TEST_CASE("task: the installed Fashion-MNIST has the published size, balance and pixel statistics",
          "[task][idx][data]") {
  sqbtest::require_fashion_mnist();
  const sqb::task::DataSplit s = sqb::task::load_dataset();
  CHECK(s.train.count == 60000);
  CHECK(s.test.count == 10000);
  CHECK(s.train.height == 28);
  CHECK(s.train.width == 28);
  // Balanced: 6000 / 1000 images per class.
  std::vector<std::size_t> train_hist(10), test_hist(10);
  for (const auto l : s.train.labels)
    ++train_hist[l];
  for (const auto l : s.test.labels)
    ++test_hist[l];
  CHECK(train_hist == std::vector<std::size_t>(10, 6000));
  CHECK(test_hist == std::vector<std::size_t>(10, 1000));
  // The first labels (ankle boot, t-shirt, ...) and the usual normalisation constants mean 0.2860, std
  // 0.3530.
  CHECK(std::vector<int>(s.train.labels.begin(), s.train.labels.begin() + 5) ==
        std::vector<int>{9, 0, 0, 3, 0});
  CHECK(std::vector<int>(s.test.labels.begin(), s.test.labels.begin() + 5) ==
        std::vector<int>{9, 2, 1, 1, 6});
  double sum = 0, sq = 0;
  for (const float p : s.train.pixels) {
    sum += p;
    sq += static_cast<double>(p) * p;
  }
  const double n = static_cast<double>(s.train.pixels.size());
  CHECK_THAT(sum / n, Catch::Matchers::WithinAbs(0.2860, 1e-4));
  CHECK_THAT(std::sqrt(sq / n - (sum / n) * (sum / n)), Catch::Matchers::WithinAbs(0.3530, 1e-4));
}
