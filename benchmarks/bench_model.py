"""Model benchmark: one training step (forward, loss, backward, SGD update) of Xception with the cpu
backend against the same network in PyTorch on the CPU, at the same thread count.

    python benchmarks/bench_model.py           # full run, writes benchmarks/results/model_cpu.{json,md}
    python benchmarks/bench_model.py --quick   # smoke run: tiny() only, nothing written

Cases: XceptionConfig.small() at batch 64 (32x32 images) and XceptionConfig.paper() at batch 4
(299x299). PyTorch runs npxception.testing.torch_xception.TorchXception, the same network with the
same weights, in NCHW and in channels_last. Each variant runs in its own process, so its peak
memory (the process's peak resident set, minus the resident set just before the first step: the
activations, gradients and workspaces of training, beyond the weights and the batch) is its own.
Throughput is images/s from the median step time after warm-up steps. A last run of ours times
every layer's forward and backward in one step, so the slowest layers are visible.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {"small": ("small", 64), "paper": ("paper", 4), "tiny": ("tiny", 16)}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def config_for(preset: str):
    from npxception import XceptionConfig

    return getattr(XceptionConfig, preset)()


def batch_for(config, batch: int):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch, *config.input_shape)).astype(np.float32)
    return x, rng.integers(0, config.num_classes, batch)


# ---------------------------------------------------------------------------- ours

def ours_step_fn(model, x, labels, lr=0.01):
    be = model.backend
    velocity = {}

    def step():
        logits = model.forward(x, True)
        model.backward(be.softmax_cross_entropy_backward(1.0, logits, labels, 0.0))
        for key, (p, g) in model.trainable().items():
            if key not in velocity:
                velocity[key] = be.zeros(p.shape, p.dtype)
            be.sgd_update(p, g, velocity[key], lr, 0.9, False, 0.0)
        be.synchronize()

    return step


def instrument(model) -> dict:
    """Wrap every leaf layer's forward and backward to add its wall time to a table."""
    be, table = model.backend, {}

    def timed(layer, method, phase):
        def run(*args):
            start = time.perf_counter()
            out = method(*args)
            be.synchronize()
            table.setdefault(layer.name, {"type": type(layer).__name__, "forward": 0.0,
                                          "backward": 0.0})[phase] += time.perf_counter() - start
            return out
        return run

    for leaf in model.leaves():
        leaf.forward = timed(leaf, leaf.forward, "forward")
        leaf.backward = timed(leaf, leaf.backward, "backward")
    return table


def run_ours(preset, batch, steps, warmup, threads, per_layer):
    from npxception import Xception
    from npxception.backends import get_backend
    from npxception.threads import set_num_threads

    set_num_threads(threads)
    config = config_for(preset)
    model = Xception(config, backend="cpu", seed=0)
    x, labels = batch_for(config, batch)
    x = get_backend("cpu").to_device(x)
    step = ours_step_fn(model, x, labels)
    base = rss_mb()
    for _ in range(warmup):
        step()
    table = instrument(model) if per_layer else None
    times = []
    for _ in range(1 if per_layer else steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    import numba

    out = {"times": times, "peak_mb": peak_rss_mb(), "base_mb": base,
           "threading_layer": numba.threading_layer()}
    if per_layer:
        out["layers"] = table
    return out


# ---------------------------------------------------------------------------- PyTorch

def run_torch(preset, batch, steps, warmup, threads, channels_last):
    import torch

    from npxception import Xception
    from npxception.testing.torch_xception import TorchXception

    torch.set_num_threads(threads)
    config = config_for(preset)
    model = TorchXception(config)
    model.load_our_state_dict(Xception(config, backend="numpy", seed=0).state_dict())
    x, labels = batch_for(config, batch)
    x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.from_numpy(labels)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    seed = iter(range(10**9))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x, True, dropout_seed=next(seed)), labels)
        loss.backward()
        optimizer.step()

    base = rss_mb()
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"times": times, "peak_mb": peak_rss_mb(), "base_mb": base}


def worker(args) -> None:
    preset, batch = CASES[args.case]
    if args.worker == "ours":
        out = run_ours(preset, batch, args.steps, args.warmup, args.threads, per_layer=False)
    elif args.worker == "ours_layers":
        out = run_ours(preset, batch, args.steps, args.warmup, args.threads, per_layer=True)
    else:
        out = run_torch(preset, batch, args.steps, args.warmup, args.threads,
                        channels_last=args.worker == "torch_channels_last")
    print(json.dumps(out))


# ---------------------------------------------------------------------------- driver

def spawn(kind, case, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--case", case, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(case, kind, raw, batch) -> dict:
    median = statistics.median(raw["times"])
    return {"case": case, "variant": kind, "batch": batch, "step_ms": 1e3 * median,
            "images_per_s": batch / median, "peak_rss_mb": raw["peak_mb"],
            "training_mb": raw["peak_mb"] - raw["base_mb"]}


def markdown(rows, layer_tables, threads, threading_layer) -> str:
    lines = [f"Training step (forward + loss + backward + SGD momentum), float32, {threads} threads "
             f"(Numba threading layer: {threading_layer}), median of the timed steps. `training MB`: "
             "peak resident memory above the resident memory just before the first step.", "",
             "| case | variant | batch | step ms | images/s | vs ours | training MB | peak RSS MB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ours = next(o for o in rows if o["case"] == r["case"] and o["variant"] == "ours (cpu)")
        lines.append(f"| {r['case']} | {r['variant']} | {r['batch']} | {r['step_ms']:.1f} | "
                     f"{r['images_per_s']:.1f} | {r['images_per_s'] / ours['images_per_s']:.2f} | "
                     f"{r['training_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
    for case, table in layer_tables.items():
        total = sum(v["forward"] + v["backward"] for v in table.values())
        lines += ["", f"Slowest layers of one `{case}` step (ours, cpu backend; total "
                      f"{1e3 * total:.0f} ms):", "",
                  "| layer | type | forward ms | backward ms | share |", "| --- | --- | ---: | ---: | ---: |"]
        ranked = sorted(table.items(), key=lambda kv: -(kv[1]["forward"] + kv[1]["backward"]))
        for name, v in ranked[:15]:
            lines.append(f"| {name} | {v['type']} | {1e3 * v['forward']:.1f} | "
                         f"{1e3 * v['backward']:.1f} | {(v['forward'] + v['backward']) / total:.1%} |")
        by_type = {}
        for v in table.values():
            by_type[v["type"]] = by_type.get(v["type"], 0.0) + v["forward"] + v["backward"]
        lines += ["", "By layer type: " + ", ".join(
            f"{k} {t / total:.0%}" for k, t in sorted(by_type.items(), key=lambda kv: -kv[1]))]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny() only, few steps, write nothing")
    parser.add_argument("--cases", default="small,paper", help="comma-separated: small, paper, tiny")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--worker", choices=["ours", "ours_layers", "torch_nchw", "torch_channels_last"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    cases = ["tiny"] if args.quick else args.cases.split(",")
    if args.quick:
        args.steps, args.warmup = 2, 1
    rows, layer_tables, threading_layer = [], {}, "?"
    variants = {"ours": "ours (cpu)", "torch_nchw": "PyTorch NCHW",
                "torch_channels_last": "PyTorch channels_last"}
    for case in cases:
        batch = CASES[case][1]
        for kind, label in variants.items():
            raw = spawn(kind, case, args)
            threading_layer = raw.get("threading_layer", threading_layer)
            row = summarise(case, label, raw, batch)
            rows.append(row)
            print(f"{case:<6} {label:<22} {row['step_ms']:9.1f} ms/step {row['images_per_s']:8.1f} img/s "
                  f"{row['training_mb']:7.0f} MB training, {row['peak_rss_mb']:7.0f} MB peak", flush=True)
        layer_tables[case] = spawn("ours_layers", case, args)["layers"]
    text = markdown(rows, layer_tables, args.threads, threading_layer)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        meta = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
                "threads": args.threads, "steps": args.steps, "warmup": args.warmup,
                "numba_threading_layer": threading_layer}
        (RESULTS / "model_cpu.json").write_text(json.dumps(
            {"meta": meta, "rows": rows, "layers": layer_tables}, indent=1))
        (RESULTS / "model_cpu.md").write_text(text)


if __name__ == "__main__":
    main()
