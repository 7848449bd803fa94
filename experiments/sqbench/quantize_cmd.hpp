#pragma once
// `sqbench quantize --input CKPT --out DIR (--spec SPEC (--bits B | --k K) [--granularity G] | --rules FILE)
// [--importance FILE] [--threads T] [--pack] [--opt-ratio]`: a whole safetensors checkpoint in, a quantized
// checkpoint out (sqb::quantize_checkpoint), with report.csv and manifest.json.

#include <string>
#include <vector>

namespace sqbench {

/// Runs the command; returns the exit status (0, or 2 for bad input: sqb::Error propagates to main).
int quantize_command(const std::vector<std::string>& args, const std::string& command_line);

}  // namespace sqbench
