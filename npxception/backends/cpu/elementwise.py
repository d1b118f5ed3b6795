"""Element-wise sum of two same-shape tensors, the residual connection (reference/elementwise.py).

y = a + b;  da = db = dy. One NumPy pass is already at memory speed for a single add; there is no
neighbouring work to fuse it with at this level, so no kernel is compiled for it.
"""

from __future__ import annotations

import numpy as np


def add(a, b):
    return np.add(a, b)


def add_backward(dy):
    return dy, dy
