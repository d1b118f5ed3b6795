"""Softmax cross-entropy on the GPU (math: reference/loss.py), deterministic.

logits (N, K), labels (N,) int64 -> loss, a 0-d device array (the batch mean).
One thread per row computes the row's log-sum-exp with the maximum subtracted (so large logits do
not overflow) and its loss, -sum_k q_k (z_k - lse), q the smoothed one-hot target; a single thread
then averages the N row losses in order (N is a batch size: small, and a fixed order makes the
result reproducible). The backward is element-wise over (N, K) with coalesced rows:
    dlogits = (exp(z - lse) - q) * dloss / N
"""

from __future__ import annotations

import math

from numba import cuda

from ._launch import THREADS, blocks_for, launch, per_dtype
from .arrays import empty


def _make_row_lse(dtype):
    @cuda.jit(device=True, inline="always")
    def row_lse(z, n):
        k = z.shape[1]
        top = z[n, 0]
        for j in range(1, k):
            top = max(top, z[n, j])
        total = dtype(0)
        for j in range(k):
            total += math.exp(z[n, j] - top)
        return top + math.log(total)

    return row_lse


def _make_row_losses(dtype):
    row_lse = _make_row_lse(dtype)

    @cuda.jit(cache=True)
    def row_losses_kernel(z, labels, on_value, off_value, losses):
        """losses[n] = -sum_k q[n, k] (z[n, k] - lse[n]); q = off_value, + on_value at the label."""
        n = cuda.grid(1)
        if n >= z.shape[0]:
            return
        lse = row_lse(z, n)
        total = dtype(0)
        for j in range(z.shape[1]):
            total += off_value * (z[n, j] - lse)
        total += on_value * (z[n, labels[n]] - lse)
        losses[n] = -total

    return row_losses_kernel


def _make_mean(dtype):
    @cuda.jit(cache=True)
    def mean_kernel(values, out):
        if cuda.grid(1) == 0:
            total = dtype(0)
            for i in range(values.size):
                total += values[i]
            out[0] = total / dtype(values.size)

    return mean_kernel


def _make_row_lse_kernel(dtype):
    row_lse = _make_row_lse(dtype)

    @cuda.jit(cache=True)
    def row_lse_kernel(z, lse):
        n = cuda.grid(1)
        if n < z.shape[0]:
            lse[n] = row_lse(z, n)

    return row_lse_kernel


@cuda.jit(cache=True)
def softmax_minus_targets_kernel(z, labels, lse, on_value, off_value, scale, dz):
    n_rows, k = z.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, n_rows * k, step):
        n = idx // k
        j = idx - n * k
        q = off_value
        if j == labels[n]:
            q += on_value
        dz[n, j] = (math.exp(z[n, j] - lse[n]) - q) * scale


_ROW_LOSSES = per_dtype(_make_row_losses)
_MEAN = per_dtype(_make_mean)
_ROW_LSE = per_dtype(_make_row_lse_kernel)


def _target_values(k: int, label_smoothing: float, t):
    """(extra weight on the label, weight on every class): q = off + on * onehot."""
    return t(1.0 - label_smoothing), t(label_smoothing / k)


def softmax_cross_entropy(logits, labels, label_smoothing):
    n, k = logits.shape
    on, off = _target_values(k, label_smoothing, logits.dtype.type)
    losses = empty(n, logits.dtype)
    launch(_ROW_LOSSES[logits.dtype], blocks_for(n), THREADS, logits, labels, on, off, losses)
    loss = empty(1, logits.dtype)
    launch(_MEAN[logits.dtype], 1, 1, losses, loss)
    return loss.reshape(())


def softmax_cross_entropy_backward(dloss, logits, labels, label_smoothing):
    n, k = logits.shape
    t = logits.dtype.type
    on, off = _target_values(k, label_smoothing, t)
    lse = empty(n, logits.dtype)
    launch(_ROW_LSE[logits.dtype], blocks_for(n), THREADS, logits, lse)
    dz = empty(logits.shape, logits.dtype)
    launch(softmax_minus_targets_kernel, blocks_for(n * k), THREADS, logits, labels, lse, on, off,
           t(float(dloss) / n), dz)
    return dz
