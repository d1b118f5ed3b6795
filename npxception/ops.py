"""The public functional API: every Xception operation, forward and backward, on NumPy arrays.

Every function validates its arguments (raising a ValueError or TypeError that names the argument,
what it got and what it expected), makes contiguous copies of non-contiguous views, moves the arrays
to the chosen backend, runs the backend's kernel and returns NumPy arrays. Inputs are never modified.

Layout is NHWC; weights have Keras's shapes (see `npxception/backends/README.md`). `backend` is
"numpy" (the reference), "cpu" (Numba) or "cuda" (Numba CUDA), and always comes last.
"""

from __future__ import annotations

import numbers

import numpy as np

from .backends import get_backend
from .shapes import as_pair, conv_output_hw, resolve_padding

_FLOATS = (np.float32, np.float64)

__all__ = [
    "add", "add_backward", "batch_norm", "batch_norm_backward", "conv2d", "conv2d_backward",
    "dense", "dense_backward", "depthwise_conv2d", "depthwise_conv2d_backward", "dropout",
    "dropout_backward", "elu", "elu_backward", "global_avg_pool2d", "global_avg_pool2d_backward",
    "max_pool2d", "max_pool2d_backward", "pointwise_conv2d", "pointwise_conv2d_backward", "relu",
    "relu_backward", "separable_conv2d", "separable_conv2d_backward", "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
]


# --------------------------------------------------------------------------- validation helpers

def _float_array(a, name: str, ndim: int | None = None, like: np.ndarray | None = None) -> np.ndarray:
    """A C-contiguous float32/float64 array, checked for rank and for the dtype of `like`."""
    if not isinstance(a, np.ndarray):
        if isinstance(a, (list, tuple, numbers.Number)):
            a = np.asarray(a)
        else:
            raise TypeError(f"{name} must be a NumPy array, got {type(a).__name__}")
    if a.dtype.type not in _FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        layout = {4: "NHWC with 4 dims", 2: "2-D", 1: "1-D"}.get(ndim, f"{ndim}-D")
        raise ValueError(f"{name} must be {layout}, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    if like is not None and a.dtype != like.dtype:
        raise TypeError(f"{name} must have the input's dtype {like.dtype}, got {a.dtype}")
    return np.ascontiguousarray(a)


def _expect_shape(a: np.ndarray, name: str, shape: tuple, why: str) -> None:
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} ({why}), got {a.shape}")


def _output_hw(x, kernel_hw, stride, padding, dilation, what: str):
    ho, wo = conv_output_hw(x.shape[1:3], kernel_hw, stride, padding, dilation)
    if ho < 1 or wo < 1:
        raise ValueError(
            f"{what} of x with spatial size {x.shape[1:3]}, kernel {kernel_hw}, stride {stride}, "
            f"dilation {dilation} and padding {padding} would be empty: output size ({ho}, {wo})"
        )
    return ho, wo


def _run(backend, fn_name: str, *args):
    """Move arrays to the backend, call its function, bring every array result back."""
    be = get_backend(backend)
    moved = [be.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    out = getattr(be, fn_name)(*moved)
    if isinstance(out, tuple):
        return tuple(None if o is None else be.to_numpy(o) for o in out)
    return be.to_numpy(out)


def _check_backend(backend) -> None:
    get_backend(backend)  # raises a clear error for unknown or unavailable backends


def _conv_args(x, w, stride, padding, dilation, *, depthwise: bool):
    """Validate a conv/depthwise call; returns (x, w, stride, padding4, dilation, out_shape)."""
    x = _float_array(x, "x", 4)
    kind = "depthwise kernel w (kh, kw, C, M)" if depthwise else "kernel w (kh, kw, Cin, Cout)"
    if not isinstance(w, np.ndarray) or w.ndim != 4:
        got = getattr(w, "shape", type(w).__name__)
        raise ValueError(f"w must be a 4-D {kind}, got {got}")
    w = _float_array(w, "w", 4, like=x)
    if w.shape[2] != x.shape[3]:
        raise ValueError(
            f"w expects {w.shape[2]} input channels (w.shape[2]) but x has {x.shape[3]} "
            f"(x.shape[3]); x {x.shape}, w {w.shape}"
        )
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    pads = resolve_padding(padding, x.shape[1:3], w.shape[:2], stride, dilation)
    ho, wo = _output_hw(x, w.shape[:2], stride, pads, dilation, "the convolution")
    cout = w.shape[2] * w.shape[3] if depthwise else w.shape[3]
    return x, w, stride, pads, dilation, (x.shape[0], ho, wo, cout)


def _dy(dy, out_shape, like, what: str) -> np.ndarray:
    dy = _float_array(dy, "dy", len(out_shape), like=like)
    _expect_shape(dy, "dy", out_shape, f"the shape of {what}'s output")
    return dy


# --------------------------------------------------------------------------- convolutions

def conv2d(x, w, *, stride=1, padding="valid", dilation=1, backend="numpy") -> np.ndarray:
    """Regular convolution. x (N, H, W, Cin), w (kh, kw, Cin, Cout) -> (N, Ho, Wo, Cout)."""
    _check_backend(backend)
    x, w, stride, pads, dilation, _ = _conv_args(x, w, stride, padding, dilation, depthwise=False)
    return _run(backend, "conv2d", x, w, stride, pads, dilation)


def conv2d_backward(dy, x, w, *, stride=1, padding="valid", dilation=1, backend="numpy"):
    """Gradients (dx, dw) of conv2d for the upstream gradient dy (N, Ho, Wo, Cout)."""
    _check_backend(backend)
    x, w, stride, pads, dilation, out = _conv_args(x, w, stride, padding, dilation, depthwise=False)
    dy = _dy(dy, out, x, "conv2d")
    return _run(backend, "conv2d_backward", dy, x, w, stride, pads, dilation)


def depthwise_conv2d(x, w, *, stride=1, padding="valid", dilation=1, backend="numpy") -> np.ndarray:
    """Depthwise convolution. x (N, H, W, C), w (kh, kw, C, M) -> (N, Ho, Wo, C*M)."""
    _check_backend(backend)
    x, w, stride, pads, dilation, _ = _conv_args(x, w, stride, padding, dilation, depthwise=True)
    return _run(backend, "depthwise_conv2d", x, w, stride, pads, dilation)


def depthwise_conv2d_backward(dy, x, w, *, stride=1, padding="valid", dilation=1, backend="numpy"):
    """Gradients (dx, dw) of depthwise_conv2d for dy (N, Ho, Wo, C*M)."""
    _check_backend(backend)
    x, w, stride, pads, dilation, out = _conv_args(x, w, stride, padding, dilation, depthwise=True)
    dy = _dy(dy, out, x, "depthwise_conv2d")
    return _run(backend, "depthwise_conv2d_backward", dy, x, w, stride, pads, dilation)


def _pointwise_args(x, w):
    x = _float_array(x, "x", 4)
    w = _float_array(w, "w", 4, like=x)
    if w.shape[:2] != (1, 1):
        raise ValueError(f"w must be a pointwise kernel of shape (1, 1, Cin, Cout), got {w.shape}")
    if w.shape[2] != x.shape[3]:
        raise ValueError(
            f"w expects {w.shape[2]} input channels (w.shape[2]) but x has {x.shape[3]} "
            f"(x.shape[3]); x {x.shape}, w {w.shape}"
        )
    return x, w, (*x.shape[:3], w.shape[3])


def pointwise_conv2d(x, w, *, backend="numpy") -> np.ndarray:
    """1x1 convolution. x (N, H, W, Cin), w (1, 1, Cin, Cout) -> (N, H, W, Cout)."""
    _check_backend(backend)
    x, w, _ = _pointwise_args(x, w)
    return _run(backend, "pointwise_conv2d", x, w)


def pointwise_conv2d_backward(dy, x, w, *, backend="numpy"):
    """Gradients (dx, dw) of pointwise_conv2d for dy (N, H, W, Cout)."""
    _check_backend(backend)
    x, w, out = _pointwise_args(x, w)
    dy = _dy(dy, out, x, "pointwise_conv2d")
    return _run(backend, "pointwise_conv2d_backward", dy, x, w)


def _separable_args(x, dw_kernel, pw_kernel, stride, padding, dilation):
    x, dw_kernel, stride, pads, dilation, mid = _conv_args(
        x, dw_kernel, stride, padding, dilation, depthwise=True)
    pw_kernel = _float_array(pw_kernel, "pw_kernel", 4, like=x)
    if pw_kernel.shape[:3] != (1, 1, mid[3]):
        raise ValueError(
            f"pw_kernel must have shape (1, 1, {mid[3]}, Cout) to follow a depthwise step with "
            f"C*M = {mid[3]} channels, got {pw_kernel.shape}"
        )
    return x, dw_kernel, pw_kernel, stride, pads, dilation, (*mid[:3], pw_kernel.shape[3])


def separable_conv2d(x, dw_kernel, pw_kernel, *, stride=1, padding="valid", dilation=1,
                     backend="numpy") -> np.ndarray:
    """Depthwise then pointwise convolution (Keras's SeparableConv2D without bias).

    x (N, H, W, C), dw_kernel (kh, kw, C, M), pw_kernel (1, 1, C*M, Cout) -> (N, Ho, Wo, Cout).
    """
    _check_backend(backend)
    x, dwk, pwk, stride, pads, dilation, _ = _separable_args(
        x, dw_kernel, pw_kernel, stride, padding, dilation)
    be = get_backend(backend)
    mid = be.depthwise_conv2d(be.to_device(x), be.to_device(dwk), stride, pads, dilation)
    return be.to_numpy(be.pointwise_conv2d(mid, be.to_device(pwk)))


def separable_conv2d_backward(dy, x, dw_kernel, pw_kernel, *, stride=1, padding="valid",
                              dilation=1, backend="numpy"):
    """Gradients (dx, d_dw_kernel, d_pw_kernel): the chain rule through both steps."""
    _check_backend(backend)
    x, dwk, pwk, stride, pads, dilation, out = _separable_args(
        x, dw_kernel, pw_kernel, stride, padding, dilation)
    dy = _dy(dy, out, x, "separable_conv2d")
    be = get_backend(backend)
    xd, dwkd = be.to_device(x), be.to_device(dwk)
    mid = be.depthwise_conv2d(xd, dwkd, stride, pads, dilation)
    dmid, d_pw = be.pointwise_conv2d_backward(be.to_device(dy), mid, be.to_device(pwk))
    dx, d_dw = be.depthwise_conv2d_backward(dmid, xd, dwkd, stride, pads, dilation)
    return be.to_numpy(dx), be.to_numpy(d_dw), be.to_numpy(d_pw)


# --------------------------------------------------------------------------- batch norm

def _bn_args(x, gamma, beta, moving_mean, moving_variance, epsilon):
    x = _float_array(x, "x", 4)
    c = x.shape[3]
    vectors = []
    for name, v in (("gamma", gamma), ("beta", beta), ("moving_mean", moving_mean),
                    ("moving_variance", moving_variance)):
        v = _float_array(v, name, 1, like=x)
        _expect_shape(v, name, (c,), "one value per channel of x")
        vectors.append(v)
    if not isinstance(epsilon, numbers.Real) or not epsilon > 0:
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
    if np.any(vectors[3] < 0):
        raise ValueError("moving_variance must be >= 0, got a negative entry")
    return x, *vectors


def batch_norm(x, gamma, beta, moving_mean, moving_variance, *, training=False, momentum=0.99,
               epsilon=1e-3, backend="numpy"):
    """Batch normalization over N, H, W (Keras's BatchNormalization).

    x (N, H, W, C); gamma, beta, moving_mean, moving_variance (C,).
    Returns (y, new_moving_mean, new_moving_variance). In training the batch mean and biased
    variance normalise x and update the moving statistics with `momentum`; in inference the moving
    statistics normalise x and come back unchanged.
    """
    _check_backend(backend)
    x, gamma, beta, mm, mv = _bn_args(x, gamma, beta, moving_mean, moving_variance, epsilon)
    if not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
    if not training:
        y = _run(backend, "batch_norm_infer", x, gamma, beta, mm, mv, float(epsilon))
        return y, mm.copy(), mv.copy()
    be = get_backend(backend)
    y, mean, var = be.batch_norm_train(be.to_device(x), be.to_device(gamma), be.to_device(beta),
                                       float(epsilon))
    new_mm = be.moving_average_update(be.to_device(mm), mean, float(momentum))
    new_mv = be.moving_average_update(be.to_device(mv), var, float(momentum))
    return be.to_numpy(y), be.to_numpy(new_mm), be.to_numpy(new_mv)


def batch_norm_backward(dy, x, gamma, beta, moving_mean, moving_variance, *, training=False,
                        epsilon=1e-3, backend="numpy"):
    """Gradients (dx, dgamma, dbeta) of batch_norm's output y for dy (N, H, W, C).

    In training the batch statistics are recomputed from x and their dependence on x is included.
    """
    _check_backend(backend)
    x, gamma, beta, mm, mv = _bn_args(x, gamma, beta, moving_mean, moving_variance, epsilon)
    dy = _dy(dy, x.shape, x, "batch_norm")
    if training:
        mm, mv = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    return _run(backend, "batch_norm_backward", dy, x, gamma, mm, mv, float(epsilon), bool(training))


# --------------------------------------------------------------------------- activations

def relu(x, *, backend="numpy") -> np.ndarray:
    """max(x, 0), element-wise; any shape."""
    _check_backend(backend)
    return _run(backend, "relu", _float_array(x, "x"))


def relu_backward(dy, x, *, backend="numpy") -> np.ndarray:
    """dx = dy where x > 0, else 0."""
    _check_backend(backend)
    x = _float_array(x, "x")
    dy = _dy(dy, x.shape, x, "relu")
    return _run(backend, "relu_backward", dy, x)


def _alpha(alpha) -> float:
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) or not alpha > 0:
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    return float(alpha)


def elu(x, *, alpha=1.0, backend="numpy") -> np.ndarray:
    """x if x > 0 else alpha * (exp(x) - 1), element-wise; any shape."""
    _check_backend(backend)
    return _run(backend, "elu", _float_array(x, "x"), _alpha(alpha))


def elu_backward(dy, x, *, alpha=1.0, backend="numpy") -> np.ndarray:
    """dx = dy if x > 0 else dy * alpha * exp(x)."""
    _check_backend(backend)
    x = _float_array(x, "x")
    dy = _dy(dy, x.shape, x, "elu")
    return _run(backend, "elu_backward", dy, x, _alpha(alpha))


# --------------------------------------------------------------------------- pooling

def _pool_args(x, pool_size, stride, padding):
    x = _float_array(x, "x", 4)
    pool = as_pair(pool_size, "pool_size")
    stride = as_pair(stride, "stride")
    pads = resolve_padding(padding, x.shape[1:3], pool, stride)
    if pads[0] >= pool[0] or pads[1] >= pool[0] or pads[2] >= pool[1] or pads[3] >= pool[1]:
        raise ValueError(
            f"padding {pads} must be smaller than pool_size {pool} on each side, or a window "
            "could hold only padding"
        )
    ho, wo = _output_hw(x, pool, stride, pads, (1, 1), "the max pool")
    return x, pool, stride, pads, (x.shape[0], ho, wo, x.shape[3])


def max_pool2d(x, *, pool_size=3, stride=2, padding="same", backend="numpy") -> np.ndarray:
    """Max pool (Keras's MaxPooling2D; padding is -inf). x (N, H, W, C) -> (N, Ho, Wo, C)."""
    _check_backend(backend)
    x, pool, stride, pads, _ = _pool_args(x, pool_size, stride, padding)
    return _run(backend, "max_pool2d", x, pool, stride, pads)


def max_pool2d_backward(dy, x, *, pool_size=3, stride=2, padding="same", backend="numpy"):
    """dx: each window's dy goes to its first maximum (row-major)."""
    _check_backend(backend)
    x, pool, stride, pads, out = _pool_args(x, pool_size, stride, padding)
    dy = _dy(dy, out, x, "max_pool2d")
    return _run(backend, "max_pool2d_backward", dy, x, pool, stride, pads)


def global_avg_pool2d(x, *, backend="numpy") -> np.ndarray:
    """Mean over H and W. x (N, H, W, C) -> (N, C)."""
    _check_backend(backend)
    return _run(backend, "global_avg_pool2d", _float_array(x, "x", 4))


def global_avg_pool2d_backward(dy, x, *, backend="numpy") -> np.ndarray:
    """dx = dy / (H * W), broadcast over H and W."""
    _check_backend(backend)
    x = _float_array(x, "x", 4)
    dy = _dy(dy, (x.shape[0], x.shape[3]), x, "global_avg_pool2d")
    return _run(backend, "global_avg_pool2d_backward", dy, x)


# --------------------------------------------------------------------------- dense, dropout, add

def _dense_args(x, w, b):
    x = _float_array(x, "x", 2)
    w = _float_array(w, "w", 2, like=x)
    if w.shape[0] != x.shape[1]:
        raise ValueError(
            f"w expects {w.shape[0]} input features (w.shape[0]) but x has {x.shape[1]} "
            f"(x.shape[1]); x {x.shape}, w {w.shape}"
        )
    if b is not None:
        b = _float_array(b, "b", 1, like=x)
        _expect_shape(b, "b", (w.shape[1],), "one bias per output feature")
    return x, w, b


def dense(x, w, b=None, *, backend="numpy") -> np.ndarray:
    """x @ w + b. x (N, Cin), w (Cin, Cout), b (Cout,) or None -> (N, Cout)."""
    _check_backend(backend)
    x, w, b = _dense_args(x, w, b)
    return _run(backend, "dense", x, w, b)


def dense_backward(dy, x, w, b=None, *, backend="numpy"):
    """Gradients (dx, dw, db) of dense; db is None when b is None."""
    _check_backend(backend)
    x, w, b = _dense_args(x, w, b)
    dy = _dy(dy, (x.shape[0], w.shape[1]), x, "dense")
    return _run(backend, "dense_backward", dy, x, w, b is not None)


def _dropout_args(rate, seed):
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate < 1:
        raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    return float(rate), int(seed)


def dropout(x, *, rate, seed, training=True, backend="numpy") -> np.ndarray:
    """Inverted dropout: zero each element with probability `rate`, scale the rest by 1/(1-rate).

    The mask is a pure function of (seed, element index), the same on every backend; in inference
    (training=False) x comes back unchanged.
    """
    _check_backend(backend)
    x = _float_array(x, "x")
    rate, seed = _dropout_args(rate, seed)
    if not training or rate == 0:
        return x.copy()
    return _run(backend, "dropout", x, rate, seed)


def dropout_backward(dy, *, rate, seed, training=True, backend="numpy") -> np.ndarray:
    """dx = dy through the same mask and scale as the forward with this seed."""
    _check_backend(backend)
    dy = _float_array(dy, "dy")
    rate, seed = _dropout_args(rate, seed)
    if not training or rate == 0:
        return dy.copy()
    return _run(backend, "dropout_backward", dy, rate, seed)


def _ce_args(logits, labels, label_smoothing):
    logits = _float_array(logits, "logits", 2)
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers (class indices), got dtype {labels.dtype}")
    _expect_shape(labels, "labels", (logits.shape[0],), "one class index per row of logits")
    k = logits.shape[1]
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must be in [0, {k}) for {k} classes, got values in "
                         f"[{labels.min()}, {labels.max()}]")
    if not isinstance(label_smoothing, numbers.Real) or not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    return logits, np.ascontiguousarray(labels, dtype=np.int64), float(label_smoothing)


def softmax_cross_entropy(logits, labels, *, label_smoothing=0.0, backend="numpy") -> float:
    """Mean softmax cross-entropy. logits (N, K) float, labels (N,) int in [0, K) -> a float."""
    _check_backend(backend)
    args = _ce_args(logits, labels, label_smoothing)
    return float(_run(backend, "softmax_cross_entropy", *args))


def softmax_cross_entropy_backward(dloss, logits, labels, *, label_smoothing=0.0,
                                   backend="numpy") -> np.ndarray:
    """dlogits (N, K) = dloss * (softmax(logits) - targets) / N."""
    _check_backend(backend)
    if not isinstance(dloss, (numbers.Real, np.ndarray)) or np.size(dloss) != 1:
        raise TypeError(f"dloss must be a scalar (the upstream gradient of the loss), got {dloss!r}")
    logits, labels, smoothing = _ce_args(logits, labels, label_smoothing)
    return _run(backend, "softmax_cross_entropy_backward", float(np.reshape(dloss, ())), logits,
                labels, smoothing)


def add(a, b, *, backend="numpy") -> np.ndarray:
    """a + b for two arrays of the same shape (a residual connection)."""
    _check_backend(backend)
    a = _float_array(a, "a")
    b = _float_array(b, "b", like=a)
    _expect_shape(b, "b", a.shape, "the shape of a")
    return _run(backend, "add", a, b)


def add_backward(dy, a, b, *, backend="numpy"):
    """(da, db) = (dy, dy), as separate arrays."""
    _check_backend(backend)
    a = _float_array(a, "a")
    b = _float_array(b, "b", like=a)
    _expect_shape(b, "b", a.shape, "the shape of a")
    dy = _dy(dy, a.shape, a, "add")
    da, db = _run(backend, "add_backward", dy)
    return da.copy(), db.copy()
