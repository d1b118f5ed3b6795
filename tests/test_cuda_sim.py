"""Runs tests/cuda_sim (every CUDA kernel against the reference) in the CUDA simulator.

NUMBA_ENABLE_CUDASIM has to be set before numba is imported, so the simulated tests get their own
pytest process; this test fails, with that run's report, when any of them fails. No GPU needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cuda_kernels_in_simulator():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests" / "cuda_sim"), "-q", "-p",
         "no:cacheprovider", "--no-header"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    report = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, f"simulated CUDA tests failed:\n{report}"
    assert " passed" in proc.stdout and "no tests ran" not in proc.stdout, report
