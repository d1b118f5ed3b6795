"""Notebook 4: a grid-stride kernel and the depthwise filter-gradient reduction on the GPU.

Import this after deciding on the CUDA simulator (NUMBA_ENABLE_CUDASIM=1 without a GPU).
"""

import math

import numpy as np
from numba import cuda

THREADS = 32  # threads per block of the reduction: a power of two, for the halving tree


@cuda.jit
def axpy_kernel(a, x, y, out):
    """out = a * x + y for 1-D float32 arrays, with a grid-stride loop (any grid size works)."""
    # BEGIN SOLUTION
    start = cuda.grid(1)
    step = cuda.gridsize(1)                      # all threads of the grid, together
    for i in range(start, x.size, step):
        out[i] = a * x[i] + y[i]
    # END SOLUTION


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
    # BEGIN SOLUTION
    partial = cuda.shared.array(THREADS, dtype=np.float32)
    tap, c, t = cuda.blockIdx.x, cuda.blockIdx.y, cuda.threadIdx.x
    kw = dw.shape[1]
    p, q = tap // kw, tap % kw
    n_img, ho, wo = dy.shape[0], dy.shape[1], dy.shape[2]
    acc = np.float32(0.0)
    for flat in range(t, n_img * ho * wo, THREADS):
        n, i, j = flat // (ho * wo), (flat // wo) % ho, flat % wo
        acc += x[n, i + p, j + q, c] * dy[n, i, j, c]
    partial[t] = acc
    cuda.syncthreads()                           # every partial sum is written
    half = THREADS // 2
    while half > 0:                              # tree: 32 -> 16 -> ... -> 1, a fixed order
        if t < half:
            partial[t] += partial[t + half]
        cuda.syncthreads()                       # this level is done before the next reads it
        half //= 2
    if t == 0:
        dw[p, q, c] = partial[0]
    # END SOLUTION


def filter_grad_cuda(x, dy, kh, kw):
    """dw (kh, kw, C) float32 for float32 x (N, H, W, C) and dy (N, H-kh+1, W-kw+1, C)."""
    dw = np.zeros((kh, kw, x.shape[3]), dtype=np.float32)
    filter_grad_kernel[(kh * kw, x.shape[3]), THREADS](x, dy, dw)
    return dw


def blocks_for(n, threads):
    """Blocks needed so that `threads`-thread blocks cover n elements."""
    return math.ceil(n / threads)
