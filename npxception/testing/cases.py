"""Calls that exercise every kernel of the CUDA backend, shared by the simulator and PTX checks.

Each case is one backend function with arguments in the contract's resolved form (padding as four
ints, stride as a pair). `run(backend, case)` moves fresh copies of the arrays to the backend, calls
the function and returns every result as NumPy: the outputs, or, for the in-place optimizer
updates, every array argument after the update. Shapes are tiny for the simulator but still span
several blocks (40 channels = two 32-channel groups, 10 columns = two 8-column groups, 130 GEMM rows
= two 128-row tiles), edge tiles, stride 2 with TensorFlow's asymmetric "same" padding, dilation 2,
depth multiplier 2, a 5x5 kernel (two 9-tap groups) and max-pool ties.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npxception.shapes import resolve_padding


@dataclass(frozen=True)
class Case:
    name: str
    fn: str                      # backend function name
    make_args: Callable          # (rng, dtype) -> tuple of arguments
    in_place: bool = False       # optimizer updates: compare the updated arguments
    exact: bool = False          # bit-identical expected (dropout mask, add)


def _rng(name: str, dtype) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{name}/{np.dtype(dtype)}".encode()))


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def conv_args(x_shape, w_shape, stride, padding, dilation, *, backward, cout):
    def make(rng, dtype):
        x, w = _normal(rng, x_shape, dtype), _normal(rng, w_shape, dtype)
        st, dl = (stride, stride) if isinstance(stride, int) else stride, (dilation, dilation)
        pads = resolve_padding(padding, x_shape[1:3], w_shape[:2], st, dl)
        if not backward:
            return x, w, st, pads, dl
        from npxception.shapes import conv_output_hw

        ho, wo = conv_output_hw(x_shape[1:3], w_shape[:2], st, pads, dl)
        dy = _normal(rng, (x_shape[0], ho, wo, cout(w_shape)), dtype)
        return dy, x, w, st, pads, dl

    return make


_DEPTHWISE = [  # name, x shape, w shape, stride, padding, dilation
    ("s1_same", (1, 7, 10, 40), (3, 3, 40, 1), 1, "same", 1),
    ("s2_same_asym_m2", (1, 8, 10, 20), (3, 3, 20, 2), 2, "same", 1),
    ("dilation2_valid", (2, 7, 9, 6), (3, 3, 6, 1), 1, "valid", 2),
    ("k5_same", (1, 6, 6, 5), (5, 5, 5, 1), 1, "same", 1),
]
_CONV = [
    ("stem_s2_valid", (1, 9, 9, 3), (3, 3, 3, 8), 2, "valid", 1),
    ("same_s1", (1, 5, 6, 3), (3, 3, 3, 5), 1, "same", 1),
    ("shortcut_1x1_s2", (1, 7, 7, 4), (1, 1, 4, 6), 2, "same", 1),
]


def _depthwise_cases():
    out = []
    for name, xs, ws, st, pad, dil in _DEPTHWISE:
        cm = lambda w: w[2] * w[3]  # noqa: E731
        out.append(Case(f"depthwise_conv2d/{name}", "depthwise_conv2d",
                        conv_args(xs, ws, st, pad, dil, backward=False, cout=cm)))
        out.append(Case(f"depthwise_conv2d_backward/{name}", "depthwise_conv2d_backward",
                        conv_args(xs, ws, st, pad, dil, backward=True, cout=cm)))
    return out


def _conv_cases():
    out = []
    for name, xs, ws, st, pad, dil in _CONV:
        co = lambda w: w[3]  # noqa: E731
        out.append(Case(f"conv2d/{name}", "conv2d",
                        conv_args(xs, ws, st, pad, dil, backward=False, cout=co)))
        out.append(Case(f"conv2d_backward/{name}", "conv2d_backward",
                        conv_args(xs, ws, st, pad, dil, backward=True, cout=co)))
    return out


def _pointwise(rng, dtype):
    return _normal(rng, (1, 10, 13, 12), dtype), _normal(rng, (1, 1, 12, 20), dtype)


def _pointwise_backward(rng, dtype):
    x, w = _pointwise(rng, dtype)
    return _normal(rng, (1, 10, 13, 20), dtype), x, w


def _bn_x(rng, dtype):
    # an offset keeps the two-pass variance honest (E[x^2] - E[x]^2 would cancel)
    return (_normal(rng, (2, 5, 7, 40), dtype) * 2 + 3).astype(dtype)


def _bn_params(rng, dtype, c=40):
    return _normal(rng, c, dtype), _normal(rng, c, dtype)


def _bn_train(rng, dtype):
    x = _bn_x(rng, dtype)
    return (x, *_bn_params(rng, dtype), 1e-3)


def _bn_infer(rng, dtype):
    x = _bn_x(rng, dtype)
    gamma, beta = _bn_params(rng, dtype)
    return x, gamma, beta, _normal(rng, 40, dtype), (rng.random(40) + 0.5).astype(dtype), 1e-3


def _bn_backward(training):
    def make(rng, dtype):
        x = _bn_x(rng, dtype)
        gamma, _ = _bn_params(rng, dtype)
        dy = _normal(rng, x.shape, dtype)
        if training:
            mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
        else:
            mean, var = _normal(rng, 40, dtype), (rng.random(40) + 0.5).astype(dtype)
        return dy, x, gamma, mean.astype(dtype), var.astype(dtype), 1e-3, training
    return make


def _activation_x(rng, dtype):
    x = _normal(rng, (3, 5, 7, 11), dtype)
    x.flat[:3] = (0.0, np.nan, -0.0)   # the subgradient at 0 and NaN propagation
    return x


def pool_args(pool, stride, padding, ties=False, backward=False, shape=(1, 9, 10, 40)):
    def make(rng, dtype):
        x = rng.integers(0, 3, shape).astype(dtype) if ties else _normal(rng, shape, dtype)
        st = (stride, stride)
        pads = resolve_padding(padding, shape[1:3], (pool, pool), st)
        if not backward:
            return x, (pool, pool), st, pads
        from npxception.shapes import conv_output_hw

        ho, wo = conv_output_hw(shape[1:3], (pool, pool), st, pads)
        return _normal(rng, (shape[0], ho, wo, shape[3]), dtype), x, (pool, pool), st, pads
    return make


def _dense(bias):
    def make(rng, dtype):
        x, w = _normal(rng, (5, 20), dtype), _normal(rng, (20, 130), dtype)
        return x, w, (_normal(rng, 130, dtype) if bias else None)
    return make


def _dense_backward(bias):
    def make(rng, dtype):
        x, w = _normal(rng, (5, 20), dtype), _normal(rng, (20, 130), dtype)
        return _normal(rng, (5, 130), dtype), x, w, bias
    return make


def _logits(scale=1.0):
    def make(rng, dtype, smoothing=0.0):
        z = (_normal(rng, (5, 7), dtype) * scale).astype(dtype)
        return z, rng.integers(0, 7, 5).astype(np.int64), smoothing
    return make


def _loss(scale, smoothing):
    return lambda rng, dtype: _logits(scale)(rng, dtype, smoothing)


def _loss_backward(scale, smoothing):
    return lambda rng, dtype: (0.7, *_logits(scale)(rng, dtype, smoothing))


def _params(rng, dtype, n=700):
    return [_normal(rng, n, dtype) for _ in range(2)]


def _sgd(nesterov, wd):
    def make(rng, dtype):
        p, g = _params(rng, dtype)
        return p, g, _normal(rng, p.size, dtype), 0.05, 0.9, nesterov, wd
    return make


def _rmsprop(rng, dtype):
    p, g = _params(rng, dtype)
    return p, g, rng.random(p.size).astype(dtype), _normal(rng, p.size, dtype), 1e-3, 0.9, 0.9, 1e-7, 1e-5


def _adam(decoupled):
    def make(rng, dtype):
        p, g = _params(rng, dtype)
        return (p, g, _normal(rng, p.size, dtype), rng.random(p.size).astype(dtype), 1e-3, 0.9, 0.999,
                1e-7, 1e-2, decoupled, 3)
    return make


CASES: list[Case] = [
    *_depthwise_cases(),
    Case("pointwise_conv2d", "pointwise_conv2d", _pointwise),
    Case("pointwise_conv2d_backward", "pointwise_conv2d_backward", _pointwise_backward),
    *_conv_cases(),
    Case("dense/bias", "dense", _dense(True)),
    Case("dense/no_bias", "dense", _dense(False)),
    Case("dense_backward/bias", "dense_backward", _dense_backward(True)),
    Case("dense_backward/no_bias", "dense_backward", _dense_backward(False)),
    Case("batch_norm_train", "batch_norm_train", _bn_train),
    Case("batch_norm_infer", "batch_norm_infer", _bn_infer),
    Case("batch_norm_backward/training", "batch_norm_backward", _bn_backward(True)),
    Case("batch_norm_backward/inference", "batch_norm_backward", _bn_backward(False)),
    Case("moving_average_update", "moving_average_update",
         lambda rng, dt: (_normal(rng, 40, dt), _normal(rng, 40, dt), 0.99)),
    Case("relu", "relu", lambda rng, dt: (_activation_x(rng, dt),)),
    Case("relu_backward", "relu_backward",
         lambda rng, dt: (_normal(rng, (3, 5, 7, 11), dt), _activation_x(rng, dt))),
    Case("elu", "elu", lambda rng, dt: (_activation_x(rng, dt), 0.7)),
    Case("elu_backward", "elu_backward",
         lambda rng, dt: (_normal(rng, (3, 5, 7, 11), dt), _activation_x(rng, dt), 0.7)),
    Case("max_pool2d/3s2_same", "max_pool2d", pool_args(3, 2, "same")),
    Case("max_pool2d/2s2_valid_ties", "max_pool2d", pool_args(2, 2, "valid", ties=True, shape=(2, 5, 6, 8))),
    Case("max_pool2d_backward/3s2_same", "max_pool2d_backward", pool_args(3, 2, "same", backward=True)),
    Case("max_pool2d_backward/3s2_same_ties", "max_pool2d_backward",
         pool_args(3, 2, "same", ties=True, backward=True)),
    Case("max_pool2d_backward/2s1_valid", "max_pool2d_backward",
         pool_args(2, 1, "valid", backward=True, shape=(2, 5, 6, 8))),
    Case("global_avg_pool2d", "global_avg_pool2d",
         lambda rng, dt: (_normal(rng, (2, 3, 2, 300), dt),)),
    Case("global_avg_pool2d_backward", "global_avg_pool2d_backward",
         lambda rng, dt: (_normal(rng, (2, 300), dt), _normal(rng, (2, 3, 2, 300), dt))),
    Case("dropout", "dropout", lambda rng, dt: (_normal(rng, (4, 300), dt), 0.3, 7), exact=True),
    Case("dropout_backward", "dropout_backward",
         lambda rng, dt: (_normal(rng, (4, 300), dt), 0.5, 2**40 + 3), exact=True),
    Case("softmax_cross_entropy", "softmax_cross_entropy", _loss(1.0, 0.0)),
    Case("softmax_cross_entropy/smoothing_large", "softmax_cross_entropy", _loss(1e4, 0.1)),
    Case("softmax_cross_entropy_backward", "softmax_cross_entropy_backward", _loss_backward(1.0, 0.1)),
    Case("softmax_cross_entropy_backward/large", "softmax_cross_entropy_backward",
         _loss_backward(1e4, 0.0)),
    Case("add", "add", lambda rng, dt: (_normal(rng, (3, 7, 50), dt), _normal(rng, (3, 7, 50), dt)),
         exact=True),
    Case("add_backward", "add_backward", lambda rng, dt: (_normal(rng, (3, 7, 50), dt),), exact=True),
    Case("sgd_update", "sgd_update", _sgd(False, 0.0), in_place=True),
    Case("sgd_update/nesterov_wd", "sgd_update", _sgd(True, 1e-5), in_place=True),
    Case("rmsprop_update", "rmsprop_update", _rmsprop, in_place=True),
    Case("adam_update", "adam_update", _adam(False), in_place=True),
    Case("adam_update/decoupled", "adam_update", _adam(True), in_place=True),
    Case("ema_update", "ema_update",
         lambda rng, dt: (*_params(rng, dt), 0.999), in_place=True),
    Case("scale_", "scale_", lambda rng, dt: (_normal(rng, 700, dt), 0.25), in_place=True),
    Case("sum_squares", "sum_squares", lambda rng, dt: (_normal(rng, 1000, dt),)),
    Case("zeros", "zeros", lambda rng, dt: ((3, 70), dt), exact=True),
]


def case_args(case: Case, dtype) -> tuple:
    """The arguments `run` passes for `case` drawn in `dtype` (the same every time)."""
    return case.make_args(_rng(case.name, dtype), dtype)


def run(backend, case: Case, dtype, compute_dtype=None) -> list:
    """Call `case` on `backend` with fresh copies of its arguments; results as NumPy arrays.

    With `compute_dtype`, the arguments drawn in `dtype` have their float arrays cast to it first:
    a float64 reference on exactly the inputs that a float32 run sees.
    """
    args = case_args(case, dtype)
    if compute_dtype is not None:
        args = tuple(a.astype(compute_dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
                     for a in args)
    moved = [backend.to_device(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
    out = getattr(backend, case.fn)(*moved)
    if case.in_place:
        return [backend.to_numpy(m) for m, a in zip(moved, args) if isinstance(a, np.ndarray)]
    results = []
    for o in out if isinstance(out, tuple) else (out,):
        if o is None or isinstance(o, float):   # db without bias; sum_squares's float
            results.append(o)
        else:
            results.append(np.asarray(backend.to_numpy(o)))
    return results
