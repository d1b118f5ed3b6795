"""Launch geometry shared by the kernels of this backend, and the one place kernels are launched.

Element-wise kernels use grid-stride loops: `blocks_for(n)` blocks of `THREADS` threads, capped so a
huge tensor reuses the same threads instead of asking for millions of blocks. Kernels whose layout
matters (depthwise, pooling, reductions, GEMM) choose their own 2-D or 3-D geometry next to the
kernel, with the reason written there.
"""

from __future__ import annotations

import numpy as np
from numba import float32, float64

THREADS = 256
MAX_BLOCKS = 65536


def blocks_for(n: int, threads: int = THREADS) -> int:
    """Blocks for a grid-stride loop over n elements."""
    return max(1, min(-(-n // threads), MAX_BLOCKS))


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def launch(kernel, grid, block, *args) -> None:
    """Run `kernel[grid, block](*args)` on the default stream (asynchronous, in launch order)."""
    kernel[grid, block](*args)


# Kernels that need their element type at compile time (typed constants, `cuda.local` and
# `cuda.shared` arrays) are built once per dtype by a factory; `kernels[x.dtype]` picks one.
DTYPES = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}


def per_dtype(make) -> dict:
    """{np.dtype: kernel} for float32 and float64, from make(numba_float_type)."""
    return {np_dtype: make(nb_type) for np_dtype, nb_type in DTYPES.items()}


# Channel-major 2-D geometry for NHWC work: threadIdx.x walks 32 consecutive channels (one warp
# reads 128 contiguous bytes), threadIdx.y walks 8 positions along the next axis.
CHANNEL_THREADS = 32
ROW_THREADS = 8
MAX_GRID_YZ = 65535   # CUDA's limit on gridDim.y and gridDim.z: larger extents loop (grid-stride)


def channel_block() -> tuple[int, int]:
    return (CHANNEL_THREADS, ROW_THREADS)


def grid_yz(n: int) -> int:
    return max(1, min(n, MAX_GRID_YZ))
