"""Fully connected layer on the GPU: the GEMM of gemm.py plus a bias kernel.

Shapes: x (N, Cin), w (Cin, Cout), b (Cout,) or None -> y (N, Cout) = x @ w + b.
    dx = dy @ w^T,  dw = x^T @ dy,  db = sum_n dy (a deterministic column sum, _reduce.py)
"""

from __future__ import annotations

from numba import cuda

from ._launch import THREADS, blocks_for, launch
from ._reduce import column_sums
from .gemm import matmul


@cuda.jit(cache=True)
def add_bias_kernel(y, b):
    """y[r, c] += b[c] on the flat (N*Cout) array; consecutive threads, consecutive columns."""
    cols = b.size
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, y.size, step):
        y[i] += b[i % cols]


def dense(x, w, b):
    y = matmul(x, w)
    if b is not None:
        launch(add_bias_kernel, blocks_for(y.size), THREADS, y.reshape(y.size), b)
    return y


def dense_backward(dy, x, w, has_bias):
    dx = matmul(dy, w, b_transposed=True)
    dw = matmul(x, dy, a_transposed=True)
    return dx, dw, (column_sums(dy) if has_bias else None)
