"""Batch normalization on the GPU over N, H, W per channel (math: reference/norm.py).

x (N, H, W, C) is viewed as a (rows = N*H*W, C) matrix. Statistics come from the deterministic
column reductions of _reduce.py, two passes for the variance (mean first, then the mean of squared
deviations: no cancellation, unlike E[x^2] - E[x]^2). The element-wise kernels use the 32 x 8
channel-major layout: a warp covers 32 consecutive channels of one row (coalesced) and each
thread loads its channel's statistics once, then walks rows.
"""

from __future__ import annotations

import math

from numba import cuda

from ._launch import (CHANNEL_THREADS, ROW_THREADS, THREADS, blocks_for, ceil_div, channel_block,
                      grid_yz, launch, per_dtype)
from ._reduce import centered_squares, column_sums, sum_and_centered_dot
from .arrays import empty


def _rows(x):
    """(N, H, W, C) -> the (N*H*W, C) view."""
    return x.reshape(x.size // x.shape[3], x.shape[3])


def _geometry(rows: int, cols: int):
    return (ceil_div(cols, CHANNEL_THREADS), grid_yz(ceil_div(rows, ROW_THREADS))), channel_block()


def _make_normalize(dtype):
    @cuda.jit(cache=True)
    def normalize_kernel(x, gamma, beta, mean, var, epsilon, y):
        """y = (x - mean) * (gamma / sqrt(var + eps)) + beta, on (rows, C)."""
        c = cuda.blockIdx.x * CHANNEL_THREADS + cuda.threadIdx.x
        if c >= x.shape[1]:
            return
        scale = gamma[c] * (dtype(1) / math.sqrt(var[c] + epsilon))
        mu = mean[c]
        shift = beta[c]
        for r in range(cuda.blockIdx.y * ROW_THREADS + cuda.threadIdx.y, x.shape[0],
                       cuda.gridDim.y * ROW_THREADS):
            y[r, c] = (x[r, c] - mu) * scale + shift

    return normalize_kernel


def _make_normalize_backward(dtype):
    @cuda.jit(cache=True)
    def normalize_backward_kernel(dy, x, gamma, mean, var, epsilon, dbeta, dgamma, training, dx):
        """Training: dx = inv_std / m * (m * g - gamma * dbeta - xhat * gamma * dgamma) with
        g = dy * gamma (sum g = gamma * dbeta, sum g * xhat = gamma * dgamma); inference:
        dx = g * inv_std."""
        c = cuda.blockIdx.x * CHANNEL_THREADS + cuda.threadIdx.x
        if c >= x.shape[1]:
            return
        m = dtype(x.shape[0])
        inv_std = dtype(1) / math.sqrt(var[c] + epsilon)
        gc = gamma[c]
        mu = mean[c]
        sum_g = gc * dbeta[c]
        sum_g_xhat = gc * dgamma[c]
        for r in range(cuda.blockIdx.y * ROW_THREADS + cuda.threadIdx.y, x.shape[0],
                       cuda.gridDim.y * ROW_THREADS):
            g = dy[r, c] * gc
            if training:
                xhat = (x[r, c] - mu) * inv_std
                dx[r, c] = (inv_std / m) * (m * g - sum_g - xhat * sum_g_xhat)
            else:
                dx[r, c] = g * inv_std

    return normalize_backward_kernel


def _make_scale_by_inv_std(dtype):
    @cuda.jit(cache=True)
    def scale_by_inv_std_kernel(values, var, epsilon, out):
        """out[c] = values[c] / sqrt(var[c] + eps): sum dy * (x - mean) -> dgamma = sum dy * xhat."""
        start, step = cuda.grid(1), cuda.gridsize(1)
        for c in range(start, out.size, step):
            out[c] = values[c] * (dtype(1) / math.sqrt(var[c] + epsilon))

    return scale_by_inv_std_kernel


@cuda.jit(cache=True)
def moving_average_kernel(moving, batch, momentum, one_minus_momentum, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        out[i] = moving[i] * momentum + batch[i] * one_minus_momentum


_NORMALIZE = per_dtype(_make_normalize)
_NORMALIZE_BACKWARD = per_dtype(_make_normalize_backward)
_SCALE_BY_INV_STD = per_dtype(_make_scale_by_inv_std)


def batch_norm_train(x, gamma, beta, epsilon):
    rows = _rows(x)
    m = rows.shape[0]
    mean = column_sums(rows, 1.0 / m)
    var = centered_squares(rows, mean, 1.0 / m)
    return batch_norm_infer(x, gamma, beta, mean, var, epsilon), mean, var


def batch_norm_infer(x, gamma, beta, mean, var, epsilon):
    rows = _rows(x)
    y = empty(x.shape, x.dtype)
    grid, block = _geometry(*rows.shape)
    launch(_NORMALIZE[x.dtype], grid, block, rows, gamma, beta, mean, var, x.dtype.type(epsilon),
           _rows(y))
    return y


def batch_norm_backward(dy, x, gamma, mean, var, epsilon, training):
    rows, dy_rows = _rows(x), _rows(dy)
    eps = x.dtype.type(epsilon)
    dbeta, centered_dot = sum_and_centered_dot(dy_rows, rows, mean)
    dgamma = empty(gamma.shape, x.dtype)
    launch(_SCALE_BY_INV_STD[x.dtype], blocks_for(dgamma.size), THREADS, centered_dot, var, eps,
           dgamma)
    dx = empty(x.shape, x.dtype)
    grid, block = _geometry(*rows.shape)
    launch(_NORMALIZE_BACKWARD[x.dtype], grid, block, dy_rows, rows, gamma, mean, var, eps, dbeta,
           dgamma, bool(training), _rows(dx))
    return dx, dgamma, dbeta


def moving_average_update(moving, batch, momentum):
    out = empty(moving.shape, moving.dtype)
    t = moving.dtype.type
    launch(moving_average_kernel, blocks_for(out.size), THREADS, moving, batch, t(momentum),
           t(1.0 - momentum), out)
    return out
