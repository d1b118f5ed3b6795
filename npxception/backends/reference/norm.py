"""Batch normalization over N, H, W for each channel (Keras's BatchNormalization, NHWC).

Shapes: x (N, H, W, C); gamma, beta, mean, var (C,) -> y (N, H, W, C).

    xhat = (x - mean) / sqrt(var + eps),   y = gamma * xhat + beta

Training uses the batch's mean and *biased* variance (divide by m = N*H*W) and updates the moving
statistics as Keras does: moving = moving * momentum + batch * (1 - momentum). Inference uses the
moving statistics. Backward in training mode, where mean and var depend on x (the standard result of
pushing dy through xhat, var and mean; with g = dy * gamma):
    dx = inv_std / m * (m * g - sum(g) - xhat * sum(g * xhat))
    dgamma = sum(dy * xhat),  dbeta = sum(dy)
In inference mode mean and var are constants, so dx = g * inv_std.
"""

from __future__ import annotations

import numpy as np

_AXES = (0, 1, 2)


def batch_norm_train(x, gamma, beta, epsilon):
    mean = x.mean(axis=_AXES)
    var = x.var(axis=_AXES)
    return batch_norm_infer(x, gamma, beta, mean, var, epsilon), mean, var


def batch_norm_infer(x, gamma, beta, mean, var, epsilon):
    inv_std = 1.0 / np.sqrt(var + x.dtype.type(epsilon))
    return (x - mean) * (gamma * inv_std) + beta


def batch_norm_backward(dy, x, gamma, mean, var, epsilon, training):
    inv_std = 1.0 / np.sqrt(var + x.dtype.type(epsilon))
    xhat = (x - mean) * inv_std
    dgamma = (dy * xhat).sum(axis=_AXES)
    dbeta = dy.sum(axis=_AXES)
    g = dy * gamma
    if not training:
        return g * inv_std, dgamma, dbeta
    m = x.shape[0] * x.shape[1] * x.shape[2]
    # sum(g) = gamma * dbeta and sum(g * xhat) = gamma * dgamma: reuse them.
    dx = (inv_std / m) * (m * g - gamma * dbeta - xhat * (gamma * dgamma))
    return dx.astype(x.dtype, copy=False), dgamma, dbeta


def moving_average_update(moving, batch, momentum):
    return (moving * moving.dtype.type(momentum)
            + batch * moving.dtype.type(1.0 - momentum)).astype(moving.dtype, copy=False)
