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
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from ._chunks import chunk_bounds, num_chunks, sum_partials

MIN_ROWS_TO_SPLIT = 16384
ROWS_PER_CHUNK = 8192  # long enough for BLAS to run at full speed on each chunk

_blas = ThreadpoolController()


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

    threads = numba.get_num_threads()
    with _blas.limit(limits=1, user_api="blas"):
        if threads == 1:
            for k in range(chunks):
                chunk_product(k)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(chunk_product, range(chunks)))
    return sum_partials(partials)
