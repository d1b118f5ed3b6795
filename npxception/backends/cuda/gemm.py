"""A tiled SGEMM in Numba CUDA: C = op(A) @ op(B), used by pointwise, dense and (via im2col) conv.

Design (the classic shared-memory + register-tiling kernel):

* Block tile. One block of 256 threads computes a BM x BN = 128 x 128 tile of C. It walks K in
  steps of BK = 8: each step copies an A tile (128 x 8) and a B tile (8 x 128) from global memory
  into shared memory, then every thread reads them BK times. Each element of A and B is read from
  global memory once per block instead of once per output (a 128x cut in global traffic).
* Register tile. Each thread owns TM x TN = 8 x 8 outputs, accumulated in registers (`cuda.local`
  arrays indexed by constants after loop unrolling, so NVVM keeps them in registers). Per k it loads
  8 values of A and 8 of B from shared memory and does 64 FMAs: 16 shared loads per 64 FMAs, the
  ratio that keeps the FMA units (4 warp-instructions/clock/SM) fed from shared memory (1/clock).
* Thread layout. Thread (ty, tx) = (tid // 16, tid % 16) owns rows ty + 16 i and columns
  tx + 16 j (strided, not a contiguous 8x8 patch): in a warp the 16 tx read 16 consecutive B
  entries (no bank conflict), the two ty read two A entries (a broadcast), and stores of C go to
  16 consecutive columns.
* Coalesced tile loads for every layout. A is either (M, K) or transposed (K, M) in memory (and B
  (K, N) or (N, K)); the layout is a compile-time constant of the kernel, and consecutive threads
  always walk the contiguous axis. Tiles are stored k-major in shared memory, padded by 4 columns
  so that the transposing store of a (M, K) tile does not hit one bank 8 times.
* Edge tiles are zero-filled on load and masked on store, so any M, N, K works.
* Split-K. When C has few tiles but K is long (a weight gradient X^T @ dY sums over every pixel of
  the batch), the K range is cut into S chunks; block z computes its chunk into partials[z], and a
  second kernel sums the S chunks in a fixed order. No atomics: results are bit-reproducible.

How far from cuBLAS, and why: cuBLAS (FP32, no TF32) uses 128-bit vectorised loads, double-buffered
shared memory (the next tile loads while this one is multiplied, hiding latency), warp-level tiling
tuned per GPU and SASS-level scheduling. Numba cannot express vector loads portably, and this
kernel synchronises twice per k-step, so expect it to reach a fraction of cuBLAS (the GPU check
reports the ratio measured on the same device).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ._launch import DTYPES, ceil_div, launch
from ._reduce import sum_chunks
from .arrays import empty

BM = 128   # rows of C per block
BN = 128   # columns of C per block
BK = 8     # depth of one shared-memory step
TM = 8     # rows per thread
TN = 8     # columns per thread
PAD = 4    # shared-memory row padding against bank conflicts
GEMM_THREADS = (BM // TM) * (BN // TN)   # 256
ROW_THREADS = BN // TN                    # 16 threads across the columns of a tile
COL_THREADS = BM // TM                    # 16 threads down the rows of a tile
A_COLS = BM + PAD                         # shared-array shapes must be literal constants
B_COLS = BN + PAD

# Split-K policy (host side; the same shapes always give the same split, so results reproduce).
TARGET_BLOCKS = 512        # enough blocks to fill a large GPU several times over
MIN_K_PER_SPLIT = 256      # a chunk shorter than this is not worth a separate partial sum


def _make_gemm(dtype, a_transposed: bool, b_transposed: bool):
    """The kernel for one dtype and one pair of layouts (constants, so dead branches vanish).

    a: (M, K), or (K, M) when a_transposed;  b: (K, N), or (N, K) when b_transposed;
    out: (S, M, N), chunk z gets the product over k in [z * k_chunk, (z + 1) * k_chunk).
    """
    loads_a = BM * BK // GEMM_THREADS   # 4 elements of A per thread per step
    loads_b = BK * BN // GEMM_THREADS   # 4 elements of B per thread per step

    @cuda.jit(cache=True)
    def gemm_kernel(a, b, k_chunk, out):
        m, n = out.shape[1], out.shape[2]
        k_total = b.shape[1] if b_transposed else b.shape[0]
        a_tile = cuda.shared.array((BK, A_COLS), dtype)
        b_tile = cuda.shared.array((BK, B_COLS), dtype)
        acc = cuda.local.array((TM, TN), dtype)
        a_reg = cuda.local.array(TM, dtype)
        b_reg = cuda.local.array(TN, dtype)

        tid = cuda.threadIdx.x
        tx = tid % ROW_THREADS
        ty = tid // ROW_THREADS
        row0 = cuda.blockIdx.x * BM   # M on x: up to 2**31 - 1 tiles (y and z stop at 65535)
        col0 = cuda.blockIdx.y * BN
        split = cuda.blockIdx.z
        k_begin = split * k_chunk
        k_end = min(k_total, k_begin + k_chunk)

        for i in range(TM):
            for j in range(TN):
                acc[i, j] = 0
        for k0 in range(k_begin, k_end, BK):
            for r in range(loads_a):
                e = tid + r * GEMM_THREADS
                if a_transposed:        # memory (K, M): consecutive threads along M
                    kk = e // BM
                    ii = e % BM
                else:                   # memory (M, K): consecutive threads along K
                    ii = e // BK
                    kk = e % BK
                gi = row0 + ii
                gk = k0 + kk
                if gi < m and gk < k_end:
                    if a_transposed:
                        a_tile[kk, ii] = a[gk, gi]
                    else:
                        a_tile[kk, ii] = a[gi, gk]
                else:
                    a_tile[kk, ii] = 0
            for r in range(loads_b):
                e = tid + r * GEMM_THREADS
                if b_transposed:        # memory (N, K): consecutive threads along K
                    jj = e // BK
                    kk = e % BK
                else:                   # memory (K, N): consecutive threads along N
                    kk = e // BN
                    jj = e % BN
                gj = col0 + jj
                gk = k0 + kk
                if gj < n and gk < k_end:
                    if b_transposed:
                        b_tile[kk, jj] = b[gj, gk]
                    else:
                        b_tile[kk, jj] = b[gk, gj]
                else:
                    b_tile[kk, jj] = 0
            cuda.syncthreads()
            for kk in range(BK):
                for i in range(TM):
                    a_reg[i] = a_tile[kk, ty + i * COL_THREADS]
                for j in range(TN):
                    b_reg[j] = b_tile[kk, tx + j * ROW_THREADS]
                for i in range(TM):
                    for j in range(TN):
                        acc[i, j] += a_reg[i] * b_reg[j]
            cuda.syncthreads()
        for i in range(TM):
            r = row0 + ty + i * COL_THREADS
            if r < m:
                for j in range(TN):
                    c = col0 + tx + j * ROW_THREADS
                    if c < n:
                        out[split, r, c] = acc[i, j]

    return gemm_kernel


# The three layouts the backend uses: X @ W (forward), dY @ W^T (input gradient), X^T @ dY (weights).
_KERNELS = {
    (np_dtype, ta, tb): _make_gemm(nb_dtype, ta, tb)
    for np_dtype, nb_dtype in DTYPES.items()
    for ta, tb in ((False, False), (False, True), (True, False))
}


def split_k(m: int, n: int, k: int) -> tuple[int, int]:
    """(number of K chunks, chunk length): chunks only when the output alone gives few blocks."""
    tiles = ceil_div(m, BM) * ceil_div(n, BN)
    splits = max(1, min(ceil_div(TARGET_BLOCKS, tiles), k // MIN_K_PER_SPLIT))
    chunk = ceil_div(ceil_div(k, splits), BK) * BK
    return ceil_div(k, chunk), chunk


def matmul(a, b, *, a_transposed: bool = False, b_transposed: bool = False):
    """op(a) @ op(b) for 2-D C-contiguous device arrays of one dtype -> new (M, N) device array.

    a_transposed: a is stored (K, M) and used as its transpose; likewise b stored (N, K).
    """
    m = a.shape[1] if a_transposed else a.shape[0]
    k = a.shape[0] if a_transposed else a.shape[1]
    n = b.shape[0] if b_transposed else b.shape[1]
    kernel = _KERNELS[(np.dtype(a.dtype), a_transposed, b_transposed)]
    splits, chunk = split_k(m, n, k)
    grid = (ceil_div(m, BM), ceil_div(n, BN), splits)
    if splits == 1:
        out = empty((m, n), a.dtype)
        launch(kernel, grid, GEMM_THREADS, a, b, chunk, out.reshape(1, m, n))
        return out
    partials = empty((splits, m * n), a.dtype)
    launch(kernel, grid, GEMM_THREADS, a, b, chunk, partials.reshape(splits, m, n))
    return sum_chunks(partials).reshape(m, n)
