"""Shared fixtures, and a closing table of the worst relative error each parity test saw."""

from __future__ import annotations

import os
from collections import defaultdict

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

WORST_ERRORS: dict[str, float] = defaultdict(float)


def record_error(label: str, err: float) -> None:
    """Keep the largest error seen for `label` (e.g. "depthwise_conv2d dx float64 vs torch")."""
    WORST_ERRORS[label] = max(WORST_ERRORS[label], err)


def pytest_terminal_summary(terminalreporter):
    if not WORST_ERRORS:
        return
    terminalreporter.section("worst relative error per op and gradient")
    for label in sorted(WORST_ERRORS):
        terminalreporter.write_line(f"{label:<58} {WORST_ERRORS[label]:.2e}")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)
