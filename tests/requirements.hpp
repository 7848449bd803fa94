#pragma once
// What tests need from the machine. Everything scripts/setup installs (Debian's python3 with numpy and torch,
// the dataset-fashion-mnist package) is required: a test case that needs a missing one fails, naming the
// package, because CI installs it and a skip there would pass a test that never ran. Only what no package
// provides (a CPU feature, root, memory that a sanitizer adds) is skipped, with a WARN("SKIPPED: ...") that
// says why and what would run it.

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "cli_helpers.hpp"
#include "sqb/task.hpp"

namespace sqbtest {

/// Debian's interpreter: scripts/setup installs python3-numpy and python3-torch for it (a python3 earlier on
/// PATH, e.g. pyenv's, may have neither).
inline constexpr const char* kPython = "/usr/bin/python3";

/// Fails the running test case unless kPython exists and imports `modules` (comma-separated, e.g.
/// "numpy, torch"; empty: the interpreter alone).
inline void require_python(const std::string& modules = "") {
  const Outcome o =
      shell(std::string(kPython) + " -c 'import sys" + (modules.empty() ? "" : ", " + modules) + "' 2>&1");
  if (o.status != 0) {
    std::string last = o.output;
    while (!last.empty() && last.back() == '\n')
      last.pop_back();
    last = last.substr(last.rfind('\n') + 1);
    FAIL(kPython << (modules.empty() ? " does not run" : " cannot import " + modules) << " (" << last
                 << "): install the Debian packages python3, python3-numpy and python3-torch (scripts/setup "
                    "does; CI has them)");
  }
}

/// Fails the running test case unless the Fashion-MNIST files are where sqb::task looks for them.
inline void require_fashion_mnist() {
  const std::filesystem::path dir{std::string(sqb::task::kFashionMnistDir)};
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    if (!std::filesystem::exists(dir / f))
      FAIL((dir / f).string() << " does not exist: install the Debian package dataset-fashion-mnist "
                                 "(scripts/setup does; CI has it)");
  }
}

}  // namespace sqbtest
