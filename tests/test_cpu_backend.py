"""The Numba CPU backend against the NumPy reference: every operation, float64 and float32.

Parity goes through the public `npxception.ops` API (backend="cpu" vs backend="numpy") and, for the
functions ops does not wrap (optimizer updates, fused batch norm + ReLU), through the backend
modules directly. Shapes are small and odd on purpose: borders, stride 2 with TensorFlow's
asymmetric "same" padding, dilation 2, depth multiplier 2, batch 1, 1x1 spatial inputs.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from npxception import ops
from npxception.backends import cpu, reference
from npxception.backends.cpu.tuned import blas, conv_direct, gemm
from npxception.shapes import as_pair, resolve_padding
from npxception.threads import get_num_threads, max_threads, set_num_threads
from npxception.testing.compare import assert_close

DTYPES = [np.float64, np.float32]


def _rng(*key):
    """A generator seeded by the test case's parameters (stable across processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _parity(fn, *args, **kwargs):
    """Run ops.fn on both backends and compare every output."""
    ours = getattr(ops, fn)(*args, backend="cpu", **kwargs)
    ref = getattr(ops, fn)(*args, backend="numpy", **kwargs)
    ours, ref = (ours, ref) if isinstance(ours, tuple) else ((ours,), (ref,))
    for k, (a, e) in enumerate(zip(ours, ref)):
        if e is None:
            assert a is None, f"{fn} output {k}: expected None"
            continue
        assert np.asarray(a).dtype == np.asarray(e).dtype, f"{fn} output {k}: dtype"
        assert_close(a, e, name=f"{fn} output {k}")
    return ours


# (N, H, W, C), (kh, kw), M, stride, padding, dilation
DEPTHWISE_CASES = [
    ((2, 7, 9, 5), (3, 3), 1, 1, "same", 1),
    ((2, 9, 8, 6), (3, 3), 1, 2, "same", 1),       # stride 2, asymmetric "same" padding
    ((1, 10, 11, 4), (3, 3), 1, 1, "same", 2),     # dilation 2
    ((2, 8, 7, 3), (3, 3), 2, 1, "same", 1),       # depth multiplier 2
    ((1, 9, 7, 3), (3, 3), 2, 2, "valid", 1),
    ((1, 1, 1, 4), (3, 3), 1, 1, "same", 1),       # 1x1 spatial: every tap but one is padding
    ((2, 6, 5, 3), (2, 4), 1, (1, 2), "valid", 1),  # non-square kernel, mixed stride
    ((1, 9, 10, 5), (3, 3), 1, 1, (2, 1), (2, 1)),  # explicit padding, mixed dilation
    ((1, 5, 6, 7), (1, 1), 3, 1, "valid", 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, m, stride, padding, dilation", DEPTHWISE_CASES)
def test_depthwise_matches_reference(shape, kernel, m, stride, padding, dilation, dtype):
    rng = _rng("dw", shape, kernel, m, str(stride), str(padding), str(dilation), dtype)
    x, w = _normal(rng, shape, dtype), _normal(rng, (*kernel, shape[3], m), dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    (y,) = _parity("depthwise_conv2d", x, w, **kw)
    _parity("depthwise_conv2d_backward", _normal(rng, y.shape, dtype), x, w, **kw)


# (N, H, W, Cin), (kh, kw, Cin, Cout), stride, padding, dilation. conv.py's rules pick the direct
# kernels for narrow 3x3 convs (Cout <= 8 forward, Cin <= 4 input gradient at stride 1, Cin <= 4
# and Cout <= 8 filter gradient), the flipped forward for other stride-1 input gradients, and the
# blocked im2col GEMM otherwise; every path appears below.
CONV_CASES = [
    ((2, 9, 9, 3), (3, 3, 3, 4), 2, "valid", 1),    # Xception's first stem conv, small
    ((1, 7, 8, 4), (3, 3, 4, 5), 1, "valid", 1),    # the second stem conv
    ((2, 7, 7, 5), (1, 1, 5, 6), 2, "same", 1),     # the 1x1 stride-2 shortcuts
    ((1, 6, 5, 3), (1, 1, 3, 2), 1, "valid", 1),
    ((1, 8, 9, 2), (3, 2, 2, 3), (2, 1), "same", (1, 2)),
    ((1, 1, 1, 3), (3, 3, 3, 2), 1, "same", 1),
    ((2, 11, 10, 3), (3, 3, 3, 8), 1, "valid", 1),  # `small`'s stems: 144 pixels, two blocks
    ((2, 10, 9, 8), (3, 3, 8, 16), 1, "valid", 1),
    ((1, 13, 12, 3), (3, 3, 3, 32), 2, "valid", 1),  # the paper's first stem
    ((1, 9, 10, 32), (3, 3, 32, 40), 1, "same", 2),  # wide: GEMM and col2im throughout
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, wshape, stride, padding, dilation", CONV_CASES)
def test_conv2d_matches_reference(shape, wshape, stride, padding, dilation, dtype):
    rng = _rng("conv", shape, wshape, str(stride), padding, str(dilation), dtype)
    x, w = _normal(rng, shape, dtype), _normal(rng, wshape, dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    (y,) = _parity("conv2d", x, w, **kw)
    _parity("conv2d_backward", _normal(rng, y.shape, dtype), x, w, **kw)


# Cases for the direct kernels themselves, whichever path conv.py picks for the shape.
DIRECT_CASES = [
    ((2, 12, 11, 3), (3, 3, 3, 8), 1, "valid", 1),
    ((1, 13, 12, 3), (3, 3, 3, 32), 2, "valid", 1),
    ((2, 9, 11, 8), (3, 3, 8, 16), 1, "same", 2),
    ((1, 9, 8, 32), (3, 3, 32, 6), 2, "same", 1),   # even size, stride 2: asymmetric padding
    ((1, 7, 9, 5), (2, 3, 5, 3), (1, 2), "valid", (2, 1)),
    ((3, 7, 7, 16), (1, 1, 16, 8), 2, "same", 1),
    ((1, 6, 7, 4), (3, 3, 4, 5), 1, 3, 1),           # padding wider than the kernel's reach
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, wshape, stride, padding, dilation", DIRECT_CASES)
def test_direct_conv_kernels_match_reference(shape, wshape, stride, padding, dilation, dtype):
    rng = _rng("direct", shape, wshape, str(stride), padding, str(dilation), dtype)
    x, w = _normal(rng, shape, dtype), _normal(rng, wshape, dtype)
    st, dil = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    pads = resolve_padding(padding, shape[1:3], wshape[:2], st, dil)
    rtol = 1e-14 if dtype == np.float64 else 1e-5
    y = conv_direct.conv2d(x, w, st, pads, dil)
    assert_close(y, reference.conv2d(x, w, st, pads, dil), name="y", rtol=rtol)
    dy = _normal(rng, y.shape, dtype)
    dw = conv_direct.conv2d_filter_grad(dy, x, w, st, pads, dil)
    assert dw.dtype == dtype
    dx_ref, dw_ref = reference.conv2d_backward(dy, x, w, st, pads, dil)
    assert_close(dw, dw_ref, name="dw", rtol=rtol)
    if st == (1, 1):
        dx = conv_direct.conv2d_input_grad(dy, w, x.shape, st, pads, dil)
        assert_close(dx, dx_ref, name="dx", rtol=rtol)


def test_conv2d_input_grad_with_an_inf_weight_matches_reference():
    """The direct input gradient would add 0 * Inf = NaN where no output pixel used the Inf tap (the
    last row and column for tap (0, 0) and "same" padding); the dispatch table sends such weights to col2im."""
    rng = _rng("inf dx")
    x, w = _normal(rng, (1, 6, 7, 3), np.float64), _normal(rng, (3, 3, 3, 4), np.float64)
    w[0, 0, 1, 2] = np.inf
    dy = _normal(rng, (1, 6, 7, 4), np.float64)
    with np.errstate(invalid="ignore"):
        dx, _ = _parity("conv2d_backward", dy, x, w, padding="same")
    assert np.isinf(dx[0, :-1, :-1, 1]).all() and np.isfinite(dx[0, -1, :, 1]).all()


def test_direct_conv_kernels_are_bitwise_identical_across_thread_counts():
    rng = _rng("direct threads")
    x = _normal(rng, (3, 20, 21, 3), np.float32)  # 3 * 18 * 19 output pixels: 9 blocks, 9 chunks
    w = _normal(rng, (3, 3, 3, 8), np.float32)
    dy = _normal(rng, (3, 18, 19, 8), np.float32)

    def run():
        y = conv_direct.conv2d(x, w, (1, 1), (0, 0, 0, 0), (1, 1))
        dx = conv_direct.conv2d_input_grad(dy, w, x.shape, (1, 1), (0, 0, 0, 0), (1, 1))
        return y, dx, conv_direct.conv2d_filter_grad(dy, x, w, (1, 1), (0, 0, 0, 0), (1, 1))

    before = get_num_threads()
    try:
        set_num_threads(1)
        single = run()
        set_num_threads(min(2, max_threads()))
        double = run()
    finally:
        set_num_threads(before)
    for a, b in zip(single, double):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pointwise_and_separable_match_reference(dtype):
    rng = _rng("pw", dtype)
    x = _normal(rng, (2, 5, 7, 6), dtype)
    pw = _normal(rng, (1, 1, 6, 9), dtype)
    (y,) = _parity("pointwise_conv2d", x, pw)
    _parity("pointwise_conv2d_backward", _normal(rng, y.shape, dtype), x, pw)
    dwk, pwk = _normal(rng, (3, 3, 6, 2), dtype), _normal(rng, (1, 1, 12, 4), dtype)
    kw = dict(stride=2, padding="same")
    (y,) = _parity("separable_conv2d", x, dwk, pwk, **kw)
    _parity("separable_conv2d_backward", _normal(rng, y.shape, dtype), x, dwk, pwk, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_filter_gradients_over_many_pixels_match_reference(dtype):
    # Over 16384 pixels the filter-gradient GEMM is split into row chunks (cpu/tuned/gemm.py).
    rng = _rng("tall", dtype)
    x = _normal(rng, (1, 130, 130, 3), dtype)
    pw, w = _normal(rng, (1, 1, 3, 4), dtype), _normal(rng, (3, 3, 3, 2), dtype)
    _parity("pointwise_conv2d_backward", _normal(rng, (1, 130, 130, 4), dtype), x, pw)
    _parity("conv2d_backward", _normal(rng, (1, 130, 130, 2), dtype), x, w, padding="same")


@pytest.mark.parametrize("w_shape, stride, padding", [((3, 3, 20, 40), 1, "same"), ((3, 3, 20, 40), 2, "valid"),
                                                     ((1, 1, 20, 36), 2, "valid")])
def test_conv_with_im2col_built_in_blocks_matches_reference(w_shape, stride, padding, monkeypatch):
    # 4800 output pixels: several chunks, each of several BLOCK_ROWS blocks (the filter gradient adds
    # its blocks with beta = 1), against the reference and against the road with the whole cols matrix.
    rng = _rng("im2col blocks", w_shape, stride)
    x = _normal(rng, (3, 40, 40, w_shape[2]), np.float64)
    w = _normal(rng, w_shape, np.float64)
    kw = dict(stride=stride, padding=padding)
    (y,) = _parity("conv2d", x, w, **kw)
    dy = _normal(rng, y.shape, np.float64)
    _parity("conv2d_backward", dy, x, w, **kw)
    st = as_pair(stride, "stride")
    pads = resolve_padding(padding, x.shape[1:3], w_shape[:2], st, (1, 1))
    blocks = (cpu.conv2d(x, w, st, pads, (1, 1)), *cpu.conv2d_backward(dy, x, w, st, pads, (1, 1)))
    monkeypatch.setattr(blas, "available", lambda: False)
    whole = (cpu.conv2d(x, w, st, pads, (1, 1)), *cpu.conv2d_backward(dy, x, w, st, pads, (1, 1)))
    for name, a, b in zip(("y", "dx", "dw"), blocks, whole):
        assert_close(a, b, name=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise_flat_rows_and_pixel_pairs_give_the_same_bits(dtype, monkeypatch):
    from npxception.backends.cpu.tuned import depthwise_3x3 as _depthwise_3x3
    rng = _rng("flat rows", dtype)
    x, dy = _normal(rng, (2, 9, 11, 20), dtype), _normal(rng, (2, 9, 11, 20), dtype)
    w = _normal(rng, (3, 3, 20, 1), dtype)
    x[0, 2, 3, 4], w[1, 1, 5, 0] = np.nan, np.inf

    def run():
        return (cpu.depthwise_conv2d(x, w, (1, 1), (1, 1, 1, 1), (1, 1)),
                *cpu.depthwise_conv2d_backward(dy, x, w, (1, 1), (1, 1, 1, 1), (1, 1)))

    flat = run()
    monkeypatch.setattr(_depthwise_3x3, "FLAT_ROWS_MAX_C", 0)
    for a, b in zip(flat, run()):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_roads_give_the_same_bits(dtype, monkeypatch):
    # The Numba kernel calling NumPy's BLAS per task, and the fallback pool of np.matmul calls, run
    # one task table: every split (row chunks, partial sums, result rows and columns) and a
    # transposed operand.
    if not blas.available():
        pytest.skip("NumPy's BLAS is not the OpenBLAS of its wheels: only the fallback road exists")
    rng = _rng("gemm roads", dtype)
    cases = []
    for rows, k, n in ((1444, 37, 29), (20000, 7, 9), (300, 260, 700), (1, 1, 1), (0, 3, 2), (5, 0, 3)):
        a, b, dy = _normal(rng, (rows, k), dtype), _normal(rng, (k, n), dtype), _normal(rng, (rows, n), dtype)
        cases.append((a, b, np.ascontiguousarray(b.T).T, dy))

    def run():
        return [(gemm.tall_matmul(a, b), gemm.tall_matmul(a, bt), gemm.tall_transpose_matmul(a, dy))
                for a, b, bt, dy in cases]

    numba_road = run()
    monkeypatch.setattr(blas, "available", lambda: False)
    for got, expected, (a, b, _, dy) in zip(numba_road, run(), cases):
        for x, y in zip(got, expected):
            assert x.dtype == dtype and np.array_equal(x, y)
        assert_close(got[0], a @ b, name="a @ b")
        assert_close(got[1], a @ b, name="a @ b.T.T")
        assert_close(got[2], a.T @ dy, name="a.T @ dy")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(3, 5, 7, 6), (1, 1, 1, 4)])
def test_batch_norm_matches_reference(shape, training, dtype):
    rng = _rng("bn", shape, training, dtype)
    c = shape[3]
    # An offset mean checks that the statistics do not lose precision to cancellation.
    x = (_normal(rng, shape, dtype) * 3 + 20).astype(dtype)
    gamma, beta = _normal(rng, (c,), dtype), _normal(rng, (c,), dtype)
    mm, mv = _normal(rng, (c,), dtype), rng.uniform(0.5, 2, c).astype(dtype)
    kw = dict(training=training, epsilon=1e-3)
    _parity("batch_norm", x, gamma, beta, mm, mv, momentum=0.9, **kw)
    _parity("batch_norm_backward", _normal(rng, shape, dtype), x, gamma, beta, mm, mv, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_batch_norm_relu_matches_composition(dtype):
    rng = _rng("bnrelu", dtype)
    x = _normal(rng, (2, 5, 6, 7), dtype)
    gamma, beta = _normal(rng, (7,), dtype), _normal(rng, (7,), dtype)
    dy = _normal(rng, x.shape, dtype)
    y, mean, var = cpu.batch_norm_relu_train(x, gamma, beta, 1e-3)
    z, mean_ref, var_ref = reference.batch_norm_train(x, gamma, beta, 1e-3)
    assert_close(y, reference.relu(z), name="y")
    assert_close(mean, mean_ref, name="mean")
    assert_close(var, var_ref, name="var")
    assert_close(cpu.batch_norm_relu_infer(x, gamma, beta, mean_ref, var_ref, 1e-3),
                 reference.relu(reference.batch_norm_infer(x, gamma, beta, mean_ref, var_ref, 1e-3)),
                 name="infer")
    for training in (True, False):
        ours = cpu.batch_norm_relu_backward(dy, x, y, gamma, mean_ref, var_ref, 1e-3, training)
        ref = reference.batch_norm_backward(reference.relu_backward(dy, z), x, gamma, mean_ref,
                                            var_ref, 1e-3, training)
        for name, a, e in zip(("dx", "dgamma", "dbeta"), ours, ref):
            assert_close(a, e, name=f"{name} training={training}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_match_reference_with_nan_and_inf(dtype):
    rng = _rng("act", dtype)
    x = _normal(rng, (3, 4, 5, 6), dtype)
    x.flat[[0, 7, 11, 20]] = [np.nan, np.inf, -np.inf, 0.0]
    dy = _normal(rng, x.shape, dtype)
    _parity("relu", x)
    _parity("relu_backward", dy, x)
    _parity("elu", x, alpha=0.7)
    _parity("elu_backward", dy, x, alpha=0.7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, pool, stride, padding", [
    ((2, 9, 9, 5), 3, 2, "same"),       # odd size: TensorFlow's asymmetric padding
    ((1, 8, 8, 70), 3, 2, "same"),      # 74 -> 37 in Xception: (0, 1); C > one channel block
    ((2, 7, 6, 3), 2, 2, "valid"),
    ((1, 1, 1, 3), 3, 2, "same"),
    ((1, 6, 7, 4), (3, 2), (1, 2), 1),
])
def test_max_pool_matches_reference(shape, pool, stride, padding, dtype):
    rng = _rng("pool", shape, str(pool), str(stride), str(padding), dtype)
    x = _normal(rng, shape, dtype)
    x[..., 1] = np.round(x[..., 1])  # ties: the first maximum in the window takes the gradient
    x.flat[2] = -np.inf
    x.flat[min(5, x.size - 1)] = np.nan  # a NaN wins its windows and takes their gradient
    kw = dict(pool_size=pool, stride=stride, padding=padding)
    (y,) = _parity("max_pool2d", x, **kw)
    _parity("max_pool2d_backward", _normal(rng, y.shape, dtype), x, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_ops_match_reference(dtype):
    rng = _rng("small", dtype)
    x = _normal(rng, (3, 4, 5, 6), dtype)
    _parity("global_avg_pool2d", x)
    _parity("global_avg_pool2d_backward", _normal(rng, (3, 6), dtype), x)
    a, w, b = _normal(rng, (5, 7), dtype), _normal(rng, (7, 4), dtype), _normal(rng, (4,), dtype)
    _parity("dense", a, w, b)
    _parity("dense", a, w)
    _parity("dense_backward", _normal(rng, (5, 4), dtype), a, w, b)
    _parity("dense_backward", _normal(rng, (5, 4), dtype), a, w)
    _parity("add", x, x[::-1])  # a strided view: NumPy's add
    with_nan = np.ascontiguousarray(x[::-1])
    with_nan.flat[[0, 5]] = [np.nan, np.inf]
    _parity("add", x, with_nan)  # contiguous, same shape: the parallel kernel
    _parity("add_backward", x, x, x)
    labels = rng.integers(0, 7, 5)
    logits = (_normal(rng, (5, 7), dtype) * 30).astype(dtype)
    for smoothing in (0.0, 0.1):
        _parity("softmax_cross_entropy", logits, labels, label_smoothing=smoothing)
        _parity("softmax_cross_entropy_backward", 1.7, logits, labels, label_smoothing=smoothing)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_mask_is_the_references_exactly(dtype):
    rng = _rng("drop", dtype)
    x = _normal(rng, (4, 3, 5, 7), dtype)
    for seed in (0, 12345, 2**63 - 1):
        ours = ops.dropout(x, rate=0.3, seed=seed, backend="cpu")
        assert np.array_equal(ours, ops.dropout(x, rate=0.3, seed=seed, backend="numpy"))
        back = ops.dropout_backward(x, rate=0.3, seed=seed, backend="cpu")
        assert np.array_equal(back, ops.dropout_backward(x, rate=0.3, seed=seed, backend="numpy"))


def _optimizer_states(rng, dtype, shape=(5, 7)):
    return [_normal(rng, shape, dtype) for _ in range(4)], rng.uniform(0.1, 1, shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("update, args", [
    ("sgd_update", dict(lr=0.045, momentum=0.9, nesterov=False, weight_decay=1e-5)),
    ("sgd_update", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0)),
    ("rmsprop_update", dict(lr=1e-3, rho=0.9, momentum=0.9, epsilon=1.0, weight_decay=1e-5)),
    ("adam_update", dict(lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-7, weight_decay=1e-2,
                         decoupled=False, step=3)),
    ("adam_update", dict(lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-7, weight_decay=1e-2,
                         decoupled=True, step=1)),
])
def test_optimizer_updates_match_reference(update, args, dtype):
    rng = _rng("opt", update, str(args), dtype)
    (p, g, s1, _), positive = _optimizer_states(rng, dtype)
    if update == "sgd_update":
        states = [p, g, s1]
    elif update == "rmsprop_update":
        states = [p, g, positive, s1]
    else:
        states = [p, g, s1, positive]
    ours, ref = [a.copy() for a in states], [a.copy() for a in states]
    for _ in range(3):
        getattr(cpu, update)(*ours, **args)
        getattr(reference, update)(*ref, **args)
    for k, (a, e) in enumerate(zip(ours, ref)):
        assert_close(a, e, name=f"{update} array {k}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_ema_sum_squares_scale_match_reference(dtype):
    rng = _rng("ema", dtype)
    (avg, p, a, _), _ = _optimizer_states(rng, dtype)
    ours, ref = avg.copy(), avg.copy()
    cpu.ema_update(ours, p, 0.999)
    reference.ema_update(ref, p, 0.999)
    assert_close(ours, ref, name="ema")
    assert_close(cpu.sum_squares(a), reference.sum_squares(a), name="sum_squares")
    ours, ref = a.copy(), a.copy()
    cpu.scale_(ours, 0.3)
    reference.scale_(ref, 0.3)
    assert_close(ours, ref, name="scale_")


def test_moving_average_and_arrays():
    m, b = np.arange(4.0, dtype=np.float32), np.ones(4, np.float32)
    assert_close(cpu.moving_average_update(m, b, 0.99), reference.moving_average_update(m, b, 0.99))
    assert cpu.zeros((2, 3), np.float32).dtype == np.float32
    assert cpu.to_numpy(cpu.to_device(m[::2])).tolist() == [0.0, 2.0]
    assert cpu.synchronize() is None
    assert cpu.name == "cpu"


@pytest.mark.parametrize("where", ["x", "w"])
def test_nan_propagates_through_depthwise_like_reference(where):
    rng = _rng("nan", where)
    x, w = _normal(rng, (1, 6, 7, 3), np.float64), _normal(rng, (3, 3, 3, 1), np.float64)
    if where == "x":
        x[0, 2, 1, 1] = np.nan
    else:
        w[0, 2, 1, 0] = np.nan  # a corner tap: border pixels read it against the padding
    kw = dict(stride=1, padding="same")
    (y,) = _parity("depthwise_conv2d", x, w, **kw)
    assert np.isnan(y).any()
    dy = _normal(rng, y.shape, np.float64)
    dy[0, 0, 0, 2] = np.nan  # a border pixel: its padded taps must still poison the filter gradient
    dx, dw = _parity("depthwise_conv2d_backward", dy, x, w, **kw)
    assert np.isnan(dw[..., 2, 0]).all()


def _backward_outputs(x, w, dy):
    """Every gradient computed by a reduction over pixels (the ones that could race)."""
    kw = dict(stride=1, padding="same")
    dx, dw = ops.depthwise_conv2d_backward(dy, x, w, **kw, backend="cpu")
    gamma = np.linspace(0.5, 1.5, x.shape[3], dtype=x.dtype)
    y, mean, var = cpu.batch_norm_train(x, gamma, gamma, 1e-3)
    bn = cpu.batch_norm_backward(dy, x, gamma, mean, var, 1e-3, True)
    pw = ops.pointwise_conv2d_backward(dy[..., :1], x, w[1:2, 1:2], backend="cpu")
    # A short, wide pointwise product (1,444 pixels x 96 -> 80: the paper's middle-flow shape
    # class), where the GEMMs split the output instead of the pixels.
    rng = np.random.default_rng(0)
    xs, ws = rng.standard_normal((4, 19, 19, 96)).astype(x.dtype), rng.standard_normal((1, 1, 96, 80)).astype(x.dtype)
    ys = ops.pointwise_conv2d(xs, ws, backend="cpu")
    short = ops.pointwise_conv2d_backward(np.ascontiguousarray(ys[..., ::-1]), xs, ws, backend="cpu")
    # A 3x3 conv of 9 -> 40 channels: im2col built block by block in the forward, the filter gradient
    # (partial sums over 17,812 pixels) and the input gradient.
    wc = np.linspace(-1, 1, 3 * 3 * 9 * 40, dtype=x.dtype).reshape(3, 3, 9, 40)
    yc = ops.conv2d(x, wc, **kw, backend="cpu")
    conv = ops.conv2d_backward(np.ascontiguousarray(yc[..., ::-1]), x, wc, **kw, backend="cpu")
    return [dx, dw, y, mean, var, *bn, *pw, ys, *short, yc, *conv]


def test_repeated_runs_and_thread_counts_give_bitwise_identical_results():
    rng = _rng("determinism")
    x = _normal(rng, (4, 73, 61, 9), np.float32)  # 17,812 pixels: the chunked GEMM path too
    w = _normal(rng, (3, 3, 9, 1), np.float32)
    dy = _normal(rng, (4, 73, 61, 9), np.float32)
    first = _backward_outputs(x, w, dy)
    for a, b in zip(first, _backward_outputs(x, w, dy)):
        assert np.array_equal(a, b)
    before = get_num_threads()
    try:
        set_num_threads(1)
        single = _backward_outputs(x, w, dy)
    finally:
        set_num_threads(before)
    for a, b in zip(first, single):
        assert np.array_equal(a, b)


def test_set_num_threads_validates_and_applies():
    before = get_num_threads()
    try:
        set_num_threads(1)
        assert get_num_threads() == 1
    finally:
        set_num_threads(before)
    assert get_num_threads() == before
    for bad in (0, -1, max_threads() + 1):
        with pytest.raises(ValueError, match="n must be between 1 and"):
            set_num_threads(bad)
    for bad in (1.5, "2", True, None):
        with pytest.raises(TypeError, match="n must be an int"):
            set_num_threads(bad)
