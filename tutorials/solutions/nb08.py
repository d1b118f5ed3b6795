"""Notebook 8: a ring allreduce on simulated ranks, its cost against an allgather's, and the
statistics that synchronised batch norm combines."""

import numpy as np


def ring_allreduce(data, rank, size, send, recv):
    """The sum over all `size` ranks of their `data` (1-D arrays of one length), as rank `rank` computes it.

    send(to, array) sends a copy of `array` to rank `to` and returns at once; recv(source) waits
    for the next array from rank `source`. Talk to your two neighbours only, cut `data` into `size`
    chunks (chunk c: elements [c * n // size, (c + 1) * n // size)), and send one chunk per message,
    2 * (size - 1) messages in all: a reduce-scatter, then an allgather. Every rank must end with
    the same bits.
    """
    # BEGIN SOLUTION
    n = len(data)
    total = np.array(data, copy=True)
    if size == 1:
        return total
    bounds = [(c * n // size, (c + 1) * n // size) for c in range(size)]
    right, left = (rank + 1) % size, (rank - 1) % size
    # Reduce-scatter: after step s, chunk (rank - s - 1) holds the sum of s + 2 ranks' parts.
    for step in range(size - 1):
        first, last = bounds[(rank - step) % size]
        send(right, total[first:last])
        first, last = bounds[(rank - step - 1) % size]
        total[first:last] += recv(left)
    # Now chunk (rank + 1) holds the sum of all ranks. Allgather: pass each finished chunk on.
    for step in range(size - 1):
        first, last = bounds[(rank + 1 - step) % size]
        send(right, total[first:last])
        first, last = bounds[(rank - step) % size]
        total[first:last] = recv(left)
    return total
    # END SOLUTION


def allreduce_seconds(algorithm, ranks, nbytes, latency, bandwidth):
    """Seconds one allreduce of `nbytes` per rank takes on `ranks` ranks in the alpha-beta model.

    algorithm "ring": the ring above; "allgather": every rank receives every other rank's whole
    array (in a ring, N - 1 steps) and sums them itself. A message of b bytes costs
    latency + b / bandwidth (seconds, bytes per second); the steps of a ring run one after another.
    """
    # BEGIN SOLUTION
    steps = ranks - 1
    if algorithm == "ring":
        return 2 * steps * latency + 2 * steps / ranks * nbytes / bandwidth
    if algorithm == "allgather":
        return steps * latency + steps * nbytes / bandwidth
    raise ValueError(f"algorithm must be 'ring' or 'allgather', got {algorithm!r}")
    # END SOLUTION


def combine_statistics(counts, means, variances):
    """(count, mean, variance) of the union of every rank's rows, from each rank's own.

    counts (R,): rows per rank (0 allowed); means and variances (R, C): each rank's per-channel
    mean and biased variance (dividing by its count). Returns the total count and the per-channel
    mean and biased variance (C,) of all the rows together, in float64.
    """
    # BEGIN SOLUTION
    counts = np.asarray(counts, dtype=np.float64)
    means, variances = np.asarray(means, dtype=np.float64), np.asarray(variances, dtype=np.float64)
    total = counts.sum()
    weights = (counts / total)[:, None]
    mean = (weights * means).sum(axis=0)
    variance = (weights * (variances + (means - mean) ** 2)).sum(axis=0)
    return total, mean, variance
    # END SOLUTION
