#include "codebook_cmd.hpp"
#include "cli_args.hpp"

#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "context.hpp"
#include "csv.hpp"
#include "sqb/error.hpp"
#include "sqb/lloyd_max.hpp"
#include "sqb/quantizer.hpp"
#include "sqb/registry.hpp"
#include "sqb/spec.hpp"

namespace sqbench {

namespace {

namespace po = boost::program_options;

// Shortest text that reads back as the same double (so the printed codebook is the computed one).
std::string exact(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// A number, or null where JSON has none (inf, NaN).
nlohmann::ordered_json json_number(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json json_array(const std::vector<double>& v, std::size_t from, std::size_t to) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (std::size_t i = from; i < to; ++i)
    out.push_back(json_number(v[i]));
  return out;
}

std::string describe(const sqb::Law& law) {
  switch (law.kind) {
    case sqb::Law::Kind::gaussian:
      return "gaussian: N(0, 1)";
    case sqb::Law::Kind::laplace:
      return "laplace: unit variance (scale 1/sqrt(2))";
    case sqb::Law::Kind::student_t:
      return law.to_string() + ": Student's t scaled to unit variance";
    case sqb::Law::Kind::sphere:
      return law.to_string() + ": one coordinate of a uniform unit vector in R^" +
             std::to_string(static_cast<long long>(law.d)) + " (std 1/sqrt(d) = " + exact(law.stddev()) + ")";
  }
  return law.to_string();
}

struct Report {
  std::string spec, law;
  unsigned bits = 0;
  std::size_t k = 0;
  bool block_sigma = false;    // levels in units of the block's std about its centre
  std::string centre_note;     // how the centre is chosen
  std::vector<double> levels;  // as applied (or in block-sigma units)
  std::vector<double> lower, upper, probabilities;
  double mse = 0, variance = 0, d_mse = NAN, entropy = 0, residual = 0;
  int lloyd = 0, newton = 0;
  bool converged = false;
};

Report build(const std::string& spec, unsigned bits) {
  const sqb::LloydMaxSetting s = sqb::parse_lloyd_max_spec(spec);
  if (s.d_from_data) {
    throw sqb::Error(s.spec +
                     ": parameter 'd' = data takes the dimension from each block, so there is no fixed table "
                     "to print; give d=<int>");
  }
  const sqb::Law law = s.law_for(0);
  const auto sol = sqb::lloyd_max_solution(law, bits);
  Report r;
  r.spec = sqb::SpecText::parse(spec, "quantizer").canonical();
  r.law = describe(law);
  r.bits = bits;
  r.k = sol->levels.size();
  r.block_sigma = s.sigma_from == sqb::LloydMaxSetting::Sigma::data;
  // Per unit of block sigma when sigma comes from the data; otherwise the applied multiplier.
  const double mult = r.block_sigma ? s.scale / law.stddev() : s.multiplier(law, 0, 0.0);
  const double centre = s.mean_from_data ? 0.0 : s.mean;
  r.centre_note = s.mean_from_data ? "the block mean (mean=data)" : exact(s.mean);
  for (std::size_t i = 0; i < r.k; ++i) {
    r.levels.push_back(centre + mult * sol->levels[i]);
    r.lower.push_back(i == 0 ? mult * law.lower() + centre : centre + mult * sol->thresholds[i - 1]);
    r.upper.push_back(i + 1 == r.k ? mult * law.upper() + centre : centre + mult * sol->thresholds[i]);
  }
  r.probabilities = sol->probabilities;
  r.mse = mult * mult * sol->mse;
  r.variance = mult * mult * law.stddev() * law.stddev();
  if (law.kind == sqb::Law::Kind::sphere && mult == 1) r.d_mse = law.d * sol->mse;
  r.entropy = sol->entropy_bits;
  r.lloyd = sol->lloyd_iterations;
  r.newton = sol->newton_iterations;
  r.residual = sol->residual;
  r.converged = sol->converged;
  return r;
}

std::string text(const Report& r) {
  std::ostringstream o;
  o << "codebook   " << r.spec << "   b = " << r.bits << " (K = " << r.k << ")\n";
  o << "law        " << r.law
    << (r.block_sigma ? " (levels in units of the block's std; add the centre)" : "") << "\ncentre     "
    << r.centre_note << "\n\n";
  char line[256];
  std::snprintf(line, sizeof line, "%6s  %24s  %24s  %24s  %22s\n", "index", "level", "lower threshold",
                "upper threshold", "probability");
  o << line;
  for (std::size_t i = 0; i < r.k; ++i) {
    std::snprintf(line, sizeof line, "%6zu  %24s  %24s  %24s  %22s\n", i, exact(r.levels[i]).c_str(),
                  exact(r.lower[i]).c_str(), exact(r.upper[i]).c_str(), exact(r.probabilities[i]).c_str());
    o << line;
  }
  o << "\nmse (exact, by integration)   " << exact(r.mse) << (r.block_sigma ? "  (x sigma^2)" : "") << "\n";
  o << "mse / variance                " << exact(r.mse / r.variance) << "\n";
  if (std::isfinite(r.d_mse)) o << "d * mse (TurboQuant D_mse)    " << exact(r.d_mse) << "\n";
  o << "index entropy under the law   " << exact(r.entropy) << " bits (of " << r.bits << ")\n";
  o << "solver                        " << r.lloyd << " Lloyd + " << r.newton
    << " Newton steps from the split (b-1)-bit codebook; residual " << format_number(r.residual, 3)
    << (r.converged ? " (converged: <= 1e-12)" : " (NOT converged to 1e-12)") << "\n";
  return o.str();
}

std::string csv(const Report& r) {
  const std::vector<std::string> header = {"spec",
                                           "law",
                                           "bits",
                                           "k",
                                           "units",
                                           "index",
                                           "level",
                                           "lower",
                                           "upper",
                                           "probability",
                                           "mse",
                                           "mse_over_variance",
                                           "d_mse",
                                           "entropy_bits",
                                           "lloyd_iterations",
                                           "newton_iterations",
                                           "residual",
                                           "converged"};
  std::vector<std::vector<std::string>> rows;
  for (std::size_t i = 0; i < r.k; ++i) {
    rows.push_back({r.spec, r.law, std::to_string(r.bits), std::to_string(r.k),
                    r.block_sigma ? "block_sigma" : "value", std::to_string(i), exact(r.levels[i]),
                    exact(r.lower[i]), exact(r.upper[i]), exact(r.probabilities[i]), exact(r.mse),
                    exact(r.mse / r.variance), std::isfinite(r.d_mse) ? exact(r.d_mse) : "", exact(r.entropy),
                    std::to_string(r.lloyd), std::to_string(r.newton), exact(r.residual),
                    r.converged ? "1" : "0"});
  }
  return csv_text(header, rows);
}

std::string markdown(const Report& r) {
  std::ostringstream o;
  o << "**`" << r.spec << "`**, b = " << r.bits << " (K = " << r.k << "), law " << r.law
    << (r.block_sigma ? ", levels in units of the block's std" : "") << ", centre " << r.centre_note
    << "\n\n";
  o << "| index | level | lower threshold | upper threshold | probability |\n|---:|---:|---:|---:|---:|\n";
  for (std::size_t i = 0; i < r.k; ++i) {
    o << "| " << i << " | " << exact(r.levels[i]) << " | " << exact(r.lower[i]) << " | " << exact(r.upper[i])
      << " | " << exact(r.probabilities[i]) << " |\n";
  }
  o << "\n- mse (exact, by integration): " << exact(r.mse) << (r.block_sigma ? " sigma^2" : "") << "\n";
  o << "- mse / variance: " << exact(r.mse / r.variance) << "\n";
  if (std::isfinite(r.d_mse)) o << "- d * mse (TurboQuant D_mse): " << exact(r.d_mse) << "\n";
  o << "- index entropy under the law: " << exact(r.entropy) << " bits\n";
  o << "- solver: " << r.lloyd << " Lloyd + " << r.newton << " Newton steps, residual " << exact(r.residual)
    << (r.converged ? " (converged)" : " (not converged)") << "\n";
  return o.str();
}

std::string json(const Report& r) {
  nlohmann::ordered_json j;
  j["spec"] = r.spec;
  j["law"] = r.law;
  j["bits"] = r.bits;
  j["k"] = r.k;
  j["units"] = r.block_sigma ? "block_sigma" : "value";
  j["levels"] = json_array(r.levels, 0, r.k);
  j["thresholds"] = json_array(r.upper, 0, r.k - 1);
  j["probabilities"] = json_array(r.probabilities, 0, r.k);
  j["mse"] = json_number(r.mse);
  j["mse_over_variance"] = json_number(r.mse / r.variance);
  j["d_mse"] = json_number(r.d_mse);
  j["entropy_bits"] = json_number(r.entropy);
  j["lloyd_iterations"] = r.lloyd;
  j["newton_iterations"] = r.newton;
  j["residual"] = json_number(r.residual);
  j["converged"] = r.converged;
  return j.dump(2) + "\n";
}

// A data-free codebook of any other strategy (DesignsWithoutData): its levels and boundaries, how a block
// applies them and, for a shape a per-block scale multiplies, its best fit to N(0, 1).
struct ShapeReport {
  std::string spec, applied_as;
  unsigned bits = 0;
  std::size_t k = 0;
  bool scaled = false;
  std::vector<double> levels, lower, upper;
  double scale = NAN, mse = NAN, entropy = NAN;  // N(0,1) at the best scale (scaled shapes only)
  std::vector<double> probabilities;
};

// The quantizers that print a codebook without data at this K, for the error a learned one gets.
std::string data_free_names(std::size_t k) {
  std::string out;
  for (const sqb::QuantizerEntry& e : sqb::quantizer_registry()) {
    try {
      const auto q = sqb::make_quantizer(std::string(e.name), {k, 0});
      const auto* part = sqb::part_of<sqb::DesignsWithoutData>(*q);
      if (part == nullptr) continue;
      part->data_free_codebook();
    } catch (const sqb::Error&) {
      continue;
    }
    out += (out.empty() ? "" : ", ") + std::string(e.name);
  }
  return out;
}

ShapeReport build_shape(const std::string& spec, unsigned bits) {
  const std::size_t k = std::size_t{1} << bits;
  const std::unique_ptr<sqb::Quantizer> q = sqb::make_quantizer(spec, {k, 0});
  const auto* part = sqb::part_of<sqb::DesignsWithoutData>(*q);
  if (part == nullptr) {
    throw sqb::Error(
        "quantizer \"" + sqb::SpecText::parse(spec, "quantizer").canonical() +
        "\" designs its codebook from each block's data (a learned codebook), so there is no codebook to "
        "print without data; data-free codebooks at K = " +
        std::to_string(k) + ": " + data_free_names(k));
  }
  const sqb::DataFreeCodebook c = part->data_free_codebook();
  ShapeReport r;
  r.spec = sqb::SpecText::parse(spec, "quantizer").canonical();
  r.applied_as = c.applied_as;
  r.bits = bits;
  r.k = c.levels.size();
  r.scaled = c.scaled;
  r.levels = c.levels;
  for (std::size_t i = 0; i < r.k; ++i) {
    r.lower.push_back(i == 0 ? -INFINITY : c.boundaries[i - 1]);
    r.upper.push_back(i + 1 == r.k ? INFINITY : c.boundaries[i]);
  }
  if (r.scaled) {
    const sqb::Law n01 = sqb::Law::gaussian();
    const sqb::ScaledFit fit = sqb::best_scale_fit(n01, c.levels, c.boundaries);
    r.scale = fit.scale;
    r.mse = fit.mse;
    r.entropy = 0;
    for (std::size_t i = 0; i < r.k; ++i) {
      const double p = n01.cdf(r.upper[i] * fit.scale) - n01.cdf(r.lower[i] * fit.scale);
      r.probabilities.push_back(p);
      if (p > 0) r.entropy -= p * std::log2(p);
    }
  }
  return r;
}

std::string text(const ShapeReport& r) {
  std::ostringstream o;
  o << "codebook   " << r.spec << "   b = " << r.bits << " (K = " << r.k << ")\n";
  o << "applied    " << r.applied_as << "\n\n";
  char line[256];
  std::snprintf(line, sizeof line, "%6s  %24s  %24s  %24s%s\n", "index", "level", "lower threshold",
                "upper threshold", r.scaled ? "  p under N(0,1) at s*" : "");
  o << line;
  for (std::size_t i = 0; i < r.k; ++i) {
    std::snprintf(line, sizeof line, "%6zu  %24s  %24s  %24s", i, exact(r.levels[i]).c_str(),
                  exact(r.lower[i]).c_str(), exact(r.upper[i]).c_str());
    o << line;
    if (r.scaled) o << "  " << exact(r.probabilities[i]);
    o << "\n";
  }
  if (r.scaled) {
    o << "\nbest scale s* for N(0,1)       " << exact(r.scale) << "  (levels x s*)\n";
    o << "mse on N(0,1) at s* (exact)   " << exact(r.mse) << "\n";
    o << "index entropy at s*           " << exact(r.entropy) << " bits (of " << r.bits << ")\n";
  }
  return o.str();
}

std::string csv(const ShapeReport& r) {
  const std::vector<std::string> header = {"spec",       "bits",    "k",
                                           "applied_as", "index",   "level",
                                           "lower",      "upper",   "probability_n01",
                                           "scale_n01",  "mse_n01", "entropy_bits_n01"};
  const auto opt = [](double v) { return std::isnan(v) ? std::string() : exact(v); };
  std::vector<std::vector<std::string>> rows;
  for (std::size_t i = 0; i < r.k; ++i) {
    rows.push_back({r.spec, std::to_string(r.bits), std::to_string(r.k), r.applied_as, std::to_string(i),
                    exact(r.levels[i]), exact(r.lower[i]), exact(r.upper[i]),
                    r.scaled ? exact(r.probabilities[i]) : "", opt(r.scale), opt(r.mse), opt(r.entropy)});
  }
  return csv_text(header, rows);
}

std::string markdown(const ShapeReport& r) {
  std::ostringstream o;
  o << "**`" << r.spec << "`**, b = " << r.bits << " (K = " << r.k << "), " << r.applied_as << "\n\n";
  o << "| index | level | lower threshold | upper threshold |" << (r.scaled ? " p under N(0,1) at s* |" : "")
    << "\n|---:|---:|---:|---:|" << (r.scaled ? "---:|" : "") << "\n";
  for (std::size_t i = 0; i < r.k; ++i) {
    o << "| " << i << " | " << exact(r.levels[i]) << " | " << exact(r.lower[i]) << " | " << exact(r.upper[i])
      << " |";
    if (r.scaled) o << " " << exact(r.probabilities[i]) << " |";
    o << "\n";
  }
  if (r.scaled) {
    o << "\n- best scale for N(0,1): s* = " << exact(r.scale)
      << "\n- mse on N(0,1) at s* (exact): " << exact(r.mse)
      << "\n- index entropy at s*: " << exact(r.entropy) << " bits\n";
  }
  return o.str();
}

std::string json(const ShapeReport& r) {
  nlohmann::ordered_json j;
  j["spec"] = r.spec;
  j["bits"] = r.bits;
  j["k"] = r.k;
  j["applied_as"] = r.applied_as;
  j["scaled"] = r.scaled;
  j["levels"] = json_array(r.levels, 0, r.k);
  j["thresholds"] = json_array(r.upper, 0, r.k - 1);
  if (r.scaled) {
    j["n01"] = {{"scale", json_number(r.scale)},
                {"mse", json_number(r.mse)},
                {"entropy_bits", json_number(r.entropy)},
                {"probabilities", json_array(r.probabilities, 0, r.k)}};
  }
  return j.dump(2) + "\n";
}

}  // namespace

std::string codebook_report(const std::string& spec, const std::string& bits, const std::string& format) {
  const auto b = sqb::parse_integer(bits);
  if (!b || *b < 1 || *b > 16) {
    throw sqb::Error(
        "sqbench codebook: parameter '--bits' must be an integer in 1..16 (K = 2^bits levels), got '" + bits +
        "'");
  }
  if (format != "text" && format != "csv" && format != "md" && format != "json") {
    throw sqb::Error("sqbench codebook: parameter '--format' must be one of text|csv|md|json, got '" +
                     format + "'");
  }
  const auto bits_u = static_cast<unsigned>(*b);
  if (sqb::names_lloyd_max(spec)) {
    const Report r = build(spec, bits_u);
    if (format == "csv") return csv(r);
    if (format == "md") return markdown(r);
    if (format == "json") return json(r);
    return text(r);
  }
  const ShapeReport r = build_shape(spec, bits_u);
  if (format == "csv") return csv(r);
  if (format == "md") return markdown(r);
  if (format == "json") return json(r);
  return text(r);
}

int codebook_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "sqbench codebook SPEC --bits B: a codebook that needs no data (lloyd_max, nf4, fp4, normal_quantile,\n"
      "uniform, cosine, phi_log): levels, thresholds, and its MSE on a law (lloyd_max: its own; a shape a\n"
      "per-block scale multiplies: N(0,1) at the best scale), e.g.\n"
      "  sqbench codebook \"lloyd_max law=sphere d=128\" --bits 3\n  sqbench codebook nf4 --bits 4\noptions");
  desc.add_options()("help,h", "this help")("bits,b", po::value<std::string>(),
                                            "bits b = 1..16 (K = 2^b levels)")(
      "format,f", po::value<std::string>()->default_value("text"), "text | csv | md | json");
  const auto parsed = parse_command(args, desc, "spec");
  if (!parsed) return 0;
  const po::variables_map& vm = *parsed;
  const std::string spec = single_positional(
      vm, "spec",
      "sqbench codebook: give exactly one quantizer SPEC (quoted), e.g. \"lloyd_max law=sphere d=128\"");
  if (!vm.count("bits")) throw sqb::Error("sqbench codebook: parameter '--bits' is required (1..16)");
  std::cout << codebook_report(spec, vm["bits"].as<std::string>(), vm["format"].as<std::string>());
  return 0;
}

}  // namespace sqbench
