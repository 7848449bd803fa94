#pragma once
/// \file sqb.hpp
/// sqbench's library in one include: `#include <sqb/sqb.hpp>`, link `sqb::sqb` (find_package(sqb)).
///
///     const std::vector<float> w = ...;
///     const sqb::Quantized r = sqb::quantize(sqb::TensorView::row_vector(w), "kmeans", 16);
///     std::printf("MSE %g, SQNR %.2f dB\n", r.metrics.mse, r.metrics.sqnr_db);
///
/// quantize.hpp is the entry point; registry.hpp lists the strategies (`sqbench list` prints them),
/// columns.hpp the figures a result reports, source.hpp the data sources of sweeps, lloyd_max.hpp the
/// data-free Lloyd-Max codebooks of laws, npy.hpp NumPy files, safetensors.hpp checkpoints, layout.hpp how an
/// N-D tensor becomes rows x cols, coding.hpp packed and entropy-coded code streams.

#include "sqb/cell.hpp"
#include "sqb/codebook.hpp"
#include "sqb/coding.hpp"
#include "sqb/columns.hpp"
#include "sqb/error.hpp"
#include "sqb/granularity.hpp"
#include "sqb/importance.hpp"
#include "sqb/layout.hpp"
#include "sqb/lloyd_max.hpp"
#include "sqb/metrics.hpp"
#include "sqb/npy.hpp"
#include "sqb/quantize.hpp"
#include "sqb/quantizer.hpp"
#include "sqb/registry.hpp"
#include "sqb/safetensors.hpp"
#include "sqb/source.hpp"
#include "sqb/spec.hpp"
#include "sqb/tensor.hpp"
#include "sqb/version.hpp"
