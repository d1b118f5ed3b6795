"""gpu_check.json (everything) and gpu_check.md (the tables a reader wants) from a run's results."""

from __future__ import annotations

import json
import math
from pathlib import Path


def _f(value, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(_f(v) for v in row) + " |" for row in rows], ""]


def markdown(results: dict) -> str:
    st = results["stages"]
    dev = st.get("device", {}).get("device", {})
    versions = st.get("device", {}).get("versions", {})
    lines = [f"# GPU check, {results.get('date', '')}", "",
             f"Device: {dev.get('name', 'simulator' if dev.get('simulator') else 'none')}, compute capability "
             f"{dev.get('compute_capability')}, {dev.get('multiprocessor_count')} SMs, theoretical memory "
             f"bandwidth {_f(dev.get('peak_bandwidth_gbs'))} GB/s. Command: `{results.get('command', '')}`; "
             f"{_f(results.get('total_seconds'), '.0f')} s of a {_f(results.get('budget_s'), '.0f')} s budget.", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v), ""]
    if dev.get("simulator") or results.get("sim"):
        lines += ["**Dry run in the CUDA simulator at tiny shapes: no number below is a GPU measurement.**", ""]
    lines += ["## Stages", ""] + _table(["stage", "status", "seconds", "detail"], [
        [name, s.get("status"), s.get("seconds"), s.get("error") or s.get("reason") or ""] for name, s in st.items()])
    ops = st.get("ops", {})
    if ops.get("rows"):
        worst = {}
        for r in ops["rows"]:
            if r.get("max_rel_error") is not None:
                worst[r["dtype"]] = max(worst.get(r["dtype"], 0.0), r["max_rel_error"])
        lines += ["## Correctness against the NumPy reference", "",
                  f"{ops['passed']} of {ops['checked']} checks passed at batch {ops['batch']} "
                  f"(worst relative error: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()) + ")."
                  + (f" Failed: {', '.join(ops['failed'])}." if ops["failed"] else "")
                  + (f" Skipped for the budget: {len(ops['skipped_for_budget'])}." if ops["skipped_for_budget"]
                     else ""), ""]
    bw = st.get("bandwidth", {})
    if bw.get("copy_gbs"):
        lines += [f"Device-to-device copy: {_f(bw['copy_gbs'], '.0f')} GB/s (PyTorch "
                  f"{_f(bw.get('torch_copy_gbs'), '.0f')}, Numba {_f(bw.get('numba_copy_gbs'), '.0f')}).", ""]
    rows = st.get("train_step", {}).get("rows", [])
    if rows:
        lines += ["## Training step (forward, loss, backward, SGD)", ""] + _table(
            ["network", "batch", "ours ms", "images/s", "twin strict ms", "twin default ms", "timm strict ms",
             "timm default ms", "timm channels_last ms", "copies only at batch boundaries"],
            [[r.get("preset"), r.get("batch"), r.get("ours_ms"), r.get("ours_images_per_s"),
              r.get("twin_strict_ms"), r.get("twin_default_ms"), r.get("timm_strict_ms"), r.get("timm_default_ms"),
              r.get("timm_default_channels_last_ms"), r.get("copies_only_at_batch_boundaries")] for r in rows])
        for r in rows:
            if r.get("copies_per_step"):
                lines += [f"Copies in one {r['preset']} step, by phase: `{json.dumps(r['copies_per_step'])}`", ""]
    for key in ("cli_train", "cli_train_cpu"):
        c = st.get(key, {})
        if c.get("val_top1") is not None:
            lines += [f"`{c['command']}`: validation top-1 {c['val_top1']:.4f} (evaluate: "
                      f"{c['evaluate']['top1']:.4f}), {_f(c['train_images_per_s_last_epoch'], '.0f')} images/s "
                      f"in the last epoch, {c['train_wall_s']} s wall.", ""]
    gemm = st.get("sgemm", {}).get("rows", [])
    if gemm:
        lines += ["## SGEMM (pointwise_conv2d) against cuBLAS, strict float32", ""] + _table(
            ["M x K x N", "pass", "ours TFLOP/s", "cuBLAS TFLOP/s", "fraction"],
            [[f"{r.get('m')}x{r.get('k')}x{r.get('n')}", p, r.get(p, {}).get("ours_tflops"),
              r.get(p, {}).get("cublas_tflops"), r.get(p, {}).get("fraction")]
             for r in gemm for p in ("forward", "backward")])
    timing = st.get("timings", {})
    if timing.get("rows"):
        lines += [f"## Ops at batch {timing['batch']} against PyTorch (ratio: PyTorch strict / ours)", ""] + _table(
            ["op", "ours ms", "torch strict ms", "torch default ms", "ratio", "GB/s", "of copy bandwidth",
             "TFLOP/s"],
            [[r["op"], r.get("ours_ms"), r.get("torch_strict_ms"), r.get("torch_default_ms"), r.get("ratio"),
              r.get("ours_gbs"), r.get("fraction_of_copy_bandwidth"), r.get("ours_tflops")]
             for r in timing["rows"]])
    return "\n".join(lines)


def write(run, stem: str = "gpu_check") -> None:
    """Rewrite STEM.json and STEM.md (atomically: a run killed mid-write keeps the previous ones)."""
    run.out.mkdir(parents=True, exist_ok=True)
    for name, text in ((f"{stem}.json", json.dumps(run.results, indent=1, default=str)),
                       (f"{stem}.md", markdown(run.results))):
        tmp = Path(run.out) / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(Path(run.out) / name)
