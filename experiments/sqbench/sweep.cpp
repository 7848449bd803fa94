#include "sweep.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <memory>

#include "csv.hpp"
#include "files.hpp"
#include "sqb/distribution.hpp"
#include "sqb/error.hpp"
#include "sqb/metrics.hpp"
#include "sqb/quantize.hpp"
#include "sqb/registry.hpp"

namespace sqbench {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

struct CellTimes {
  std::vector<double> fit, encode, decode;
};

// One (quantizer spec, K) pair the sweep runs, or why it cannot.
struct QuantizerPlan {
  std::unique_ptr<sqb::Quantizer> q;  // null when not applicable
  std::string skip_reason;
};

}  // namespace

const std::vector<std::string>& result_columns() {
  static const std::vector<std::string> cols = {
      "quantizer",    "distribution", "n",          "k",         "bits",  "granularity", "seed",
      "rows",         "cols",         "blocks",     "mse",       "nmse",  "sqnr_db",     "max_abs_err",
      "entropy_bits", "storage_bits", "iterations", "converged", "fit_s", "encode_s",    "decode_s"};
  return cols;
}

fs::path run_sweep(const Config& config, const RunOptions& opt) {
  const SweepSpec& s = config.sweep;
  const fs::path out = opt.out_dir.empty() ? fs::path("results") / config.name : opt.out_dir;

  // Plan: build every distribution and every (quantizer, K) before any work, so bad specs fail fast.
  const sqb::DistributionContext dctx{fs::absolute(config.path).parent_path()};
  std::vector<std::unique_ptr<sqb::Distribution>> dists;
  for (const std::string& d : s.distributions) {
    try {
      dists.push_back(sqb::make_distribution(d, dctx));
      for (const std::size_t n : s.n)
        dists.back()->check_n(n);
    } catch (const sqb::Error& e) {
      throw sqb::Error(config.path.string() + ": key 'sweep.distribution': " + e.what());
    }
  }
  std::map<std::pair<std::size_t, std::size_t>, QuantizerPlan> plans;  // (quantizer index, k) -> plan
  std::map<std::string, std::size_t> skipped;                          // reason -> cells
  for (std::size_t qi = 0; qi < s.quantizers.size(); ++qi) {
    std::size_t usable = 0;
    std::string last_reason;
    for (const std::size_t k : s.k) {
      QuantizerPlan plan;
      try {
        plan.q = sqb::make_quantizer(s.quantizers[qi], {k, 0});
        ++usable;
      } catch (const sqb::NotApplicable& e) {
        plan.skip_reason = e.what();
        last_reason = e.what();
      } catch (const sqb::Error& e) {
        throw sqb::Error(config.path.string() + ": key 'sweep.quantizer': " + e.what());
      }
      plans[{qi, k}] = std::move(plan);
    }
    if (usable == 0) {
      throw sqb::Error(config.path.string() + ": key 'sweep.quantizer': \"" + s.quantizers[qi] +
                       "\" has no usable cell: " + last_reason);
    }
  }
  // Extra columns: the union, in first-seen order, of what the quantizers and distributions add.
  std::vector<std::string> extra_cols;
  const auto add_cols = [&](const std::vector<std::string>& names) {
    for (const std::string& c : names) {
      if (std::find(extra_cols.begin(), extra_cols.end(), c) == extra_cols.end()) extra_cols.push_back(c);
    }
  };
  for (const auto& [key, plan] : plans) {
    if (plan.q) add_cols(plan.q->extra_metric_names());
  }
  for (const auto& d : dists)
    add_cols(d->extra_metric_names());
  std::vector<std::string> header = result_columns();
  header.insert(header.end(), extra_cols.begin(), extra_cols.end());
  ensure_writable_dir(out);

  std::size_t total = 0;
  for (const auto& [key, plan] : plans) {
    if (plan.q) total += s.distributions.size() * s.n.size() * s.granularities.size() * s.seeds.size();
  }

  std::vector<std::vector<std::string>> rows;
  std::size_t done = 0;
  const Clock::time_point start = Clock::now();
  for (std::size_t di = 0; di < s.distributions.size(); ++di) {
    for (const std::size_t n : s.n) {
      for (const std::uint64_t seed : s.seeds) {
        const sqb::Tensor data = dists[di]->draw(n, seed);
        sqb::check_finite(data.values, "distribution \"" + s.distributions[di] + "\"", data.cols);
        std::vector<float> recon(data.size());
        for (std::size_t qi = 0; qi < s.quantizers.size(); ++qi) {
          for (const std::size_t k : s.k) {
            const QuantizerPlan& plan = plans.at({qi, k});
            if (!plan.q) {
              skipped[plan.skip_reason] += s.granularities.size();
              continue;
            }
            for (const std::string& gtext : s.granularities) {
              const sqb::Granularity g = sqb::Granularity::parse(gtext);
              // The quantizer is rebuilt with the cell's seed (strategies with randomness default to it).
              const auto q = sqb::make_quantizer(s.quantizers[qi], {k, seed});
              sqb::Codes codes(data.size(), q->code_count());
              // One warm-up run gives the codebooks and codes the metrics are computed from (every run is
              // deterministic); then `repeats` timed runs.
              sqb::TensorDesign design = sqb::design_tensor(*q, data, g, seed);
              sqb::encode_tensor(*q, data, design, codes);
              sqb::decode_tensor(design, codes, recon);
              const sqb::Metrics m = sqb::compute_metrics(data.values, recon, codes, design.blocks.size(),
                                                          design.side_floats_per_block);
              CellTimes times;
              for (int rep = 0; rep < config.repeats; ++rep) {
                Clock::time_point t0 = Clock::now();
                sqb::TensorDesign timed = sqb::design_tensor(*q, data, g, seed);
                times.fit.push_back(seconds_since(t0));
                t0 = Clock::now();
                sqb::encode_tensor(*q, data, timed, codes);
                times.encode.push_back(seconds_since(t0));
                t0 = Clock::now();
                sqb::decode_tensor(timed, codes, recon);
                times.decode.push_back(seconds_since(t0));
              }
              const double converged =
                  static_cast<double>(design.converged_blocks()) / static_cast<double>(design.blocks.size());
              rows.push_back({s.quantizers[qi],
                              s.distributions[di],
                              std::to_string(n),
                              std::to_string(k),
                              std::to_string(sqb::index_bits(k)),
                              gtext,
                              std::to_string(seed),
                              std::to_string(data.rows),
                              std::to_string(data.cols),
                              std::to_string(design.blocks.size()),
                              format_number(m.mse),
                              format_number(m.nmse),
                              format_number(m.sqnr_db),
                              format_number(m.max_abs_err),
                              format_number(m.entropy_bits),
                              format_number(m.storage_bits),
                              std::to_string(design.max_iterations()),
                              format_number(converged, 4),
                              format_number(median(times.fit), 6),
                              format_number(median(times.encode), 6),
                              format_number(median(times.decode), 6)});
              std::vector<std::string>& row = rows.back();
              row.resize(header.size());
              const auto put = [&](const std::vector<std::string>& names, const std::vector<double>& values) {
                for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
                  const auto at = std::find(header.begin(), header.end(), names[i]) - header.begin();
                  row[static_cast<std::size_t>(at)] = std::isnan(values[i]) ? "" : format_number(values[i]);
                }
              };
              put(q->extra_metric_names(), q->extra_metrics(data, design, codes));
              const auto dist_names = dists[di]->extra_metric_names();
              if (!dist_names.empty()) {
                const std::string spec = s.quantizers[qi];
                const sqb::CellView view{
                    data, recon,
                    k,    g,
                    seed, [&spec, seed](std::size_t kk) {
                                           return sqb::make_quantizer(spec, {kk, seed}); }};
                put(dist_names, dists[di]->extra_metrics(view));
              }
              ++done;
              if (!opt.quiet) {
                std::cerr << "[" << done << "/" << total << "] " << s.quantizers[qi] << " | "
                          << s.distributions[di] << " | n=" << n << " k=" << k << " " << gtext
                          << " seed=" << seed << ": mse=" << format_number(m.mse, 4)
                          << " sqnr=" << format_number(m.sqnr_db, 4)
                          << " dB fit=" << format_number(median(times.fit), 3) << " s  ("
                          << format_number(seconds_since(start), 3) << " s elapsed)\n";
              }
            }
          }
        }
      }
    }
  }

  write_file_atomic(out / "config.ini", config.text);
  write_file_atomic(out / "results.csv", csv_text(header, rows));
  for (const auto& [reason, count] : skipped) {
    std::cerr << "sqbench: skipped " << count << " cell" << (count == 1 ? "" : "s") << ": " << reason << "\n";
  }
  return out;
}

}  // namespace sqbench
