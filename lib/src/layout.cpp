// Layout words, layout=auto, per-tensor layout rules, and N-D <-> rows x cols (contract in sqb/layout.hpp).

#include "sqb/layout.hpp"

#include <vector>

#include "sqb/error.hpp"
#include "sqb/npy.hpp"
#include "sqb/safetensors.hpp"

namespace sqb {

namespace {

enum class Axis { none, first, last };

const char* axis_text(Axis a) {
  return a == Axis::first ? "PyTorch-style [out, in, ...] (rows = first axis)"
                          : "TensorFlow-style [..., in, out] (rows = last axis)";
}

// A convolution's spatial extent: AlexNet's 11 x 11 is the largest kernel in common use, and channel counts
// this small are rare enough that a pair of them is no clue at all.
constexpr std::size_t kSmallAxis = 11;

constexpr std::string_view kWords = "rows|oihw|hwio|auto";

std::string shape_text(std::span<const std::size_t> shape) {
  return npy::shape_text(shape);
}

}  // namespace

std::optional<Layout> layout_named(std::string_view word) {
  if (word == "rows") return Layout::rows;
  if (word == "oihw") return Layout::oihw;
  if (word == "hwio") return Layout::hwio;
  return std::nullopt;
}

std::string_view layout_word(Layout layout) {
  switch (layout) {
    case Layout::rows:
      return "rows";
    case Layout::oihw:
      return "oihw";
    case Layout::hwio:
      return "hwio";
  }
  return "rows";
}

Layout auto_layout(std::string_view name, std::span<const std::size_t> shape, std::string_view framework,
                   std::string_view what) {
  if (shape.size() <= 1) return Layout::rows;  // one row, whatever the framework
  struct Clue {
    Axis axis;
    std::string says;
  };
  std::vector<Clue> clues;
  if (framework == "pt" || framework == "mlx") {
    clues.push_back({Axis::first, "the file's format \"" + std::string(framework) + "\""});
  } else if (framework == "tf" || framework == "flax" || framework == "jax") {
    clues.push_back({Axis::last, "the file's format \"" + std::string(framework) + "\""});
  }
  const std::size_t cut = name.find_last_of("./");
  const std::string_view last = cut == std::string_view::npos ? name : name.substr(cut + 1);
  if (last == "weight") {
    clues.push_back({Axis::first, "the name's last part 'weight' (a PyTorch parameter)"});
  } else if (last == "kernel" || last == "kernel:0") {
    clues.push_back({Axis::last, "the name's last part '" + std::string(last) + "' (a Keras/Flax kernel)"});
  }
  if (shape.size() == 4) {
    const auto small = [&](std::size_t a) { return shape[a] <= kSmallAxis; };
    const bool tail = small(2) && small(3), head = small(0) && small(1);
    if (tail != head) {
      clues.push_back({tail ? Axis::first : Axis::last,
                       "the shape " + shape_text(shape) + " (a " +
                           (tail ? "[out, in, kh, kw]" : "[kh, kw, in, out]") + " convolution kernel)"});
    }
  }
  const std::string head = std::string(what) + ": layout=auto: tensor '" + std::string(name) + "' of shape " +
                           shape_text(shape) + ": ";
  const std::string give =
      "; give layout=oihw (rows = first axis: PyTorch), layout=hwio (rows = last axis: TensorFlow) or "
      "layout=rows, or rules per tensor (layout=PATTERN:LAYOUT,...,LAYOUT)";
  if (clues.empty()) {
    throw Error(head +
                "nothing tells its layout (no framework in the file's metadata, a name ending in "
                "neither 'weight' nor 'kernel', no convolution-shaped axes)" +
                give);
  }
  for (const Clue& c : clues) {
    if (c.axis != clues.front().axis) {
      throw Error(head + clues.front().says + " says " + axis_text(clues.front().axis) + ", but " + c.says +
                  " says " + axis_text(c.axis) + give);
    }
  }
  return clues.front().axis == Axis::first ? Layout::oihw : Layout::hwio;
}

bool is_layout_rules(std::string_view text) {
  return text.find_first_of(",:") != std::string_view::npos;
}

namespace {

// The rules of a layout= value, every one checked (so a typo in a later rule never waits for a name to reach
// it). Messages have no prefix: the callers add theirs.
std::vector<std::pair<std::string_view, std::string_view>> parse_rules(std::string_view rules) {
  std::vector<std::pair<std::string_view, std::string_view>> parsed;  // pattern ("" = every name), word
  if (!is_layout_rules(rules)) {
    if (rules != "auto" && !layout_named(rules)) {
      throw Error("'" + std::string(rules) + "' is not a layout; valid layouts: " + std::string(kWords) +
                  ", or rules PATTERN:LAYOUT,...,LAYOUT");
    }
    parsed.emplace_back(std::string_view(), rules);
    return parsed;
  }
  for (std::size_t start = 0;;) {
    const std::size_t comma = rules.find(',', start);
    const std::string_view rule =
        rules.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (rule.empty()) throw Error("an empty rule (rules are PATTERN:LAYOUT or LAYOUT, separated by ',')");
    const std::size_t colon = rule.rfind(':');
    const std::string_view word = colon == std::string_view::npos ? rule : rule.substr(colon + 1);
    const std::string_view pattern =
        colon == std::string_view::npos ? std::string_view() : rule.substr(0, colon);
    if (word != "auto" && !layout_named(word)) {
      throw Error("rule '" + std::string(rule) + "': '" + std::string(word) +
                  "' is not a layout; valid layouts: " + std::string(kWords));
    }
    if (colon != std::string_view::npos && pattern.empty())
      throw Error("rule '" + std::string(rule) + "' has no pattern before ':'");
    if (!pattern.empty()) safetensors::glob_match(pattern, "");  // throws for a malformed pattern
    parsed.emplace_back(pattern, word);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return parsed;
}

}  // namespace

void check_layout(std::string_view text) {
  parse_rules(text);
}

std::string pick_layout(std::string_view rules, std::string_view name, std::string_view what) {
  const std::string prefix =
      std::string(what) + (what.empty() ? "" : ": ") + "layout=" + std::string(rules) + ": ";
  std::vector<std::pair<std::string_view, std::string_view>> parsed;
  try {
    parsed = parse_rules(rules);
  } catch (const Error& e) {
    throw Error(prefix + e.what());
  }
  for (const auto& [pattern, word] : parsed) {
    if (pattern.empty() || safetensors::glob_match(pattern, name)) return std::string(word);
  }
  throw Error(prefix + "no rule matches '" + std::string(name) +
              "'; end the list with a bare layout for every other name (e.g. ...,oihw)");
}

namespace {

// hwio: the laid-out axes (out, in, s_0 .. s_{r-3}), PyTorch's order, come from the source axes (r-1, r-2,
// 0 .. r-3) of a C-order array of `shape` (rank >= 2). Calls f(pos, src) for every laid-out position pos, in
// order, with the flat source index src it takes its value from.
template <class F>
void for_each_hwio(std::span<const std::size_t> shape, F&& f) {
  const std::size_t nd = shape.size();
  std::vector<std::size_t> perm;  // perm[k] = source axis of destination axis k
  perm.push_back(nd - 1);
  perm.push_back(nd - 2);
  for (std::size_t k = 0; k + 2 < nd; ++k)
    perm.push_back(k);
  std::vector<std::size_t> src_stride(nd, 1);
  for (std::size_t k = nd; k-- > 1;)
    src_stride[k - 1] = src_stride[k] * shape[k];
  std::vector<std::size_t> dshape(nd), dstride(nd);
  std::size_t count = 1;
  for (std::size_t k = 0; k < nd; ++k) {
    dshape[k] = shape[perm[k]];
    dstride[k] = src_stride[perm[k]];
    count *= shape[k];
  }
  std::vector<std::size_t> idx(nd, 0);
  std::size_t src = 0;
  for (std::size_t pos = 0; pos < count; ++pos) {
    f(pos, src);
    for (std::size_t k = nd; k-- > 0;) {  // C-order odometer over the destination
      if (++idx[k] < dshape[k]) {
        src += dstride[k];
        break;
      }
      src -= (dshape[k] - 1) * dstride[k];
      idx[k] = 0;
    }
  }
}

}  // namespace

Tensor to_tensor(std::span<const std::size_t> shape, std::span<const float> values, Layout layout,
                 std::string_view what) {
  std::size_t count = 1;
  for (const std::size_t d : shape)
    count *= d;
  if (count != values.size() || values.empty()) {
    throw Error(std::string(what) + ": shape " + npy::shape_text(shape) + " does not match " +
                std::to_string(values.size()) + " values");
  }
  const std::size_t nd = shape.size();
  if (layout != Layout::rows && nd < 2) {
    throw Error(std::string(what) + ": layout=" + (layout == Layout::oihw ? "oihw" : "hwio") +
                " needs a weight of rank >= 2 (" +
                (layout == Layout::oihw ? "[out, in, ...]" : "[..., in, out]") + "), but the shape is " +
                npy::shape_text(shape) + "; use layout=rows");
  }
  if (layout != Layout::hwio) {
    const std::size_t rows = nd == 0 ? 1 : (nd == 1 ? 1 : shape[0]);
    return Tensor(rows, count / rows, std::vector<float>(values.begin(), values.end()));
  }
  Tensor t(shape[nd - 1], count / shape[nd - 1]);
  for_each_hwio(shape, [&](std::size_t pos, std::size_t src) { t.values[pos] = values[src]; });
  return t;
}

std::vector<float> from_tensor(std::span<const std::size_t> shape, std::span<const float> laid_out,
                               Layout layout) {
  std::size_t count = 1;
  for (const std::size_t d : shape)
    count *= d;
  if (count != laid_out.size() || laid_out.empty()) {
    throw Error("from_tensor: shape " + npy::shape_text(shape) + " does not match " +
                std::to_string(laid_out.size()) + " values");
  }
  const std::size_t nd = shape.size();
  if (layout != Layout::hwio || nd < 2) {
    if (layout != Layout::rows && nd < 2) to_tensor(shape, laid_out, layout, "from_tensor");  // throws
    return std::vector<float>(laid_out.begin(), laid_out.end());
  }
  std::vector<float> out(count);
  for_each_hwio(shape, [&](std::size_t pos, std::size_t src) { out[src] = laid_out[pos]; });
  return out;
}

}  // namespace sqb
