"""Backends: the same operations in NumPy ("numpy"), Numba CPU ("cpu") and Numba CUDA ("cuda").

"auto" picks "cuda" when numba-cuda sees an NVIDIA GPU and "cpu" otherwise; layers, models and the
trainer default to it.

`get_backend(name)` returns the module that implements the contract in this folder's README.md.
Backends are imported lazily, so `import npxception` never compiles or initialises a GPU.
"""

from __future__ import annotations

import importlib

import os
from types import ModuleType

BACKENDS = ("numpy", "cpu", "cuda", "auto")
_MODULES = {"numpy": "reference", "cpu": "cpu", "cuda": "cuda"}


def default_backend() -> str:
    """What "auto" means: "cuda" when numba-cuda sees a real GPU, else "cpu"."""
    from .. import cuda_available

    real_gpu = cuda_available() and os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0")
    return "cuda" if real_gpu else "cpu"


def get_backend(name) -> ModuleType:
    """The backend module for "numpy", "cpu", "cuda" or "auto" (a backend module is returned as is)."""
    if isinstance(name, ModuleType):
        return name
    if not isinstance(name, str):
        raise TypeError(f"backend must be one of {BACKENDS} or a backend module, got {name!r}")
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "auto":
        name = default_backend()
    if name == "cuda":
        from .. import cuda_available

        if not cuda_available():
            raise RuntimeError(
                "backend='cuda' needs numba-cuda (pip install 'npxception[cuda]') and an NVIDIA GPU "
                "with a working driver; none was found. Use backend='cpu' or backend='numpy'."
            )
    return importlib.import_module(f"{__name__}.{_MODULES[name]}")
