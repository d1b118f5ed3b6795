"""Fixed work split for reductions, so results never depend on the thread count.

A parallel reduction (a filter gradient, a batch-norm statistic) must not `+=` into one shared
array from different `prange` iterations: that races. Instead the rows of work are cut into
`num_chunks(rows)` contiguous chunks, each chunk sums into its own partial, and the partials are
added in chunk order afterwards. The cut depends only on the shape, never on how many threads run,
so the same inputs give bitwise the same result on 1 thread or 16.
"""

from __future__ import annotations

from numba import njit

MAX_CHUNKS = 32  # enough to keep 16+ threads busy; each partial is small (one weight-sized array)


def num_chunks(rows: int) -> int:
    """How many partials a reduction over `rows` rows of work uses."""
    return max(1, min(rows, MAX_CHUNKS))


@njit(cache=True, inline="always")
def chunk_bounds(k, rows, chunks):
    """[start, stop) of chunk k when `rows` rows are cut into `chunks` near-equal pieces."""
    return (k * rows) // chunks, ((k + 1) * rows) // chunks


@njit(cache=True)
def sum_partials(partials):
    """Sum over axis 0, added in index order: a fixed order, so the result is deterministic."""
    total = partials[0].copy()
    for k in range(1, partials.shape[0]):
        total += partials[k]
    return total
