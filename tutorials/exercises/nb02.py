"""Your turn: write each function in place of its `raise NotImplementedError`, then grade it
with `pytest tutorials/exercises/test_nb02.py`. Written from tutorials/solutions/nb02.py by
build_notebooks.py (rebuilding overwrites this file: keep your answers elsewhere if you rebuild)."""
# ruff: noqa: F401  (the solutions' imports stay, for your code to use)

import numpy as np


def depthwise_backward_strided(dy, x, w, stride):
    """(dx, dw) of a depthwise convolution with stride `stride`, 'valid' padding, multiplier M.

    x (N, H, W, C), w (kh, kw, C, M), dy (N, Ho, Wo, C*M) with Ho = (H - kh) // stride + 1.
    """
    raise NotImplementedError("your turn")


def batch_norm_backward_train(dy, x, gamma, epsilon):
    """(dx, dgamma, dbeta) of training-mode batch normalization over N, H, W.

    y = gamma * (x - mean) / sqrt(var + epsilon) + beta, with the batch mean and the biased batch
    variance of each channel; x, dy (N, H, W, C), gamma (C,).
    """
    raise NotImplementedError("your turn")


def softmax_cross_entropy_backward(logits, labels):
    """d(mean cross-entropy)/d(logits) for logits (N, K) and integer labels (N,)."""
    raise NotImplementedError("your turn")
