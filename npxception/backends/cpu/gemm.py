"""Tall GEMMs (pointwise convolutions, filter gradients): fixed row chunks, one 1-thread GEMM each.

A filter gradient contracts over all pixels: dW = X^T @ dY with X (P, Cin), dY (P, Cout) and
P = N*H*W, up to 170,000 in Xception, while dW is small. A multi-threaded BLAS splits such a
product along P in blocks and makes its threads wait for each other after every block; when any
other process is running, one thread is often descheduled while the other spins, and the call
takes seconds instead of tens of milliseconds (measured with OpenBLAS on 2 shared cores).

So the rows are cut into chunks that depend only on the shape (_chunks.py, as for every
reduction here), each chunk is one single-threaded GEMM, the chunks run on a pool of
`numba.get_num_threads()` Python threads (NumPy releases the GIL inside BLAS), and the partial
products are added in chunk order: fast on a busy machine, and bitwise the same for any thread
count. Short products (P < MIN_ROWS_TO_SPLIT) are split along dW's rows instead, one
single-threaded GEMM per block of rows, so nothing is added across blocks.

A @ B for tall A (P, K) and small B (K, N) (the pointwise forward and input gradient) has the same
problem without the sum: under load OpenBLAS's two threads ran such shapes 2-9x slower than its
one thread. Timed alone on a quiet machine OpenBLAS's threads are faster (a hand-off to this pool
costs about 0.1 ms; benchmarks/results/roofline_cpu.md), but inside a training step, where BLAS's
spinning threads compete with the Numba kernels' threads, `tall_matmul` made the whole step faster
(quiet machine, alternating runs: `paper` 1.93-2.07 s against 2.69-2.99 s, `small` about 4%). It
gives each chunk of rows to one single-threaded GEMM that writes its own rows of the result:
nothing is added across chunks, and as every call is single-threaded the result is the same for any
thread count (a multi-threaded BLAS call was not, on 1444 x 728 x 728).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from ._chunks import chunk_bounds, num_chunks, sum_partials

MIN_ROWS_TO_SPLIT = 16384
ROWS_PER_CHUNK = 8192  # long enough for BLAS to run at full speed on each chunk
MIN_COLUMNS_PER_GEMM = 64  # short filter gradients: 728 output rows -> 11 blocks
MIN_ROWS_PER_GEMM = 512  # tall_matmul: chunks this long still run near BLAS's speed; 1444 rows -> 2

_blas = ThreadpoolController()
_pool: ThreadPoolExecutor | None = None  # grown on demand; dropped in a forked child (its threads stay behind)
_pool_size = 0


def _run(work, count: int) -> None:
    """work(k) for k in range(count) on numba.get_num_threads() threads, each BLAS call single-threaded.

    Thread t runs k = t, t + T, t + 2T, ... (the calling thread is thread 0), so a call costs T - 1
    task hand-offs however many chunks there are; which thread runs a chunk never changes its bits.
    """
    global _pool, _pool_size
    threads = min(numba.get_num_threads(), count)
    with _blas.limit(limits=1, user_api="blas"):
        if threads == 1:
            for k in range(count):
                work(k)
            return
        if _pool is None or _pool_size < threads - 1:  # more threads than before: a larger pool
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool_size = threads - 1
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="npxception-gemm")

        def share(t: int) -> None:
            for k in range(t, count, threads):
                work(k)

        others = [_pool.submit(share, t) for t in range(1, threads)]
        share(0)
        for future in others:
            future.result()


def _forget_pool() -> None:
    global _pool, _pool_size
    _pool, _pool_size = None, 0


os.register_at_fork(after_in_child=_forget_pool)


def tall_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for a (P, K) and b (K, N) (b may be a transposed view); returns (P, N) in a's dtype."""
    rows = a.shape[0]
    chunks = num_chunks(max(1, rows // MIN_ROWS_PER_GEMM))
    out = np.empty((rows, b.shape[1]), dtype=a.dtype)

    def chunk_product(k: int) -> None:
        start, stop = chunk_bounds(k, rows, chunks)
        np.matmul(a[start:stop], b, out=out[start:stop])

    _run(chunk_product, chunks)
    return out


def tall_transpose_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a.T @ b for a (P, M) and b (P, N), both C-contiguous; returns (M, N) in a's dtype."""
    rows = a.shape[0]
    if rows < MIN_ROWS_TO_SPLIT:  # short: split the output's rows instead, nothing to add
        return _split_output_rows(a, b)
    chunks = num_chunks(rows // ROWS_PER_CHUNK)
    partials = np.empty((chunks, a.shape[1], b.shape[1]), dtype=a.dtype)

    def chunk_product(k: int) -> None:
        start, stop = chunk_bounds(k, rows, chunks)
        np.matmul(a[start:stop].T, b[start:stop], out=partials[k])

    _run(chunk_product, chunks)
    return sum_partials(partials)


def _split_output_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a.T @ b as row blocks of the (M, N) result, out[m0:m1] = a[:, m0:m1].T @ b, one GEMM each."""
    m = a.shape[1]
    chunks = num_chunks(max(1, m // MIN_COLUMNS_PER_GEMM))
    out = np.empty((m, b.shape[1]), dtype=a.dtype)

    def block_product(k: int) -> None:
        start, stop = chunk_bounds(k, m, chunks)
        np.matmul(a[:, start:stop].T, b, out=out[start:stop])

    _run(block_product, chunks)
    return out
