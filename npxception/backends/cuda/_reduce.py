"""Deterministic reductions over the rows of a (rows, C) matrix: per-channel sums, no atomics.

Batch norm, bias gradients and split-K GEMM all need `sum over rows` for every column. Stage 1: the
rows are cut into S fixed chunks; block (channel group, chunk) sums its chunk with 32 x 8 threads
(threadIdx.x = 32 consecutive channels, so every load is coalesced; threadIdx.y = 8 interleaved
rows), then the 8 row-partials are added in order through shared memory -> partials[chunk, c].
Stage 2 adds the S chunks in increasing order. The cut depends only on the shape, so the same
input gives bit-identical sums on every run and every GPU.
"""

from __future__ import annotations

from numba import cuda

from ._launch import (CHANNEL_THREADS, ROW_THREADS, THREADS, blocks_for, ceil_div, channel_block,
                      grid_yz, launch, per_dtype)
from .arrays import empty

TARGET_BLOCKS = 1024
MIN_ROWS_PER_CHUNK = 64


def chunks_for(rows: int, cols: int) -> tuple[int, int]:
    """(number of row chunks, rows per chunk) for a (rows, cols) reduction."""
    groups = ceil_div(cols, CHANNEL_THREADS)
    chunks = max(1, min(ceil_div(rows, MIN_ROWS_PER_CHUNK), TARGET_BLOCKS // groups,
                        grid_yz(rows)))
    per = ceil_div(rows, chunks)
    return ceil_div(rows, per), per


def _block_total(dtype):
    """Device function: add the ROW_THREADS partials of one channel in a fixed order."""

    @cuda.jit(device=True, inline="always")
    def block_total(scratch, value):
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        scratch[ty, tx] = value
        cuda.syncthreads()
        total = scratch[0, tx]
        for r in range(1, ROW_THREADS):
            total += scratch[r, tx]
        return total

    return block_total


def _make_column_sums(dtype):
    block_total = _block_total(dtype)

    @cuda.jit(cache=True)
    def column_sums_kernel(x, rows_per_chunk, partials):
        """partials[s, c] = sum of x[r, c] over the rows r of chunk s."""
        c = cuda.blockIdx.x * CHANNEL_THREADS + cuda.threadIdx.x
        s = cuda.blockIdx.y
        scratch = cuda.shared.array((ROW_THREADS, CHANNEL_THREADS), dtype)
        acc = dtype(0)
        if c < x.shape[1]:
            stop = min(x.shape[0], (s + 1) * rows_per_chunk)
            for r in range(s * rows_per_chunk + cuda.threadIdx.y, stop, ROW_THREADS):
                acc += x[r, c]
        total = block_total(scratch, acc)
        if cuda.threadIdx.y == 0 and c < x.shape[1]:
            partials[s, c] = total

    return column_sums_kernel


def _make_centered_squares(dtype):
    block_total = _block_total(dtype)

    @cuda.jit(cache=True)
    def centered_squares_kernel(x, center, rows_per_chunk, partials):
        """partials[s, c] = sum over chunk s of (x[r, c] - center[c])**2 (a variance's 2nd pass)."""
        c = cuda.blockIdx.x * CHANNEL_THREADS + cuda.threadIdx.x
        s = cuda.blockIdx.y
        scratch = cuda.shared.array((ROW_THREADS, CHANNEL_THREADS), dtype)
        acc = dtype(0)
        if c < x.shape[1]:
            mu = center[c]
            stop = min(x.shape[0], (s + 1) * rows_per_chunk)
            for r in range(s * rows_per_chunk + cuda.threadIdx.y, stop, ROW_THREADS):
                d = x[r, c] - mu
                acc += d * d
        total = block_total(scratch, acc)
        if cuda.threadIdx.y == 0 and c < x.shape[1]:
            partials[s, c] = total

    return centered_squares_kernel


def _make_sum_and_centered_dot(dtype):
    block_total = _block_total(dtype)

    @cuda.jit(cache=True)
    def sum_and_centered_dot_kernel(dy, x, center, rows_per_chunk, sums, dots):
        """sums[s, c] = sum dy[r, c];  dots[s, c] = sum dy[r, c] * (x[r, c] - center[c])."""
        c = cuda.blockIdx.x * CHANNEL_THREADS + cuda.threadIdx.x
        s = cuda.blockIdx.y
        scratch = cuda.shared.array((ROW_THREADS, CHANNEL_THREADS), dtype)
        acc_sum = dtype(0)
        acc_dot = dtype(0)
        if c < x.shape[1]:
            mu = center[c]
            stop = min(x.shape[0], (s + 1) * rows_per_chunk)
            for r in range(s * rows_per_chunk + cuda.threadIdx.y, stop, ROW_THREADS):
                g = dy[r, c]
                acc_sum += g
                acc_dot += g * (x[r, c] - mu)
        total_sum = block_total(scratch, acc_sum)
        cuda.syncthreads()   # every thread has read scratch before it is reused
        total_dot = block_total(scratch, acc_dot)
        if cuda.threadIdx.y == 0 and c < x.shape[1]:
            sums[s, c] = total_sum
            dots[s, c] = total_dot

    return sum_and_centered_dot_kernel


@cuda.jit(cache=True)
def sum_chunks_kernel(partials, scale, out):
    """out[i] = scale * sum_s partials[s, i], s in increasing order."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        total = partials[0, i]
        for s in range(1, partials.shape[0]):
            total += partials[s, i]
        out[i] = total * scale


_COLUMN_SUMS = per_dtype(_make_column_sums)
_CENTERED_SQUARES = per_dtype(_make_centered_squares)
_SUM_AND_DOT = per_dtype(_make_sum_and_centered_dot)


def sum_chunks(partials, scale: float = 1.0):
    """(S, C) partials -> (C,) device array: scale * the sum over S in a fixed order."""
    out = empty(partials.shape[1], partials.dtype)
    launch(sum_chunks_kernel, blocks_for(out.size), THREADS, partials,
           partials.dtype.type(scale), out)
    return out


def column_sums(x2d, scale: float = 1.0):
    """scale * x2d.sum(axis=0) for a (rows, C) device array -> (C,)."""
    rows, cols = x2d.shape
    chunks, per = chunks_for(rows, cols)
    partials = empty((chunks, cols), x2d.dtype)
    launch(_COLUMN_SUMS[x2d.dtype], (ceil_div(cols, CHANNEL_THREADS), chunks), channel_block(),
           x2d, per, partials)
    return sum_chunks(partials, scale)


def centered_squares(x2d, center, scale: float = 1.0):
    """scale * ((x2d - center)**2).sum(axis=0) -> (C,)."""
    rows, cols = x2d.shape
    chunks, per = chunks_for(rows, cols)
    partials = empty((chunks, cols), x2d.dtype)
    launch(_CENTERED_SQUARES[x2d.dtype], (ceil_div(cols, CHANNEL_THREADS), chunks),
           channel_block(), x2d, center, per, partials)
    return sum_chunks(partials, scale)


def sum_and_centered_dot(dy2d, x2d, center):
    """(dy2d.sum(axis=0), (dy2d * (x2d - center)).sum(axis=0)), both (C,)."""
    rows, cols = x2d.shape
    chunks, per = chunks_for(rows, cols)
    sums = empty((chunks, cols), x2d.dtype)
    dots = empty((chunks, cols), x2d.dtype)
    launch(_SUM_AND_DOT[x2d.dtype], (ceil_div(cols, CHANNEL_THREADS), chunks), channel_block(),
           dy2d, x2d, center, per, sums, dots)
    return sum_chunks(sums), sum_chunks(dots)
