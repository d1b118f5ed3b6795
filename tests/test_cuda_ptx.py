"""Every CUDA kernel compiles to PTX for compute capability 9.0 (H100/H200), without a GPU.

tests/cuda_ptx_compile.py does the work (how it finds every signature and compiles kernels that
call device functions with no driver is explained there); it runs in its own process so that the
launch recorder it installs never leaks into other tests. Its table (registers and spills per
kernel, from ptxas via nvJitLink) is printed on failure, or with `pytest -s`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_kernel_compiles_for_sm90():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "cuda_ptx_compile.py")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    print(proc.stdout)
    report = proc.stdout[-8000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, f"PTX compilation failed:\n{report}"
    assert "kernel signatures compiled for sm_90" in proc.stdout, report
