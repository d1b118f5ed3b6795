"""Your turn: write each function in place of its `raise NotImplementedError`, then grade it
with `pytest tutorials/exercises/test_nb09.py`. Written from tutorials/solutions/nb09.py by
build_notebooks.py (rebuilding overwrites this file: keep your answers elsewhere if you rebuild)."""
# ruff: noqa: F401  (the solutions' imports stay, for your code to use)

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
    raise NotImplementedError("your turn")


@njit(parallel=True, cache=True)
def bn_relu_rows(x2, mean, scale, beta):
    """relu((x2 - mean) * scale + beta) in one pass over x2 (rows, C); mean, scale, beta (C,).

    Parallel over rows; each value is normalized and clamped as it is written, in the reference's
    order of operations, so the result equals the two-pass NumPy composition exactly.
    """
    raise NotImplementedError("your turn")


@njit(parallel=True, cache=True)
def pointwise_chunked(x2, w2, chunks):
    """y (P, Cout) = x2 (P, Cin) @ w2 (Cin, Cout) as `chunks` GEMM tasks in a prange.

    Task k multiplies rows [k * P // chunks, (k + 1) * P // chunks) of x2 by w2 into the same rows
    of y with one matmul_into call (exercises/blas.py), run with BLAS held to one thread.
    """
    raise NotImplementedError("your turn")


@njit(parallel=True, cache=True)
def channel_sums(x2, chunks):
    """(2, C) float64: the per-channel sums of x2 (rows, C) and of its squares, batch norm's statistics.

    The rows are cut into `chunks` fixed chunks (k * rows // chunks, ...), each summed into a
    float64 partial of its own (convert each value to float64 before squaring it: a float32 square
    has already rounded); the partials are then added in chunk order, so the result is the same
    bits on any number of threads.
    """
    raise NotImplementedError("your turn")
