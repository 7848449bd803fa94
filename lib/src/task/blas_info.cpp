// Which BLAS the process actually uses. Armadillo's wrapper library links libblas.so.3, which Debian's
// alternatives point at the reference BLAS or OpenBLAS; asking the dynamic linker where sgemm_ lives gives
// the answer without parsing configuration, and OpenBLAS's own entry points (looked up, never linked) report
// its build and threads.

#include <dlfcn.h>

#include <filesystem>

#include "sqb/task.hpp"

namespace sqb::task {

BlasInfo blas_info() {
  BlasInfo info;
  info.library = "unknown";
  if (void* sym = ::dlsym(RTLD_DEFAULT, "sgemm_")) {
    Dl_info dl{};
    if (::dladdr(sym, &dl) != 0 && dl.dli_fname != nullptr) {
      std::error_code ec;
      const auto real = std::filesystem::canonical(dl.dli_fname, ec);
      info.library = ec ? std::string(dl.dli_fname) : real.string();
    }
  }
  using GetInt = int (*)();
  using GetText = char* (*)();
  if (auto f = reinterpret_cast<GetInt>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads")))
    info.threads = f();
  if (auto f = reinterpret_cast<GetText>(::dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    if (const char* c = f()) info.config = c;
  }
  return info;
}

bool set_blas_threads(int n) {
  using SetInt = void (*)(int);
  auto f = reinterpret_cast<SetInt>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (f == nullptr || n < 1) return false;
  f(n);
  return true;
}

}  // namespace sqb::task
