"""Model benchmark: one training step (forward, loss, backward, SGD update) of Xception with the cpu
backend against the same network in PyTorch on the CPU, at the same thread count.

    python benchmarks/bench_model.py              # full run, writes benchmarks/results/model_cpu.{json,md}
    python benchmarks/bench_model.py --rounds 5   # more rounds (default 3)
    python benchmarks/bench_model.py --quick      # smoke run: tiny() only, one round, nothing written

Cases: XceptionConfig.small() at batch 64 (32x32 images) and XceptionConfig.paper() at batch 4
(299x299). PyTorch runs two models, each in NCHW and in channels_last:
  - the twin, npxception.testing.torch_xception.TorchXception: our weights, TensorFlow's "same"
    padding through explicit F.pad calls, dropout masks drawn by NumPy (the parity reference);
  - the idiomatic model, benchmarks/torch_idiomatic.py: stock nn.Conv2d(padding=1), nn.BatchNorm2d,
    nn.MaxPool2d(padding=1), nn.Dropout, no explicit pads (what a PyTorch user would write).
Each variant runs in its own process, so its peak memory (the process's peak resident set, minus
the resident set just before the first step: the activations, gradients and workspaces of
training, beyond the weights and the batch) is its own. A round runs every variant once; rounds
alternate the order (forward, then reversed), so a change in the machine's load does not always
fall on the same variant. A variant's step time is the median over rounds of its per-round median
step time after warm-up steps; the per-round numbers are kept in the JSON. A last run of ours
times every layer's forward and backward in one step, so the slowest layers are visible.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from npxception.testing.isolated import ChildResult, cpu_name  # noqa: E402

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
        # As the trainer (and PyTorch, whose input needs no grad): no gradient for the images.
        model.backward(be.softmax_cross_entropy_backward(1.0, logits, labels, 0.0), input_grad=False)
        for key, (p, g) in model.trainable().items():
            if key not in velocity:
                velocity[key] = be.zeros(p.shape, p.dtype)
            be.sgd_update(p, g, velocity[key], lr, 0.9, False, 0.0)
        be.synchronize()

    return step


def instrument(model) -> dict:
    """Wrap the forward and backward of every layer that computes (Layer.compute_layers: the leaves,
    with each fused nn.BatchNormReLU as one) to add its wall time to a table."""
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

    for layer in model.network.compute_layers():
        layer.forward = timed(layer, layer.forward, "forward")
        layer.backward = timed(layer, layer.backward, "backward")
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
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(1 if per_layer else steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    import numba

    # Page faults of the timed steps: new memory touched, i.e. buffers the allocator did not reuse.
    out = {"times": times, "peak_mb": peak_rss_mb(), "base_mb": base, "faults_per_step": faults / len(times),
           "threading_layer": numba.threading_layer()}
    if per_layer:
        out["layers"] = table
    return out


# ---------------------------------------------------------------------------- PyTorch

def torch_model(config, idiomatic: bool):
    """(model, forward(x) -> logits) for the twin (our weights, our dropout masks) or the idiomatic model."""
    import torch

    from npxception import Xception
    from npxception.testing.torch_xception import TorchXception

    if idiomatic:
        from torch_idiomatic import IdiomaticXception

        torch.manual_seed(0)
        model = IdiomaticXception(config).train()
        return model, model
    model = TorchXception(config)
    model.load_our_state_dict(Xception(config, backend="numpy", seed=0).state_dict())
    seed = iter(range(10**9))
    return model, lambda x: model(x, True, dropout_seed=next(seed))


def run_torch(preset, batch, steps, warmup, threads, channels_last, idiomatic):
    import torch

    torch.set_num_threads(threads)
    config = config_for(preset)
    model, forward = torch_model(config, idiomatic)
    x, labels = batch_for(config, batch)
    x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.from_numpy(labels)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(forward(x), labels)
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


# kind -> (label, which PyTorch model); the order of a round (reversed every other round).
VARIANTS = {
    "ours": ("ours (cpu)", "-"),
    "ours_plain": ("ours (cpu, plain kernels)", "-"),  # NPXCEPTION_PLAIN=1: what the tuned kernels buy
    "torch_nchw": ("PyTorch twin NCHW", "twin"),
    "torch_channels_last": ("PyTorch twin channels_last", "twin"),
    "torch_idiomatic_nchw": ("PyTorch idiomatic NCHW", "idiomatic"),
    "torch_idiomatic_channels_last": ("PyTorch idiomatic channels_last", "idiomatic"),
}
MODELS = {
    "twin": "`npxception.testing.torch_xception.TorchXception`: our weights, TensorFlow \"same\" padding "
            "through explicit `F.pad`, dropout masks drawn by NumPy (the parity reference)",
    "idiomatic": "`benchmarks/torch_idiomatic.py`: stock `nn.Conv2d(padding=1)` (depthwise with `groups=C`), "
                 "`nn.BatchNorm2d`, `nn.ReLU(inplace=True)`, `nn.MaxPool2d(3, 2, padding=1)`, `nn.Dropout`, "
                 "`nn.Linear`, no explicit pads (same layers and parameter count, different stride-2 padding)",
}


def worker(args) -> None:
    preset, batch = CASES[args.case]
    if args.worker in ("ours", "ours_plain"):  # ours_plain: spawned with NPXCEPTION_PLAIN=1
        out = run_ours(preset, batch, args.steps, args.warmup, args.threads, per_layer=False)
    elif args.worker == "ours_layers":
        out = run_ours(preset, batch, args.steps, args.warmup, args.threads, per_layer=True)
    else:
        out = run_torch(preset, batch, args.steps, args.warmup, args.threads,
                        channels_last=args.worker.endswith("channels_last"), idiomatic="idiomatic" in args.worker)
    print(json.dumps(out))


# ---------------------------------------------------------------------------- driver

def spawn(kind, case, args) -> dict:
    """One worker process; {"failed": reason} when it dies (a crash in one variant spares the others)."""
    cmd = [sys.executable, __file__, "--worker", kind, "--case", case, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads)]
    env = {**os.environ, "NPXCEPTION_PLAIN": "1" if kind == "ours_plain" else "0"}
    return run_worker(cmd, f"{case} {kind}", env)


def run_worker(cmd: list[str], label: str, env: dict | None = None) -> dict:
    """The worker's JSON line, or {"failed": reason, "crashed": signal name} when a signal killed it
    (PyTorch's native kernels can abort: see npxception.testing.isolated), or {"failed": reason}."""
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        result = ChildResult(done.returncode, done.stdout, done.stderr)
        print(f"{label}: worker {'crashed' if result.crashed else 'failed'} ({result.how}): {tail}",
              file=sys.stderr, flush=True)
        return {"failed": f"{result.how}: {tail}", **({"crashed": result.how} if result.crashed else {})}
    return json.loads(done.stdout.strip().splitlines()[-1])


def round_record(raw, batch, position) -> dict:
    if "failed" in raw:
        return {"position": position, **raw}
    median = statistics.median(raw["times"])
    return {"position": position, "step_ms": 1e3 * median, "images_per_s": batch / median,
            "times_s": raw["times"], "peak_rss_mb": raw["peak_mb"], "training_mb": raw["peak_mb"] - raw["base_mb"]}


def summarise(case, kind, rounds, batch) -> dict | None:
    """Medians over the rounds that finished; None when none did."""
    done = [r for r in rounds if "failed" not in r]
    if not done:
        return None
    step_ms = statistics.median(r["step_ms"] for r in done)
    label, model = VARIANTS[kind]
    return {"case": case, "variant": label, "kind": kind, "pytorch_model": model, "batch": batch,
            "step_ms": step_ms, "images_per_s": 1e3 * batch / step_ms,
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in done),
            "training_mb": statistics.median(r["training_mb"] for r in done),
            "rounds_ms": [r.get("step_ms", "crashed" if "crashed" in r else "failed") for r in rounds],
            "rounds_failed": len(rounds) - len(done)}


def markdown(rows, layer_tables, args, threading_layer) -> str:
    lines = [f"{cpu_name()}, 1-minute load average {os.getloadavg()[0]:.1f} at the end of the run.", "",
             f"Training step (forward + loss + backward + SGD momentum), float32, {args.threads} threads "
             f"(Numba threading layer: {threading_layer}). Each variant in its own process, {args.rounds} "
             f"round(s) in alternating order; step ms is the median over rounds of each round's median of "
             f"{args.steps} timed steps (after {args.warmup} warm-up steps). `training MB`: peak resident memory "
             "above the resident memory just before the first step.", "",
             "| case | variant | PyTorch model | batch | step ms | per round ms | images/s | vs ours | training MB "
             "| peak RSS MB |", "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ours = next((o for o in rows if o["case"] == r["case"] and o["kind"] == "ours"), None)
        versus = f"{r['images_per_s'] / ours['images_per_s']:.2f}" if ours else "-"
        per_round = ", ".join(f"{t:.0f}" if isinstance(t, float) else t for t in r["rounds_ms"])
        lines.append(f"| {r['case']} | {r['variant']} | {r['pytorch_model']} | {r['batch']} | {r['step_ms']:.1f} | "
                     f"{per_round} | {r['images_per_s']:.1f} | {versus} | {r['training_mb']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} |")
    lines += ["", "PyTorch models: " + "; ".join(f"**{k}**, {v}" for k, v in MODELS.items()) + ".", "",
              "| case | ours images/s | fastest PyTorch row | its images/s | ours / best PyTorch | ours training MB "
              "| its training MB |", "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for case in dict.fromkeys(r["case"] for r in rows):
        ours = next((r for r in rows if r["case"] == case and r["kind"] == "ours"), None)
        theirs = [r for r in rows if r["case"] == case and r["kind"].startswith("torch")]
        if ours and theirs:
            best = max(theirs, key=lambda r: r["images_per_s"])
            lines.append(f"| {case} | {ours['images_per_s']:.1f} | {best['variant']} | {best['images_per_s']:.1f} | "
                         f"{ours['images_per_s'] / best['images_per_s']:.2f} | {ours['training_mb']:.0f} | "
                         f"{best['training_mb']:.0f} |")
    plain_rows = [(r, next((o for o in rows if o["case"] == r["case"] and o["kind"] == "ours"), None))
                  for r in rows if r["kind"] == "ours_plain"]
    if plain_rows:
        lines += ["", "What the tuned kernels buy (`npxception/backends/cpu/dispatch.py`): the same network on the "
                  "plain kernels alone (`NPXCEPTION_PLAIN=1`).", "",
                  "| case | plain images/s | tuned images/s | tuned / plain |", "| --- | ---: | ---: | ---: |"]
        for plain, tuned in plain_rows:
            if tuned:
                lines.append(f"| {plain['case']} | {plain['images_per_s']:.1f} | {tuned['images_per_s']:.1f} | "
                             f"{tuned['images_per_s'] / plain['images_per_s']:.2f} |")
    lines += layer_markdown(layer_tables)
    return "\n".join(lines) + "\n"


def missing_markdown(missing: list[str]) -> str:
    if not missing:
        return ""
    return "\nNo round finished (the worker crashed or failed; see the JSON): " + ", ".join(missing) + ".\n"


def layer_markdown(layer_tables) -> list[str]:
    lines = []
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
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny() only, one round, one step, no warm-up, write nothing")
    parser.add_argument("--cases", default="small,paper", help="comma-separated: small, paper, tiny")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=3, help="every variant once per round, alternating order")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--worker", choices=[*VARIANTS, "ours_layers"], help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--results", default="model_cpu",
                        help="file name stem in benchmarks/results/ (default model_cpu; one per host keeps each)")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    cases = ["tiny"] if args.quick else args.cases.split(",")
    kinds = args.variants.split(",")
    for name, values, known in (("--cases", cases, CASES), ("--variants", kinds, VARIANTS)):
        if not values or any(v not in known for v in values):
            parser.error(f"{name} must be a comma-separated list from {', '.join(known)}, got {values}")
    if args.rounds < 1 or args.steps < 1 or args.warmup < 0:
        parser.error(f"need --rounds >= 1, --steps >= 1, --warmup >= 0, got {args.rounds}, {args.steps}, "
                     f"{args.warmup}")
    if args.quick:
        args.rounds, args.steps, args.warmup = 1, 1, 0
    rows, missing, per_round, layer_tables, threading_layer = [], [], {}, {}, "?"
    for case in cases:
        batch = CASES[case][1]
        records = {kind: [] for kind in kinds}
        for r in range(args.rounds):
            for position, kind in enumerate(kinds if r % 2 == 0 else kinds[::-1]):
                raw = spawn(kind, case, args)
                threading_layer = raw.get("threading_layer", threading_layer)
                records[kind].append(round_record(raw, batch, position))
                if "failed" not in raw:
                    rec = records[kind][-1]
                    print(f"{case:<6} round {r + 1} {VARIANTS[kind][0]:<32} {rec['step_ms']:9.1f} ms/step "
                          f"{rec['images_per_s']:8.1f} img/s {rec['training_mb']:7.0f} MB training", flush=True)
        per_round[case] = records
        for kind in kinds:
            row = summarise(case, kind, records[kind], batch)
            if row is None:
                how = "crashed" if any("crashed" in r for r in records[kind]) else "failed"
                missing.append(f"{case} {VARIANTS[kind][0]} ({how})")
            else:
                rows.append(row)
        if "ours" in kinds:
            raw = spawn("ours_layers", case, args)
            if "layers" in raw:
                layer_tables[case] = raw["layers"]
    text = markdown(rows, layer_tables, args, threading_layer) + missing_markdown(missing)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        meta = {"machine": platform.processor() or platform.machine(), "cpu": cpu_name(),
                "python": platform.python_version(), "load_average": [round(v, 2) for v in os.getloadavg()],
                "threads": args.threads, "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
                "numba_threading_layer": threading_layer}
        (RESULTS / f"{args.results}.json").write_text(json.dumps(
            {"meta": meta, "rows": rows, "missing": missing, "rounds": per_round, "layers": layer_tables}, indent=1))
        (RESULTS / f"{args.results}.md").write_text(text)


if __name__ == "__main__":
    main()
