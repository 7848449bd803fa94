// Quantizes 4096 Gaussian values with a quantizer spec and prints what it cost: the smallest program that
// uses sqbench as a C++ library.   usage: quantize_vector [SPEC] [BITS]     e.g. quantize_vector "kmeans" 4
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sqb/sqb.hpp>

int main(int argc, char** argv) {
  const std::string spec = argc > 1 ? argv[1] : "lloyd_max";
  const int bits = argc > 2 ? std::atoi(argv[2]) : 4;
  try {
    // Any float32 data works (a std::vector, a memory-mapped file); here a seeded N(0, 1) sample.
    const sqb::Tensor x = sqb::make_source("gaussian")->draw(4096, /*seed=*/0);
    const sqb::Quantized r = sqb::quantize(x, spec, sqb::codes_for_bits(bits));
    std::printf("%s at %d bits: MSE %.6g, SQNR %.2f dB, %.3f bits/element stored (sqbench %s)\n",
                spec.c_str(), bits, r.metrics.mse, r.metrics.sqnr_db, r.metrics.storage_bits,
                std::string(sqb::version()).c_str());
    return 0;
  } catch (const sqb::Error& e) {  // a bad spec, parameter or K: the message says what and lists the choices
    std::fprintf(stderr, "quantize_vector: %s\n", e.what());
    return 2;
  }
}
