"""ReLU and ELU on the GPU: grid-stride element-wise kernels on the flat arrays (any shape).

Same formulas as reference/activations.py; NaN propagates as in NumPy (relu keeps a NaN, the
backward passes 0 for it since NaN > 0 is false). Comparisons with the literal 0 and stores of 0
convert to the array's dtype; alpha arrives already in the array's dtype, so float32 arrays are
computed in float32 (expm1f, expf).
"""

from __future__ import annotations

import math

from numba import cuda

from ._launch import THREADS, blocks_for, launch
from .arrays import empty


@cuda.jit(cache=True)
def relu_kernel(x, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        v = x[i]
        if v < 0:
            y[i] = 0
        else:
            y[i] = v


@cuda.jit(cache=True)
def relu_backward_kernel(dy, x, dx):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        if x[i] > 0:
            dx[i] = dy[i]
        else:
            dx[i] = 0


@cuda.jit(cache=True)
def elu_kernel(x, alpha, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        v = x[i]
        if v > 0:
            y[i] = v
        else:
            y[i] = alpha * math.expm1(v)


@cuda.jit(cache=True)
def elu_backward_kernel(dy, x, alpha, dx):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        v = x[i]
        if v > 0:
            dx[i] = dy[i]
        else:
            dx[i] = dy[i] * (alpha * math.exp(v))


def _flat(a):
    return a.reshape(a.size)


def relu(x):
    y = empty(x.shape, x.dtype)
    launch(relu_kernel, blocks_for(x.size), THREADS, _flat(x), _flat(y))
    return y


def relu_backward(dy, x):
    dx = empty(x.shape, x.dtype)
    launch(relu_backward_kernel, blocks_for(x.size), THREADS, _flat(dy), _flat(x), _flat(dx))
    return dx


def elu(x, alpha):
    y = empty(x.shape, x.dtype)
    launch(elu_kernel, blocks_for(x.size), THREADS, _flat(x), x.dtype.type(alpha), _flat(y))
    return y


def elu_backward(dy, x, alpha):
    dx = empty(x.shape, x.dtype)
    launch(elu_backward_kernel, blocks_for(x.size), THREADS, _flat(dy), _flat(x),
           x.dtype.type(alpha), _flat(dx))
    return dx
