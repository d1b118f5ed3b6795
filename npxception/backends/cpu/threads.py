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

# Numba's OpenMP threading layer (its default where TBB is absent) keeps idle threads spinning
# after each parallel loop. Between our kernels BLAS runs with threads of its own, and on 2 cores
# the spinning threads starve it: a small-preset training step took 3-5x longer. Passive waiting
# puts idle OpenMP threads to sleep and keeps OpenMP's low launch cost (the workqueue layer costs
# ~2 ms more per small kernel). OpenMP reads this once, when Numba first starts its threads (the
# first parallel kernel or numba.set_num_threads), so it is set here, on import, before either;
# a policy set in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
