"""Keras's default initializers, so a fresh model starts from the same distribution as Keras's.

Glorot (Xavier) uniform draws from U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)). Keras
computes the fans from the kernel's shape alone: for a 4-D kernel (kh, kw, a, b) the receptive field
is kh * kw, fan_in = a * kh * kw and fan_out = b * kh * kw. That one rule covers
  conv       (kh, kw, Cin, Cout)     fan_in = Cin*kh*kw,  fan_out = Cout*kh*kw
  depthwise  (kh, kw, C, M)          fan_in = C*kh*kw,    fan_out = M*kh*kw
  pointwise  (1, 1, Cin, Cout)       fan_in = Cin,        fan_out = Cout
  dense      (Cin, Cout)             fan_in = Cin,        fan_out = Cout
Biases and BatchNorm's beta and moving mean start at zeros; gamma and moving variance at ones.
"""

from __future__ import annotations

import numpy as np


def glorot_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel shape, as Keras computes them."""
    if len(shape) < 2:
        raise ValueError(f"glorot fans need a kernel of at least 2 dims, got shape {shape}")
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out)), float64."""
    fan_in, fan_out = glorot_fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def zeros(shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape)


def ones(shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape)
