"""The cpu backend's one initialisation, and the one place that sets its threads (Numba's and BLAS's).

`initialise()` runs once per process, before the backend's first kernel: `get_backend("cpu")`
calls it, so does `set_num_threads`, and so does the first check for NumPy's OpenBLAS
(`tuned/blas.available()`). It

1. sets OpenMP's wait policy, unless the environment already does. Numba's OpenMP threading layer
   (its default where TBB is absent) decides what an idle thread does between parallel loops:
   spinning for good starves anything else on the cores, sleeping at once makes every loop wake
   its threads again (a `small` step makes about 290 backend calls). So idle threads spin briefly
   (GOMP_SPINCOUNT) to bridge the Python between two kernels, then sleep.
   OpenMP reads both once, when Numba first starts its threads, hence "before the first kernel".
   The A/B of these settings is in docs/performance.md (benchmarks/bench_model.py).
2. registers NumPy's OpenBLAS GEMMs with LLVM (tuned/blas.py), so tuned kernels can call one GEMM
   per Numba thread.

Threads: `set_num_threads(n)` gives Numba's parallel loops and the BLAS behind NumPy's matmul (the
plain kernels' products) the same n, so the two never fight over the cores; `single_threaded_blas()`
holds the BLAS to one thread while a tuned kernel runs one GEMM on each of Numba's threads.

    import npxception
    npxception.set_num_threads(2)
"""

from __future__ import annotations

import numbers
import os
from contextlib import contextmanager

import numba
from threadpoolctl import ThreadpoolController

WAIT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "30000"}

_initialised = False
_blas_control: ThreadpoolController | None = None
_blas_limits = None  # keeps the current BLAS limit alive (threadpoolctl applies it globally)


def initialise() -> None:
    """OpenMP wait policy, then NumPy's OpenBLAS GEMMs registered for Numba; idempotent."""
    global _initialised
    if _initialised:
        return
    _initialised = True
    for name, value in WAIT_POLICY.items():
        os.environ.setdefault(name, value)
    from .tuned import blas

    blas.load()


def max_threads() -> int:
    """The most threads Numba can use in this process (fixed when Numba starts: NUMBA_NUM_THREADS)."""
    return numba.config.NUMBA_NUM_THREADS


def get_num_threads() -> int:
    """The number of threads Numba's parallel loops use now."""
    return numba.get_num_threads()


def set_num_threads(n: int) -> None:
    """Use n threads for Numba kernels and for BLAS. 1 <= n <= max_threads().

    Numba's setting is per Python thread: call this from the thread that runs the model.
    """
    global _blas_limits
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int, got {n!r}")
    limit = max_threads()
    if not 1 <= n <= limit:
        raise ValueError(f"n must be between 1 and {limit} (NUMBA_NUM_THREADS), got {n}")
    initialise()
    numba.set_num_threads(int(n))
    _blas_limits = _controller().limit(limits=int(n), user_api="blas")


@contextmanager
def single_threaded_blas():
    """Run the BLAS on one thread inside the block, then restore its thread count.

    With NumPy's OpenBLAS found, two direct calls into it; otherwise threadpoolctl's limit, which
    re-reads every loaded library on each call (slower than a small GEMM).
    """
    from .tuned import blas

    if not blas.available():
        with _controller().limit(limits=1, user_api="blas"):
            yield
        return
    before = blas.get_threads()
    if before != 1:
        blas.set_threads(1)
    try:
        yield
    finally:
        if before != 1:
            blas.set_threads(before)


def _controller() -> ThreadpoolController:
    global _blas_control
    if _blas_control is None:
        _blas_control = ThreadpoolController()
    return _blas_control
