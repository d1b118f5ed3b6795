"""Optimizer updates, in place (Keras 3's formulas), and the helpers gradient clipping needs.

All take the parameter `p`, its gradient `g` and the optimizer's slots, and update `p` and the
slots in place. L2 weight decay (the paper's 1e-5) is added to the gradient: g' = g + wd * p,
except in AdamW (`decoupled=True`), where p -= lr * wd * p is applied beside the Adam step.

SGD:      v = momentum * v - lr * g';  p += v                 (Nesterov: p += momentum * v - lr * g')
RMSprop:  ms = rho * ms + (1 - rho) * g'^2;  mom = momentum * mom + lr * g' / sqrt(ms + eps);
          p -= mom
Adam:     m = b1 * m + (1 - b1) * g';  v = b2 * v + (1 - b2) * g'^2   (step t counts from 1)
          p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
EMA:      average = decay * average + (1 - decay) * p                (exponential moving average)
"""

from __future__ import annotations

import numpy as np


def _decayed(p, g, weight_decay):
    return g + p.dtype.type(weight_decay) * p if weight_decay else g


def sgd_update(p, g, velocity, lr, momentum, nesterov, weight_decay):
    t = p.dtype.type
    g = _decayed(p, g, weight_decay)
    velocity *= t(momentum)
    velocity -= t(lr) * g
    if nesterov:
        p += t(momentum) * velocity - t(lr) * g
    else:
        p += velocity


def rmsprop_update(p, g, mean_square, mom, lr, rho, momentum, epsilon, weight_decay):
    t = p.dtype.type
    g = _decayed(p, g, weight_decay)
    mean_square *= t(rho)
    mean_square += t(1.0 - rho) * g * g
    mom *= t(momentum)
    mom += t(lr) * g / np.sqrt(mean_square + t(epsilon))
    p -= mom


def adam_update(p, g, m, v, lr, beta1, beta2, epsilon, weight_decay, decoupled, step):
    t = p.dtype.type
    if not decoupled:
        g = _decayed(p, g, weight_decay)
    m *= t(beta1)
    m += t(1.0 - beta1) * g
    v *= t(beta2)
    v += t(1.0 - beta2) * g * g
    m_hat = m / t(1.0 - beta1 ** step)
    v_hat = v / t(1.0 - beta2 ** step)
    update = t(lr) * m_hat / (np.sqrt(v_hat) + t(epsilon))
    if decoupled and weight_decay:
        update += t(lr * weight_decay) * p
    p -= update


def ema_update(average, p, decay):
    t = p.dtype.type
    average *= t(decay)
    average += t(1.0 - decay) * p


def sum_squares(a) -> float:
    flat = a.reshape(-1).astype(np.float64, copy=False)
    return float(flat @ flat)


def scale_(a, s):
    a *= a.dtype.type(s)
