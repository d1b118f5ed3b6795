"""Bad input gets a clear ValueError/TypeError naming the argument; views and inputs are safe."""

from __future__ import annotations

import numpy as np
import pytest

from npxception import ops

X = np.zeros((2, 5, 5, 3))
W_DW = np.zeros((3, 3, 3, 1))
W_CONV = np.zeros((3, 3, 3, 4))


@pytest.mark.parametrize("call,error,pattern", [
    (lambda: ops.depthwise_conv2d(np.zeros((5, 5, 3)), W_DW), ValueError,
     r"x must be NHWC with 4 dims, got shape \(5, 5, 3\)"),
    (lambda: ops.depthwise_conv2d(X, np.zeros((3, 3, 4, 1))), ValueError,
     r"w expects 4 input channels .* x has 3"),
    (lambda: ops.conv2d(X, np.zeros((3, 3, 3))), ValueError, r"w must be a 4-D kernel"),
    (lambda: ops.conv2d(X, W_CONV, padding="full"), ValueError, r"padding must be 'valid', 'same'"),
    (lambda: ops.conv2d(X, W_CONV, padding=-1), ValueError, r"padding must be >= 0"),
    (lambda: ops.conv2d(X, W_CONV, padding=1.5), TypeError, r"padding"),
    (lambda: ops.conv2d(X, W_CONV, stride=0), ValueError, r"stride must be >= 1, got 0"),
    (lambda: ops.depthwise_conv2d(X, W_DW, dilation=(1, 0)), ValueError, r"dilation must be >= 1"),
    (lambda: ops.depthwise_conv2d(X, W_DW, stride=(1, 2, 3)), TypeError, r"stride must be an int or a pair"),
    (lambda: ops.conv2d(X, W_CONV, backend="tpu"), ValueError, r"backend must be one of"),
    (lambda: ops.conv2d(X.astype(np.int64), W_CONV), TypeError,
     r"x must be float32 or float64, got dtype int64"),
    (lambda: ops.conv2d(X, W_CONV.astype(np.float32)), TypeError, r"w must have the input's dtype float64"),
    (lambda: ops.conv2d("x", W_CONV), TypeError, r"x must be a NumPy array, got str"),
    (lambda: ops.conv2d(np.zeros((2, 2, 2, 3)), W_CONV), ValueError, r"would be empty"),
    (lambda: ops.depthwise_conv2d(X, np.zeros((5, 5, 3, 1)), dilation=2), ValueError, r"would be empty"),
    (lambda: ops.conv2d(np.zeros((0, 5, 5, 3)), W_CONV), ValueError, r"x must not be empty"),
    (lambda: ops.conv2d_backward(np.zeros((2, 5, 5, 4)), X, W_CONV), ValueError,
     r"dy must have shape \(2, 3, 3, 4\)"),
    (lambda: ops.depthwise_conv2d_backward(np.zeros((2, 3, 3, 6)), X, W_DW, stride=2, padding="same"),
     ValueError, r"dy must have shape \(2, 3, 3, 3\)"),
    (lambda: ops.pointwise_conv2d(X, np.zeros((3, 3, 3, 2))), ValueError, r"\(1, 1, Cin, Cout\)"),
    (lambda: ops.pointwise_conv2d(X, np.zeros((1, 1, 2, 2))), ValueError, r"w expects 2 input channels"),
    (lambda: ops.separable_conv2d(X, W_DW, np.zeros((1, 1, 4, 2))), ValueError,
     r"pw_kernel must have shape \(1, 1, 3, Cout\)"),
    (lambda: ops.batch_norm(X, np.ones(4), np.zeros(3), np.zeros(3), np.ones(3)), ValueError,
     r"gamma must have shape \(3,\)"),
    (lambda: ops.batch_norm(X, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), epsilon=0), ValueError,
     r"epsilon must be a positive number"),
    (lambda: ops.batch_norm(X, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), momentum=2), ValueError,
     r"momentum must be in \[0, 1\]"),
    (lambda: ops.max_pool2d(X, pool_size=0), ValueError, r"pool_size must be >= 1"),
    (lambda: ops.max_pool2d(X, pool_size=2, padding=2), ValueError, r"padding .* must be smaller than pool_size"),
    (lambda: ops.max_pool2d_backward(np.zeros((2, 5, 5, 3)), X), ValueError, r"dy must have shape \(2, 3, 3, 3\)"),
    (lambda: ops.global_avg_pool2d(np.zeros((2, 3))), ValueError, r"x must be NHWC"),
    (lambda: ops.dense(np.zeros((2, 3)), np.zeros((4, 5))), ValueError, r"w expects 4 input features"),
    (lambda: ops.dense(np.zeros((2, 3)), np.zeros((3, 5)), np.zeros(4)), ValueError, r"b must have shape \(5,\)"),
    (lambda: ops.elu(X, alpha=-1), ValueError, r"alpha must be a positive number"),
    (lambda: ops.relu_backward(np.zeros(3), X), ValueError, r"dy must be NHWC with 4 dims"),
    (lambda: ops.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ValueError,
     r"labels must be in \[0, 3\)"),
    (lambda: ops.softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])), TypeError, r"labels must be integers"),
    (lambda: ops.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2])), ValueError,
     r"labels must have shape \(2,\)"),
    (lambda: ops.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5), ValueError,
     r"label_smoothing must be in \[0, 1\]"),
    (lambda: ops.add(np.zeros((2, 3)), np.zeros((3, 2))), ValueError, r"b must have shape \(2, 3\)"),
])
def test_bad_input_raises_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_non_contiguous_views_give_the_contiguous_answer(rng):
    big = rng.standard_normal((2, 10, 10, 6))
    x = big[:, ::2, 1::2, ::2]                    # strided in every spatial/channel axis
    w = np.asfortranarray(rng.standard_normal((3, 3, 3, 2)))
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    expected = ops.depthwise_conv2d(np.ascontiguousarray(x), np.ascontiguousarray(w), padding="same")
    np.testing.assert_array_equal(ops.depthwise_conv2d(x, w, padding="same"), expected)
    dy = rng.standard_normal(expected.shape)[..., ::-1]
    for got, want in zip(ops.depthwise_conv2d_backward(dy, x, w, padding="same"),
                         ops.depthwise_conv2d_backward(dy.copy(), x.copy(), w.copy(), padding="same")):
        np.testing.assert_array_equal(got, want)


def test_inputs_are_never_modified(rng):
    arrays = [rng.standard_normal(s) for s in [(2, 6, 6, 3), (3, 3, 3, 2), (2, 3, 3, 6), (3,), (3,)]]
    x, w, dy, mm, mv = arrays
    mv = np.abs(mv)
    before = [a.copy() for a in (x, w, dy, mm, mv)]
    ops.depthwise_conv2d(x, w, stride=2, padding="same")
    ops.depthwise_conv2d_backward(dy, x, w, stride=2, padding="same")
    ops.batch_norm(x, mv, mm, mm, mv, training=True)
    ops.batch_norm_backward(x, x, mv, mm, mm, mv, training=True)
    ops.max_pool2d_backward(dy[..., :3], x)
    ops.add_backward(x, x, x)[0][...] = 7          # returned gradients are not views of inputs
    for a, b in zip((x, w, dy, mm, mv), before):
        np.testing.assert_array_equal(a, b)


def test_outputs_keep_the_input_dtype(rng):
    x = rng.standard_normal((1, 4, 4, 2)).astype(np.float32)
    assert ops.depthwise_conv2d(x, np.ones((3, 3, 2, 1), np.float32)).dtype == np.float32
    assert ops.max_pool2d(x).dtype == np.float32
    assert ops.elu(x).dtype == np.float32


def test_unavailable_backends_fail_clearly():
    from npxception import cuda_available

    if not cuda_available():
        with pytest.raises(RuntimeError, match="backend='cuda' needs"):
            ops.relu(np.zeros(3), backend="cuda")
