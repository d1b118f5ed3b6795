"""Depthwise 2-D convolution, NHWC, as Numba kernels (the math: reference/depthwise.py).

Shapes: x (N, H, W, C), w (kh, kw, C, M) -> y (N, Ho, Wo, C*M), output channel c*M + m.

    y[n, i, j, c*M + m] = sum_{p, q} xpad[n, i*sh + p*dh, j*sw + q*dw, c] * w[p, q, c, m]

Channel order inside the kernels: "multiplier-major", index m*C + c, so that for each m the C
channels are contiguous and the innermost loop (over c) is a unit-stride loop LLVM turns into SIMD.
For M = 1 (every depthwise layer of Xception) that order *is* Keras's c*M + m and nothing is
copied; for M > 1 the output (forward) or dy (backward) is transposed once in NumPy.

Each kernel is parallel over what owns its output, so no two `prange` iterations write the same
element:
- forward: output rows (n, i); each iteration writes y[n, i] only.
- input gradient: input rows (n, r), *gathering* from every output pixel and tap that read x[n, r]
  (tap p of output row i reads input row r = i*sh + p*dh - pt, so i = (r + pt - p*dh) / sh when
  that is a whole number in [0, Ho)), instead of scattering from outputs into overlapping windows.
- filter gradient: fixed chunks of output rows, one partial filter gradient per chunk, added in
  chunk order (see _chunks.py): deterministic for any thread count.

Unrolled 3x3 path (Xception's only size; forward for any stride, input gradient for stride 1
and M = 1): the 9 taps of a pixel are written out in the channel loop, with the row (or the 1-D
view) of each tap fixed outside it, so LLVM sees unit-stride streams with a single store and emits
vector code; 4-D indexing inside the channel loop, or a loop that does not start at 0, leaves it
scalar (Numba must then handle negative indices). With stride 1 and no dilation, two neighbouring
pixels are computed together: they share 6 of their 9 input vectors per row, so the loop loads 21
vectors per 2 outputs instead of 36 (register blocking along the width). Border pixels point each
padded tap at a vector of zeros and take the same loop. Other kernel sizes and strides use a
generic per-pixel loop.

The filter gradient loops over taps, then over the output columns whose tap is inside x: for
stride 1 those pixels and the input pixels they read are each one contiguous (columns, C) block.

A padded tap still adds 0 * w (forward) or 0 * dy (filter gradient): the reference multiplies an
explicitly zero-padded array, and this keeps NaN and Inf propagating exactly as there. Each
output's taps are added in the reference's order, (0, 0), (0, 1), ..., (2, 2).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...shapes import conv_output_hw
from ._chunks import chunk_bounds, num_chunks, sum_partials


def depthwise_conv2d(x, w, stride, padding, dilation):
    kh, kw, c, m = w.shape
    ho, wo = conv_output_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    y = np.empty((x.shape[0], ho, wo, m * c), dtype=x.dtype)
    _forward(x, _multiplier_major(w), y, *stride, padding[0], padding[2], *dilation)
    return _swap_channel_order(y, m, c)


def depthwise_conv2d_backward(dy, x, w, stride, padding, dilation):
    dy_mm = _swap_channel_order(dy, w.shape[2], w.shape[3])
    return (depthwise_input_grad(dy_mm, w, x.shape, stride, padding, dilation),
            depthwise_filter_grad(dy_mm, x, w.shape, stride, padding, dilation))


def depthwise_input_grad(dy_mm, w, x_shape, stride, padding, dilation):
    """dx (x_shape) for dy with multiplier-major channels (see _swap_channel_order)."""
    dx = np.empty(x_shape, dtype=dy_mm.dtype)
    _input_grad(dy_mm, _multiplier_major(w), dx, *stride, padding[0], padding[2], *dilation)
    return dx


def depthwise_filter_grad(dy_mm, x, w_shape, stride, padding, dilation):
    """dw (kh, kw, C, M) for dy with multiplier-major channels."""
    kh, kw, c, m = w_shape
    rows = dy_mm.shape[0] * dy_mm.shape[1]
    partials = np.zeros((num_chunks(rows), kh, kw, m, c), dtype=x.dtype)
    _filter_grad_partials(dy_mm, x, partials, *stride, padding[0], padding[2], *dilation)
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
def _forward_pixel(x, wt, out, n, i, j, m, sh, sw, pt, pl, dh, dw):
    """out[m*C:(m+1)*C] = y at pixel (n, i, j) for multiplier m; any kernel size, any position."""
    _, h, width, c_ = x.shape
    kh, kw = wt.shape[0], wt.shape[1]
    zero = x.dtype.type(0)
    base = m * c_
    for c in range(c_):
        out[base + c] = zero
    for p in range(kh):
        r = i * sh + p * dh - pt
        for q in range(kw):
            col = j * sw + q * dw - pl
            wv = wt[p, q, m]
            if 0 <= r < h and 0 <= col < width:
                xv = x[n, r, col]
                for c in range(c_):
                    out[base + c] += xv[c] * wv[c]
            else:
                for c in range(c_):
                    out[base + c] += zero * wv[c]


@njit(cache=True, inline="always")
def _tap(a, n, r, col, zeros):
    """a[n, r, col] (all channels), or a row of zeros where (r, col) lies outside a."""
    if 0 <= r < a.shape[1] and 0 <= col < a.shape[2]:
        return a[n, r, col]
    return zeros


@njit(cache=True)
def _forward_row_3x3(x, wt, yr, zeros, n, i, m, sh, sw, pt, pl, dh, dw):
    """yr[:, m*C:(m+1)*C] = output row i of image n for multiplier m, 3x3 taps unrolled.

    Interior pixels index 2-D row views x[n, r] directly: the row index is fixed inside the
    channel loop, so no per-pixel view is built. Pixels whose window touches the padding pick
    each tap's vector with _tap, which reads `zeros` for a padded tap.
    """
    h, width, c_ = x.shape[1], x.shape[2], x.shape[3]
    r0 = i * sh - pt
    r1, r2 = r0 + dh, r0 + 2 * dh
    w00, w01, w02 = wt[0, 0, m], wt[0, 1, m], wt[0, 2, m]
    w10, w11, w12 = wt[1, 0, m], wt[1, 1, m], wt[1, 2, m]
    w20, w21, w22 = wt[2, 0, m], wt[2, 1, m], wt[2, 2, m]
    base = m * c_
    wo = yr.shape[0]
    # Interior columns: all three taps inside x (only when all three rows are).
    j_lo, j_hi = wo, wo
    if r0 >= 0 and r2 < h:
        j_lo = min((pl + sw - 1) // sw, wo)
        j_hi = max(min((width - 1 - 2 * dw + pl) // sw + 1, wo), j_lo)
        x0, x1, x2 = x[n, r0], x[n, r1], x[n, r2]
        j_pairs = j_lo
        if sw == 1 and dw == 1:
            # Two neighbouring outputs read 4 input columns, not 6: 21 loads per 2 outputs, not 36.
            j_pairs = j_lo + (j_hi - j_lo) // 2 * 2
            for j in range(j_lo, j_pairs, 2):
                c0 = j - pl
                out0, out1 = yr[j, base:base + c_], yr[j + 1, base:base + c_]
                for c in range(c_):
                    a0, a1, a2, a3 = x0[c0, c], x0[c0 + 1, c], x0[c0 + 2, c], x0[c0 + 3, c]
                    b0, b1, b2, b3 = x1[c0, c], x1[c0 + 1, c], x1[c0 + 2, c], x1[c0 + 3, c]
                    d0, d1, d2, d3 = x2[c0, c], x2[c0 + 1, c], x2[c0 + 2, c], x2[c0 + 3, c]
                    v00, v01, v02 = w00[c], w01[c], w02[c]
                    v10, v11, v12 = w10[c], w11[c], w12[c]
                    v20, v21, v22 = w20[c], w21[c], w22[c]
                    s = a0 * v00
                    s += a1 * v01
                    s += a2 * v02
                    s += b0 * v10
                    s += b1 * v11
                    s += b2 * v12
                    s += d0 * v20
                    s += d1 * v21
                    s += d2 * v22
                    out0[c] = s
                    s = a1 * v00
                    s += a2 * v01
                    s += a3 * v02
                    s += b1 * v10
                    s += b2 * v11
                    s += b3 * v12
                    s += d1 * v20
                    s += d2 * v21
                    s += d3 * v22
                    out1[c] = s
        for j in range(j_pairs, j_hi):
            c0 = j * sw - pl
            c1, c2 = c0 + dw, c0 + 2 * dw
            out = yr[j, base:base + c_]
            for c in range(c_):
                # Same tap order as the reference: (0,0), (0,1), ..., (2,2).
                s = x0[c0, c] * w00[c]
                s += x0[c1, c] * w01[c]
                s += x0[c2, c] * w02[c]
                s += x1[c0, c] * w10[c]
                s += x1[c1, c] * w11[c]
                s += x1[c2, c] * w12[c]
                s += x2[c0, c] * w20[c]
                s += x2[c1, c] * w21[c]
                s += x2[c2, c] * w22[c]
                out[c] = s
    for j in range(wo):
        if j_lo <= j < j_hi:
            continue
        c0 = j * sw - pl
        c1, c2 = c0 + dw, c0 + 2 * dw
        a0, a1, a2 = _tap(x, n, r0, c0, zeros), _tap(x, n, r0, c1, zeros), _tap(x, n, r0, c2, zeros)
        b0, b1, b2 = _tap(x, n, r1, c0, zeros), _tap(x, n, r1, c1, zeros), _tap(x, n, r1, c2, zeros)
        d0, d1, d2 = _tap(x, n, r2, c0, zeros), _tap(x, n, r2, c1, zeros), _tap(x, n, r2, c2, zeros)
        out = yr[j, base:base + c_]
        for c in range(c_):
            s = a0[c] * w00[c]
            s += a1[c] * w01[c]
            s += a2[c] * w02[c]
            s += b0[c] * w10[c]
            s += b1[c] * w11[c]
            s += b2[c] * w12[c]
            s += d0[c] * w20[c]
            s += d1[c] * w21[c]
            s += d2[c] * w22[c]
            out[c] = s


@njit(parallel=True, cache=True)
def _forward(x, wt, y, sh, sw, pt, pl, dh, dw):
    """y (N, Ho, Wo, M*C) multiplier-major, from x (N, H, W, C) and wt (kh, kw, M, C)."""
    n_, _, _, c_ = x.shape
    kh, kw, mm, _ = wt.shape
    ho, wo = y.shape[1], y.shape[2]
    zeros = np.zeros(c_, dtype=x.dtype)
    for row in prange(n_ * ho):
        n = row // ho
        i = row - n * ho
        yr = y[n, i]
        for m in range(mm):
            if kh == 3 and kw == 3:
                _forward_row_3x3(x, wt, yr, zeros, n, i, m, sh, sw, pt, pl, dh, dw)
            else:
                for j in range(wo):
                    _forward_pixel(x, wt, yr[j], n, i, j, m, sh, sw, pt, pl, dh, dw)


# --------------------------------------------------------------------------- input gradient

@njit(cache=True)
def _input_grad_pixel(dy, wt, out, n, r, col, sh, sw, pt, pl, dh, dw):
    """out[:] = dx at input pixel (n, r, col): every (output pixel, tap, m) that read it."""
    ho, wo = dy.shape[1], dy.shape[2]
    kh, kw, mm, c_ = wt.shape
    zero = dy.dtype.type(0)
    for c in range(c_):
        out[c] = zero
    for p in range(kh):
        ti = r + pt - p * dh
        if ti < 0 or ti % sh != 0 or ti // sh >= ho:
            continue
        i = ti // sh
        for q in range(kw):
            tj = col + pl - q * dw
            if tj < 0 or tj % sw != 0 or tj // sw >= wo:
                continue
            g = dy[n, i, tj // sw]
            for m in range(mm):
                wv = wt[p, q, m]
                base = m * c_
                for c in range(c_):
                    out[c] += g[base + c] * wv[c]


@njit(cache=True, inline="always")
def _tap_and_weight(dy, n, i, j, w, zeros):
    """(dy[n, i, j], w) for an output pixel inside dy, else (zeros, zeros): it adds nothing."""
    if 0 <= i < dy.shape[1] and 0 <= j < dy.shape[2]:
        return dy[n, i, j], w
    return zeros, zeros


@njit(cache=True)
def _input_grad_row_3x3(dy, wt, dxr, zeros, n, r, pt, pl, dh, dw):
    """dxr = input row r of image n's gradient for a 3x3, stride-1, M = 1 kernel, taps unrolled.

    With stride 1, tap (p, q) of output pixel (r + pt - p*dh, col + pl - q*dw) reads x[n, r, col].
    Interior pixels index 2-D dy rows directly, as in _forward_row_3x3; the others pick each
    tap's (dy vector, weights) with _tap_and_weight, which gives zeros where no output pixel is.
    """
    ho, wo = dy.shape[1], dy.shape[2]
    width = dxr.shape[0]
    i0 = r + pt
    i1, i2 = i0 - dh, i0 - 2 * dh
    w00, w01, w02 = wt[0, 0, 0], wt[0, 1, 0], wt[0, 2, 0]
    w10, w11, w12 = wt[1, 0, 0], wt[1, 1, 0], wt[1, 2, 0]
    w20, w21, w22 = wt[2, 0, 0], wt[2, 1, 0], wt[2, 2, 0]
    # Interior columns: all three output columns col + pl - q*dw inside dy (and all three rows).
    c_lo, c_hi = width, width
    if i2 >= 0 and i0 < ho:
        c_lo = min(max(2 * dw - pl, 0), width)
        c_hi = max(min(wo - pl, width), c_lo)
        g0, g1, g2 = dy[n, i0], dy[n, i1], dy[n, i2]
        c_pairs = c_lo
        if dw == 1:
            # Two neighbouring input pixels are read by 4 output columns, not 6 (as in forward).
            c_pairs = c_lo + (c_hi - c_lo) // 2 * 2
            for col in range(c_lo, c_pairs, 2):
                j0 = col + pl
                out0, out1 = dxr[col], dxr[col + 1]
                for c in range(out0.shape[0]):
                    a0, a1, a2, a3 = g0[j0 + 1, c], g0[j0, c], g0[j0 - 1, c], g0[j0 - 2, c]
                    b0, b1, b2, b3 = g1[j0 + 1, c], g1[j0, c], g1[j0 - 1, c], g1[j0 - 2, c]
                    d0, d1, d2, d3 = g2[j0 + 1, c], g2[j0, c], g2[j0 - 1, c], g2[j0 - 2, c]
                    v00, v01, v02 = w00[c], w01[c], w02[c]
                    v10, v11, v12 = w10[c], w11[c], w12[c]
                    v20, v21, v22 = w20[c], w21[c], w22[c]
                    s = a1 * v00
                    s += a2 * v01
                    s += a3 * v02
                    s += b1 * v10
                    s += b2 * v11
                    s += b3 * v12
                    s += d1 * v20
                    s += d2 * v21
                    s += d3 * v22
                    out0[c] = s
                    s = a0 * v00
                    s += a1 * v01
                    s += a2 * v02
                    s += b0 * v10
                    s += b1 * v11
                    s += b2 * v12
                    s += d0 * v20
                    s += d1 * v21
                    s += d2 * v22
                    out1[c] = s
        for col in range(c_pairs, c_hi):
            j0 = col + pl
            j1, j2 = j0 - dw, j0 - 2 * dw
            out = dxr[col]
            for c in range(out.shape[0]):
                s = g0[j0, c] * w00[c]
                s += g0[j1, c] * w01[c]
                s += g0[j2, c] * w02[c]
                s += g1[j0, c] * w10[c]
                s += g1[j1, c] * w11[c]
                s += g1[j2, c] * w12[c]
                s += g2[j0, c] * w20[c]
                s += g2[j1, c] * w21[c]
                s += g2[j2, c] * w22[c]
                out[c] = s
    for col in range(width):
        if c_lo <= col < c_hi:
            continue
        j0 = col + pl
        j1, j2 = j0 - dw, j0 - 2 * dw
        a0, v00 = _tap_and_weight(dy, n, i0, j0, w00, zeros)
        a1, v01 = _tap_and_weight(dy, n, i0, j1, w01, zeros)
        a2, v02 = _tap_and_weight(dy, n, i0, j2, w02, zeros)
        b0, v10 = _tap_and_weight(dy, n, i1, j0, w10, zeros)
        b1, v11 = _tap_and_weight(dy, n, i1, j1, w11, zeros)
        b2, v12 = _tap_and_weight(dy, n, i1, j2, w12, zeros)
        d0, v20 = _tap_and_weight(dy, n, i2, j0, w20, zeros)
        d1, v21 = _tap_and_weight(dy, n, i2, j1, w21, zeros)
        d2, v22 = _tap_and_weight(dy, n, i2, j2, w22, zeros)
        out = dxr[col]
        for c in range(out.shape[0]):
            s = a0[c] * v00[c]
            s += a1[c] * v01[c]
            s += a2[c] * v02[c]
            s += b0[c] * v10[c]
            s += b1[c] * v11[c]
            s += b2[c] * v12[c]
            s += d0[c] * v20[c]
            s += d1[c] * v21[c]
            s += d2[c] * v22[c]
            out[c] = s


@njit(parallel=True, cache=True)
def _input_grad(dy, wt, dx, sh, sw, pt, pl, dh, dw):
    """dx (N, H, W, C) from dy (N, Ho, Wo, M*C) multiplier-major and wt (kh, kw, M, C)."""
    n_, h, width, c_ = dx.shape
    kh, kw, mm, _ = wt.shape
    zeros = np.zeros(c_, dtype=dx.dtype)
    fast = kh == 3 and kw == 3 and mm == 1 and sh == 1 and sw == 1
    for row in prange(n_ * h):
        n = row // h
        r = row - n * h
        dxr = dx[n, r]
        if fast:
            _input_grad_row_3x3(dy, wt, dxr, zeros, n, r, pt, pl, dh, dw)
        else:
            for col in range(width):
                _input_grad_pixel(dy, wt, dxr[col], n, r, col, sh, sw, pt, pl, dh, dw)


# --------------------------------------------------------------------------- filter gradient

@njit(parallel=True, cache=True)
def _filter_grad_partials(dy, x, partials, sh, sw, pt, pl, dh, dw):
    """partials[k] (kh, kw, M, C) += the filter gradient summed over chunk k of the output rows.

    For one output row and tap (p, q) the valid output columns form one range [j0, j1), so the
    inner loops run branch-free over contiguous channels: acc[c] += x[r, col, c] * dy[i, j, c].
    """
    n_, h, width, c_ = x.shape
    chunks, kh, kw, mm, _ = partials.shape
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
                r = i * sh + p * dh - pt
                row_inside = 0 <= r < h
                for q in range(kw):
                    # Output columns j whose tap q reads a real input column: 0 <= j*sw + q*dw - pl < W.
                    off = q * dw - pl
                    j0 = min(max(-off + sw - 1, 0) // sw, wo) if row_inside else wo
                    j1 = max(min((width - 1 - off) // sw + 1, wo), j0) if row_inside else wo
                    for m in range(mm):
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
                        if j1 > j0 and sw == 1 and mm == 1:
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

