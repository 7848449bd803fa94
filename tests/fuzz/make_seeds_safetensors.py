#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_safetensors (tests/fuzz/safetensors/) and fuzz_rans (tests/fuzz/rans/);
run it after changing either format. Needs no package (struct and json only): the files are written from the
formats' descriptions (sqb/safetensors.hpp, sqb/coding.hpp), not by the code under test.

    tests/fuzz/make_seeds_safetensors.py

safetensors/: valid files of every dtype (scalars, empty tensors, metadata, odd names, padded and indented
      headers), every kind of broken file, and sharded-checkpoint index files, valid and broken.
rans/: byte 0 picks the mode (see fuzz_rans.cpp): even = an rANS stream to decode (streams from the reference
      encoder below, then damaged copies); odd = symbols to encode.
"""
import json
import math
import pathlib
import random
import shutil
import struct

here = pathlib.Path(__file__).resolve().parent
rng = random.Random(13)


def fresh(name):
    d = here / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    return d


# --- safetensors

def raw(header_text, data=b""):
    h = header_text.encode("utf-8") if isinstance(header_text, str) else header_text
    return struct.pack("<Q", len(h)) + h + data


def values(dtype, vals):
    if dtype == "F32":
        return struct.pack("<%df" % len(vals), *vals)
    if dtype == "F64":
        return struct.pack("<%dd" % len(vals), *vals)
    if dtype == "F16":
        return struct.pack("<%de" % len(vals), *vals)
    if dtype == "BF16":
        return b"".join(struct.pack("<H", struct.unpack("<I", struct.pack("<f", v))[0] >> 16) for v in vals)
    raise ValueError(dtype)


def file_of(tensors, metadata=None, indent=None, pad=True):
    """tensors: list of (name, dtype, shape, data bytes), laid out in that order."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, indent=indent, ensure_ascii=False).encode("utf-8")
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


d = fresh("safetensors")
seeds = {}
gauss = lambda n: [rng.gauss(0, 1) for _ in range(n)]
for dt in ["F32", "F16", "BF16", "F64"]:
    seeds[f"one_{dt}"] = file_of([("w", dt, [2, 3], values(dt, gauss(6)))])
seeds["all_readable"] = file_of([(f"model.layers.{i}.mlp.{dt.lower()}.weight", dt, [3, 2], values(dt, gauss(6)))
                                 for i, dt in enumerate(["F32", "F16", "BF16", "F64"])],
                                metadata={"format": "pt"})
seeds["specials"] = file_of([
    ("f16", "F16", [6], values("F16", [65504.0, -6e-8, math.inf, -math.inf, math.nan, -0.0])),
    ("bf16", "BF16", [6], values("BF16", [3.3e38, 1e-40, math.inf, -math.inf, math.nan, -0.0])),
    ("f64", "F64", [4], values("F64", [1e-50, 1e300, math.nan, -math.inf])),  # 1e300: beyond float32
    ("scalar", "F32", [], values("F32", [2.5])),
    ("empty", "BF16", [0, 4096], b""),
])
seeds["other_dtypes"] = file_of([
    ("ids", "I64", [1, 4], struct.pack("<4q", 0, 1, 2, 3)), ("mask", "BOOL", [3], b"\x01\x00\x01"),
    ("f8", "F8_E4M3", [2], b"\x38\xb8"), ("f8b", "F8_E5M2", [1], b"\x3c"), ("e8m0", "F8_E8M0", [1], b"\x7f"),
    ("f4", "F4", [4], b"\x12\x34"), ("f6", "F6_E2M3", [4], b"\x01\x02\x03"), ("f6b", "F6_E3M2", [4], b"\x04\x05\x06"),
    ("c64", "C64", [1], struct.pack("<2f", 1.0, -1.0)), ("u16", "U16", [2], b"\x01\x00\x02\x00"),
    ("i8", "I8", [1], b"\xff"), ("u8", "U8", [1], b"\x07"), ("i16", "I16", [1], b"\x00\x80"),
    ("i32", "I32", [1], b"\x00\x00\x00\x80"), ("u32", "U32", [1], b"\xff\xff\xff\xff"),
    ("u64", "U64", [1], b"\xff" * 8), ("w", "F32", [1], values("F32", [1.0])),
])
seeds["names"] = file_of([("caf\u00e9.\u20ac", "F32", [1], values("F32", [1.0])),
                          ("quote\"back\\slash", "F32", [1], values("F32", [2.0])),
                          ("nul\u0000ctl\u0001", "F32", [1], values("F32", [3.0])),
                          ("glob*chars?[a]", "F32", [1], values("F32", [4.0])),
                          ("", "F32", [1], values("F32", [5.0]))])
seeds["indented"] = file_of([("a", "F16", [2, 2], values("F16", gauss(4))), ("b", "BF16", [1], values("BF16", [1.0]))],
                            metadata={"k": "v"}, indent=2)
seeds["unpadded"] = file_of([("a", "F32", [3], values("F32", gauss(3)))], pad=False)
seeds["many"] = file_of([(f"model.layers.{i}.self_attn.{p}_proj.weight", "BF16", [2], values("BF16", gauss(2)))
                         for i in range(12) for p in "qkvo"])
seeds["reverse_offsets"] = raw('{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},'
                               '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', values("F32", [1, 2]))
seeds["empty_header"] = raw("{}")
seeds["metadata_only"] = raw('{"__metadata__":{"a":"b","c":""}}')
seeds["escapes"] = raw('{"\\u0077\\ud83d\\ude00\\n":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
                       values("F32", [1]))
# Broken files, one per check.
good_w = '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
two = values("F32", [1, 2])
entry = lambda dt, shape, offs: '{"w":{"dtype":%s,"shape":%s,"data_offsets":%s}}' % (dt, shape, offs)
broken = {
    "short": b"\x02\x00\x00",
    "empty_file": b"",
    "length_beyond": struct.pack("<Q", 1000) + b"{}",
    "length_huge": struct.pack("<Q", 2 ** 63) + b"{}",
    "npy": b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
    "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
    "truncated_data": raw(good_w, two[:5]),
    "trailing": raw(good_w, two + b"xyz"),
    "hole": raw('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                '"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', two + two[:4]),
    "overlap": raw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                   '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', two),
    "beyond": raw(entry('"F32"', "[2]", "[0,12]"), two),
    "begin_after_end": raw(entry('"F32"', "[2]", "[8,0]"), two),
    "wrong_size": raw(entry('"F32"', "[3]", "[0,8]"), two),
    "bad_dtype": raw(entry('"Q4"', "[2]", "[0,8]"), two),
    "dtype_number": raw(entry("32", "[2]", "[0,8]"), two),
    "negative_dim": raw(entry('"F32"', "[-2]", "[0,8]"), two),
    "float_dim": raw(entry('"F32"', "[2.0]", "[0,8]"), two),
    "huge_dims": raw(entry('"F32"', "[4294967296,4294967296]", "[0,8]"), two),
    "huge_dim": raw(entry('"F32"', "[18446744073709551616]", "[0,8]"), two),
    "bytes_overflow": raw(entry('"F64"', "[4611686018427387904]", "[0,8]"), two),
    "f4_odd": raw(entry('"F4"', "[3]", "[0,2]"), b"xx"),
    "offsets_three": raw(entry('"F32"', "[2]", "[0,8,8]"), two),
    "extra_key": raw('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}', two),
    "missing_key": raw('{"w":{"dtype":"F32","shape":[2]}}', two),
    "duplicate": raw('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                     '"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', two),
    "not_object": raw("[1,2,3]", two),
    "metadata_number": raw('{"__metadata__":{"n":1}}'),
    "bad_utf8": raw(b'{"w\xff":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', two),
    "lone_surrogate": raw('{"\\ud800":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', two),
    "deep": raw("[" * 100 + "]" * 100),
    "trailing_comma": raw('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],}}', two),
    "bom": raw("\ufeff" + good_w, two),
    "f64_overflow": file_of([("w", "F64", [2], values("F64", [0.0, 1e39]))]),
}
seeds.update(broken)
# Index files.
seeds["index"] = json.dumps({"metadata": {"total_size": 123456}, "weight_map": {
    f"model.layers.{i}.mlp.up_proj.weight": f"model-0000{1 + i % 2}-of-00002.safetensors" for i in range(6)}},
    indent=2).encode()
seeds["index_sub"] = b'{"weight_map": {"a": "sub/x.safetensors", "b": "y.safetensors"}, "extra": [1, 2]}'
for name, text in {"index_absolute": '{"weight_map": {"a": "/etc/passwd"}}',
                   "index_dotdot": '{"weight_map": {"a": "../x.safetensors"}}',
                   "index_empty": '{"weight_map": {}}', "index_missing": '{"metadata": {}}',
                   "index_number": '{"weight_map": {"a": 7}}',
                   "index_duplicate": '{"weight_map": {"a": "x", "a": "y"}}'}.items():
    seeds[name] = text.encode()
for name, data in seeds.items():
    (d / name).write_bytes(data)
print("safetensors:", len(seeds), "seeds")

# --- rANS: a reference encoder written from the stream format in sqb/coding.hpp.
L = 1 << 23


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def rans_encode(symbols, alphabet, m=14):
    n = len(symbols)
    out = varint(n) + varint(alphabet)
    if n == 0:
        return out
    total = 1 << m
    counts = [0] * alphabet
    for s in symbols:
        counts[s] += 1
    freq = [max(1, c * total // n) if c else 0 for c in counts]
    big = max(range(alphabet), key=lambda k: freq[k])
    freq[big] += total - sum(freq)
    assert freq[big] >= 1
    out += bytes([m])
    s = 0
    while s < alphabet:  # runs: absent count, present count, f - 1 each
        z = s
        while z < alphabet and freq[z] == 0:
            z += 1
        if z == alphabet:
            break
        p = z
        while p < alphabet and freq[p]:
            p += 1
        out += varint(z - s) + varint(p - z) + b"".join(varint(freq[k] - 1) for k in range(z, p))
        s = p
    cum, c = [0] * alphabet, 0
    for k in range(alphabet):
        cum[k] = c
        c += freq[k]
    x, emitted = L, []
    for s in reversed(symbols):
        f = freq[s]
        x_max = ((L >> m) << 8) * f
        while x >= x_max:
            emitted.append(x & 0xFF)
            x >>= 8
        x = ((x // f) << m) + (x % f) + cum[s]
    return out + x.to_bytes(4, "little") + bytes(reversed(emitted))


d = fresh("rans")
streams = {
    "empty": rans_encode([], 5),
    "single": rans_encode([0] * 50, 1),
    "two": rans_encode([rng.randrange(2) for _ in range(200)], 2),
    "uniform16": rans_encode([rng.randrange(16) for _ in range(500)], 16),
    "geometric": rans_encode([min(int(rng.expovariate(0.7)), 39) for _ in range(800)], 40, m=15),
    "gauss256": rans_encode([min(255, max(0, int(rng.gauss(128, 20)))) for _ in range(1000)], 256, m=16),
    "sparse65536": rans_encode([rng.choice([3, 70000 % 65536, 65535]) for _ in range(300)], 65536, m=22),
    "rare": rans_encode([7] * 400 + [9], 12),
}
for name, data in streams.items():
    (d / f"decode_{name}").write_bytes(b"\x00" + data)
    if len(data) > 8:
        (d / f"decode_{name}_cut").write_bytes(b"\x00" + data[:-3])
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0x10
        (d / f"decode_{name}_flip").write_bytes(b"\x00" + bytes(flipped))
for name, data in {"overlong": b"\x80\x00\x01", "big_n": varint(2 ** 40) + b"\x01\x0e",
                   "bad_m": b"\x01\x01\x17", "state_low": b"\x01\x01\x0e\x00\x01\xff\x7f\xff\xff\x7f\x00"}.items():
    (d / f"decode_{name}").write_bytes(b"\x00" + data)
for i, (sel, n) in enumerate([(0x01, 0), (0x03, 10), (0x05, 300), (0x0f, 1000), (0x1f, 500), (0xff, 200)]):
    body = bytes(rng.randrange(256) for _ in range(2 * n))
    (d / f"encode_{i}").write_bytes(bytes([sel | 1, rng.randrange(256)]) + body)
# Inputs that once crashed the target, kept as seeds so every run replays them (see README, Fuzzing).
regressions = {
    # No symbols over a 65536 alphabet: pack_codes at 16 bits copied with memcpy from the empty vector's null
    # pointer (UBSan; fixed: the copy is skipped when there is nothing to copy).
    "regress_pack_empty_16": "9b5c05",
}
for name, hexbytes in regressions.items():
    (d / name).write_bytes(bytes.fromhex(hexbytes))
print("rans:", len(list(d.iterdir())), "seeds")
