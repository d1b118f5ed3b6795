"""Optimizer updates on the GPU, in place, one fused element-wise kernel each (reference/optim.py).

Every scalar hyper-parameter arrives converted to the parameters' dtype, so float32 parameters are
updated in float32 arithmetic in the reference's order of operations. `sum_squares` (for gradient
clipping) reduces in float64: each block sums a fixed grid-stride share, then a fixed-order tree in
shared memory; the host adds the per-block partials, so the result is reproducible.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from ._launch import THREADS, blocks_for, launch
from .arrays import empty, to_numpy

SUM_BLOCKS = 256   # fixed, so the reduction order never depends on the device


def _flat(a):
    return a.reshape(a.size)


@cuda.jit(cache=True)
def sgd_kernel(p, g, velocity, lr, momentum, nesterov, weight_decay):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.size, step):
        gi = g[i]
        if weight_decay != 0:
            gi = gi + weight_decay * p[i]
        v = velocity[i] * momentum - lr * gi
        velocity[i] = v
        if nesterov:
            p[i] += momentum * v - lr * gi
        else:
            p[i] += v


@cuda.jit(cache=True)
def rmsprop_kernel(p, g, mean_square, mom, lr, rho, one_minus_rho, momentum, epsilon,
                   weight_decay):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.size, step):
        gi = g[i]
        if weight_decay != 0:
            gi = gi + weight_decay * p[i]
        ms = mean_square[i] * rho + one_minus_rho * gi * gi
        mean_square[i] = ms
        m = mom[i] * momentum + lr * gi / math.sqrt(ms + epsilon)
        mom[i] = m
        p[i] -= m


@cuda.jit(cache=True)
def adam_kernel(p, g, m, v, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, epsilon,
                coupled_decay, decoupled_decay, correction1, correction2):
    """coupled_decay: L2 added to the gradient (Adam); decoupled_decay: lr * wd (AdamW)."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.size, step):
        pi = p[i]
        gi = g[i]
        if coupled_decay != 0:
            gi = gi + coupled_decay * pi
        mi = m[i] * beta1 + one_minus_beta1 * gi
        vi = v[i] * beta2 + one_minus_beta2 * gi * gi
        m[i] = mi
        v[i] = vi
        update = lr * (mi / correction1) / (math.sqrt(vi / correction2) + epsilon)
        if decoupled_decay != 0:
            update += decoupled_decay * pi
        p[i] = pi - update


@cuda.jit(cache=True)
def ema_kernel(average, p, decay, one_minus_decay):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.size, step):
        average[i] = average[i] * decay + one_minus_decay * p[i]


@cuda.jit(cache=True)
def scale_kernel(a, s):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, a.size, step):
        a[i] *= s


@cuda.jit(cache=True)
def sum_squares_kernel(a, partials):
    scratch = cuda.shared.array(THREADS, float64)
    tid = cuda.threadIdx.x
    acc = 0.0
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, a.size, step):
        v = float64(a[i])
        acc += v * v
    scratch[tid] = acc
    cuda.syncthreads()
    width = THREADS // 2
    while width > 0:
        if tid < width:
            scratch[tid] += scratch[tid + width]
        cuda.syncthreads()
        width //= 2
    if tid == 0:
        partials[cuda.blockIdx.x] = scratch[0]


def sgd_update(p, g, velocity, lr, momentum, nesterov, weight_decay):
    t = p.dtype.type
    launch(sgd_kernel, blocks_for(p.size), THREADS, _flat(p), _flat(g), _flat(velocity), t(lr),
           t(momentum), bool(nesterov), t(weight_decay))


def rmsprop_update(p, g, mean_square, mom, lr, rho, momentum, epsilon, weight_decay):
    t = p.dtype.type
    launch(rmsprop_kernel, blocks_for(p.size), THREADS, _flat(p), _flat(g), _flat(mean_square),
           _flat(mom), t(lr), t(rho), t(1.0 - rho), t(momentum), t(epsilon), t(weight_decay))


def adam_update(p, g, m, v, lr, beta1, beta2, epsilon, weight_decay, decoupled, step):
    t = p.dtype.type
    coupled = 0.0 if decoupled else weight_decay
    decoupled_decay = lr * weight_decay if decoupled else 0.0
    launch(adam_kernel, blocks_for(p.size), THREADS, _flat(p), _flat(g), _flat(m), _flat(v),
           t(lr), t(beta1), t(1.0 - beta1), t(beta2), t(1.0 - beta2), t(epsilon), t(coupled),
           t(decoupled_decay), t(1.0 - beta1 ** step), t(1.0 - beta2 ** step))


def ema_update(average, p, decay):
    t = p.dtype.type
    launch(ema_kernel, blocks_for(p.size), THREADS, _flat(average), _flat(p), t(decay),
           t(1.0 - decay))


def sum_squares(a) -> float:
    blocks = min(blocks_for(a.size), SUM_BLOCKS)
    partials = empty(blocks, np.float64)
    launch(sum_squares_kernel, blocks, THREADS, _flat(a), partials)
    return float(np.sum(to_numpy(partials)))


def scale_(a, s):
    launch(scale_kernel, blocks_for(a.size), THREADS, _flat(a), a.dtype.type(s))
