"""The task engine meets PyTorch through checkpoints (run by ctest with Debian's /usr/bin/python3,
PYTHONPATH=build/python, SQBENCH_EXE=the CLI; needs torch and Debian's dataset-fashion-mnist).

A TinyNet trained by `sqbench run` (one epoch on 3000 images, seconds) is read from its models/<hash>/
model.safetensors by a reader written here from the format's description, loaded into
nn.Sequential(Linear, ReLU, Linear) with load_state_dict, and evaluated on the Fashion-MNIST test set by torch:
the float accuracy, `sqbench.torch.quantize_`'s PTQ accuracy and `sqbench quantize` + `model=` all equal what the
native task cells report (within 0.1 point: torch and the engine sum the logits in different orders).
"""
import glob
import gzip
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
import torch
from torch import nn

import sqbench.torch as sqt

EXE = os.environ.get("SQBENCH_EXE", "sqbench")
DATA = "/usr/share/datasets/fashion-mnist"
SPEC = "kmeans init=quantile"  # deterministic (no seeded initialisation), so every path designs the same codebooks
TASK = "fashion_mnist epochs=1 train_n=3000 qat_epochs=1"


def read_safetensors(path):
    """{name: torch tensor} of a safetensors file: 8-byte little-endian header length, JSON header, data."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        buf = bytearray(data[b:end])
        if e["dtype"] == "F32":
            t = torch.frombuffer(buf, dtype=torch.float32)
        elif e["dtype"] == "BF16":
            t = torch.frombuffer(buf, dtype=torch.bfloat16)
        elif e["dtype"] == "F16":
            t = torch.frombuffer(buf, dtype=torch.float16)
        else:
            raise ValueError(f"{path}: {name}: dtype {e['dtype']} not handled here")
        out[name] = t.reshape(e["shape"]).clone()
    return out


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def tiny_net():
    return nn.Sequential(nn.Linear(784, 256, bias=False), nn.ReLU(), nn.Linear(256, 10, bias=False))


def accuracy(net, x, y):
    with torch.no_grad():
        return 100.0 * float((net(x).argmax(1) == y).double().mean())


def run(args, check=True):
    p = subprocess.run([EXE] + args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"sqbench {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def rows_of(csv_path):
    import csv
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


class TaskCheckpointTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cfg = os.path.join(d, "train.ini")
        with open(cfg, "w") as f:
            f.write(f"name = xcheck\n[sweep]\ntask = {TASK}\ntask = {TASK} weights=activations\n"
                    f"mode = fp32, ptq\nquantizer = {SPEC}\nbits = 2\ngranularity = channel\nseed = 0\n")
        cls.out = os.path.join(d, "out")
        run(["run", cfg, "--out", cls.out, "--quiet"])
        cls.rows = rows_of(os.path.join(cls.out, "results.csv"))
        models = glob.glob(os.path.join(cls.out, "models", "*", "model.safetensors"))
        assert len(models) == 1, models  # weights= is a recipe key: one float model serves both tasks
        cls.model_file = models[0]
        cls.x = torch.from_numpy(read_idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"))
                                 .reshape(-1, 784).astype(np.float32) / 255.0)
        cls.y = torch.from_numpy(read_idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
        train = read_idx(os.path.join(DATA, "train-images-idx3-ubyte.gz"))[:3000]
        cls.train_x = torch.from_numpy(train.reshape(-1, 784).astype(np.float32) / 255.0)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def native_row(self, mode, task=TASK):
        hits = [r for r in self.rows if r["mode"] == mode and r["task"] == task]
        self.assertEqual(len(hits), 1, (mode, task))
        return hits[0]

    def native(self, mode, task=TASK):
        return float(self.native_row(mode, task)["accuracy"])

    def loaded_net(self):
        net = tiny_net()
        net.load_state_dict(read_safetensors(self.model_file), strict=True)
        return net

    def test_torch_loads_the_float_model(self):
        tensors = read_safetensors(self.model_file)
        self.assertEqual(sorted(tensors), ["0.weight", "2.weight"])
        self.assertEqual(tuple(tensors["0.weight"].shape), (256, 784))
        self.assertEqual(tuple(tensors["2.weight"].shape), (10, 256))
        self.assertEqual(tensors["0.weight"].dtype, torch.float32)
        # The same weights as the engine's own .npy files.
        npy = np.load(os.path.join(os.path.dirname(self.model_file), "layer1.weight.npy"))
        self.assertTrue(np.array_equal(npy, tensors["2.weight"].numpy()))
        acc = accuracy(self.loaded_net(), self.x, self.y)
        self.assertGreater(acc, 50.0)
        self.assertAlmostEqual(acc, self.native("fp32"), delta=0.1)

    def test_quantize_in_torch_equals_native_ptq(self):
        net = self.loaded_net()
        report = sqt.quantize_(net, SPEC, bits=2, granularity="channel")
        # The same codebooks: each layer's weight error as the native cell measured it (6 digits there).
        native_mse = [float(v) for v in self.native_row("ptq")["layer_mse"].split()]
        self.assertEqual(len(native_mse), 2)
        for row, mse in zip(report, native_mse):
            self.assertAlmostEqual(row["mse"] / mse, 1.0, delta=1e-5, msg=row["tensor"])
        acc = accuracy(net, self.x, self.y)
        self.assertLess(acc, self.native("fp32"))  # 2 bits do cost something
        self.assertAlmostEqual(acc, self.native("ptq"), delta=0.1)

    def test_activation_importance_in_torch_equals_native(self):
        # calibrate's mean x^2 per input feature over the 3000 training images is the engine's weights=activations.
        net = self.loaded_net()
        imp = sqt.calibrate(net, [self.train_x[i:i + 500] for i in range(0, 3000, 500)])
        sqt.quantize_(net, SPEC, bits=2, granularity="channel", importance=imp)
        acc = accuracy(net, self.x, self.y)
        native = self.native("ptq", TASK + " weights=activations")
        self.assertNotEqual(native, self.native("ptq"))  # the importance did change the design
        self.assertAlmostEqual(acc, native, delta=0.1)

    def test_sqbench_quantize_then_model_evaluates_to_native_ptq(self):
        q = os.path.join(self.tmp.name, "q")
        run(["quantize", "--input", self.model_file, "--out", q, "--spec", SPEC, "--bits", "2"])
        qfile = os.path.join(q, "model.safetensors")
        # The quantized checkpoint holds what quantize_ computes, bit for bit.
        net = self.loaded_net()
        sqt.quantize_(net, SPEC, bits=2, granularity="channel")
        got = read_safetensors(qfile)
        for name, p in net.state_dict().items():
            self.assertTrue(torch.equal(got[name], p), name)
        cfg = os.path.join(self.tmp.name, "eval.ini")
        with open(cfg, "w") as f:
            f.write(f"name = evalq\n[sweep]\ntask = {TASK} model={qfile}\nmode = fp32\nseed = 0\n")
        out = os.path.join(self.tmp.name, "eval")
        run(["run", cfg, "--out", out, "--quiet"])
        rows = [r for r in rows_of(os.path.join(out, "results.csv")) if r["mode"] == "fp32"]
        self.assertEqual(len(rows), 1)
        self.assertAlmostEqual(float(rows[0]["accuracy"]), self.native("ptq"), delta=0.1)
        # Nothing was trained: no model folder.
        self.assertFalse(glob.glob(os.path.join(out, "models", "*", "model.txt")))
        # The checkpoint is one of the run's fingerprinted inputs.
        with open(os.path.join(out, "context.json")) as f:
            self.assertIn(os.path.realpath(qfile), f.read())

    def test_model_given_as_the_trained_file_reproduces_every_native_row(self):
        # The checkpoint path and the trained model are one network: fp32 and ptq (plain and activation-weighted,
        # whose statistic is recomputed from the checkpoint) give the native rows' figures exactly.
        cfg = os.path.join(self.tmp.name, "same.ini")
        with open(cfg, "w") as f:
            f.write(f"name = same\n[sweep]\ntask = {TASK} model={self.model_file}\n"
                    f"task = {TASK} weights=activations model={self.model_file}\nmode = fp32, ptq\n"
                    f"quantizer = {SPEC}\nbits = 2\ngranularity = channel\nseed = 0\n")
        out = os.path.join(self.tmp.name, "same")
        run(["run", cfg, "--out", out, "--quiet"])
        rows = rows_of(os.path.join(out, "results.csv"))
        self.assertEqual(len(rows), 6)  # fp32, fp32_ft and ptq of each task
        for r in rows:
            task = r["task"].replace(f" model={self.model_file}", "")
            native = self.native_row(r["mode"], task)
            for c in ("accuracy", "test_loss", "mse", "wmse", "layer_mse"):
                self.assertEqual(r[c], native[c], (r["mode"], task, c))

    def test_an_older_model_folder_gets_its_safetensors_file_when_loaded(self):
        out = os.path.join(self.tmp.name, "older")
        shutil.copytree(os.path.join(self.out, "models"), os.path.join(out, "models"))
        copy = os.path.join(out, "models", os.path.basename(os.path.dirname(self.model_file)), "model.safetensors")
        os.remove(copy)
        run(["run", os.path.join(self.tmp.name, "train.ini"), "--out", out, "--quiet"])
        with open(copy, "rb") as a, open(self.model_file, "rb") as b:
            self.assertEqual(a.read(), b.read())
        with open(os.path.join(out, "context.json")) as f:
            self.assertIn('"float_models_trained": 0', f.read())

    def test_bad_model_is_refused_before_any_work(self):
        d = self.tmp.name
        two = os.path.join(d, "only0.safetensors")
        tensors = read_safetensors(self.model_file)
        import sqbench
        sqbench.write_safetensors(two, {"0.weight": tensors["0.weight"].numpy()})
        cases = [
            (os.path.join(d, "missing.safetensors"), "", ["missing.safetensors", "no such file"]),
            (two, "", ["only0.safetensors", "no tensor \"2.weight\""]),
            (self.model_file, " hidden=128", ["model.safetensors", "\"0.weight\" has shape [256, 784], expected [128, 784]"]),
        ]
        for i, (path, extra, needles) in enumerate(cases):
            with self.subTest(path=path, extra=extra):
                cfg = os.path.join(d, f"bad{i}.ini")
                with open(cfg, "w") as f:
                    f.write(f"name = bad\n[sweep]\ntask = {TASK}{extra} model={path}\nmode = fp32\nseed = 0\n")
                out = os.path.join(d, f"bad{i}")
                p = run(["run", cfg, "--out", out, "--quiet"], check=False)
                self.assertEqual(p.returncode, 2, p.stderr)
                for n in needles:
                    self.assertIn(n, p.stderr)
                self.assertFalse(os.path.exists(os.path.join(out, "results.csv")))


if __name__ == "__main__":
    unittest.main()
