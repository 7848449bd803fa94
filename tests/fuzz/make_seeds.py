#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/<target>/); run it after changing a format.

    /usr/bin/python3 tests/fuzz/make_seeds.py         # needs python3-numpy (for NumPy-written .npy seeds)

idx/: IDX files (plain and gzip) of images and labels, plus broken ones.
npy/: NumPy-written files of every supported dtype, byte order, order and version, 0-D to 4-D, plus
      unsupported and broken ones. ini/: the shipped configs and variants. spec/: byte 0 picks K, byte 1 the
      granularity and n, then a spec string (see fuzz_spec.cpp).
"""
import io
import pathlib
import shutil

import numpy as np
from numpy.lib import format as npf

here = pathlib.Path(__file__).resolve().parent
root = here.parent.parent


def fresh(name):
    d = here / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    return d


# --- npy
d = fresh("npy")
rng = np.random.default_rng(1)
count = 0
for dt in ["f2", "f4", "f8", "i1", "u1", "i2", "u2", "i4"]:
    for order in "<>":
        for shape in [(), (3,), (2, 3), (2, 1, 2), (1, 2, 2, 2)]:
            a = (rng.standard_normal(shape) * 10).astype(order + dt)
            for fortran in (False, True):
                b = np.asfortranarray(a) if fortran else np.ascontiguousarray(a)
                version = (1, 0) if count % 3 == 0 else ((2, 0) if count % 3 == 1 else (3, 0))
                buf = io.BytesIO()
                npf.write_array(buf, b, version=version)
                (d / f"{dt}_{'le' if order == '<' else 'be'}_{'F' if fortran else 'C'}_{len(shape)}d.npy").write_bytes(
                    buf.getvalue())
                count += 1
specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 6e-8, 1e-40, 3.4e38], dtype=np.float32)
np.save(d / "specials_f4.npy", specials)
np.save(d / "specials_f8.npy", np.array([1e300, -1e300, 5e-324, np.nan], dtype=np.float64))
np.save(d / "specials_f2.npy", np.arange(0, 65536, 4099, dtype=np.uint16).view(np.float16))
for name, dtype in [("int64", np.int64), ("complex", np.complex64), ("bool", np.bool_), ("str", "<U3")]:
    np.save(d / f"unsupported_{name}.npy", np.zeros((2, 2), dtype=dtype))
np.save(d / "object.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
np.save(d / "structured.npy", np.zeros(2, dtype=[("x", "<f4"), ("y", "<i2")]))
np.save(d / "empty.npy", np.zeros((0, 3), dtype=np.float32))
good = (d / "f4_le_C_2d.npy").read_bytes()
(d / "truncated_data.npy").write_bytes(good[:-3])
(d / "truncated_header.npy").write_bytes(good[:30])
(d / "trailing.npy").write_bytes(good + b"xyz")
(d / "huge_shape.npy").write_bytes(good.replace(b"(2, 3)", b"(9223372036854775807, 3)", 1))
for f in (root / "tests" / "data").glob("*.npy"):
    shutil.copy(f, d / f.name)

# --- ini
d = fresh("ini")
for f in (root / "configs").glob("*.ini"):
    shutil.copy(f, d / f.name)
sweep = "[sweep]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\n"
inis = {
    "small.ini": "name = small\nrepeats = 1\n[sweep]\nquantizer = cosine\nquantizer = kmeans init=quantile\n"
                 "quantizer = uniform symmetric=1\ndistribution = gaussian\ndistribution = laplace scale=0.5 rows=10\n"
                 "n = 1000, 2000\nk = 2, 16\ngranularity = tensor\ngranularity = channel\ngranularity = group:64\n"
                 "seed = 0, 1\n",
    "bits.ini": "[sweep]\nquantizer = kmeans algo=naive max_iter=5 tol=0\ndistribution = student_t nu=3\n"
                "n = 1e3\nbits = 1, 8\n",
    "npy.ini": "[sweep]\nquantizer = cosine refine=2\ndistribution = npy path=w.npy layout=hwio scale=2 "
               "nonfinite=drop\nn = 10\nk = 4\n",
    "dup_section.ini": sweep + "[sweep]\nk = 8\n",
    "crlf.ini": sweep.replace("\n", "\r\n"),
    "comments.ini": "# c\nname = x # y\n" + sweep + "seed = 1 # z\n",
    "utf8.ini": "description = caf\u00e9 \u20ac\n" + sweep,
    # The tables and plots checked against the planned cells before any work, and the memory budget.
    "outputs.ini": "max_memory = 512M\n[sweep]\nquantizer = cosine\nquantizer = kmeans\ndistribution = gaussian\n"
                   "distribution = laplace rows=4\nn = 1e3, 1e4\nbits = 2, 4\nseed = 0, 1\n"
                   "[table.t]\nrows = quantizer\ncols = bits\nvalue = mse\nwhere = n=1e3|1e4\n"
                   "where = distribution=gaussian\nagg = mean\nbest_along = row\n"
                   "[plot.b]\nkind = bar\nx = distribution\ny = sqnr_db\nseries = quantizer\nagg = median\n"
                   "[plot.s]\nkind = scatter\nx = n\ny = nmse\nseries = bits\nlogx = 1\nlogy = 1\n",
    # A task sweep: modes, the recipe keys, a mixed config, spread, dash and hline.
    "task.ini": "[sweep]\ntask = fashion_mnist epochs=1 train_n=100 qat_epochs=1 ste=clipped redesign=5 qat=levels "
                "weights=fisher\ntask = fashion_mnist hidden=16,8 bias=1\nmode = fp32, qat, ptq\n"
                "quantizer = uniform symmetric=1\nquantizer = kmeans\nbits = 2, 4\ngranularity = channel, group:64\n"
                "seed = 0, 1\n[sweep.t]\nquantizer = cosine\ndistribution = gaussian\nn = 100\nk = 4\n"
                "[table.a]\nrows = quantizer, mode\ncols = bits\nvalue = accuracy\nwhere = mode=ptq|qat\n"
                "where = task=fashion_mnist hidden=16,8 bias=1\nspread = std\n"
                "[plot.p]\nx = bits\ny = accuracy\nseries = quantizer\ndash = mode\nwhere = mode=qat|ptq\n"
                "where = task=fashion_mnist hidden=16,8 bias=1\nhline = mode=fp32, task=fashion_mnist hidden=16,8 bias=1\n",
    "task_data.ini": "[sweep]\ntask = fashion_mnist data=/nonexistent\nmode = ptq\nquantizer = nf4\nbits = 4\n",
}
for name, text in inis.items():
    (d / name).write_bytes(text.encode("utf-8"))
(d / "latin1.ini").write_bytes(("description = caf\u00e9\n" + sweep).encode("latin-1"))
(d / "nul.ini").write_bytes(b"name = a\x00b\n" + sweep.encode())

# --- spec
d = fresh("spec")
specs = [
    "cosine", "cosine refine=3", "kmeans", "kmeans init=greedy", "kmeans init=uniform algo=naive",
    "kmeans init=quantile max_iter=1000 tol=0", "kmeans init=cosine seed=7", "kmeans init=kmeans++ tol=1e-3",
    "uniform", "uniform symmetric=1", "gaussian mean=1 std=2 rows=4", "uniform lo=-2 hi=3", "laplace scale=0.5",
    "student_t nu=2.5 rows=2", "npy path=x.npy", "kmeans max_iter=1e9 tol=0", "cosine refine=100000",
]
for i, s in enumerate(specs):
    (d / f"spec_{i:02d}").write_bytes(bytes([i * 7 % 256, i * 13 % 256]) + s.encode())
# With data after a newline: float32 edge values for the strategies.
edge = [
    np.array([3.4e38, -3.4e38, 0, 1e38, -1e38, 3.4e38, 3.4e38, -1], dtype="<f4"),
    np.array([1e-45, -1e-45, 0, 1e-40, -1e-40, 2e-45, 0, 0], dtype="<f4"),
    np.zeros(12, dtype="<f4"),
    np.array([1, 1, 1, 2, 2, 2, 3, 3, 3, 1e6, -1e6, 0.5], dtype="<f4"),
    np.array([7.5], dtype="<f4"),
]
for i, (s, x) in enumerate(zip(["kmeans init=greedy", "cosine refine=5", "uniform symmetric=1",
                                "kmeans algo=naive init=quantile", "kmeans"], edge)):
    (d / f"data_{i:02d}").write_bytes(bytes([i * 5 + 1, i * 33]) + s.encode() + b"\n" + x.tobytes())
# Inputs that once crashed a target, kept as seeds so every run replays them (see README, Fuzzing).
regressions = {
    # k-means, K = 5: zeros, subnormals and ~1e31 values gave unsorted centroids (fixed: a cluster the prefix
    # sums cannot resolve is summed directly, and means are clamped to their cluster).
    "regress_kmeans_unsorted": ("15846b6d65616e730a00000000000000000000007175616e74696c65000000fe00000000000000000000000000000000"
                                "00000000000000000000000000000000000000000000000000000000000000004100000000000000000000000000faff"
                                "000000000025"),
    # k-means algo=naive, K = 3: (x - 0)^2 == (x - 1608)^2 for x = 5.2e31 in double; the tie went to the lower
    # centroid (fixed: ties follow the midpoint rule of algo=sorted).
    "regress_kmeans_naive_tie": ("13636b6d65616e7320616c676f3d6e6169766520696e69743d7175616e74696c650a0000803f0000803f00ff0080ffff"
                                 "ffff3f00000040000000400000404000004040000040400024744900c944240000003f"),
}
for name, hexbytes in regressions.items():
    (d / name).write_bytes(bytes.fromhex(hexbytes))
# The INI line that made Boost.program_options 1.74 loop forever building its error message (fixed: ini_check
# reports lines that are neither `key = value` nor `[section]` itself).
(here / "ini" / "regress_boost_invalid_line_hang.ini").write_bytes(bytes.fromhex(
    "323a73693153736550697a65252525252525252525252525252525252525252525252525252525252525252525252525"
    "252525252525252525252525252525252525252525252525252525252525252525252525252525252525252525252525"
    "2525696e76616c69645f6c696e6525252525252525252525252525252525252525252565207375"))
# --- idx
d = fresh("idx")
import gzip
import struct


def idx_bytes(dims, data, type_code=8, rank=None):
    rank = len(dims) if rank is None else rank
    return bytes([0, 0, type_code, rank]) + struct.pack(">" + "I" * len(dims), *dims) + bytes(data)


def gz(b):
    return gzip.compress(b, mtime=0)


images = idx_bytes((3, 4, 4), (np.arange(48) * 37 % 256).astype(np.uint8))
labels = idx_bytes((3,), [9, 0, 3])
idx_files = {
    "images.idx": images,
    "labels.idx": labels,
    "images.idx.gz": gz(images),
    "labels.idx.gz": gz(labels),
    "two_members.gz": gz(images[:10]) + gz(images[10:]),
    "rank5.idx": idx_bytes((1, 2, 1, 2, 2), range(8)),
    "big_label.idx": idx_bytes((2,), [1, 10]),
    "float32.idx": idx_bytes((2,), b"\x3f\x80\x00\x00\x00\x00\x00\x00", type_code=0x0D),
    "int16.idx": idx_bytes((2,), b"\x00\x01\x00\x02", type_code=0x0B),
    "rank0.idx": idx_bytes((), b"", rank=0),
    "zero_dim.idx": idx_bytes((2, 0), b""),
    "huge_dims.idx": idx_bytes((0xFFFFFFFF, 0xFFFFFFFF), b""),
    "truncated.idx": images[:-5],
    "trailing.idx": images + b"xyz",
    "truncated.gz": gz(images)[:-6],
    "garbage_after.gz": gz(labels) + b"junk",
    "lying_header.gz": gz(idx_bytes((100000, 100), b"abc")),
}
fm = pathlib.Path("/usr/share/datasets/fashion-mnist")
if (fm / "t10k-images-idx3-ubyte.gz").exists():
    # The first two test images and labels of the real dataset, re-headed.
    img = gzip.decompress((fm / "t10k-images-idx3-ubyte.gz").read_bytes())
    lab = gzip.decompress((fm / "t10k-labels-idx1-ubyte.gz").read_bytes())
    idx_files["fashion_images2.gz"] = gz(idx_bytes((2, 28, 28), img[16:16 + 2 * 784]))
    idx_files["fashion_labels2.gz"] = gz(idx_bytes((2,), lab[8:10]))
for name, b in idx_files.items():
    (d / name).write_bytes(b)

print("seeds written")
