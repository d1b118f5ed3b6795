"""Stages "bandwidth" and "sgemm": the practical memory bandwidth, and our SGEMM against cuBLAS.

bandwidth: the median device-to-device copy of a 256 MiB buffer (read + write counted), with
PyTorch and with Numba (cuMemcpyDtoD); the faster is the practical peak that the depthwise
kernels' fraction refers to. The theoretical peak (memory clock x bus width) is in "device".

sgemm: our tiled SGEMM through its public callers, `pointwise_conv2d` (Y = X W) and
`pointwise_conv2d_backward` (dX = dY W^T and dW = X^T dY, the split-K case), at a square 4096
problem and at Xception's pointwise shapes (batch 16), against cuBLAS in strict float32 (TF32 off)
through PyTorch on the same arrays; `fraction` is cuBLAS's time over ours.
"""

from __future__ import annotations

import numpy as np

from .context import guarded
from .timers import median_ms, set_torch_precision, timers

# (N, H, W, Cin, Cout): X is (N*H*W, Cin), W is (Cin, Cout).
GEMM_SHAPES = [(1, 64, 64, 4096, 4096), (16, 147, 147, 128, 128), (16, 37, 37, 728, 728),
               (16, 19, 19, 728, 728), (16, 10, 10, 1536, 2048)]
SIM_GEMM_SHAPES = [(1, 3, 50, 8, 20)]   # 150 rows: two 128-row tiles and an edge


def _copy_ms(run, src, empty_like, copy, timer) -> float:
    dst = empty_like(src)
    return median_ms(lambda: copy(dst, src), timer, **run.timing())


def bandwidth_stage(run) -> dict:
    import torch
    from numba import cuda

    ours_timer, torch_timer = timers(not run.sim)
    n = 2**10 if run.sim else 64 * 2**20        # float32 elements: 256 MiB on a GPU
    found = {"bytes": 2 * 4 * n}
    ms, err = guarded(_copy_ms, run, torch.ones(n, dtype=torch.float32, device=run.torch_device),
                      lambda src: torch.empty_like(src), lambda dst, src: dst.copy_(src), torch_timer)
    found["torch_copy_gbs"] = found["bytes"] / ms / 1e6 if ms else None
    ms2, err2 = guarded(_copy_ms, run, cuda.to_device(np.ones(n, np.float32)), cuda.device_array_like,
                        lambda dst, src: dst.copy_to_device(src), ours_timer)
    found["numba_copy_gbs"] = found["bytes"] / ms2 / 1e6 if ms2 else None
    found["errors"] = [e for e in (err, err2) if e]
    found["copy_gbs"] = max(v for v in (found["torch_copy_gbs"], found["numba_copy_gbs"], 0.0) if v is not None)
    peak = run.results["stages"].get("device", {}).get("device", {}).get("peak_bandwidth_gbs")
    if peak and found["copy_gbs"]:
        found["copy_fraction_of_peak"] = found["copy_gbs"] / peak
    print(f"  device-to-device copy: {found['copy_gbs']:.0f} GB/s (theoretical peak {peak} GB/s)", flush=True)
    return found


def _gemm_row(run, gpu, shape, rng, ours_timer, torch_timer) -> dict:
    import torch

    n, h, w, cin, cout = shape
    m = n * h * w
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    wk = (rng.standard_normal((1, 1, cin, cout)) / np.sqrt(cin)).astype(np.float32)
    dy = rng.standard_normal((n, h, w, cout)).astype(np.float32)
    xd, wd, dyd = gpu.to_device(x), gpu.to_device(wk), gpu.to_device(dy)
    dev = run.torch_device
    xm, wm = torch.from_numpy(x).to(dev).reshape(m, cin), torch.from_numpy(wk).to(dev).reshape(cin, cout)
    dym = torch.from_numpy(dy).to(dev).reshape(m, cout)
    set_torch_precision(True)
    row = {"m": m, "k": cin, "n": cout}
    timing = run.timing(target_s=0.3, max_runs=20)
    for label, ours, cublas, flops in (
            ("forward", lambda: gpu.pointwise_conv2d(xd, wd), lambda: xm @ wm, 2 * m * cin * cout),
            ("backward", lambda: gpu.pointwise_conv2d_backward(dyd, xd, wd), lambda: (dym @ wm.T, xm.T @ dym),
             4 * m * cin * cout)):
        ours_ms, err = guarded(median_ms, ours, ours_timer, **timing)
        with torch.no_grad():
            cublas_ms, err2 = guarded(median_ms, cublas, torch_timer, **timing)
        part = {"ours_ms": ours_ms, "cublas_ms": cublas_ms, "errors": [e for e in (err, err2) if e] or None}
        if ours_ms and cublas_ms:
            part.update(ours_tflops=flops / ours_ms / 1e9, cublas_tflops=flops / cublas_ms / 1e9,
                        fraction=cublas_ms / ours_ms)
        row[label] = {k: v for k, v in part.items() if v is not None}
    return row


def sgemm_stage(run) -> dict:
    from npxception.backends import get_backend

    gpu = get_backend("cuda")
    ours_timer, torch_timer = timers(not run.sim)
    rng = np.random.default_rng(0)
    stop_at = run.options.get("sgemm_stop_at_s", 0.25 * run.budget_s)
    rows, skipped = [], []
    for shape in SIM_GEMM_SHAPES if run.sim else GEMM_SHAPES:
        if run.left() < stop_at:
            skipped.append(list(shape))
            continue
        row, err = guarded(_gemm_row, run, gpu, shape, rng, ours_timer, torch_timer)
        row = row or {"shape": list(shape), "error": err}
        rows.append(row)
        for label in ("forward", "backward"):
            part = row.get(label, {})
            if "fraction" in part:
                print(f"  sgemm {row['m']}x{row['k']}x{row['n']} {label}: ours {part['ours_tflops']:.2f} "
                      f"TFLOP/s, cuBLAS fp32 {part['cublas_tflops']:.2f} -> {100 * part['fraction']:.0f}%",
                      flush=True)
    fractions = [r[p]["fraction"] for r in rows for p in ("forward", "backward") if "fraction" in r.get(p, {})]
    return {"rows": rows, "skipped_for_budget": skipped,
            "median_fraction_of_cublas": float(np.median(fractions)) if fractions else None}
