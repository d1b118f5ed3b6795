"""Softmax cross-entropy with integer labels and label smoothing, one Numba pass per row.

Shapes: logits (N, K), labels (N,) int64 in [0, K) -> loss, a 0-d array: the batch mean
(the math: reference/loss.py). With targets q = (1 - s) * onehot(label) + s / K and
log_softmax(z) = z - max(z) - log(sum(exp(z - max(z)))) (the shift keeps exp from overflowing):
    loss_n = -(s / K) * sum_k log_softmax(z)_k - (1 - s) * log_softmax(z)_label
    dloss/dz = (softmax(z) - q) / N
The per-row sums accumulate in float64. A NaN or Inf logit makes its row's loss and gradient NaN,
as in the reference (inf - inf is NaN).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def softmax_cross_entropy(logits, labels, label_smoothing):
    loss = _loss(logits, labels, float(label_smoothing))
    return np.asarray(loss, dtype=logits.dtype)


def softmax_cross_entropy_backward(dloss, logits, labels, label_smoothing):
    dlogits = np.empty_like(logits)
    scale = logits.dtype.type(float(dloss) / logits.shape[0])
    _gradient(logits, labels, float(label_smoothing), scale, dlogits)
    return dlogits


@njit(cache=True)
def _row_shift_and_lse(z):
    """(max(z), log(sum(exp(z - max(z))))) for one row of logits."""
    top = z[0]
    for k in range(1, z.size):
        if z[k] > top:
            top = z[k]
    total = 0.0
    for k in range(z.size):
        total += math.exp(np.float64(z[k]) - top)
    return np.float64(top), math.log(total)


@njit(cache=True)
def _loss(logits, labels, smoothing):
    n, k = logits.shape
    total = 0.0
    for r in range(n):
        z = logits[r]
        top, lse = _row_shift_and_lse(z)
        sum_log_p = 0.0
        for c in range(k):
            sum_log_p += np.float64(z[c]) - top - lse
        label_log_p = np.float64(z[labels[r]]) - top - lse
        total -= (smoothing / k) * sum_log_p + (1.0 - smoothing) * label_log_p
    return total / n


@njit(cache=True)
def _gradient(logits, labels, smoothing, scale, dlogits):
    n, k = logits.shape
    off = smoothing / k
    for r in range(n):
        z = logits[r]
        top, lse = _row_shift_and_lse(z)
        for c in range(k):
            q = off + (1.0 - smoothing if c == labels[r] else 0.0)
            dlogits[r, c] = (math.exp(np.float64(z[c]) - top - lse) - q) * scale
