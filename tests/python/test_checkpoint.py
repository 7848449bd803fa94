"""Checkpoints from Python: sqbench.write_safetensors read back by a by-hand numpy parse of the format and by
sqbench.read_safetensors, its BF16/F16 rounding equal to torch's; importance files."""
import json
import os
import struct
import tempfile
import unittest

import numpy as np
# Debian's python3-torch (CI installs it): the reference for BF16/F16 rounding.
import torch

import sqbench


def parse(path):
    """A safetensors file parsed from the format's description: (header dict, data buffer bytes)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:], 8 + n


def tensor_of(header, buf, name, np_dtype):
    e = header[name]
    b, end = e["data_offsets"]
    return np.frombuffer(buf[b:end], dtype=np_dtype).reshape(e["shape"])


class WriteSafetensorsTest(unittest.TestCase):
    def test_round_trip_every_dtype_and_torch_rounding(self):
        rng = np.random.default_rng(3)
        w = (rng.standard_normal((5, 9)) * 0.1).astype(np.float32)
        tensors = {
            "w.f32": w,
            "w.f64": w.astype(np.float64),
            "w.f16": w.astype(np.float16),
            "w.bf16": (w, "BF16"),
            "w.f16conv": (w, "F16"),
            "w.bf16bits": (torch.from_numpy(w).to(torch.bfloat16).view(torch.int16).numpy(), "BF16"),
            "ids": np.arange(6, dtype=np.int64).reshape(2, 3),
            "mask": np.array([True, False, True]),
            "big_endian": np.arange(4, dtype=">i4"),
            "u8": np.array([1, 255], dtype=np.uint8),
        }
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.safetensors")
            sqbench.write_safetensors(path, tensors, {"format": "pt", "who": "test"})
            self.assertEqual(os.listdir(d), ["m.safetensors"])
            header, buf, offset = parse(path)
            self.assertEqual(offset % 8, 0)
            self.assertEqual(header.pop("__metadata__"), {"format": "pt", "who": "test"})
            for name, e in header.items():
                item = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2}.get(e["dtype"], 1)
                self.assertEqual(e["data_offsets"][0] % item, 0, name)
            spans = sorted(tuple(e["data_offsets"]) for e in header.values())
            self.assertEqual(spans[0][0], 0)
            self.assertEqual(spans[-1][1], len(buf))
            self.assertTrue(all(a[1] == b[0] for a, b in zip(spans, spans[1:])))
            self.assertEqual(header["w.bf16"]["dtype"], "BF16")
            x = torch.from_numpy(w)
            want_bf16 = x.to(torch.bfloat16).view(torch.int16).numpy()
            np.testing.assert_array_equal(tensor_of(header, buf, "w.bf16", "<i2"), want_bf16)
            np.testing.assert_array_equal(tensor_of(header, buf, "w.bf16bits", "<i2"), want_bf16)
            want_f16 = x.to(torch.float16).numpy().view(np.int16)
            np.testing.assert_array_equal(tensor_of(header, buf, "w.f16conv", "<i2"), want_f16)
            np.testing.assert_array_equal(tensor_of(header, buf, "w.f32", "<f4"), w)
            np.testing.assert_array_equal(tensor_of(header, buf, "w.f64", "<f8"), w.astype(np.float64))
            np.testing.assert_array_equal(tensor_of(header, buf, "ids", "<i8"), tensors["ids"])
            self.assertEqual(header["mask"]["dtype"], "BOOL")
            np.testing.assert_array_equal(tensor_of(header, buf, "big_endian", "<i4"), np.arange(4))
            # sqbench's own reader agrees.
            np.testing.assert_array_equal(sqbench.read_safetensors(path, "w.f32"), w)
            bf = sqbench.read_safetensors(path, "w.bf16")
            np.testing.assert_array_equal(bf, x.to(torch.bfloat16).to(torch.float32).numpy())

    def test_bad_input_names_the_tensor(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.safetensors")
            with self.assertRaisesRegex(ValueError, r'tensor "c": numpy dtype complex64 has no safetensors dtype'):
                sqbench.write_safetensors(path, {"c": np.zeros(2, np.complex64)})
            with self.assertRaisesRegex(ValueError, r"dtype 'F8' is not one write_safetensors writes"):
                sqbench.write_safetensors(path, {"c": (np.zeros(2, np.float32), "F8")})
            with self.assertRaisesRegex(ValueError, r"cannot store numpy dtype int32 as BF16"):
                sqbench.write_safetensors(path, {"c": (np.zeros(2, np.int32), "BF16")})
            with self.assertRaisesRegex(ValueError, r'"__metadata__" cannot name a tensor'):
                sqbench.write_safetensors(path, {"__metadata__": np.zeros(2, np.float32)})
            self.assertEqual(os.listdir(d), [])


class ImportanceFileTest(unittest.TestCase):
    def test_read_importance(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "imp.safetensors")
            v = np.array([0.5, 2.0, 0.0], np.float32)
            sqbench.write_safetensors(path, {"a.weight": v, "b.weight": np.ones(4, np.float32)})
            imp = sqbench.read_importance(path)
            self.assertEqual(sorted(imp), ["a.weight", "b.weight"])
            np.testing.assert_array_equal(imp["a.weight"], v)
            self.assertEqual(imp["a.weight"].dtype, np.float32)
            sqbench.write_safetensors(path, {"a.weight": np.array([1, -1], np.float32)})
            with self.assertRaisesRegex(ValueError, r'tensor "a.weight": importance entry 1 is -1'):
                sqbench.read_importance(path)


class QuantizeLayoutWeightsTest(unittest.TestCase):
    def test_per_column_weights_equal_full_shape(self):
        rng = np.random.default_rng(4)
        w = rng.standard_normal((8, 24)).astype(np.float32)
        v = np.exp(rng.standard_normal(24)).astype(np.float32)
        for spec in ["kmeans", "kmeans_optimal", "uniform"]:
            for gran in ["tensor", "channel", "group:16"]:
                a = sqbench.quantize(w, spec, bits=3, granularity=gran, weights=np.broadcast_to(v, w.shape).copy(),
                                     opt_ratio=True)
                b = sqbench.quantize(w, spec, bits=3, granularity=gran, weights=v, opt_ratio=True)
                np.testing.assert_array_equal(a.codebooks, b.codebooks)
                np.testing.assert_array_equal(a.decoded, b.decoded)
                self.assertEqual(a.metrics["wmse"], b.metrics["wmse"])
                self.assertEqual(a.metrics["opt_ratio"], b.metrics["opt_ratio"])
                self.assertGreaterEqual(b.metrics["opt_ratio"], 1.0 - 1e-9)
        with self.assertRaisesRegex(ValueError, r"nor a per-column vector \(24,\)"):
            sqbench.quantize(w, "kmeans", bits=3, weights=np.ones(8, np.float32))

    def test_layouts_give_decoded_in_the_input_shape(self):
        rng = np.random.default_rng(5)
        dense = rng.standard_normal((24, 8)).astype(np.float32)  # Keras Dense kernel [in, out]
        ref = sqbench.quantize(np.ascontiguousarray(dense.T), "kmeans", bits=3, granularity="channel")
        for layout, kw in [("io", {}), ("hwio", {}), ("auto", {"name": "dense.kernel"})]:
            r = sqbench.quantize(dense, "kmeans", bits=3, granularity="channel", layout=layout, **kw)
            self.assertEqual(r.shape, (8, 24))
            self.assertEqual(r.decoded.shape, (24, 8))
            np.testing.assert_array_equal(r.decoded, ref.decoded.T)
            np.testing.assert_array_equal(r.codes, ref.codes)
        conv = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)  # HWIO
        r = sqbench.quantize(conv, "kmeans", bits=2, granularity="channel", layout="hwio")
        self.assertEqual(r.shape, (5, 36))
        self.assertEqual(r.decoded.shape, conv.shape)
        oihw = np.ascontiguousarray(conv.transpose(3, 2, 0, 1))
        r2 = sqbench.quantize(oihw, "kmeans", bits=2, granularity="channel", layout="oihw")
        np.testing.assert_array_equal(r.decoded, r2.decoded.transpose(2, 3, 1, 0))
        # A per-column vector pairs with the laid-out columns (in_features for a Dense kernel).
        v = np.linspace(0.1, 2, 24).astype(np.float32)
        a = sqbench.quantize(dense, "kmeans", bits=3, layout="io", weights=v)
        b = sqbench.quantize(dense, "kmeans", bits=3, layout="io", weights=np.broadcast_to(v[:, None], dense.shape).copy())
        np.testing.assert_array_equal(a.decoded, b.decoded)
        with self.assertRaisesRegex(ValueError, r"give name="):
            sqbench.quantize(dense, "kmeans", bits=3, layout="auto")
        with self.assertRaisesRegex(ValueError, r"layout 'xyz' is not one of"):
            sqbench.quantize(dense, "kmeans", bits=3, layout="xyz")


if __name__ == "__main__":
    unittest.main()
