#pragma once
// The module's parts defined outside module.cpp, each adding its calls to the module.

#include <pybind11/pybind11.h>

/// write_safetensors, read_importance, and the checkpoint calls (python/checkpoint.cpp).
void add_checkpoint_bindings(pybind11::module_& m);

/// sqbench.run and sqbench.plan: configs through the CLI's sweep harness (python/harness.cpp).
void add_harness_bindings(pybind11::module_& m);
