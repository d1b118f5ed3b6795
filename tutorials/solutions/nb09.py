"""Notebook 9: a layer's place on the roofline, a fused batch norm + ReLU, a pointwise convolution
as GEMM tasks in a prange, and a per-channel reduction in fixed chunks."""

import numpy as np
from numba import njit, prange

from exercises.blas import matmul_into


def roofline_point(kind, batch, height, width, c_in, c_out, itemsize=4):
    """(flops, bytes) of one forward pass, stride 1 and "same" padding, for a batch of NHWC images.

    kind "depthwise": a 3x3 depthwise convolution of c_in channels (c_out is c_in: multiplier 1).
    kind "pointwise": a 1x1 convolution from c_in to c_out channels.
    flops: 2 per multiply-add. bytes: the least a pass must move, reading the input and the weights
    once and writing the output once, `itemsize` bytes per value.
    """
    # BEGIN SOLUTION
    pixels = batch * height * width
    if kind == "depthwise":
        macs, weights, c_out = pixels * c_in * 9, 9 * c_in, c_in
    elif kind == "pointwise":
        macs, weights = pixels * c_in * c_out, c_in * c_out
    else:
        raise ValueError(f"kind must be 'depthwise' or 'pointwise', got {kind!r}")
    return 2 * macs, itemsize * (pixels * c_in + pixels * c_out + weights)
    # END SOLUTION


@njit(parallel=True, cache=True)
def bn_relu_rows(x2, mean, scale, beta):
    """relu((x2 - mean) * scale + beta) in one pass over x2 (rows, C); mean, scale, beta (C,).

    Parallel over rows; each value is normalized and clamped as it is written, in the reference's
    order of operations, so the result equals the two-pass NumPy composition exactly.
    """
    # BEGIN SOLUTION
    rows, channels = x2.shape
    out = np.empty_like(x2)
    for r in prange(rows):
        for c in range(channels):
            v = (x2[r, c] - mean[c]) * scale[c] + beta[c]
            out[r, c] = v if v > 0 else 0
    return out
    # END SOLUTION


@njit(parallel=True, cache=True)
def pointwise_chunked(x2, w2, chunks):
    """y (P, Cout) = x2 (P, Cin) @ w2 (Cin, Cout) as `chunks` GEMM tasks in a prange.

    Task k multiplies rows [k * P // chunks, (k + 1) * P // chunks) of x2 by w2 into the same rows
    of y with one matmul_into call (exercises/blas.py), run with BLAS held to one thread.
    """
    # BEGIN SOLUTION
    rows = x2.shape[0]
    y = np.empty((rows, w2.shape[1]), dtype=x2.dtype)
    for k in prange(chunks):
        first, last = k * rows // chunks, (k + 1) * rows // chunks
        matmul_into(x2[first:last], w2, y[first:last])
    return y
    # END SOLUTION


@njit(parallel=True, cache=True)
def channel_sums(x2, chunks):
    """(2, C) float64: the per-channel sums of x2 (rows, C) and of its squares, batch norm's statistics.

    The rows are cut into `chunks` fixed chunks (k * rows // chunks, ...), each summed into a
    float64 partial of its own (convert each value to float64 before squaring it: a float32 square
    has already rounded); the partials are then added in chunk order, so the result is the same
    bits on any number of threads.
    """
    # BEGIN SOLUTION
    rows, channels = x2.shape
    partials = np.zeros((chunks, 2, channels))
    for k in prange(chunks):
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            for c in range(channels):
                v = np.float64(x2[r, c])
                partials[k, 0, c] += v
                partials[k, 1, c] += v * v
    total = np.zeros((2, channels))
    for k in range(chunks):                 # chunk order: a fixed order
        total += partials[k]
    return total
    # END SOLUTION
