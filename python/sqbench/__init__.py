"""sqbench: scalar (1-D codebook) quantization.

    r = sqbench.quantize(w, "kmeans", bits=4, granularity="channel")
    print(r.metrics["sqnr_db"], r.codes.shape, r.codebooks.shape)

quantizers() lists the strategies and their parameters (the same registry as `sqbench list`).
`import sqbench.torch` adds the PyTorch front end (quantize_, calibrate, qat_), which needs torch.
"""
# The calls live in the C++ extension; every public name it defines is a name of the package, so bindings added
# to the extension appear here without a list to keep in step.
from . import _core
from ._core import *  # noqa: F401,F403  (pybind11 modules have no __all__: every name not starting with '_')

__version__ = _core.__version__


def _config_source(config):
    """(path, text): a config file's path and None, or for INI text a name for messages and the text."""
    import os

    if isinstance(config, os.PathLike) or (isinstance(config, str) and "\n" not in config):
        return os.fspath(config), None
    if isinstance(config, str):
        return "<config text>.ini", config
    raise TypeError(f"config must be a path to an INI file or the INI text, not {type(config).__name__}")


def run(config, out=None, *, jobs=1, threads=0, quiet=True, resume=False, fresh=False):
    """Runs an experiment config exactly as `sqbench run` does and returns its rows.

    config: a path to an INI file, or the INI text itself (relative paths inside it are then relative to the
    working folder). Returns results.csv as a list of dicts, one per cell in canonical order, keyed by the
    results.csv column names: text columns as str, integral numbers as int, other numbers as float, empty
    fields (a figure that does not apply) as None. Every non-timing value equals the CLI's results.csv for the
    same config: the same code plans, computes and writes it.

    out: None computes in a private temporary folder, removed afterwards (tables and plots are rendered there
    and discarded); a path writes the same folder as `sqbench run CONFIG --out PATH` (results.csv, config.ini,
    context.json, tables, plots) under the same rules: a folder holding another config's results is refused,
    resume=True keeps an interrupted run's finished cells, fresh=True starts over.
    jobs, threads: as the CLI's --jobs and --threads (threads=0: the cores / jobs). Results do not depend on
    them. quiet=False shows the progress on stderr.

    Errors (a bad key, an unknown quantizer, a table naming a missing column, ...) raise ValueError with the
    CLI's message before any work starts. Ctrl-C stops after the cells in flight (KeyboardInterrupt).
    """
    import os
    import tempfile

    path, text = _config_source(config)
    if out is not None:
        return _core._run(path, text, os.fspath(out), jobs, threads, quiet, resume, fresh)
    if resume or fresh:
        raise ValueError("resume and fresh need out= (a private temporary folder has nothing to resume)")
    with tempfile.TemporaryDirectory(prefix="sqbench-run-") as tmp:
        return _core._run(path, text, os.path.join(tmp, "results"), jobs, threads, quiet, False, False)


def plan(config, *, threads=1):
    """The cells a config would run, as `sqbench run` plans and checks them before any work.

    Returns a list of dicts, one per cell in canonical order: its key columns (quantizer, distribution, n, k,
    bits, granularity, seed, ...; as run() types them), `label` (the cell as progress lines name it),
    `columns` (the results.csv header every row of the run has) and `memory_bytes` / `memory` (the cell's
    estimated peak memory with `threads` threads inside it, and the terms it adds up). Raises ValueError for
    everything `sqbench run` refuses before work (the config's keys, specs, tables and plots).
    """
    path, text = _config_source(config)
    return _core._plan(path, text, threads)
