"""Regular 2-D convolution, tuned: direct kernels, without im2col's matrix (../dispatch.py says when).

Shapes: x (N, H, W, Cin), w (kh, kw, Cin, Cout) -> y (N, Ho, Wo, Cout); the math is reference/conv.py:

    y[n, i, j, o] = sum_{p, q, c} xpad[n, i*sh + p*dil_h, j*sw + q*dil_w, c] * w[p, q, c, o]

im2col writes every pixel's receptive field into one (N*Ho*Wo, K) matrix, K = kh*kw*Cin, and a GEMM
reads it back; for a 3x3 kernel that matrix is 9x the size of x, and with few output channels the
GEMM (N = Cout) runs far below BLAS's speed. Both kernels here work on blocks of BLOCK pixels whose
innermost loop runs over the BLOCK pixels, a compile-time length that LLVM turns into SIMD code with
no remainder loop, whatever Cin and Cout are.

Forward. x is first copied once into zero-padded *phase planes*, one (rows, cols) plane per image,
stride phase (a, b) and channel: planes[n, a, b, c, u, v] = xpad[n, u*sh + a, v*sw + b, c]. Output
pixel (i, j) is flat position f = i*cols + j of a plane (columns j >= Wo are computed and dropped),
and tap (p, q) reads phase (p*dil_h % sh, q*dil_w % sw) at f + a constant. So for a block of BLOCK
consecutive f, each (tap, channel) is one contiguous slice of one plane, and
    acc[o, f] += w[p, q, c, o] * slice[f]        for (p, q, c) in w's row-major order,
each output adding its taps in the reference's order (0, 0), (0, 1), ... . Parallel over blocks of
(image, f); each output is written by one block.

Input gradient (stride 1): the forward kernel run on dy, see conv2d_input_grad_direct.

Filter gradient. Blocks of BLOCK consecutive output pixels (flat over n, i, j): for each weight row
k the block's inputs are a few contiguous stretches of one plane (one per output row the block
touches), copied into patch[k]; dy is copied transposed into dyT (Cout, BLOCK); then
dw[k, o] += patch[k] . dyT[o]. The blocks are cut into fixed chunks (_chunks.py), one partial dw per
chunk, added in chunk order: bitwise the same for any thread count. These dot products alone are
compiled with LLVM's `reassoc` flag, so they run as SIMD partial sums in an order fixed by the
compiled code, not by the thread count; no other fast-math assumption is made, so NaN and Inf
propagate as in the reference. Only real output pixels enter (dy is never padded).

A padded tap reads a 0 from the planes, so the forward multiplies 0 by its weight and the filter
gradient 0 by dy, exactly as the reference's explicitly zero-padded x does: an Inf weight gives NaN
at the border. Every kernel writes its last argument.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ....shapes import conv_output_hw
from .._chunks import chunk_bounds, num_chunks, sum_partials
from .._index import input_index

BLOCK = 128  # pixels per block: the (Cout, BLOCK) and (K, BLOCK) buffers stay in L1/L2 for the stems
_DOT = {"reassoc"}  # SIMD partial sums in dot products; NaN, Inf and signed zeros keep IEEE rules


def conv2d(x, w, stride, padding, dilation):
    """y (N, Ho, Wo, Cout) for x (N, H, W, Cin), w (kh, kw, Cin, Cout); padding (top, bottom, left, right)."""
    out_hw = conv_output_hw(x.shape[1:3], w.shape[:2], stride, padding, dilation)
    return _direct(x, w, out_hw, stride, padding, dilation)


def _direct(x, w, out_hw, stride, padding, dilation):
    kh, kw, cin, cout = w.shape
    planes = _planes_of(x, w.shape, out_hw, stride, padding, dilation)
    y = np.empty((x.shape[0], *out_hw, cout), dtype=x.dtype)
    _forward(planes, np.ascontiguousarray(w).reshape(kh * kw * cin, cout), kw, *dilation, y)
    return y


def conv2d_input_grad(dy, w, x_shape, stride, padding, dilation):
    """dx (x_shape) for dy (N, Ho, Wo, Cout) of a stride-1 conv, as the forward kernel's convolution.

    Output pixel (i, j) reads x[i + p*dil_h - pt, j + q*dil_w - pl] through tap (p, q), so
        dx[r, col] = sum over taps with (i, j) inside dy of dy[i, j] @ w[p, q]^T,
    i = r + pt - p*dil_h: a stride-1 convolution of dy, zero-padded by (kh-1)*dil_h - pt on top and
    (kw-1)*dil_w - pl on the left, with the kernel flipped and transposed, w'[p', q'] =
    w[kh-1-p', kw-1-q']^T. Where (i, j) falls outside dy it adds 0 * w instead of nothing, the
    same unless w holds Inf or NaN: the dispatch table keeps such weights on col2im.
    """
    w_flip, pads = flipped(w, padding, dilation)
    return _direct(dy, w_flip, x_shape[1:3], (1, 1), pads, dilation)


def flipped(w, padding, dilation):
    """(w', pads): a stride-1 conv's input gradient is the forward conv of dy with w' and pads."""
    kh, kw = w.shape[:2]
    w_flip = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))  # (kh, kw, Cout, Cin)
    return w_flip, ((kh - 1) * dilation[0] - padding[0], 0, (kw - 1) * dilation[1] - padding[2], 0)


def conv2d_filter_grad(dy, x, w, stride, padding, dilation):
    """dw (w's shape) for dy (N, Ho, Wo, Cout) and x (N, H, W, Cin); only w's shape is read."""
    w_shape = w.shape
    kh, kw, cin, cout = w_shape
    planes = _planes_of(x, w_shape, dy.shape[1:3], stride, padding, dilation)
    blocks = -(-dy.shape[0] * dy.shape[1] * dy.shape[2] // BLOCK)
    partials = np.zeros((num_chunks(blocks), kh * kw * cin, cout), dtype=x.dtype)
    _filter_grad_partials(np.ascontiguousarray(dy), planes, kw, *dilation, partials)
    return sum_partials(partials).reshape(w_shape)


def _planes_of(x, w_shape, out_hw, stride, padding, dilation):
    """x's zero-padded phase planes (N, sh, sw, Cin, rows', cols) (see the module docstring)."""
    kh, kw, cin, _ = w_shape
    (sh, sw), (dil_h, dil_w), (ho, wo) = stride, dilation, out_hw
    rows = ho + (kh - 1) * dil_h // sh  # the plane rows and columns some output pixel reads
    cols = wo + (kw - 1) * dil_w // sw
    # rows' adds zero rows, so the forward's reads of a block past the last row stay inside.
    planes = np.empty((x.shape[0], sh, sw, cin, rows + 2 + BLOCK // cols, cols), dtype=x.dtype)
    _phase_planes(np.ascontiguousarray(x), padding[0], padding[2], planes)
    return planes


@njit(cache=True)
def _gather_transposed(a2, m0, out):
    """out[o, t] = a2[m0 + t, o] for the rows of a2 (pixels, channels) that exist, else 0."""
    zero = a2.dtype.type(0)
    for t in range(BLOCK):
        if m0 + t < a2.shape[0]:
            src = a2[m0 + t]
            for o in range(out.shape[0]):
                out[o, t] = src[o]
        else:
            for o in range(out.shape[0]):
                out[o, t] = zero


@njit(parallel=True, cache=True)
def _phase_planes(x, pt, pl, planes):
    """planes[n, a, b, c, u, v] = xpad[n, u*sh + a, v*sw + b, c], 0 in the padding and beyond it."""
    n_, sh, sw, cin, rows, cols = planes.shape
    h, width = x.shape[1], x.shape[2]
    zero = x.dtype.type(0)
    for nu in prange(n_ * rows):
        n = nu // rows
        u = nu - n * rows
        for a in range(sh):
            r = input_index(u, a, sh, 1, pt)  # plane row u of phase a holds xpad row u*sh + a
            for b in range(sw):
                for v in range(cols):
                    col = input_index(v, b, sw, 1, pl)
                    if 0 <= r < h and 0 <= col < width:
                        src = x[n, r, col]
                        for c in range(cin):
                            planes[n, a, b, c, u, v] = src[c]
                    else:
                        for c in range(cin):
                            planes[n, a, b, c, u, v] = zero


@njit(cache=True, inline="always")
def _tap_start(n, k, kw, cin, dil_h, dil_w, planes_shape):
    """Where, in the planes read as one flat array, weight row k = (p*kw + q)*Cin + c finds its
    input for flat output position f = 0; position f is f further on."""
    sh, sw, rows, cols = planes_shape[1], planes_shape[2], planes_shape[4], planes_shape[5]
    p = k // (kw * cin)
    q = (k - p * kw * cin) // cin
    c = k - (p * kw + q) * cin
    plane = ((n * sh + p * dil_h % sh) * sw + q * dil_w % sw) * cin + c
    return plane * rows * cols + (p * dil_h // sh) * cols + q * dil_w // sw


@njit(parallel=True, cache=True)
def _forward(planes, w2, kw, dil_h, dil_w, y):
    """y (N, Ho, Wo, Cout) from x's phase planes and w2 (kh*kw*Cin, Cout).

    Output pixel (i, j) is flat position f = i*cols + j of a phase plane (columns j >= Wo are
    computed and dropped), and tap (p, q) reads plane (p*dil_h % sh, q*dil_w % sw) at f plus a
    constant, so for a block of BLOCK consecutive f every (tap, channel) is one contiguous slice.
    """
    n_, sh, sw, cin, rows, cols = planes.shape
    ho, wo, cout = y.shape[1], y.shape[2], y.shape[3]
    k_ = w2.shape[0]
    flat = planes.reshape(planes.size)
    per_image = -(-(ho * cols) // BLOCK)
    zero = y.dtype.type(0)
    for blk in prange(n_ * per_image):
        n = blk // per_image
        f0 = (blk - n * per_image) * BLOCK
        acc = np.empty((cout, BLOCK), dtype=y.dtype)
        for o in range(cout):
            for t in range(BLOCK):
                acc[o, t] = zero
        # k = (p, q, c) in w's row-major order, four at a time, added left to right: each output
        # adds its taps in the reference's order, and acc is loaded and stored once per four k.
        k4 = k_ - k_ % 4
        for k in range(0, k4, 4):
            s0 = flat[f0 + _tap_start(n, k, kw, cin, dil_h, dil_w, planes.shape):][:BLOCK]
            s1 = flat[f0 + _tap_start(n, k + 1, kw, cin, dil_h, dil_w, planes.shape):][:BLOCK]
            s2 = flat[f0 + _tap_start(n, k + 2, kw, cin, dil_h, dil_w, planes.shape):][:BLOCK]
            s3 = flat[f0 + _tap_start(n, k + 3, kw, cin, dil_h, dil_w, planes.shape):][:BLOCK]
            for o in range(cout):
                w0, w1, w2_, w3 = w2[k, o], w2[k + 1, o], w2[k + 2, o], w2[k + 3, o]
                a = acc[o]
                for t in range(BLOCK):
                    a[t] = a[t] + w0 * s0[t] + w1 * s1[t] + w2_ * s2[t] + w3 * s3[t]
        for k in range(k4, k_):
            s0 = flat[f0 + _tap_start(n, k, kw, cin, dil_h, dil_w, planes.shape):][:BLOCK]
            for o in range(cout):
                w0 = w2[k, o]
                a = acc[o]
                for t in range(BLOCK):
                    a[t] += w0 * s0[t]
        for t in range(BLOCK):
            i = (f0 + t) // cols
            j = f0 + t - i * cols
            if i < ho and j < wo:
                out = y[n, i, j]
                for o in range(cout):
                    out[o] = acc[o, t]


@njit(parallel=True, cache=True, fastmath=_DOT)
def _filter_grad_partials(dy, planes, kw, dil_h, dil_w, partials):
    """partials[k] (kh*kw*Cin, Cout) += the filter gradient summed over chunk k of the pixel blocks.

    A block's pixels are runs of consecutive columns j of one output row i; for each weight row k
    such a run reads one contiguous stretch of a phase plane, copied into patch[k] as it is.
    """
    chunks, k_, cout = partials.shape
    n_, ho, wo = dy.shape[0], dy.shape[1], dy.shape[2]
    cin, cols = planes.shape[3], planes.shape[5]
    flat = planes.reshape(planes.size)
    dy2 = dy.reshape(n_ * ho * wo, cout)
    blocks = -(-dy2.shape[0] // BLOCK)
    zero = dy.dtype.type(0)
    for k in prange(chunks):
        acc = partials[k]
        patch = np.empty((k_, BLOCK), dtype=dy.dtype)
        dy_t = np.empty((cout, BLOCK), dtype=dy.dtype)
        start, stop = chunk_bounds(k, blocks, chunks)
        for b in range(start, stop):
            m0 = b * BLOCK
            t = 0
            while t < BLOCK and m0 + t < dy2.shape[0]:
                n = (m0 + t) // (ho * wo)
                i = (m0 + t - n * ho * wo) // wo
                j = m0 + t - (n * ho + i) * wo
                run = min(BLOCK - t, wo - j)  # pixels t, t+1, ... are columns j, j+1, ... of row i
                for kk in range(k_):
                    src = flat[_tap_start(n, kk, kw, cin, dil_h, dil_w, planes.shape) + i * cols + j:][:run]
                    dst = patch[kk, t:t + run]
                    for u in range(run):
                        dst[u] = src[u]
                t += run
            for kk in range(k_):  # past the last pixel: 0 (times dy = 0 there)
                for u in range(t, BLOCK):
                    patch[kk, u] = zero
            _gather_transposed(dy2, m0, dy_t)
            for kk in range(k_):
                pk = patch[kk]
                a = acc[kk]
                o4 = cout - cout % 4
                # Four dot products per pass over pk: one load of pk[t] feeds four products.
                for o in range(0, o4, 4):
                    g0, g1, g2, g3 = dy_t[o], dy_t[o + 1], dy_t[o + 2], dy_t[o + 3]
                    s0 = s1 = s2 = s3 = zero
                    for t in range(BLOCK):
                        v = pk[t]
                        s0 += v * g0[t]
                        s1 += v * g1[t]
                        s2 += v * g2[t]
                        s3 += v * g3[t]
                    a[o] += s0
                    a[o + 1] += s1
                    a[o + 2] += s2
                    a[o + 3] += s3
                for o in range(o4, cout):
                    g = dy_t[o]
                    s0 = zero
                    for t in range(BLOCK):
                        s0 += pk[t] * g[t]
                    a[o] += s0
