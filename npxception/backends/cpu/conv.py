"""Regular 2-D convolution, NHWC: im2col + one BLAS GEMM, or direct kernels for narrow convs.

The math: reference/conv.py.

Shapes: x (N, H, W, Cin), w (kh, kw, Cin, Cout) -> y (N, Ho, Wo, Cout).

im2col copies every output pixel's receptive field into one row of a matrix,
    cols[(n, i, j), (p, q, c)] = xpad[n, i*sh + p*dil_h, j*sw + q*dil_w, c],
whose column order (p, q, c) is exactly w's row-major order, so w needs no copy:
    Y = cols @ W                     W = w.reshape(kh*kw*Cin, Cout)
    dW = cols^T @ dY (in fixed row chunks: gemm.py),  dcols = dY @ W^T,  dx = col2im(dcols)
col2im is written as a gather (each input pixel sums the entries of dcols that copied it), so it
is parallel over input rows without two iterations ever writing the same element (the
gather index is `output_index`, ../_index.py). Every kernel writes its last argument.

Which path runs is decided by the weights' shape alone (measured on Xception's convs, float32, 1 and
2 threads; conv_direct.py has the kernels):
- forward: direct when Cout <= DIRECT_MAX_COUT. With so few output channels the GEMM is too narrow
  for BLAS to run well and im2col's matrix (9x the size of x for a 3x3 kernel) costs as much as the
  product; the direct kernel reads x's phase planes in place. That is both stem convs of `small`
  (3 -> 8, 8 -> 16). Wider convs (the paper's stems, Cout = 32 and 64, and every shortcut) stay on
  the GEMM, which is as fast or faster there.
- filter gradient: direct when Cin <= DIRECT_MAX_CIN, the first conv of the network (Cin = 3), for
  which im2col's matrix holds 9x the data of x and the GEMM has only 27 rows of dW to produce.
- input gradient: always dcols + col2im (a direct gather was measured slower for every stem shape).
Both paths give the reference's sums to rounding; the NaN/Inf rules of the contract hold on each.
Xception's convs are the two 3x3 stem convs (Cin = 3 and 32) and the 1x1 stride-2 shortcuts.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...shapes import conv_output_hw
from ._index import input_index, output_index
from .conv_direct import conv2d_direct, conv2d_filter_grad_direct
from .gemm import tall_transpose_matmul

DIRECT_MAX_COUT = 16  # forward: direct kernel up to this many output channels
DIRECT_MAX_CIN = 4    # filter gradient: direct kernel up to this many input channels


def conv2d(x, w, stride, padding, dilation):
    kh, kw, cin, cout = w.shape
    n = x.shape[0]
    ho, wo = conv_output_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    if cout <= DIRECT_MAX_COUT:
        return conv2d_direct(x, w, (ho, wo), stride, padding, dilation)
    cols = _im2col(x, (kh, kw), (ho, wo), stride, padding, dilation)
    return (cols @ w.reshape(kh * kw * cin, cout)).reshape(n, ho, wo, cout)


def conv2d_backward(dy, x, w, stride, padding, dilation):
    return (conv2d_input_grad(dy, w, x.shape, stride, padding, dilation),
            conv2d_filter_grad(dy, x, w.shape, stride, padding, dilation))


def conv2d_input_grad(dy, w, x_shape, stride, padding, dilation):
    """dx (x_shape) = col2im(dY @ W^T); needs no im2col of x."""
    kh, kw, cin, cout = w.shape
    n, ho, wo, _ = dy.shape
    dcols = dy.reshape(n * ho * wo, cout) @ w.reshape(kh * kw * cin, cout).T
    dx = np.empty(x_shape, dtype=dy.dtype)
    _col2im(dcols, kh, kw, ho, wo, *stride, padding[0], padding[2], *dilation, dx)
    return dx


def conv2d_filter_grad(dy, x, w_shape, stride, padding, dilation):
    """dw (w_shape) = im2col(x)^T @ dY."""
    kh, kw, cin, cout = w_shape
    if cin <= DIRECT_MAX_CIN:
        return conv2d_filter_grad_direct(dy, x, w_shape, stride, padding, dilation)
    n, ho, wo, _ = dy.shape
    cols = _im2col(x, (kh, kw), (ho, wo), stride, padding, dilation)
    return tall_transpose_matmul(cols, dy.reshape(n * ho * wo, cout)).reshape(w_shape)


def _im2col(x, kernel, out_hw, stride, padding, dilation):
    """cols (N*Ho*Wo, kh*kw*Cin); a free reshape when the conv is 1x1, stride 1, unpadded."""
    (kh, kw), (ho, wo) = kernel, out_hw
    n, _, _, cin = x.shape
    if kernel == (1, 1) and stride == (1, 1) and not any(padding):
        return x.reshape(n * ho * wo, cin)
    cols = np.empty((n * ho * wo, kh * kw * cin), dtype=x.dtype)
    _im2col_kernel(x, kh, kw, ho, wo, *stride, padding[0], padding[2], *dilation, cols)
    return cols


@njit(parallel=True, cache=True)
def _im2col_kernel(x, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, cols):
    n_, h, width, cin = x.shape
    zero = x.dtype.type(0)
    for row in prange(n_ * ho):
        n = row // ho
        i = row - n * ho
        for j in range(wo):
            dst = cols[row * wo + j]
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
def _col2im(dcols, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, dx):
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
