"""Dropout: inverted scaling, a seeded mask that backward reproduces, inference is the identity."""

from __future__ import annotations

import numpy as np
import pytest

from npxception import ops
from npxception.backends.reference.dropout import keep_mask


def test_dropout_keeps_about_one_minus_rate_and_rescales(rng):
    x = np.ones((64, 8, 8, 4))
    y = ops.dropout(x, rate=0.3, seed=5)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7)


def test_dropout_backward_uses_the_forward_mask(rng):
    x = rng.standard_normal((4, 5, 5, 3))
    y = ops.dropout(x, rate=0.5, seed=11)
    dx = ops.dropout_backward(np.ones_like(x), rate=0.5, seed=11)
    assert np.array_equal(y != 0, dx != 0)
    np.testing.assert_allclose(y, x * dx)


def test_dropout_seed_controls_the_mask():
    a, b = keep_mask(1000, 0.5, seed=1), keep_mask(1000, 0.5, seed=2)
    assert np.array_equal(a, keep_mask(1000, 0.5, seed=1))
    assert 0.3 < (a != b).mean() < 0.7


def test_dropout_inference_and_rate_zero_are_identity(rng):
    x = rng.standard_normal((2, 3))
    assert np.array_equal(ops.dropout(x, rate=0.5, seed=1, training=False), x)
    assert np.array_equal(ops.dropout(x, rate=0.0, seed=1), x)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 2, "0.5"])
def test_dropout_rejects_bad_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        ops.dropout(np.ones(3), rate=rate, seed=0)


def test_dropout_rejects_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        ops.dropout(np.ones(3), rate=0.5, seed=-1)
