#pragma once
// `sqbench export SPEC --input FILE.npy --out DIR --bits B`: quantize a real tensor and write what a
// deployment needs, as .npy files (through sqb::npy) plus a manifest.json that says how to decode them.

#include <filesystem>
#include <string>
#include <vector>

namespace sqbench {

struct ExportOptions {
  std::string spec;             ///< quantizer spec string
  std::filesystem::path input;  ///< a .npy file
  std::filesystem::path out;    ///< folder to write (created if needed)
  std::size_t k = 0;            ///< codes (from --k or 2^--bits)
  std::string granularity = "tensor";
  std::string layout = "rows";  ///< rows | oihw | hwio (how the N-D input becomes rows x cols)
  std::uint64_t seed = 0;
};

/// What export wrote.
struct ExportResult {
  std::vector<std::filesystem::path> files;
  double mse = 0, sqnr_db = 0, storage_bits = 0;
};

/// Reads the input, quantizes it (the same library calls as a sweep cell) and writes into `out`:
///  - codes.npy       uint8 (K <= 256) or uint16, rows x cols: the index of every element
///  - codebooks.npy   float32, blocks x K: each block's levels
///  - thresholds.npy  float32, blocks x (K-1): each block's decision thresholds (absent for K = 1)
///  - side.npy        float32, blocks x S: the S values a deployment stores per block (the storage accounting
///                    charges exactly these; absent when S = 0)
///  - blocks.npy      int32, blocks x 2: each block's flat offset and length in the rows x cols tensor
///  - decoded.npy     float32, rows x cols: the reconstruction, codebooks[block][codes]
///  - the strategy's own arrays (phi_log: signs.npy uint8, exponents.npy int16)
///  - manifest.json   spec, K, granularity, layout, shapes, what each file holds, how to decode, metrics
/// All files are written to temporaries first and renamed together. Throws sqb::Error for bad input.
ExportResult export_quantized(const ExportOptions& opt);

/// Runs the command on its arguments (after "export"). Bad input throws (sqb::Error, program_options errors).
int export_command(const std::vector<std::string>& args);

}  // namespace sqbench
