"""Time to accuracy of a CIFAR-10 run: learning curves against wall-clock minutes, the FLOPs spent.

    python benchmarks/cifar_report.py RUN_DIR --name cifar10_shards_small [--wall-seconds S] [--cpu NAME]

reads RUN_DIR/metrics.jsonl and RUN_DIR/checkpoint.npz (the model's configuration) and writes
benchmarks/results/NAME.md (the time-to-accuracy table), NAME.png (top-1 against minutes) and
NAME_metrics.jsonl (a copy of every epoch). The minutes are each epoch's training and evaluation
seconds, summed (metrics.jsonl's train_seconds and eval_seconds). For a run recorded before
eval_seconds existed, `--wall-seconds` (the whole run's wall time, for example from
/usr/bin/time) spreads what the training seconds leave over the epochs evenly, and the table says so.

FLOPs: 2 per multiply-add; a training image costs its forward pass three times (forward, and a
backward twice as costly), an evaluated image once (the usual accounting, as airbench's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = (0.80, 0.85, 0.90, 0.92, 0.93)
AIRBENCH94_FLOPS = 0.36e15  # Jordan 2024: airbench94's whole run to 94%


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory of npxception train")
    parser.add_argument("--name", required=True, help="the results' file name stem")
    parser.add_argument("--wall-seconds", type=float, help="the run's wall time (runs without eval_seconds)")
    parser.add_argument("--cpu", default=None, help="the CPU the run used (default: this machine's)")
    parser.add_argument("--command", default=None, help="the command that made the run, shown in the report")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from npxception import XceptionConfig
    from npxception.models.xception import Xception
    from npxception.testing.isolated import cpu_name
    from npxception.train.checkpoint import load_checkpoint

    epochs = [json.loads(line) for line in (args.run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if not epochs:
        raise SystemExit(f"{args.run}/metrics.jsonl holds no epoch")
    _, meta = load_checkpoint(args.run / "checkpoint.npz")
    config = XceptionConfig(**meta["model_config"]) if "model_config" in meta else None
    train_images = round(sum(e["images_per_sec"] * e["train_seconds"] for e in epochs))
    if all("eval_seconds" in e for e in epochs):
        seconds = [e["train_seconds"] + e["eval_seconds"] for e in epochs]
        timing = "each epoch's training + evaluation seconds (metrics.jsonl), summed"
    elif args.wall_seconds:
        rest = (args.wall_seconds - sum(e["train_seconds"] for e in epochs)) / len(epochs)
        seconds = [e["train_seconds"] + rest for e in epochs]
        timing = (f"training seconds per epoch (metrics.jsonl) plus an even share ({rest:.1f} s) of what the "
                  f"run's {args.wall_seconds:.0f} s of wall time leaves (start-up, evaluation, checkpoints)")
    else:
        raise SystemExit("metrics.jsonl has no eval_seconds: give --wall-seconds")
    minutes = np.cumsum(seconds) / 60
    top1 = np.array([e["val_top1"] for e in epochs])

    lines = [f"# CIFAR-10 time to accuracy: {args.name}", "",
             f"CPU: {args.cpu or cpu_name()}; {os.cpu_count()} CPUs where this report was written.", ""]
    if args.command:
        lines += ["```bash", args.command, "```", ""]
    lines += [f"{len(epochs)} epochs, {train_images:,} training images seen; minutes: {timing}.", "",
              "| held-out top-1 | first epoch | minutes |", "| ---: | ---: | ---: |"]
    for target in TARGETS:
        hit = np.flatnonzero(top1 >= target)
        lines.append(f"| {target:.0%} | {hit[0] + 1} | {minutes[hit[0]]:.1f} |" if hit.size
                     else f"| {target:.0%} | not reached | - |")
    median = float(np.median(seconds))
    lines += ["", f"Epoch seconds: median {median:.1f}, range {min(seconds):.1f}-{max(seconds):.1f} (other work "
                  f"on the machine slows an epoch); at the median the {len(epochs)} epochs take "
                  f"{median * len(epochs) / 60:.1f} minutes."]
    best = int(np.argmax(top1))
    lines += ["", f"Best: {top1[best]:.2%} at epoch {best + 1} ({minutes[best]:.1f} min); last: {top1[-1]:.2%} "
                  f"({minutes[-1]:.1f} min). Top-1 within 60 minutes: "
                  + (f"{top1[minutes <= 60].max():.2%}." if (minutes <= 60).any() else "no epoch ended by then.")]
    if config is not None:
        shape = tuple(config.input_shape)
        macs = Xception(config, backend="numpy").network.macs(shape)
        val_images = int(meta.get("data_description", {}).get("val", {}).get("count", 0))
        flops = 2 * macs * (3 * train_images + val_images * len(epochs))
        lines += ["", f"FLOPs: {macs / 1e6:.1f} M multiply-adds per {shape[0]}x{shape[1]} image forward; "
                      f"{flops / 1e15:.3f} PFLOP for the run (training at 3x the forward"
                      + (f", {val_images:,} validation images per epoch" if val_images else "")
                      + f"), {flops / AIRBENCH94_FLOPS:.2f}x airbench94's 0.36 PFLOP."]
    out = RESULTS / f"{args.name}.md"
    out.write_text("\n".join(lines) + "\n")
    shutil.copyfile(args.run / "metrics.jsonl", RESULTS / f"{args.name}_metrics.jsonl")

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(minutes, 100 * top1, "-o", ms=3, label="held-out top-1")
    ax.plot(minutes, [100 * e["train_top1"] for e in epochs], "--", label="training top-1 (augmented)")
    for target in (90, 93):
        ax.axhline(target, color="gray", lw=0.6, ls=":")
    ax.axvline(60, color="tab:red", lw=0.8, ls="--", label="60 minutes")
    ax.set(xlabel="wall-clock minutes", ylabel="top-1 %", title=f"CIFAR-10, {args.name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
