"""Max pooling and global average pooling, NHWC, as Numba kernels (the math: reference/pool.py).

Max pool: x (N, H, W, C) -> y (N, Ho, Wo, C), padding is -inf; the gradient of each window goes to
its first maximum in row-major window order. The comparison `v > best or (v is NaN and best is
not)` makes a NaN win and stay, which is what NumPy's max and argmax (the reference) do. Padded
cells are never read: as -inf they could never beat the running maximum, which starts at -inf with
the window's first cell as its index, exactly as argmax over the padded window would.

The forward kernel also writes each output's winning tap (its row-major window index, int8):
`max_pool2d_with_taps`, one of the contract's optional FusedOps, returns them, and the MaxPool2D
layer keeps them for its backward pass, which then reads dy and the taps (a quarter of y's bytes)
instead of finding every window's maximum again in x (four times y's size at stride 2).
`max_pool2d_backward(dy, x)` is the same two steps: the taps from x, then the gradient.

The backward pass scatters into overlapping windows (3x3 stride 2), so it is parallel over
(image, block of channels): each iteration owns dx[n, :, :, block] and no two write one element.
Per output pixel it sweeps the window's taps, adding dy where the tap won: unit-stride loops over
channels, with no per-channel index arithmetic.

Global average pool: y = mean over H, W; dx = dy / (H * W). Both are a single pass over a small
tensor (10x10 in Xception), done in NumPy.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...shapes import conv_output_hw
from ._index import input_index

CHANNEL_BLOCK = 64  # channels per backward work item: long enough for SIMD, short enough to split


def max_pool2d(x, pool_size, stride, padding):
    return max_pool2d_with_taps(x, pool_size, stride, padding)[0]


def max_pool2d_with_taps(x, pool_size, stride, padding):
    """(y, taps): taps[n, i, j, c] = the row-major window index of y[n, i, j, c]'s first maximum."""
    ho, wo = conv_output_hw(x.shape[1:3], pool_size, stride, padding)
    y = np.empty((x.shape[0], ho, wo, x.shape[3]), dtype=x.dtype)
    taps = np.empty(y.shape, dtype=np.int8 if pool_size[0] * pool_size[1] <= 127 else np.int32)
    _max_pool(x, *pool_size, *stride, padding[0], padding[2], y, taps)
    return y, taps


def max_pool2d_backward(dy, x, pool_size, stride, padding):
    _, taps = max_pool2d_with_taps(x, pool_size, stride, padding)
    return max_pool2d_backward_taps(dy, taps, x.shape, pool_size, stride, padding)


def max_pool2d_backward_taps(dy, taps, x_shape, pool_size, stride, padding):
    dx = np.zeros(x_shape, dtype=dy.dtype)
    _max_pool_backward(dy, taps, *pool_size, *stride, padding[0], padding[2], CHANNEL_BLOCK, dx)
    return dx


def global_avg_pool2d(x):
    return x.mean(axis=(1, 2))


def global_avg_pool2d_backward(dy, x):
    scale = dy.dtype.type(1.0 / (x.shape[1] * x.shape[2]))
    return np.broadcast_to((dy * scale)[:, None, None, :], x.shape).copy()


@njit(parallel=True, cache=True)
def _max_pool(x, kh, kw, sh, sw, pt, pl, y, taps):
    n_, h, width, c_ = x.shape
    ho, wo = y.shape[1], y.shape[2]
    for row in prange(n_ * ho):
        n = row // ho
        i = row - n * ho
        for j in range(wo):
            out, won = y[n, i, j], taps[n, i, j]
            for c in range(c_):
                out[c] = -np.inf
                won[c] = 0
            for p in range(kh):
                r = input_index(i, p, sh, 1, pt)
                if r < 0 or r >= h:
                    continue
                for q in range(kw):
                    col = input_index(j, q, sw, 1, pl)
                    if col < 0 or col >= width:
                        continue
                    v, t = x[n, r, col], p * kw + q
                    for c in range(c_):
                        b = out[c]
                        if v[c] > b or (v[c] != v[c] and b == b):
                            out[c] = v[c]
                            won[c] = t


@njit(parallel=True, cache=True)
def _max_pool_backward(dy, taps, kh, kw, sh, sw, pt, pl, block, dx):
    n_, h, width, c_ = dx.shape
    ho, wo = dy.shape[1], dy.shape[2]
    blocks = (c_ + block - 1) // block
    zero = dx.dtype.type(0)
    for item in prange(n_ * blocks):
        n = item // blocks
        c0 = (item - n * blocks) * block
        cb = min(c0 + block, c_) - c0
        for i in range(ho):
            for j in range(wo):
                # One sweep over the window's taps: each adds g where it won and +0 elsewhere. That
                # is the same sum (dx is never -0), and it vectorises, unlike a per-channel scatter.
                # A padded winner is never visited, so its gradient is dropped.
                g, won = dy[n, i, j, c0:c0 + cb], taps[n, i, j, c0:c0 + cb]
                for p in range(kh):
                    r = input_index(i, p, sh, 1, pt)
                    if r < 0 or r >= h:
                        continue
                    for q in range(kw):
                        col = input_index(j, q, sw, 1, pl)
                        if col < 0 or col >= width:
                            continue
                        dst, t = dx[n, r, col, c0:c0 + cb], p * kw + q
                        for c in range(cb):
                            dst[c] += g[c] if won[c] == t else zero
