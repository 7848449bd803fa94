#pragma once
// Plots with gnuplot: for every [plot.<id>] a data file and a script are written beside the PNG and SVG they
// render, so a figure can be restyled for a paper by editing the .gp file and re-running gnuplot.

#include <filesystem>
#include <string>
#include <vector>

#include "config.hpp"
#include "csv.hpp"
#include "table.hpp"

namespace sqbench {

/// Reference curves a plot may draw (`reference = ...`), with a one-line description each.
struct ReferenceCurve {
  std::string name;
  std::string description;
};
const std::vector<ReferenceCurve>& reference_curves();

/// Throws sqb::Error naming the plot and listing the valid references if one is unknown.
void check_references(const Config& config);

struct PlotFiles {
  std::filesystem::path gp, dat, png, svg;
  bool rendered = false;  ///< false when gnuplot is missing or failed (the .gp and .dat are still written)
  std::string message;    ///< why not rendered
  /// With commit = false: the staging files and the names they take (write_plot renamed nothing).
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> staged;
};

/// A plot's gnuplot data file and script, as written beside the images.
struct PlotScript {
  std::string dat, gp;
};

/// Builds a plot's data and script in memory (nothing is written). Throws sqb::Error for bad columns, no
/// matching rows, a text value on a numeric axis, rows that fall into one point or bar and differ in more
/// than the seed (without agg), or nothing drawable.
PlotScript plot_script(const CsvTable& t, const PlotSpec& spec, const Provenance& prov);

/// Writes <dir>/<id>.dat and <id>.gp and runs gnuplot to make <id>.png and <id>.svg.
/// Everything is made under staging names and checked complete (gnuplot's exit status, a PNG's last chunk,
/// an SVG's closing tag) before anything is renamed; throws sqb::Error naming the plot when gnuplot fails or
/// an image is incomplete (a full disk), leaving the previous files. With commit = false nothing is renamed:
/// the caller renames PlotFiles::staged (and removes them if it gives up).
PlotFiles write_plot(const PlotScript& script, const PlotSpec& spec, const std::filesystem::path& dir,
                     bool commit = true);

/// A human label with unit for a result column ("fit_s" -> "fit time (s)").
std::string axis_label(const std::string& column);

}  // namespace sqbench
