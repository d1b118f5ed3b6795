"""Depthwise convolution, tuned: the plain kernels of ../depthwise.py rearranged for speed.

What it speeds up, and why (benchmark: `benchmarks/bench_ops.py`, ops `depthwise_*`):
- channel order "multiplier-major" (m*C + c) inside the kernels, so for each m the C channels are
  contiguous and the innermost loop is a unit-stride loop LLVM turns into SIMD. For M = 1 (every
  depthwise layer of Xception) that order *is* Keras's c*M + m and nothing is copied; for M > 1
  the output (forward) or dy (backward) is transposed once in NumPy (`_swap_channel_order`).
- the 3x3 rows are unrolled (depthwise_3x3.py): forward for any stride, input gradient for stride
  1 and M = 1; other sizes use the per-pixel loops here.
- the filter gradient runs over fixed chunks of output rows, one partial per chunk added in chunk
  order (../_chunks.py): deterministic for any thread count, and each chunk streams through x and
  dy once instead of once per tap and channel. For stride 1 the output columns whose tap is
  inside x and the input pixels they read are each one contiguous (columns, C) block.

Same sums as the plain kernels, tap by tap in the reference's order; a padded tap still adds
0 * w (forward) or 0 * dy (filter gradient), so NaN and Inf propagate as there. Every kernel
writes its last argument.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ....shapes import conv_output_hw
from .._chunks import chunk_bounds, num_chunks, sum_partials
from .depthwise_3x3 import forward_row_3x3, input_grad_row_3x3, tile_weights_3x3
from .._index import input_index, output_index


def depthwise_conv2d(x, w, stride, padding, dilation):
    kh, kw, c, mult = w.shape
    ho, wo = conv_output_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    y = np.empty((x.shape[0], ho, wo, mult * c), dtype=x.dtype)
    wt = _multiplier_major(w)
    _forward(x, wt, tile_weights_3x3(wt, wo), *stride, padding[0], padding[2], *dilation, y)
    return _swap_channel_order(y, mult, c)


def depthwise_input_grad(dy, w, x_shape, stride, padding, dilation):
    """dx (x_shape) for dy (N, Ho, Wo, C*M)."""
    dy_mc = _swap_channel_order(dy, w.shape[2], w.shape[3])
    dx = np.empty(x_shape, dtype=dy.dtype)
    wt = _multiplier_major(w)
    _input_grad(dy_mc, wt, tile_weights_3x3(wt, x_shape[2]), *stride, padding[0], padding[2], *dilation, dx)
    return dx


def depthwise_filter_grad(dy, x, w, stride, padding, dilation):
    """dw (w's shape) for dy (N, Ho, Wo, C*M); only w's shape is read."""
    kh, kw, c, mult = w.shape
    dy_mc = _swap_channel_order(dy, c, mult)
    rows = dy.shape[0] * dy.shape[1]
    partials = np.zeros((num_chunks(rows), kh, kw, mult, c), dtype=x.dtype)
    _filter_grad_partials(dy_mc, x, *stride, padding[0], padding[2], *dilation, partials)
    return np.ascontiguousarray(sum_partials(partials).transpose(0, 1, 3, 2))


def _multiplier_major(w):
    """(kh, kw, C, M) -> contiguous (kh, kw, M, C): each tap's weights for one m are contiguous."""
    return np.ascontiguousarray(w.transpose(0, 1, 3, 2))


def _swap_channel_order(a, outer, inner):
    """Last axis read as (outer, inner) blocks -> (inner, outer); a no-op when either is 1.

    (C, M) -> (M, C) takes Keras's order c*M + m to the kernels' m*C + c, and (M, C) -> (C, M) back.
    """
    if outer == 1 or inner == 1:
        return a
    n, h, w, _ = a.shape
    return np.ascontiguousarray(a.reshape(n, h, w, outer, inner).transpose(0, 1, 2, 4, 3)).reshape(a.shape)


# --------------------------------------------------------------------------- forward

@njit(cache=True)
def _forward_pixel(x, wt, n, i, j, m, sh, sw, pt, pl, dil_h, dil_w, out):
    """out[m*C:(m+1)*C] = y at pixel (n, i, j) for multiplier index m; any kernel size, any position."""
    _, h, width, c_ = x.shape
    kh, kw = wt.shape[0], wt.shape[1]
    zero = x.dtype.type(0)
    base = m * c_
    for c in range(c_):
        out[base + c] = zero
    for p in range(kh):
        r = input_index(i, p, sh, dil_h, pt)
        for q in range(kw):
            col = input_index(j, q, sw, dil_w, pl)
            wv = wt[p, q, m]
            if 0 <= r < h and 0 <= col < width:
                xv = x[n, r, col]
                for c in range(c_):
                    out[base + c] += xv[c] * wv[c]
            else:
                for c in range(c_):
                    out[base + c] += zero * wv[c]


@njit(parallel=True, cache=True)
def _forward(x, wt, wf, sh, sw, pt, pl, dil_h, dil_w, y):
    """y (N, Ho, Wo, M*C) multiplier-major, from x (N, H, W, C), wt (kh, kw, M, C) and wt tiled
    along the output row (wf, see tile_weights_3x3)."""
    n_, _, _, c_ = x.shape
    kh, kw, mult, _ = wt.shape
    ho, wo = y.shape[1], y.shape[2]
    zeros = np.zeros(max(x.shape[2], wo) * c_, dtype=x.dtype)  # a padded pixel, or a padded flat row
    for row in prange(n_ * ho):
        n = row // ho
        i = row - n * ho
        yr = y[n, i]
        for m in range(mult):
            if kh == 3 and kw == 3:
                forward_row_3x3(x, wt, wf, zeros, n, i, m, sh, sw, pt, pl, dil_h, dil_w, yr)
            else:
                for j in range(wo):
                    _forward_pixel(x, wt, n, i, j, m, sh, sw, pt, pl, dil_h, dil_w, yr[j])


# --------------------------------------------------------------------------- input gradient

@njit(cache=True)
def _input_grad_pixel(dy, wt, n, r, col, sh, sw, pt, pl, dil_h, dil_w, out):
    """out[:] = dx at input pixel (n, r, col): every (output pixel, tap, m) that read it."""
    ho, wo = dy.shape[1], dy.shape[2]
    kh, kw, mult, c_ = wt.shape
    zero = dy.dtype.type(0)
    for c in range(c_):
        out[c] = zero
    for p in range(kh):
        i = output_index(r, p, sh, dil_h, pt, ho)
        if i < 0:
            continue
        for q in range(kw):
            j = output_index(col, q, sw, dil_w, pl, wo)
            if j < 0:
                continue
            g = dy[n, i, j]
            for m in range(mult):
                wv = wt[p, q, m]
                base = m * c_
                for c in range(c_):
                    out[c] += g[base + c] * wv[c]


@njit(parallel=True, cache=True)
def _input_grad(dy, wt, wf, sh, sw, pt, pl, dil_h, dil_w, dx):
    """dx (N, H, W, C) from dy (N, Ho, Wo, M*C) multiplier-major and wt (kh, kw, M, C)."""
    n_, h, width, c_ = dx.shape
    kh, kw, mult, _ = wt.shape
    # A padded pixel, a padded flat row of dy, or (3 x) its weights (see input_grad_row_3x3).
    zeros = np.zeros(3 * max(width, dy.shape[2]) * c_, dtype=dx.dtype)
    fast = kh == 3 and kw == 3 and mult == 1 and sh == 1 and sw == 1
    for row in prange(n_ * h):
        n = row // h
        r = row - n * h
        dxr = dx[n, r]
        if fast:
            input_grad_row_3x3(dy, wt, wf, zeros, n, r, pt, pl, dil_h, dil_w, dxr)
        else:
            for col in range(width):
                _input_grad_pixel(dy, wt, n, r, col, sh, sw, pt, pl, dil_h, dil_w, dxr[col])


# --------------------------------------------------------------------------- filter gradient

@njit(parallel=True, cache=True)
def _filter_grad_partials(dy, x, sh, sw, pt, pl, dil_h, dil_w, partials):
    """partials[k] (kh, kw, M, C) += the filter gradient summed over chunk k of the output rows.

    For one output row and tap (p, q) the valid output columns form one range [j0, j1), so the
    inner loops run branch-free over contiguous channels: acc[c] += x[r, col, c] * dy[i, j, c].
    """
    n_, h, width, c_ = x.shape
    chunks, kh, kw, mult, _ = partials.shape
    ho, wo = dy.shape[1], dy.shape[2]
    rows = n_ * ho
    zero = x.dtype.type(0)
    for k in prange(chunks):
        part = partials[k]
        start, stop = chunk_bounds(k, rows, chunks)
        for row in range(start, stop):
            n = row // ho
            i = row - n * ho
            dyr = dy[n, i]
            for p in range(kh):
                r = input_index(i, p, sh, dil_h, pt)
                row_inside = 0 <= r < h
                for q in range(kw):
                    # Output columns j whose tap q reads a real input column: 0 <= input_index(j, q) < W.
                    off = input_index(0, q, sw, dil_w, pl)
                    j0 = min(max(-off + sw - 1, 0) // sw, wo) if row_inside else wo
                    j1 = max(min((width - 1 - off) // sw + 1, wo), j0) if row_inside else wo
                    for m in range(mult):
                        acc = part[p, q, m]
                        base = m * c_
                        for j in range(j0):
                            g = dyr[j]
                            for c in range(c_):
                                acc[c] += zero * g[base + c]
                        for j in range(j1, wo):
                            g = dyr[j]
                            for c in range(c_):
                                acc[c] += zero * g[base + c]
                        if j1 > j0 and sw == 1 and mult == 1:
                            # Both operands are one contiguous (j1 - j0, C) block: 2-D views
                            # instead of a new 1-D view per pixel.
                            xs = x[n, r, j0 + off:j1 + off]
                            gs = dyr[j0:j1]
                            for jj in range(j1 - j0):
                                for c in range(c_):
                                    acc[c] += xs[jj, c] * gs[jj, c]
                        elif j1 > j0:
                            xr = x[n, r]
                            for j in range(j0, j1):
                                xv = xr[j * sw + off]
                                g = dyr[j, base:base + c_]
                                for c in range(c_):
                                    acc[c] += xv[c] * g[c]
