#!/usr/bin/python3
"""Writes the tiny synthetic example tensors in this folder (no downloaded models).

    /usr/bin/python3 tests/data/make_examples.py      # needs python3-numpy; rewrites the example files here

- conv_oihw.npy: float32 (8, 4, 3, 3), a PyTorch-style conv weight [out, in, kh, kw]; output channel o is
  N(0, (0.02 * (o + 1))^2), so per-channel codebooks matter.
- linear_f16.npy: float16 (16, 24), a Linear weight [out, in] stored in half precision, Laplace(0, 0.05).
- kernel_hwio.npy: float32 (3, 3, 8, 16), a TensorFlow/Keras conv kernel [kh, kw, in, out]; output channel o
  is N(0, (0.01 * (o + 1))^2). With the two above it makes a folder of mixed layouts.
- tiny_model.safetensors: a PyTorch-style checkpoint (`__metadata__` {"format": "pt"}), 37 KB, written with
  struct + json from the format's description (8-byte little-endian header length, JSON header, data):
    layers.0.mlp.up_proj.weight        BF16 (96, 64)    N(0, 0.02^2)
    layers.0.mlp.down_proj.weight      BF16 (64, 96)    Laplace(0, 0.015)
    layers.0.self_attn.q_proj.weight   F16  (64, 64)    Student t (3 degrees of freedom) * 0.02
    layers.0.input_layernorm.weight    F32  (64,)       1 + N(0, 0.05^2)
    conv.weight                        F32  (16, 8, 3, 3)  channel o is N(0, (0.01 * (o + 1))^2)
  bfloat16 is float32 rounded to nearest even on its top 16 bits (NumPy has no bfloat16).

The seeds are fixed; the committed files are the reference (NumPy does not promise identical streams across
versions, so re-running may change the values, not the shapes or dtypes).
"""
import json
import pathlib
import struct

import numpy as np

here = pathlib.Path(__file__).resolve().parent
rng = np.random.default_rng(20240501)

scales = 0.02 * (np.arange(8) + 1)
conv = rng.standard_normal((8, 4, 3, 3)) * scales[:, None, None, None]
np.save(here / "conv_oihw.npy", conv.astype(np.float32))

linear = rng.laplace(0.0, 0.05, size=(16, 24))
np.save(here / "linear_f16.npy", linear.astype(np.float16))

# Drawn after the two above, so adding these left those files unchanged.
kernel = rng.standard_normal((3, 3, 8, 16)) * (0.01 * (np.arange(16) + 1))
np.save(here / "kernel_hwio.npy", kernel.astype(np.float32))


def bf16_bytes(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even (the values are finite)
    return rounded.astype("<u2").tobytes()


tensors = {
    "layers.0.mlp.up_proj.weight": ("BF16", rng.standard_normal((96, 64)) * 0.02),
    "layers.0.mlp.down_proj.weight": ("BF16", rng.laplace(0.0, 0.015, size=(64, 96))),
    "layers.0.self_attn.q_proj.weight": ("F16", rng.standard_t(3, size=(64, 64)) * 0.02),
    "layers.0.input_layernorm.weight": ("F32", 1.0 + rng.standard_normal(64) * 0.05),
    "conv.weight": ("F32", rng.standard_normal((16, 8, 3, 3)) * (0.01 * (np.arange(16) + 1))[:, None, None, None]),
}
header, data = {"__metadata__": {"format": "pt"}}, b""
for name in sorted(tensors):
    dtype, values = tensors[name]
    raw = {"BF16": lambda a: bf16_bytes(a),
           "F16": lambda a: a.astype("<f2").tobytes(),
           "F32": lambda a: a.astype("<f4").tobytes()}[dtype](values)
    header[name] = {"dtype": dtype, "shape": list(values.shape), "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)  # the data buffer starts 8-byte aligned, as the safetensors library writes it
(here / "tiny_model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + data)
