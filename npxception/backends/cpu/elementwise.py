"""Element-wise sum of two same-shape tensors, the residual connection (reference/elementwise.py).

y = a + b;  da = db = dy. A parallel Numba loop over the flat arrays: NumPy's add runs on one
thread, and at the paper network's sizes (4 x 74 x 74 x 256) that one pass is memory-bound on
one core's bandwidth. Same-shape, same-dtype C-contiguous operands (what the model passes) take
the kernel; anything else (broadcasting, mixed dtypes) goes to NumPy.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


def add(a, b):
    if (a.shape != b.shape or a.dtype != b.dtype or not a.flags.c_contiguous
            or not b.flags.c_contiguous):
        return np.add(a, b)
    y = np.empty_like(a)
    _add(a.reshape(-1), b.reshape(-1), y.reshape(-1))
    return y


def add_backward(dy):
    return dy, dy


@njit(parallel=True, cache=True)
def _add(a, b, y):
    for k in prange(a.size):
        y[k] = a[k] + b[k]
