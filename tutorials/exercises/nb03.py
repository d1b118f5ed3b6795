"""Your turn: write each function in place of its `raise NotImplementedError`, then grade it
with `pytest tutorials/exercises/test_nb03.py`. Written from tutorials/solutions/nb03.py by
build_notebooks.py (rebuilding overwrites this file: keep your answers elsewhere if you rebuild)."""
# ruff: noqa: F401  (the solutions' imports stay, for your code to use)

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def input_grad_gather(dy, w, height, width):
    """dx (N, height, width, C) of a stride-1 'valid' depthwise convolution with w (kh, kw, C, 1).

    dy (N, height - kh + 1, width - kw + 1, C). Parallel over input rows: each iteration gathers
    from every output that read its pixels, and writes only its own row of dx.
    """
    raise NotImplementedError("your turn")


@njit(parallel=True, cache=True)
def filter_grad_by_channel(dy, x, kh, kw):
    """dw (kh, kw, C) of a stride-1 'valid' depthwise convolution, parallel over channels.

    x (N, H, W, C), dy (N, H - kh + 1, W - kw + 1, C). Each iteration owns one channel's dw.
    """
    raise NotImplementedError("your turn")
