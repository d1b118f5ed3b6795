"""Device arrays: moving tensors between the host and the GPU, and allocating them there.

Tensors stay on the GPU between layers (Numba device arrays); only `to_device` and `to_numpy` copy.
All kernels run on the default stream, so they execute in launch order and a later copy to the host
waits for them; `synchronize` is only needed for timing.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ._launch import THREADS, blocks_for, launch


def is_device_array(a) -> bool:
    return hasattr(a, "copy_to_host")


def to_device(a):
    """A NumPy array (copied, C-contiguous) or a device array (returned as is) -> device array."""
    if is_device_array(a):
        return a
    return cuda.to_device(np.ascontiguousarray(a))


def to_numpy(a) -> np.ndarray:
    return a.copy_to_host() if is_device_array(a) else np.asarray(a)


def empty(shape, dtype):
    """An uninitialised device array (every kernel here writes all of its output)."""
    return cuda.device_array(shape, dtype=np.dtype(dtype))


@cuda.jit(cache=True)
def fill_kernel(a, value):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, a.size, step):
        a[i] = value


def zeros(shape, dtype):
    a = empty(shape, dtype)
    flat = a.reshape(a.size)
    launch(fill_kernel, blocks_for(a.size), THREADS, flat, np.dtype(dtype).type(0))
    return a


def synchronize() -> None:
    cuda.synchronize()
