"""Fully connected layer, plain: NumPy matmuls (the math: reference/dense.py).

Shapes: x (N, Cin), w (Cin, Cout), b (Cout,) or None -> y (N, Cout) = x @ w + b.
    dx = dy @ w^T,  dw = x^T @ dy,  db = sum_n dy
Transposed operands are views handed to GEMM as transpose flags; nothing is copied.
`tuned/dense.py` runs the same products through gemm.py's tasks (`dispatch.py` says when).
"""

from __future__ import annotations


def dense(x, w, b):
    y = x @ w
    if b is not None:
        y += b
    return y


def dense_backward(dy, x, w, has_bias):
    return dy @ w.T, x.T @ dy, (dy.sum(axis=0) if has_bias else None)
