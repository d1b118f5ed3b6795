"""Backends: the same operations in NumPy ("numpy"), Numba CPU ("cpu") and Numba CUDA ("cuda").

"auto" picks "cuda" when numba-cuda sees an NVIDIA GPU and "cpu" otherwise; layers, models and the
trainer default to it.

`get_backend(name)` returns the module that implements the contract of `contract.Backend`.
Backends are imported on first request, so `import npxception` never compiles or initialises a GPU.
"""

from __future__ import annotations

import os
from types import ModuleType

BACKENDS = ("numpy", "cpu", "cuda", "auto")


def cuda_available() -> bool:
    """True when numba-cuda is installed and sees an NVIDIA GPU (or the CUDA simulator is on)."""
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install must read as "no GPU", not crash the caller
        return False


def default_backend() -> str:
    """What "auto" means: "cuda" when numba-cuda sees a real GPU, else "cpu"."""
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
    if name == "numpy":
        from . import reference

        return reference
    if name == "cpu":
        from . import cpu

        cpu.runtime.initialise()  # before the first kernel: OpenMP's wait policy, the BLAS symbols
        return cpu
    if not cuda_available():
        raise RuntimeError(
            "backend='cuda' needs numba-cuda (pip install 'npxception[cuda]') and an NVIDIA GPU "
            "with a working driver; none was found. Use backend='cpu' or backend='numpy'."
        )
    from . import cuda

    return cuda
