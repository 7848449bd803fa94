// Layout words, layout=auto and per-tensor layout rules (contract in sqb/layout.hpp).

#include "sqb/layout.hpp"

#include <vector>

#include "sqb/error.hpp"
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

std::optional<npy::Layout> layout_named(std::string_view word) {
  if (word == "rows") return npy::Layout::rows;
  if (word == "oihw") return npy::Layout::oihw;
  if (word == "hwio") return npy::Layout::hwio;
  return std::nullopt;
}

std::string_view layout_word(npy::Layout layout) {
  switch (layout) {
    case npy::Layout::rows:
      return "rows";
    case npy::Layout::oihw:
      return "oihw";
    case npy::Layout::hwio:
      return "hwio";
  }
  return "rows";
}

npy::Layout auto_layout(std::string_view name, std::span<const std::size_t> shape, std::string_view framework,
                        std::string_view what) {
  if (shape.size() <= 1) return npy::Layout::rows;  // one row, whatever the framework
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
  return clues.front().axis == Axis::first ? npy::Layout::oihw : npy::Layout::hwio;
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

}  // namespace sqb
