"""Your turn: write each function in place of its `raise NotImplementedError`, then grade it
with `pytest tutorials/exercises/test_nb04.py`. Written from tutorials/solutions/nb04.py by
build_notebooks.py (rebuilding overwrites this file: keep your answers elsewhere if you rebuild)."""
# ruff: noqa: F401  (the solutions' imports stay, for your code to use)

import math

import numpy as np
from numba import cuda

THREADS = 32  # threads per block of the reduction: a power of two, for the halving tree


@cuda.jit
def axpy_kernel(a, x, y, out):
    """out = a * x + y for 1-D float32 arrays, with a grid-stride loop (any grid size works)."""
    raise NotImplementedError("your turn")


def axpy(a, x, y, blocks=4, threads=32):
    """a * x + y on the device, with a grid of `blocks` x `threads` threads, however long x is."""
    out = np.zeros_like(x)
    axpy_kernel[blocks, threads](np.float32(a), x, y, out)
    return out


@cuda.jit
def filter_grad_kernel(x, dy, dw):
    """dw[p, q, c] = sum over n, i, j of x[n, i+p, j+q, c] * dy[n, i, j, c] (stride 1, 'valid').

    One block per (tap, channel): blockIdx.x = p * kw + q, blockIdx.y = c; THREADS threads each sum
    a strided share of the pixels, then the block adds the partial sums in shared memory.
    """
    raise NotImplementedError("your turn")


def filter_grad_cuda(x, dy, kh, kw):
    """dw (kh, kw, C) float32 for float32 x (N, H, W, C) and dy (N, H-kh+1, W-kw+1, C)."""
    dw = np.zeros((kh, kw, x.shape[3]), dtype=np.float32)
    filter_grad_kernel[(kh * kw, x.shape[3]), THREADS](x, dy, dw)
    return dw


def blocks_for(n, threads):
    """Blocks needed so that `threads`-thread blocks cover n elements."""
    return math.ceil(n / threads)
