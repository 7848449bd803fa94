#!/usr/bin/python3
"""Writes the tiny synthetic example tensors in this folder (no downloaded models).

    /usr/bin/python3 tests/data/make_examples.py      # needs python3-numpy; rewrites the .npy files here

- conv_oihw.npy: float32 (8, 4, 3, 3), a PyTorch-style conv weight [out, in, kh, kw]; output channel o is
  N(0, (0.02 * (o + 1))^2), so per-channel codebooks matter.
- linear_f16.npy: float16 (16, 24), a Linear weight [out, in] stored in half precision, Laplace(0, 0.05).

The seeds are fixed; the committed files are the reference (NumPy does not promise identical streams across
versions, so re-running may change the values, not the shapes or dtypes).
"""
import pathlib

import numpy as np

here = pathlib.Path(__file__).resolve().parent
rng = np.random.default_rng(20240501)

scales = 0.02 * (np.arange(8) + 1)
conv = rng.standard_normal((8, 4, 3, 3)) * scales[:, None, None, None]
np.save(here / "conv_oihw.npy", conv.astype(np.float32))

linear = rng.laplace(0.0, 0.05, size=(16, 24))
np.save(here / "linear_f16.npy", linear.astype(np.float16))
