"""The public functional API: every Xception operation, forward and backward, on NumPy arrays.

Every function validates its arguments (`validate.py`: a ValueError or TypeError that names the
argument, what it got and what it expected), makes contiguous copies of non-contiguous views, moves
the arrays to the chosen backend, runs the backend's function (or the composition in `compose.py`
that the layers use too) and returns NumPy arrays. Inputs are never modified.

Layout is NHWC; weights have Keras's shapes (see `npxception/backends/README.md`). `backend` is
"numpy" (the reference), "cpu" (Numba) or "cuda" (Numba CUDA), and always comes last.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import compose
from .backends import get_backend
from .validate import (alpha_arg, bn_args, ce_args, conv_args, dense_args, dropout_args, dy_arg,
                       expect_shape, float_array, pointwise_args, pool_args, separable_args)

__all__ = [
    "add", "add_backward", "batch_norm", "batch_norm_backward", "conv2d", "conv2d_backward",
    "dense", "dense_backward", "depthwise_conv2d", "depthwise_conv2d_backward", "dropout",
    "dropout_backward", "elu", "elu_backward", "global_avg_pool2d", "global_avg_pool2d_backward",
    "max_pool2d", "max_pool2d_backward", "pointwise_conv2d", "pointwise_conv2d_backward", "relu",
    "relu_backward", "separable_conv2d", "separable_conv2d_backward", "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
]


def _on(be, fn, *args):
    """fn(*args) with every array moved to the backend `be`; array results come back as NumPy."""
    out = fn(*(be.to_device(a) if isinstance(a, np.ndarray) else a for a in args))
    if isinstance(out, tuple):
        return tuple(None if o is None else be.to_numpy(o) for o in out)
    return be.to_numpy(out)


# --------------------------------------------------------------------------- convolutions

def conv2d(x, w, *, stride=1, padding="valid", dilation=1, backend="numpy") -> np.ndarray:
    """Regular convolution. x (N, H, W, Cin), w (kh, kw, Cin, Cout) -> (N, Ho, Wo, Cout)."""
    be = get_backend(backend)
    x, w, stride, pads, dilation, _ = conv_args(x, w, stride, padding, dilation, depthwise=False)
    return _on(be, be.conv2d, x, w, stride, pads, dilation)


def conv2d_backward(dy, x, w, *, stride=1, padding="valid", dilation=1, backend="numpy"):
    """Gradients (dx, dw) of conv2d for the upstream gradient dy (N, Ho, Wo, Cout)."""
    be = get_backend(backend)
    x, w, stride, pads, dilation, out = conv_args(x, w, stride, padding, dilation, depthwise=False)
    dy = dy_arg(dy, out, x, "conv2d")
    return _on(be, be.conv2d_backward, dy, x, w, stride, pads, dilation)


def depthwise_conv2d(x, w, *, stride=1, padding="valid", dilation=1, backend="numpy") -> np.ndarray:
    """Depthwise convolution. x (N, H, W, C), w (kh, kw, C, M) -> (N, Ho, Wo, C*M)."""
    be = get_backend(backend)
    x, w, stride, pads, dilation, _ = conv_args(x, w, stride, padding, dilation, depthwise=True)
    return _on(be, be.depthwise_conv2d, x, w, stride, pads, dilation)


def depthwise_conv2d_backward(dy, x, w, *, stride=1, padding="valid", dilation=1, backend="numpy"):
    """Gradients (dx, dw) of depthwise_conv2d for dy (N, Ho, Wo, C*M)."""
    be = get_backend(backend)
    x, w, stride, pads, dilation, out = conv_args(x, w, stride, padding, dilation, depthwise=True)
    dy = dy_arg(dy, out, x, "depthwise_conv2d")
    return _on(be, be.depthwise_conv2d_backward, dy, x, w, stride, pads, dilation)


def pointwise_conv2d(x, w, *, backend="numpy") -> np.ndarray:
    """1x1 convolution. x (N, H, W, Cin), w (1, 1, Cin, Cout) -> (N, H, W, Cout)."""
    be = get_backend(backend)
    x, w, _ = pointwise_args(x, w)
    return _on(be, be.pointwise_conv2d, x, w)


def pointwise_conv2d_backward(dy, x, w, *, backend="numpy"):
    """Gradients (dx, dw) of pointwise_conv2d for dy (N, H, W, Cout)."""
    be = get_backend(backend)
    x, w, out = pointwise_args(x, w)
    dy = dy_arg(dy, out, x, "pointwise_conv2d")
    return _on(be, be.pointwise_conv2d_backward, dy, x, w)


def separable_conv2d(x, dw_kernel, pw_kernel, *, stride=1, padding="valid", dilation=1,
                     backend="numpy") -> np.ndarray:
    """Depthwise then pointwise convolution (Keras's SeparableConv2D without bias).

    x (N, H, W, C), dw_kernel (kh, kw, C, M), pw_kernel (1, 1, C*M, Cout) -> (N, Ho, Wo, Cout).
    """
    be = get_backend(backend)
    x, dwk, pwk, stride, pads, dilation, _ = separable_args(
        x, dw_kernel, pw_kernel, stride, padding, dilation)
    y, _ = compose.separable_conv2d(be, be.to_device(x), be.to_device(dwk), be.to_device(pwk), stride,
                                    pads, dilation)
    return be.to_numpy(y)


def separable_conv2d_backward(dy, x, dw_kernel, pw_kernel, *, stride=1, padding="valid",
                              dilation=1, backend="numpy"):
    """Gradients (dx, d_dw_kernel, d_pw_kernel): the chain rule through both steps."""
    be = get_backend(backend)
    x, dwk, pwk, stride, pads, dilation, out = separable_args(
        x, dw_kernel, pw_kernel, stride, padding, dilation)
    dy = dy_arg(dy, out, x, "separable_conv2d")
    xd, dwkd, pwkd = be.to_device(x), be.to_device(dwk), be.to_device(pwk)
    _, saved = compose.separable_conv2d(be, xd, dwkd, pwkd, stride, pads, dilation)
    grads = compose.separable_conv2d_backward(be, be.to_device(dy), xd, dwkd, pwkd, saved, stride, pads,
                                              dilation)
    return tuple(be.to_numpy(g) for g in grads)


# --------------------------------------------------------------------------- batch norm


def batch_norm(x, gamma, beta, moving_mean, moving_variance, *, training=False, momentum=0.99,
               epsilon=1e-3, backend="numpy"):
    """Batch normalization over N, H, W (Keras's BatchNormalization).

    x (N, H, W, C); gamma, beta, moving_mean, moving_variance (C,).
    Returns (y, new_moving_mean, new_moving_variance). In training the batch mean and biased
    variance normalise x and update the moving statistics with `momentum`; in inference the moving
    statistics normalise x and come back unchanged.
    """
    be = get_backend(backend)
    x, gamma, beta, mm, mv = bn_args(x, gamma, beta, moving_mean, moving_variance, epsilon)
    if not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
    xd, gd, bd, mmd, mvd = (be.to_device(a) for a in (x, gamma, beta, mm, mv))
    if not training:
        y = compose.batch_norm_infer(be, xd, gd, bd, mmd, mvd, float(epsilon))
        return be.to_numpy(y), mm.copy(), mv.copy()
    out = compose.batch_norm_train(be, xd, gd, bd, mmd, mvd, float(momentum), float(epsilon))
    return be.to_numpy(out.y), be.to_numpy(out.moving_mean), be.to_numpy(out.moving_variance)


def batch_norm_backward(dy, x, gamma, beta, moving_mean, moving_variance, *, training=False,
                        epsilon=1e-3, backend="numpy"):
    """Gradients (dx, dgamma, dbeta) of batch_norm's output y for dy (N, H, W, C).

    In training the batch statistics are recomputed from x and their dependence on x is included.
    """
    be = get_backend(backend)
    x, gamma, beta, mm, mv = bn_args(x, gamma, beta, moving_mean, moving_variance, epsilon)
    dy = dy_arg(dy, x.shape, x, "batch_norm")
    if training:  # the statistics that normalised x in the training forward
        mm, mv = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    dx, dgamma, dbeta = compose.batch_norm_backward(be, *(be.to_device(a) for a in (dy, x, gamma, mm, mv)),
                                                    float(epsilon), bool(training))
    return be.to_numpy(dx), be.to_numpy(dgamma), be.to_numpy(dbeta)


# --------------------------------------------------------------------------- activations

def relu(x, *, backend="numpy") -> np.ndarray:
    """max(x, 0), element-wise; any shape."""
    be = get_backend(backend)
    return _on(be, be.relu, float_array(x, "x"))


def relu_backward(dy, x, *, backend="numpy") -> np.ndarray:
    """dx = dy where x > 0, else 0."""
    be = get_backend(backend)
    x = float_array(x, "x")
    dy = dy_arg(dy, x.shape, x, "relu")
    return _on(be, be.relu_backward, dy, x)


def elu(x, *, alpha=1.0, backend="numpy") -> np.ndarray:
    """x if x > 0 else alpha * (exp(x) - 1), element-wise; any shape."""
    be = get_backend(backend)
    return _on(be, be.elu, float_array(x, "x"), alpha_arg(alpha))


def elu_backward(dy, x, *, alpha=1.0, backend="numpy") -> np.ndarray:
    """dx = dy if x > 0 else dy * alpha * exp(x)."""
    be = get_backend(backend)
    x = float_array(x, "x")
    dy = dy_arg(dy, x.shape, x, "elu")
    return _on(be, be.elu_backward, dy, x, alpha_arg(alpha))


# --------------------------------------------------------------------------- pooling


def max_pool2d(x, *, pool_size=3, stride=2, padding="same", backend="numpy") -> np.ndarray:
    """Max pool (Keras's MaxPooling2D; padding is -inf). x (N, H, W, C) -> (N, Ho, Wo, C)."""
    be = get_backend(backend)
    x, pool, stride, pads, _ = pool_args(x, pool_size, stride, padding)
    return _on(be, be.max_pool2d, x, pool, stride, pads)


def max_pool2d_backward(dy, x, *, pool_size=3, stride=2, padding="same", backend="numpy"):
    """dx: each window's dy goes to its first maximum (row-major)."""
    be = get_backend(backend)
    x, pool, stride, pads, out = pool_args(x, pool_size, stride, padding)
    dy = dy_arg(dy, out, x, "max_pool2d")
    return _on(be, be.max_pool2d_backward, dy, x, pool, stride, pads)


def global_avg_pool2d(x, *, backend="numpy") -> np.ndarray:
    """Mean over H and W. x (N, H, W, C) -> (N, C)."""
    be = get_backend(backend)
    return _on(be, be.global_avg_pool2d, float_array(x, "x", 4))


def global_avg_pool2d_backward(dy, x, *, backend="numpy") -> np.ndarray:
    """dx = dy / (H * W), broadcast over H and W."""
    be = get_backend(backend)
    x = float_array(x, "x", 4)
    dy = dy_arg(dy, (x.shape[0], x.shape[3]), x, "global_avg_pool2d")
    return _on(be, be.global_avg_pool2d_backward, dy, x)


# --------------------------------------------------------------------------- dense, dropout, add


def dense(x, w, b=None, *, backend="numpy") -> np.ndarray:
    """x @ w + b. x (N, Cin), w (Cin, Cout), b (Cout,) or None -> (N, Cout)."""
    be = get_backend(backend)
    x, w, b = dense_args(x, w, b)
    return _on(be, be.dense, x, w, b)


def dense_backward(dy, x, w, b=None, *, backend="numpy"):
    """Gradients (dx, dw, db) of dense; db is None when b is None."""
    be = get_backend(backend)
    x, w, b = dense_args(x, w, b)
    dy = dy_arg(dy, (x.shape[0], w.shape[1]), x, "dense")
    return _on(be, be.dense_backward, dy, x, w, b is not None)


def dropout(x, *, rate, seed, training=True, backend="numpy") -> np.ndarray:
    """Inverted dropout: zero each element with probability `rate`, scale the rest by 1/(1-rate).

    The mask is a pure function of (seed, element index), the same on every backend; in inference
    (training=False) x comes back unchanged.
    """
    be = get_backend(backend)
    x = float_array(x, "x")
    rate, seed = dropout_args(rate, seed)
    if not training or rate == 0:
        return x.copy()
    return _on(be, be.dropout, x, rate, seed)


def dropout_backward(dy, *, rate, seed, training=True, backend="numpy") -> np.ndarray:
    """dx = dy through the same mask and scale as the forward with this seed."""
    be = get_backend(backend)
    dy = float_array(dy, "dy")
    rate, seed = dropout_args(rate, seed)
    if not training or rate == 0:
        return dy.copy()
    return _on(be, be.dropout_backward, dy, rate, seed)


def softmax_cross_entropy(logits, labels, *, label_smoothing=0.0, backend="numpy") -> float:
    """Mean softmax cross-entropy. logits (N, K) float, labels (N,) int in [0, K) -> a float."""
    be = get_backend(backend)
    args = ce_args(logits, labels, label_smoothing)
    return float(_on(be, be.softmax_cross_entropy, *args))


def softmax_cross_entropy_backward(dloss, logits, labels, *, label_smoothing=0.0,
                                   backend="numpy") -> np.ndarray:
    """dlogits (N, K) = dloss * (softmax(logits) - targets) / N."""
    be = get_backend(backend)
    if not isinstance(dloss, (numbers.Real, np.ndarray)) or np.size(dloss) != 1:
        raise TypeError(f"dloss must be a scalar (the upstream gradient of the loss), got {dloss!r}")
    logits, labels, smoothing = ce_args(logits, labels, label_smoothing)
    return _on(be, be.softmax_cross_entropy_backward, float(np.reshape(dloss, ())), logits,
                labels, smoothing)


def add(a, b, *, backend="numpy") -> np.ndarray:
    """a + b for two arrays of the same shape (a residual connection)."""
    be = get_backend(backend)
    a = float_array(a, "a")
    b = float_array(b, "b", like=a)
    expect_shape(b, "b", a.shape, "the shape of a")
    return _on(be, be.add, a, b)


def add_backward(dy, a, b, *, backend="numpy"):
    """(da, db) = (dy, dy), as separate arrays."""
    be = get_backend(backend)
    a = float_array(a, "a")
    b = float_array(b, "b", like=a)
    expect_shape(b, "b", a.shape, "the shape of a")
    dy = dy_arg(dy, a.shape, a, "add")
    da, db = _on(be, be.add_backward, dy)
    return da.copy(), db.copy()
