"""Softmax cross-entropy with integer labels and optional label smoothing.

Shapes: logits (N, K), labels (N,) int in [0, K) -> loss, a 0-d array: the mean over the batch.

Targets q = (1 - s) * onehot(label) + s / K.  loss = mean_n( -sum_k q_k * log_softmax(z)_k ),
log_softmax(z) = z - max(z) - log(sum(exp(z - max(z)))): subtracting the row maximum keeps exp
from overflowing, so logits of 1e4 are fine.
    dloss/dz = (softmax(z) - q) / N
"""

from __future__ import annotations

import numpy as np


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _targets(labels, k, label_smoothing, dtype):
    q = np.full((labels.shape[0], k), label_smoothing / k, dtype=dtype)
    q[np.arange(labels.shape[0]), labels] += dtype.type(1.0 - label_smoothing)
    return q


def softmax_cross_entropy(logits, labels, label_smoothing):
    q = _targets(labels, logits.shape[1], label_smoothing, logits.dtype)
    return np.asarray(-(q * _log_softmax(logits)).sum(axis=1).mean(), dtype=logits.dtype)


def softmax_cross_entropy_backward(dloss, logits, labels, label_smoothing):
    q = _targets(labels, logits.shape[1], label_smoothing, logits.dtype)
    scale = logits.dtype.type(float(dloss) / logits.shape[0])
    return (np.exp(_log_softmax(logits)) - q) * scale
