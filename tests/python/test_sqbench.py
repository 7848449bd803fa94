"""Tests of the Python module `sqbench` (run by ctest with Debian's /usr/bin/python3 and PYTHONPATH=build/python).

The module is a front door to the same library calls as the CLI, so its results must equal `sqbench export` of the
same tensor bit for bit, and its codes must be what numpy.searchsorted / torch.bucketize give on its thresholds.
"""
import json
import os
import subprocess
import tempfile
import threading
import unittest
import warnings

import numpy as np
# Debian's python3-torch, which scripts/setup installs (CI has it): the cross-checks below need it, so a
# missing torch fails the run here instead of skipping them.
import torch

import sqbench

# The built sqbench binary (ctest sets it; by hand: SQBENCH_EXE=build/experiments/sqbench).
SQBENCH_EXE = os.environ.get("SQBENCH_EXE", "")
NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023,
       1.0]


def gaussian(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def sqbench_exe(test):
    """The sqbench binary to compare with; fails the test when SQBENCH_EXE does not name one."""
    test.assertTrue(os.path.isfile(SQBENCH_EXE) and os.access(SQBENCH_EXE, os.X_OK),
                    f"SQBENCH_EXE={SQBENCH_EXE!r} is not the built sqbench binary (ctest sets it; by hand: "
                    "SQBENCH_EXE=build/experiments/sqbench)")
    return SQBENCH_EXE


class QuantizeTest(unittest.TestCase):
    def test_result_shapes_and_metrics(self):
        w = gaussian((8, 100))
        r = sqbench.quantize(w, "kmeans", bits=4, granularity="channel")
        self.assertEqual(r.codes.shape, (8, 100))
        self.assertEqual(r.codes.dtype, np.uint8)
        self.assertEqual(r.codebooks.shape, (8, 16))
        self.assertEqual(r.codebooks.dtype, np.float32)
        self.assertEqual(r.thresholds.shape, (8, 15))
        self.assertEqual(r.side.shape, (8, 16))  # a learned codebook stores its K levels
        self.assertEqual(r.blocks.tolist(), [[100 * i, 100] for i in range(8)])
        self.assertEqual(r.decoded.shape, w.shape)
        self.assertEqual(r.decoded.dtype, np.float32)
        for name in ("mse", "nmse", "sqnr_db", "max_abs_err", "entropy_bits", "storage_bits", "iterations"):
            self.assertIn(name, r.metrics)
        self.assertIsNone(r.metrics["wmse"])  # no weights given
        mse = float(np.mean((w.astype(np.float64) - r.decoded) ** 2))
        self.assertAlmostEqual(r.metrics["mse"], mse, delta=1e-12 * max(mse, 1))
        # decoded = codebooks[block, code]
        rows = np.arange(8)[:, None]
        np.testing.assert_array_equal(r.decoded, r.codebooks[rows, r.codes])

    def test_encode_alone_equals_searchsorted(self):
        rng = np.random.default_rng(11)
        x = rng.standard_normal(10_000).astype(np.float32)
        for k in (2, 16, 256, 300):
            t = np.sort(rng.standard_normal(k - 1).astype(np.float32))
            t[len(t) // 2:len(t) // 2 + 2] = t[len(t) // 2]  # a repeated threshold
            x[:k - 1] = t  # values exactly on thresholds go to the lower level
            codes = sqbench.encode(x, t)
            self.assertEqual(codes.dtype, np.uint8 if k <= 256 else np.uint16)
            np.testing.assert_array_equal(codes, np.searchsorted(t, x, side="left"))
        with self.assertRaisesRegex(ValueError, "ascending"):
            sqbench.encode(x, np.array([1, 0], dtype=np.float32))
        with self.assertRaisesRegex(ValueError, "non-finite"):
            sqbench.encode(np.array([np.nan], dtype=np.float32), np.array([0], dtype=np.float32))

    def test_timings_are_reported(self):
        r = sqbench.quantize(gaussian(10_000), "kmeans", bits=4)
        self.assertEqual(set(r.timings), {"fit_s", "encode_s", "decode_s"})
        self.assertTrue(all(v >= 0 for v in r.timings.values()))

    def test_wide_codes_are_uint16(self):
        r = sqbench.quantize(gaussian(5000), "uniform", k=1000)
        self.assertEqual(r.codes.dtype, np.uint16)
        self.assertEqual(r.codes.shape, (1, 5000))

    def test_codes_equal_numpy_searchsorted_per_block(self):
        w = gaussian((6, 300), seed=1)
        for spec, kw in (("kmeans", {"bits": 5}), ("phi_log base=2 zero=1", {"bits": 4}), ("nf4", {"bits": 4}),
                         ("cosine", {"k": 300})):
            r = sqbench.quantize(w, spec, granularity="group:64", **kw)
            flat = w.reshape(-1)
            codes = r.codes.reshape(-1)
            for b, (off, n) in enumerate(r.blocks):
                x = flat[off:off + n]
                want = np.searchsorted(r.thresholds[b], x, side="left")
                np.testing.assert_array_equal(codes[off:off + n], want, err_msg=f"{spec} block {b}")

    def test_codes_equal_torch_bucketize(self):
        w = gaussian((4, 1000), seed=2)
        r = sqbench.quantize(w, "lloyd_max", bits=3, granularity="channel")
        for b in range(4):
            t = torch.from_numpy(r.thresholds[b].copy())
            want = torch.bucketize(torch.from_numpy(w[b].copy()), t, right=False).numpy()
            np.testing.assert_array_equal(r.codes[b], want)

    def test_float16_and_float64_and_torch_input(self):
        w16 = gaussian((3, 64), seed=3, dtype=np.float16)
        r16 = sqbench.quantize(w16, "kmeans_optimal", bits=3)
        r32 = sqbench.quantize(w16.astype(np.float32), "kmeans_optimal", bits=3)
        np.testing.assert_array_equal(r16.codes, r32.codes)
        np.testing.assert_array_equal(r16.decoded, r32.decoded)
        w64 = gaussian((3, 64), seed=3, dtype=np.float64)
        r64 = sqbench.quantize(w64, "uniform", bits=4)
        np.testing.assert_array_equal(r64.decoded, sqbench.quantize(w64.astype(np.float32), "uniform", bits=4).decoded)
        t = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
        rt = sqbench.quantize(t.numpy(), "nf4", bits=4, granularity="channel")
        np.testing.assert_array_equal(rt.decoded, sqbench.quantize(t.numpy().copy(), "nf4", bits=4,
                                                                   granularity="channel").decoded)

    def test_layouts(self):
        w = gaussian((4, 3, 2, 2), seed=4)  # PyTorch conv weight [out, in, kh, kw]: rows = out channels
        r = sqbench.quantize(w, "uniform", bits=3, granularity="channel")
        self.assertEqual(r.codes.shape, (4, 12))
        self.assertEqual(r.decoded.shape, w.shape)
        flat = sqbench.quantize(w.reshape(4, 12), "uniform", bits=3, granularity="channel")
        np.testing.assert_array_equal(r.decoded.reshape(4, 12), flat.decoded)
        # A non-contiguous view gives what its contiguous copy gives.
        m = gaussian((50, 40), seed=5)
        np.testing.assert_array_equal(sqbench.quantize(m.T, "kmeans", bits=2).decoded,
                                      sqbench.quantize(np.ascontiguousarray(m.T), "kmeans", bits=2).decoded)
        one = sqbench.quantize(gaussian(10, seed=6), "uniform", k=4)
        self.assertEqual(one.codes.shape, (1, 10))
        self.assertEqual(one.decoded.shape, (10,))

    def test_threads_give_identical_results(self):
        w = gaussian((64, 257), seed=7)
        a = sqbench.quantize(w, "kmeans", bits=4, granularity="channel", seed=3, threads=1)
        b = sqbench.quantize(w, "kmeans", bits=4, granularity="channel", seed=3, threads=4)
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_array_equal(a.codebooks, b.codebooks)
        self.assertEqual(a.metrics, b.metrics)

    def test_weights_give_wmse(self):
        w = gaussian(1000, seed=8)
        imp = np.abs(w) ** 2
        r = sqbench.quantize(w, "uniform", bits=3, weights=imp)
        err = (w.astype(np.float64) - r.decoded) ** 2
        imp64 = imp.astype(np.float64)
        self.assertAlmostEqual(r.metrics["wmse"], float(np.sum(imp64 * err) / np.sum(imp64)), places=12)
        with self.assertRaisesRegex(ValueError, r"weights: shape \(10,\) is not x's shape \(1000,\)"):
            sqbench.quantize(w, "uniform", bits=3, weights=imp[:10])

    def test_weights_must_have_x_shape(self):
        # A transposed or flattened array has as many elements but would pair weights with the wrong values
        # (it was accepted, and its wmse was not the weighted error of x).
        x = gaussian((64, 128), seed=12)
        imp = np.abs(gaussian((64, 128), seed=13))
        for bad, shape in ((imp.T, r"\(128, 64\)"), (imp.reshape(-1), r"\(8192,\)"),
                           (imp.reshape(64, 2, 64), r"\(64, 2, 64\)")):
            with self.assertRaisesRegex(ValueError, "weights: shape " + shape + r" is not x's shape \(64, 128\)"):
                sqbench.quantize(x, "kmeans", bits=3, weights=bad)
        r = sqbench.quantize(x, "kmeans", bits=3, weights=imp)
        err = (x.astype(np.float64) - r.decoded) ** 2
        imp64 = imp.astype(np.float64)
        self.assertAlmostEqual(r.metrics["wmse"], float(np.sum(imp64 * err) / np.sum(imp64)), places=12)

    def test_all_zero_weights_warn(self):
        # All-zero weights leave nothing to weight by: the result is the unweighted one and wmse is None, said
        # with a UserWarning (it used to be silent).
        x = gaussian((8, 50), seed=14)
        with self.assertWarnsRegex(UserWarning, r"every importance weight is 0, so x is quantized unweighted"):
            r = sqbench.quantize(x, "kmeans", bits=3, weights=np.zeros_like(x))
        self.assertIsNone(r.metrics["wmse"])
        np.testing.assert_array_equal(r.codes, sqbench.quantize(x, "kmeans", bits=3).codes)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # some zeros: no warning
            part = np.ones_like(x)
            part[0] = 0
            sqbench.quantize(x, "kmeans", bits=3, weights=part)
            with self.assertRaises(UserWarning):  # warnings as errors reach the caller as the exception
                sqbench.quantize(x, "kmeans", bits=3, weights=np.zeros_like(x))

    def test_gil_is_released(self):
        # Another Python thread runs while a long quantize() call is in C++.
        w = gaussian(400_000, seed=9)
        ticks = []
        done = threading.Event()

        def count():
            while not done.is_set():
                ticks.append(1)
                done.wait(0.001)

        t = threading.Thread(target=count)
        t.start()
        try:
            sqbench.quantize(w, "kmeans algo=naive max_iter=20 tol=0", bits=6)
        finally:
            done.set()
            t.join()
        self.assertGreater(len(ticks), 3)


class ErrorTest(unittest.TestCase):
    def test_bad_input_is_value_error_with_the_cli_message(self):
        w = gaussian(100)
        with self.assertRaises(ValueError) as e:
            sqbench.quantize(w, "kmean", bits=4)
        self.assertIn("unknown quantizer 'kmean'; valid quantizers: ", str(e.exception))
        cli = subprocess.run([sqbench_exe(self), "codebook", "kmean", "--bits", "4"], capture_output=True,
                             text=True)
        self.assertEqual(cli.returncode, 2)
        self.assertIn(str(e.exception), cli.stderr)
        with self.assertRaisesRegex(ValueError, "parameter 'init'"):
            sqbench.quantize(w, "kmeans init=random", bits=4)
        with self.assertRaisesRegex(ValueError, "give exactly one of k= and bits="):
            sqbench.quantize(w, "kmeans")
        with self.assertRaisesRegex(ValueError, "outside 1..16"):
            sqbench.quantize(w, "kmeans", bits=17)
        with self.assertRaisesRegex(ValueError, "granularity 'rows'"):
            sqbench.quantize(w, "kmeans", bits=2, granularity="rows")
        bad = w.copy()
        bad[7] = np.nan
        with self.assertRaisesRegex(ValueError, "NaN at index 7"):
            sqbench.quantize(bad, "kmeans", bits=2)
        with self.assertRaisesRegex(ValueError, "element format"):
            sqbench.quantize(np.arange(10, dtype=np.int32), "kmeans", bits=2)
        with self.assertRaisesRegex(ValueError, "empty"):
            sqbench.quantize(np.zeros((0, 3), dtype=np.float32), "kmeans", bits=2)
        with self.assertRaisesRegex(ValueError, "nf4 is a fixed 16-code table"):
            sqbench.quantize(w, "nf4", bits=3)
        # A float64 beyond float32's range is printed as it reads back (it was printed with its 301 digits).
        with self.assertRaises(ValueError) as big:
            sqbench.quantize(np.array([1.0, -1e300]), "kmeans", bits=2)
        self.assertEqual(str(big.exception), "x: the float64 value -1e+300 at flat index 1 is beyond float32's "
                                             "range (|x| <= 3.4028235e+38)")


class RegistryTest(unittest.TestCase):
    def test_version_quantizers_columns(self):
        self.assertRegex(sqbench.__version__, r"^\d+\.\d+\.\d+$")
        names = [q["name"] for q in sqbench.quantizers()]
        for n in ("cosine", "kmeans", "kmeans_optimal", "phi_log", "lloyd_max", "uniform", "nf4"):
            self.assertIn(n, names)
        kmeans = next(q for q in sqbench.quantizers() if q["name"] == "kmeans")
        self.assertIn("init", [p["name"] for p in kmeans["params"]])
        self.assertIn("sqnr_db", [c["name"] for c in sqbench.columns()])

    def test_data_free_codebooks(self):
        nf4 = sqbench.codebook("nf4", 4)
        np.testing.assert_array_equal(nf4["levels"].astype(np.float32), np.array(NF4, dtype=np.float32))
        self.assertTrue(nf4["scaled"])
        lm = sqbench.codebook("lloyd_max law=sphere d=128", 1)
        self.assertAlmostEqual(lm["levels"][1], 0.07066157274, places=10)  # tests/data/REFERENCE.md, exact finite-d
        with self.assertRaisesRegex(ValueError, "learned codebook"):
            sqbench.codebook("kmeans", 4)


class ExportEquivalenceTest(unittest.TestCase):
    def test_equals_sqbench_export_bit_for_bit(self):
        exe = sqbench_exe(self)
        w = gaussian((6, 40), seed=10)
        for spec, bits, g in (("kmeans", 4, "channel"), ("phi_log cluster=4", 4, "group:16"),
                              ("nf4", 4, "group:16"), ("lloyd_max", 3, "tensor")):
            with tempfile.TemporaryDirectory() as d:
                np.save(os.path.join(d, "w.npy"), w)
                out = os.path.join(d, "out")
                subprocess.run([exe, "export", spec, "--input", os.path.join(d, "w.npy"), "--out", out,
                                "--bits", str(bits), "--granularity", g, "--seed", "5"], check=True,
                               capture_output=True)
                r = sqbench.quantize(w, spec, bits=bits, granularity=g, seed=5)
                np.testing.assert_array_equal(np.load(os.path.join(out, "codes.npy")), r.codes)
                np.testing.assert_array_equal(np.load(os.path.join(out, "codebooks.npy")), r.codebooks)
                np.testing.assert_array_equal(np.load(os.path.join(out, "thresholds.npy")), r.thresholds)
                np.testing.assert_array_equal(np.load(os.path.join(out, "blocks.npy")), r.blocks)
                np.testing.assert_array_equal(np.load(os.path.join(out, "decoded.npy")).reshape(w.shape), r.decoded)
                if r.side.shape[1] > 0:
                    np.testing.assert_array_equal(np.load(os.path.join(out, "side.npy")), r.side)
                manifest = json.load(open(os.path.join(out, "manifest.json")))
                self.assertEqual(manifest["metrics"]["mse"], r.metrics["mse"])


def write_safetensors(path, tensors, metadata=None):
    """A safetensors file from its description alone: 8-byte little-endian header length, JSON, raw data.
    tensors: name -> (dtype, float32 array); BF16 is the top half of float32 rounded to nearest even."""
    import struct
    header, data = ({"__metadata__": metadata} if metadata else {}), b""
    for name, (dtype, a) in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        if dtype == "BF16":
            u = a.view(np.uint32).astype(np.uint64)
            raw = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        else:
            raw = a.astype("<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def bf16_round(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


class SafetensorsTest(unittest.TestCase):
    def test_a_tensor_numpy_cannot_hold_is_named(self):
        # 1001 dimensions of 1 (a valid safetensors tensor): numpy's own refusal did not say which file or tensor.
        import struct
        header = json.dumps({"deep": {"dtype": "F32", "shape": [1] * 1001, "data_offsets": [0, 4]}}).encode()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "deep.safetensors")
            with open(path, "wb") as f:
                f.write(struct.pack("<Q", len(header)) + header + struct.pack("<f", 1.5))
            with self.assertRaisesRegex(ValueError, "^" + path + r': tensor "deep" of 1001 dimensions cannot be a '
                                                            r"numpy array \(numpy: .*32"):
                sqbench.read_safetensors(path, "deep")

    def test_read_names_draw_and_quantize(self):
        up = gaussian((12, 20), seed=3) * 0.02
        conv = gaussian((4, 2, 3, 3), seed=4)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.safetensors")
            write_safetensors(path, {"layers.0.up.weight": ("BF16", up), "conv.weight": ("F16", conv),
                                     "norm.weight": ("F32", np.ones(5, np.float32))}, {"format": "pt"})
            self.assertEqual(sqbench.safetensors_names(path), ["conv.weight", "layers.0.up.weight", "norm.weight"])
            self.assertEqual(sqbench.safetensors_names(path, "*.up.*"), ["layers.0.up.weight"])
            self.assertEqual(sqbench.safetensors_names(path, "*.bias"), [])  # none: an empty list, no error
            with self.assertRaisesRegex(ValueError, r'tensor pattern "\[z-a\]": the range'):
                sqbench.safetensors_names(path, "[z-a]")
            a = sqbench.read_safetensors(path, "layers.0.up.weight")
            self.assertEqual(a.dtype, np.float32)
            self.assertEqual(a.shape, (12, 20))
            np.testing.assert_array_equal(a, bf16_round(up))
            np.testing.assert_array_equal(sqbench.read_safetensors(path, "conv.weight"),
                                          conv.astype(np.float16).astype(np.float32))
            with self.assertRaisesRegex(ValueError, 'no tensor "conv.bias"'):
                sqbench.read_safetensors(path, "conv.bias")
            # The same data through a source spec, and quantized: equal to quantizing the array itself.
            values, weights = sqbench.draw(f"safetensors path={path} tensor=conv.weight layout=auto weights=square")
            self.assertEqual(values.shape, (4, 18))
            np.testing.assert_array_equal(values, conv.astype(np.float16).astype(np.float32).reshape(4, 18))
            np.testing.assert_array_equal(weights, values.astype(np.float64) ** 2)
            r1 = sqbench.quantize(values, "kmeans", bits=3, granularity="channel")
            r2 = sqbench.quantize(sqbench.read_safetensors(path, "conv.weight"), "kmeans", bits=3,
                                  granularity="channel")
            self.assertEqual(r1.metrics, r2.metrics)
            sources = sqbench.sources(f"safetensors path={path} tensor=*.weight layout=*norm*:rows,oihw")
            self.assertEqual([s["label"] for s in sources], ["conv.weight", "layers.0.up.weight", "norm.weight"])
            self.assertEqual(sources[2]["spec"], f"safetensors path={path} tensor=norm.weight layout=rows")
            v, w = sqbench.draw("gaussian rows=2", n=10, seed=1)
            self.assertEqual(v.shape, (2, 5))
            self.assertIsNone(w)

    def test_coded_bits_is_reported(self):
        w = gaussian((8, 500), seed=6)
        self.assertIsNone(sqbench.quantize(w, "kmeans", bits=4, granularity="channel").metrics["coded_bits"])
        r = sqbench.quantize(w, "kmeans", bits=4, granularity="channel", coded=True)
        m = r.metrics
        side = 32.0 * 8 * 16 / w.size
        self.assertGreaterEqual(m["coded_bits"], m["entropy_bits"] + side - 32 / w.size)
        self.assertLessEqual(m["coded_bits"], m["entropy_bits"] + side + 0.1)
        self.assertIn("coded_bits", [c["name"] for c in sqbench.columns()])
        p = sqbench.quantize(w, "phi_log cluster=4", bits=4, coded=True).metrics
        self.assertLess(p["exp_coded_bits"], p["coded_bits"])


if __name__ == "__main__":
    unittest.main()
