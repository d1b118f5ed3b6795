"""Fully connected layer as GEMMs (the math: reference/dense.py).

Shapes: x (N, Cin), w (Cin, Cout), b (Cout,) or None -> y (N, Cout) = x @ w + b.
    dx = dy @ w^T,  dw = x^T @ dy,  db = sum_n dy
Transposed operands are views handed to GEMM as transpose flags; nothing is copied. The products
go through gemm.py like every other GEMM of the backend: a multi-threaded BLAS call would leave
BLAS's worker threads spinning for about 0.1 s afterwards, beside the next kernels' threads.
"""

from __future__ import annotations

from .gemm import tall_matmul, tall_transpose_matmul


def dense(x, w, b):
    y = tall_matmul(x, w)
    if b is not None:
        y += b
    return y


def dense_backward(dy, x, w, has_bias):
    return tall_matmul(dy, w.T), tall_transpose_matmul(x, dy), (dy.sum(axis=0) if has_bias else None)
