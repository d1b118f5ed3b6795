"""Inverted dropout on the GPU with the counter-based mask of reference/dropout.py, bit for bit.

Each thread hashes (seed, flat index) with splitmix64's finalizer in uint64 arithmetic (which
wraps, exactly like the NumPy uint64 reference), so the mask needs no RNG state and no memory: the
backward pass redraws the same mask from the same seed. All constants are uint64 so no operation
is promoted to float. The reference keeps an element when u = bits / 2**24 >= rate; as bits is an
integer and rate * 2**24 is exact in float64, that is bits >= ceil(rate * 2**24): one integer
comparison against a threshold computed once on the host.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ..reference.dropout import GOLDEN, MIX1, MIX2
from ._launch import THREADS, blocks_for, launch
from .arrays import empty

SHIFT30 = np.uint64(30)
SHIFT27 = np.uint64(27)
SHIFT31 = np.uint64(31)
SHIFT40 = np.uint64(40)


@cuda.jit(device=True, inline="always")
def keep(index, offset, threshold):
    """True when element `index` survives: its top 24 hash bits are >= threshold."""
    z = np.uint64(index) + offset
    z = (z ^ (z >> SHIFT30)) * MIX1
    z = (z ^ (z >> SHIFT27)) * MIX2
    z = z ^ (z >> SHIFT31)
    return (z >> SHIFT40) >= threshold


@cuda.jit(cache=True)
def dropout_kernel(x, offset, threshold, scale, y):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        if keep(i, offset, threshold):
            y[i] = x[i] * scale
        else:
            y[i] = 0


def dropout(x, rate, seed):
    y = empty(x.shape, x.dtype)
    offset = np.uint64(((seed + 1) * GOLDEN) % 2**64)
    threshold = np.uint64(math.ceil(rate * (1 << 24)))
    launch(dropout_kernel, blocks_for(x.size), THREADS, x.reshape(x.size), offset, threshold,
           x.dtype.type(1.0 / (1.0 - rate)), y.reshape(y.size))
    return y


def dropout_backward(dy, rate, seed):
    return dropout(dy, rate, seed)
