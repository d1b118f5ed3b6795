"""Shared fixtures, and a closing table of the worst relative error each parity test saw."""

from __future__ import annotations

import os
import sys
from collections import defaultdict

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

WORST_ERRORS: dict[str, float] = defaultdict(float)


def record_error(label: str, err: float) -> None:
    """Keep the largest error seen for `label` (e.g. "depthwise_conv2d dx float64 vs torch")."""
    WORST_ERRORS[label] = max(WORST_ERRORS[label], err)


def reference_torch(torch) -> None:
    """PyTorch as a reference runs on its native kernels, not oneDNN's: oneDNN's backward of a strided
    1x1 channels_last convolution (any NHWC tensor permuted to NCHW is channels_last) corrupts the heap
    on some CPUs, and an abort in this process would end the whole suite. The native kernels compute
    the same convolution; tests/test_torch_idiomatic.py runs the oneDNN path in a child process."""
    torch.backends.mkldnn.enabled = False


def pytest_collection_finish(session):
    # Collection imported every test module, so a module that uses PyTorch has imported it by now.
    if "torch" in sys.modules:
        reference_torch(sys.modules["torch"])


@pytest.fixture
def torch_reference():
    """PyTorch for a test that imports it only when it runs (skipped where it is not installed)."""
    torch = pytest.importorskip("torch")
    reference_torch(torch)
    return torch


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
