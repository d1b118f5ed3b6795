"""One knob for the CPU's threads: `set_num_threads(n)` sets Numba's and BLAS's (see
`npxception/backends/cpu/runtime.py`, where it lives beside the kernels whose threads it sets).

    import npxception
    npxception.set_num_threads(2)
"""

from .backends.cpu.runtime import get_num_threads, max_threads, set_num_threads

__all__ = ["get_num_threads", "max_threads", "set_num_threads"]
