"""Regular 2-D convolution, NHWC: im2col and one matrix product (the math: reference/conv.py).

Shapes: x (N, H, W, Cin), w (kh, kw, Cin, Cout) -> y (N, Ho, Wo, Cout).

im2col copies every output pixel's receptive field into one row of a matrix,
    cols[(n, i, j), (p, q, c)] = xpad[n, i*sh + p*dil_h, j*sw + q*dil_w, c],
whose column order (p, q, c) is exactly w's row-major order, so w needs no copy:
    Y = cols @ W                     W = w.reshape(kh*kw*Cin, Cout)
    dW = cols^T @ dY,  dcols = dY @ W^T,  dx = col2im(dcols)
Each product is one NumPy matmul (BLAS). col2im is a gather: each input pixel sums the entries of
dcols that copied it, parallel over input rows, so no two iterations write one element (the gather
index is `output_index`, ../_index.py), taps in the reference's order. Every kernel writes its
last argument.

This is the version to read; `tuned/conv.py` builds cols block by block inside single-threaded
GEMMs and `tuned/conv_direct.py` skips cols for narrow convs; `dispatch.py` says when each runs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...shapes import conv_output_hw
from ._index import input_index, output_index


def conv2d(x, w, stride, padding, dilation):
    kh, kw, cin, cout = w.shape
    ho, wo = conv_output_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    cols = im2col(x, (kh, kw), (ho, wo), stride, padding, dilation)
    return (cols @ w.reshape(kh * kw * cin, cout)).reshape(x.shape[0], ho, wo, cout)


def conv2d_backward(dy, x, w, stride, padding, dilation):
    return (conv2d_input_grad(dy, w, x.shape, stride, padding, dilation),
            conv2d_filter_grad(dy, x, w, stride, padding, dilation))


def conv2d_input_grad(dy, w, x_shape, stride, padding, dilation):
    """dx (x_shape) = col2im(dY @ W^T)."""
    kh, kw, cin, cout = w.shape
    n, ho, wo, _ = dy.shape
    dcols = dy.reshape(n * ho * wo, cout) @ w.reshape(kh * kw * cin, cout).T
    dx = np.empty(x_shape, dtype=dy.dtype)
    col2im_kernel(dcols, kh, kw, ho, wo, *stride, padding[0], padding[2], *dilation, dx)
    return dx


def conv2d_filter_grad(dy, x, w, stride, padding, dilation):
    """dw (w's shape) = im2col(x)^T @ dY; only w's shape is read."""
    kh, kw, cin, cout = w.shape
    n, ho, wo, _ = dy.shape
    cols = im2col(x, (kh, kw), (ho, wo), stride, padding, dilation)
    return (cols.T @ dy.reshape(n * ho * wo, cout)).reshape(w.shape)


def free_im2col(w_shape, stride, padding) -> bool:
    """A 1x1, stride-1, unpadded conv: cols is x itself, reshaped."""
    return tuple(w_shape[:2]) == (1, 1) and tuple(stride) == (1, 1) and not any(padding)


def im2col(x, kernel, out_hw, stride, padding, dilation):
    """cols (N*Ho*Wo, kh*kw*Cin); a free reshape when the conv is 1x1, stride 1, unpadded."""
    (kh, kw), (ho, wo) = kernel, out_hw
    n, _, _, cin = x.shape
    if free_im2col(kernel, stride, padding):
        return x.reshape(n * ho * wo, cin)
    cols = np.empty((n * ho * wo, kh * kw * cin), dtype=x.dtype)
    im2col_kernel(x, kh, kw, ho, wo, *stride, padding[0], padding[2], *dilation, cols)
    return cols


@njit(parallel=True, cache=True)
def im2col_kernel(x, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, cols):
    for row in prange(x.shape[0] * ho):
        fill_cols(x, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, row * wo, (row + 1) * wo, cols[row * wo:])


@njit(cache=True)
def fill_cols(x, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, start, stop, out):
    """out[m - start] = row m of cols, for m in [start, stop): output pixel m's receptive field."""
    _, h, width, cin = x.shape
    zero = x.dtype.type(0)
    for m in range(start, stop):
        n = m // (ho * wo)
        i = (m - n * ho * wo) // wo
        j = m - (n * ho + i) * wo
        dst = out[m - start]
        for p in range(kh):
            r = input_index(i, p, sh, dil_h, pt)
            for q in range(kw):
                col = input_index(j, q, sw, dil_w, pl)
                base = (p * kw + q) * cin
                if 0 <= r < h and 0 <= col < width:
                    src = x[n, r, col]
                    for c in range(cin):
                        dst[base + c] = src[c]
                else:
                    for c in range(cin):
                        dst[base + c] = zero


@njit(parallel=True, cache=True)
def col2im_kernel(dcols, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, dx):
    """dx[n, r, col] = sum of the dcols entries that im2col copied from x[n, r, col]."""
    n_, h, width, cin = dx.shape
    zero = dx.dtype.type(0)
    for row in prange(n_ * h):
        n = row // h
        r = row - n * h
        for col in range(width):
            out = dx[n, r, col]
            for c in range(cin):
                out[c] = zero
            # Tap order (p, q) as in the reference's sum, so float64 results match it closely.
            for p in range(kh):
                i = output_index(r, p, sh, dil_h, pt, ho)  # the output row that read x[n, r] via tap p
                if i < 0:
                    continue
                for q in range(kw):
                    j = output_index(col, q, sw, dil_w, pl, wo)
                    if j < 0:
                        continue
                    src = dcols[(n * ho + i) * wo + j]
                    base = (p * kw + q) * cin
                    for c in range(cin):
                        out[c] += src[base + c]
