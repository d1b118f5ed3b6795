"""npxception: Xception (Chollet, CVPR 2017) from scratch in NumPy, with Numba CPU and CUDA kernels.

    from npxception import ops
    y = ops.depthwise_conv2d(x, w, stride=2, padding="same")

Everything heavier (the Numba backends, layers, the model, training) is imported on first use.
"""

from __future__ import annotations

import importlib

# Imported now, not lazily: the submodule and its function share the name "gradcheck", and a lazy
# binding would be replaced by the module the first time anything imports npxception.gradcheck.
from .gradcheck import GradcheckReport, gradcheck

__version__ = "0.1.0"

_SUBMODULES = ("ops", "nn", "backends", "shapes")
# Public name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    "get_backend": "npxception.backends",
    "cuda_available": "npxception.backends",
    "Xception": "npxception.models.xception",
    "XceptionConfig": "npxception.models.xception",
    "preprocess_input": "npxception.preprocessing",
    "set_num_threads": "npxception.threads",
}


__all__ = ["GradcheckReport", "Xception", "XceptionConfig", "__version__", "backends", "cuda_available",
           "get_backend", "gradcheck", "nn", "ops", "preprocess_input", "set_num_threads", "shapes"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'npxception' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBMODULES, *_LAZY])

