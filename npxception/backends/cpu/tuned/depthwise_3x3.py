"""The unrolled 3x3 rows of the depthwise kernels (Xception's only size); see depthwise.py.

The 9 taps of a pixel are one call of `_sum9` in the channel loop, with the row (or the 1-D view)
of each tap fixed outside it, so LLVM sees unit-stride streams with a single store and emits vector
code; 4-D indexing inside the channel loop, or a loop that does not start at 0, leaves it scalar
(Numba must then handle negative indices). With stride 1 and no dilation, two neighbouring pixels
are computed together: they share 6 of their 9 input vectors per row, so the loop loads 21 vectors
per 2 outputs instead of 36 (register blocking along the width). Border pixels point each padded
tap at a vector of zeros and take the same loop, so a padded tap still adds 0 * w.

With stride 1, no dilation and M = 1 (every depthwise layer of Xception) a whole output row is one
flat loop instead (`_flat_rows_3x3`): output (j, c) is element j*C + c of the flattened (W, C) row,
each tap reads the input row shifted by a multiple of C, and the weights are tiled along the row
once per call, so the loop is W*C long rather than C. Xception's early layers have 16-64 channels,
where the per-pixel loops spent more time in setup than in arithmetic; the flat rows are faster
there and give bitwise the same sums, in the same tap order. They run up to FLAT_ROWS_MAX_C = 128
channels: wider rows stream 9 tiled weight vectors per output where the pair loop keeps reusing 9
per channel (the A/B timings: docs/performance.md, "Why each tuned kernel"; benchmarks/bench_ops.py).

Channels are multiplier-major (index m*C + c, see depthwise.py); each function writes its last
argument, one output row.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._index import input_index

FLAT_ROWS_MAX_C = 128  # above it the per-pixel pair loop is faster (module docstring)


@njit(cache=True, inline="always")
def _sum9(a0, a1, a2, b0, b1, b2, d0, d1, d2, v00, v01, v02, v10, v11, v12, v20, v21, v22):
    """The 9 products of a 3x3 window in the reference's tap order (0, 0), (0, 1), ..., (2, 2)."""
    s = a0 * v00
    s += a1 * v01
    s += a2 * v02
    s += b0 * v10
    s += b1 * v11
    s += b2 * v12
    s += d0 * v20
    s += d1 * v21
    s += d2 * v22
    return s


@njit(cache=True, inline="always")
def _tap(a, n, r, col, zeros):
    """a[n, r, col] (all channels), or a row of zeros where (r, col) lies outside a."""
    if 0 <= r < a.shape[1] and 0 <= col < a.shape[2]:
        return a[n, r, col]
    return zeros


@njit(cache=True, inline="always")
def _tap_and_weight(dy, n, i, j, w, zeros):
    """(dy[n, i, j], w) for an output pixel inside dy, else (zeros, zeros): it adds nothing."""
    if 0 <= i < dy.shape[1] and 0 <= j < dy.shape[2]:
        return dy[n, i, j], w
    return zeros, zeros


@njit(cache=True, inline="always")
def _flat_rows_3x3(g0, g1, g2, w0, w1, w2, start, off, step, out):
    """out[t] = the 9-term sum at flat position k = start + t of a (columns * C) row, M = 1.

    Row p's tap q is g_p[k + off + q * step] and its weight w_p[q, k] (the weights tiled along the
    row: w_p = wf[p], see tile_weights_3x3). Stride 1 and no dilation make every tap one contiguous
    slice of the same length, so the loop is one long unit-stride stream, however few the channels;
    each slice starts where the loop does (index t from 0), which keeps it vector code.
    """
    n = out.shape[0]
    k = start + off
    a0, a1, a2 = g0[k:k + n], g0[k + step:k + step + n], g0[k + 2 * step:k + 2 * step + n]
    b0, b1, b2 = g1[k:k + n], g1[k + step:k + step + n], g1[k + 2 * step:k + 2 * step + n]
    d0, d1, d2 = g2[k:k + n], g2[k + step:k + step + n], g2[k + 2 * step:k + 2 * step + n]
    v00, v01, v02 = w0[0, start:start + n], w0[1, start:start + n], w0[2, start:start + n]
    v10, v11, v12 = w1[0, start:start + n], w1[1, start:start + n], w1[2, start:start + n]
    v20, v21, v22 = w2[0, start:start + n], w2[1, start:start + n], w2[2, start:start + n]
    for t in range(n):
        out[t] = _sum9(a0[t], a1[t], a2[t], b0[t], b1[t], b2[t], d0[t], d1[t], d2[t],
                       v00[t], v01[t], v02[t], v10[t], v11[t], v12[t], v20[t], v21[t], v22[t])


@njit(cache=True, inline="always")
def _flat_row(a, n, r, length, zeros):
    """Row r of image n as one flat (columns * C) vector, or `length` zeros where r lies outside a."""
    if 0 <= r < a.shape[1]:
        return a[n, r].reshape(length)
    return zeros[:length]


def tile_weights_3x3(wt, columns):
    """wf (3, 3, columns * C): tap (p, q)'s weights repeated for every column, for _flat_rows_3x3;
    empty (length 0) when M > 1, where the flat rows do not apply."""
    kh, kw, mult, c = wt.shape
    if mult != 1 or (kh, kw) != (3, 3) or c > FLAT_ROWS_MAX_C:
        return wt.reshape(kh, kw, -1)[:, :, :0].copy()
    return np.ascontiguousarray(np.tile(wt[:, :, 0, :], (1, 1, columns)))


@njit(cache=True)
def forward_row_3x3(x, wt, wf, zeros, n, i, m, sh, sw, pt, pl, dil_h, dil_w, yr):
    """yr[:, m*C:(m+1)*C] = output row i of image n for multiplier index m.

    Interior pixels index 2-D row views x[n, r] directly: the row index is fixed inside the
    channel loop, so no per-pixel view is built (or, for stride 1 and M = 1, the flat rows of the
    module docstring). Pixels whose window touches the padding pick each tap's vector with _tap,
    which reads `zeros` for a padded tap.
    """
    h, width, c_ = x.shape[1], x.shape[2], x.shape[3]
    r0 = input_index(i, 0, sh, dil_h, pt)
    r1, r2 = r0 + dil_h, r0 + 2 * dil_h
    w00, w01, w02 = wt[0, 0, m], wt[0, 1, m], wt[0, 2, m]
    w10, w11, w12 = wt[1, 0, m], wt[1, 1, m], wt[1, 2, m]
    w20, w21, w22 = wt[2, 0, m], wt[2, 1, m], wt[2, 2, m]
    base = m * c_
    wo = yr.shape[0]
    # Interior columns: all three taps inside x (only when all three rows are).
    j_lo, j_hi = wo, wo
    if sw == 1 and dil_w == 1 and wf.shape[2] > 0:
        # Flat rows: output (j, c) is k = j*C + c and its tap q reads input column j - pl + q. A row
        # in the padding is a row of zeros, so only the border columns are left for the loop below.
        j_lo = min(pl, wo)
        j_hi = max(min(width - 2 + pl, wo), j_lo)
        row = width * c_
        _flat_rows_3x3(_flat_row(x, n, r0, row, zeros), _flat_row(x, n, r1, row, zeros),
                       _flat_row(x, n, r2, row, zeros), wf[0], wf[1], wf[2], j_lo * c_, -pl * c_, c_,
                       yr.reshape(wo * c_)[j_lo * c_:j_hi * c_])
    elif r0 >= 0 and r2 < h:
        j_lo = min((pl + sw - 1) // sw, wo)
        j_hi = max(min((width - 1 - 2 * dil_w + pl) // sw + 1, wo), j_lo)
        x0, x1, x2 = x[n, r0], x[n, r1], x[n, r2]
        j_pairs = j_lo
        if sw == 1 and dil_w == 1:
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
                    out0[c] = _sum9(a0, a1, a2, b0, b1, b2, d0, d1, d2,
                                    v00, v01, v02, v10, v11, v12, v20, v21, v22)
                    out1[c] = _sum9(a1, a2, a3, b1, b2, b3, d1, d2, d3,
                                    v00, v01, v02, v10, v11, v12, v20, v21, v22)
        for j in range(j_pairs, j_hi):
            c0 = input_index(j, 0, sw, dil_w, pl)
            c1, c2 = c0 + dil_w, c0 + 2 * dil_w
            out = yr[j, base:base + c_]
            for c in range(c_):
                out[c] = _sum9(x0[c0, c], x0[c1, c], x0[c2, c], x1[c0, c], x1[c1, c], x1[c2, c],
                               x2[c0, c], x2[c1, c], x2[c2, c],
                               w00[c], w01[c], w02[c], w10[c], w11[c], w12[c], w20[c], w21[c], w22[c])
    for j in range(wo):
        if j_lo <= j < j_hi:
            continue
        c0 = input_index(j, 0, sw, dil_w, pl)
        c1, c2 = c0 + dil_w, c0 + 2 * dil_w
        a0, a1, a2 = _tap(x, n, r0, c0, zeros), _tap(x, n, r0, c1, zeros), _tap(x, n, r0, c2, zeros)
        b0, b1, b2 = _tap(x, n, r1, c0, zeros), _tap(x, n, r1, c1, zeros), _tap(x, n, r1, c2, zeros)
        d0, d1, d2 = _tap(x, n, r2, c0, zeros), _tap(x, n, r2, c1, zeros), _tap(x, n, r2, c2, zeros)
        out = yr[j, base:base + c_]
        for c in range(c_):
            out[c] = _sum9(a0[c], a1[c], a2[c], b0[c], b1[c], b2[c], d0[c], d1[c], d2[c],
                           w00[c], w01[c], w02[c], w10[c], w11[c], w12[c], w20[c], w21[c], w22[c])


@njit(cache=True)
def input_grad_row_3x3(dy, wt, wf, zeros, n, r, pt, pl, dil_h, dil_w, dxr):
    """dxr = input row r of image n's gradient for a 3x3, stride-1, M = 1 kernel.

    With stride 1, tap (p, q) of output pixel (r + pt - p*dil_h, col + pl - q*dil_w) reads
    x[n, r, col]. Interior pixels index 2-D dy rows directly, as in forward_row_3x3; the others
    pick each tap's (dy vector, weights) with _tap_and_weight, which gives zeros where no output
    pixel is.
    """
    ho, wo = dy.shape[1], dy.shape[2]
    width = dxr.shape[0]
    i0 = r + pt
    i1, i2 = i0 - dil_h, i0 - 2 * dil_h
    w00, w01, w02 = wt[0, 0, 0], wt[0, 1, 0], wt[0, 2, 0]
    w10, w11, w12 = wt[1, 0, 0], wt[1, 1, 0], wt[1, 2, 0]
    w20, w21, w22 = wt[2, 0, 0], wt[2, 1, 0], wt[2, 2, 0]
    # Interior columns: all three output columns col + pl - q*dil_w inside dy (and all three rows).
    c_lo, c_hi = width, width
    if dil_w == 1 and wf.shape[2] > 0:
        # Flat rows: input (col, c) is k = col*C + c and tap q is read by output column col + pl - q.
        # An output row outside dy is no pixel at all: zeros for dy *and* for its weights, so it
        # adds nothing (not 0 * w: an Inf weight must not reach a pixel that no output reads).
        c_ = dxr.shape[1]
        c_lo = min(max(2 - pl, 0), width)
        c_hi = max(min(wo - pl, width), c_lo)
        row, tiled = wo * c_, wf.shape[2]
        no_weights = zeros[:3 * tiled].reshape(3, tiled)
        _flat_rows_3x3(_flat_row(dy, n, i0, row, zeros), _flat_row(dy, n, i1, row, zeros),
                       _flat_row(dy, n, i2, row, zeros), wf[0] if 0 <= i0 < ho else no_weights,
                       wf[1] if 0 <= i1 < ho else no_weights, wf[2] if 0 <= i2 < ho else no_weights,
                       c_lo * c_, pl * c_, -c_, dxr.reshape(width * c_)[c_lo * c_:c_hi * c_])
    elif i2 >= 0 and i0 < ho:
        c_lo = min(max(2 * dil_w - pl, 0), width)
        c_hi = max(min(wo - pl, width), c_lo)
        g0, g1, g2 = dy[n, i0], dy[n, i1], dy[n, i2]
        c_pairs = c_lo
        if dil_w == 1:
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
                    out0[c] = _sum9(a1, a2, a3, b1, b2, b3, d1, d2, d3,
                                    v00, v01, v02, v10, v11, v12, v20, v21, v22)
                    out1[c] = _sum9(a0, a1, a2, b0, b1, b2, d0, d1, d2,
                                    v00, v01, v02, v10, v11, v12, v20, v21, v22)
        for col in range(c_pairs, c_hi):
            j0 = col + pl
            j1, j2 = j0 - dil_w, j0 - 2 * dil_w
            out = dxr[col]
            for c in range(out.shape[0]):
                out[c] = _sum9(g0[j0, c], g0[j1, c], g0[j2, c], g1[j0, c], g1[j1, c], g1[j2, c],
                               g2[j0, c], g2[j1, c], g2[j2, c],
                               w00[c], w01[c], w02[c], w10[c], w11[c], w12[c], w20[c], w21[c], w22[c])
    for col in range(width):
        if c_lo <= col < c_hi:
            continue
        j0 = col + pl
        j1, j2 = j0 - dil_w, j0 - 2 * dil_w
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
            out[c] = _sum9(a0[c], a1[c], a2[c], b0[c], b1[c], b2[c], d0[c], d1[c], d2[c],
                           v00[c], v01[c], v02[c], v10[c], v11[c], v12[c], v20[c], v21[c], v22[c])
