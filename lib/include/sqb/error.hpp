#pragma once
/// \file error.hpp
/// The one exception type for bad input (a config, a spec string, a parameter, a data file or the data
/// itself). The CLI turns it into a message on stderr and exit status 2; anything else escaping is a bug
/// (status 1).

#include <stdexcept>
#include <string>

namespace sqb {

/// Thrown for every user-correctable problem. The message names what was wrong and where (the file, key,
/// parameter or index) and, where there is a closed set, the valid choices.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by a strategy's factory when its spec is valid but cannot serve the K asked for (nf4 at K = 256,
/// say). A sweep skips such cells and says how many it skipped and why.
class NotApplicable : public Error {
 public:
  using Error::Error;
};

}  // namespace sqb
