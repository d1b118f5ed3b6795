"""Regular 2-D convolution, NHWC: im2col + one BLAS GEMM, or direct kernels for narrow convs.

The math: reference/conv.py.

Shapes: x (N, H, W, Cin), w (kh, kw, Cin, Cout) -> y (N, Ho, Wo, Cout).

im2col copies every output pixel's receptive field into one row of a matrix,
    cols[(n, i, j), (p, q, c)] = xpad[n, i*sh + p*dil_h, j*sw + q*dil_w, c],
whose column order (p, q, c) is exactly w's row-major order, so w needs no copy:
    Y = cols @ W                     W = w.reshape(kh*kw*Cin, Cout)
    dW = cols^T @ dY,  dcols = dY @ W^T,  dx = col2im(dcols)     (all three in fixed chunks: gemm.py)
col2im is written as a gather (each input pixel sums the entries of dcols that copied it), so it
is parallel over input rows without two iterations ever writing the same element (the
gather index is `output_index`, ../_index.py). Every kernel writes its last argument.

Which path runs depends on the weights' shape and the stride alone (measured on Xception's convs,
float32, 1 and 2 threads); conv_direct.py has the direct kernels, which need no im2col matrix (9x
the size of x for a 3x3 kernel) and stay fast where the GEMM is narrow (few channels):
- forward: direct for a kh x kw > 1x1 kernel with Cout <= 32: the stems of `small` (3 -> 8,
  8 -> 16) and the paper's first stem (3 -> 32). The paper's second stem (32 -> 64, as fast
  either way) and the 1x1 shortcuts (where im2col is a plain strided copy and BLAS is 2-5x
  faster) stay on the GEMM.
- input gradient: direct (the forward kernel run on dy with the kernel flipped) for stride 1, a
  kernel larger than 1x1, Cin <= 16 and finite w: `small`'s second stem (and its first, whose dx
  training skips). The direct form adds 0 * w where no output pixel used a tap, which only
  differs from the reference's sum when w holds Inf or NaN, hence the finiteness check.
- filter gradient: direct for a kernel larger than 1x1 with Cin <= 4: the first stem conv, where
  im2col's matrix holds 9x the data of x and the GEMM produces only 27 rows of dW.
Both paths give the reference's sums to rounding and the contract's NaN/Inf behaviour.
Xception's convs are the two 3x3 stem convs (Cin = 3 and 32) and the 1x1 stride-2 shortcuts.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...shapes import conv_output_hw
from ._index import input_index, output_index
from .conv_direct import conv2d_direct, conv2d_filter_grad_direct, conv2d_input_grad_direct
from .gemm import tall_matmul, tall_transpose_matmul

FORWARD_MAX_COUT = 32      # the thresholds of the rules in the module docstring
INPUT_GRAD_MAX_CIN = 16
FILTER_GRAD_MAX_CIN = 4


def direct_forward(w_shape) -> bool:
    """Whether conv2d runs the direct kernel for weights of this shape (see the module docstring)."""
    kh, kw, _, cout = w_shape
    return kh * kw > 1 and cout <= FORWARD_MAX_COUT


def direct_input_grad(w, stride) -> bool:
    """Whether conv2d_input_grad runs the direct kernel (needs the values of w: finite only)."""
    kh, kw, cin, _ = w.shape
    return (tuple(stride) == (1, 1) and kh * kw > 1 and cin <= INPUT_GRAD_MAX_CIN
            and bool(np.isfinite(w).all()))


def direct_filter_grad(w_shape) -> bool:
    """Whether conv2d_filter_grad runs the direct kernel for weights of this shape."""
    kh, kw, cin, _ = w_shape
    return kh * kw > 1 and cin <= FILTER_GRAD_MAX_CIN


def conv2d(x, w, stride, padding, dilation):
    kh, kw, cin, cout = w.shape
    n = x.shape[0]
    ho, wo = conv_output_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    if direct_forward(w.shape):
        return conv2d_direct(x, w, (ho, wo), stride, padding, dilation)
    cols = _im2col(x, (kh, kw), (ho, wo), stride, padding, dilation)
    return tall_matmul(cols, w.reshape(kh * kw * cin, cout)).reshape(n, ho, wo, cout)


def conv2d_backward(dy, x, w, stride, padding, dilation):
    return (conv2d_input_grad(dy, w, x.shape, stride, padding, dilation),
            conv2d_filter_grad(dy, x, w, stride, padding, dilation))


def conv2d_input_grad(dy, w, x_shape, stride, padding, dilation):
    """dx (x_shape) = col2im(dY @ W^T); needs no im2col of x."""
    if direct_input_grad(w, stride):
        return conv2d_input_grad_direct(dy, w, x_shape, padding, dilation)
    kh, kw, cin, cout = w.shape
    n, ho, wo, _ = dy.shape
    dcols = tall_matmul(dy.reshape(n * ho * wo, cout), w.reshape(kh * kw * cin, cout).T)
    dx = np.empty(x_shape, dtype=dy.dtype)
    _col2im(dcols, kh, kw, ho, wo, *stride, padding[0], padding[2], *dilation, dx)
    return dx


def conv2d_filter_grad(dy, x, w, stride, padding, dilation):
    """dw (w's shape) = im2col(x)^T @ dY; only w's shape is read (the contract's optional op)."""
    w_shape = w.shape
    kh, kw, cin, cout = w_shape
    if direct_filter_grad(w_shape):
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
