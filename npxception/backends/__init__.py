"""Backends: the same operations in NumPy ("numpy"), Numba CPU ("cpu") and Numba CUDA ("cuda").

`get_backend(name)` returns the module that implements the contract in this folder's README.md.
Backends are imported lazily, so `import npxception` never compiles or initialises a GPU.
"""

from __future__ import annotations

import importlib
from types import ModuleType

BACKENDS = ("numpy", "cpu", "cuda")
_MODULES = {"numpy": "reference", "cpu": "cpu", "cuda": "cuda"}


def get_backend(name) -> ModuleType:
    """The backend module for "numpy", "cpu" or "cuda" (or a backend module, returned as is)."""
    if isinstance(name, ModuleType):
        return name
    if not isinstance(name, str):
        raise TypeError(f"backend must be one of {BACKENDS} or a backend module, got {name!r}")
    if name not in _MODULES:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "cuda":
        from .. import cuda_available

        if not cuda_available():
            raise RuntimeError(
                "backend='cuda' needs numba-cuda (pip install 'npxception[cuda]') and an NVIDIA GPU "
                "with a working driver; none was found. Use backend='cpu' or backend='numpy'."
            )
    return importlib.import_module(f"{__name__}.{_MODULES[name]}")
