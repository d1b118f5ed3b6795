"""A^T @ B for tall A and B (every filter gradient): fixed row chunks, one 1-thread GEMM each.

A filter gradient contracts over all pixels: dW = X^T @ dY with X (P, Cin), dY (P, Cout) and
P = N*H*W, up to 170,000 in Xception, while dW is small. A multi-threaded BLAS splits such a
product along P in blocks and makes its threads wait for each other after every block; when any
other process is running, one thread is often descheduled while the other spins, and the call
takes seconds instead of tens of milliseconds (measured with OpenBLAS on 2 shared cores).

So the rows are cut into chunks that depend only on the shape (_chunks.py, as for every
reduction here), each chunk is one single-threaded GEMM, the chunks run on a pool of
`numba.get_num_threads()` Python threads (NumPy releases the GIL inside BLAS), and the partial
products are added in chunk order: fast on a busy machine, and bitwise the same for any thread
count. Short products (P < MIN_ROWS_TO_SPLIT) are one ordinary GEMM.

The forward and input-gradient products (A @ B, B small) stay ordinary multi-threaded GEMMs:
on a quiet machine OpenBLAS's own threads ran them 1.2-1.6x faster than chunks handed to this
pool (a hand-off between Python threads costs about 0.1 ms), although under load they stalled
2-9x where chunks did not.
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

_blas = ThreadpoolController()
_pool: ThreadPoolExecutor | None = None  # grown on demand; dropped in a forked child (its threads stay behind)


def _run(work, count: int) -> None:
    """work(k) for k in range(count) on numba.get_num_threads() threads, each BLAS call single-threaded.

    Thread t runs k = t, t + T, t + 2T, ... (the calling thread is thread 0), so a call costs T - 1
    task hand-offs however many chunks there are; which thread runs a chunk never changes its bits.
    """
    global _pool
    threads = min(numba.get_num_threads(), count)
    with _blas.limit(limits=1, user_api="blas"):
        if threads == 1:
            for k in range(count):
                work(k)
            return
        if _pool is None or _pool._max_workers < threads - 1:
            _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="npxception-gemm")

        def share(t: int) -> None:
            for k in range(t, count, threads):
                work(k)

        others = [_pool.submit(share, t) for t in range(1, threads)]
        share(0)
        for future in others:
            future.result()


def _forget_pool() -> None:
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def tall_transpose_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a.T @ b for a (P, M) and b (P, N), both C-contiguous; returns (M, N) in a's dtype."""
    rows = a.shape[0]
    if rows < MIN_ROWS_TO_SPLIT:
        return a.T @ b
    chunks = num_chunks(rows // ROWS_PER_CHUNK)
    partials = np.empty((chunks, a.shape[1], b.shape[1]), dtype=a.dtype)

    def chunk_product(k: int) -> None:
        start, stop = chunk_bounds(k, rows, chunks)
        np.matmul(a[start:stop].T, b[start:stop], out=partials[k])

    _run(chunk_product, chunks)
    return sum_partials(partials)

