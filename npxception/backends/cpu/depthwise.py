"""Depthwise 2-D convolution, NHWC, as plain Numba kernels (the math: reference/depthwise.py).

Shapes: x (N, H, W, C), w (kh, kw, C, M) -> y (N, Ho, Wo, C*M), output channel c*M + m.

    y[n, i, j, c*M + m]  = sum_{p, q} xpad[n, i*sh + p*dil_h, j*sw + q*dil_w, c] * w[p, q, c, m]
    dw[p, q, c, m]       = sum_{n, i, j} xpad[n, i*sh + p*dil_h, j*sw + q*dil_w, c] * dy[n, i, j, c*M + m]
    dx[n, r, col, c]     = sum over the (output pixel, tap) pairs that read x[n, r, col, c]

Each kernel is a `prange` over what owns its output, so no two iterations write one element: the
forward pass over output rows (n, i), the input gradient over input rows (n, r), *gathering* from
the outputs that read each input pixel (`output_index`, ../_index.py) instead of scattering into
overlapping windows, and the filter gradient over (p, q, c), each iteration summing its tap's
products over the whole batch in a fixed order (so the bits never depend on the thread count).
Taps are added in the reference's order, (0, 0), (0, 1), ..., and a tap in the padding adds
0 * w (or 0 * dy), as the reference's zero-padded array does, so NaN and Inf propagate the same.

This is the version to read; `tuned/depthwise.py` is the same algorithm rearranged for speed, and
`dispatch.py` says when it runs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...shapes import conv_output_hw
from ._index import input_index, output_index


def depthwise_conv2d(x, w, stride, padding, dilation):
    ho, wo = conv_output_hw(x.shape[1:3], w.shape[:2], stride, padding, dilation)
    y = np.empty((x.shape[0], ho, wo, w.shape[2] * w.shape[3]), dtype=x.dtype)
    depthwise_forward(x, w, *stride, padding[0], padding[2], *dilation, y)
    return y


def depthwise_conv2d_backward(dy, x, w, stride, padding, dilation):
    return (depthwise_input_grad(dy, w, x.shape, stride, padding, dilation),
            depthwise_filter_grad(dy, x, w, stride, padding, dilation))


def depthwise_input_grad(dy, w, x_shape, stride, padding, dilation):
    """dx (x_shape) for dy (N, Ho, Wo, C*M)."""
    dx = np.empty(x_shape, dtype=dy.dtype)
    depthwise_input_grad_kernel(dy, w, *stride, padding[0], padding[2], *dilation, dx)
    return dx


def depthwise_filter_grad(dy, x, w, stride, padding, dilation):
    """dw (w's shape); only w's shape is read."""
    dw = np.empty(w.shape, dtype=x.dtype)
    depthwise_filter_grad_kernel(dy, x, *stride, padding[0], padding[2], *dilation, dw)
    return dw


@njit(parallel=True, cache=True)
def depthwise_forward(x, w, sh, sw, pt, pl, dil_h, dil_w, y):
    n_, h, width, c_ = x.shape
    kh, kw, _, mult = w.shape
    ho, wo = y.shape[1], y.shape[2]
    zero = x.dtype.type(0)
    for row in prange(n_ * ho):
        n, i = row // ho, row % ho
        for j in range(wo):
            for c in range(c_):
                for m in range(mult):
                    acc = zero
                    for p in range(kh):
                        r = input_index(i, p, sh, dil_h, pt)
                        for q in range(kw):
                            col = input_index(j, q, sw, dil_w, pl)
                            inside = 0 <= r < h and 0 <= col < width
                            acc += (x[n, r, col, c] if inside else zero) * w[p, q, c, m]
                    y[n, i, j, c * mult + m] = acc


@njit(parallel=True, cache=True)
def depthwise_input_grad_kernel(dy, w, sh, sw, pt, pl, dil_h, dil_w, dx):
    n_, h, width, c_ = dx.shape
    kh, kw, _, mult = w.shape
    ho, wo = dy.shape[1], dy.shape[2]
    zero = dx.dtype.type(0)
    for row in prange(n_ * h):
        n, r = row // h, row % h
        for col in range(width):
            for c in range(c_):
                acc = zero
                for p in range(kh):
                    i = output_index(r, p, sh, dil_h, pt, ho)  # the output row that read row r via tap p
                    if i < 0:
                        continue
                    for q in range(kw):
                        j = output_index(col, q, sw, dil_w, pl, wo)
                        if j < 0:
                            continue
                        for m in range(mult):
                            acc += dy[n, i, j, c * mult + m] * w[p, q, c, m]
                dx[n, r, col, c] = acc


@njit(parallel=True, cache=True)
def depthwise_filter_grad_kernel(dy, x, sh, sw, pt, pl, dil_h, dil_w, dw):
    n_, h, width, c_ = x.shape
    kh, kw, _, mult = dw.shape
    ho, wo = dy.shape[1], dy.shape[2]
    zero = x.dtype.type(0)
    for tap in prange(kh * kw * c_):
        p, q, c = tap // (kw * c_), (tap // c_) % kw, tap % c_
        for m in range(mult):
            acc = zero
            for n in range(n_):
                for i in range(ho):
                    r = input_index(i, p, sh, dil_h, pt)
                    for j in range(wo):
                        col = input_index(j, q, sw, dil_w, pl)
                        inside = 0 <= r < h and 0 <= col < width
                        acc += (x[n, r, col, c] if inside else zero) * dy[n, i, j, c * mult + m]
            dw[p, q, c, m] = acc
