#!/usr/bin/env python3
"""Writes a Llama-shaped BF16 safetensors checkpoint of random weights, tensor by tensor (memory stays at one
tensor), and an importance file for it: the walkthrough's and the benchmark's input.

    /usr/bin/python3 scripts/make_llama_checkpoint.py OUT_DIR [--layers N] [--hidden H] [--intermediate I]
                                                     [--vocab V] [--seed S]

OUT_DIR gets model.safetensors (the Hugging Face names: model.layers.N.self_attn.{q,k,v,o}_proj.weight,
model.layers.N.mlp.{gate,up,down}_proj.weight, the two norms per layer, model.norm.weight, and with --vocab
model.embed_tokens.weight and lm_head.weight) and importance.safetensors (a mean of x^2 per input channel for
every projection and lm_head, heavy-tailed as real activation statistics are). Weights are Gaussian with
std 0.02 plus a few outliers per row. Defaults: 2 layers of hidden 64, intermediate 172 (a tiny model);
--layers 5 --hidden 4096 --intermediate 11008 is 1.01e9 parameters shaped like Llama-7B's layers.
"""
import argparse
import json
import os
import struct

import numpy as np


def bf16_bits(a):
    """float32 -> bfloat16 bits, rounded to nearest even."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--intermediate", type=int, default=172)
    p.add_argument("--vocab", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    h, i = a.hidden, a.intermediate
    shapes = []  # (name, dtype, shape)
    if a.vocab:
        shapes.append(("model.embed_tokens.weight", "BF16", [a.vocab, h]))
        shapes.append(("lm_head.weight", "BF16", [a.vocab, h]))
    for n in range(a.layers):
        pre = "model.layers.%d." % n
        for proj in "qkvo":
            shapes.append((pre + "self_attn.%s_proj.weight" % proj, "BF16", [h, h]))
        shapes.append((pre + "mlp.gate_proj.weight", "BF16", [i, h]))
        shapes.append((pre + "mlp.up_proj.weight", "BF16", [i, h]))
        shapes.append((pre + "mlp.down_proj.weight", "BF16", [h, i]))
        shapes.append((pre + "input_layernorm.weight", "BF16", [h]))
        shapes.append((pre + "post_attention_layernorm.weight", "BF16", [h]))
    shapes.append(("model.norm.weight", "BF16", [h]))
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape in sorted(shapes):
        size = 2 * int(np.prod(shape))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    rng = np.random.default_rng(a.seed)
    importance = {}
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name, dtype, shape in sorted(shapes):
            if len(shape) == 1:
                w = np.ones(shape, np.float32)
            else:
                w = rng.standard_normal(shape, dtype=np.float32) * 0.02
                rows = np.arange(shape[0])
                w[rows, rng.integers(0, shape[1], shape[0])] *= 20  # an outlier per row
                if not name.endswith("embed_tokens.weight"):
                    importance[name] = (rng.standard_normal(shape[1]).astype(np.float32) ** 2) * \
                        np.exp(rng.standard_normal(shape[1]).astype(np.float32))
            f.write(bf16_bits(w).tobytes())
    ih, idata, off = {}, [], 0
    for name in sorted(importance):
        v = importance[name].astype("<f4").tobytes()
        ih[name] = {"dtype": "F32", "shape": [len(importance[name])], "data_offsets": [off, off + len(v)]}
        idata.append(v)
        off += len(v)
    t = json.dumps(ih).encode()
    t += b" " * (-len(t) % 8)
    with open(os.path.join(a.out, "importance.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(t)) + t + b"".join(idata))
    params = sum(int(np.prod(s)) for _, _, s in shapes)
    print("%s: %d tensors, %d parameters (%.3g)" % (a.out, len(shapes), params, params))


if __name__ == "__main__":
    main()
