"""Stage "timings": every op at Xception's shapes against PyTorch (cuDNN, cuBLAS) on the same GPU.

Our call and PyTorch's run on arguments already on the device; each is the median of CUDA-event
timings after warm-up. PyTorch is timed twice: strict float32 (TF32 off, the same arithmetic as
ours) and with its defaults (cuDNN may use TF32). `ratio` is PyTorch strict's time over ours:
above 1 means ours is faster. Memory-bound ops report GB/s and the fraction of the device-to-device
copy bandwidth that the "bandwidth" stage measured (bytes: every array argument read once and
every output written once; in-place updates: every array argument read and written).
"""

from __future__ import annotations

import numpy as np

from npxception.shapes import conv_output_hw
from npxception.testing.cases import case_args

from .cases import selected_cases
from .context import guarded
from .timers import median_ms, set_torch_precision, timers
from .torch_ref import torch_call


def flops(fn: str, args: tuple) -> int | None:
    """Multiply-adds x 2 of the GEMM-like ops (backward: both gradients)."""
    base = fn.removesuffix("_backward")
    factor = 2 if fn.endswith("_backward") else 1
    if base in ("conv2d", "depthwise_conv2d"):
        x, w, stride, pads, dilation = args[-5:]
        ho, wo = conv_output_hw(x.shape[1:3], w.shape[:2], stride, pads, dilation)
        per_output = w.shape[0] * w.shape[1] * (1 if base == "depthwise_conv2d" else w.shape[2])
        outputs = x.shape[0] * ho * wo * (w.shape[2] * w.shape[3] if base == "depthwise_conv2d" else w.shape[3])
        return 2 * factor * outputs * per_output
    if base == "pointwise_conv2d":
        x, w = args[-2:]
        return 2 * factor * int(np.prod(x.shape[:3])) * w.shape[2] * w.shape[3]
    if base == "dense":
        x, w = (args[1], args[2]) if factor == 2 else (args[0], args[1])
        return 2 * factor * x.shape[0] * w.shape[0] * w.shape[1]
    return None


def bytes_moved(args: tuple, outputs, in_place: bool) -> int:
    arrays = sum(a.nbytes for a in args if isinstance(a, np.ndarray))
    if in_place:
        return 2 * arrays
    outs = outputs if isinstance(outputs, tuple) else (outputs,)
    return arrays + sum(int(getattr(o, "nbytes", 0)) for o in outs if o is not None)


def time_case(run, case, gpu, ours_timer, torch_timer, copy_gbs) -> dict:
    args = case_args(case, np.float32)
    moved = tuple(gpu.to_device(a) if isinstance(a, np.ndarray) else a for a in args)
    fn = getattr(gpu, case.fn)
    row = {"op": case.name}
    outputs = fn(*moved)
    row["bytes"] = bytes_moved(args, outputs, case.in_place)
    row["ours_ms"], err = guarded(median_ms, lambda: fn(*moved), ours_timer, **run.timing())
    if err:
        row["ours_error"] = err
    theirs, err = guarded(torch_call, case.fn, args, run.torch_device)
    if err:
        row["torch_error"] = err
    if theirs is not None:
        row["torch_padding_symmetric_stand_in"] = theirs.approximate or None
        for strict, key in ((True, "torch_strict_ms"), (False, "torch_default_ms")):
            set_torch_precision(strict)
            row[key], err = guarded(median_ms, theirs.call, torch_timer, **run.timing())
            if err:
                row[key.replace("_ms", "_error")] = err
        set_torch_precision(True)
    ms = row["ours_ms"]
    if ms:
        row["ours_gbs"] = row["bytes"] / ms / 1e6
        if copy_gbs:
            row["fraction_of_copy_bandwidth"] = row["ours_gbs"] / copy_gbs
        work = flops(case.fn, args)
        if work:
            row["ours_tflops"] = work / ms / 1e9
        if row.get("torch_strict_ms"):
            row["ratio"] = row["torch_strict_ms"] / ms
    return {k: v for k, v in row.items() if v is not None}


def stage(run) -> dict:
    import torch

    from npxception.backends import get_backend

    gpu = get_backend("cuda")
    ours_timer, torch_timer = timers(not run.sim)
    copy_gbs = run.results["stages"].get("bandwidth", {}).get("copy_gbs")
    batch = 1 if run.sim else run.options.get("time_batch", 16)
    stop_at = run.options.get("timings_stop_at_s", 10.0)
    rows, skipped = [], []
    with torch.no_grad():
        for case in selected_cases(run, batch):
            if run.left() < stop_at:
                skipped.append(case.name)
                continue
            row, err = guarded(time_case, run, case, gpu, ours_timer, torch_timer, copy_gbs)
            row = row or {"op": case.name, "error": err}
            rows.append(row)
            fmt = {k: (f"{row[k]:.3f}" if isinstance(row.get(k), float) else "-")
                   for k in ("ours_ms", "torch_strict_ms", "torch_default_ms")}
            print(f"  {case.name:<52} ours {fmt['ours_ms']:>8} ms  torch strict {fmt['torch_strict_ms']:>8}"
                  f"  default {fmt['torch_default_ms']:>8}", flush=True)
    depthwise = [r for r in rows if r["op"].startswith("depthwise") and "fraction_of_copy_bandwidth" in r]
    return {"batch": batch, "copy_gbs": copy_gbs, "rows": rows, "skipped_for_budget": skipped,
            "depthwise_fraction_of_copy_bandwidth": {r["op"]: round(r["fraction_of_copy_bandwidth"], 3)
                                                     for r in depthwise}}
