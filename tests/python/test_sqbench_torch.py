"""Tests of sqbench.torch (run by ctest with Debian's /usr/bin/python3, PYTHONPATH=build/python; torch is installed in
CI, so a missing torch fails here rather than skipping).

Every figure is checked against an independent computation: quantize_ against sqbench.quantize of the same laid-out
array, calibrate against numpy, importance against explicit full-shape weights, the STE against autograd of its
formula.
"""
import os
import tempfile
import unittest
import warnings

import numpy as np
import torch
from torch import nn

import sqbench
import sqbench.torch as sqt


def small_net(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    # On [N, 3, 5, 5] images.
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 5 * 5, 16),
                        nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 10))
    return net.to(dtype)


def weights_of(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


class QuantizeInPlaceTest(unittest.TestCase):
    def check_equals_sqbench(self, dtype, spec="kmeans", bits=2, granularity="channel"):
        net = small_net(dtype)
        before = weights_of(net)
        ptrs = {n: p.data_ptr() for n, p in net.named_parameters()}
        report = sqt.quantize_(net, spec, bits=bits, granularity=granularity, threads=2)
        self.assertEqual([r["tensor"] for r in report], ["0.weight", "3.weight", "6.weight"])
        for row in report:
            name = row["tensor"]
            w = before[name]
            x = w.to(torch.float32).numpy()
            ref = sqbench.quantize(x, spec, bits=bits, granularity=granularity)
            got = dict(net.named_parameters())[name]
            self.assertEqual(got.dtype, dtype, name)
            self.assertEqual(got.data_ptr(), ptrs[name], f"{name} was replaced, not written in place")
            expect = torch.from_numpy(ref.decoded).to(dtype)
            self.assertTrue(torch.equal(got.detach(), expect), f"{name} ({dtype}) differs from sqbench.quantize")
            self.assertEqual(row["mse"], ref.metrics["mse"])
            self.assertEqual(row["sqnr_db"], ref.metrics["sqnr_db"])
            self.assertEqual((row["rows"], row["cols"], row["blocks"]),
                             (w.shape[0], w.numel() // w.shape[0], ref.blocks.shape[0]))
            self.assertEqual((row["quantizer"], row["k"], row["bits"], row["granularity"], row["dtype"]),
                             (spec, 2 ** bits, bits, granularity, str(dtype).replace("torch.", "")))
        # Biases and the LayerNorm are untouched.
        for n, p in net.named_parameters():
            if not n.endswith("weight") or n == "4.weight":
                self.assertTrue(torch.equal(p.detach(), before[n]), n)

    def test_float32_equals_sqbench_quantize(self):
        self.check_equals_sqbench(torch.float32)

    def test_bfloat16_kept_and_equal(self):
        self.check_equals_sqbench(torch.bfloat16, spec="nf4", bits=4, granularity="group:16")

    def test_float16_kept_and_equal(self):
        self.check_equals_sqbench(torch.float16, spec="uniform", bits=3)

    def test_float32_is_quantized_without_a_copy(self):
        # The array sqbench reads is a view of the parameter's memory.
        lin = nn.Linear(8, 4)
        a = sqt._host_array(lin.weight)
        self.assertEqual(a.ctypes.data, lin.weight.data_ptr())

    def test_conv1d_and_embedding_layouts(self):
        torch.manual_seed(1)
        net = nn.ModuleDict({"emb": nn.Embedding(12, 6), "conv": nn.Conv1d(6, 5, 3)})
        before = weights_of(net)
        report = sqt.quantize_(net, "kmeans", bits=2)
        by = {r["tensor"]: r for r in report}
        self.assertEqual((by["emb.weight"]["rows"], by["emb.weight"]["cols"]), (12, 6))
        self.assertEqual((by["conv.weight"]["rows"], by["conv.weight"]["cols"]), (5, 18))
        for name in by:
            ref = sqbench.quantize(before[name].numpy(), "kmeans", bits=2, granularity="channel")
            self.assertTrue(np.array_equal(dict(net.named_parameters())[name].detach().numpy(), ref.decoded))

    def test_filter_glob_and_callable(self):
        net = small_net()
        before = weights_of(net)
        report = sqt.quantize_(net, "uniform", bits=3, filter="[36]")
        self.assertEqual([r["module"] for r in report], ["3", "6"])
        self.assertTrue(torch.equal(net[0].weight, before["0.weight"]))
        net = small_net()
        report = sqt.quantize_(net, "uniform", bits=3, filter=lambda name, m: isinstance(m, nn.Conv2d))
        self.assertEqual([r["module"] for r in report], ["0"])

    def test_tied_weight_quantized_once(self):
        emb = nn.Embedding(10, 8)
        head = nn.Linear(8, 10, bias=False)
        head.weight = emb.weight
        net = nn.ModuleDict({"emb": emb, "head": head})
        before = emb.weight.detach().clone()
        report = sqt.quantize_(net, "kmeans", bits=2)
        self.assertEqual([r["tensor"] for r in report], ["emb.weight"])
        ref = sqbench.quantize(before.numpy(), "kmeans", bits=2, granularity="channel")
        self.assertTrue(np.array_equal(head.weight.detach().numpy(), ref.decoded))


class BadInputTest(unittest.TestCase):
    def assertRefused(self, pattern, fn, *args, **kwargs):
        with self.assertRaisesRegex(ValueError, pattern):
            fn(*args, **kwargs)

    def test_filter_selecting_nothing(self):
        net = small_net()
        self.assertRefused(r"filter='enc\*' selects no module with a weight matrix \(the modules with one: '0', '3', "
                           r"'6'\)", sqt.quantize_, net, "kmeans", bits=2, filter="enc*")
        self.assertRefused("selects no module", sqt.quantize_, net, "kmeans", bits=2, filter=lambda n, m: False)
        self.assertRefused("filter must be None, a glob", sqt.quantize_, net, "kmeans", bits=2, filter=3)

    def test_layer_without_a_layout(self):
        net = nn.Sequential(nn.Linear(4, 4), nn.ConvTranspose2d(4, 2, 3))
        before = weights_of(net)
        self.assertRefused(r"module '1' \(ConvTranspose2d, weight \(4, 2, 3, 3\)\) has no known layout.*Linear, "
                           r"Conv1d, Conv2d, Conv3d and Embedding; exclude it with filter=",
                           sqt.quantize_, net, "kmeans", bits=2)
        # Nothing was changed: the checks run before any work.
        self.assertTrue(torch.equal(net[0].weight, before["0.weight"]))
        sqt.quantize_(net, "kmeans", bits=2, filter="0")

    def test_weight_on_another_device(self):
        net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4, device="meta"))
        before = weights_of(net)
        self.assertRefused(r"'1.weight' is on meta, not the CPU: move the module with .cpu\(\) first",
                           sqt.quantize_, net, "kmeans", bits=2)
        self.assertTrue(torch.equal(net[0].weight, before["0.weight"]))

    def test_bad_spec_before_any_work(self):
        net = small_net()
        before = weights_of(net)
        self.assertRefused("unknown quantizer 'kmean'; valid quantizers: ", sqt.quantize_, net, "kmean", bits=2)
        self.assertRefused("give exactly one of k= and bits=", sqt.quantize_, net, "kmeans")
        self.assertRefused("nf4 is a fixed 16-code table", sqt.quantize_, net, "nf4", bits=3)
        self.assertRefused("granularity 'chanel' is not valid", sqt.quantize_, net, "kmeans", bits=2,
                           granularity="chanel")
        for n, p in net.named_parameters():
            self.assertTrue(torch.equal(p.detach(), before[n]), n)

    def test_non_finite_and_integer_weights(self):
        net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
        with torch.no_grad():
            net[1].weight[1, 0] = float("nan")
        before = weights_of(net)
        self.assertRefused(r"'1.weight'\[1, 0\] = nan: weights must be finite", sqt.quantize_, net, "kmeans", bits=2)
        self.assertTrue(torch.equal(net[0].weight, before["0.weight"]))
        self.assertRefused("module must be a torch.nn.Module", sqt.quantize_, torch.zeros(3, 3), "kmeans", bits=2)


if __name__ == "__main__":
    unittest.main()
