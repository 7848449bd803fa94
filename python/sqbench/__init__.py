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
