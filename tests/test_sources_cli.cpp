// Sweeps over real folders: labels in results.csv, tables and plots (the full spec in the source column),
// where filters by label or by spec, resume and merge with labels, n defaulting to all for files, duplicate
// labels refused before any work, and the warning when granularity=channel meets a one-row file.

#include <catch2/catch.hpp>

#include <filesystem>

#include "cli_helpers.hpp"
#include "config.hpp"
#include "plan.hpp"
#include "safetensors_helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"

namespace fs = std::filesystem;
using namespace sqbtest;

namespace {

// A folder of mixed layouts: a PyTorch conv [out, in, kh, kw], a TensorFlow kernel [kh, kw, in, out] whose
// out is 6, a 1-D bias, and a checkpoint of two Linear weights.
void write_folder(const fs::path& dir) {
  fs::create_directories(dir / "w");
  const auto values = [](std::size_t n, float scale) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i)
      v[i] = scale * static_cast<float>((i * 37) % 23) - scale * 11;
    return v;
  };
  sqb::npy::write(dir / "w" / "conv.npy", std::vector<std::size_t>{4, 2, 3, 3}, values(72, 0.01f));
  sqb::npy::write(dir / "w" / "dense_hwio.npy", std::vector<std::size_t>{1, 1, 8, 6}, values(48, 0.02f));
  sqb::npy::write(dir / "w" / "bias.npy", std::vector<std::size_t>{5}, values(5, 0.1f));
  std::vector<sqbtest::StTensor> ts = {
      {"model.fc1.weight", "F32", {6, 8}, sqbtest::f32_bytes(values(48, 0.03f))},
      {"model.fc2.weight", "F32", {3, 6}, sqbtest::f32_bytes(values(18, 0.05f))},
  };
  std::ofstream(dir / "w" / "model.safetensors", std::ios::binary)
      << sqbtest::st_file(ts, "{\"format\":\"pt\"}");
}

std::vector<std::string> column_values(const fs::path& csv, const std::string& column) {
  const auto lines = lines_of(csv);
  std::vector<std::string> out;
  if (lines.empty()) return out;
  // The first fields hold no quoted commas before `source` in these configs.
  std::vector<std::string> header;
  std::string f;
  for (std::istringstream in(lines[0]); std::getline(in, f, ',');)
    header.push_back(f);
  const auto at = static_cast<std::size_t>(std::find(header.begin(), header.end(), column) - header.begin());
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> fields;
    for (std::istringstream in(lines[i]); std::getline(in, f, ',');)
      fields.push_back(f);
    out.push_back(at < fields.size() ? fields[at] : "");
  }
  return out;
}

const char* kMixed =
    "repeats = 1\n"
    "[sweep]\n"
    "quantizer = uniform\n"
    "quantizer = kmeans\n"
    "distribution = npy glob=w/*.npy layout=*_hwio.npy:hwio,bias.npy:rows,oihw\n"
    "distribution = safetensors path=w/model.safetensors tensor=*.weight layout=auto\n"
    "bits = 2, 3\n"
    "granularity = channel\n"
    "[table.t]\n"
    "rows = distribution\n"
    "cols = bits\n"
    "value = mse\n"
    "where = quantizer=kmeans\n"
    "[table.one]\n"
    "rows = quantizer\n"
    "cols = bits\n"
    "value = mse\n"
    "where = distribution=dense_hwio\n"
    "[table.by_spec]\n"
    "rows = quantizer\n"
    "cols = bits\n"
    "value = mse\n"
    "where = distribution=safetensors path=w/model.safetensors tensor=model.fc2.weight layout=auto\n"
    "[plot.p]\n"
    "kind = bar\n"
    "x = distribution\n"
    "y = mse\n"
    "series = quantizer\n"
    "where = bits=2\n";

}  // namespace

TEST_CASE("a mixed-layout folder: labels in results.csv, tables and plots, and the full spec in source",
          "[sources-cli]") {
  TempDir dir;
  write_folder(dir.path);
  const fs::path cfg = dir.write("mixed.ini", kMixed);
  const fs::path out = dir.path / "out";
  const Outcome o = run_cli("run " + cfg.string() + " --quiet --out " + out.string());
  INFO(o.output);
  REQUIRE(o.status == 0);
  // n was omitted: every file whole. bias.npy is one row, so channel is the whole tensor: a warning.
  CHECK(o.output.find("sqbench: warning: distribution 'bias' (npy path=w/bias.npy layout=rows) is one row as "
                      "laid out, so granularity=channel is one codebook for the whole tensor") !=
        std::string::npos);
  CHECK(o.output.find("warning: distribution 'conv'") == std::string::npos);
  const auto labels = column_values(out / "results.csv", "distribution");
  const auto sources = column_values(out / "results.csv", "source");
  const auto ns = column_values(out / "results.csv", "n");
  const auto rows = column_values(out / "results.csv", "rows");
  REQUIRE(labels.size() == 5 * 2 * 2);
  std::map<std::string, std::string> spec_of;
  std::map<std::string, std::string> rows_of;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    spec_of[labels[i]] = sources[i];
    rows_of[labels[i]] = rows[i];
    CHECK(ns[i] == "all");
  }
  CHECK(
      spec_of ==
      std::map<std::string, std::string>{
          {"bias", "npy path=w/bias.npy layout=rows"},
          {"conv", "npy path=w/conv.npy layout=oihw"},
          {"dense_hwio", "npy path=w/dense_hwio.npy layout=hwio"},
          {"model.fc1.weight", "safetensors path=w/model.safetensors tensor=model.fc1.weight layout=auto"},
          {"model.fc2.weight", "safetensors path=w/model.safetensors tensor=model.fc2.weight layout=auto"}});
  // Each file as its layout says: output channels are rows.
  CHECK(rows_of == std::map<std::string, std::string>{{"bias", "1"},
                                                      {"conv", "4"},
                                                      {"dense_hwio", "6"},
                                                      {"model.fc1.weight", "6"},
                                                      {"model.fc2.weight", "3"}});
  // Tables and plots show the labels; a where filter takes a label or the whole spec.
  const std::string md = slurp(out / "tables.md");
  CHECK(md.find("| dense\\_hwio |") != std::string::npos);
  CHECK(md.find("| model.fc1.weight |") != std::string::npos);
  CHECK(md.find("npy path=") == std::string::npos);
  CHECK(md.find("**Table one: mse by quantizer and bits.**") != std::string::npos);
  CHECK(md.find("**Table by\\_spec: mse by quantizer and bits.**") != std::string::npos);
  const std::string dat = slurp(out / "plots" / "p.dat");
  const std::string gp = slurp(out / "plots" / "p.gp");
  CHECK((dat + gp).find("model.fc2.weight") != std::string::npos);
  CHECK((dat + gp).find("safetensors path=") == std::string::npos);
  // sqbench table --where takes labels too.
  const Outcome t = run_cli("table " + (out / "results.csv").string() +
                            " --rows quantizer --cols bits --value mse --where distribution=conv");
  INFO(t.output);
  CHECK(t.status == 0);
  CHECK(t.output.find("| kmeans |") != std::string::npos);

  // Resume: the rows of a cut-off run are kept by their key (labels and specs), the rest are run again.
  const std::string finished = slurp(out / "results.csv");
  auto lines = lines_of(out / "results.csv");
  fs::remove(out / "results.csv");
  {
    std::ofstream partial(out / "results.partial.csv");
    for (std::size_t i = 0; i < 7; ++i)
      partial << lines[i] << "\n";
  }
  const Outcome r = run_cli("run " + cfg.string() + " --quiet --resume --out " + out.string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  const auto again = lines_of(out / "results.csv");
  REQUIRE(again.size() == lines.size());
  for (std::size_t i = 0; i < 7; ++i)
    CHECK(again[i] == lines[i]);  // kept as they were, timings included

  // Shards merge back into the same cells.
  for (int s = 0; s < 2; ++s) {
    const Outcome sh = run_cli("run " + cfg.string() + " --quiet --shard " + std::to_string(s) + "/2 --out " +
                               (dir.path / ("shard" + std::to_string(s))).string());
    INFO(sh.output);
    REQUIRE(sh.status == 0);
  }
  const Outcome m = run_cli("merge " + (dir.path / "shard0").string() + " " + (dir.path / "shard1").string() +
                            " --quiet --out " + (dir.path / "merged").string());
  INFO(m.output);
  REQUIRE(m.status == 0);
  CHECK(column_values(dir.path / "merged" / "results.csv", "distribution") == labels);
  CHECK(column_values(dir.path / "merged" / "results.csv", "source") == sources);
}

TEST_CASE("labels must name one source each, n defaults to all only for files", "[sources-cli]") {
  TempDir dir;
  write_folder(dir.path);
  fs::create_directories(dir.path / "v");
  fs::copy_file(dir.path / "w" / "conv.npy", dir.path / "v" / "conv.npy");
  const auto plan_error = [&](const std::string& text) {
    try {
      sqbench::make_plan(sqbench::parse_config(dir.path / "c.ini", text));
    } catch (const sqb::Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const std::string head = "[sweep]\nquantizer = uniform\nk = 4\n";
  const std::string c = (dir.path / "c.ini").string();
  // Two folders holding a conv.npy: the stems collide.
  CHECK(plan_error(head + "distribution = npy glob=w/*.npy layout=*_hwio.npy:hwio,bias.npy:rows,oihw\n"
                          "distribution = npy path=v/conv.npy\n") ==
        c + ": [sweep] distribution: two sources have the label 'conv': \"npy path=w/conv.npy layout=oihw\" "
            "and \"npy path=v/conv.npy\"; give one of them its own label= ({} in it stands for the default "
            "label, e.g. label={}:b; labels name the sources in results.csv, tables and plots)");
  // ... label= fixes it; the same source may come back in another sweep under its label.
  CHECK(
      plan_error(head +
                 "distribution = npy path=w/conv.npy\ndistribution = npy path=v/conv.npy label=v:{}\n"
                 "[sweep.b]\nquantizer = kmeans\nk = 4\ndistribution = npy path=v/conv.npy label=v:conv\n") ==
      "(no error)");
  CHECK(
      plan_error(head + "n = 10\ndistribution = gaussian\ndistribution = gaussian std=2 label=gaussian\n") ==
      c + ": [sweep] distribution: two sources have the label 'gaussian': \"gaussian\" and \"gaussian "
          "std=2\"; give one of them its own label= ({} in it stands for the default label, e.g. label={}:b; "
          "labels name the sources in results.csv, tables and plots)");
  CHECK(plan_error(head + "n = 10\ndistribution = gaussian\n[sweep.b]\nquantizer = uniform\nk = 4\nn = 10\n"
                          "distribution = gaussian label=g\n")
            .find("the source \"gaussian\" has two labels, 'gaussian' and 'g'") != std::string::npos);
  // n: omitted means all, for files only; `all` on a law names the key.
  CHECK(plan_error(head + "distribution = npy path=w/conv.npy\n") == "(no error)");
  CHECK(
      plan_error(head + "distribution = npy path=w/conv.npy\ndistribution = gaussian\n") ==
      c + ": [sweep] has no key 'n': n defaults to all (every value) only when every distribution is a file "
          "(npy, safetensors), and distribution \"gaussian\" is not; give n");
  CHECK(plan_error(head + "distribution = laplace rows=4\nn = all\n") ==
        c + ": [sweep] key 'n': distribution \"laplace rows=4\": n = all (every value of a file) is for file "
            "sources (npy, safetensors); a synthetic law needs n = a number of values");
  CHECK(
      plan_error(head + "distribution = rotated d=8\nn = all\n")
          .find(
              "key 'n': distribution \"rotated d=8\": n = all (every value of a file) is for file sources") !=
      std::string::npos);
  // layout=auto that cannot tell, and a glob that matches no tensor, fail before any work.
  CHECK(plan_error(head + "distribution = npy path=w/conv.npy layout=auto\n")
            .find("w/conv.npy: layout=auto: tensor 'conv' of shape (4, 2, 3, 3): nothing tells its layout") !=
        std::string::npos);
  CHECK(plan_error(head + "distribution = safetensors path=w/model.safetensors tensor=*.bias\n")
            .find("tensor pattern \"*.bias\" matches none of the 2 tensors") != std::string::npos);
}

TEST_CASE("all-zero importance weights: a warning, unweighted cells, wmse and opt_ratio blank",
          "[sources-cli]") {
  // The pipeline designs such a tensor unweighted and a weighted mean over zero weight has no value; this
  // used to pass in silence (and opt_ratio read inf).
  TempDir dir;
  write_folder(dir.path);
  sqb::npy::write(dir.path / "w" / "zeros.npy", std::vector<std::size_t>{4, 2, 3, 3}, std::vector<float>(72));
  const fs::path cfg = dir.write("c.ini",
                                 "[sweep]\nquantizer = kmeans\ndistribution = npy path=w/conv.npy "
                                 "weights=w/zeros.npy\nk = 4\nseed = 0, 1\nopt_ratio = 1\n");
  const fs::path out = dir.path / "out";
  const Outcome o = run_cli("run " + cfg.string() + " --quiet --out " + out.string());
  INFO(o.output);
  REQUIRE(o.status == 0);
  const std::string warning =
      "sqbench: warning: distribution \"npy path=w/conv.npy weights=w/zeros.npy\": every importance weight "
      "is "
      "0, so its cells quantize the data unweighted (as without weights=) and leave wmse and opt_ratio "
      "blank\n";
  CHECK(o.output.find(warning) != std::string::npos);
  CHECK(o.output.find(warning) == o.output.rfind(warning));  // once for the source, not per cell
  CHECK(column_values(out / "results.csv", "wmse") == std::vector<std::string>{"", ""});
  CHECK(column_values(out / "results.csv", "opt_ratio") == std::vector<std::string>{"", ""});
  for (const std::string& mse : column_values(out / "results.csv", "mse"))
    CHECK_FALSE(mse.empty());
  // Some zero weights are ordinary: no warning.
  std::vector<float> some(72, 1.0f);
  some[0] = 0;
  sqb::npy::write(dir.path / "w" / "zeros.npy", std::vector<std::size_t>{4, 2, 3, 3}, some);
  const Outcome fine = run_cli("run " + cfg.string() + " --quiet --fresh --out " + out.string());
  CHECK(fine.status == 0);
  CHECK(fine.output.find("warning") == std::string::npos);
}
