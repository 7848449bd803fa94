#include "sqb/spec.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "sqb/error.hpp"

namespace sqb {

namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string join(const std::vector<std::string>& words, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i) out += sep;
    out += words[i];
  }
  return out;
}

std::string format_bound(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

std::optional<double> parse_number(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  // strtod needs a terminated string; it also accepts "inf"/"nan" which we reject below.
  const std::string s(text);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t v = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  if (!text.empty() && *first == '+') ++first;
  auto [p, ec] = std::from_chars(first, last, v);
  if (ec == std::errc() && p == last && first != last) return v;
  // Exponent forms such as 1e4 are integers when exact and within range.
  const auto d = parse_number(text);
  if (d && std::floor(*d) == *d && std::abs(*d) <= 9.0e15) return static_cast<std::int64_t>(*d);
  return std::nullopt;
}

std::string ParamSpec::describe_domain() const {
  std::string out;
  switch (kind) {
    case Kind::integer:
    case Kind::real:
      out = std::string(kind == Kind::integer ? "integer" : "number") + " in " + (min_exclusive ? "(" : "[") +
            format_bound(min) + ", " + format_bound(max) + "]";
      if (!choices.empty()) out += " or " + join(choices, "|");
      break;
    case Kind::choice:
      out = "one of " + join(choices, "|");
      break;
    case Kind::text:
      out = "text";
      break;
  }
  return out;
}

SpecText SpecText::parse(std::string_view text, std::string_view what) {
  const std::string quoted = std::string(what) + " spec \"" + std::string(text) + "\"";
  std::vector<std::string> tokens;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_blank(text[i]))
      ++i;
    std::size_t j = i;
    while (j < text.size() && !is_blank(text[j]))
      ++j;
    if (j > i) tokens.emplace_back(text.substr(i, j - i));
    i = j;
  }
  if (tokens.empty())
    throw Error("empty " + std::string(what) + " spec: give a name, e.g. " +
                (what == "distribution" ? "\"gaussian std=1\"" : "\"kmeans init=quantile\""));
  SpecText spec;
  spec.name = tokens[0];
  if (spec.name.find('=') != std::string::npos) {
    throw Error(quoted + ": it must start with a name, not '" + spec.name + "'");
  }
  for (std::size_t t = 1; t < tokens.size(); ++t) {
    const std::string& tok = tokens[t];
    const auto eq = tok.find('=');
    if (eq == std::string::npos) throw Error(quoted + ": '" + tok + "' is not of the form key=value");
    std::string key = tok.substr(0, eq);
    std::string value = tok.substr(eq + 1);
    if (key.empty()) throw Error(quoted + ": '" + tok + "' has no key before '='");
    if (value.empty()) throw Error(quoted + ": parameter '" + key + "' has no value after '='");
    for (const auto& [k, v] : spec.args) {
      if (k == key) throw Error(quoted + ": parameter '" + key + "' is given twice");
    }
    spec.args.emplace_back(std::move(key), std::move(value));
  }
  return spec;
}

std::string SpecText::canonical() const {
  std::string out = name;
  for (const auto& [k, v] : args)
    out += " " + k + "=" + v;
  return out;
}

Params::Params(std::span<const ParamSpec> decl, const std::vector<std::pair<std::string, std::string>>& given,
               std::string context)
    : decl_(decl), context_(std::move(context)) {
  for (const ParamSpec& p : decl_)
    values_[p.name] = p.default_value;
  for (const auto& [key, value] : given) {
    const ParamSpec* p = nullptr;
    for (const ParamSpec& d : decl_) {
      if (d.name == key) p = &d;
    }
    if (p == nullptr) {
      std::vector<std::string> names;
      for (const ParamSpec& d : decl_)
        names.push_back(d.name);
      throw Error(context_ + ": unknown parameter '" + key +
                  "'; valid parameters: " + (names.empty() ? std::string("(none)") : join(names, ", ")));
    }
    bool ok = false;
    for (const auto& c : p->choices)
      ok = ok || c == value;
    if (!ok) {
      switch (p->kind) {
        case ParamSpec::Kind::integer: {
          const auto v = parse_integer(value);
          ok = v && static_cast<double>(*v) >= p->min && static_cast<double>(*v) <= p->max &&
               !(p->min_exclusive && static_cast<double>(*v) == p->min);
          break;
        }
        case ParamSpec::Kind::real: {
          const auto v = parse_number(value);
          ok = v && *v >= p->min && *v <= p->max && !(p->min_exclusive && *v == p->min);
          break;
        }
        case ParamSpec::Kind::choice:
          break;
        case ParamSpec::Kind::text:
          ok = !value.empty();
          break;
      }
    }
    if (!ok) {
      throw Error(context_ + ": parameter '" + key + "' must be " + p->describe_domain() + " (got '" + value +
                  "')");
    }
    values_[key] = value;
    given_[key] = true;
  }
}

const ParamSpec& Params::decl_of(std::string_view name) const {
  for (const ParamSpec& d : decl_) {
    if (d.name == name) return d;
  }
  throw std::logic_error("parameter '" + std::string(name) + "' is not declared");
}

bool Params::has(std::string_view name) const {
  decl_of(name);
  return !values_.find(name)->second.empty();
}

bool Params::given(std::string_view name) const {
  decl_of(name);
  return given_.contains(name);
}

const std::string& Params::text(std::string_view name) const {
  decl_of(name);
  return values_.find(name)->second;
}

std::int64_t Params::integer(std::string_view name) const {
  const auto v = parse_integer(text(name));
  if (!v) throw std::logic_error(context_ + ": parameter '" + std::string(name) + "' is not an integer");
  return *v;
}

double Params::real(std::string_view name) const {
  const auto v = parse_number(text(name));
  if (!v) throw std::logic_error(context_ + ": parameter '" + std::string(name) + "' is not a number");
  return *v;
}

bool Params::is(std::string_view name, std::string_view word) const {
  return text(name) == word;
}

void Params::fail(std::string_view name, std::string_view message) const {
  throw Error(context_ + ": parameter '" + std::string(name) + "' " + std::string(message));
}

std::string text_hash(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace sqb
