"""Layers: every one passes the finite-difference check in float64 (weights and input), on every
backend this machine has; initializers, BatchNorm's statistics, dropout and errors behave as Keras's."""

from __future__ import annotations

import numpy as np
import pytest

from npxception import nn, ops
from npxception.nn.check import gradcheck_layer
from npxception.nn.initializers import glorot_fans, glorot_uniform
from npxception.testing import complete_backends
from npxception.testing.compare import assert_close
from tests.conftest import record_error

BACKENDS = complete_backends()
F64 = {"dtype": "float64"}


def _rng():
    return np.random.default_rng(7)


# Each case: (label, factory(backend) -> layer, input shape, training).
LAYER_CASES = [
    ("conv 3x3 s2 same", lambda be: nn.Conv2D("conv", 3, 4, 3, stride=2, padding="same", rng=_rng(),
                                              backend=be, **F64), (2, 7, 6, 3), True),
    ("conv 3x3 valid", lambda be: nn.Conv2D("conv", 2, 3, 3, rng=_rng(), backend=be, **F64),
     (2, 5, 5, 2), True),
    ("depthwise M=2 s2 same", lambda be: nn.DepthwiseConv2D(
        "dw", 3, 3, depth_multiplier=2, stride=2, padding="same", rng=_rng(), backend=be, **F64),
     (2, 7, 6, 3), True),
    ("pointwise", lambda be: nn.PointwiseConv2D("pw", 3, 5, rng=_rng(), backend=be, **F64),
     (2, 3, 4, 3), True),
    ("separable", lambda be: nn.SeparableConv2D("sep", 3, 4, rng=_rng(), backend=be, **F64),
     (2, 5, 5, 3), True),
    ("separable relu s2", lambda be: nn.SeparableConv2D(
        "sep", 3, 4, stride=2, intermediate_activation="relu", rng=_rng(), backend=be, **F64),
     (2, 6, 5, 3), True),
    ("separable elu", lambda be: nn.SeparableConv2D(
        "sep", 2, 3, intermediate_activation="elu", rng=_rng(), backend=be, **F64),
     (2, 4, 4, 2), True),
    ("batch norm training", lambda be: nn.BatchNorm("bn", 3, backend=be, **F64), (3, 4, 3, 3), True),
    ("batch norm inference", lambda be: nn.BatchNorm("bn", 3, backend=be, **F64), (3, 4, 3, 3), False),
    ("relu", lambda be: nn.ReLU("relu", backend=be, **F64), (2, 3, 3, 4), True),
    ("batch norm + relu training", lambda be: nn.BatchNormReLU(nn.BatchNorm("bn", 3, backend=be, **F64),
                                                               nn.ReLU("relu", backend=be, **F64)),
     (3, 4, 3, 3), True),
    ("batch norm + relu inference", lambda be: nn.BatchNormReLU(nn.BatchNorm("bn", 3, backend=be, **F64),
                                                                nn.ReLU("relu", backend=be, **F64)),
     (3, 4, 3, 3), False),
    ("elu", lambda be: nn.ELU("elu", backend=be, **F64), (2, 3, 3, 4), True),
    ("max pool 3x3 s2 same", lambda be: nn.MaxPool2D("pool", backend=be, **F64), (2, 8, 7, 3), True),
    ("global avg pool", lambda be: nn.GlobalAvgPool2D("gap", backend=be, **F64), (2, 3, 4, 5), True),
    ("dense", lambda be: nn.Dense("fc", 6, 4, rng=_rng(), backend=be, **F64), (3, 6), True),
    ("dropout", lambda be: nn.Dropout("drop", 0.4, seed=11, backend=be, **F64), (4, 6), True),
]


def _residual_block(be, with_conv_shortcut: bool):
    """Xception's downsampling block in miniature: main path and a 1x1/2 conv + BN shortcut."""
    r = _rng()
    main = nn.Sequential("main", [
        nn.ReLU("act", backend=be, **F64),
        nn.SeparableConv2D("sep", 3, 4, rng=r, backend=be, **F64),
        nn.BatchNorm("sep_bn", 4, backend=be, **F64),
        nn.MaxPool2D("pool", backend=be, **F64),
    ] if with_conv_shortcut else [
        nn.ReLU("act", backend=be, **F64),
        nn.SeparableConv2D("sep", 3, 3, rng=r, backend=be, **F64),
        nn.BatchNorm("sep_bn", 3, backend=be, **F64),
    ], backend=be, **F64)
    shortcut = nn.Sequential("shortcut", [
        nn.Conv2D("sc", 3, 4, 1, stride=2, padding="same", rng=r, backend=be, **F64),
        nn.BatchNorm("sc_bn", 4, backend=be, **F64),
    ], backend=be, **F64) if with_conv_shortcut else None
    return nn.Residual("block", main, shortcut, backend=be, **F64)


LAYER_CASES += [
    ("residual, conv shortcut", lambda be: _residual_block(be, True), (2, 7, 7, 3), True),
    ("residual, identity", lambda be: _residual_block(be, False), (2, 4, 4, 3), True),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("label, make, shape, training", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_gradients_match_finite_differences(backend, label, make, shape, training):
    layer = make(backend)
    x = np.random.default_rng(3).standard_normal(shape)
    report = gradcheck_layer(layer, x, training=training)
    record_error(f"layer gradcheck {label}", report.max_error)
    assert set(report.errors) == {"x"} | {f"{leaf.name}/{k}" for leaf in layer.leaves()
                                          for k in leaf.params}
    report.assert_ok(1e-6)


def test_gradcheck_layer_catches_a_wrong_weight_gradient():
    layer = nn.Dense("fc", 3, 2, rng=_rng(), **F64)
    right = layer.backward

    def off_by_a_bit(dy):
        dx = right(dy)
        layer.grads["kernel"] = layer.grads["kernel"] * 1.01
        return dx

    layer.backward = off_by_a_bit
    report = gradcheck_layer(layer, np.random.default_rng(0).standard_normal((2, 3)))
    assert report.errors["x"] < 1e-6 and not report.ok(1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layers_agree_with_ops_in_float32(backend):
    """The layer is a thin shell over the op: same numbers as npxception.ops on the reference."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 9, 4)).astype(np.float32)
    sep = nn.SeparableConv2D("sep", 4, 6, stride=2, rng=rng, backend=backend)
    y = sep.forward(sep.backend.to_device(x), True)
    dk, pk = (sep.backend.to_numpy(sep.params[k]) for k in ("depthwise_kernel", "pointwise_kernel"))
    assert_close(sep.backend.to_numpy(y), ops.separable_conv2d(x, dk, pk, stride=2, padding="same"),
                 name="separable forward")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = sep.backward(sep.backend.to_device(dy))
    want = ops.separable_conv2d_backward(dy, x, dk, pk, stride=2, padding="same")
    for got, expected, name in zip((dx, sep.grads["depthwise_kernel"], sep.grads["pointwise_kernel"]),
                                   want, ("dx", "d_depthwise", "d_pointwise")):
        assert_close(sep.backend.to_numpy(got), expected, name=name)


@pytest.mark.parametrize("shape, fans", [
    ((3, 3, 16, 32), (144, 288)),        # conv: receptive field 9
    ((3, 3, 16, 1), (144, 9)),           # depthwise, multiplier 1 (Keras's rule on the shape)
    ((1, 1, 16, 32), (16, 32)),          # pointwise
    ((16, 10), (16, 10)),                # dense
])
def test_glorot_fans_are_keras(shape, fans):
    assert glorot_fans(shape) == fans
    w = glorot_uniform(shape, np.random.default_rng(0))
    limit = np.sqrt(6.0 / sum(fans))
    assert w.shape == shape and np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit


def test_initial_weights_follow_keras():
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm("bn", 5)
    dense = nn.Dense("fc", 4000, 3000, rng=rng)
    np.testing.assert_array_equal(bn.params["gamma"], 1)
    np.testing.assert_array_equal(bn.params["beta"], 0)
    np.testing.assert_array_equal(bn.state["moving_mean"], 0)
    np.testing.assert_array_equal(bn.state["moving_variance"], 1)
    np.testing.assert_array_equal(dense.params["bias"], 0)
    limit = np.sqrt(6.0 / 7000)  # uniform on [-limit, limit]: standard deviation limit / sqrt(3)
    assert dense.params["kernel"].dtype == np.float32
    assert abs(dense.params["kernel"].std() / (limit / np.sqrt(3)) - 1) < 0.01


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_norm_moving_statistics_as_keras(backend):
    """moving = moving * 0.99 + batch * 0.01, with the biased batch variance; inference uses them."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 3, 3, 2)) * 3 + 5).astype(np.float64)
    bn = nn.BatchNorm("bn", 2, backend=backend, **F64)
    bn.forward(bn.backend.to_device(x), True)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    assert_close(bn.backend.to_numpy(bn.state["moving_mean"]), 0.01 * mean, name="moving_mean")
    assert_close(bn.backend.to_numpy(bn.state["moving_variance"]), 0.99 + 0.01 * var,
                 name="moving_variance")
    y = bn.backend.to_numpy(bn.forward(bn.backend.to_device(x), False))
    expected = (x - 0.01 * mean) / np.sqrt(0.99 + 0.01 * var + 1e-3)
    assert_close(y, expected, name="inference output")


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_mask_is_the_ops_mask_and_identity_in_inference(backend):
    x = np.random.default_rng(2).standard_normal((8, 16)).astype(np.float32)
    drop = nn.Dropout("drop", 0.5, seed=42, backend=backend)
    y = drop.backend.to_numpy(drop.forward(drop.backend.to_device(x), True))
    np.testing.assert_array_equal(y, ops.dropout(x, rate=0.5, seed=42))
    assert 0.3 < np.mean(y == 0) < 0.7
    assert drop.forward(x, False) is x


def test_layer_errors_name_the_layer_and_the_problem():
    conv = nn.Conv2D("block1_conv1", 3, 8, 3, rng=_rng())
    with pytest.raises(ValueError, match=r"block1_conv1: expects 3 input channels, got shape \(1, 8, 8, 4\)"):
        conv.forward(np.zeros((1, 8, 8, 4), np.float32), True)
    with pytest.raises(ValueError, match="block1_conv1: input must be NHWC with 4 dims"):
        conv.forward(np.zeros((8, 8, 3), np.float32), True)
    with pytest.raises(TypeError, match="block1_conv1: input must be float32"):
        conv.forward(np.zeros((1, 8, 8, 3)), True)
    with pytest.raises(ValueError, match="too small"):
        conv.forward(np.zeros((1, 2, 2, 3), np.float32), True)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        conv.backward(np.zeros((1, 6, 6, 8), np.float32))
    with pytest.raises(ValueError, match="intermediate_activation"):
        nn.SeparableConv2D("sep", 3, 4, intermediate_activation="tanh", rng=_rng())
    with pytest.raises(ValueError, match="padding"):
        nn.MaxPool2D("pool", padding="full")
    block = nn.Residual("block2", nn.PointwiseConv2D("pw", 3, 4, rng=_rng()))
    with pytest.raises(ValueError, match=r"block2: main path gives \(1, 2, 2, 4\) but the shortcut"):
        block.forward(np.zeros((1, 2, 2, 3), np.float32), True)
