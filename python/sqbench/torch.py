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
import math
import os

import numpy as np
import torch
from torch import nn

from . import _core

__all__ = ["quantize_", "layout_of", "load_importance"]

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


def load_importance(path):
    """{weight name: float32 vector} from a safetensors importance file (save_importance's, or any file of 1-D
    F32/F16/BF16 tensors named like the weights)."""
    path = os.fspath(path)
    return {n: _core.read_safetensors(path, n) for n in _core.safetensors_names(path)}
