"""Compositions of backend functions, each written once: the one road from a caller to the kernels.

`npxception.ops` (for users, NumPy in and out) and the `npxception.nn` layers (for the model) both
call these, with a backend module `be` and arguments already validated and resolved as the backend
contract (`backends/contract.py`) expects: no checks here, none in the kernels.

    separable_conv2d:  h = depthwise(x), a = f(h) (optional ReLU/ELU), y = pointwise(a)
    batch_norm_train:  statistics (mean, var over N, H, W) -> apply (normalise) -> moving averages
    fused ops:         the reference definitions of the contract's optional FusedOps

Batch-norm statistics are a separate, replaceable step: `batch_norm_train(..., statistics=fn)`
takes the mean and variance from `fn(be, x)` instead of from x alone, and then normalises with the
backend's apply step (`batch_norm_infer`). A synchronized batch norm passes a function that
reduces the per-process sums across processes, so every process normalises with the statistics of
the whole global batch. With `statistics=None` the backend computes and applies them in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from .shapes import Padding4, Pair

ACTIVATIONS = (None, "relu", "elu")
ELU_ALPHA = 1.0  # Keras's ELU default, the one the paper's Figure 10 ablation uses

Statistics = Callable[[Any, Any], tuple[Any, Any]]  # (be, x) -> (mean (C,), biased var (C,))


# --------------------------------------------------------------------------- activations

def activation(be, name: str | None, x):
    """f(x) for f = None (identity), "relu" or "elu"."""
    if name == "relu":
        return be.relu(x)
    if name == "elu":
        return be.elu(x, ELU_ALPHA)
    return x


def activation_backward(be, name: str | None, dy, x):
    """dx for dy through f(x) (f as in `activation`)."""
    if name == "relu":
        return be.relu_backward(dy, x)
    if name == "elu":
        return be.elu_backward(dy, x, ELU_ALPHA)
    return dy


# --------------------------------------------------------------------------- separable convolution

class SeparableSaved(NamedTuple):
    h: Any  # depthwise output (N, Ho, Wo, C*M)
    a: Any  # pointwise input: activation(h), or h itself without an intermediate activation


def separable_conv2d(be, x, dw_kernel, pw_kernel, stride: Pair, padding: Padding4, dilation: Pair,
                     intermediate_activation: str | None = None):
    """x (N, H, W, C), dw_kernel (kh, kw, C, M), pw_kernel (1, 1, C*M, Cout).

    Returns (y (N, Ho, Wo, Cout), SeparableSaved) for separable_conv2d_backward.
    """
    h = be.depthwise_conv2d(x, dw_kernel, stride, padding, dilation)
    a = activation(be, intermediate_activation, h)
    return be.pointwise_conv2d(a, pw_kernel), SeparableSaved(h, a)


def separable_conv2d_backward(be, dy, x, dw_kernel, pw_kernel, saved: SeparableSaved, stride: Pair,
                              padding: Padding4, dilation: Pair,
                              intermediate_activation: str | None = None):
    """(dx, d_dw_kernel, d_pw_kernel) by the chain rule through pointwise, f and depthwise:

        da, d_pw = pointwise_backward(dy, a);  dh = da * f'(h);  dx, d_dw = depthwise_backward(dh, x)
    """
    da, d_pw = be.pointwise_conv2d_backward(dy, saved.a, pw_kernel)
    dh = activation_backward(be, intermediate_activation, da, saved.h)
    dx, d_dw = be.depthwise_conv2d_backward(dh, x, dw_kernel, stride, padding, dilation)
    return dx, d_dw, d_pw


# --------------------------------------------------------------------------- batch norm

class BatchNormTrained(NamedTuple):
    y: Any
    mean: Any              # the statistics that normalised x (batch_norm_backward needs them)
    var: Any
    moving_mean: Any       # the moving statistics after this step
    moving_variance: Any


def batch_norm_train(be, x, gamma, beta, moving_mean, moving_variance, momentum: float,
                     epsilon: float, statistics: Statistics | None = None) -> BatchNormTrained:
    """Training-mode batch norm of x (N, H, W, C) and the update of its moving statistics (C,).

    statistics: None (x's own batch statistics, computed and applied by one backend call) or a
    function (be, x) -> (mean, var) whose result is applied instead (see the module docstring).
    """
    if statistics is None:
        y, mean, var = be.batch_norm_train(x, gamma, beta, epsilon)
    else:
        mean, var = statistics(be, x)
        y = be.batch_norm_infer(x, gamma, beta, mean, var, epsilon)
    return BatchNormTrained(y, mean, var, *moving_statistics(be, moving_mean, moving_variance, mean, var, momentum))


def moving_statistics(be, moving_mean, moving_variance, mean, var, momentum: float):
    """(moving_mean, moving_variance) moved toward a training batch's (mean, var)."""
    return (be.moving_average_update(moving_mean, mean, momentum),
            be.moving_average_update(moving_variance, var, momentum))


def batch_norm_infer(be, x, gamma, beta, moving_mean, moving_variance, epsilon: float):
    """Inference-mode batch norm: the moving statistics normalise x."""
    return be.batch_norm_infer(x, gamma, beta, moving_mean, moving_variance, epsilon)


def batch_norm_backward(be, dy, x, gamma, mean, var, epsilon: float, training: bool):
    """(dx, dgamma, dbeta); mean and var are what normalised x in the forward pass."""
    return be.batch_norm_backward(dy, x, gamma, mean, var, epsilon, training)


# --------------------------------------------------------------------------- fused ops (definitions)
# The definitions of the contract's FusedOps live beside the backends (backends/fused.py), which
# bind them where they have no kernel of their own; re-exported here with the other compositions.
from .backends.fused import (  # noqa: E402, F401
    batch_norm_relu_backward,
    batch_norm_relu_infer,
    batch_norm_relu_train,
    conv2d_filter_grad,
    max_pool2d_backward_taps,
    max_pool2d_with_taps,
)
