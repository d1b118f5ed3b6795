"""Fully connected layer, tuned: the products of ../dense.py as gemm.py's single-threaded tasks.

A multi-threaded BLAS call leaves BLAS's worker threads spinning for a while afterwards, beside
the next kernels' Numba threads; gemm.py's tasks run on Numba's threads instead. Benchmark:
`benchmarks/bench_model.py` (the step, against --plain).
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
