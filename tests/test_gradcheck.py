"""Every op passes the numerical gradient check; the checker itself catches wrong gradients."""

from __future__ import annotations

import numpy as np
import pytest

from npxception import gradcheck, ops
from npxception.opcheck import check_all_ops, format_table
from tests.conftest import record_error


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_op_passes_gradcheck(seed):
    reports = check_all_ops(seed=seed)
    for op, report in reports.items():
        record_error(f"gradcheck {op}", report.max_error)
    table = format_table(reports)
    assert "FAIL" not in table, table
    for report in reports.values():
        report.assert_ok(1e-6)


def test_gradcheck_catches_a_wrong_gradient(rng):
    x = rng.standard_normal((2, 4, 4, 3))
    report = gradcheck(ops.relu, {"x": x}, lambda dy, x: {"x": 1.01 * ops.relu_backward(dy, x)})
    assert not report.ok(1e-6)
    with pytest.raises(AssertionError, match="gradient check failed"):
        report.assert_ok(1e-6)


def test_gradcheck_catches_missing_batch_statistics_term(rng):
    """Treating the batch mean/var as constants is the classic batch-norm bug; it must fail."""
    x, gamma, beta = rng.standard_normal((4, 3, 3, 2)), np.ones(2), np.zeros(2)
    mm, mv = np.zeros(2), np.ones(2)

    def forward(x):
        return ops.batch_norm(x, gamma, beta, mm, mv, training=True)[0]

    def wrong_backward(dy, x):
        inv_std = 1 / np.sqrt(x.var(axis=(0, 1, 2)) + 1e-3)
        return {"x": dy * gamma * inv_std}

    assert not gradcheck(forward, {"x": x}, wrong_backward).ok(1e-3)


def test_gradcheck_refuses_float32(rng):
    with pytest.raises(TypeError, match="float64"):
        gradcheck(ops.relu, {"x": rng.standard_normal(3).astype(np.float32)},
                  lambda dy, x: {"x": dy})


def test_gradcheck_rejects_unknown_wrt(rng):
    with pytest.raises(ValueError, match="wrt"):
        gradcheck(ops.relu, {"x": rng.standard_normal(3)}, lambda dy, x: {"x": dy}, wrt=["y"])


def test_gradcheck_samples_large_inputs(rng):
    report = gradcheck(ops.relu, {"x": rng.standard_normal((10, 10))},
                       lambda dy, x: {"x": ops.relu_backward(dy, x)}, max_samples=7)
    assert report.checked["x"] == 7
    assert "max rel error" in str(report)
