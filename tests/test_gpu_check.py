"""benchmarks/gpu_check.py stays runnable without a GPU: its dry run, its model stages, its copy count.

The GPU check runs rarely, on a borrowed machine with minutes to spare, so every stage is exercised
here: the op stages in the CUDA simulator through the real entry point (a subprocess, since
NUMBA_ENABLE_CUDASIM must precede the first numba import), the model stages in-process on the numpy
backend at the dry run's tiny sizes (the simulator needs minutes for one Xception step), and the
copy counter in the simulator on calls whose copies are known.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("torch", reason="the GPU check compares against PyTorch")


def _sim_env() -> dict:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=path)


def test_gpu_check_dry_run_in_simulator(tmp_path):
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--sim", "--out", str(tmp_path),
         "--stages", "device,ops,bandwidth,sgemm,timings", "--ops", "^(depthwise_conv2d_backward|max_pool2d)/"],
        cwd=ROOT, env=_sim_env(), capture_output=True, text=True, timeout=600)
    report = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, report
    results = json.loads((tmp_path / "gpu_check_sim.json").read_text())
    stages = results["stages"]
    assert {k: v["status"] for k, v in stages.items()} == dict.fromkeys(
        ("device", "ops", "bandwidth", "sgemm", "timings"), "ok"), report
    ops = stages["ops"]
    # the depthwise backward and both max pools (symmetric and TensorFlow's asymmetric "same"
    # padding) in float32, then float64 for the first case of each function
    assert ops["checked"] == 3 + 2 and ops["failed"] == [] and ops["passed"] == ops["checked"], ops
    timed = {r["op"]: r for r in stages["timings"]["rows"]}
    assert len(timed) == 3 and all(r["ours_ms"] > 0 and r["torch_strict_ms"] > 0 for r in timed.values()), timed
    assert timed["max_pool2d/6x6x8"]["torch_padding_symmetric_stand_in"] is True
    assert "fraction_of_copy_bandwidth" in timed["depthwise_conv2d_backward/7x7x8"]
    assert stages["bandwidth"]["copy_gbs"] > 0
    assert all(r[p]["fraction"] > 0 for r in stages["sgemm"]["rows"] for p in ("forward", "backward"))
    md = (tmp_path / "gpu_check_sim.md").read_text()
    assert "Dry run in the CUDA simulator" in md and "| depthwise_conv2d_backward/7x7x8 |" in md


def test_model_stages_at_dry_run_sizes(tmp_path):
    from benchmarks.gpu import cli_run, report, train_step
    from benchmarks.gpu.context import Run

    run = Run(sim=True, budget_s=600, out=tmp_path, backend="numpy")
    run.on_stage_end = lambda r: report.write(r, "model_stages")
    run.stage("train_step", train_step.stage)
    run.stage("cli_train", cli_run.stage)
    stages = json.loads((tmp_path / "model_stages.json").read_text())["stages"]
    assert stages["train_step"]["status"] == "ok", stages["train_step"]
    (row,) = stages["train_step"]["rows"]
    assert "error" not in row and row["ours_ms"] > 0 and row["twin_strict_ms"] > 0, row
    assert row["logits_rel_error_vs_twin"] < 1e-4, row   # float32, the same weights
    cli = stages["cli_train"]
    assert cli["status"] == "ok", cli
    assert cli["evaluate_reproduces_val_top1"] and cli["evaluate"]["count"] == 2, cli
    assert (tmp_path / "cli_train_metrics.jsonl").exists()


COUNT_COPIES = """
import numpy as np
from numba import cuda
from benchmarks.gpu.copies import CopyCounter
from npxception.backends import get_backend

be = get_backend("cuda")

@cuda.jit
def double(a):
    i = cuda.grid(1)
    if i < a.size:
        a[i] *= 2

x = np.arange(6, dtype=np.float32)
with CopyCounter(be, sim=True) as counter:
    with counter.phase("upload"):
        xd = be.to_device(x)
    with counter.phase("compute"):
        y = be.relu(xd)
    with counter.phase("hidden"):
        double[1, 32](x)            # a kernel on a host array: copied in and out behind the API
    with counter.phase("download"):
        be.to_numpy(y)
print(repr(counter.summary()))
assert be.to_device.__name__ == "to_device" and not hasattr(be.to_device, "__wrapped__")
"""


def test_copy_counter_in_simulator():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    proc = subprocess.run([sys.executable, "-c", COUNT_COPIES], cwd=ROOT, env=_sim_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    counts = eval(proc.stdout.strip().splitlines()[-1])
    assert counts["upload"] == {"api_h2d": 1, "api_h2d_bytes": 24, "driver_h2d": 1, "driver_h2d_bytes": 24}
    assert "compute" not in counts   # nothing was copied while computing
    assert counts["hidden"] == {"driver_h2d": 1, "driver_h2d_bytes": 24, "driver_d2h": 1, "driver_d2h_bytes": 24}
    assert counts["download"] == {"api_d2h": 1, "api_d2h_bytes": 24, "driver_d2h": 1, "driver_d2h_bytes": 24}
