"""sqbench.describe and sqbench.evaluate: one cell from Python equals its row of the CLI's results.csv.

Run by ctest with Debian's /usr/bin/python3, PYTHONPATH=build/python and SQBENCH_EXE=build/experiments/sqbench.
"""
import csv
import os
import pathlib
import subprocess
import tempfile
import unittest

import sqbench

SQBENCH_EXE = os.environ.get("SQBENCH_EXE", "")
DATA = pathlib.Path(__file__).resolve().parents[1] / "data"

# Synthetic laws with and without weights, a file (per channel) and the rotated source's evaluation, a
# strategy with its own figures (phi_log), opt_ratio, and a table reading coded_bits (so cells are coded).
CONFIG = f"""name = py_cell
repeats = 1
opt_ratio = 1

[sweep]
quantizer = kmeans
quantizer = phi_log
quantizer = nf4
distribution = gaussian rows=4 weights=square
distribution = laplace
distribution = rotated d=8
n = 2048
k = 4
k = 16
granularity = tensor
granularity = channel
seed = 3

[sweep.file]
quantizer = kmeans
quantizer = uniform symmetric=1
distribution = npy path={DATA}/conv_oihw.npy layout=oihw nonfinite=drop
n = all
k = 8
granularity = channel
granularity = group:5
seed = 0

[table.coded]
rows = quantizer
cols = k
value = coded_bits
agg = mean
"""

TIMING = {"fit_s", "fit_s_min", "fit_s_mad", "encode_s", "encode_s_min", "encode_s_mad", "decode_s",
          "decode_s_min", "decode_s_mad", "quantize_s", "quantize_s_min", "quantize_s_mad", "threads",
          "train_s", "config_hash"}


def cell_args(row):
    return dict(source=row["source"], quantizer=row["quantizer"], n=row["n"], k=row["k"],
                granularity=row["granularity"], seed=row["seed"], opt_ratio=True, coded=True)


class CellTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rows = sqbench.run(CONFIG)

    def test_evaluate_equals_the_results_row(self):
        self.assertEqual(len(self.rows), 3 * 3 * 2 * 2 - 3 * 2 + 2 * 2)  # nf4 has no K = 4 cells
        for row in self.rows:
            with self.subTest(cell=(row["quantizer"], row["distribution"], row["k"], row["granularity"])):
                got = sqbench.evaluate(**cell_args(row))
                for column, value in row.items():
                    if column in TIMING:
                        continue
                    self.assertEqual(got.get(column), value, column)
                self.assertFalse(set(got) - set(row), "evaluate returned columns the run has not")

    def test_the_cli_writes_the_same_fields(self):
        self.assertTrue(os.path.isfile(SQBENCH_EXE), f"SQBENCH_EXE={SQBENCH_EXE!r} is not the built binary")
        with tempfile.TemporaryDirectory() as tmp:
            ini = pathlib.Path(tmp) / "c.ini"
            ini.write_text(CONFIG)
            subprocess.run([SQBENCH_EXE, "run", str(ini), "--out", f"{tmp}/out", "--quiet"], check=True)
            with open(f"{tmp}/out/results.csv", newline="") as f:
                cli = list(csv.DictReader(f))
        self.assertEqual(len(cli), len(self.rows))
        for text, typed in zip(cli, self.rows):
            for column, value in text.items():
                if column not in TIMING:
                    self.assertEqual(value == "", typed[column] is None, column)

    def test_describe_names_the_filled_columns(self):
        for row in self.rows:
            with self.subTest(cell=(row["quantizer"], row["distribution"], row["k"], row["granularity"])):
                d = sqbench.describe(**cell_args(row))
                self.assertTrue(d["applies"])
                self.assertEqual((d["rows"], d["cols"]), (row["rows"], row["cols"]))
                filled = {c for c, v in row.items() if v is not None and c not in TIMING}
                keys = {"quantizer", "distribution", "n", "k", "bits", "granularity", "seed", "source"}
                self.assertTrue(filled - keys <= set(d["columns"]), filled - keys - set(d["columns"]))
                # Described but empty: only figures of the rotated source's evaluation that need a Lloyd-Max
                # codebook (nf4's cells leave them empty).
                kinds = {c["name"]: c["kind"] for c in sqbench.columns()}
                for c in set(d["columns"]) - filled:
                    self.assertEqual((row["quantizer"], row["distribution"], kinds[c]),
                                     ("nf4", "rotated d=8", "figure"), c)

    def test_memory_equals_the_plan(self):
        plan = sqbench.plan(CONFIG, threads=2)
        rows = sqbench.run(CONFIG)
        for p, row in zip(plan, rows):
            d = sqbench.describe(**cell_args(row), threads=2)
            self.assertEqual(d["memory_bytes"], p["memory_bytes"])
            self.assertEqual(d["memory"], p["memory"])

    def test_not_applicable_and_bad_input(self):
        d = sqbench.describe("gaussian", "nf4", n=1000, k=4)
        self.assertFalse(d["applies"])
        self.assertIn("16", d["why_not"])
        with self.assertRaisesRegex(ValueError, "multiple of rows = 3"):
            sqbench.describe("gaussian rows=3", "kmeans", n=1000, k=4)
        with self.assertRaisesRegex(ValueError, "exactly one of k= and bits="):
            sqbench.describe("gaussian", "kmeans", n=1000)
        with self.assertRaisesRegex(ValueError, "n = all"):
            sqbench.evaluate("gaussian", "kmeans", bits=2)
        self.assertEqual(sqbench.evaluate("laplace", "kmeans", n=1000, bits=2)["k"], 4)


CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"


class TaskCellTest(unittest.TestCase):
    """A task cell described alone says what the plan says of it (its memory estimate and terms)."""

    def test_describe_equals_the_plan(self):
        for name in ("qat.ini", "importance.ini"):
            cells = [c for c in sqbench.plan(str(CONFIGS / name)) if c.get("task")]
            self.assertTrue(cells, name)
            for row in cells:
                with self.subTest(cell=row["label"]):
                    quantized = row["mode"] in ("ptq", "qat")
                    d = sqbench.describe(quantizer=row["quantizer"], task=row["task"], mode=row["mode"],
                                         k=row["k"], granularity=row["granularity"] or "tensor",
                                         seed=row["seed"])
                    self.assertTrue(d["applies"])
                    for key in ("quantizer", "task", "mode", "k", "bits", "granularity", "seed",
                                "memory_bytes", "memory"):
                        self.assertEqual(d[key], row[key], key)
                    self.assertLessEqual(set(d["columns"]), set(row["columns"]))
                    self.assertIn("accuracy", d["columns"])
                    self.assertEqual("mse" in d["columns"], quantized)

    def test_task_cells_that_do_not_apply_and_bad_input(self):
        d = sqbench.describe(quantizer="nf4", task="fashion_mnist", mode="ptq", k=4)
        self.assertFalse(d["applies"])
        self.assertIn("16", d["why_not"])
        d = sqbench.describe(task="fashion_mnist qat_epochs=0", mode="fp32_ft")
        self.assertFalse(d["applies"])
        self.assertIn("qat_epochs = 0", d["why_not"])
        with self.assertRaisesRegex(ValueError, "needs a quantizer"):
            sqbench.describe(task="fashion_mnist", mode="qat", k=4)
        with self.assertRaisesRegex(ValueError, "give no quantizer"):
            sqbench.describe(quantizer="kmeans", task="fashion_mnist", mode="fp32", k=4)
        with self.assertRaisesRegex(ValueError, "not one of fp32, fp32_ft, ptq, qat"):
            sqbench.describe(task="fashion_mnist", mode="int8")
        with self.assertRaisesRegex(ValueError, "not both"):
            sqbench.describe("gaussian", "kmeans", task="fashion_mnist", mode="ptq", k=4)


if __name__ == "__main__":
    unittest.main()
