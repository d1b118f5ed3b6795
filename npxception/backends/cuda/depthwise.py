"""Depthwise 2-D convolution on the GPU, NHWC (math and shapes: reference/depthwise.py).

x (N, H, W, C), w (kh, kw, C, M) -> y (N, Ho, Wo, C*M), output channel c*M + m.

Thread layout, all three kernels: a block is 32 x 8 threads; threadIdx.x walks 32 consecutive
channels, so a warp reads and writes 128 contiguous bytes of an NHWC row (coalesced), and the 8
threadIdx.y walk 8 neighbouring pixels of one image row, which read overlapping windows of x that
the L1 cache serves. blockIdx.z (looping past CUDA's 65535 limit) is the image row (n, i).

* forward: one thread per output element, kh*kw multiply-adds; a padded tap adds 0 * w, as the
  reference's zero-padded x does (so an Inf weight gives NaN at the border on every backend).
* input gradient, as a gather: one thread per *input* element sums dy over the output pixels whose
  window covers it: dx[n, h, w, c] = sum_{p, q, m} dy[n, i, j, c*M + m] w[p, q, c, m] over the
  (i, j) with i*sh + p*dil_h = h + pad_top (`output_index`, ../_index.py). Each thread owns its
  output: no atomics.
* filter gradient, a deterministic reduction over N*Ho*Wo pixels: the pixels are cut into fixed
  chunks; block (channel group, chunk) accumulates up to TAPS kernel taps per thread in registers
  (one pass over its dy covers 9 taps of a 3x3 kernel; a padded tap adds 0 * dy), adds its 8 rows
  in order in shared memory and writes partials[chunk, tap, channel]; a second kernel sums the
  chunks in order.
"""

from __future__ import annotations

from numba import cuda

from ...shapes import conv_output_hw
from ._index import input_index, output_index
from ._launch import (CHANNEL_THREADS, ROW_THREADS, ceil_div, channel_block, grid_yz, launch,
                      per_dtype)
from ._reduce import chunks_for, sum_chunks
from .arrays import empty

TAPS = 9   # kernel taps one filter-gradient thread accumulates at once (a whole 3x3 kernel)


def _make_forward(dtype):
    @cuda.jit(cache=True)
    def depthwise_forward_kernel(x, w, sh, sw, pt, pl, dil_h, dil_w, y):
        ho, wo, cm = y.shape[1], y.shape[2], y.shape[3]
        kh, kw, mult = w.shape[0], w.shape[1], w.shape[3]
        oc = cuda.blockIdx.x * CHANNEL_THREADS + cuda.threadIdx.x
        j = cuda.blockIdx.y * ROW_THREADS + cuda.threadIdx.y
        if oc >= cm or j >= wo:
            return
        c = oc // mult
        m = oc - c * mult
        for row in range(cuda.blockIdx.z, y.shape[0] * ho, cuda.gridDim.z):
            n = row // ho
            i = row - n * ho
            acc = dtype(0)
            for p in range(kh):
                h = input_index(i, p, sh, dil_h, pt)
                for q in range(kw):
                    col = input_index(j, q, sw, dil_w, pl)
                    if 0 <= h < x.shape[1] and 0 <= col < x.shape[2]:
                        acc += x[n, h, col, c] * w[p, q, c, m]
                    else:
                        acc += dtype(0) * w[p, q, c, m]
            y[n, i, j, oc] = acc

    return depthwise_forward_kernel


def _make_input_grad(dtype):
    @cuda.jit(cache=True)
    def depthwise_input_grad_kernel(dy, w, sh, sw, pt, pl, dil_h, dil_w, dx):
        height, width, channels = dx.shape[1], dx.shape[2], dx.shape[3]
        ho, wo = dy.shape[1], dy.shape[2]
        kh, kw, mult = w.shape[0], w.shape[1], w.shape[3]
        c = cuda.blockIdx.x * CHANNEL_THREADS + cuda.threadIdx.x
        col = cuda.blockIdx.y * ROW_THREADS + cuda.threadIdx.y
        if c >= channels or col >= width:
            return
        for row in range(cuda.blockIdx.z, dx.shape[0] * height, cuda.gridDim.z):
            n = row // height
            h = row - n * height
            acc = dtype(0)
            for p in range(kh):
                i = output_index(h, p, sh, dil_h, pt, ho)   # the output row that reads h via tap p
                if i < 0:
                    continue
                for q in range(kw):
                    j = output_index(col, q, sw, dil_w, pl, wo)
                    if j < 0:
                        continue
                    for m in range(mult):
                        acc += dy[n, i, j, c * mult + m] * w[p, q, c, m]
            dx[n, h, col, c] = acc

    return depthwise_input_grad_kernel


def _make_filter_grad(dtype):
    @cuda.jit(cache=True)
    def depthwise_filter_grad_kernel(dy, x, kh, kw, sh, sw, pt, pl, dil_h, dil_w, pixels_per_chunk,
                                     partials):
        """partials[k, tap, oc] = sum over chunk k of x_tap[pixel, oc // M] * dy[pixel, oc]."""
        ho, wo, cm = dy.shape[1], dy.shape[2], dy.shape[3]
        mult = cm // x.shape[3]
        taps = kh * kw
        oc = cuda.blockIdx.x * CHANNEL_THREADS + cuda.threadIdx.x
        k = cuda.blockIdx.y
        tap0 = cuda.blockIdx.z * TAPS
        acc = cuda.local.array(TAPS, dtype)
        scratch = cuda.shared.array((TAPS, ROW_THREADS, CHANNEL_THREADS), dtype)
        for t in range(TAPS):
            acc[t] = 0
        if oc < cm:
            c = oc // mult
            stop = min(dy.shape[0] * ho * wo, (k + 1) * pixels_per_chunk)
            for pix in range(k * pixels_per_chunk + cuda.threadIdx.y, stop, ROW_THREADS):
                j = pix % wo
                r = pix // wo
                i = r % ho
                n = r // ho
                g = dy[n, i, j, oc]
                for t in range(TAPS):
                    tap = tap0 + t
                    if tap < taps:
                        p = tap // kw
                        q = tap - p * kw
                        h = input_index(i, p, sh, dil_h, pt)
                        col = input_index(j, q, sw, dil_w, pl)
                        if 0 <= h < x.shape[1] and 0 <= col < x.shape[2]:
                            acc[t] += x[n, h, col, c] * g
                        else:
                            acc[t] += dtype(0) * g
        for t in range(TAPS):
            scratch[t, cuda.threadIdx.y, cuda.threadIdx.x] = acc[t]
        cuda.syncthreads()
        if cuda.threadIdx.y == 0 and oc < cm:
            for t in range(TAPS):
                if tap0 + t < taps:
                    total = scratch[t, 0, cuda.threadIdx.x]
                    for r in range(1, ROW_THREADS):
                        total += scratch[t, r, cuda.threadIdx.x]
                    partials[k, tap0 + t, oc] = total

    return depthwise_filter_grad_kernel


_FORWARD = per_dtype(_make_forward)
_INPUT_GRAD = per_dtype(_make_input_grad)
_FILTER_GRAD = per_dtype(_make_filter_grad)


def depthwise_conv2d(x, w, stride, padding, dilation):
    kh, kw, c, mult = w.shape
    ho, wo = conv_output_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    y = empty((x.shape[0], ho, wo, c * mult), x.dtype)
    grid = (ceil_div(c * mult, CHANNEL_THREADS), ceil_div(wo, ROW_THREADS), grid_yz(x.shape[0] * ho))
    launch(_FORWARD[x.dtype], grid, channel_block(), x, w, stride[0], stride[1], padding[0],
           padding[2], dilation[0], dilation[1], y)
    return y


def depthwise_conv2d_backward(dy, x, w, stride, padding, dilation):
    kh, kw, c, mult = w.shape
    n, ho, wo, cm = dy.shape
    dx = empty(x.shape, x.dtype)
    grid = (ceil_div(c, CHANNEL_THREADS), ceil_div(x.shape[2], ROW_THREADS),
            grid_yz(n * x.shape[1]))
    launch(_INPUT_GRAD[x.dtype], grid, channel_block(), dy, w, stride[0], stride[1], padding[0],
           padding[2], dilation[0], dilation[1], dx)

    chunks, per = chunks_for(n * ho * wo, cm)
    taps = kh * kw
    partials = empty((chunks, taps, cm), x.dtype)
    grid = (ceil_div(cm, CHANNEL_THREADS), chunks, ceil_div(taps, TAPS))
    launch(_FILTER_GRAD[x.dtype], grid, channel_block(), dy, x, kh, kw, stride[0], stride[1],
           padding[0], padding[2], dilation[0], dilation[1], per, partials)
    dw = sum_chunks(partials.reshape(chunks, taps * cm)).reshape(w.shape)
    return dx, dw
