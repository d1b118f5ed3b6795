"""Element-wise activations as parallel Numba loops over the flat array (reference/activations.py).

ReLU: y = max(x, 0);             dx = dy * [x > 0]
ELU:  y = x if x > 0 else alpha * (exp(x) - 1);   dx = dy if x > 0 else dy * alpha * exp(x)

The comparisons are written so that NaN goes where the reference sends it: relu keeps a NaN
(`v <= 0` is False for NaN), relu_backward zeroes it (`v > 0` is False), ELU's negative branch
turns it into NaN. Any shape: C-contiguous arrays are flattened with free reshapes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


def relu(x):
    y = np.empty_like(x)
    _relu(x.reshape(-1), y.reshape(-1))
    return y


def relu_backward(dy, x):
    dx = np.empty_like(dy)
    _relu_backward(dy.reshape(-1), x.reshape(-1), dx.reshape(-1))
    return dx


def elu(x, alpha):
    y = np.empty_like(x)
    _elu(x.reshape(-1), float(alpha), y.reshape(-1))
    return y


def elu_backward(dy, x, alpha):
    dx = np.empty_like(dy)
    _elu_backward(dy.reshape(-1), x.reshape(-1), float(alpha), dx.reshape(-1))
    return dx


@njit(parallel=True, cache=True)
def _relu(x, y):
    zero = x.dtype.type(0)
    for k in prange(x.size):
        v = x[k]
        y[k] = zero if v <= zero else v


@njit(parallel=True, cache=True)
def _relu_backward(dy, x, dx):
    zero = dy.dtype.type(0)
    for k in prange(dy.size):
        dx[k] = dy[k] if x[k] > zero else zero


@njit(parallel=True, cache=True)
def _elu(x, alpha, y):
    a = x.dtype.type(alpha)
    for k in prange(x.size):
        v = x[k]
        y[k] = v if v > 0 else a * math.expm1(v)


@njit(parallel=True, cache=True)
def _elu_backward(dy, x, alpha, dx):
    a = x.dtype.type(alpha)
    for k in prange(dy.size):
        v = x[k]
        dx[k] = dy[k] if v > 0 else dy[k] * (a * math.exp(v))
