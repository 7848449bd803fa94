"""Checkpoints from Python: sqbench.write_safetensors read back by a by-hand numpy parse of the format and by
sqbench.read_safetensors, its BF16/F16 rounding equal to torch's; importance files."""
import csv
import json
import os
import struct
import subprocess
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


def make_checkpoint(d, sharded=False):
    """A small Llama-shaped checkpoint (BF16 and F16 weights, a norm, an integer buffer) and its importance."""
    rng = np.random.default_rng(7)
    t = {
        "model.layers.0.mlp.down_proj.weight": (rng.standard_normal((16, 48)).astype(np.float32) * 0.02, "BF16"),
        "model.layers.0.mlp.up_proj.weight": (rng.standard_normal((48, 16)).astype(np.float32) * 0.02, "BF16"),
        "model.layers.0.input_layernorm.weight": np.ones(16, np.float32),
        "lm_head.weight": rng.standard_normal((10, 16)).astype(np.float16),
        "position_ids": np.arange(6, dtype=np.int64),
    }
    imp = {"model.layers.0.mlp.down_proj.weight": np.abs(rng.standard_normal(48)).astype(np.float32),
           "model.layers.0.mlp.up_proj.weight": np.abs(rng.standard_normal(16)).astype(np.float32),
           "lm_head.weight": np.abs(rng.standard_normal(16)).astype(np.float32)}
    sqbench.write_safetensors(os.path.join(d, "imp.safetensors"), imp)
    if not sharded:
        path = os.path.join(d, "model.safetensors")
        sqbench.write_safetensors(path, t, {"format": "pt"})
        return path, imp
    names = sorted(t)
    split = {"model-00001-of-00002.safetensors": names[:2], "model-00002-of-00002.safetensors": names[2:]}
    weight_map = {}
    for shard, ns in split.items():
        sqbench.write_safetensors(os.path.join(d, shard), {n: t[n] for n in ns}, {"format": "pt"})
        weight_map.update({n: shard for n in ns})
    path = os.path.join(d, "model.safetensors.index.json")
    with open(path, "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
    return path, imp


def raw_tensors(path):
    header, buf, _ = parse(path)
    meta = header.pop("__metadata__", {})
    return {n: (e["dtype"], e["shape"], buf[e["data_offsets"][0]:e["data_offsets"][1]]) for n, e in header.items()}, meta


def cast_like(decoded, dtype):
    x = torch.from_numpy(np.ascontiguousarray(decoded, np.float32))
    if dtype == "BF16":
        return x.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
    if dtype == "F16":
        return x.to(torch.float16).numpy().tobytes()
    return x.numpy().tobytes()


class QuantizeCheckpointTest(unittest.TestCase):
    def check_output(self, src_files, out, imp, bits_of, packed=False):
        quantized = {}
        for f in src_files:
            src, src_meta = raw_tensors(f)
            dst, dst_meta = raw_tensors(os.path.join(out, os.path.basename(f) if f.endswith("of-00002.safetensors")
                                                     else "model.safetensors"))
            for k, v in src_meta.items():
                self.assertEqual(dst_meta[k], v)
            self.assertIn("sqbench.version", dst_meta)
            self.assertEqual(sorted(src), sorted(dst))
            for n, (dtype, shape, raw) in src.items():
                self.assertEqual(dst[n][:2], (dtype, shape), n)
                if n not in bits_of:
                    self.assertEqual(dst[n][2], raw, n)  # copied byte for byte
                    continue
                # Equal to the Python module's reconstruction of the same stored values, cast the same way.
                x = sqbench.read_safetensors(f, n)
                r = sqbench.quantize(x, "kmeans", bits=bits_of[n], granularity="channel", weights=imp[n])
                self.assertEqual(dst[n][2], cast_like(r.decoded, dtype), n)
                quantized[n] = r
        return quantized

    def test_single_file_with_importance_pack_and_torch(self):
        with tempfile.TemporaryDirectory() as d:
            path, imp = make_checkpoint(d)
            out = os.path.join(d, "out")
            rows = sqbench.quantize_checkpoint(path, out, spec="kmeans", bits=3, importance=os.path.join(d, "imp.safetensors"),
                                               pack=True, threads=2, coded=True)
            self.assertEqual(sorted(os.listdir(out)), ["manifest.json", "model.safetensors", "packed.safetensors", "report.csv"])
            bits_of = {"model.layers.0.mlp.down_proj.weight": 3, "model.layers.0.mlp.up_proj.weight": 3, "lm_head.weight": 3}
            q = self.check_output([path], out, imp, bits_of)
            # torch loads every tensor (a reader over torch.frombuffer, safetensors' own layout).
            header, buf, _ = parse(os.path.join(out, "model.safetensors"))
            for n, e in header.items():
                if n == "__metadata__":
                    continue
                dt = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "I64": torch.int64}[e["dtype"]]
                b, end = e["data_offsets"]
                t = torch.frombuffer(bytearray(buf[b:end]), dtype=dt).reshape(e["shape"])
                self.assertEqual(list(t.shape), e["shape"])
            # The report: one row per quantized tensor and totals weighted by parameter count.
            body, total = rows[:-1], rows[-1]
            self.assertEqual(sorted(r["tensor"] for r in body), sorted(bits_of))
            n = sum(float(r["n"]) for r in body)
            self.assertEqual(float(total["n"]), n)
            for col in ["mse", "storage_bits", "coded_bits", "wmse"]:
                want = sum(float(r["n"]) * float(r[col]) for r in body) / n
                self.assertAlmostEqual(float(total[col]), want, delta=abs(want) * 1e-12)
            for r in body:
                self.assertEqual(float(r["mse"]), q[r["tensor"]].metrics["mse"])
            with open(os.path.join(out, "report.csv")) as f:
                lines = f.read().splitlines()
            self.assertEqual(lines[0].split(","), list(rows[0].keys()))
            self.assertEqual(len(lines), 1 + len(rows))
            # docs/checkpoints.md's numpy decoder of packed.safetensors gives the same reconstruction.
            ph, pbuf, _ = parse(os.path.join(out, "packed.safetensors"))
            with open(os.path.join(out, "manifest.json")) as f:
                manifest = json.load(f)
            for name, info in manifest["tensors"].items():
                def get(key, dt):
                    e = ph[name + key]
                    return np.frombuffer(pbuf[e["data_offsets"][0]:e["data_offsets"][1]], dt).reshape(e["shape"])
                b = max(1, int(np.ceil(np.log2(info["k"]))))
                nn = info["rows"] * info["cols"]
                codes = np.unpackbits(get(".codes", np.uint8), bitorder="little")[:nn * b].reshape(nn, b) @ (1 << np.arange(b))
                x = np.empty(nn, np.float32)
                for (off, length), cb in zip(get(".blocks", "<i8"), get(".codebooks", "<f4")):
                    x[off:off + length] = cb[codes[off:off + length]]
                np.testing.assert_array_equal(x.reshape(info["rows"], info["cols"]), q[name].decoded.reshape(info["rows"], -1))

    def test_sharded_rules_and_errors(self):
        with tempfile.TemporaryDirectory() as d:
            path, imp = make_checkpoint(d, sharded=True)
            rules = "[lm_head.weight]\nspec = kmeans\nbits = 4\n[*.mlp.*]\nspec = kmeans\nbits = 2\n[*]\nskip = true\n"
            out = os.path.join(d, "out")
            sqbench.quantize_checkpoint(path, out, rules=rules, importance=os.path.join(d, "imp.safetensors"))
            self.assertEqual(sorted(os.listdir(out)), ["manifest.json", "model-00001-of-00002.safetensors",
                                                       "model-00002-of-00002.safetensors", "model.safetensors.index.json",
                                                       "report.csv"])
            shards = [os.path.join(d, "model-00001-of-00002.safetensors"), os.path.join(d, "model-00002-of-00002.safetensors")]
            self.check_output(shards, out, imp, {"lm_head.weight": 4, "model.layers.0.mlp.down_proj.weight": 2,
                                                 "model.layers.0.mlp.up_proj.weight": 2})
            with self.assertRaisesRegex(ValueError, r"exists: choose another --out folder"):
                sqbench.quantize_checkpoint(path, out, spec="kmeans", bits=3)
            out2 = os.path.join(d, "out2")
            with self.assertRaisesRegex(ValueError, r"rule \[nothing\.\*\] matches no tensor"):
                sqbench.quantize_checkpoint(path, out2, rules="[nothing.*]\nspec = kmeans\nbits = 2\n")
            with self.assertRaisesRegex(ValueError, r'tensor "position_ids" is I64, not a floating tensor'):
                sqbench.quantize_checkpoint(path, out2, rules="[*]\nspec = kmeans\nbits = 2\n")
            sqbench.write_safetensors(os.path.join(d, "short.safetensors"), {"lm_head.weight": np.ones(16, np.float32)})
            with self.assertRaisesRegex(ValueError, r'no importance vector for the quantized tensor "model.layers.0.mlp.down_proj.weight"'):
                sqbench.quantize_checkpoint(path, out2, spec="kmeans", bits=2, importance=os.path.join(d, "short.safetensors"))
            self.assertFalse(os.path.exists(os.path.join(out2, "report.csv")))
            self.assertEqual(os.listdir(out2) if os.path.exists(out2) else [], [])

    def test_shards_merged_and_resume_equal_one_run(self):
        with tempfile.TemporaryDirectory() as d:
            path, imp = make_checkpoint(d, sharded=True)
            kw = dict(spec="kmeans", bits=3, granularity="group:8", importance=os.path.join(d, "imp.safetensors"),
                      pack=True)
            whole = os.path.join(d, "whole")
            sqbench.quantize_checkpoint(path, whole, **kw)
            out = os.path.join(d, "out")
            for i in (1, 2):
                sqbench.quantize_checkpoint(path, out, shard="%d/2" % i, **kw)
            self.assertFalse(os.path.exists(os.path.join(out, "report.csv")))
            rows = sqbench.merge_checkpoint_shards([os.path.join(out, "shard-%d-of-2" % i) for i in (1, 2)], out)
            whole_rows = list(csv.DictReader(open(os.path.join(whole, "report.csv"))))
            timeless = lambda r: {k: v for k, v in r.items() if not k.endswith("_s")}
            self.assertEqual([timeless(r) for r in rows], [timeless(r) for r in whole_rows])
            for f in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                      "model.safetensors.index.json", "packed.safetensors"):
                with open(os.path.join(out, f), "rb") as a, open(os.path.join(whole, f), "rb") as b:
                    self.assertEqual(a.read(), b.read(), f)
            # A run killed after one tensor (the test hook), resumed from Python: the same files.
            killed = os.path.join(d, "killed")
            env = dict(os.environ, SQB_QUANTIZE_KILL_AFTER="1")
            cmd = [os.environ.get("SQBENCH_EXE", "sqbench"), "quantize", "--input", path, "--out", killed, "--spec",
                   "kmeans", "--bits", "3", "--granularity", "group:8", "--importance",
                   os.path.join(d, "imp.safetensors"), "--pack"]
            self.assertEqual(subprocess.run(cmd, env=env, capture_output=True).returncode, -9)
            self.assertFalse(os.path.exists(os.path.join(killed, "model-00001-of-00002.safetensors")))
            with self.assertRaisesRegex(ValueError, r"give --resume"):
                sqbench.quantize_checkpoint(path, killed, **kw)
            sqbench.quantize_checkpoint(path, killed, resume=True, **kw)
            for f in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "packed.safetensors"):
                with open(os.path.join(killed, f), "rb") as a, open(os.path.join(whole, f), "rb") as b:
                    self.assertEqual(a.read(), b.read(), f)
            with self.assertRaisesRegex(ValueError, r"--shard '0/2' is not i/n"):
                sqbench.quantize_checkpoint(path, os.path.join(d, "x"), shard="0/2", **kw)


if __name__ == "__main__":
    unittest.main()
