#include "detail/nearest_reference.hpp"

namespace sqb::detail {
namespace {

// |x - l| exactly, as an unevaluated sum hi + lo (Knuth's TwoSum of x and -l): a double alone cannot tell
// 1/6 - 2^-149 from 1/6, so plain double distances would tie where the true distances differ.
struct Distance {
  double hi, lo;
};

Distance distance(double x, double l) {
  const double s = x - l;
  const double bb = s - x;
  double err = (x - (s - bb)) + (-l - bb);
  double hi = s;
  if (hi < 0 || (hi == 0 && err < 0)) {
    hi = -hi;
    err = -err;
  }
  return {hi, err};
}

bool operator<(const Distance& a, const Distance& b) {
  return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}
bool operator==(const Distance& a, const Distance& b) {
  return a.hi == b.hi && a.lo == b.lo;
}

}  // namespace

std::size_t nearest_level_reference(std::span<const float> levels, float x) {
  std::size_t best = 0;
  Distance best_d = distance(x, levels[0]);
  for (std::size_t i = 1; i < levels.size(); ++i) {
    const Distance d = distance(x, levels[i]);
    if (d < best_d || (d == best_d && levels[i] == levels[best] && x > levels[i])) {
      best = i;
      best_d = d;
    }
  }
  return best;
}

}  // namespace sqb::detail
