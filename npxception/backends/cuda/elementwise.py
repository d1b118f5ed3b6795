"""Element-wise sum (the residual connection) on the GPU: y = a + b; da = db = dy."""

from __future__ import annotations

from numba import cuda

from ._launch import THREADS, blocks_for, launch
from .arrays import empty


@cuda.jit(cache=True)
def add_kernel(a, b, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, a.size, step):
        y[i] = a[i] + b[i]


def add(a, b):
    y = empty(a.shape, a.dtype)
    launch(add_kernel, blocks_for(a.size), THREADS, a.reshape(a.size), b.reshape(b.size),
           y.reshape(y.size))
    return y


def add_backward(dy):
    return dy, dy
