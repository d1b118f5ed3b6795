"""Your turn: write each function in place of its `raise NotImplementedError`, then grade it
with `pytest tutorials/exercises/test_nb01.py`. Written from tutorials/solutions/nb01.py by
build_notebooks.py (rebuilding overwrites this file: keep your answers elsewhere if you rebuild)."""
# ruff: noqa: F401  (the solutions' imports stay, for your code to use)

import numpy as np


def cost_ratio(k, c_in, c_out, multiplier):
    """Multiply-adds (or weights) of a separable convolution divided by those of a regular one.

    k x k window, c_in -> c_out channels, depthwise depth multiplier `multiplier`, no biases.
    """
    raise NotImplementedError("your turn")


def depthwise_strided(x, w, stride):
    """Depthwise convolution with stride `stride`, 'valid' padding, depth multiplier M.

    x (N, H, W, C), w (kh, kw, C, M) -> (N, Ho, Wo, C*M) with Ho = (H - kh) // stride + 1.
    """
    raise NotImplementedError("your turn")


def separable_kernel(depthwise, pointwise):
    """The regular kernel K (kh, kw, C, Cout) that computes the same as depthwise-then-pointwise.

    depthwise (kh, kw, C, M), pointwise (1, 1, C*M, Cout).
    """
    raise NotImplementedError("your turn")
