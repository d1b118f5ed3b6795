"""Notebook 3: the gather-style input gradient and a race-free filter gradient, in Numba."""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def input_grad_gather(dy, w, height, width):
    """dx (N, height, width, C) of a stride-1 'valid' depthwise convolution with w (kh, kw, C, 1).

    dy (N, height - kh + 1, width - kw + 1, C). Parallel over input rows: each iteration gathers
    from every output that read its pixels, and writes only its own row of dx.
    """
    # BEGIN SOLUTION
    n_img, ho, wo, c_in = dy.shape
    kh, kw = w.shape[0], w.shape[1]
    dx = np.zeros((n_img, height, width, c_in), dtype=dy.dtype)
    for row in prange(n_img * height):
        n, a = row // height, row % height
        for b in range(width):
            for p in range(kh):
                i = a - p                               # the output row whose tap p read row a
                if i < 0 or i >= ho:
                    continue
                for q in range(kw):
                    j = b - q
                    if j < 0 or j >= wo:
                        continue
                    for c in range(c_in):
                        dx[n, a, b, c] += dy[n, i, j, c] * w[p, q, c, 0]
    return dx
    # END SOLUTION


@njit(parallel=True, cache=True)
def filter_grad_by_channel(dy, x, kh, kw):
    """dw (kh, kw, C) of a stride-1 'valid' depthwise convolution, parallel over channels.

    x (N, H, W, C), dy (N, H - kh + 1, W - kw + 1, C). Each iteration owns one channel's dw.
    """
    # BEGIN SOLUTION
    n_img, ho, wo, c_in = dy.shape
    dw = np.zeros((kh, kw, c_in), dtype=x.dtype)
    for c in prange(c_in):
        for p in range(kh):
            for q in range(kw):
                acc = 0.0
                for n in range(n_img):
                    for i in range(ho):
                        for j in range(wo):
                            acc += x[n, i + p, j + q, c] * dy[n, i, j, c]
                dw[p, q, c] = acc
    return dw
    # END SOLUTION
