"""Notebook 2: the strided depthwise backward pass, batch normalization's backward pass, the
softmax cross-entropy gradient."""

import numpy as np


def depthwise_backward_strided(dy, x, w, stride):
    """(dx, dw) of a depthwise convolution with stride `stride`, 'valid' padding, multiplier M.

    x (N, H, W, C), w (kh, kw, C, M), dy (N, Ho, Wo, C*M) with Ho = (H - kh) // stride + 1.
    """
    # BEGIN SOLUTION
    kh, kw, c_in, mult = w.shape
    n_img, ho, wo, _ = dy.shape
    dy5 = dy.reshape(n_img, ho, wo, c_in, mult)
    dx, dw = np.zeros_like(x), np.empty_like(w)
    for p in range(kh):
        for q in range(kw):
            # The pixels tap (p, q) read: rows p, p + s, ..., a strided slice of the input.
            rows = slice(p, p + (ho - 1) * stride + 1, stride)
            cols = slice(q, q + (wo - 1) * stride + 1, stride)
            dw[p, q] = np.einsum("nijc,nijcm->cm", x[:, rows, cols, :], dy5)
            dx[:, rows, cols, :] += (dy5 * w[p, q]).sum(axis=-1)
    return dx, dw
    # END SOLUTION


def batch_norm_backward_train(dy, x, gamma, epsilon):
    """(dx, dgamma, dbeta) of training-mode batch normalization over N, H, W.

    y = gamma * (x - mean) / sqrt(var + epsilon) + beta, with the batch mean and the biased batch
    variance of each channel; x, dy (N, H, W, C), gamma (C,).
    """
    # BEGIN SOLUTION
    axes = (0, 1, 2)
    mean = x.mean(axis=axes)
    sigma = np.sqrt(x.var(axis=axes) + epsilon)
    x_hat = (x - mean) / sigma
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    dx = gamma / sigma * (dy - dy.mean(axis=axes) - x_hat * (dy * x_hat).mean(axis=axes))
    return dx, dgamma, dbeta
    # END SOLUTION


def softmax_cross_entropy_backward(logits, labels):
    """d(mean cross-entropy)/d(logits) for logits (N, K) and integer labels (N,)."""
    # BEGIN SOLUTION
    shifted = logits - logits.max(axis=1, keepdims=True)   # exp never overflows
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    probs[np.arange(len(labels)), labels] -= 1.0
    return probs / len(labels)
    # END SOLUTION
