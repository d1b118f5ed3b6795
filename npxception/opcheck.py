"""Gradient-check every op of `npxception.ops` and every `nn` layer on small float64 inputs, on any backend.

`check_all_ops()` returns one `GradcheckReport` per op, `check_all_layers()` one per layer type (and
one Xception block); `format_table()` prints the op reports. This is what `npxception gradcheck`
shows, and what the test suite asserts on.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import ops
from .gradcheck import GradcheckReport, gradcheck

Case = tuple[Callable, dict, Callable]


def _cases(rng: np.random.Generator, backend: str) -> dict[str, Case]:
    """op name -> (forward(**inputs), inputs, backward(dy, **inputs) -> {name: grad})."""
    b = dict(backend=backend)
    n = rng.standard_normal
    conv = dict(stride=2, padding="same", dilation=1, **b)   # the asymmetric "same" case
    dil = dict(stride=1, padding="same", dilation=2, **b)
    x = n((2, 6, 5, 3))
    labels = np.array([1, 0, 3])
    bn_stats = dict(moving_mean=n(3), moving_variance=rng.uniform(0.5, 2, 3))

    def grads(names, fn):
        return lambda dy, **a: dict(zip(names, fn(dy, **a)))

    def bn(training):
        kw = dict(training=training, **b)
        return (lambda x, gamma, beta: ops.batch_norm(x, gamma, beta, **bn_stats, **kw)[0],
                dict(x=x * 2 + 1, gamma=rng.uniform(0.5, 1.5, 3), beta=n(3)),
                grads(["x", "gamma", "beta"], lambda dy, x, gamma, beta: ops.batch_norm_backward(
                    dy, x, gamma, beta, **bn_stats, **kw)))

    return {
        "conv2d": (lambda x, w: ops.conv2d(x, w, **conv), dict(x=x, w=n((3, 3, 3, 4))),
                   grads("xw", lambda dy, x, w: ops.conv2d_backward(dy, x, w, **conv))),
        "depthwise_conv2d": (
            lambda x, w: ops.depthwise_conv2d(x, w, **conv), dict(x=x, w=n((3, 3, 3, 2))),
            grads("xw", lambda dy, x, w: ops.depthwise_conv2d_backward(dy, x, w, **conv))),
        "depthwise_conv2d dilated": (
            lambda x, w: ops.depthwise_conv2d(x, w, **dil), dict(x=x, w=n((3, 3, 3, 1))),
            grads("xw", lambda dy, x, w: ops.depthwise_conv2d_backward(dy, x, w, **dil))),
        "pointwise_conv2d": (
            lambda x, w: ops.pointwise_conv2d(x, w, **b), dict(x=x, w=n((1, 1, 3, 4))),
            grads("xw", lambda dy, x, w: ops.pointwise_conv2d_backward(dy, x, w, **b))),
        "separable_conv2d": (
            lambda x, dw, pw: ops.separable_conv2d(x, dw, pw, **conv),
            dict(x=x, dw=n((3, 3, 3, 2)), pw=n((1, 1, 6, 4))),
            grads(["x", "dw", "pw"],
                  lambda dy, x, dw, pw: ops.separable_conv2d_backward(dy, x, dw, pw, **conv))),
        "batch_norm training": bn(True),
        "batch_norm inference": bn(False),
        "relu": (lambda x: ops.relu(x, **b), dict(x=x),
                 lambda dy, x: {"x": ops.relu_backward(dy, x, **b)}),
        "elu": (lambda x: ops.elu(x, **b), dict(x=x),
                lambda dy, x: {"x": ops.elu_backward(dy, x, **b)}),
        "max_pool2d": (lambda x: ops.max_pool2d(x, **b), dict(x=x),
                       lambda dy, x: {"x": ops.max_pool2d_backward(dy, x, **b)}),
        "global_avg_pool2d": (lambda x: ops.global_avg_pool2d(x, **b), dict(x=x),
                              lambda dy, x: {"x": ops.global_avg_pool2d_backward(dy, x, **b)}),
        "dense": (lambda x, w, bias: ops.dense(x, w, bias, **b),
                  dict(x=n((3, 5)), w=n((5, 4)), bias=n(4)),
                  grads(["x", "w", "bias"], lambda dy, x, w, bias: ops.dense_backward(dy, x, w, bias, **b))),
        "dropout": (lambda x: ops.dropout(x, rate=0.3, seed=7, **b), dict(x=x),
                    lambda dy, x: {"x": ops.dropout_backward(dy, rate=0.3, seed=7, **b)}),
        "softmax_cross_entropy": (
            lambda z: np.asarray(ops.softmax_cross_entropy(z, labels, label_smoothing=0.1, **b)),
            dict(z=n((3, 5))),
            lambda dy, z: {"z": ops.softmax_cross_entropy_backward(dy, z, labels,
                                                                   label_smoothing=0.1, **b)}),
        "add": (lambda p, q: ops.add(p, q, **b), dict(p=x, q=n(x.shape)),
                grads("pq", lambda dy, p, q: ops.add_backward(dy, p, q, **b))),
    }


def check_all_ops(backend: str = "numpy", seed: int = 0, max_samples: int = 32) -> dict[str, GradcheckReport]:
    """Gradient-check every op in float64; returns {op: report}."""
    rng = np.random.default_rng(seed)
    return {name: gradcheck(f, inputs, backward, seed=seed, max_samples=max_samples)
            for name, (f, inputs, backward) in _cases(rng, backend).items()}


def format_table(reports: dict[str, GradcheckReport], tol: float = 1e-6) -> str:
    """One row per (op, input): elements checked, max relative error, pass/FAIL at `tol`."""
    rows = [f"{'op':<26} {'input':<8} {'checked':>7} {'max rel error':>14}  status"]
    for op, report in reports.items():
        for name, err in report.errors.items():
            status = "ok" if err <= tol else "FAIL"
            rows.append(f"{op:<26} {name:<8} {report.checked[name]:>7} {err:>14.2e}  {status}")
    return "\n".join(rows)


def layer_cases(backend: str) -> dict:
    """name -> (float64 layer, input, training): every layer type, and one Xception block."""
    from . import nn

    rng = np.random.default_rng(0)
    f64 = {"backend": backend, "dtype": "float64"}
    x = rng.standard_normal((2, 5, 5, 3))

    def block():  # block 2's shape: separable conv, BN, max pool; shortcut 1x1 stride 2 conv + BN
        main = nn.Sequential("main", [nn.SeparableConv2D("sepconv", 3, 4, rng=rng, **f64),
                                      nn.BatchNorm("sepconv_bn", 4, **f64), nn.MaxPool2D("pool", **f64)],
                             **f64)
        shortcut = nn.Sequential("shortcut", [nn.Conv2D("conv", 3, 4, 1, stride=2, padding="same",
                                                        rng=rng, **f64), nn.BatchNorm("bn", 4, **f64)],
                                 **f64)
        return nn.Residual("block", main, shortcut, **f64)

    return {
        "Conv2D 3x3 s2 same": (nn.Conv2D("conv", 3, 4, 3, stride=2, padding="same", rng=rng, **f64), x, True),
        "DepthwiseConv2D x2": (nn.DepthwiseConv2D("depthwise", 3, 3, depth_multiplier=2, padding="same",
                                                  rng=rng, **f64), x, True),
        "PointwiseConv2D": (nn.PointwiseConv2D("pointwise", 3, 4, rng=rng, **f64), x, True),
        "SeparableConv2D elu": (nn.SeparableConv2D("sepconv", 3, 4, intermediate_activation="elu",
                                                   rng=rng, **f64), x, True),
        "BatchNorm training": (nn.BatchNorm("bn", 3, **f64), x, True),
        "BatchNorm inference": (nn.BatchNorm("bn", 3, **f64), x, False),
        "ReLU": (nn.ReLU("relu", **f64), x, True),
        "BatchNormReLU training": (nn.BatchNormReLU(nn.BatchNorm("bn", 3, **f64), nn.ReLU("relu", **f64)), x, True),
        "BatchNormReLU inference": (nn.BatchNormReLU(nn.BatchNorm("bn", 3, **f64), nn.ReLU("relu", **f64)), x,
                                    False),
        "ELU": (nn.ELU("elu", **f64), x, True),
        "MaxPool2D 3x3 s2 same": (nn.MaxPool2D("pool", **f64), x, True),
        "GlobalAvgPool2D": (nn.GlobalAvgPool2D("avg_pool", **f64), x, True),
        "Dense": (nn.Dense("predictions", 3, 4, rng=rng, **f64), rng.standard_normal((2, 3)), True),
        "Dropout 0.3": (nn.Dropout("dropout", 0.3, seed=1, **f64), x, True),
        "Residual block": (block(), x, True),
    }


def check_all_layers(backend: str = "numpy") -> dict:
    """Gradient-check every layer type in float64 (d(output)/d(input) and /d(each weight)); {name: report}."""
    from .nn.check import gradcheck_layer

    return {name: gradcheck_layer(layer, x, training=training)
            for name, (layer, x, training) in layer_cases(backend).items()}
