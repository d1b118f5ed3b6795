"""Helpers for checking this project: reference implementations (PyTorch) and backend discovery."""

from __future__ import annotations


def complete_backends() -> list[str]:
    """The backends on this machine that implement the whole contract: "numpy", plus "cpu" once
    its Numba kernels are all there (CUDA is checked separately, on a GPU)."""
    from ..backends import get_backend, reference

    try:
        cpu = get_backend("cpu")
    except ImportError:
        return ["numpy"]
    return ["numpy", "cpu"] if all(hasattr(cpu, f) for f in reference.__all__) else ["numpy"]
