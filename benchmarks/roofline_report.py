"""The markdown of benchmarks/roofline.py: the machine's limits, the pointwise GEMMs, every layer of a step.

A kernel's roof is min(peak, intensity x bandwidth), intensity = flops / bytes; below the ridge
point (peak / bandwidth flops per byte) the bandwidth bounds it, above it the FMA units do. Its
roofline time, max(flops / peak, bytes / bandwidth), is the least time the machine allows it.
"""

from __future__ import annotations


def _fraction(value: float) -> str:
    return f"{value:.0%}" if value >= 0.01 else f"{value:.1%}"


def derived(seconds: float, flops: float, nbytes: float, roof: dict) -> dict:
    """Achieved rates against the roof, for a kernel that moved nbytes and did flops in seconds."""
    peak, bandwidth = 1e9 * roof["peak_gflops"], 1e9 * roof["bandwidth_gb_per_s"]
    intensity = flops / nbytes if nbytes else 0.0
    floor = max(flops / peak, nbytes / bandwidth)
    seconds = max(seconds, 1e-12)
    return {"ms": 1e3 * seconds, "gflops": flops / seconds / 1e9, "gb_per_s": nbytes / seconds / 1e9,
            "of_peak": flops / seconds / peak, "of_bandwidth": nbytes / seconds / bandwidth,
            "intensity": intensity, "bound": "compute" if intensity >= roof["ridge_flops_per_byte"] else "memory",
            "roofline_ms": 1e3 * floor, "over_roofline": seconds / floor if floor else float("inf")}


def _rate_cells(d: dict) -> str:
    return (f"{d['ms']:.2f} | {d['gflops']:.1f} | {d['gb_per_s']:.1f} | {_fraction(d['of_peak'])} | "
            f"{_fraction(d['of_bandwidth'])} | {d['intensity']:.1f} | {d['bound']} | {d['roofline_ms']:.2f} | "
            f"{d['over_roofline']:.1f}x")


RATE_HEADER = ("ms | GFLOP/s | GB/s | % of peak | % of copy BW | flops/byte | nearer bound | roofline ms | "
               "x roofline")
RATE_RULE = "---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---:"


def machine_section(report: dict) -> list[str]:
    t, roof = report["theoretical"], report["limits"]
    lines = ["## The machine", "",
             f"{t['model']}, {t['vector_isa']}, L3 {t['l3']}; BLAS: "
             + ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})" for b in report["meta"]["blas"])
             + ".", "",
             f"Theoretical FP32 peak: {t['formula']} = **{t['peak_gflops']:.0f} GFLOP/s** "
             f"({t['peak_gflops_per_core']:.0f} per core; clock from {t['clock_from']}). Assumed: "
             + "; ".join(t["assumed"]) + ".", "",
             "Measured: independent FMA chains in Numba (best of 5; implied clock = 1-thread rate / "
             "(lanes x FMA units x 2), with the theoretical count of FMA units):", "",
             "| Numba build | vector bits | 1 thread GFLOP/s | 2 threads GFLOP/s | implied clock GHz |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, run in report["fma"].items():
        if not isinstance(run, dict):
            continue
        if "failed" in run:
            lines.append(f"| {name} | failed: {run['failed']} | | | |")
            continue
        g = run["gflops"]
        lanes = run["vector_bits"] // 32 or 1
        clock = g.get("1", 0.0) / (lanes * t["fma_units"] * 2)
        lines.append(f"| {name} | {run['vector_bits']} | {g.get('1', 0):.1f} | "
                     f"{g['2']:.1f} | {clock:.2f} |" if "2" in g else
                     f"| {name} | {run['vector_bits']} | {g.get('1', 0):.1f} | - | {clock:.2f} |")
    lines += ["", f"`numba_default` is how every Numba kernel of the cpu backend is compiled (LLVM's tuning for "
                  f"`{report['fma'].get('cpu_name', '?')}`); `numba_no_prefer_256` sets NUMBA_CPU_FEATURES to the "
                  "host's features plus `-prefer-256-bit`.", "",
              "| OpenBLAS sgemm, square n | threads | GFLOP/s |", "| ---: | ---: | ---: |"]
    lines += [f"| {r['n']} | {r['threads']} | {r['gflops']:.1f} |" for r in report["sgemm_square"]]
    lines += ["", f"Bandwidth, arrays of {report['stream']['array_mib']} MiB each, best of the repeats, "
                  "read + write bytes:", "", "| kernel | threads | GB/s |", "| --- | ---: | ---: |"]
    lines += [f"| {r['kernel']} | {r['threads']} | {r['gb_per_s']:.1f} |" for r in report["stream"]["results"]]
    lines += ["", f"**The roof used below ({roof['threads']} threads)**: peak {roof['peak_gflops']:.0f} GFLOP/s "
                  f"({roof['peak_from']}), bandwidth {roof['bandwidth_gb_per_s']:.1f} GB/s ({roof['bandwidth_from']}), "
                  f"ridge point {roof['ridge_flops_per_byte']:.1f} flops/byte; achievable sgemm "
                  f"{roof['sgemm_gflops'] or 0:.0f} GFLOP/s. The cpu backend's own Numba kernels (depthwise, batch "
                  "norm, pooling, ReLU) are compiled as `numba_default`: their ceiling is that row's rate, not "
                  "the peak; its GEMMs are OpenBLAS's."]
    return lines


def gemm_section(report: dict) -> list[str]:
    g, roof = report["pointwise_gemms"], report["limits"]
    lines = ["", f"## Pointwise GEMMs of `{g['preset']}` (batch {g['batch']}), {roof['threads']} threads", "",
             "X (P, K) the depthwise output, W (K, C), dY (P, C); median of the repeats.", "",
             "| layers | P | K -> C | GEMM | ms | GFLOP/s | % of peak | % of square sgemm |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |"]
    plain = {"forward": 0.0, "input grad": 0.0, "filter grad": 0.0}
    ours = dict(plain)
    for r in g["rows"]:
        names = r["layers"][0] + (f" (+{len(r['layers']) - 1})" if len(r["layers"]) > 1 else "")
        sgemm = f"{r['gflops'] / roof['sgemm_gflops']:.0%}" if roof["sgemm_gflops"] else "-"
        lines.append(f"| {names} | {r['rows']} | {r['k']} -> {r['c']} | {r['op']} | {r['ms']:.2f} | "
                     f"{r['gflops']:.1f} | {r['gflops'] / roof['peak_gflops']:.0%} | {sgemm} |")
        kind = next(k for k in plain if r["op"].startswith(k))
        (plain if "one GEMM" in r["op"] else ours)[kind] += r["ms"] * len(r["layers"])
    lines += ["", "Over every SeparableConv2D of one step, one NumPy GEMM each (BLAS's threads) against the "
                  "backend's fixed chunks of single-threaded GEMMs (gemm.py; the same bits for any thread count):"]
    for kind in plain:
        change = (ours[kind] - plain[kind]) / plain[kind] if plain[kind] else 0.0
        lines.append(f"- {kind}: {plain[kind]:.1f} ms as one GEMM, {ours[kind]:.1f} ms chunked ({change:+.0%})")
    lines.append(f"- filter gradients of P >= {g['min_rows_to_split']} rows are split along P and the partial "
                 "products added in order; shorter ones along dW's rows (nothing to add); products of few rows "
                 "along the result's columns")
    lines.append("- the chunks are GEMM tasks run by one Numba `prange`, each a single-threaded call of NumPy's "
                 "OpenBLAS (gemm.py, _blas.py): on the backend's own threads, with no thread pool beside them")
    return lines


def step_section(case: str, step: dict, roof: dict) -> list[str]:
    rows = step["layers"]
    in_layers = sum(r["seconds"] for r in rows)
    floor = sum(derived(r["seconds"], r["flops"], r["bytes"], roof)["roofline_ms"] for r in rows)
    lines = ["", f"## One `{case}` training step (preset {step['preset']}, batch {step['batch']}, cpu backend, "
                 f"{step['threads']} threads)", "",
             f"Step {1e3 * step['step_s']:.0f} ms, of which {1e3 * in_layers:.0f} ms in leaf layers (the rest: "
             f"residual adds, loss, SGD update, timing). At the roofline the leaf layers would take "
             f"{floor:.1f} ms: {1e3 * in_layers / floor if floor else 0:.1f}x above it.", "",
             "By layer type:", "", f"| type | phase | share | {RATE_HEADER} |",
             f"| --- | --- | ---: | {RATE_RULE} |"]
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["type"], r["phase"]), []).append(r)
    ranked = sorted(groups.items(), key=lambda kv: -sum(r["seconds"] for r in kv[1]))
    for (kind, phase), members in ranked:
        seconds = sum(r["seconds"] for r in members)
        d = derived(seconds, sum(r["flops"] for r in members), sum(r["bytes"] for r in members), roof)
        d["roofline_ms"] = sum(derived(r["seconds"], r["flops"], r["bytes"], roof)["roofline_ms"] for r in members)
        d["over_roofline"] = d["ms"] / d["roofline_ms"] if d["roofline_ms"] else float("inf")
        lines.append(f"| {kind} | {phase} | {_fraction(seconds / in_layers)} | {_rate_cells(d)} |")
    lines += ["", "Every layer, in forward order:", "", f"| layer | type | phase | {RATE_HEADER} |",
              f"| --- | --- | --- | {RATE_RULE} |"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['type']} | {r['phase']} | "
                     f"{_rate_cells(derived(r['seconds'], r['flops'], r['bytes'], roof))} |")
    return lines


def markdown(report: dict) -> str:
    roof = report["limits"]
    lines = ["# Roofline of the cpu backend", "",
             f"Measured in {report['meta']['seconds']:.0f} s; Python {report['meta']['python']}, NumPy "
             f"{report['meta']['numpy']}.", ""]
    lines += machine_section(report) + gemm_section(report)
    for case, step in report["steps"].items():
        lines += step_section(case, step, roof)
    lines += ["", "## Counting rules", "", report["rules"],
              "A type's roofline time is the sum of its layers' (a layer is bound by one limit or the other)."]
    return "\n".join(lines) + "\n"
