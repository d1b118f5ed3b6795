"""Max pooling and global average pooling on the GPU, NHWC (math: reference/pool.py).

Max pool uses the depthwise kernels' layout (32 channels x 8 pixels per block, coalesced over
channels). Padding is -inf, so padded positions are simply skipped; the padding is smaller than the
window, so every window holds at least one real pixel.

The backward pass is a gather, not a scatter: each input element visits the few windows that
contain it (about (k / s)^2 of them), recomputes each window's winner with the same `first_max`
as the forward, and adds dy of the windows it won, in row-major window order (the order in which
the reference's scatter-add accumulates). No atomics, bit-reproducible.
"""

from __future__ import annotations

from numba import cuda

from ...shapes import conv_output_hw
from ._launch import (CHANNEL_THREADS, ROW_THREADS, THREADS, blocks_for, ceil_div, channel_block,
                      grid_yz, launch, per_dtype)
from .arrays import empty


@cuda.jit(device=True, inline="always")
def ceil_div_signed(a, b):
    """Ceiling of a / b for b > 0 and a of any sign (// rounds toward -inf, as in Python)."""
    return -((-a) // b)


@cuda.jit(device=True, inline="always")
def first_max(x, n, c, top, left, kh, kw):
    """(value, row, col) of the window's first maximum in row-major order; a NaN wins and stays.

    top, left: the window's corner in input coordinates (negative inside the padding).
    """
    h0 = max(top, 0)
    w0 = max(left, 0)
    h1 = min(top + kh, x.shape[1])
    w1 = min(left + kw, x.shape[2])
    best = x[n, h0, w0, c]
    best_h = h0
    best_w = w0
    for h in range(h0, h1):
        for w in range(w0, w1):
            v = x[n, h, w, c]
            if v > best or (v != v and best == best):
                best = v
                best_h = h
                best_w = w
    return best, best_h, best_w


@cuda.jit(cache=True)
def max_pool_kernel(x, kh, kw, sh, sw, pt, pl, y):
    ho, wo, channels = y.shape[1], y.shape[2], y.shape[3]
    c = cuda.blockIdx.x * CHANNEL_THREADS + cuda.threadIdx.x
    j = cuda.blockIdx.y * ROW_THREADS + cuda.threadIdx.y
    if c >= channels or j >= wo:
        return
    for row in range(cuda.blockIdx.z, y.shape[0] * ho, cuda.gridDim.z):
        n = row // ho
        i = row - n * ho
        best, _, _ = first_max(x, n, c, i * sh - pt, j * sw - pl, kh, kw)
        y[n, i, j, c] = best


def _make_max_pool_backward(dtype):
    @cuda.jit(cache=True)
    def max_pool_backward_kernel(dy, x, kh, kw, sh, sw, pt, pl, dx):
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        ho, wo = dy.shape[1], dy.shape[2]
        c = cuda.blockIdx.x * CHANNEL_THREADS + cuda.threadIdx.x
        w = cuda.blockIdx.y * ROW_THREADS + cuda.threadIdx.y
        if c >= channels or w >= width:
            return
        # Windows i with i*sh <= h + pt <= i*sh + kh - 1 (likewise j) contain input (h, w).
        j_first = max(0, ceil_div_signed(w + pl - kw + 1, sw))
        j_last = min(wo - 1, (w + pl) // sw)
        for row in range(cuda.blockIdx.z, x.shape[0] * height, cuda.gridDim.z):
            n = row // height
            h = row - n * height
            i_first = max(0, ceil_div_signed(h + pt - kh + 1, sh))
            i_last = min(ho - 1, (h + pt) // sh)
            acc = dtype(0)
            for i in range(i_first, i_last + 1):
                for j in range(j_first, j_last + 1):
                    _, bh, bw = first_max(x, n, c, i * sh - pt, j * sw - pl, kh, kw)
                    if bh == h and bw == w:
                        acc += dy[n, i, j, c]
            dx[n, h, w, c] = acc

    return max_pool_backward_kernel


def _make_global_avg_pool(dtype):
    @cuda.jit(cache=True)
    def global_avg_pool_kernel(x, y):
        """y[n, c] = mean over H, W; consecutive threads take consecutive channels (coalesced)."""
        c = cuda.blockIdx.x * THREADS + cuda.threadIdx.x
        n = cuda.blockIdx.y
        if c >= x.shape[3]:
            return
        acc = dtype(0)
        for h in range(x.shape[1]):
            for w in range(x.shape[2]):
                acc += x[n, h, w, c]
        y[n, c] = acc / dtype(x.shape[1] * x.shape[2])

    return global_avg_pool_kernel


@cuda.jit(cache=True)
def global_avg_pool_backward_kernel(dy, scale, dx_flat):
    """dx[n, h, w, c] = dy[n, c] * scale, on the flat dx."""
    channels = dy.shape[1]
    per_image = dx_flat.size // dy.shape[0]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, dx_flat.size, step):
        dx_flat[idx] = dy[idx // per_image, idx % channels] * scale


_MAX_POOL_BACKWARD = per_dtype(_make_max_pool_backward)
_GLOBAL_AVG_POOL = per_dtype(_make_global_avg_pool)


def max_pool2d(x, pool_size, stride, padding):
    ho, wo = conv_output_hw(x.shape[1:3], pool_size, stride, padding)
    y = empty((x.shape[0], ho, wo, x.shape[3]), x.dtype)
    grid = (ceil_div(x.shape[3], CHANNEL_THREADS), ceil_div(wo, ROW_THREADS),
            grid_yz(x.shape[0] * ho))
    launch(max_pool_kernel, grid, channel_block(), x, pool_size[0], pool_size[1], stride[0],
           stride[1], padding[0], padding[2], y)
    return y


def max_pool2d_backward(dy, x, pool_size, stride, padding):
    dx = empty(x.shape, x.dtype)
    grid = (ceil_div(x.shape[3], CHANNEL_THREADS), ceil_div(x.shape[2], ROW_THREADS),
            grid_yz(x.shape[0] * x.shape[1]))
    launch(_MAX_POOL_BACKWARD[x.dtype], grid, channel_block(), dy, x, pool_size[0], pool_size[1],
           stride[0], stride[1], padding[0], padding[2], dx)
    return dx


def global_avg_pool2d(x):
    y = empty((x.shape[0], x.shape[3]), x.dtype)
    launch(_GLOBAL_AVG_POOL[x.dtype], (ceil_div(x.shape[3], THREADS), x.shape[0]), THREADS,
           x, y)
    return y


def global_avg_pool2d_backward(dy, x):
    dx = empty(x.shape, x.dtype)
    scale = x.dtype.type(1.0 / (x.shape[1] * x.shape[2]))
    launch(global_avg_pool_backward_kernel, blocks_for(dx.size), THREADS, dy, scale,
           dx.reshape(dx.size))
    return dx
