"""The Numba CPU backend: the reference's operations as parallel, cache-compiled `@njit` kernels.

Same files and function names as `reference/`, so each operation reads side by side; every file's
docstring says how its kernels split the work (always over what owns the output, so no two threads
write one element) and why. Pointwise and im2col convolutions are GEMMs (gemm.py: tables of
fixed tasks in a `prange`, each a single-threaded call of NumPy's OpenBLAS, _blas.py; the 3x3
convolutions build im2col block by block inside them, conv.py); the narrowest stem convolution
runs direct kernels (conv_direct.py). Optional ops of the contract (`contract.FusedOps`):
`conv2d_filter_grad`, `max_pool2d_with_taps`, `max_pool2d_backward_taps`,
`batch_norm_relu_train`, `batch_norm_relu_infer`, `batch_norm_relu_backward`.
Threads: `npxception.set_num_threads(n)` sets Numba's and BLAS's.

Kernels compile on first use for the dtype they meet (float32 or float64) and are cached on disk
(`cache=True`), so later processes load them instead of compiling.
"""

# ruff: noqa: F401  (the imports are re-exports; __all__ is computed from ../contract.py)
from . import threads  # first: sets the OpenMP wait policy before any kernel can start Numba's threads
from ..contract import exports
from .activations import elu, elu_backward, relu, relu_backward
from .arrays import synchronize, to_device, to_numpy, zeros
from .conv import conv2d, conv2d_backward, conv2d_filter_grad
from .dense import dense, dense_backward
from .depthwise import depthwise_conv2d, depthwise_conv2d_backward
from .dropout import dropout, dropout_backward
from .elementwise import add, add_backward
from .loss import softmax_cross_entropy, softmax_cross_entropy_backward
from .norm import (
    batch_norm_backward,
    batch_norm_infer,
    batch_norm_relu_backward,
    batch_norm_relu_infer,
    batch_norm_relu_train,
    batch_norm_train,
    moving_average_update,
)
from .optim import adam_update, ema_update, rmsprop_update, scale_, sgd_update, sum_squares
from .pointwise import pointwise_conv2d, pointwise_conv2d_backward
from .pool import (
    global_avg_pool2d,
    global_avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
    max_pool2d_backward_taps,
    max_pool2d_with_taps,
)

name = "cpu"

__all__ = [*exports("conv2d_filter_grad", "max_pool2d_with_taps", "max_pool2d_backward_taps",
                    "batch_norm_relu_train", "batch_norm_relu_infer", "batch_norm_relu_backward"), "threads"]
