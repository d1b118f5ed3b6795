"""Regular 2-D convolution, tuned: im2col built block by block inside single-threaded GEMMs.

The plain version (../conv.py) builds the whole cols matrix, 9x the data of x for a 3x3 kernel
(100 MB for the paper's second stem), and multiplies it in one BLAS call. Here, where NumPy's
OpenBLAS is callable from Numba (blas.py), each task of a `prange` over fixed chunks of cols's rows
builds BLOCK_ROWS rows at a time in a buffer that stays in L2 and runs one single-threaded GEMM on
it; the filter gradient adds its blocks into the chunk's partial (beta = 1) and the partials in
chunk order, so the bits never depend on the thread count. For stride 1 and finite w, dx is the
forward conv of dy with the flipped kernel (conv_direct.flipped) through the same blocked GEMM;
otherwise dcols is one tall GEMM (gemm.py) and col2im the plain gather. Where the blocks cannot be
used (no OpenBLAS, an empty array, an integer dtype), the `*_tasks` functions build cols whole and
run it through gemm.py. Benchmark: `benchmarks/bench_ops.py` (ops `conv2d*`); the numbers are in
docs/performance.md. Every kernel writes its last argument.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ....shapes import conv_output_hw
from .. import runtime
from .._chunks import chunk_bounds, sum_partials
from ..conv import col2im_kernel, fill_cols, free_im2col, im2col
from . import blas
from .conv_direct import flipped
from .gemm import MIN_ROWS_PER_GEMM, num_tasks, tall_matmul, tall_transpose_matmul

BLOCK_ROWS = 256  # im2col rows built at a time: 256 x K floats stay in L2 (K = 3*3*64: 590 KB)
FILTER_GRAD_ROWS_PER_CHUNK = 2048  # rows of cols per partial filter gradient (32 chunks at most)


def blockable(a, w_shape, stride, padding) -> bool:
    """Whether im2col can be built block by block inside the GEMM kernel: NumPy's OpenBLAS found,
    a float array, nothing empty (a GEMM rejects a zero leading dimension), and cols is not x itself."""
    return (blas.available() and a.dtype in (np.float32, np.float64) and a.size > 0 and all(w_shape)
            and not free_im2col(w_shape, stride, padding))


def conv2d(x, w, stride, padding, dilation):
    """y = im2col(x) @ W, cols built BLOCK_ROWS rows at a time (needs `blockable`)."""
    ho, wo = conv_output_hw(x.shape[1:3], w.shape[:2], stride, padding, dilation)
    return _blocked_matmul(x, w, (ho, wo), stride, padding, dilation)


def conv2d_tasks(x, w, stride, padding, dilation):
    """y = im2col(x) @ W with cols built whole and the product cut into gemm.py's tasks."""
    kh, kw, cin, cout = w.shape
    ho, wo = conv_output_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    w2 = np.ascontiguousarray(w, dtype=x.dtype).reshape(kh * kw * cin, cout)
    return tall_matmul(im2col(x, (kh, kw), (ho, wo), stride, padding, dilation), w2).reshape(x.shape[0], ho, wo, cout)


def conv2d_input_grad_flipped(dy, w, x_shape, stride, padding, dilation):
    """dx for a stride-1 conv with finite w: the blocked forward conv of dy with the flipped kernel."""
    w_flip, pads = flipped(w, padding, dilation)
    return _blocked_matmul(dy, w_flip, x_shape[1:3], (1, 1), pads, dilation)


def conv2d_input_grad_tasks(dy, w, x_shape, stride, padding, dilation):
    """dx = col2im(dY @ W^T), the product cut into gemm.py's tasks."""
    kh, kw, cin, cout = w.shape
    n, ho, wo, _ = dy.shape
    dcols = tall_matmul(dy.reshape(n * ho * wo, cout), w.reshape(kh * kw * cin, cout).T)
    dx = np.empty(x_shape, dtype=dy.dtype)
    col2im_kernel(dcols, kh, kw, ho, wo, *stride, padding[0], padding[2], *dilation, dx)
    return dx


def conv2d_filter_grad(dy, x, w, stride, padding, dilation):
    """dw = im2col(x)^T @ dY block by block (needs `blockable` and a non-empty dy)."""
    kh, kw, cin, cout = w.shape
    n, ho, wo, _ = dy.shape
    dy2 = dy.reshape(n * ho * wo, cout)
    chunks = num_tasks(max(1, dy2.shape[0] // FILTER_GRAD_ROWS_PER_CHUNK))
    partials = np.empty((chunks, kh * kw * cin, cout), dtype=x.dtype)
    with runtime.single_threaded_blas():
        _im2col_filter_grad(np.ascontiguousarray(x), np.ascontiguousarray(dy2), kh, kw, ho, wo, *stride,
                            padding[0], padding[2], *dilation, BLOCK_ROWS, partials)
    return sum_partials(partials).reshape(w.shape)


def conv2d_filter_grad_tasks(dy, x, w, stride, padding, dilation):
    """dw = im2col(x)^T @ dY with cols built whole, through gemm.py's tasks."""
    kh, kw, cin, cout = w.shape
    n, ho, wo, _ = dy.shape
    cols = im2col(x, (kh, kw), (ho, wo), stride, padding, dilation)
    return tall_transpose_matmul(cols, dy.reshape(n * ho * wo, cout)).reshape(w.shape)


def _blocked_matmul(x, w, out_hw, stride, padding, dilation):
    """y (N, Ho, Wo, Cout) = im2col(x) @ W, cols built BLOCK_ROWS rows at a time."""
    kh, kw, cin, cout = w.shape
    n, (ho, wo) = x.shape[0], out_hw
    if not ho * wo:  # nothing to compute (a GEMM would reject the zero leading dimension)
        return np.zeros((n, ho, wo, cout), dtype=x.dtype)
    w2 = np.ascontiguousarray(w, dtype=x.dtype).reshape(kh * kw * cin, cout)
    y = np.empty((n * ho * wo, cout), dtype=x.dtype)
    chunks = num_tasks(max(1, y.shape[0] // MIN_ROWS_PER_GEMM))
    with runtime.single_threaded_blas():
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
            fill_cols(x, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, b0, b1, block)
            blas.gemm(False, False, b1 - b0, cout, k_, block.ctypes.data, k_, w2.ctypes.data, cout,
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
            fill_cols(x, kh, kw, ho, wo, sh, sw, pt, pl, dil_h, dil_w, b0, b1, block)
            blas.gemm(True, False, k_, cout, b1 - b0, block.ctypes.data, k_, dy2.ctypes.data + b0 * cout * size,
                       cout, 0.0 if b0 == start else 1.0, acc.ctypes.data, cout, size)
