"""sqbench.torch: sqbench's quantizers applied to a PyTorch module (CPU), in the module's own layouts.

    import sqbench.torch as sqt
    report = sqt.quantize_(model, "kmeans", bits=4)             # every Linear/Conv/Embedding weight, in place

Which weights, and how they are laid out (rows x cols, one codebook per row with granularity="channel"):

- ``nn.Linear`` ``[out, in]``: rows = output features, cols = input features.
- ``nn.Conv1d/2d/3d`` ``[out, in/groups, *kernel]``: rows = output channels, cols = input channel x kernel tap
  (``weight.reshape(out, -1)``, the column order of ``torch.nn.functional.unfold``).
- ``nn.Embedding`` ``[num_embeddings, dim]``: rows = embeddings (one token's vector per row). It has no input
  activations, so ``calibrate`` gathers nothing for it and it is designed unweighted.
- Only parameters named ``weight`` of two or more dimensions are candidates: biases and norm scales (1-D) are never
  quantized. Any other module owning such a weight (``ConvTranspose*``, whose weight is ``[in, out, ...]``, a
  custom layer) cannot be laid out: selecting it is a ``ValueError`` naming it; exclude it with ``filter``.
- A parameter shared by several modules (tied embeddings) is quantized once, under the first name that reaches it.

Weights must be on the CPU in float32, bfloat16, float16 or float64. float32 is handed to the C++ quantizer as a
view of the tensor's memory (no copy); the others are converted to float32 (float64 rounded to nearest, as
``sqbench.quantize`` does) and the float32 reconstruction is written back in the weight's dtype (bfloat16 and
float16 by round-to-nearest-even, torch's cast).
"""
import fnmatch
import json
import os
import struct
import tempfile

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from . import _core

__all__ = ["quantize_", "calibrate", "save_importance", "load_importance", "qat_", "finalize_", "layout_of"]

_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
# Module types whose weight's first axis is the output (the axis a per-channel codebook runs along).
_LAID_OUT = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


def _owned_weight(module):
    """The module's own parameter `weight` when it is a floating tensor of 2+ dimensions, else None."""
    w = module._parameters.get("weight")
    if w is None or not isinstance(w, torch.Tensor) or w.dim() < 2 or not w.is_floating_point():
        return None
    return w


def _is_parametrized(module):
    return hasattr(module, "parametrizations") and "weight" in getattr(module, "parametrizations", {})


def _weight_name(module_name):
    return f"{module_name}.weight" if module_name else "weight"


def layout_of(module):
    """(rows, cols) of `module.weight` as sqbench lays it out, or None when the module type has no layout."""
    if not isinstance(module, _LAID_OUT):
        return None
    w = module.weight
    return w.shape[0], w.numel() // w.shape[0]


def _select(module, filter, what):
    """[(module name, module, weight)] the filter selects among the modules owning a 2+-D floating `weight`.

    filter: None (every such module), a glob on module names (fnmatch: *, ?, [...]), or callable(name, module).
    Raises ValueError when nothing is selected or a selected module cannot be laid out.
    """
    if filter is not None and not (isinstance(filter, str) or callable(filter)):
        raise ValueError(f"{what}: filter must be None, a glob on module names (str) or a callable(name, module), "
                         f"not {type(filter).__name__}")
    candidates = []
    for name, m in module.named_modules():
        if _is_parametrized(m):
            candidates.append((name, m, m.parametrizations["weight"].original))
            continue
        w = _owned_weight(m)
        if w is not None:
            candidates.append((name, m, w))
    if filter is None:
        chosen = candidates
    elif isinstance(filter, str):
        chosen = [c for c in candidates if fnmatch.fnmatchcase(c[0], filter)]
    else:
        chosen = [c for c in candidates if filter(c[0], c[1])]
    if not chosen:
        names = ", ".join(repr(c[0]) for c in candidates[:8]) + (", ..." if len(candidates) > 8 else "")
        raise ValueError(f"{what}: filter={filter!r} selects no module with a weight matrix"
                         + (f" (the modules with one: {names})" if candidates else
                            " (the module has no parameter named weight of 2 or more dimensions)"))
    bad = [c for c in chosen if not isinstance(c[1], _LAID_OUT)]
    if bad:
        name, m, w = bad[0]
        raise ValueError(f"{what}: module {name!r} ({type(m).__name__}, weight {tuple(w.shape)}) has no known "
                         "layout (rows = output channels): sqbench.torch lays out Linear, Conv1d, Conv2d, Conv3d "
                         "and Embedding; exclude it with filter=" + (
                             f" ({len(bad)} such modules: " + ", ".join(repr(b[0]) for b in bad[:8]) + ")"
                             if len(bad) > 1 else ""))
    # A parameter shared by several modules is handled once, under its first name.
    seen, out = set(), []
    for c in chosen:
        if id(c[2]) not in seen:
            seen.add(id(c[2]))
            out.append(c)
    return out


def _check_weight(name, m, w, what, allow_parametrized=False):
    wname = _weight_name(name)
    if not allow_parametrized and _is_parametrized(m):
        raise ValueError(f"{what}: {wname!r} is parametrized (qat_): call sqbench.torch.finalize_(module) first")
    if w.device.type != "cpu":
        raise ValueError(f"{what}: {wname!r} is on {w.device}, not the CPU: move the module with .cpu() first "
                         "(sqbench quantizes in host memory)")
    if w.dtype not in _DTYPES:
        raise ValueError(f"{what}: {wname!r} is {w.dtype}; sqbench.torch quantizes float32, bfloat16, float16 "
                         "and float64 weights")
    if w.numel() == 0:
        raise ValueError(f"{what}: {wname!r} is empty (shape {tuple(w.shape)})")


def _host_array(w):
    """The weight as an array sqbench.quantize reads: a view of float32/float16/float64 memory, bfloat16 as a
    float32 copy (numpy has no bfloat16)."""
    t = w.detach()
    if t.dtype == torch.bfloat16:
        t = t.to(torch.float32)
    return t.numpy()


def _check_spec(spec, k, bits, granularity, seed, what):
    """Refuses a bad spec, k/bits or granularity before any weight is touched (sqbench.quantize's own checks,
    run on a tiny array)."""
    probe = np.linspace(-1.0, 1.0, 64, dtype=np.float32).reshape(2, 32)
    try:
        _core.quantize(probe, spec, k=k, bits=bits, granularity=granularity, seed=seed, threads=1)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def _bits_of(k):
    return (int(k) - 1).bit_length()


def _report_row(name, m, w, r, spec, threads, seed, weighted):
    t = r.timings
    row = {"module": name, "tensor": _weight_name(name), "layer": type(m).__name__,
           "dtype": str(w.dtype).replace("torch.", ""), "shape": tuple(w.shape), "quantizer": spec,
           "k": r.k, "bits": _bits_of(r.k), "granularity": r.granularity, "seed": seed,
           "rows": r.shape[0], "cols": r.shape[1], "blocks": int(r.blocks.shape[0]), "importance": weighted}
    row.update({c: v for c, v in r.metrics.items() if c not in row})
    row.update(fit_s=t["fit_s"], encode_s=t["encode_s"], decode_s=t["decode_s"],
               quantize_s=t["fit_s"] + t["encode_s"], threads=threads)
    return row


def _as_vector(v, wname, what):
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().to(torch.float32).numpy()
    try:
        a = np.asarray(v, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: importance[{wname!r}] is not a float vector ({e})") from None
    return a


def _importance_for(importance, selected, what):
    """{weight name: float32 vector of length cols} for the selected weights that take activation importance
    (Linear, Conv), validated; raises ValueError naming the tensor for a missing, misshapen, negative or
    non-finite entry."""
    if importance is None:
        return {}
    if isinstance(importance, (str, os.PathLike)):
        importance = load_importance(importance)
    if not isinstance(importance, dict):
        raise ValueError(f"{what}: importance must be a dict {{weight name: vector}} (calibrate's result) or a "
                         f"safetensors file written by save_importance, not {type(importance).__name__}")
    out = {}
    missing = []
    for name, m, w in selected:
        wname = _weight_name(name)
        if isinstance(m, nn.Embedding):
            if wname in importance:
                raise ValueError(f"{what}: importance[{wname!r}]: {wname} is an Embedding's table (rows = "
                                 "embeddings); a per-input-channel vector does not apply to it")
            continue
        if wname not in importance:
            missing.append(wname)
            continue
        v = _as_vector(importance[wname], wname, what)
        rows, cols = layout_of(m)
        if v.ndim != 1 or v.shape[0] != cols:
            raise ValueError(f"{what}: importance[{wname!r}] has shape {v.shape}; {wname} {tuple(w.shape)} is laid "
                             f"out as {rows} x {cols}, so it needs a vector of {cols} values (one per column)")
        bad = np.flatnonzero(~np.isfinite(v) | (v < 0))
        if bad.size:
            raise ValueError(f"{what}: importance[{wname!r}][{bad[0]}] = {v[bad[0]]!r}: importance must be "
                             "finite and >= 0")
        out[wname] = v
    if missing:
        raise ValueError(f"{what}: importance has no entry for {', '.join(map(repr, missing[:8]))}"
                         + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
                         + " (every selected Linear/Conv weight needs one: narrow filter= to the weights it "
                         "covers, or calibrate with the same filter)")
    return out


def _full_weights(v, w):
    """A per-column vector as sqbench.quantize's weights: one per element, in the weight's shape."""
    rows = w.shape[0]
    return np.ascontiguousarray(np.broadcast_to(v, (rows, v.shape[0]))).reshape(tuple(w.shape))


def quantize_(module, spec, *, bits=None, k=None, granularity="channel", filter=None, importance=None,
              threads=0, seed=0):
    """Quantizes the selected weights of `module` in place: each is replaced by its reconstruction by the
    quantizer `spec` (any `sqbench list` spec, e.g. "kmeans", "nf4", "uniform symmetric=1") at K = k codes or
    2**bits, one codebook per tensor, per row ("channel", the default) or per group of G columns ("group:G").

    filter: None (every Linear, Conv1d/2d/3d and Embedding weight), a glob on module names ("layers.*.mlp.*")
    or a callable(name, module) -> bool. importance: calibrate()'s dict {weight name: per-column vector} or a
    file save_importance wrote; a vector v weights element (r, c) of the laid-out weight by v[c] (every selected
    Linear/Conv weight needs an entry; embeddings are designed unweighted). threads: blocks designed in
    parallel (0 = every core; the result is the same for any value). seed: for randomized quantizers.

    Returns the report: one dict per quantized weight with the module name, the tensor name, layer type, dtype,
    shape and the results.csv columns (quantizer, k, bits, granularity, rows, cols, blocks, mse, nmse, sqnr_db,
    entropy_bits, storage_bits, coded_bits, wmse, ..., fit_s, encode_s, decode_s, quantize_s, threads).
    Every check (filter, layouts, devices, dtypes, the spec, importance, non-finite weights) runs before any
    weight is changed; errors are ValueError.
    """
    what = "sqbench.torch.quantize_"
    if not isinstance(module, nn.Module):
        raise ValueError(f"{what}: module must be a torch.nn.Module, not {type(module).__name__}")
    selected = _select(module, filter, what)
    for name, m, w in selected:
        _check_weight(name, m, w, what)
    _check_spec(spec, k, bits, granularity, seed, what)
    vectors = _importance_for(importance, selected, what)
    for name, m, w in selected:
        if not bool(torch.isfinite(w.detach()).all()):
            bad = torch.nonzero(~torch.isfinite(w.detach()))[0].tolist()
            raise ValueError(f"{what}: {_weight_name(name)!r}{bad} = {w.detach()[tuple(bad)].item()}: weights "
                             "must be finite")
    report = []
    for name, m, w in selected:
        wname = _weight_name(name)
        weights = _full_weights(vectors[wname], w) if wname in vectors else None
        r = _core.quantize(_host_array(w), spec, k=k, bits=bits, granularity=granularity, seed=seed,
                           threads=threads, weights=weights)
        with torch.no_grad():
            w.copy_(torch.from_numpy(r.decoded))
        report.append(_report_row(name, m, w, r, spec, threads, seed, wname in vectors))
    return report


def _conv_padding(m):
    """Per spatial dimension (before, after) zero or padding_mode padding, as the convolution applies it."""
    nd = len(m.kernel_size)
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return [(0, 0)] * nd
        pads = []  # "same": the extra element of an odd total goes after, as torch pads it
        for k, d in zip(m.kernel_size, m.dilation):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return pads
    return [(p, p) for p in m.padding]


def _conv_columns_x2(m, x):
    """sum over images and output positions of the unfolded input squared, per column of the laid-out weight
    (input channel major, then kernel taps in row-major order: F.unfold's order and weight.reshape(out, -1)'s),
    and how many positions were summed."""
    nd = len(m.kernel_size)
    if x.dim() == nd + 1:  # an unbatched input
        x = x.unsqueeze(0)
    x = x.detach().to(torch.float64)
    pads = _conv_padding(m)
    flat = [p for pair in reversed(pads) for p in pair]  # F.pad lists the last dimension first
    if any(flat):
        mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
        x = F.pad(x, flat, mode=mode)
    kernel, dilation, stride = tuple(m.kernel_size), tuple(m.dilation), tuple(m.stride)
    if nd == 1:  # unfold is 2-D only: a 1-D signal is an image of height 1
        x = x.unsqueeze(2)
        kernel, dilation, stride = (1,) + kernel, (1,) + dilation, (1,) + stride
    n, c = x.shape[0], x.shape[1]
    taps = c * int(np.prod(kernel))
    positions = 1
    for size, k, d, st in zip(x.shape[2:], kernel, dilation, stride):
        positions *= max(0, (size - d * (k - 1) - 1) // st + 1)
    total = torch.zeros(taps, dtype=torch.float64)
    # Images in chunks, so the unfolded copy stays near 2**24 values.
    step = max(1, (1 << 24) // max(1, taps * positions))
    for start in range(0, n, step):
        u = F.unfold(x[start:start + step], kernel, dilation=dilation, stride=stride)  # [images, taps, positions]
        total += (u * u).sum(dim=(0, 2))
    return total, n * positions


def calibrate(module, batches, *, filter=None):
    """Activation importance: {weight name: float32 numpy vector of the mean of x^2 per column of the laid-out
    weight}, gathered by forward pre-hooks while `module` runs on `batches` under torch.no_grad() (in the mode
    it is in: call .eval() first for dropout and batch norm).

    - nn.Linear: x^2 per input feature, averaged over every leading dimension (batch, tokens, ...): [in].
    - nn.Conv1d/2d: x^2 per input channel x kernel tap, averaged over images and output positions, from the
      input as the convolution sees it (padded with zeros or the padding_mode), unfolded by
      torch.nn.functional.unfold: [in * kh * kw], the column order of weight.reshape(out, -1). A padded tap
      counts as 0, as it multiplies the weight by 0.
    - filter as in quantize_. With filter=None, embeddings (which have no input activations) are left out;
      a grouped convolution (each group of output channels sees other inputs, which one per-column vector cannot
      say) and Conv3d are refused: exclude them with filter.

    batches: an iterable; each item is a tensor (module(x)), a tuple or list (module(*item)) or a dict
    (module(**item)). For a DataLoader of (image, label) pairs pass (x for x, _ in loader).
    save_importance writes the result for `sqbench quantize --importance`; quantize_(importance=) takes it.
    """
    what = "sqbench.torch.calibrate"
    if not isinstance(module, nn.Module):
        raise ValueError(f"{what}: module must be a torch.nn.Module, not {type(module).__name__}")
    selected = []
    for name, m, w in _select(module, filter, what):
        wname = _weight_name(name)
        if isinstance(m, nn.Embedding):
            if filter is None:
                continue
            raise ValueError(f"{what}: {wname!r} is an Embedding's table: it has no input activations to "
                             "calibrate on (exclude it with filter=)")
        if isinstance(m, nn.Conv3d):
            raise ValueError(f"{what}: module {name!r} is a Conv3d: calibrate unfolds 1-D and 2-D convolutions "
                             "only (exclude it with filter=)")
        if isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.groups != 1:
            raise ValueError(f"{what}: module {name!r} is a grouped convolution (groups={m.groups}): its output "
                             "channels see different inputs, which one vector per column cannot describe "
                             "(exclude it with filter=)")
        selected.append((name, m))
    if isinstance(batches, (torch.Tensor, np.ndarray)):
        raise ValueError(f"{what}: batches must be an iterable of inputs (e.g. [x] or a generator), not one "
                         f"{type(batches).__name__} (its rows would be run one by one)")
    sums = {}
    counts = {}

    def hook_for(name, m):
        def hook(mod, args):
            if not args or not isinstance(args[0], torch.Tensor):
                raise ValueError(f"{what}: module {name!r} was called without a tensor as its first argument")
            x = args[0]
            if isinstance(mod, nn.Linear):
                x = x.detach().to(torch.float64)
                s = (x * x).reshape(-1, x.shape[-1]).sum(dim=0)
                c = x.numel() // x.shape[-1]
            else:
                s, c = _conv_columns_x2(mod, x)
            sums[name] = sums[name] + s if name in sums else s
            counts[name] = counts.get(name, 0) + c
        return hook

    handles = [m.register_forward_pre_hook(hook_for(name, m)) for name, m in selected]
    try:
        n = 0
        with torch.no_grad():
            for b in batches:
                if isinstance(b, torch.Tensor):
                    module(b)
                elif isinstance(b, (tuple, list)):
                    module(*b)
                elif isinstance(b, dict):
                    module(**b)
                else:
                    raise ValueError(f"{what}: batch {n} is a {type(b).__name__}; give tensors, tuples/lists "
                                     "(positional arguments) or dicts (keyword arguments)")
                n += 1
    finally:
        for h in handles:
            h.remove()
    if n == 0:
        raise ValueError(f"{what}: batches is empty: give at least one batch of inputs")
    out = {}
    for name, m in selected:
        wname = _weight_name(name)
        if counts.get(name, 0) == 0:
            raise ValueError(f"{what}: module {name!r} saw no input in the {n} batch(es) (is it used by forward?); "
                             "exclude it with filter=")
        v = (sums[name] / counts[name]).to(torch.float32).numpy()
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise ValueError(f"{what}: module {name!r}: the mean x^2 of column {bad[0]} is {v[bad[0]]} (its inputs "
                             "have non-finite values or overflow)")
        out[wname] = v
    return out


def _check_importance_dict(importance, what):
    if not isinstance(importance, dict):
        raise ValueError(f"{what}: importance must be a dict {{weight name: vector}}, not "
                         f"{type(importance).__name__}")
    if not importance:
        raise ValueError(f"{what}: importance is empty")
    out = {}
    for name, v in importance.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what}: importance key {name!r} is not a tensor name")
        a = _as_vector(v, name, what)
        if a.ndim != 1 or a.shape[0] == 0:
            raise ValueError(f"{what}: importance[{name!r}] has shape {a.shape}; give a non-empty 1-D vector "
                             "(one value per column of the laid-out weight)")
        bad = np.flatnonzero(~np.isfinite(a) | (a < 0))
        if bad.size:
            raise ValueError(f"{what}: importance[{name!r}][{bad[0]}] = {a[bad[0]]!r}: importance must be "
                             "finite and >= 0")
        out[name] = np.ascontiguousarray(a, dtype="<f4")
    return out


def save_importance(importance, path):
    """Writes an importance dict (calibrate's) as a safetensors file of F32 1-D tensors named like the weights,
    the format `sqbench quantize --importance` and quantize_(importance=path) read. Written under a temporary
    name and renamed when complete, so a failure leaves no file at `path`."""
    what = "sqbench.torch.save_importance"
    tensors = _check_importance_dict(importance, what)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{what}: the folder of {path!r} does not exist")
    # The library's one safetensors writer (temporary name, renamed when complete), as sqbench quantize reads it.
    _core.write_safetensors(path, tensors, {"sqbench": "importance",
                                            "statistic": "mean of x^2 per column of the laid-out weight"})


def load_importance(path):
    """{weight name: float32 vector} from a safetensors importance file (save_importance's, or any file of 1-D
    F32/F16/BF16 tensors named like the weights)."""
    path = os.fspath(path)
    return _core.read_importance(path)


class _StraightThrough(torch.autograd.Function):
    """Forward: the fake-quantized weight. Backward: dL/dW = dL/dW_q (identity), or 0 where W lies outside its
    block's [min level, max level] (clipped)."""

    @staticmethod
    def forward(ctx, w, fq):
        q, inside = fq.fake_quantize(w.detach(), want_mask=fq.ste == "clipped")
        ctx.clipped = inside is not None
        if ctx.clipped:
            ctx.save_for_backward(inside)
        return q

    @staticmethod
    def backward(ctx, grad):
        if ctx.clipped:
            (inside,) = ctx.saved_tensors
            return grad.masked_fill(~inside, 0), None
        return grad, None


class FakeQuantize(nn.Module):
    """The parametrization qat_ registers on a weight: W -> its quantization by the block codebooks of the latest
    design (code = number of thresholds < w, then that code's level: sqbench's shared encoder, so right after a
    design the forward weight equals sqbench.quantize(W).decoded bit for bit). The design is redone from the
    latent weight every `redesign_every` optimizer steps (0: never after the first); a step is seen as a change
    of the latent parameter between two forward passes (its in-place version counter), so several forward
    passes per step (gradient accumulation, evaluation) count once and nothing is needed in the training loop.
    """

    def __init__(self, name, spec, k, bits, granularity, ste, redesign_every, seed, threads, importance):
        super().__init__()
        self.name, self.spec, self.k, self.bits, self.granularity = name, spec, k, bits, granularity
        self.ste, self.redesign_every, self.seed, self.threads = ste, redesign_every, seed, threads
        self.importance = importance  # per-column vector or None
        self.designs = 0  # how many designs so far
        self.steps = 0  # optimizer steps since the latest design
        self._seen_version = None
        self.result = None  # the latest sqbench.quantize result

    def design(self, w):
        t = w.detach()
        weights = _full_weights(self.importance, t) if self.importance is not None else None
        r = _core.quantize(_host_array(t), self.spec, k=self.k, bits=self.bits, granularity=self.granularity,
                           seed=self.seed, threads=self.threads, weights=weights)
        blocks = r.blocks
        lengths = blocks[:, 1]
        self._equal = bool(np.all(lengths == lengths[0]) and np.all(blocks[:, 0] == np.arange(len(blocks)) * lengths[0]))
        self._blocks = [(int(o), int(n)) for o, n in blocks]
        self._thresholds = torch.from_numpy(np.ascontiguousarray(r.thresholds))
        self._levels = torch.from_numpy(np.ascontiguousarray(r.codebooks))
        self._lo = self._levels.min(dim=1).values
        self._hi = self._levels.max(dim=1).values
        q, _ = self.fake_quantize(t)
        if not torch.equal(q, torch.from_numpy(r.decoded).to(q.dtype)):
            # Every registered quantizer decodes as codebooks[block, code] with code = thresholds below x; one that
            # did not (a code refinement) could not be held fixed between designs.
            raise ValueError(f"sqbench.torch.qat_: {self.spec!r}'s reconstruction of {self.name!r} is not its "
                             "codebook applied by thresholds, so its design cannot be held between redesigns")
        self.result = r
        self.designs += 1
        self.steps = 0
        self._seen_version = w._version
        return r

    def fake_quantize(self, w, want_mask=False):
        """(W quantized by the current design in W's dtype, the clipped-STE mask or None)."""
        x = w.to(torch.float32).reshape(-1)
        if self._equal:
            xb = x.view(len(self._blocks), -1)
            codes = torch.searchsorted(self._thresholds, xb)  # side left: how many thresholds are < x
            q = torch.gather(self._levels, 1, codes).reshape(-1)
            mask = ((xb >= self._lo[:, None]) & (xb <= self._hi[:, None])).reshape(-1) if want_mask else None
        else:
            q = torch.empty_like(x)
            mask = torch.empty(x.shape, dtype=torch.bool) if want_mask else None
            for b, (o, n) in enumerate(self._blocks):
                xb = x[o:o + n]
                q[o:o + n] = self._levels[b][torch.searchsorted(self._thresholds[b], xb)]
                if want_mask:
                    mask[o:o + n] = (xb >= self._lo[b]) & (xb <= self._hi[b])
        q = q.reshape(w.shape).to(w.dtype)
        return q, (mask.reshape(w.shape) if want_mask else None)

    def forward(self, w):
        v = w._version
        if self._seen_version is not None and v != self._seen_version:
            self.steps += 1
        self._seen_version = v
        if self.redesign_every > 0 and self.steps >= self.redesign_every:
            self.design(w)
        return _StraightThrough.apply(w, self)

    def extra_repr(self):
        return (f"{self.spec!r}, k={self.k}, bits={self.bits}, granularity={self.granularity!r}, ste={self.ste!r}, "
                f"redesign_every={self.redesign_every}")


def _fake_quantizers(module):
    out = []
    for name, m in module.named_modules():
        if _is_parametrized(m):
            for p in m.parametrizations["weight"]:
                if isinstance(p, FakeQuantize):
                    out.append((name, m, p))
    return out


def qat_(module, spec, *, bits=None, k=None, granularity="channel", ste="identity", redesign_every=0,
         filter=None, importance=None, threads=0, seed=0):
    """Quantization-aware training: parametrizes the selected weights (torch.nn.utils.parametrize) so the forward
    pass uses their quantization by `spec` and the backward pass the straight-through estimator: ste="identity"
    passes dL/dW_q to the latent weight unchanged, "clipped" zeroes it where the latent weight lies outside its
    block's [min level, max level]. The codebooks are designed now from the weights and redesigned from the
    latent weights every `redesign_every` optimizer steps (0: never). Training stays in your loop: the latent
    weight is the same Parameter object as before (an optimizer built earlier keeps working), reached as
    module.parametrizations.weight.original. finalize_(module) bakes the quantized weights in.

    spec, bits, k, granularity, filter, importance, threads, seed: as in quantize_. Returns the report of the
    first design (quantize_'s rows). Errors (ValueError) before any module is changed.
    """
    what = "sqbench.torch.qat_"
    if not isinstance(module, nn.Module):
        raise ValueError(f"{what}: module must be a torch.nn.Module, not {type(module).__name__}")
    if ste not in ("identity", "clipped"):
        raise ValueError(f"{what}: ste={ste!r} is not valid; use 'identity' or 'clipped'")
    if isinstance(redesign_every, bool) or not isinstance(redesign_every, int) or redesign_every < 0:
        raise ValueError(f"{what}: redesign_every={redesign_every!r} must be an integer >= 0 (optimizer steps "
                         "between codebook designs; 0 = designed once)")
    selected = _select(module, filter, what)
    for name, m, w in selected:
        _check_weight(name, m, w, what)
    _check_spec(spec, k, bits, granularity, seed, what)
    vectors = _importance_for(importance, selected, what)
    fqs, report = [], []
    for name, m, w in selected:
        wname = _weight_name(name)
        if not bool(torch.isfinite(w.detach()).all()):
            raise ValueError(f"{what}: {wname!r} has non-finite values")
        fq = FakeQuantize(wname, spec, k, bits, granularity, ste, redesign_every, seed, threads, vectors.get(wname))
        r = fq.design(w)
        fqs.append(fq)
        report.append(_report_row(name, m, w, r, spec, threads, seed, wname in vectors))
    for (name, m, w), fq in zip(selected, fqs):
        # Registering evaluates the parametrization once and sets the original in place (a version bump that
        # is no optimizer step): no step is counted until it is done.
        fq._seen_version = None
        parametrize.register_parametrization(m, "weight", fq)
        fq._seen_version = m.parametrizations["weight"].original._version
        fq.steps = 0
    return report


def finalize_(module):
    """Ends quantization-aware training: every weight qat_ parametrized becomes a plain parameter holding its
    quantized value under the latest codebooks (the weight the forward pass used), and the parametrization is
    removed. Returns the names of the weights baked."""
    found = _fake_quantizers(module)
    if not found:
        raise ValueError("sqbench.torch.finalize_: no weight of this module is parametrized by qat_")
    names = []
    for name, m, _ in found:
        with torch.no_grad():
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        names.append(_weight_name(name))
    return names
