"""Tall GEMMs (pointwise convolutions, im2col convolutions): fixed chunks, one 1-thread GEMM each.

A filter gradient contracts over all pixels: dW = X^T @ dY with X (P, Cin), dY (P, Cout) and
P = N*H*W, up to 170,000 in Xception, while dW is small. A multi-threaded BLAS splits such a
product along P in blocks and makes its threads wait for each other after every block; when any
other process is running, one thread is often descheduled while the other spins, and the call
takes far longer than the work (seen with OpenBLAS on 2 shared cores). The
forward and input gradient, A @ B for tall A (P, K) and small B (K, N), have the same problem
without the sum, and a multi-threaded call did not even give the same bits for 1 and 2 threads
(on 1444 x 728 x 728).

So every product is cut into GEMM tasks that depend only on the shapes (_chunks.py, as for every
reduction here), each task is one single-threaded GEMM, and the results are the same for any
thread count:

    tall_matmul            a @ b:   chunk k of a's rows -> the same rows of the result; a short
                           product (under 2 * MIN_ROWS_PER_GEMM rows) in blocks of the result's
                           columns instead (row chunks that short run far below BLAS's speed)
    tall_transpose_matmul  a.T @ b: chunk k of the rows of both -> partial k, added in chunk order;
                           short products (P < MIN_ROWS_TO_SPLIT) in blocks of the result's rows
                           instead, so nothing is added across tasks

Block sizes were chosen on the paper network's shapes against one 2-thread NumPy GEMM (the
timings: docs/performance.md, "Why each tuned kernel").

The tasks are a table (m, n, k and the element offsets of A, B and C in flat arrays), run by one
Numba kernel: `prange` over the tasks, each calling NumPy's own cblas_sgemm/dgemm (blas.py) with
the BLAS held to one thread. The GEMMs thus run on the same threads as every other kernel of the
backend, with no thread of their own to wake or to fight over the cores. Where NumPy's BLAS is not
the OpenBLAS of its wheels, the same table runs on a pool of Python threads, one np.matmul per task
(NumPy releases the GIL inside BLAS): the same bits, at the cost of a thread hand-off per call.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit, prange
from numpy.lib.stride_tricks import as_strided

from .. import runtime
from . import blas
from .._chunks import chunk_bounds, num_chunks, sum_partials


MIN_ROWS_TO_SPLIT = 16384
ROWS_PER_CHUNK = 8192  # long enough for BLAS to run at full speed on each chunk
MIN_ROWS_PER_GEMM = 512  # tall_matmul: chunks this long still run near BLAS's speed; 1444 rows -> 2
BLOCK = 256  # blocks of the result's rows or columns: 728 -> 2 blocks, 2048 -> 8
MIN_BLOCK = 64  # ... but 2 blocks from 2 * MIN_BLOCK on, so that two threads share the work

M, N, K, A_AT, B_AT, C_AT = range(6)  # the columns of a task table


def num_tasks(count: int) -> int:
    """num_chunks(count), made even: two threads then take equal shares of the GEMM tasks (an odd
    count makes one of them run one more). It depends on the shape alone, so the bits do not
    change with the thread count."""
    chunks = num_chunks(count)
    return chunks + chunks % 2 if chunks > 1 else 1


def tall_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for a (P, K) and b (K, N) (b may be a transposed view); returns (P, N) in a's dtype."""
    a = np.ascontiguousarray(a)
    b = b.astype(a.dtype, copy=False)
    trans_b = not b.flags.c_contiguous and b.T.flags.c_contiguous  # a transposed view: a flag, no copy
    b_stored = b.T if trans_b else np.ascontiguousarray(b)
    rows, depth = a.shape
    cols = b.shape[1]
    out = np.empty((rows, cols), dtype=a.dtype)
    if rows >= 2 * MIN_ROWS_PER_GEMM:
        tasks = _tasks(ROWS_OF_A, num_tasks(rows // MIN_ROWS_PER_GEMM), rows, depth, cols, 0)
    else:  # short and wide: blocks of the result's columns, out[:, n0:n1] = a @ b[:, n0:n1]
        tasks = _tasks(COLUMNS_OF_RESULT, _blocks(cols), cols, depth, rows, depth if trans_b else 1)
    _run(False, trans_b, a, depth, b_stored, depth if trans_b else cols, out, cols, tasks)
    return out


def tall_transpose_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a.T @ b for a (P, M) and b (P, N), both C-contiguous; returns (M, N) in a's dtype."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b, dtype=a.dtype)
    rows, m = a.shape
    n = b.shape[1]
    if rows < MIN_ROWS_TO_SPLIT:  # short: split the result's rows, nothing to add
        out = np.empty((m, n), dtype=a.dtype)
        _run(True, False, a, m, b, n, out, n, _tasks(ROWS_OF_RESULT, _blocks(m), m, rows, n, 0))
        return out
    chunks = num_tasks(rows // ROWS_PER_CHUNK)
    partials = np.empty((chunks, m, n), dtype=a.dtype)
    _run(True, False, a, m, b, n, partials, n, _tasks(PARTIAL_SUMS, chunks, rows, m, n, 0))
    return sum_partials(partials)


def _blocks(extent: int) -> int:
    """How many blocks a split of the result's rows or columns uses (depends on the shape only)."""
    return num_tasks(max(1, min(2, extent // MIN_BLOCK), extent // BLOCK))


ROWS_OF_A, COLUMNS_OF_RESULT, ROWS_OF_RESULT, PARTIAL_SUMS = range(4)  # how _tasks splits a product


@njit(cache=True)
def _tasks(split, chunks, extent, d1, d2, b_step):
    """The (chunks, 6) task table: chunk c is [start, stop) of `extent` (chunk_bounds).

    ROWS_OF_A          a (extent, d1) @ b (d1, d2): rows start:stop of a and of the result
    COLUMNS_OF_RESULT  a (d2, d1) @ b (d1, extent): out[:, start:stop] = a @ b[:, start:stop],
                       b's column j b_step elements after column 0 (1, or d1 for a transposed b)
    ROWS_OF_RESULT     a (d1, extent).T @ b (d1, d2): out[start:stop] = a[:, start:stop].T @ b
    PARTIAL_SUMS       a (extent, d1).T @ b (extent, d2) over rows start:stop, into partials[c]
    """
    table = np.empty((chunks, 6), dtype=np.int64)
    for c in range(chunks):
        start, stop = chunk_bounds(c, extent, chunks)
        t = table[c]
        if split == ROWS_OF_A:
            t[M], t[N], t[K], t[A_AT], t[B_AT], t[C_AT] = stop - start, d2, d1, start * d1, 0, start * d2
        elif split == COLUMNS_OF_RESULT:
            t[M], t[N], t[K], t[A_AT], t[B_AT], t[C_AT] = d2, stop - start, d1, 0, start * b_step, start
        elif split == ROWS_OF_RESULT:
            t[M], t[N], t[K], t[A_AT], t[B_AT], t[C_AT] = stop - start, d2, d1, start, 0, start * d2
        else:
            t[M], t[N], t[K], t[A_AT], t[B_AT], t[C_AT] = d1, d2, stop - start, start * d1, start * d2, c * d1 * d2
    return table


def _run(trans_a, trans_b, a, lda, b, ldb, out, ldc, tasks) -> None:
    """out's task blocks = op(A) @ op(B), one single-threaded GEMM per task table row."""
    flat_a, flat_b, flat_c = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    if blas.available() and out.dtype in (np.float32, np.float64) and out.size and a.size and b.size:
        with runtime.single_threaded_blas():
            _gemm_tasks(trans_a, trans_b, flat_a, lda, flat_b, ldb, flat_c, ldc, tasks)
        return
    if not a.size or not b.size:  # an empty contraction: zeros (a GEMM would reject ld = 0)
        out[...] = 0
        return
    _run_in_pool(trans_a, trans_b, flat_a, lda, flat_b, ldb, flat_c, ldc, tasks)


# --------------------------------------------------------------------------- the Numba road

@njit(parallel=True, cache=True)
def _gemm_tasks(trans_a, trans_b, a, lda, b, ldb, c, ldc, tasks):
    """For every task: C[c_at:] (m, n, ld ldc) = op(A[a_at:]) @ op(B[b_at:]), one GEMM each."""
    size = a.itemsize
    for t in prange(tasks.shape[0]):
        blas.gemm(trans_a, trans_b, tasks[t, M], tasks[t, N], tasks[t, K],
                   a.ctypes.data + tasks[t, A_AT] * size, lda, b.ctypes.data + tasks[t, B_AT] * size, ldb,
                   0.0, c.ctypes.data + tasks[t, C_AT] * size, ldc, size)


# --------------------------------------------------------------------------- the fallback road

_pool: ThreadPoolExecutor | None = None  # grown on demand; dropped in a forked child (its threads stay behind)
_pool_size = 0


def _operand(flat, at, rows, cols, ld, transposed):
    """The (rows, cols) matrix op(X) of a task, as a view of the flat array (as the GEMM reads it)."""
    if transposed:
        return _operand(flat, at, cols, rows, ld, False).T
    size = flat.itemsize
    return as_strided(flat[at:], shape=(rows, cols), strides=(ld * size, size))


def _run_in_pool(trans_a, trans_b, a, lda, b, ldb, c, ldc, tasks) -> None:
    """The task table on numba.get_num_threads() Python threads, each np.matmul single-threaded.

    Thread t runs tasks t, t + T, t + 2T, ... (the calling thread is thread 0), so a call costs
    T - 1 hand-offs however many tasks there are; which thread runs a task never changes its bits.
    """
    global _pool, _pool_size

    def work(t: int) -> None:
        m, n, k, a_at, b_at, c_at = (int(v) for v in tasks[t])
        np.matmul(_operand(a, a_at, m, k, lda, trans_a), _operand(b, b_at, k, n, ldb, trans_b),
                  out=_operand(c, c_at, m, n, ldc, False))

    count = len(tasks)
    threads = min(numba.get_num_threads(), count)
    with runtime.single_threaded_blas():
        if threads == 1:
            for t in range(count):
                work(t)
            return
        if _pool is None or _pool_size < threads - 1:  # more threads than before: a larger pool
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool_size = threads - 1
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="npxception-gemm")

        def share(first: int) -> None:
            for t in range(first, count, threads):
                work(t)

        others = [_pool.submit(share, first) for first in range(1, threads)]
        share(0)
        for future in others:
            future.result()


def _forget_pool() -> None:
    global _pool, _pool_size
    _pool, _pool_size = None, 0


os.register_at_fork(after_in_child=_forget_pool)
