"""Inverted dropout with the reference's counter-based mask, as one parallel Numba loop.

y = x * keep / (1 - rate), dx = dy * keep / (1 - rate), keep = u >= rate with u the top 24 bits of
splitmix64's finalizer applied to `flat index + (seed + 1) * golden` (reference/dropout.py defines
it). Every element's draw depends only on (seed, index), so the parallel loop needs no shared RNG
state and matches the reference and the CUDA kernel bit for bit. All the integer arithmetic is
uint64 and wraps modulo 2**64, as the hash expects; the shift amounts are uint64 too, because
mixing uint64 with int64 would promote to float64 and lose the low bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..reference.dropout import GOLDEN, MIX1, MIX2


def dropout(x, rate, seed):
    y = np.empty_like(x)
    offset = np.uint64(((seed + 1) * GOLDEN) % 2**64)
    _dropout(x.reshape(-1), float(rate), offset, y.reshape(-1))
    return y


def dropout_backward(dy, rate, seed):
    return dropout(dy, rate, seed)


@njit(parallel=True, cache=True)
def _dropout(x, rate, offset, y):
    scale = x.dtype.type(1.0 / (1.0 - rate))
    zero = x.dtype.type(0)
    mix1, mix2 = MIX1, MIX2
    s30, s27, s31, s40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)
    for k in prange(x.size):
        z = np.uint64(k) + offset
        z = (z ^ (z >> s30)) * mix1
        z = (z ^ (z >> s27)) * mix2
        z = z ^ (z >> s31)
        u = np.float64(z >> s40) * (1.0 / (1 << 24))
        y[k] = x[k] * scale if u >= rate else zero
