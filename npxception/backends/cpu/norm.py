"""Batch normalization over N, H, W per channel, as Numba kernels (the math: reference/norm.py).

Shapes: x (N, H, W, C); gamma, beta, mean, var (C,) -> y (N, H, W, C). The kernels see x as
(m, C) rows, m = N*H*W, with the channels contiguous.

Statistics: one pass over x sums d = x - shift and d^2 per channel (shift = x's first row, so the
sums stay small and var = E[d^2] - E[d]^2 loses no precision), in float64, per chunk of rows; the
chunk partials are added in fixed order (_chunks.py), so the result does not depend on the thread
count. The backward pass needs sum(dy) and sum(dy * (x - mean)) the same way, then one pass for

    dx = a * dy + b * (x - mean) + c      per channel:
    a = gamma * inv_std,  b = -gamma * inv_std^3 * sum(dy * (x - mean)) / m,
    c = -gamma * inv_std * sum(dy) / m

which is the reference's inv_std / m * (m*g - sum(g) - xhat * sum(g * xhat)) with g = dy * gamma,
expanded. In inference mode mean and var are constants and dx = a * dy.

Every pass takes a `relu` flag: tuned/norm_relu.py runs them with relu=True, the fused batch norm
+ ReLU of the dispatch table (the ReLU applied as y is written, its mask [y > 0] as dy is read).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._chunks import chunk_bounds, num_chunks, sum_partials


def batch_norm_train(x, gamma, beta, epsilon):
    return train_pass(x, gamma, beta, epsilon, relu=False)


def batch_norm_infer(x, gamma, beta, mean, var, epsilon):
    return apply_pass(x, gamma, beta, mean, var, epsilon, relu=False)


def batch_norm_backward(dy, x, gamma, mean, var, epsilon, training):
    return backward_pass(dy, x, x, gamma, mean, var, epsilon, training, relu=False)


def moving_average_update(moving, batch, momentum):
    return (moving * moving.dtype.type(momentum)
            + batch * moving.dtype.type(1.0 - momentum)).astype(moving.dtype, copy=False)


# --------------------------------------------------------------------------- drivers

def _rows(a):
    return a.reshape(-1, a.shape[-1])


def _inv_std(var, epsilon):
    return 1.0 / np.sqrt(var + var.dtype.type(epsilon))


def train_pass(x, gamma, beta, epsilon, relu):
    x2 = _rows(x)
    m = x2.shape[0]
    shift = x2[0].astype(np.float64)
    partials = np.zeros((num_chunks(m), 2, x2.shape[1]))
    _shifted_sums(x2, shift, partials)
    sums = sum_partials(partials)
    mean_d = sums[0] / m
    var = np.maximum(sums[1] / m - mean_d * mean_d, 0.0)  # rounding can dip below 0; NaN stays
    mean = (shift + mean_d).astype(x.dtype)
    var = var.astype(x.dtype)
    return apply_pass(x, gamma, beta, mean, var, epsilon, relu), mean, var


def apply_pass(x, gamma, beta, mean, var, epsilon, relu):
    y = np.empty_like(x)
    _normalize(_rows(x), mean, gamma * _inv_std(var, epsilon), beta, relu, _rows(y))
    return y


def backward_pass(dy, x, y, gamma, mean, var, epsilon, training, relu):
    """y is read only when relu is True (the ReLU's mask); pass x otherwise."""
    dy2, x2, y2 = _rows(dy), _rows(x), _rows(y)
    m = x2.shape[0]
    partials = np.zeros((num_chunks(m), 2, x2.shape[1]))
    _grad_sums(dy2, x2, y2, mean, relu, partials)
    sum_dy, sum_dy_xc = sum_partials(partials)
    inv_std = _inv_std(var, epsilon).astype(np.float64)
    g = gamma.astype(np.float64)
    dbeta = sum_dy
    dgamma = sum_dy_xc * inv_std
    a = g * inv_std
    b = -g * inv_std * inv_std * dgamma / m if training else np.zeros_like(a)
    c = -g * inv_std * dbeta / m if training else np.zeros_like(a)
    dx = np.empty_like(dy)
    t = x.dtype
    _input_grad(dy2, x2, y2, mean, a.astype(t), b.astype(t), c.astype(t), relu, bool(training),
                _rows(dx))
    return dx, dgamma.astype(t), dbeta.astype(t)


# --------------------------------------------------------------------------- kernels

@njit(parallel=True, cache=True)
def _shifted_sums(x, shift, partials):
    """partials[k] += (sum d, sum d^2) over chunk k's rows, d = x - shift, in float64."""
    rows, channels = x.shape
    chunks = partials.shape[0]
    for k in prange(chunks):
        s, q = partials[k, 0], partials[k, 1]
        start, stop = chunk_bounds(k, rows, chunks)
        for r in range(start, stop):
            xr = x[r]
            for c in range(channels):
                d = np.float64(xr[c]) - shift[c]
                s[c] += d
                q[c] += d * d


@njit(parallel=True, cache=True)
def _normalize(x, mean, scale, beta, relu, y):
    """y = (x - mean) * scale + beta (then max(., 0) when relu), row by row."""
    rows, channels = x.shape
    zero = x.dtype.type(0)
    for r in prange(rows):
        xr, yr = x[r], y[r]
        if relu:
            for c in range(channels):
                v = (xr[c] - mean[c]) * scale[c] + beta[c]
                yr[c] = zero if v <= zero else v
        else:
            for c in range(channels):
                yr[c] = (xr[c] - mean[c]) * scale[c] + beta[c]


@njit(parallel=True, cache=True)
def _grad_sums(dy, x, y, mean, relu, partials):
    """partials[k] += (sum g, sum g * (x - mean)) over chunk k, g = dy (masked by y > 0 if relu)."""
    rows, channels = x.shape
    chunks = partials.shape[0]
    for k in prange(chunks):
        s, sx = partials[k, 0], partials[k, 1]
        start, stop = chunk_bounds(k, rows, chunks)
        for r in range(start, stop):
            dyr, xr, yr = dy[r], x[r], y[r]
            for c in range(channels):
                g = np.float64(dyr[c])
                if relu and not yr[c] > 0:
                    g = 0.0
                s[c] += g
                sx[c] += g * (np.float64(xr[c]) - np.float64(mean[c]))


@njit(parallel=True, cache=True)
def _input_grad(dy, x, y, mean, a, b, c0, relu, training, dx):
    """dx = a * g + b * (x - mean) + c0 (training) or a * g (inference), g = dy masked if relu."""
    rows, channels = x.shape
    zero = dy.dtype.type(0)
    for r in prange(rows):
        dyr, xr, yr, out = dy[r], x[r], y[r], dx[r]
        for c in range(channels):
            g = dyr[c]
            if relu and not yr[c] > zero:
                g = zero
            if training:
                out[c] = a[c] * g + b[c] * (xr[c] - mean[c]) + c0[c]
            else:
                out[c] = a[c] * g

