#pragma once
/// \file version.hpp
/// Build provenance, baked in at configure time.

#include <string_view>

namespace sqb {

std::string_view version();     ///< "0.1.0"
std::string_view git_sha();     ///< short SHA of the source tree at configure time, or "unknown"
std::string_view build_type();  ///< CMAKE_BUILD_TYPE, e.g. "Release"
bool debug_build();  ///< true when assertions are on (NDEBUG not defined): timings are not meaningful
std::string_view compiler();  ///< e.g. "GNU 12.2.0"
std::string_view compile_flags();
std::string_view source_dir();  ///< the source tree this binary was configured from
std::string_view boost_version();
std::string_view armadillo_version();
std::string_view benchmark_version();  ///< Google Benchmark found at configure time ("not found" if none)

}  // namespace sqb
