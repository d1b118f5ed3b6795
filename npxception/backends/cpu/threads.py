"""One knob for the CPU's threads: Numba's parallel loops and the BLAS behind NumPy's matmul.

The cpu backend runs both kinds of work one after the other (a depthwise kernel, then a pointwise
GEMM). If each used its own default pool, each would size it to all cores and the two would fight
over them whenever they overlap with anything else; setting both to the same n keeps the process
at n busy threads.

    import npxception
    npxception.set_num_threads(2)

The cpu backend's package imports this module first, so the OpenMP wait policy below is set before
any of its kernels can start Numba's threads.
"""

from __future__ import annotations

import numbers
import os

# Numba's OpenMP threading layer (its default where TBB is absent) decides what an idle thread does
# between parallel loops. Spinning for good (libgomp's default is about 3 ms, ACTIVE forever)
# starves anything else that runs on the cores. Sleeping at once (PASSIVE) makes every parallel
# loop wake its threads again, which cost about 80 us per loop on this project's 2-core VMs; a
# `small` training step makes about 290 backend calls, each one or more loops. So idle threads
# spin briefly, then sleep: GOMP_SPINCOUNT spins (libgomp counts about 100,000 per ms) bridge the
# Python between two kernels of a step. Measured on whole `small` steps (bench_model.py,
# alternating processes): PASSIVE alone 128-140 ms, with 30,000 spins 107-109 ms; `paper` the
# same. The GEMMs run on these same threads (gemm.py), so no other pool waits beside them. OpenMP
# reads both once, when Numba first starts its threads (the first parallel kernel or
# numba.set_num_threads), so they are set here, on import, before either; values set in the
# environment win.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "30000")

import numba  # noqa: E402
from threadpoolctl import threadpool_limits

_blas_limits = None  # keeps the current BLAS limit object alive (threadpoolctl applies it globally)


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
    numba.set_num_threads(int(n))
    _blas_limits = threadpool_limits(limits=int(n), user_api="blas")
