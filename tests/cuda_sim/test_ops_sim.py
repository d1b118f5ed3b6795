"""Every CUDA kernel against the NumPy reference, in the CUDA simulator (NUMBA_ENABLE_CUDASIM=1).

The simulator runs each CUDA thread as a Python thread and bounds-checks every array access, so an
out-of-range index fails here instead of silently reading neighbouring memory on a GPU. float64
checks the index arithmetic to machine precision; float32 checks the per-dtype kernels and the
float32 arithmetic paths.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from npxception import ops
from npxception.backends import cuda, reference
from npxception.backends.cuda import gemm
from npxception.testing.compare import assert_close
from npxception.testing.cases import CASES, run

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

# The simulator runs the dropout hash on NumPy uint64 scalars, which warn on the wrap-around that
# the hash relies on (a GPU, like NumPy arrays, wraps silently).
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

# float32 on the cases whose kernels have float32-specific code (typed constants, shared arrays)
FLOAT32_CASES = {"depthwise_conv2d/s2_same_asym_m2", "depthwise_conv2d_backward/s2_same_asym_m2",
                 "pointwise_conv2d_backward", "conv2d_backward/stem_s2_valid", "dense/bias",
                 "batch_norm_train", "batch_norm_backward/training", "batch_norm_infer",
                 "max_pool2d_backward/3s2_same", "global_avg_pool2d", "softmax_cross_entropy",
                 "softmax_cross_entropy_backward", "elu", "adam_update", "sum_squares", "dropout"}


def _compare(case, dtype):
    ours, expected = run(cuda, case, dtype), run(reference, case, dtype)
    assert len(ours) == len(expected)
    for k, (a, e) in enumerate(zip(ours, expected)):
        name = f"{case.name} output {k} {np.dtype(dtype)}"
        if e is None:
            assert a is None, name
            continue
        a, e = np.asarray(a), np.asarray(e)
        assert a.dtype == e.dtype, f"{name}: dtype {a.dtype} != {e.dtype}"
        if case.exact:
            np.testing.assert_array_equal(a, e, err_msg=name)
        else:
            assert_close(a, e, name=name)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_float64(case):
    _compare(case, np.float64)


@pytest.mark.parametrize("case", [c for c in CASES if c.name in FLOAT32_CASES], ids=lambda c: c.name)
def test_float32(case):
    _compare(case, np.float32)


def test_float32_case_names_exist():
    assert FLOAT32_CASES <= {c.name for c in CASES}


@pytest.mark.parametrize("a_transposed, b_transposed", [(False, False), (False, True), (True, False)])
def test_gemm_split_k_and_edges(monkeypatch, a_transposed, b_transposed):
    """Split-K (forced by a small slice length) with a ragged last slice, edge tiles in M and N."""
    monkeypatch.setattr(gemm, "MIN_K_PER_SPLIT", 16)
    m, k, n = 130, 44, 17
    assert gemm.split_k(m, n, k)[0] > 1
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if a_transposed else (m, k))
    b = rng.standard_normal((n, k) if b_transposed else (k, n))
    c = gemm.matmul(cuda.to_device(a), cuda.to_device(b), a_transposed=a_transposed,
                    b_transposed=b_transposed)
    expected = (a.T if a_transposed else a) @ (b.T if b_transposed else b)
    assert_close(cuda.to_numpy(c), expected, name="split-K gemm")


def test_reductions_reproduce_bitwise():
    """Same input, same bits: no atomics, fixed reduction order."""
    rng = np.random.default_rng(1)
    x = cuda.to_device(rng.standard_normal((1, 9, 9, 8)).astype(np.float32))
    w = cuda.to_device(rng.standard_normal((3, 3, 8, 1)).astype(np.float32))
    dy = cuda.to_device(rng.standard_normal((1, 9, 9, 8)).astype(np.float32))
    runs = [cuda.to_numpy(cuda.depthwise_conv2d_backward(dy, x, w, (1, 1), (1, 1, 1, 1), (1, 1))[1])
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_through_ops_api():
    """The public ops functions accept backend="cuda" (NumPy in, NumPy out)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 6, 7, 4))
    dwk, pwk = rng.standard_normal((3, 3, 4, 2)), rng.standard_normal((1, 1, 8, 5))
    got = ops.separable_conv2d(x, dwk, pwk, stride=2, padding="same", backend="cuda")
    assert_close(got, ops.separable_conv2d(x, dwk, pwk, stride=2, padding="same"), name="separable")
    y, mm, mv = ops.batch_norm(x, np.ones(4), np.zeros(4), np.zeros(4), np.ones(4), training=True,
                               backend="cuda")
    y_ref, mm_ref, mv_ref = ops.batch_norm(x, np.ones(4), np.zeros(4), np.zeros(4), np.ones(4),
                                           training=True)
    for a, e, name in ((y, y_ref, "y"), (mm, mm_ref, "moving_mean"), (mv, mv_ref, "moving_var")):
        assert_close(a, e, name=f"batch_norm {name}")
    labels = np.array([1, 0, 3])
    logits = rng.standard_normal((3, 4))
    assert isinstance(ops.softmax_cross_entropy(logits, labels, backend="cuda"), float)
    assert_close(ops.softmax_cross_entropy(logits, labels, backend="cuda"),
                 ops.softmax_cross_entropy(logits, labels), name="loss")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # 0 * Inf, on purpose
@pytest.mark.parametrize("op", ["conv2d", "depthwise_conv2d"])
def test_padded_taps_multiply_zero_by_the_weight(op):
    """Inf in w (forward) or dy (filter gradient) meets the padding: NaN where the reference has it."""
    from tests.test_ops_torch import inf_at_the_border

    x, w, dy = inf_at_the_border(op)
    fwd, bwd = getattr(ops, op), getattr(ops, op + "_backward")
    with np.errstate(invalid="ignore"):
        ref_y, (_, ref_dw) = fwd(x, w, padding="same"), bwd(dy, x, w, padding="same")
        y, (_, dw) = fwd(x, w, padding="same", backend="cuda"), bwd(dy, x, w, padding="same", backend="cuda")
    assert np.isnan(ref_y).any() and np.isnan(ref_dw).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref_y))
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(ref_dw))
    finite = np.isfinite(ref_y)
    assert_close(y[finite], ref_y[finite], name=f"{op} finite part")
