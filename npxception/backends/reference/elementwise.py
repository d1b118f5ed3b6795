"""Element-wise sum of two same-shape tensors (the residual connection).

y = a + b;  da = db = dy: the gradient flows unchanged down both paths.
"""

from __future__ import annotations


def add(a, b):
    return a + b


def add_backward(dy):
    return dy, dy
