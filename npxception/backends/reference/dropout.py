"""Inverted dropout with a counter-based mask, identical on every backend.

y = x * keep / (1 - rate), keep ~ Bernoulli(1 - rate), so E[y] = x and inference needs no rescale.
dx = dy * keep / (1 - rate), with the *same* mask: it is recomputed from the seed, not stored.

The mask is a pure function of (seed, flat index): splitmix64's finalizer hashes
`index + (seed + 1) * golden`, and its top 24 bits, u = bits / 2**24 (exact in float32 and float64),
decide `keep = u >= rate`. Any thread on any device can draw element i without shared RNG state,
which is what the Numba CPU and CUDA kernels do.
"""

from __future__ import annotations

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def keep_mask(size: int, rate: float, seed: int) -> np.ndarray:
    """Boolean keep-mask of `size` elements (flat, C order)."""
    offset = np.uint64(((seed + 1) * GOLDEN) % 2**64)  # wraps like uint64 arithmetic in a kernel
    z = np.arange(size, dtype=np.uint64) + offset
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) * (1.0 / (1 << 24))
    return u >= rate


def dropout(x, rate, seed):
    scale = x.dtype.type(1.0 / (1.0 - rate))
    keep = keep_mask(x.size, rate, seed).reshape(x.shape)
    return np.where(keep, x * scale, x.dtype.type(0))


def dropout_backward(dy, rate, seed):
    return dropout(dy, rate, seed)
