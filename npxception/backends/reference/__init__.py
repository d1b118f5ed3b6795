"""The NumPy reference backend: readable ground truth for every operation.

Each file holds one family of operations; its docstring gives the shapes, the output-size formula and
the gradient derivation. `npxception.backends.README.md` states the contract all backends share.
"""

# ruff: noqa: F401  (the imports are re-exports; __all__ is computed from ../contract.py)
from .. import fused
from ..contract import FUSED, exports
from .activations import elu, elu_backward, relu, relu_backward
from .arrays import synchronize, to_device, to_numpy, zeros
from .conv import conv2d, conv2d_backward
from .dense import dense, dense_backward
from .depthwise import depthwise_conv2d, depthwise_conv2d_backward
from .dropout import dropout, dropout_backward
from .elementwise import add, add_backward
from .loss import softmax_cross_entropy, softmax_cross_entropy_backward
from .norm import batch_norm_backward, batch_norm_infer, batch_norm_train, moving_average_update
from .optim import adam_update, ema_update, rmsprop_update, scale_, sgd_update, sum_squares
from .pointwise import pointwise_conv2d, pointwise_conv2d_backward
from .pool import global_avg_pool2d, global_avg_pool2d_backward, max_pool2d, max_pool2d_backward

name = "numpy"

# No fused kernels of its own: every fused op of the contract is its composition (backends/fused.py).
(conv2d_filter_grad, max_pool2d_with_taps, max_pool2d_backward_taps, batch_norm_relu_train,
 batch_norm_relu_infer, batch_norm_relu_backward) = fused.fused_ops(
    __name__, "conv2d_filter_grad", "max_pool2d_with_taps", "max_pool2d_backward_taps", "batch_norm_relu_train",
    "batch_norm_relu_infer", "batch_norm_relu_backward")

__all__ = exports(*FUSED)
