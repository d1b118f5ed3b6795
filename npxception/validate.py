"""Argument checks for the public ops (`npxception.ops`), kept apart from the computation.

Each function takes what a user passed, raises a ValueError or TypeError that names the argument,
what it got and what it expected, and returns the arguments in the form the backend contract
(`backends/contract.py`) expects: C-contiguous float arrays, pairs, four resolved pads. The window
geometry itself (pairs, TensorFlow's "same" padding, the empty-output check) is `npxception.shapes`,
shared with the layers.
"""

from __future__ import annotations

import numbers

import numpy as np

from .shapes import as_pair, resolve_padding, window_output_hw

FLOATS = (np.float32, np.float64)


def float_array(a, name: str, ndim: int | None = None, like: np.ndarray | None = None) -> np.ndarray:
    """A C-contiguous float32/float64 array, checked for rank and for the dtype of `like`."""
    if not isinstance(a, np.ndarray):
        if isinstance(a, (list, tuple, numbers.Number)):
            a = np.asarray(a)
        else:
            raise TypeError(f"{name} must be a NumPy array, got {type(a).__name__}")
    if a.dtype.type not in FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        layout = {4: "NHWC with 4 dims", 2: "2-D", 1: "1-D"}.get(ndim, f"{ndim}-D")
        raise ValueError(f"{name} must be {layout}, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    if like is not None and a.dtype != like.dtype:
        raise TypeError(f"{name} must have the input's dtype {like.dtype}, got {a.dtype}")
    return np.ascontiguousarray(a)


def expect_shape(a: np.ndarray, name: str, shape: tuple, why: str) -> None:
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} ({why}), got {a.shape}")


def conv_args(x, w, stride, padding, dilation, *, depthwise: bool):
    """Validate a conv/depthwise call; returns (x, w, stride, padding4, dilation, out_shape)."""
    x = float_array(x, "x", 4)
    kind = "depthwise kernel w (kh, kw, C, M)" if depthwise else "kernel w (kh, kw, Cin, Cout)"
    if not isinstance(w, np.ndarray) or w.ndim != 4:
        got = getattr(w, "shape", type(w).__name__)
        raise ValueError(f"w must be a 4-D {kind}, got {got}")
    w = float_array(w, "w", 4, like=x)
    if w.shape[2] != x.shape[3]:
        raise ValueError(
            f"w expects {w.shape[2]} input channels (w.shape[2]) but x has {x.shape[3]} "
            f"(x.shape[3]); x {x.shape}, w {w.shape}"
        )
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    pads = resolve_padding(padding, x.shape[1:3], w.shape[:2], stride, dilation)
    ho, wo = window_output_hw(x.shape[1:3], w.shape[:2], stride, pads, dilation, "the convolution")
    cout = w.shape[2] * w.shape[3] if depthwise else w.shape[3]
    return x, w, stride, pads, dilation, (x.shape[0], ho, wo, cout)


def dy_arg(dy, out_shape, like, what: str) -> np.ndarray:
    dy = float_array(dy, "dy", len(out_shape), like=like)
    expect_shape(dy, "dy", out_shape, f"the shape of {what}'s output")
    return dy


def pointwise_args(x, w):
    x = float_array(x, "x", 4)
    w = float_array(w, "w", 4, like=x)
    if w.shape[:2] != (1, 1):
        raise ValueError(f"w must be a pointwise kernel of shape (1, 1, Cin, Cout), got {w.shape}")
    if w.shape[2] != x.shape[3]:
        raise ValueError(
            f"w expects {w.shape[2]} input channels (w.shape[2]) but x has {x.shape[3]} "
            f"(x.shape[3]); x {x.shape}, w {w.shape}"
        )
    return x, w, (*x.shape[:3], w.shape[3])


def separable_args(x, dw_kernel, pw_kernel, stride, padding, dilation):
    x, dw_kernel, stride, pads, dilation, mid = conv_args(
        x, dw_kernel, stride, padding, dilation, depthwise=True)
    pw_kernel = float_array(pw_kernel, "pw_kernel", 4, like=x)
    if pw_kernel.shape[:3] != (1, 1, mid[3]):
        raise ValueError(
            f"pw_kernel must have shape (1, 1, {mid[3]}, Cout) to follow a depthwise step with "
            f"C*M = {mid[3]} channels, got {pw_kernel.shape}"
        )
    return x, dw_kernel, pw_kernel, stride, pads, dilation, (*mid[:3], pw_kernel.shape[3])


def bn_args(x, gamma, beta, moving_mean, moving_variance, epsilon):
    x = float_array(x, "x", 4)
    c = x.shape[3]
    vectors = []
    for name, v in (("gamma", gamma), ("beta", beta), ("moving_mean", moving_mean),
                    ("moving_variance", moving_variance)):
        v = float_array(v, name, 1, like=x)
        expect_shape(v, name, (c,), "one value per channel of x")
        vectors.append(v)
    if not isinstance(epsilon, numbers.Real) or not epsilon > 0:
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
    if np.any(vectors[3] < 0):
        raise ValueError("moving_variance must be >= 0, got a negative entry")
    return x, *vectors


def alpha_arg(alpha) -> float:
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) or not alpha > 0:
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    return float(alpha)


def pool_args(x, pool_size, stride, padding):
    x = float_array(x, "x", 4)
    pool = as_pair(pool_size, "pool_size")
    stride = as_pair(stride, "stride")
    pads = resolve_padding(padding, x.shape[1:3], pool, stride)
    if pads[0] >= pool[0] or pads[1] >= pool[0] or pads[2] >= pool[1] or pads[3] >= pool[1]:
        raise ValueError(
            f"padding {pads} must be smaller than pool_size {pool} on each side, or a window "
            "could hold only padding"
        )
    ho, wo = window_output_hw(x.shape[1:3], pool, stride, pads, (1, 1), "the max pool")
    return x, pool, stride, pads, (x.shape[0], ho, wo, x.shape[3])


def dense_args(x, w, b):
    x = float_array(x, "x", 2)
    w = float_array(w, "w", 2, like=x)
    if w.shape[0] != x.shape[1]:
        raise ValueError(
            f"w expects {w.shape[0]} input features (w.shape[0]) but x has {x.shape[1]} "
            f"(x.shape[1]); x {x.shape}, w {w.shape}"
        )
    if b is not None:
        b = float_array(b, "b", 1, like=x)
        expect_shape(b, "b", (w.shape[1],), "one bias per output feature")
    return x, w, b


def dropout_args(rate, seed):
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate < 1:
        raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    return float(rate), int(seed)


def ce_args(logits, labels, label_smoothing):
    logits = float_array(logits, "logits", 2)
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers (class indices), got dtype {labels.dtype}")
    expect_shape(labels, "labels", (logits.shape[0],), "one class index per row of logits")
    k = logits.shape[1]
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must be in [0, {k}) for {k} classes, got values in "
                         f"[{labels.min()}, {labels.max()}]")
    if not isinstance(label_smoothing, numbers.Real) or not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    return logits, np.ascontiguousarray(labels, dtype=np.int64), float(label_smoothing)
