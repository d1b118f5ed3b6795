"""Element-wise activations; any shape.

ReLU: y = max(x, 0);             dx = dy * [x > 0]   (the subgradient at 0 is 0, as in PyTorch)
ELU:  y = x if x > 0 else alpha * (exp(x) - 1)
      dx = dy if x > 0 else dy * alpha * exp(x)      (expm1 keeps small negative x accurate)
"""

from __future__ import annotations

import numpy as np


def relu(x):
    return np.maximum(x, x.dtype.type(0))


def relu_backward(dy, x):
    return np.where(x > 0, dy, dy.dtype.type(0))


def elu(x, alpha):
    return np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(np.minimum(x, 0)))


def elu_backward(dy, x, alpha):
    return np.where(x > 0, dy, dy * (x.dtype.type(alpha) * np.exp(np.minimum(x, 0))))
