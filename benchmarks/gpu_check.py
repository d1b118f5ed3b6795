"""The CUDA backend on a real GPU in one run: correctness at Xception's shapes, then speed.

From the repository root on the GPU machine (numba-cuda, torch with CUDA; timm optional):

    PYTHONPATH=. python benchmarks/gpu_check.py --budget 420 --out "$OUT"

It stops starting work after --budget seconds (default 420: about 8 minutes, which with a minute of
machine start-up and the copy of the results fits 10 minutes of GPU time) and writes gpu_check.json
(everything) and gpu_check.md (the tables) to --out (default benchmarks/results/), after every stage,
so a run killed from outside keeps what it measured. A hang past the budget plus a minute dumps
every thread's traceback and exits.

    NUMBA_ENABLE_CUDASIM=1 PYTHONPATH=. python benchmarks/gpu_check.py --sim

is the dry run: every stage at tiny shapes in Numba's CUDA simulator, PyTorch on the CPU, wall-clock
timers (its numbers mean nothing), written as gpu_check_sim.{json,md}; 10 to 15 minutes on a quiet two-core
machine, most of it the simulated training steps. `--stages ops,timings` runs a subset, `--ops
depthwise` only the depthwise cases.

Stages, in order, each guarded (a failure is recorded and the next stage runs):
device (versions, the GPU), ops (every op against the NumPy reference, until 60% of the budget is
spent), train_step (paper and small networks against the PyTorch twin and timm's legacy_xception,
copies per step), cli_train (`npxception train --backend cuda` for a few epochs, then `npxception
evaluate`), bandwidth (device-to-device copy), sgemm (against cuBLAS), timings (every op against
cuDNN/cuBLAS), cli_train_cpu (the same training run on the cpu backend, if time is left).
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE_NAMES = ("device", "ops", "train_step", "cli_train", "bandwidth", "sgemm", "timings", "cli_train_cpu")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim", action="store_true", help="dry run at tiny shapes in the CUDA simulator")
    p.add_argument("--budget", type=float, help="seconds before no new work starts (default 420; --sim 3600)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for the results")
    p.add_argument("--stages", default=",".join(STAGE_NAMES),
                   help="comma-separated subset of " + ", ".join(STAGE_NAMES))
    p.add_argument("--ops", help="only the op cases whose name matches this regular expression (ops, timings)")
    p.add_argument("--check-batch", type=int, default=2, help="batch of the correctness checks")
    p.add_argument("--time-batch", type=int, default=16, help="batch of the op timings")
    p.add_argument("--train-batch", type=int, default=16, help="batch of the paper network's training step")
    p.add_argument("--cli-train-size", type=int, default=2000, help="images of the npxception train run")
    p.add_argument("--cli-epochs", type=int, default=3)
    args = p.parse_args(argv)
    unknown = set(args.stages.split(",")) - set(STAGE_NAMES)
    if unknown:
        p.error(f"--stages: unknown {sorted(unknown)}; choose from {', '.join(STAGE_NAMES)}")
    if args.budget is None:
        args.budget = 3600.0 if args.sim else 420.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sim:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"   # before the first import of numba
    os.environ.setdefault("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "0")   # small grids warn at every launch
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    faulthandler.dump_traceback_later(args.budget + 60, exit=True)

    from benchmarks.gpu import cli_run, correctness, device, report, sgemm, timing, train_step
    from benchmarks.gpu.context import Run

    run = Run(sim=args.sim, budget_s=args.budget, out=args.out,
              options={"check_batch": args.check_batch, "time_batch": args.time_batch,
                       "train_batch": args.train_batch, "cli_train_size": args.cli_train_size,
                       "cli_epochs": args.cli_epochs, "ops_pattern": args.ops})
    run.results.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), sim=args.sim,
                       budget_s=args.budget, command="python benchmarks/gpu_check.py " + " ".join(argv or sys.argv[1:]))
    name = "gpu_check_sim" if args.sim else "gpu_check"
    run.on_stage_end = lambda r: report.write(r, name)
    stages = {"device": (device.stage, 0), "ops": (correctness.stage, 0), "train_step": (train_step.stage, 45),
              "cli_train": (cli_run.stage, 60), "bandwidth": (sgemm.bandwidth_stage, 10),
              "sgemm": (sgemm.sgemm_stage, 20), "timings": (timing.stage, 20),
              "cli_train_cpu": (cli_run.cpu_stage, 120)}
    chosen = args.stages.split(",")
    for stage_name in STAGE_NAMES:
        if stage_name in chosen:
            fn, needs_s = stages[stage_name]
            record = run.stage(stage_name, fn, needs_s=needs_s)
            if stage_name == "device" and (record or {}).get("status") == "error":
                break   # no GPU: nothing else can run
    faulthandler.cancel_dump_traceback_later()
    statuses = {k: v.get("status") for k, v in run.results["stages"].items()}
    print(f"wrote {args.out / name}.json and .md in {run.elapsed():.0f} s; stages: {statuses}", flush=True)
    return 0 if all(s in ("ok", "skipped") for s in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
