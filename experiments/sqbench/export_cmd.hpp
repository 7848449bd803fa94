#pragma once
// `sqbench export SPEC --input FILE --out DIR --bits B [--tensor NAME] [--pack] [--coded]`: quantize a real
// tensor (.npy, or a safetensors checkpoint's tensor) and write what a deployment needs, as .npy files
// (through sqb::npy) and byte streams, plus a manifest.json that says how to decode them.

#include <filesystem>
#include <string>
#include <vector>

namespace sqbench {

struct ExportOptions {
  std::string spec;             ///< quantizer spec string
  std::filesystem::path input;  ///< a .npy file, a .safetensors file or a sharded checkpoint's .index.json
  std::filesystem::path out;    ///< folder to write (created if needed)
  std::size_t k = 0;            ///< codes (from --k or 2^--bits)
  std::string granularity = "tensor";
  std::string layout = "rows";  ///< rows | oihw | hwio | auto (how the N-D input becomes rows x cols)
  std::uint64_t seed = 0;
  std::string tensor;  ///< the tensor of a safetensors input (required there, refused for .npy)
  bool pack = false;   ///< codes.bits (b bits per code) instead of codes.npy
  bool coded = false;  ///< codes.rans (and a strategy's coded streams) instead of codes.npy
};

/// What export wrote.
struct ExportResult {
  std::vector<std::filesystem::path> files;
  std::vector<std::filesystem::path> removed;  ///< an earlier export's files that the new one replaced
  double mse = 0, sqnr_db = 0, storage_bits = 0, coded_bits = 0;
};

/// Reads the input, quantizes it (the same library calls as a sweep cell) and writes into `out`:
///  - codes.npy       uint8 (K <= 256) or uint16, rows x cols: the index of every element (unless --pack or
///                    --coded); codes.bits with --pack (sqb::pack_codes at b = max(1, ceil(log2 K)) bits);
///                    codes.rans with --coded (sqb::rans_encode, the stream coded_bits measures)
///  - codebooks.npy   float32, blocks x K: each block's levels
///  - thresholds.npy  float32, blocks x (K-1): each block's decision thresholds (absent for K = 1)
///  - side.npy        float32, blocks x S: the S values a deployment stores per block (the storage accounting
///                    charges exactly these; absent when S = 0)
///  - blocks.npy      int32, blocks x 2: each block's flat offset and length in the rows x cols tensor
///  - decoded.npy     float32, the input's own shape and order: the reconstruction
///  - the strategy's own arrays (phi_log: signs.npy uint8, exponents.npy int16) and, with --coded, its coded
///    streams (phi_log: signs.bits, exponents.rans, zeros.rans)
///  - manifest.json   spec, K, granularity, layout, shapes, what each file holds, how to decode, metrics
/// All files are written to temporaries first and renamed together. A folder holds one export only: `out`
/// must be empty, missing, or hold an earlier export (its manifest.json, as export writes it); that export's
/// files are removed once the new ones are in place, and any other non-empty folder is refused. Throws
/// sqb::Error for bad input.
ExportResult export_quantized(const ExportOptions& opt);

/// Runs the command on its arguments (after "export"). Bad input throws (sqb::Error, program_options errors).
int export_command(const std::vector<std::string>& args);

}  // namespace sqbench
