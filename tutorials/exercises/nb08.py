"""Your turn: write each function in place of its `raise NotImplementedError`, then grade it
with `pytest tutorials/exercises/test_nb08.py`. Written from tutorials/solutions/nb08.py by
build_notebooks.py (rebuilding overwrites this file: keep your answers elsewhere if you rebuild)."""
# ruff: noqa: F401  (the solutions' imports stay, for your code to use)

import numpy as np


def ring_allreduce(data, rank, size, send, recv):
    """The sum over all `size` ranks of their `data` (1-D arrays of one length), as rank `rank` computes it.

    send(to, array) sends a copy of `array` to rank `to` and returns at once; recv(source) waits
    for the next array from rank `source`. Talk to your two neighbours only, cut `data` into `size`
    chunks (chunk c: elements [c * n // size, (c + 1) * n // size)), and send one chunk per message,
    2 * (size - 1) messages in all: a reduce-scatter, then an allgather. Every rank must end with
    the same bits.
    """
    raise NotImplementedError("your turn")


def allreduce_seconds(algorithm, ranks, nbytes, latency, bandwidth):
    """Seconds one allreduce of `nbytes` per rank takes on `ranks` ranks in the alpha-beta model.

    algorithm "ring": the ring above; "allgather": every rank receives every other rank's whole
    array (in a ring, N - 1 steps) and sums them itself. A message of b bytes costs
    latency + b / bandwidth (seconds, bytes per second); the steps of a ring run one after another.
    """
    raise NotImplementedError("your turn")


def combine_statistics(counts, means, variances):
    """(count, mean, variance) of the union of every rank's rows, from each rank's own.

    counts (R,): rows per rank (0 allowed); means and variances (R, C): each rank's per-channel
    mean and biased variance (dividing by its count). Returns the total count and the per-channel
    mean and biased variance (C,) of all the rows together, in float64.
    """
    raise NotImplementedError("your turn")
