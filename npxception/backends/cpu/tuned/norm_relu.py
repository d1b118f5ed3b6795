"""Batch norm + ReLU, fused: the ReLU is applied as y is written and its mask [y > 0] as dy is read.

Run as two layers, the pair makes two more full passes over the activations (clamp forward, mask
backward) and keeps one more activation-sized tensor alive; fused, it costs the passes of batch
norm alone (../norm.py's kernels with relu=True). Xception follows most batch norms with a ReLU.
Benchmark: `benchmarks/bench_ops.py` (op `batch_norm_relu`). The definitions these must match are
the compositions in `npxception.compose`.
"""

from __future__ import annotations

from ..norm import apply_pass, backward_pass, train_pass


def batch_norm_relu_train(x, gamma, beta, epsilon):
    """relu(batch_norm_train(x)) in one pass: returns (y, batch_mean, batch_var)."""
    return train_pass(x, gamma, beta, epsilon, relu=True)


def batch_norm_relu_infer(x, gamma, beta, mean, var, epsilon):
    """relu(batch_norm_infer(x)) in one pass."""
    return apply_pass(x, gamma, beta, mean, var, epsilon, relu=True)


def batch_norm_relu_backward(dy, x, y, gamma, mean, var, epsilon, training):
    """(dx, dgamma, dbeta) for dy, the gradient of y = relu(batch_norm(x)) (y as returned)."""
    return backward_pass(dy, x, y, gamma, mean, var, epsilon, training, relu=True)
