"""Stages "cli_train" and "cli_train_cpu": `npxception train` then `npxception evaluate`, as a user runs them.

A short run of the small preset on the built-in images (a few epochs of `--train-size` images), in
a subprocess with a timeout, then `npxception evaluate --json` on its run directory. Reported: the
final validation accuracy, whether evaluate reproduces it, training images/s (the last epoch's,
compilation excluded) and evaluation images/s. "cli_train_cpu" repeats the run on the cpu backend
with the same data and seed, when the budget allows, for the accuracy comparison. The run's
metrics.jsonl and learning curves are copied next to the results; the checkpoint is not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def train_args(run) -> list[str]:
    if run.sim:   # the simulator runs each CUDA thread in Python: one step per epoch
        return ["--preset", "tiny", "--image-size", "8", "--middle-blocks", "0", "--train-size", "2",
                "--val-size", "2", "--batch-size", "2", "--epochs", "1", "--no-augment"]
    o = run.options
    return ["--preset", "small", "--train-size", str(o.get("cli_train_size", 2000)), "--val-size", "500",
            "--batch-size", "64", "--epochs", str(o.get("cli_epochs", 3))]


def _env() -> dict:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path)


def _call(args: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "npxception", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=max(timeout, 1.0))
    return proc, time.monotonic() - t0


def _tail(proc: subprocess.CompletedProcess) -> str:
    return (proc.stdout[-1500:] + proc.stderr[-1500:]).strip()


def train_and_evaluate(run, backend: str, label: str) -> dict:
    reserve = run.options.get("cli_reserve_s", 0.2 * run.budget_s)   # what later stages keep
    with tempfile.TemporaryDirectory(prefix="npx-gpu-check-") as tmp:
        run_dir = Path(tmp) / "run"
        args = ["train", "--backend", backend, *train_args(run), "--seed", "0", "--quiet", "--out", str(run_dir)]
        found = {"command": "npxception " + " ".join(args).replace(str(run_dir), "RUN_DIR")}
        proc, seconds = _call(args, run.left() - reserve)
        found.update(train_returncode=proc.returncode, train_wall_s=round(seconds, 1))
        if proc.returncode != 0:
            raise RuntimeError(f"npxception train exited with {proc.returncode}: {_tail(proc)[-600:]}")
        epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
        last = epochs[-1]
        found["epochs"] = [{k: e[k] for k in ("epoch", "train_loss", "train_top1", "val_loss", "val_top1",
                                             "images_per_sec", "train_seconds")} for e in epochs]
        found.update(val_top1=last["val_top1"], val_loss=last["val_loss"],
                     train_images_per_s_last_epoch=last["images_per_sec"])
        for name in ("metrics.jsonl", "learning_curves.png"):
            if (run_dir / name).exists():
                run.out.mkdir(parents=True, exist_ok=True)
                shutil.copy(run_dir / name, run.out / f"{label}_{name}")
        proc, seconds = _call(["evaluate", str(run_dir), "--json"], run.left() - 5)
        found.update(evaluate_returncode=proc.returncode, evaluate_wall_s=round(seconds, 1))
        if proc.returncode != 0:
            raise RuntimeError(f"npxception evaluate exited with {proc.returncode}: {_tail(proc)[-600:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result.pop("confusion", None)
        found["evaluate"] = result
        found["evaluate_reproduces_val_top1"] = abs(result["top1"] - last["val_top1"]) < 1e-12
        found["evaluate_images_per_s_incl_startup"] = result["count"] / seconds
    print(f"  {label}: val top-1 {found['val_top1']:.4f} (evaluate {result['top1']:.4f}), "
          f"{found['train_images_per_s_last_epoch']:.0f} images/s in training", flush=True)
    return found


def stage(run) -> dict:
    return train_and_evaluate(run, run.backend, "cli_train")


def cpu_stage(run) -> dict:
    """The same run on the cpu backend (numpy in the dry run: no Numba CPU compilation there)."""
    backend = "numpy" if run.sim else "cpu"
    found = train_and_evaluate(run, backend, f"cli_train_{backend}")
    ours = run.results["stages"].get("cli_train", {}).get("val_top1")
    if ours is not None:
        found["val_top1_difference_gpu_minus_this"] = ours - found["val_top1"]
    found["backend"] = backend
    return found
