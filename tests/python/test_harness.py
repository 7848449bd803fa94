"""sqbench.run and sqbench.plan: a config run from Python gives the CLI's results.csv, and plans what the CLI plans.

Run by ctest with Debian's /usr/bin/python3, PYTHONPATH=build/python and SQBENCH_EXE=build/experiments/sqbench.
"""
import csv
import math
import os
import pathlib
import subprocess
import tempfile
import unittest

import sqbench

SQBENCH_EXE = os.environ.get("SQBENCH_EXE", "")

# Small but not trivial: two quantizers, two laws, two K, per tensor and per channel, a table and a plot that
# read mse (so the run checks them before work) and the exact-optimum ratio.
CONFIG = """name = py_harness
repeats = 2
opt_ratio = 1

[sweep]
quantizer = kmeans
quantizer = uniform
distribution = gaussian
distribution = laplace
n = 4096
k = 4
k = 16
granularity = tensor
seed = 0
seed = 1

[table.mse]
rows = quantizer
cols = k
value = mse
where = distribution=gaussian

[plot.nmse]
kind = line
x = bits
y = nmse
series = quantizer
logy = 1
where = distribution=laplace
agg = mean
"""


def exe(test):
    test.assertTrue(os.path.isfile(SQBENCH_EXE) and os.access(SQBENCH_EXE, os.X_OK),
                    f"SQBENCH_EXE={SQBENCH_EXE!r} is not the built sqbench binary")
    return SQBENCH_EXE


def typed_kinds():
    return {c["name"]: c["kind"] for c in sqbench.columns()}


class RunTest(unittest.TestCase):
    def test_rows_equal_the_cli_results_csv(self):
        with tempfile.TemporaryDirectory() as d:
            ini = pathlib.Path(d, "c.ini")
            ini.write_text(CONFIG)
            subprocess.run([exe(self), "run", str(ini), "--out", os.path.join(d, "cli"), "--quiet"], check=True)
            with open(os.path.join(d, "cli", "results.csv"), newline="") as f:
                cli = list(csv.DictReader(f))
            for config in (str(ini), CONFIG):  # a path, and the text itself
                rows = sqbench.run(config)
                self.assertEqual(len(rows), len(cli))
                self.assertEqual(len(rows), 2 * 2 * 2 * 2)
                kinds = typed_kinds()
                for got, want in zip(rows, cli):
                    self.assertEqual(list(got), list(want))  # the same columns in the same order
                    for name, text in want.items():
                        if kinds[name] == "timing":
                            continue
                        value = got[name]
                        if text == "":
                            self.assertIsNone(value, name)
                        elif kinds[name] == "key" and name in ("quantizer", "distribution", "granularity",
                                                               "source"):
                            self.assertEqual(value, text, name)
                        elif isinstance(value, str):
                            self.assertEqual(value, text, name)
                        else:
                            # the CSV's text is the shortest round-trip form of the same double
                            self.assertEqual(value, float(text), name)
                            self.assertEqual(type(value) is int, text.lstrip("-").isdigit(), name)

    def test_types(self):
        rows = sqbench.run(CONFIG)
        r = rows[0]
        self.assertIsInstance(r["quantizer"], str)
        self.assertIsInstance(r["k"], int)
        self.assertIsInstance(r["n"], int)
        self.assertIsInstance(r["mse"], float)
        self.assertTrue(math.isfinite(r["mse"]) and r["mse"] > 0)
        self.assertGreaterEqual(r["opt_ratio"], 1.0)  # mse / the exact optimum

    def test_out_writes_the_cli_folder_and_guards_it(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "res")
            rows = sqbench.run(CONFIG, out)
            for f in ("results.csv", "config.ini", "context.json", "tables.md", "plots/nmse.png"):
                self.assertTrue(os.path.isfile(os.path.join(out, f)), f)
            with open(os.path.join(out, "results.csv"), newline="") as f:
                self.assertEqual(len(list(csv.DictReader(f))), len(rows))
            before = pathlib.Path(out, "results.csv").read_bytes()
            other = CONFIG.replace("k = 16", "k = 8")
            with self.assertRaisesRegex(ValueError, "different config"):
                sqbench.run(other, out)
            self.assertEqual(pathlib.Path(out, "results.csv").read_bytes(), before)  # untouched

    def test_errors_before_work(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "never")
            with self.assertRaisesRegex(ValueError, "kmean.*kmeans"):  # names the bad spec, lists choices
                sqbench.run(CONFIG.replace("quantizer = kmeans", "quantizer = kmean"), out)
            with self.assertRaisesRegex(ValueError, "mse_typo"):
                sqbench.run(CONFIG.replace("value = mse", "value = mse_typo"), out)
            self.assertFalse(os.path.exists(out))  # nothing written
        with self.assertRaisesRegex(ValueError, "no_such.ini"):
            sqbench.run("no_such.ini")
        with self.assertRaisesRegex(ValueError, "resume"):
            sqbench.run(CONFIG, resume=True)
        with self.assertRaises(TypeError):
            sqbench.run(42)


class PlanTest(unittest.TestCase):
    def test_plan_matches_the_run(self):
        cells = sqbench.plan(CONFIG)
        rows = sqbench.run(CONFIG)
        self.assertEqual(len(cells), len(rows))
        for c, r in zip(cells, rows):
            self.assertEqual(c["columns"], list(r))
            for key in ("quantizer", "distribution", "n", "k", "bits", "granularity", "seed"):
                self.assertEqual(c[key], r[key], key)
            self.assertIn(c["quantizer"], c["label"])
            # at least the data and its reconstruction, as float32
            self.assertGreaterEqual(c["memory_bytes"], 2 * 4 * 4096)
            self.assertIn("data", c["memory"])

    def test_plan_refuses_what_run_refuses(self):
        with self.assertRaisesRegex(ValueError, "mse_typo"):
            sqbench.plan(CONFIG.replace("value = mse", "value = mse_typo"))


if __name__ == "__main__":
    unittest.main()
