// Datasets from IDX images and labels (MNIST's four-file layout).

#include <algorithm>
#include <filesystem>
#include <string>

#include "sqb/error.hpp"
#include "sqb/idx.hpp"
#include "sqb/task.hpp"

namespace sqb::task {

namespace {

// `<dir>/<name>.gz`, else `<dir>/<name>`; a missing pair names both paths and where the files come from.
std::filesystem::path find_one(const std::filesystem::path& dir, std::string_view name) {
  const std::filesystem::path gz = dir / (std::string(name) + ".gz");
  const std::filesystem::path plain = dir / std::string(name);
  std::error_code ec;
  if (std::filesystem::exists(gz, ec)) return gz;
  if (std::filesystem::exists(plain, ec)) return plain;
  std::string msg = gz.string() + ": no such file (nor " + plain.string() + ")";
  if (dir == std::filesystem::path(kFashionMnistDir)) {
    msg += "; Fashion-MNIST comes with the Debian package " + std::string(kFashionMnistPackage) +
           " (apt-get install " + std::string(kFashionMnistPackage) + ", or scripts/setup)";
  } else {
    msg += "; a dataset folder holds MNIST's four files " + std::string(kTrainImages) + ", " +
           std::string(kTrainLabels) + ", " + std::string(kTestImages) + ", " + std::string(kTestLabels) +
           " (each plain or .gz), as Fashion-MNIST from the Debian package " +
           std::string(kFashionMnistPackage) + " in " + std::string(kFashionMnistDir);
  }
  throw Error(msg);
}

idx::Array read_one(const std::filesystem::path& dir, std::string_view name, std::string& used) {
  const std::filesystem::path path = find_one(dir, name);
  used = path.string();
  return idx::read(path);
}

// Images of rank 3 (count x height x width) and labels of rank 1 (count), as many of each.
void check_pair(const std::vector<std::size_t>& images, const std::string& in,
                const std::vector<std::size_t>& labels, const std::string& ln) {
  if (images.size() != 3) {
    throw Error(in + ": the images file has rank " + std::to_string(images.size()) + " (" +
                idx::dims_text(images) + "); images must have rank 3 (count x height x width)");
  }
  if (labels.size() != 1) {
    throw Error(ln + ": the labels file has rank " + std::to_string(labels.size()) + " (" +
                idx::dims_text(labels) + "); labels must have rank 1 (count)");
  }
  if (labels[0] != images[0]) {
    throw Error(ln + ": " + std::to_string(labels[0]) + " labels for " + std::to_string(images[0]) +
                " images (" + in + "); the counts must agree");
  }
}

// Test images of the training images' height and width.
void check_image_size(const std::vector<std::size_t>& train, const std::string& train_name,
                      const std::vector<std::size_t>& test, const std::string& test_name) {
  if (train[1] != test[1] || train[2] != test[2]) {
    throw Error(test_name + ": test images are " + std::to_string(test[1]) + " x " + std::to_string(test[2]) +
                ", the training images (" + train_name + ") " + std::to_string(train[1]) + " x " +
                std::to_string(train[2]));
  }
}

}  // namespace

DatasetShape dataset_shape(const std::filesystem::path& dir) {
  const std::vector<std::filesystem::path> files = dataset_files(dir);
  std::vector<idx::Header> h;
  DatasetShape s;
  for (const std::filesystem::path& f : files) {
    h.push_back(idx::read_header(f));
    std::error_code ec;
    s.largest_stored = std::max<std::uint64_t>(s.largest_stored, std::filesystem::file_size(f, ec));
    s.largest_bytes = std::max(s.largest_bytes, h.back().bytes);
  }
  check_pair(h[0].dims, files[0].string(), h[1].dims, files[1].string());
  check_pair(h[2].dims, files[2].string(), h[3].dims, files[3].string());
  check_image_size(h[0].dims, files[0].string(), h[2].dims, files[2].string());
  s.train = h[0].dims[0];
  s.test = h[2].dims[0];
  s.height = h[0].dims[1];
  s.width = h[0].dims[2];
  return s;
}

std::vector<std::filesystem::path> dataset_files(const std::filesystem::path& dir) {
  return {find_one(dir, kTrainImages), find_one(dir, kTrainLabels), find_one(dir, kTestImages),
          find_one(dir, kTestLabels)};
}

Dataset Dataset::head(std::size_t n) const {
  Dataset d;
  d.count = std::min(n, count);
  d.height = height;
  d.width = width;
  d.pixels.assign(pixels.begin(), pixels.begin() + static_cast<std::ptrdiff_t>(d.count * features()));
  d.labels.assign(labels.begin(), labels.begin() + static_cast<std::ptrdiff_t>(d.count));
  return d;
}

Dataset make_dataset(const idx::Array& images, std::string_view images_name, const idx::Array& labels,
                     std::string_view labels_name) {
  const std::string in(images_name), ln(labels_name);
  check_pair(images.dims, in, labels.dims, ln);
  for (std::size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= kClasses) {
      throw Error(ln + ": label " + std::to_string(i) + " is " + std::to_string(labels.data[i]) +
                  "; labels must be 0.." + std::to_string(kClasses - 1) + " (" + std::to_string(kClasses) +
                  " classes)");
    }
  }
  Dataset d;
  d.count = images.dims[0];
  d.height = images.dims[1];
  d.width = images.dims[2];
  d.pixels.resize(images.data.size());
  // torchvision's ToTensor: float(byte) / 255 in float32.
  std::transform(images.data.begin(), images.data.end(), d.pixels.begin(),
                 [](std::uint8_t b) { return static_cast<float>(b) / 255.0f; });
  d.labels = labels.data;
  return d;
}

DataSplit load_dataset(const std::filesystem::path& dir) {
  std::string train_img, train_lab, test_img, test_lab;
  const idx::Array ti = read_one(dir, kTrainImages, train_img);
  const idx::Array tl = read_one(dir, kTrainLabels, train_lab);
  const idx::Array si = read_one(dir, kTestImages, test_img);
  const idx::Array sl = read_one(dir, kTestLabels, test_lab);
  DataSplit s{make_dataset(ti, train_img, tl, train_lab), make_dataset(si, test_img, sl, test_lab)};
  check_image_size(ti.dims, train_img, si.dims, test_img);
  return s;
}

}  // namespace sqb::task
