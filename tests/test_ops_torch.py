"""Every op's forward and every gradient against PyTorch, float64 to 1e-9 and float32 to 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from npxception import ops
from tests import torch_ops
from npxception.testing.compare import assert_close
from tests.conftest import record_error


def parity(label, forward, backward, torch_forward, arrays, wrt, *, seed=0, rtol=None):
    """Run our forward/backward and PyTorch's autograd on the same arrays and compare all of it.

    forward(**arrays) -> y; backward(dy, **arrays) -> {name: grad}; torch_forward(**tensors) -> y.
    """
    y = forward(**arrays)
    tensors = {k: torch.tensor(v, requires_grad=k in wrt) if isinstance(v, np.ndarray)
               and v.dtype.kind == "f" else torch.tensor(v) for k, v in arrays.items()}
    y_t = torch_forward(**tensors)
    dtype = np.asarray(y).dtype
    record_error(f"{label} y {dtype}", assert_close(y, y_t.detach().numpy(), name="y", rtol=rtol))
    dy = np.random.default_rng(seed).standard_normal(np.shape(y)).astype(dtype)
    y_t.backward(torch.tensor(dy))
    grads = backward(dy if np.ndim(y) else float(dy), **arrays)
    for name in wrt:
        err = assert_close(grads[name], tensors[name].grad.numpy(), name=f"d{name}", rtol=rtol)
        record_error(f"{label} d{name} {dtype}", err)


def randn(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------ convolutions

CONV_CASES = [
    # (x shape, kernel (kh, kw), stride, padding, dilation)
    ((2, 7, 7, 3), (3, 3), 1, "same", 1),
    ((2, 8, 8, 3), (3, 3), 2, "same", 1),     # even size, stride 2: asymmetric (0, 1) padding
    ((1, 9, 6, 2), (3, 3), 2, "same", 1),     # odd and even axes
    ((2, 7, 7, 3), (3, 3), 1, "valid", 1),
    ((2, 9, 9, 2), (3, 3), 1, "same", 2),     # dilation 2
    ((1, 10, 11, 2), (3, 2), (2, 1), 1, (2, 1)),
    ((1, 1, 1, 4), (3, 3), 1, "same", 1),     # 1x1 spatial
    ((3, 5, 5, 1), (1, 1), 2, "valid", 1),
]


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", CONV_CASES)
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv2d_matches_torch(rng, shape, kernel, stride, padding, dilation, multiplier):
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    arrays = dict(x=randn(rng, shape), w=randn(rng, (*kernel, shape[3], multiplier)))
    parity("depthwise_conv2d", lambda x, w: ops.depthwise_conv2d(x, w, **kw),
           lambda dy, x, w: dict(zip("xw", ops.depthwise_conv2d_backward(dy, x, w, **kw))),
           lambda x, w: torch_ops.depthwise_conv2d(x, w, **kw), arrays, ["x", "w"])


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", CONV_CASES)
def test_conv2d_matches_torch(rng, shape, kernel, stride, padding, dilation):
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    arrays = dict(x=randn(rng, shape), w=randn(rng, (*kernel, shape[3], 4)))
    parity("conv2d", lambda x, w: ops.conv2d(x, w, **kw),
           lambda dy, x, w: dict(zip("xw", ops.conv2d_backward(dy, x, w, **kw))),
           lambda x, w: torch_ops.conv2d(x, w, **kw), arrays, ["x", "w"])


# Xception's stem convolutions in miniature, on the cpu backend, whose conv.py routes narrow 3x3
# convs to its direct kernels and the rest to im2col + GEMM (its docstring gives the rules).
CPU_STEM_CASES = [
    # (x shape, Cout, stride, padding, dilation)
    ((2, 11, 10, 3), 8, 1, "valid", 1),    # `small`'s first stem: 144 output pixels
    ((2, 10, 9, 8), 16, 1, "valid", 1),    # `small`'s second stem
    ((1, 13, 12, 3), 32, 2, "valid", 1),   # the paper's first stem
    ((1, 9, 9, 32), 8, 1, "same", 2),      # Cin 32, dilation 2
    ((1, 8, 7, 32), 64, 1, "valid", 1),    # the paper's second stem: GEMM and col2im
    ((2, 9, 8, 3), 8, 2, "same", 1),       # even width, stride 2: asymmetric "same" padding
    ((1, 11, 9, 8), 6, 2, "same", 2),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,cout,stride,padding,dilation", CPU_STEM_CASES)
def test_cpu_conv2d_matches_torch(rng, shape, cout, stride, padding, dilation, dtype):
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    arrays = dict(x=randn(rng, shape, dtype), w=randn(rng, (3, 3, shape[3], cout), dtype))
    parity("conv2d cpu", lambda x, w: ops.conv2d(x, w, **kw, backend="cpu"),
           lambda dy, x, w: dict(zip("xw", ops.conv2d_backward(dy, x, w, **kw, backend="cpu"))),
           lambda x, w: torch_ops.conv2d(x, w, **kw), arrays, ["x", "w"],
           rtol=1e-13 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("shape,cout", [((2, 5, 5, 3), 4), ((1, 1, 1, 6), 2), ((3, 4, 7, 8), 5)])
def test_pointwise_conv2d_matches_torch(rng, shape, cout):
    arrays = dict(x=randn(rng, shape), w=randn(rng, (1, 1, shape[3], cout)))
    parity("pointwise_conv2d", ops.pointwise_conv2d,
           lambda dy, x, w: dict(zip("xw", ops.pointwise_conv2d_backward(dy, x, w))),
           torch_ops.pointwise_conv2d, arrays, ["x", "w"])


@pytest.mark.parametrize("stride,padding,dilation,multiplier", [
    (1, "same", 1, 1), (2, "same", 1, 2), (1, "valid", 2, 1)])
def test_separable_conv2d_matches_torch(rng, stride, padding, dilation, multiplier):
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    c = 3
    arrays = dict(x=randn(rng, (2, 8, 7, c)), dwk=randn(rng, (3, 3, c, multiplier)),
                  pwk=randn(rng, (1, 1, c * multiplier, 5)))
    parity("separable_conv2d", lambda x, dwk, pwk: ops.separable_conv2d(x, dwk, pwk, **kw),
           lambda dy, x, dwk, pwk: dict(zip(["x", "dwk", "pwk"],
                                            ops.separable_conv2d_backward(dy, x, dwk, pwk, **kw))),
           lambda x, dwk, pwk: torch_ops.separable_conv2d(x, dwk, pwk, **kw), arrays,
           ["x", "dwk", "pwk"])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 4),
       k=st.integers(1, 3), s=st.integers(1, 3), d=st.integers(1, 2), m=st.integers(1, 2),
       padding=st.sampled_from(["same", "valid"]))
def test_depthwise_shape_sweep(n, h, w, c, k, s, d, m, padding):
    if padding == "valid" and min(h, w) < d * (k - 1) + 1:
        return  # empty output: covered by the validation tests
    rng = np.random.default_rng(n * 1000 + h * 100 + w)
    kw = dict(stride=s, padding=padding, dilation=d)
    arrays = dict(x=randn(rng, (n, h, w, c)), w=randn(rng, (k, k, c, m)))
    parity("depthwise_conv2d", lambda x, w: ops.depthwise_conv2d(x, w, **kw),
           lambda dy, x, w: dict(zip("xw", ops.depthwise_conv2d_backward(dy, x, w, **kw))),
           lambda x, w: torch_ops.depthwise_conv2d(x, w, **kw), arrays, ["x", "w"])


# ------------------------------------------------------------------ batch norm

@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 5, 5, 3), (1, 3, 2, 6), (8, 1, 1, 4)])
def test_batch_norm_matches_torch(rng, training, shape):
    c = shape[3]
    arrays = dict(x=randn(rng, shape) * 2 + 0.5, gamma=rng.uniform(0.5, 1.5, c),
                  beta=randn(rng, c), mm=randn(rng, c), mv=rng.uniform(0.5, 2.0, c))

    def forward(x, gamma, beta, mm, mv):
        return ops.batch_norm(x, gamma, beta, mm, mv, training=training)[0]

    def backward(dy, x, gamma, beta, mm, mv):
        grads = ops.batch_norm_backward(dy, x, gamma, beta, mm, mv, training=training)
        return dict(zip(["x", "gamma", "beta"], grads))

    parity(f"batch_norm training={training}", forward, backward,
           lambda x, gamma, beta, mm, mv: torch_ops.batch_norm(x, gamma, beta, mm, mv, training),
           arrays, ["x", "gamma", "beta"])


def test_batch_norm_moving_statistics_follow_keras_rule(rng):
    """Keras: moving = moving * momentum + batch * (1 - momentum), with the *biased* variance."""
    x = randn(rng, (4, 3, 3, 2)) * 3 + 1
    mm, mv = randn(rng, 2), rng.uniform(0.5, 2, 2)
    _, new_mm, new_mv = ops.batch_norm(x, np.ones(2), np.zeros(2), mm, mv, training=True,
                                       momentum=0.9)
    flat = x.reshape(-1, 2)
    assert_close(new_mm, 0.9 * mm + 0.1 * flat.mean(0))
    assert_close(new_mv, 0.9 * mv + 0.1 * flat.var(0, ddof=0))
    _, same_mm, same_mv = ops.batch_norm(x, np.ones(2), np.zeros(2), mm, mv, training=False)
    assert np.array_equal(same_mm, mm) and np.array_equal(same_mv, mv)


# ------------------------------------------------------------------ activations, pooling, dense

@pytest.mark.parametrize("name", ["relu", "elu"])
def test_activations_match_torch(rng, name):
    arrays = dict(x=randn(rng, (2, 4, 3, 5)) * 3)
    fwd, bwd = getattr(ops, name), getattr(ops, name + "_backward")
    parity(name, fwd, lambda dy, x: {"x": bwd(dy, x)}, getattr(torch_ops, name), arrays, ["x"])


def test_elu_alpha_matches_torch(rng):
    arrays = dict(x=randn(rng, (3, 7)))
    parity("elu alpha=0.5", lambda x: ops.elu(x, alpha=0.5),
           lambda dy, x: {"x": ops.elu_backward(dy, x, alpha=0.5)},
           lambda x: torch_ops.elu(x, alpha=0.5), arrays, ["x"])


@pytest.mark.parametrize("shape,pool,stride,padding", [
    ((2, 147, 147, 2), 3, 2, "same"),   # Xception's block 2 pool: pads (1, 1)
    ((2, 74, 74, 2), 3, 2, "same"),     # block 3 pool: pads (0, 1), the asymmetric case
    ((1, 5, 6, 3), 3, 2, "same"),
    ((2, 7, 7, 2), 2, 2, "valid"),
    ((1, 1, 1, 4), 3, 2, "same"),
    ((1, 6, 5, 2), (3, 2), (1, 2), 1),
])
def test_max_pool2d_matches_torch(rng, shape, pool, stride, padding):
    kw = dict(pool_size=pool, stride=stride, padding=padding)
    arrays = dict(x=randn(rng, shape))
    parity("max_pool2d", lambda x: ops.max_pool2d(x, **kw),
           lambda dy, x: {"x": ops.max_pool2d_backward(dy, x, **kw)},
           lambda x: torch_ops.max_pool2d(x, **kw), arrays, ["x"])


def test_max_pool2d_tie_goes_to_first_maximum():
    x = np.zeros((1, 2, 2, 1))
    dx = ops.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, pool_size=2, stride=2, padding="valid")
    assert dx[0, :, :, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (1, 1, 1, 7)])
def test_global_avg_pool2d_matches_torch(rng, shape):
    parity("global_avg_pool2d", ops.global_avg_pool2d,
           lambda dy, x: {"x": ops.global_avg_pool2d_backward(dy, x)},
           torch_ops.global_avg_pool2d, dict(x=randn(rng, shape)), ["x"])


@pytest.mark.parametrize("bias", [True, False])
def test_dense_matches_torch(rng, bias):
    arrays = dict(x=randn(rng, (5, 6)), w=randn(rng, (6, 3)))
    if bias:
        arrays["b"] = randn(rng, 3)
    wrt = list(arrays)
    parity("dense", ops.dense, lambda dy, **a: dict(zip(wrt, ops.dense_backward(dy, **a))),
           torch_ops.dense, arrays, wrt)


def test_add_matches_torch(rng):
    parity("add", ops.add, lambda dy, a, b: dict(zip("ab", ops.add_backward(dy, a, b))),
           lambda a, b: a + b, dict(a=randn(rng, (2, 3, 3, 4)), b=randn(rng, (2, 3, 3, 4))),
           ["a", "b"])


# ------------------------------------------------------------------ loss

@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("scale", [1.0, 1e4])   # logits of 1e4 must not overflow
def test_softmax_cross_entropy_matches_torch(rng, label_smoothing, scale):
    labels = np.array([0, 3, 2, 3, 1])
    arrays = dict(logits=randn(rng, (5, 4)) * scale, labels=labels)
    kw = dict(label_smoothing=label_smoothing)
    parity("softmax_cross_entropy",
           lambda logits, labels: np.asarray(ops.softmax_cross_entropy(logits, labels, **kw)),
           lambda dy, logits, labels: {
               "logits": ops.softmax_cross_entropy_backward(dy, logits, labels, **kw)},
           lambda logits, labels: torch_ops.softmax_cross_entropy(logits, labels, **kw),
           arrays, ["logits"])


# ------------------------------------------------------------------ float32

@pytest.mark.parametrize("op", ["depthwise_conv2d", "conv2d"])
def test_float32_matches_torch(rng, op):
    kw = dict(stride=2, padding="same")
    w_shape = (3, 3, 4, 2) if op == "depthwise_conv2d" else (3, 3, 4, 6)
    arrays = dict(x=randn(rng, (2, 9, 8, 4), np.float32), w=randn(rng, w_shape, np.float32))
    fwd, bwd = getattr(ops, op), getattr(ops, op + "_backward")
    y = fwd(arrays["x"], arrays["w"], **kw)
    assert y.dtype == np.float32
    parity(op, lambda x, w: fwd(x, w, **kw), lambda dy, x, w: dict(zip("xw", bwd(dy, x, w, **kw))),
           lambda x, w: getattr(torch_ops, op)(x, w, **kw), arrays, ["x", "w"])


def test_float32_batch_norm_matches_torch(rng):
    c = 3
    arrays = dict(x=randn(rng, (4, 5, 5, c), np.float32), gamma=np.ones(c, np.float32),
                  beta=np.zeros(c, np.float32), mm=np.zeros(c, np.float32), mv=np.ones(c, np.float32))
    parity("batch_norm training=True",
           lambda x, gamma, beta, mm, mv: ops.batch_norm(x, gamma, beta, mm, mv, training=True)[0],
           lambda dy, x, gamma, beta, mm, mv: dict(zip(["x", "gamma", "beta"], ops.batch_norm_backward(
               dy, x, gamma, beta, mm, mv, training=True))),
           lambda x, gamma, beta, mm, mv: torch_ops.batch_norm(x, gamma, beta, mm, mv, True),
           arrays, ["x", "gamma", "beta"])


# ------------------------------------------------------------------ non-finite values at the border

def inf_at_the_border(op):
    """x, a kernel with an Inf tap (0, 0), and dy with an Inf at output pixel (0, 0), for "same"."""
    rng = np.random.default_rng(7)
    x = rng.uniform(0.5, 1.5, (1, 5, 6, 3))
    w = rng.uniform(0.5, 1.5, (3, 3, 3, 2) if op == "depthwise_conv2d" else (3, 3, 3, 4))
    w[0, 0] = np.inf
    y_shape = (1, 5, 6, 6 if op == "depthwise_conv2d" else 4)
    dy = rng.uniform(0.5, 1.5, y_shape)
    dy[0, 0, 0] = np.inf
    return x, w, dy


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("op", ["conv2d", "depthwise_conv2d"])
def test_padded_taps_multiply_zero_by_the_weight_like_torch(op, backend):
    """A padded tap adds 0 * w, so an Inf weight gives NaN where it meets the padding (as PyTorch,
    whose padding is zeros in x); likewise an Inf in dy gives NaN in dw for taps that read padding."""
    x, w, dy = inf_at_the_border(op)
    fwd, bwd = getattr(ops, op), getattr(ops, op + "_backward")
    x_t, w_t = torch.tensor(x), torch.tensor(w, requires_grad=True)
    y_t = getattr(torch_ops, op)(x_t, w_t, padding="same")
    y_t.backward(torch.tensor(dy))
    with np.errstate(invalid="ignore"):
        y = fwd(x, w, padding="same", backend=backend)
        _, dw = bwd(dy, x, w, padding="same", backend=backend)
    assert np.isnan(y).any() and np.isinf(y).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_t.detach().numpy()))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(y_t.detach().numpy()))
    assert np.isnan(dw).any()
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(w_t.grad.numpy()))
