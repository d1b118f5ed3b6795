"""The one comparison helper every parity test uses."""

from __future__ import annotations

import numpy as np

# Relative-error budgets: float64 parity must be near machine precision; float32 is ~1e-7 per
# rounding, accumulated over sums of up to a few thousand terms.
RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}


def rel_error(actual, expected) -> float:
    """max |a - e| / max(max |e|, tiny): one number per tensor, scale-aware, never divides by 0."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
    return float(np.max(np.abs(actual - expected), initial=0.0)) / scale


def assert_close(actual, expected, *, name: str = "value", rtol: float | None = None) -> float:
    """Assert shapes match and rel_error <= rtol (by default the budget for expected's dtype)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    if rtol is None:
        rtol = RTOL.get(np.dtype(actual.dtype), 1e-9)
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), f"{name}: NaN positions differ"
    inf = np.isinf(expected)
    assert np.array_equal(np.isinf(actual), inf) and np.array_equal(actual[inf], expected[inf]), \
        f"{name}: infinities differ"
    finite = np.isfinite(expected)
    err = rel_error(actual[finite], expected[finite])
    assert err <= rtol, f"{name}: relative error {err:.3e} > {rtol:.1e}"
    return err
