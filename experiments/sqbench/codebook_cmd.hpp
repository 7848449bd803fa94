#pragma once
// `sqbench codebook SPEC --bits B [--format text|csv|md|json]`: a data-free Lloyd-Max codebook of a law, with
// its exact MSE (by integration), index entropy under the law, and the solver's iterations and residual.

#include <string>
#include <vector>

namespace sqbench {

/// The report for a `lloyd_max` spec at `bits` (1..16) in `format` (text, csv, md or json). Throws sqb::Error
/// naming the bad parameter (--bits, --format, or the spec's d, sigma, nu, ...), or when the spec names
/// another quantizer or takes d from the data (d=data has no fixed table).
///
/// Levels are printed as the quantizer applies them when that is fixed (mean + scale * sigma/std * table);
/// with sigma=data they are the table in units of the block's standard deviation about its centre, and the
/// report says so (`units`: value | block_sigma). The MSE is that codebook's exact MSE under the law;
/// for law=sphere at the natural scale it also gives d * MSE (TurboQuant's D_mse per unit vector).
std::string codebook_report(const std::string& spec, const std::string& bits, const std::string& format);

/// Runs the command on its arguments (after "codebook"): prints the report on stdout, returns the exit
/// status (0; --help prints the options). Bad input throws (sqb::Error, boost::program_options::error).
int codebook_command(const std::vector<std::string>& args);

}  // namespace sqbench
