"""Roofline: the machine's limits measured once, and every kernel of a training step put against them.

    python benchmarks/roofline.py           # full run, writes benchmarks/results/roofline_cpu.{json,md}
    python benchmarks/roofline.py --quick   # smoke run: tiny() and tiny arrays, nothing written

1. The limits (benchmarks/roofline_machine.py): the theoretical FP32 peak from lscpu and
   /proc/cpuinfo; the measured one, a Numba kernel of independent FMA chains on 1 and 2 threads
   (as Numba compiles by default, and at the full vector width), and OpenBLAS sgemm on a large
   square matrix (the achievable peak); the copy bandwidth of STREAM-like copy and triad kernels.
2. The pointwise GEMMs of the paper network (batch 4), derived from its SeparableConv2D layers:
   forward X @ W, input gradient dY @ W^T and filter gradient X^T @ dY, the last both as one
   `a.T @ b` and as the cpu backend's deterministic chunked `tall_transpose_matmul`.
3. One training step of `small` (batch 64) and `paper` (batch 4) on the cpu backend, every leaf
   layer's forward and backward timed (bench_model.instrument), with its FLOPs and the bytes it
   must at least move (RULES below), against the peak and the bandwidth.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import roofline_machine as machine  # noqa: E402
from roofline_report import markdown  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {"small": ("small", 64), "paper": ("paper", 4), "tiny": ("tiny", 16)}

# FLOPs of one layer, forward and backward, per image. Conv-like layers: 2 flops per multiply-add of
# Layer.macs(); the backward is twice the forward (the input gradient and the weight gradient each
# cost one forward). Elementwise layers, which have no multiply-adds: flops per element as below.
CONV_LIKE = ("Conv2D", "SeparableConv2D", "PointwiseConv2D", "DepthwiseConv2D", "Dense")
# MaxPool2D, per output element: kh*kw - 1 compares forward (keeping the winning tap); kh*kw selects and adds backward.
PER_ELEMENT = {  # type: (forward flops, backward flops) per input element
    "BatchNorm": (5, 9),   # sum, sum of squares, scale and shift; backward: x_hat, two sums, dx
    "BatchNormReLU": (6, 10),  # BatchNorm's, plus the clamp and the mask (one fused kernel each way)
    "ReLU": (1, 1),        # a compare; a select
    "Dropout": (1, 1),     # a multiply by the scaled mask
    "GlobalAvgPool2D": (1, 1),
}
RULES = (
    "FLOPs: Conv2D, SeparableConv2D (depthwise + pointwise) and Dense count 2 flops per multiply-add "
    "of `Layer.macs()`, and their backward twice their forward (input gradient + weight gradient). "
    "Per element of the input: BatchNorm 5 forward (sum, sum of squares, scale and shift) and 9 "
    "backward (BatchNormReLU, the fused pair, 6 and 10); ReLU, Dropout and GlobalAvgPool2D 1 and 1. "
    "MaxPool2D, per output element: kh*kw - 1 forward and kh*kw backward (8 and 9 for Xception's 3x3). "
    "Any other layer: 0. "
    "Bytes (float32): forward reads the input and the weights and writes the output; backward reads "
    "dy, the saved input and the weights and writes dx and the weight gradients. "
    "Intermediates inside a layer (the separable convolution's depthwise output, im2col buffers, "
    "saved masks) are not counted: they are the implementation's cost, not the layer's. Residual adds, "
    "the loss and the SGD update belong to no leaf layer; they are the step's remainder.")


def leaf_shapes(layer, input_shape):
    """(layer, per-image input shape, per-image output shape) for every layer that computes
    (Layer.compute_layers: the leaves, and each fused BatchNormReLU as one), in forward order."""
    from npxception import nn

    if isinstance(layer, nn.BatchNormReLU) and list(layer.compute_layers()) == [layer]:
        yield layer, tuple(input_shape), tuple(layer.output_shape(input_shape))
    elif isinstance(layer, nn.Sequential):
        for child in layer.layers:
            yield from leaf_shapes(child, input_shape)
            input_shape = child.output_shape(input_shape)
    elif isinstance(layer, nn.Residual):
        yield from leaf_shapes(layer.main, input_shape)
        if layer.shortcut is not None:
            yield from leaf_shapes(layer.shortcut, input_shape)
    else:
        yield layer, tuple(input_shape), tuple(layer.output_shape(input_shape))


def layer_work(layer, in_shape, out_shape, batch: int) -> dict:
    """FLOPs and minimum bytes of one layer's forward and backward for a batch (RULES)."""
    kind, itemsize = type(layer).__name__, layer.dtype.itemsize
    n_in, n_out = batch * int(np.prod(in_shape)), batch * int(np.prod(out_shape))
    weights = sum(int(np.prod(v.shape)) for leaf in layer.leaves() for v in leaf.weights().values())
    params = sum(int(np.prod(v.shape)) for leaf in layer.leaves() for v in leaf.params.values())
    if kind in CONV_LIKE:
        forward = 2 * batch * layer.macs(in_shape)
        backward = 2 * forward
    elif kind == "MaxPool2D":
        taps = int(np.prod(layer.window.kernel))
        forward, backward = (taps - 1) * n_out, taps * n_out
    elif kind in PER_ELEMENT:
        forward, backward = (n_in * f for f in PER_ELEMENT[kind])
    else:
        forward = backward = 0
    return {"flops": {"forward": forward, "backward": backward},
            "bytes": {"forward": itemsize * (n_in + n_out + weights),
                      "backward": itemsize * (n_out + 2 * n_in + weights + params)}}


# ---------------------------------------------------------------------------- pointwise GEMMs

def pointwise_shapes(config, batch: int) -> list[dict]:
    """Distinct (P rows, K in, C out) pointwise GEMMs of the model's SeparableConv2D layers."""
    from npxception import Xception, nn

    model = Xception(config, backend="numpy", seed=0)
    shapes: dict[tuple, list[str]] = {}
    for leaf, _, out_shape in leaf_shapes(model.network, config.input_shape):
        if isinstance(leaf, nn.SeparableConv2D):
            key = (batch * out_shape[0] * out_shape[1], leaf.in_channels * leaf.depth_multiplier, leaf.filters)
            shapes.setdefault(key, []).append(leaf.name)
    return [{"rows": p, "k": k, "c": c, "layers": names} for (p, k, c), names in shapes.items()]


BLAS_IDLE_S = 0.3


def median_seconds(run, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_ops(x, w, dy, gemm) -> dict:
    """The pointwise convolution's three products, each as one NumPy GEMM (BLAS's own threads) and
    as the cpu backend runs it (gemm.py: fixed chunks, one single-threaded GEMM each)."""
    return {"forward X @ W (one GEMM)": lambda: x @ w, "forward tall_matmul": lambda: gemm.tall_matmul(x, w),
            "input grad dY @ W^T (one GEMM)": lambda: dy @ w.T,
            "input grad tall_matmul": lambda: gemm.tall_matmul(dy, w.T),
            "filter grad X^T @ dY (one GEMM)": lambda: x.T @ dy,
            "filter grad tall_transpose_matmul": lambda: gemm.tall_transpose_matmul(x, dy)}


def time_gemms(shapes: list[dict], threads: int, repeats: int) -> list[dict]:
    from npxception.backends.cpu.tuned import gemm
    from npxception.threads import set_num_threads

    set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    for s in shapes:
        p, k, c = s["rows"], s["k"], s["c"]
        x, w, dy = (rng.standard_normal(shape, dtype=np.float32) for shape in ((p, k), (k, c), (p, c)))
        for op, run in gemm_ops(x, w, dy, gemm).items():
            # OpenBLAS's worker threads spin for about 0.1 s after a multi-threaded call; timed right
            # after one, the next variant would share the 2 cores with them. Let them go to sleep.
            time.sleep(BLAS_IDLE_S)
            seconds = median_seconds(run, repeats)
            rows.append({**s, "op": op, "ms": 1e3 * seconds, "gflops": 2 * p * k * c / seconds / 1e9})
    return rows


# ---------------------------------------------------------------------------- one training step

def layer_roofline(preset: str, batch: int, threads: int, warmup: int, steps: int) -> dict:
    from bench_model import batch_for, config_for, instrument, ours_step_fn
    from npxception import Xception
    from npxception.backends import get_backend
    from npxception.threads import set_num_threads

    set_num_threads(threads)
    config = config_for(preset)
    model = Xception(config, backend="cpu", seed=0)
    x, labels = batch_for(config, batch)
    step = ours_step_fn(model, get_backend("cpu").to_device(x), labels)
    for _ in range(warmup):
        step()
    table = instrument(model)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    step_s = (time.perf_counter() - start) / steps
    layers = []
    for leaf, in_shape, out_shape in leaf_shapes(model.network, config.input_shape):
        work = layer_work(leaf, in_shape, out_shape, batch)
        for phase in ("forward", "backward"):
            layers.append({"layer": leaf.name, "type": type(leaf).__name__, "phase": phase,
                           "input_shape": in_shape, "output_shape": out_shape,
                           "seconds": table[leaf.name][phase] / steps,
                           "flops": work["flops"][phase], "bytes": work["bytes"][phase]})
    return {"preset": preset, "batch": batch, "threads": threads, "step_s": step_s, "layers": layers}


def limits(fma: dict, bandwidth: dict, sgemm: list[dict], threads: int) -> dict:
    """The roof: the best measured FMA rate and copy bandwidth at `threads` threads."""
    peaks = {name: run["gflops"][str(threads)] for name, run in fma.items()
             if isinstance(run, dict) and str(threads) in run.get("gflops", {})}
    copies = [r for r in bandwidth["results"] if r["threads"] == threads and "copy" in r["kernel"]]
    peak_name = max(peaks, key=peaks.get)
    best_copy = max(copies, key=lambda r: r["gb_per_s"])
    achievable = next((r["gflops"] for r in sgemm if r["threads"] == threads), None)
    return {"threads": threads, "peak_gflops": peaks[peak_name], "peak_from": f"FMA chains, {peak_name}",
            "bandwidth_gb_per_s": best_copy["gb_per_s"], "bandwidth_from": best_copy["kernel"],
            "sgemm_gflops": achievable, "ridge_flops_per_byte": peaks[peak_name] / best_copy["gb_per_s"]}


def main() -> None:
    from bench_model import config_for

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny() and tiny arrays, write nothing")
    parser.add_argument("--cases", default="small,paper", help="comma-separated: small, paper, tiny")
    parser.add_argument("--threads", type=int, default=2, help="threads of the GEMMs and the training steps")
    parser.add_argument("--stream-mib", type=int, help="size of each bandwidth array (default: 2x the L3, "
                                                       "256 to 1024 MiB)")
    parser.add_argument("--sgemm-n", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    cases = ["tiny"] if args.quick else args.cases.split(",")
    if any(c not in CASES for c in cases):
        parser.error(f"--cases must be a comma-separated list from {', '.join(CASES)}, got {args.cases!r}")
    if args.threads not in (1, 2):
        parser.error(f"--threads must be 1 or 2 (the limits are measured on 1 and 2 threads), got {args.threads}")
    if args.quick:
        mib, sgemm_n, iterations, repeats, args.steps, args.warmup = 8, 256, 20_000, 2, 1, 1
    else:
        mib = args.stream_mib or min(1024, max(256, 2 * machine.last_level_cache_bytes() // 2**20))
        sgemm_n, iterations, repeats = args.sgemm_n, 10_000_000, 5
    started = time.perf_counter()
    report = {"meta": {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
                       "numpy": np.__version__, "threads": args.threads, "steps": args.steps, "warmup": args.warmup}}
    report["theoretical"] = machine.theoretical_peak()
    report["fma"] = machine.fma_peak(iterations)
    print("FMA chains:", json.dumps(report["fma"]), flush=True)
    report["stream"] = machine.stream(mib, repeats)
    report["sgemm_square"] = machine.square_sgemm(sgemm_n, max(2, repeats - 2))
    report["limits"] = limits(report["fma"], report["stream"], report["sgemm_square"], args.threads)
    print("limits:", json.dumps(report["limits"]), flush=True)
    gemm_preset = "tiny" if args.quick else "paper"
    gemm_batch = CASES[gemm_preset][1]
    shapes = pointwise_shapes(config_for(gemm_preset), gemm_batch)
    from npxception.backends.cpu.tuned.gemm import MIN_ROWS_TO_SPLIT

    report["pointwise_gemms"] = {"preset": gemm_preset, "batch": gemm_batch, "min_rows_to_split": MIN_ROWS_TO_SPLIT,
                                 "rows": time_gemms(shapes, args.threads, repeats)}
    report["steps"] = {}
    for case in cases:
        preset, batch = CASES[case]
        report["steps"][case] = layer_roofline(preset, batch, args.threads, args.warmup, args.steps)
        print(f"{case}: {1e3 * report['steps'][case]['step_s']:.0f} ms per step", flush=True)
    report["meta"]["seconds"] = time.perf_counter() - started
    from threadpoolctl import threadpool_info

    report["meta"]["blas"] = [{k: i.get(k) for k in ("internal_api", "version", "architecture")}
                              for i in threadpool_info() if i.get("user_api") == "blas"]
    report["rules"] = RULES
    text = markdown(report)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "roofline_cpu.json").write_text(json.dumps(report, indent=1))
        (RESULTS / "roofline_cpu.md").write_text(text)


if __name__ == "__main__":
    main()
