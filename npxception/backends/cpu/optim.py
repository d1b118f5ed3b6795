"""Optimizer updates, in place, each one fused Numba pass (the formulas: reference/optim.py).

SGD:      v = momentum * v - lr * g';  p += v                 (Nesterov: p += momentum * v - lr * g')
RMSprop:  ms = rho * ms + (1 - rho) * g'^2;  mom = momentum * mom + lr * g' / sqrt(ms + eps);
          p -= mom
Adam:     m = b1 * m + (1 - b1) * g';  v = b2 * v + (1 - b2) * g'^2   (step t counts from 1)
          p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
EMA:      average = decay * average + (1 - decay) * p
with g' = g + wd * p (L2), except decoupled AdamW, which adds lr * wd * p to the update.

The reference spends one NumPy pass per arithmetic step (five or more over every parameter);
these loops read each array once and write the updated ones once. The hyper-parameters are cast
to the parameter's dtype first, as in the reference, and each element sees the same operations in
the same order, so the results match it to rounding. Serial loops: the arrays are many and
mostly small, where thread start-up would cost more than it saves; SGD and Adam run arrays of
PARALLEL_SIZE elements or more (the paper network's large pointwise and dense kernels) through
a `prange` copy of the same loop, which gives the same bits (nothing is summed across elements);
the A/B is in docs/performance.md ("Why each tuned kernel").
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


PARALLEL_SIZE = 1 << 18


def sgd_update(p, g, velocity, lr, momentum, nesterov, weight_decay):
    t = p.dtype.type
    kernel = _sgd_parallel if p.size >= PARALLEL_SIZE else _sgd
    kernel(p.reshape(-1), g.reshape(-1), velocity.reshape(-1), t(lr), t(momentum), bool(nesterov),
         t(weight_decay))


def rmsprop_update(p, g, mean_square, mom, lr, rho, momentum, epsilon, weight_decay):
    t = p.dtype.type
    _rmsprop(p.reshape(-1), g.reshape(-1), mean_square.reshape(-1), mom.reshape(-1), t(lr), t(rho),
             t(1.0 - rho), t(momentum), t(epsilon), t(weight_decay))


def adam_update(p, g, m, v, lr, beta1, beta2, epsilon, weight_decay, decoupled, step):
    t = p.dtype.type
    l2 = t(0.0 if decoupled else weight_decay)
    decay = t(lr * weight_decay if decoupled else 0.0)
    kernel = _adam_parallel if p.size >= PARALLEL_SIZE else _adam
    kernel(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), t(lr), t(beta1),
          t(1.0 - beta1), t(beta2), t(1.0 - beta2), t(1.0 - beta1 ** step), t(1.0 - beta2 ** step),
          t(epsilon), l2, decay)


def ema_update(average, p, decay):
    t = p.dtype.type
    _ema(average.reshape(-1), p.reshape(-1), t(decay), t(1.0 - decay))


def sum_squares(a) -> float:
    return float(_sum_squares(a.reshape(-1)))


def scale_(a, s):
    a *= a.dtype.type(s)


@njit(cache=True, inline="always")
def _sgd_element(k, p, g, velocity, lr, momentum, nesterov, weight_decay):
    gk = g[k] + weight_decay * p[k] if weight_decay != 0 else g[k]
    velocity[k] = velocity[k] * momentum - lr * gk
    if nesterov:
        p[k] += momentum * velocity[k] - lr * gk
    else:
        p[k] += velocity[k]


@njit(cache=True)
def _sgd(p, g, velocity, lr, momentum, nesterov, weight_decay):
    for k in range(p.size):
        _sgd_element(k, p, g, velocity, lr, momentum, nesterov, weight_decay)


@njit(parallel=True, cache=True)
def _sgd_parallel(p, g, velocity, lr, momentum, nesterov, weight_decay):
    for k in prange(p.size):
        _sgd_element(k, p, g, velocity, lr, momentum, nesterov, weight_decay)


@njit(cache=True)
def _rmsprop(p, g, mean_square, mom, lr, rho, one_minus_rho, momentum, epsilon, weight_decay):
    for k in range(p.size):
        gk = g[k] + weight_decay * p[k] if weight_decay != 0 else g[k]
        mean_square[k] = mean_square[k] * rho + one_minus_rho * gk * gk
        mom[k] = mom[k] * momentum + lr * gk / math.sqrt(mean_square[k] + epsilon)
        p[k] -= mom[k]


@njit(cache=True, inline="always")
def _adam_element(k, p, g, m, v, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, bias1, bias2,
                  epsilon, l2, decay):
    gk = g[k] + l2 * p[k] if l2 != 0 else g[k]
    m[k] = m[k] * beta1 + one_minus_beta1 * gk
    v[k] = v[k] * beta2 + one_minus_beta2 * gk * gk
    update = lr * (m[k] / bias1) / (math.sqrt(v[k] / bias2) + epsilon)
    if decay != 0:
        update += decay * p[k]
    p[k] -= update


@njit(cache=True)
def _adam(p, g, m, v, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, bias1, bias2, epsilon,
          l2, decay):
    for k in range(p.size):
        _adam_element(k, p, g, m, v, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, bias1, bias2,
                      epsilon, l2, decay)


@njit(parallel=True, cache=True)
def _adam_parallel(p, g, m, v, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, bias1, bias2,
                   epsilon, l2, decay):
    for k in prange(p.size):
        _adam_element(k, p, g, m, v, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, bias1, bias2,
                      epsilon, l2, decay)


@njit(cache=True)
def _ema(average, p, decay, one_minus_decay):
    for k in range(p.size):
        average[k] = average[k] * decay + one_minus_decay * p[k]


@njit(cache=True)
def _sum_squares(a):
    total = 0.0
    for k in range(a.size):
        v = np.float64(a[k])
        total += v * v
    return total
