"""Regular 2-D convolution, NHWC: im2col + one BLAS GEMM, or direct kernels for narrow convs.

The math: reference/conv.py.

Shapes: x (N, H, W, Cin), w (kh, kw, Cin, Cout) -> y (N, Ho, Wo, Cout).

im2col copies every output pixel's receptive field into one row of a matrix,
    cols[(n, i, j), (p, q, c)] = xpad[n, i*sh + p*dil_h, j*sw + q*dil_w, c],
whose column order (p, q, c) is exactly w's row-major order, so w needs no copy:
    Y = cols @ W                     W = w.reshape(kh*kw*Cin, Cout)
    dW = cols^T @ dY,  dcols = dY @ W^T,  dx = col2im(dcols)
For a 3x3 kernel cols holds 9x the data of x (100 MB for the paper's second stem), so it is never
built whole where NumPy's OpenBLAS is callable from Numba (_blas.py): each task of a `prange` over
fixed chunks of cols's rows builds BLOCK_ROWS rows at a time in a buffer that stays in L2 and runs
one single-threaded GEMM on it; the filter gradient adds its blocks into the chunk's partial
(beta = 1) and the partials in chunk order, so the bits never depend on the thread count. For
stride 1 and finite w, dx is the forward conv of dy with the flipped kernel (conv_direct.flipped),
through the same blocked GEMM; otherwise dcols is one GEMM (gemm.py) and col2im a gather (each
input pixel sums the entries of dcols that copied it), parallel over input rows without two
iterations ever writing the same element (the gather index is `output_index`, ../_index.py).
Measured on the paper's second stem (4 x 149 x 149 x 32 -> 64, 2 threads): forward 30.7 -> 16.9 ms,
dx 36.7 -> 19.8 ms, dW 29.3 -> 15.9 ms against the whole cols matrix. Without the OpenBLAS
symbols, cols is built whole and the GEMMs go through gemm.py. Every kernel writes its last argument.

Which path runs depends on the weights' shape and the stride alone (measured on Xception's convs,
float32, 2 threads, against the blocked im2col GEMM); conv_direct.py has the direct kernels, which
need no cols at all and win only where the GEMM is very narrow:
- forward: direct for a kh x kw > 1x1 kernel with Cout <= 8: `small`'s first stem (3 -> 8:
  0.80 ms direct, 1.37 ms blocked, batch 64). Its second stem (8 -> 16: 1.87 against 1.49 ms) and
  the paper's first (3 -> 32: 3.00 against 2.29 ms) take the GEMM.
- input gradient: direct (the forward kernel run on dy with the kernel flipped) for stride 1, a
  kernel larger than 1x1, Cin <= 4 and finite w (`small`'s second stem: 2.69 ms direct, 2.19 ms
  blocked). The direct and flipped forms add 0 * w where no output pixel used a tap, which only
  differs from the reference's sum when w holds Inf or NaN, hence the finiteness check.
- filter gradient: direct for a kernel larger than 1x1 with Cin <= 4 and Cout <= 8: the first
  stem of `small` (1.10 against 1.22 ms); the paper's first stem takes the GEMM (3.08 against
  2.44 ms).
Both paths give the reference's sums to rounding and the contract's NaN/Inf behaviour.
Xception's convs are the two 3x3 stem convs (Cin = 3 and 32) and the 1x1 stride-2 shortcuts.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...shapes import conv_output_hw
from . import _blas
from ._chunks import chunk_bounds, sum_partials
from ._index import input_index, output_index
from .conv_direct import conv2d_direct, conv2d_filter_grad_direct, conv2d_input_grad_direct, flipped
from .gemm import MIN_ROWS_PER_GEMM, num_tasks, tall_matmul, tall_transpose_matmul

FORWARD_MAX_COUT = 8  # the thresholds of the rules in the module docstring
INPUT_GRAD_MAX_CIN = 4
FILTER_GRAD_MAX_CIN = 4
FILTER_GRAD_MAX_COUT = 8
BLOCK_ROWS = 256  # im2col rows built at a time: 256 x K floats stay in L2 (K = 3*3*64: 590 KB)
FILTER_GRAD_ROWS_PER_CHUNK = 2048  # rows of cols per partial filter gradient (32 chunks at most)


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
    kh, kw, cin, cout = w_shape
    return kh * kw > 1 and cin <= FILTER_GRAD_MAX_CIN and cout <= FILTER_GRAD_MAX_COUT


def conv2d(x, w, stride, padding, dilation):
    kh, kw = w.shape[:2]
    ho, wo = conv_output_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    if direct_forward(w.shape):
        return conv2d_direct(x, w, (ho, wo), stride, padding, dilation)
    return _im2col_matmul(x, w, (ho, wo), stride, padding, dilation)


def conv2d_backward(dy, x, w, stride, padding, dilation):
    return (conv2d_input_grad(dy, w, x.shape, stride, padding, dilation),
            conv2d_filter_grad(dy, x, w, stride, padding, dilation))


def conv2d_input_grad(dy, w, x_shape, stride, padding, dilation):
    """dx (x_shape): for stride 1 and finite w the forward conv of dy with the flipped kernel
    (direct for Cin <= 4, else the blocked im2col GEMM), otherwise col2im(dY @ W^T)."""
    if direct_input_grad(w, stride):
        return conv2d_input_grad_direct(dy, w, x_shape, padding, dilation)
    kh, kw, cin, cout = w.shape
    if _fused(dy, w.shape) and tuple(stride) == (1, 1) and kh * kw > 1 and bool(np.isfinite(w).all()):
        w_flip, pads = flipped(w, padding, dilation)
        return _im2col_matmul(dy, w_flip, x_shape[1:3], (1, 1), pads, dilation)
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
    dy2 = dy.reshape(n * ho * wo, cout)
    if _free_im2col(w_shape, stride, padding) or not (_fused(x, w_shape) and dy2.size):
        cols = _im2col(x, (kh, kw), (ho, wo), stride, padding, dilation)
        return tall_transpose_matmul(cols, dy2).reshape(w_shape)
    chunks = num_tasks(max(1, dy2.shape[0] // FILTER_GRAD_ROWS_PER_CHUNK))
    partials = np.empty((chunks, kh * kw * cin, cout), dtype=x.dtype)
    with _blas.single_threaded_blas():
        _im2col_filter_grad(np.ascontiguousarray(x), np.ascontiguousarray(dy2), kh, kw, ho, wo, *stride,
                            padding[0], padding[2], *dilation, BLOCK_ROWS, partials)
    return sum_partials(partials).reshape(w_shape)


def _fused(a, w_shape) -> bool:
    """Whether im2col can be built block by block inside the GEMM kernel: NumPy's OpenBLAS found,
    a float array and nothing empty (a GEMM would reject a zero leading dimension)."""
    return _blas.AVAILABLE and a.dtype in (np.float32, np.float64) and a.size > 0 and all(w_shape)


def _free_im2col(w_shape, stride, padding) -> bool:
    """A 1x1, stride-1, unpadded conv: cols is x itself, reshaped."""
    return tuple(w_shape[:2]) == (1, 1) and tuple(stride) == (1, 1) and not any(padding)


def _im2col_matmul(x, w, out_hw, stride, padding, dilation):
    """y (N, Ho, Wo, Cout) = im2col(x) @ W; cols built BLOCK_ROWS rows at a time when fused."""
    kh, kw, cin, cout = w.shape
    n, (ho, wo) = x.shape[0], out_hw
    w2 = np.ascontiguousarray(w, dtype=x.dtype).reshape(kh * kw * cin, cout)
    if _free_im2col(w.shape, stride, padding) or not (_fused(x, w.shape) and ho * wo):
        return tall_matmul(_im2col(x, (kh, kw), out_hw, stride, padding, dilation), w2).reshape(n, ho, wo, cout)
    y = np.empty((n * ho * wo, cout), dtype=x.dtype)
    chunks = num_tasks(max(1, y.shape[0] // MIN_ROWS_PER_GEMM))
    with _blas.single_threaded_blas():
        _im2col_gemm(np.ascontiguousarray(x), w2, kh, kw, ho, wo, *stride, padding[0], padding[2], *dilation,
                     BLOCK_ROWS, chunks, y)
    return y.reshape(n, ho, wo, cout)


@njit(parallel=True, cache=True)
def _im2col_gemm(x, w2, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, block_rows, chunks, y):
    """y (P, Cout) = cols @ w2, chunk by chunk of cols's rows; each chunk builds its rows of cols
    block_rows at a time in a buffer of its own, and one GEMM per block writes those rows of y."""
    rows, k_ = y.shape[0], w2.shape[0]
    cout, size = y.shape[1], y.itemsize
    for c in prange(chunks):
        start, stop = chunk_bounds(c, rows, chunks)
        block = np.empty((block_rows, k_), dtype=x.dtype)
        for b0 in range(start, stop, block_rows):
            b1 = min(b0 + block_rows, stop)
            _fill_cols(x, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, b0, b1, block)
            _blas.gemm(False, False, b1 - b0, cout, k_, block.ctypes.data, k_, w2.ctypes.data, cout,
                       0.0, y.ctypes.data + b0 * cout * size, cout, size)


@njit(parallel=True, cache=True)
def _im2col_filter_grad(x, dy2, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, block_rows, partials):
    """partials[c] (K, Cout) = cols^T @ dY over chunk c of the rows, block by block: the first
    block's GEMM writes the partial, the later ones add to it (beta = 1), in row order."""
    chunks, k_, cout = partials.shape
    rows, size = dy2.shape[0], dy2.itemsize
    for c in prange(chunks):
        start, stop = chunk_bounds(c, rows, chunks)
        block = np.empty((block_rows, k_), dtype=x.dtype)
        acc = partials[c]
        if stop == start:  # an empty chunk (no rows at all): a zero partial
            acc[:] = 0
        for b0 in range(start, stop, block_rows):
            b1 = min(b0 + block_rows, stop)
            _fill_cols(x, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, b0, b1, block)
            _blas.gemm(True, False, k_, cout, b1 - b0, block.ctypes.data, k_, dy2.ctypes.data + b0 * cout * size,
                       cout, 0.0 if b0 == start else 1.0, acc.ctypes.data, cout, size)


def _im2col(x, kernel, out_hw, stride, padding, dilation):
    """cols (N*Ho*Wo, kh*kw*Cin); a free reshape when the conv is 1x1, stride 1, unpadded."""
    (kh, kw), (ho, wo) = kernel, out_hw
    n, _, _, cin = x.shape
    if _free_im2col(kernel, stride, padding):
        return x.reshape(n * ho * wo, cin)
    cols = np.empty((n * ho * wo, kh * kw * cin), dtype=x.dtype)
    _im2col_kernel(x, kh, kw, ho, wo, *stride, padding[0], padding[2], *dilation, cols)
    return cols


@njit(parallel=True, cache=True)
def _im2col_kernel(x, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, cols):
    for row in prange(x.shape[0] * ho):
        _fill_cols(x, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, row * wo, (row + 1) * wo, cols[row * wo:])


@njit(cache=True)
def _fill_cols(x, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, start, stop, out):
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
