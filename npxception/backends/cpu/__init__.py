"""The Numba CPU backend: the reference's operations as parallel, cache-compiled `@njit` kernels.

Two layers, read in this order:
- plain kernels, in files named as in `reference/` (depthwise.py, conv.py, pointwise.py, norm.py,
  pool.py, ...): the simplest correct Numba kernel of each operation and pass (or, for a matrix
  product, one NumPy matmul), parallel over what owns the output, so no two threads write one
  element and the bits never depend on the thread count;
- tuned kernels, in tuned/: the same sums rearranged for speed (3x3 unrolls, direct stem
  convolutions, im2col built block by block inside single-threaded GEMMs, fused batch norm + ReLU).

`dispatch.py` is the only place that picks a tuned kernel, for which shapes, and names the
benchmark behind it. With NPXCEPTION_PLAIN=1 in the environment when this package is imported,
the backend runs the plain kernels alone. `runtime.py` holds the backend's one initialisation
(OpenMP wait policy, BLAS symbols; `get_backend("cpu")` runs it) and its threads:
`npxception.set_num_threads(n)` sets Numba's and BLAS's.

Kernels compile on first use for the dtype they meet (float32 or float64) and are cached on disk
(`cache=True`), so later processes load them instead of compiling.
"""

# ruff: noqa: F401  (the imports are re-exports; __all__ is computed from ../contract.py)
import os

from .. import fused
from ..contract import FUSED, exports
from . import dispatch, runtime
from .activations import elu, elu_backward, relu, relu_backward
from .arrays import synchronize, to_device, to_numpy, zeros
from .dropout import dropout, dropout_backward
from .elementwise import add, add_backward
from .loss import softmax_cross_entropy, softmax_cross_entropy_backward
from .norm import batch_norm_backward, batch_norm_infer, batch_norm_train, moving_average_update
from .optim import adam_update, ema_update, rmsprop_update, scale_, sgd_update, sum_squares
from .pool import (
    global_avg_pool2d,
    global_avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
    max_pool2d_backward_taps,
    max_pool2d_with_taps,
)

name = "cpu"
PLAIN = os.environ.get("NPXCEPTION_PLAIN", "0") not in ("", "0")

_passes = dispatch.passes(plain=PLAIN)
depthwise_conv2d = _passes["depthwise_conv2d"]
depthwise_input_grad = _passes["depthwise_input_grad"]
depthwise_filter_grad = _passes["depthwise_filter_grad"]
pointwise_conv2d = _passes["pointwise_conv2d"]
pointwise_input_grad = _passes["pointwise_input_grad"]
pointwise_filter_grad = _passes["pointwise_filter_grad"]
conv2d = _passes["conv2d"]
conv2d_input_grad = _passes["conv2d_input_grad"]
conv2d_filter_grad = _passes["conv2d_filter_grad"]
dense = _passes["dense"]
dense_backward = _passes["dense_backward"]
if PLAIN:
    batch_norm_relu_train, batch_norm_relu_infer, batch_norm_relu_backward = fused.fused_ops(
        __name__, *dispatch.FUSED_BN_RELU)
else:
    batch_norm_relu_train = _passes["batch_norm_relu_train"]
    batch_norm_relu_infer = _passes["batch_norm_relu_infer"]
    batch_norm_relu_backward = _passes["batch_norm_relu_backward"]


def depthwise_conv2d_backward(dy, x, w, stride, padding, dilation):
    return (depthwise_input_grad(dy, w, x.shape, stride, padding, dilation),
            depthwise_filter_grad(dy, x, w, stride, padding, dilation))


def pointwise_conv2d_backward(dy, x, w):
    return pointwise_input_grad(dy, w, x.shape), pointwise_filter_grad(dy, x, w)


def conv2d_backward(dy, x, w, stride, padding, dilation):
    return (conv2d_input_grad(dy, w, x.shape, stride, padding, dilation),
            conv2d_filter_grad(dy, x, w, stride, padding, dilation))


__all__ = exports(*FUSED)
