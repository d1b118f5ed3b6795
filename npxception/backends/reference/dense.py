"""Fully connected layer.

Shapes: x (N, Cin), w (Cin, Cout), b (Cout,) or None -> y (N, Cout) = x @ w + b.
    dx = dy @ w^T,  dw = x^T @ dy,  db = sum_n dy
"""

from __future__ import annotations


def dense(x, w, b):
    y = x @ w
    return y if b is None else y + b


def dense_backward(dy, x, w, has_bias):
    return dy @ w.T, x.T @ dy, (dy.sum(axis=0) if has_bias else None)
