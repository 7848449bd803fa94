#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_gguf (tests/fuzz/gguf/) and fuzz_imatrix_dat (tests/fuzz/imatrix_dat/) from
the formats' descriptions (sqb/importance.hpp), with struct only: valid importance matrices of a few shapes
(metadata of every value type, alignment 32 and 64, several weights) and broken ones (truncated, wrong
counts, a zero token count, a non-F32 tensor, an expert matrix).

    tests/fuzz/make_seeds_imatrix.py
"""
import pathlib
import random
import shutil
import struct

here = pathlib.Path(__file__).resolve().parent
rng = random.Random(19)


def fresh(name):
    d = here / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    return d


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(entries, align=32, extra_kv=True, ggml_type=0, version=3, n_mat=1):
    kv = [gstr("general.type") + struct.pack("<I", 8) + gstr("imatrix")]
    if extra_kv:
        kv.append(gstr("imatrix.chunk_count") + struct.pack("<II", 5, 7))
        kv.append(gstr("imatrix.datasets") + struct.pack("<IIQ", 9, 8, 1) + gstr("calib.txt"))
        kv.append(gstr("x.f64") + struct.pack("<Id", 12, 0.5))
        kv.append(gstr("x.bools") + struct.pack("<IIQ", 9, 7, 3) + b"\x01\x00\x01")
    if align != 32:
        kv.append(gstr("general.alignment") + struct.pack("<II", 4, align))
    infos, data = b"", b""
    for name, sums, count in entries:
        for suffix, values, dims in ((".in_sum2", sums, [len(sums) // n_mat] + ([n_mat] if n_mat > 1 else [])),
                                     (".counts", [count] * n_mat, [1] + ([n_mat] if n_mat > 1 else []))):
            infos += gstr(name + suffix) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            infos += struct.pack("<IQ", ggml_type, len(data))
            data += struct.pack("<%df" % len(values), *values)
            data += b"\0" * (-len(data) % align)
    head = b"GGUF" + struct.pack("<IQQ", version, 2 * len(entries), len(kv)) + b"".join(kv) + infos
    head += b"\0" * (-len(head) % align)
    return head + data


def dat(entries, trailer=True):
    out = struct.pack("<i", len(entries))
    for name, sums, ncall in entries:
        b = name.encode()
        out += struct.pack("<i", len(b)) + b + struct.pack("<ii", ncall, len(sums)) + struct.pack("<%df" % len(sums), *sums)
    if trailer:
        out += struct.pack("<ii", 10, 9) + b"calib.txt"
    return out


def vec(n):
    return [abs(rng.gauss(0, 3)) for _ in range(n)]


g = fresh("gguf")
seeds = {
    "one.gguf": gguf([("blk.0.ffn_down.weight", vec(16), 4.0)]),
    "three.gguf": gguf([("blk.%d.attn_q.weight" % i, vec(8), 2.0) for i in range(3)]),
    "align64.gguf": gguf([("output.weight", vec(5), 1.0)], align=64),
    "plain.gguf": gguf([("a.weight", vec(3), 1.0)], extra_kv=False),
    "v2.gguf": gguf([("a.weight", vec(3), 1.0)], version=2),
    "bad_zero_count.gguf": gguf([("a.weight", vec(3), 0.0)]),
    "bad_f16.gguf": gguf([("a.weight", vec(4), 1.0)], ggml_type=1),
    "bad_experts.gguf": gguf([("a.weight", vec(8), 1.0)], n_mat=2),
    "bad_version.gguf": gguf([("a.weight", vec(3), 1.0)], version=7),
}
seeds["bad_truncated.gguf"] = seeds["three.gguf"][:-40]
seeds["bad_header_cut.gguf"] = seeds["one.gguf"][:40]
for name, data in seeds.items():
    (g / name).write_bytes(data)

d = fresh("imatrix_dat")
seeds = {
    "one.dat": dat([("blk.0.ffn_down.weight", vec(16), 4)]),
    "three.dat": dat([("blk.%d.ffn_up.weight" % i, vec(8), 3) for i in range(3)]),
    "no_trailer.dat": dat([("a.weight", vec(3), 1)], trailer=False),
    "bad_ncall.dat": dat([("a.weight", vec(3), 0)]),
    "bad_twice.dat": dat([("a.weight", vec(3), 1), ("a.weight", vec(3), 1)]),
}
seeds["bad_truncated.dat"] = seeds["three.dat"][:-30]
for name, data in seeds.items():
    (d / name).write_bytes(data)
