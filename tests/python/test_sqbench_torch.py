"""Tests of sqbench.torch (run by ctest with Debian's /usr/bin/python3, PYTHONPATH=build/python; torch is installed in
CI, so a missing torch fails here rather than skipping).

Every figure is checked against an independent computation: quantize_ against sqbench.quantize of the same laid-out
array, calibrate against numpy, importance against explicit full-shape weights, the STE against autograd of its
formula.
"""
import copy
import os
import subprocess
import sys
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


def im2col(x, kernel, stride, dilation, pads, mode):
    """numpy: the columns a convolution multiplies its laid-out weight by, [images * positions, C * taps], from x
    padded per spatial dimension by pads [(before, after)] ('zeros' or numpy's 'reflect'), by explicit loops."""
    nd = len(kernel)
    width = [(0, 0), (0, 0)] + list(pads)
    x = np.pad(x, width, mode="constant" if mode == "zeros" else mode)
    n, c = x.shape[:2]
    out = [(x.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    rows = []
    for img in range(n):
        for pos in np.ndindex(*out):
            col = []
            for ch in range(c):
                for tap in np.ndindex(*kernel):
                    idx = tuple(pos[i] * stride[i] + tap[i] * dilation[i] for i in range(nd))
                    col.append(x[(img, ch) + idx])
            rows.append(col)
    return np.array(rows, dtype=np.float64)


class CalibrateTest(unittest.TestCase):
    def check_conv(self, conv, x, pads):
        """calibrate equals numpy's mean of the im2col columns squared, and those columns times the laid-out
        weight are the convolution's output (so the reference pads and orders taps as the layer does)."""
        mode = conv.padding_mode
        cols = im2col(x.numpy().astype(np.float64), conv.kernel_size, conv.stride, conv.dilation, pads,
                      "reflect" if mode == "reflect" else mode)
        out = conv(x).detach().numpy().astype(np.float64)
        w = conv.weight.detach().numpy().astype(np.float64).reshape(conv.out_channels, -1)
        got = cols @ w.T + conv.bias.detach().numpy()
        want = np.moveaxis(out, 1, -1).reshape(-1, conv.out_channels)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        expect = np.mean(cols ** 2, axis=0)
        imp = sqt.calibrate(nn.Sequential(conv), [x[:2], x[2:]])
        self.assertEqual(list(imp), ["0.weight"])
        v = imp["0.weight"]
        self.assertEqual(v.dtype, np.float32)
        self.assertEqual(v.shape, (w.shape[1],))
        np.testing.assert_allclose(v, expect, rtol=1e-6)

    def test_conv2d_stride_dilation_padding(self):
        torch.manual_seed(0)
        conv = nn.Conv2d(3, 4, (3, 2), stride=(2, 1), dilation=(1, 2), padding=(1, 2))
        self.check_conv(conv, torch.randn(5, 3, 7, 6), [(1, 1), (2, 2)])

    def test_conv2d_reflect_padding(self):
        torch.manual_seed(1)
        conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect")
        self.check_conv(conv, torch.randn(3, 2, 5, 5), [(1, 1), (1, 1)])

    def test_conv1d_same_padding_with_even_kernel(self):
        torch.manual_seed(2)
        conv = nn.Conv1d(3, 2, 4, padding="same")  # total padding 3: 1 before, 2 after
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Using padding='same' with even kernel")  # torch's note on speed
            self.check_conv(conv, torch.randn(4, 3, 9), [(1, 2)])

    def test_linear_over_leading_dims(self):
        torch.manual_seed(3)
        net = nn.Sequential(nn.Linear(6, 5), nn.GELU(), nn.Linear(5, 3))
        batches = [torch.randn(2, 7, 6), torch.randn(3, 1, 6), torch.randn(4, 6)]
        imp = sqt.calibrate(net, batches)
        x0 = np.concatenate([b.numpy().reshape(-1, 6) for b in batches]).astype(np.float64)
        h = net[1](net[0](torch.from_numpy(x0).float())).detach().numpy().astype(np.float64)
        np.testing.assert_allclose(imp["0.weight"], np.mean(x0 ** 2, axis=0), rtol=1e-6)
        np.testing.assert_allclose(imp["2.weight"], np.mean(h ** 2, axis=0), rtol=1e-5)

    def test_filter_and_embedding(self):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb, self.fc = nn.Embedding(5, 4), nn.Linear(4, 2)

            def forward(self, ids):
                return self.fc(self.emb(ids))

        net = Net()
        imp = sqt.calibrate(net, [torch.tensor([[0, 1, 4]])])
        self.assertEqual(list(imp), ["fc.weight"])  # the embedding has no input activations
        with self.assertRaisesRegex(ValueError, "'emb.weight' is an Embedding's table: it has no input activations"):
            sqt.calibrate(net, [torch.tensor([0])], filter="emb")
        with self.assertRaisesRegex(ValueError, "filter='x' selects no module"):
            sqt.calibrate(net, [torch.tensor([0])], filter="x")


class ImportanceTest(unittest.TestCase):
    def test_importance_equals_full_shape_weights(self):
        net = small_net()
        torch.manual_seed(5)
        # Inputs with very unequal channel scales, so the weighted designs differ from the plain ones.
        scale = torch.tensor([0.1, 1.0, 5.0]).view(1, 3, 1, 1)
        imp = sqt.calibrate(net, [torch.randn(16, 3, 5, 5) * scale])
        self.assertEqual(sorted(imp), ["0.weight", "3.weight", "6.weight"])
        before = weights_of(net)
        plain = small_net()
        sqt.quantize_(plain, "kmeans", bits=2)
        report = sqt.quantize_(net, "kmeans", bits=2, importance=imp)
        self.assertTrue(all(r["importance"] for r in report))
        changed = 0
        for row in report:
            name = row["tensor"]
            w = before[name].numpy()
            full = np.tile(imp[name], (w.shape[0], 1)).reshape(w.shape)
            ref = sqbench.quantize(w, "kmeans", bits=2, granularity="channel", weights=full)
            got = dict(net.named_parameters())[name].detach().numpy()
            self.assertTrue(np.array_equal(got, ref.decoded), name)
            self.assertEqual(row["wmse"], ref.metrics["wmse"])
            changed += not np.array_equal(got, dict(plain.named_parameters())[name].detach().numpy())
        self.assertGreater(changed, 0, "importance changed no design")

    def test_saved_file_gives_the_same_design(self):
        net = small_net()
        imp = sqt.calibrate(net, [torch.randn(8, 3, 5, 5)])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "imp.safetensors")
            sqt.save_importance(imp, path)
            self.assertEqual(sorted(os.listdir(d)), ["imp.safetensors"])
            # The C++ reader (the CLI's) sees F32 vectors named like the weights, bit for bit.
            self.assertEqual(sqbench.safetensors_names(path), sorted(imp))
            for name, v in imp.items():
                self.assertTrue(np.array_equal(sqbench.read_safetensors(path, name), v), name)
            loaded = sqt.load_importance(path)
            a, b = small_net(), small_net()
            ra = sqt.quantize_(a, "kmeans_optimal", bits=2, importance=imp)
            rb = sqt.quantize_(b, "kmeans_optimal", bits=2, importance=path)
            self.assertEqual([r["wmse"] for r in ra], [r["wmse"] for r in rb])
            for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
                self.assertTrue(torch.equal(p, q), n)
            self.assertEqual(sorted(loaded), sorted(imp))

    def test_bad_importance(self):
        net = small_net()
        imp = sqt.calibrate(net, [torch.randn(2, 3, 5, 5)])
        before = weights_of(net)
        short = dict(imp, **{"3.weight": imp["3.weight"][:-1]})
        with self.assertRaisesRegex(ValueError, r"importance\['3.weight'\] has shape \(199,\); 3.weight \(16, 200\) "
                                    r"is laid out as 16 x 200, so it needs a vector of 200 values"):
            sqt.quantize_(net, "kmeans", bits=2, importance=short)
        neg = {k: v.copy() for k, v in imp.items()}
        neg["6.weight"][3] = -1
        with self.assertRaisesRegex(ValueError, r"importance\['6.weight'\]\[3\] = -1.0: importance must be finite"):
            sqt.quantize_(net, "kmeans", bits=2, importance=neg)
        missing = {k: v for k, v in imp.items() if k != "0.weight"}
        with self.assertRaisesRegex(ValueError, r"importance has no entry for '0.weight' \(every selected Linear/Conv"):
            sqt.quantize_(net, "kmeans", bits=2, importance=missing)
        sqt.quantize_(net, "kmeans", bits=2, importance=missing, filter="[36]")  # narrowed: fine
        self.assertTrue(torch.equal(net[0].weight, before["0.weight"]))
        with self.assertRaisesRegex(ValueError, "importance must be a dict"):
            sqt.quantize_(net, "kmeans", bits=2, importance=[1.0])
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(ValueError, r"importance\['a'\]\[1\] = nan"):
                sqt.save_importance({"a": np.array([1.0, np.nan])}, os.path.join(d, "x.safetensors"))
            self.assertEqual(os.listdir(d), [])

    def test_bad_calibration_input(self):
        net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2), nn.Conv2d(2, 4, 3, groups=2))
        with self.assertRaisesRegex(ValueError, r"module '2' is a grouped convolution \(groups=2\)"):
            sqt.calibrate(net, [torch.randn(2, 4)])
        with self.assertRaisesRegex(ValueError, "batches is empty"):
            sqt.calibrate(net, [], filter="[01]")
        with self.assertRaisesRegex(ValueError, "batches must be an iterable of inputs"):
            sqt.calibrate(net, torch.randn(2, 4), filter="[01]")
        class OnlyFirst(nn.Module):
            def __init__(self):
                super().__init__()
                self.a, self.b = nn.Linear(4, 3), nn.Linear(3, 2)

            def forward(self, x):
                return self.a(x)

        with self.assertRaisesRegex(ValueError, r"module 'b' saw no input in the 1 batch\(es\)"):
            sqt.calibrate(OnlyFirst(), [torch.randn(2, 4)])
        with self.assertRaisesRegex(ValueError, "batch 0 is a str"):
            sqt.calibrate(net, ["x"], filter="[01]")
        self.assertTrue(all(h == {} for h in (net[0]._forward_pre_hooks, net[1]._forward_pre_hooks)))


def fake_quant_of(module):
    return module.parametrizations.weight[0]


class QatTest(unittest.TestCase):
    def test_forward_is_sqbench_quantize(self):
        for dtype in (torch.float32, torch.bfloat16):
            net = small_net(dtype)
            before = weights_of(net)
            ptq = small_net(dtype)
            sqt.quantize_(ptq, "kmeans", bits=2, granularity="group:16")
            report = sqt.qat_(net, "kmeans", bits=2, granularity="group:16")
            self.assertEqual([r["tensor"] for r in report], ["0.weight", "3.weight", "6.weight"])
            for name in ("0", "3", "6"):
                m = dict(net.named_modules())[name]
                self.assertTrue(torch.equal(m.parametrizations.weight.original, before[name + ".weight"]))
                self.assertEqual(m.weight.dtype, dtype)
                self.assertTrue(torch.equal(m.weight, dict(ptq.named_modules())[name].weight), (name, dtype))
            x = torch.randn(4, 3, 5, 5).to(dtype)
            self.assertTrue(torch.equal(net(x), ptq(x)))

    def test_ragged_groups(self):
        lin = nn.Linear(10, 3)  # group:4 leaves a group of 2 at the end of every row
        w = lin.weight.detach().clone()
        sqt.qat_(lin, "uniform", bits=2, granularity="group:4")
        ref = sqbench.quantize(w.numpy(), "uniform", bits=2, granularity="group:4")
        self.assertTrue(np.array_equal(lin.weight.detach().numpy(), ref.decoded))

    def check_gradient(self, ste):
        torch.manual_seed(7)
        lin = nn.Linear(40, 6)
        sqt.qat_(lin, "kmeans", bits=2, ste=ste)
        fq = fake_quant_of(lin)
        latent = lin.parametrizations.weight.original
        x, target = torch.randn(9, 40), torch.randn(9, 6)
        nn.functional.mse_loss(lin(x), target).backward()
        got = latent.grad.clone()
        # The same loss through the estimator's formula, differentiated by autograd.
        w = latent.detach().clone().requires_grad_(True)
        q = torch.from_numpy(fq.result.decoded)
        levels = torch.from_numpy(fq.result.codebooks)  # one block per row
        # (t - t.detach()) is exactly 0 with t's gradient, so the forward value is q bit for bit.
        if ste == "identity":
            w_ste = (w - w.detach()) + q
        else:
            inside = torch.clamp(w, levels.min(1).values[:, None], levels.max(1).values[:, None])
            w_ste = (inside - inside.detach()) + q
        nn.functional.mse_loss(nn.functional.linear(x, w_ste, lin.bias.detach()), target).backward()
        self.assertTrue(torch.equal(got, w.grad))
        return got

    def test_identity_ste_gradient(self):
        g = self.check_gradient("identity")
        self.assertTrue(bool((g != 0).all()))

    def test_clipped_ste_gradient(self):
        g = self.check_gradient("clipped")
        zero = int((g == 0).sum())
        # k-means levels are centroids, so each row's extreme weights lie outside its levels' range.
        self.assertGreater(zero, 0)
        self.assertLess(zero, g.numel() // 2)

    def test_redesign_every_optimizer_steps(self):
        torch.manual_seed(3)
        lin = nn.Linear(16, 4)
        opt = torch.optim.SGD(lin.parameters(), lr=0.5)
        sqt.qat_(lin, "kmeans", bits=2, redesign_every=2)
        fq = fake_quant_of(lin)
        latent = lin.parametrizations.weight.original
        x = torch.randn(8, 16)
        designs, latents = [], []
        for step in range(5):
            for _ in range(2):  # two forward passes per step (accumulation) count as one step
                lin(x).square().mean().backward()
            opt.step()
            opt.zero_grad()
            latents.append(latent.detach().clone())
            lin(x)  # an evaluation pass after the step
            designs.append(fq.designs)
        # Designed at qat_, then after optimizer steps 2 and 4, seen at the next forward pass.
        self.assertEqual(designs, [1, 2, 2, 3, 3])
        # The latest design is that of the latent weight after step 4 (step 5 has moved it since).
        ref = sqbench.quantize(latents[3].numpy(), "kmeans", bits=2, granularity="channel")
        self.assertTrue(np.array_equal(fq.result.codebooks, ref.codebooks))
        self.assertFalse(torch.equal(latents[3], latents[4]))
        lin2 = nn.Linear(16, 4)
        opt2 = torch.optim.SGD(lin2.parameters(), lr=0.5)
        sqt.qat_(lin2, "kmeans", bits=2, redesign_every=0)
        for step in range(3):
            lin2(x).square().mean().backward()
            opt2.step()
            opt2.zero_grad()
        lin2(x)
        self.assertEqual(fake_quant_of(lin2).designs, 1)

    def test_redesign_uses_the_latent_weight(self):
        torch.manual_seed(4)
        lin = nn.Linear(12, 3)
        opt = torch.optim.SGD(lin.parameters(), lr=1.0)
        sqt.qat_(lin, "kmeans", bits=2, redesign_every=1)
        lin(torch.randn(5, 12)).sum().backward()
        opt.step()
        latent = lin.parametrizations.weight.original.detach().clone()
        forward = lin.weight.detach()
        ref = sqbench.quantize(latent.numpy(), "kmeans", bits=2, granularity="channel")
        self.assertEqual(fake_quant_of(lin).designs, 2)
        self.assertTrue(np.array_equal(forward.numpy(), ref.decoded))

    def test_finalize_bakes_the_forward_weight(self):
        net = small_net()
        params = {n: p for n, p in net.named_parameters()}
        sqt.qat_(net, "nf4", bits=4, filter="[03]")
        forward = {n: dict(net.named_modules())[n].weight.detach().clone() for n in ("0", "3")}
        names = sqt.finalize_(net)
        self.assertEqual(names, ["0.weight", "3.weight"])
        self.assertFalse(any(hasattr(m, "parametrizations") for m in net.modules()))
        for n in ("0", "3"):
            p = dict(net.named_parameters())[n + ".weight"]
            self.assertIsInstance(p, nn.Parameter)
            self.assertIs(p, params[n + ".weight"])  # the same object: an optimizer keeps it
            self.assertTrue(torch.equal(p.detach(), forward[n]))
        self.assertEqual(sorted(net.state_dict()), sorted(params))

    def test_qat_recovers_what_ptq_loses(self):
        torch.manual_seed(0)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            d = 16
            teacher = nn.Sequential(nn.Linear(d, 32), nn.Tanh(), nn.Linear(32, 8))
            x = torch.randn(4000, d)
            with torch.no_grad():
                y = teacher(x).argmax(1)
            xt, yt, xv, yv = x[:3000], y[:3000], x[3000:], y[3000:]

            def accuracy(m):
                with torch.no_grad():
                    return 100 * (m(xv).argmax(1) == yv).float().mean().item()

            def train(m, steps, lr):
                opt = torch.optim.Adam(m.parameters(), lr=lr)
                g = torch.Generator().manual_seed(1)
                for _ in range(steps):
                    i = torch.randint(0, 3000, (128,), generator=g)
                    loss = nn.functional.cross_entropy(m(xt[i]), yt[i])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()

            net = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 8))
            train(net, 600, 1e-2)
            ptq, qat = small_copy(net), small_copy(net)
            sqt.quantize_(ptq, "kmeans", bits=2, granularity="tensor")
            sqt.qat_(qat, "kmeans", bits=2, granularity="tensor", ste="clipped")
            train(qat, 300, 3e-3)
            sqt.finalize_(qat)
            fp, a_ptq, a_qat = accuracy(net), accuracy(ptq), accuracy(qat)
            self.assertGreater(fp - a_ptq, 5, (fp, a_ptq))  # 2 bits per tensor costs PTQ accuracy
            self.assertGreater(a_qat - a_ptq, 0.5 * (fp - a_ptq), (fp, a_ptq, a_qat))  # QAT wins most of it back
            for m in (qat[0], qat[2]):
                self.assertLessEqual(len(torch.unique(m.weight)), 4)
        finally:
            torch.set_num_threads(threads)


def small_copy(net):
    return copy.deepcopy(net)


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

    def test_bad_qat_input(self):
        net = small_net()
        before = weights_of(net)
        self.assertRefused(r"ste='clip' is not valid; use 'identity' or 'clipped'", sqt.qat_, net, "kmeans", bits=2,
                           ste="clip")
        self.assertRefused(r"redesign_every=-1 must be an integer >= 0", sqt.qat_, net, "kmeans", bits=2,
                           redesign_every=-1)
        self.assertRefused("no weight of this module is parametrized by qat_", sqt.finalize_, net)
        self.assertRefused("unknown quantizer", sqt.qat_, net, "kmean", bits=2)
        self.assertFalse(any(hasattr(m, "parametrizations") for m in net.modules()))
        sqt.qat_(net, "kmeans", bits=2, filter="3")
        self.assertRefused(r"'3.weight' is parametrized \(qat_\): call sqbench.torch.finalize_\(module\) first",
                           sqt.qat_, net, "kmeans", bits=2)
        self.assertRefused(r"'3.weight' is parametrized", sqt.quantize_, net, "kmeans", bits=2)
        self.assertFalse(hasattr(net[0], "parametrizations"))
        self.assertTrue(torch.equal(net[0].weight, before["0.weight"]))


class ReadmeTest(unittest.TestCase):
    def test_docs_snippet_prints_what_the_docs_say(self):
        readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "python.md")
        with open(readme, encoding="utf-8") as f:
            text = f.read()
        section = text[text.index("## From PyTorch"):]
        code = section[section.index("```python\n") + 10:]
        code = code[:code.index("```")]
        shown = section[section.index("```text\n", section.index("```python")) + 8:]
        shown = shown[:shown.index("```")]
        with tempfile.TemporaryDirectory() as d:
            # The package this test imported, wherever PYTHONPATH pointed (it may be relative to this folder).
            env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(sqbench.__file__))))
            r = subprocess.run([sys.executable, "-c", code], cwd=d, env=env, capture_output=True, text=True,
                               timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, shown)
            self.assertEqual(os.listdir(d), ["importance.safetensors"])

if __name__ == "__main__":
    unittest.main()
