"""Op benchmark: the Numba cpu backend against PyTorch on the CPU, at Xception's real layer shapes.

    python benchmarks/bench_ops.py                 # full run, writes benchmarks/results/ops_cpu.{json,md}
    python benchmarks/bench_ops.py --quick         # smoke run: batch 1, one repeat, nothing written

For each shape it times the forward, the input gradient and the filter gradient of
- the depthwise 3x3 convolutions (C=128 at 147x147, 256 at 74, 728 at 37 and 19, 1536 at 10),
- the pointwise convolutions that follow them, and
- the two stem convolutions,
for the cpu backend and for PyTorch with NCHW and with channels_last tensors, all at the same
thread count (Numba, BLAS and PyTorch), as the median of several runs after a warm-up; the three
contenders for one op are timed in turn, round after round, so they share the machine's load.
"ratio" is PyTorch's faster layout's time over ours: above 1 means the cpu backend is faster.

Depthwise convolutions are memory-bound (9 multiply-adds per 8 bytes moved in float32), so their
ceiling is the memory bandwidth: the benchmark measures it in the same run with a large parallel
copy and reports which fraction of it each depthwise kernel reaches, counting the bytes it must
read and write once (for example x and y for the forward).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from numba import njit, prange

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from npxception.backends import cpu  # noqa: E402
from npxception.shapes import resolve_padding  # noqa: E402
from npxception.testing.isolated import run_python  # noqa: E402
from npxception.threads import set_num_threads  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

# (H = W, C): the depthwise layers' input sizes in Xception at 299x299.
DEPTHWISE_SHAPES = [(147, 128), (74, 256), (37, 728), (19, 728), (10, 1536)]
# (H = W, Cin, Cout): the pointwise layers at the same sizes.
POINTWISE_SHAPES = [(147, 128, 128), (74, 256, 256), (37, 728, 728), (19, 728, 728), (10, 1536, 2048)]
# (H = W, Cin, Cout, stride): block1_conv1 and block1_conv2.
STEM_SHAPES = [(299, 3, 32, 2), (149, 32, 64, 1)]


CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}
clock = CLOCKS["wall"]


def interleaved_median_ms(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """{name: median ms} for several functions timed in turn, round after round.

    Interleaving makes a burst of load from other processes hit all contenders alike, so the
    ratios stay meaningful on a shared machine.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


@njit(parallel=True, cache=True)
def _parallel_copy(src, dst):
    for k in prange(src.size):
        dst[k] = src[k]


def copy_bandwidth(repeats: int, nbytes: int = 512 * 2**20) -> float:
    """GB/s of a large copy (read + write counted), the best of a NumPy and a parallel Numba copy."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    best = min(interleaved_median_ms({"numpy": lambda: np.copyto(dst, src),
                                      "numba": lambda: _parallel_copy(src, dst)}, repeats).values())
    return 2 * nbytes / (best * 1e-3) / 1e9


def _torch_weight(w_keras, groups):
    """Keras (kh, kw, Cin, Cout) or depthwise (kh, kw, C, M) -> torch (Cout, Cin/groups, kh, kw)."""
    if groups == 1:
        return torch.from_numpy(w_keras).permute(3, 2, 0, 1)
    kh, kw, c, m = w_keras.shape  # depthwise: output channel c*M + m, as in Keras
    return torch.from_numpy(w_keras).permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw)


LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def torch_calls(x_nhwc, w_keras, stride, padding, groups, layouts=tuple(LAYOUTS)) -> dict:
    """{(layout, op): thunk} running PyTorch's conv2d forward, input grad and filter grad."""
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)
    w = _torch_weight(w_keras, groups)
    calls = {}
    for layout in layouts:
        fmt = LAYOUTS[layout]
        calls.update({(layout, op): fn for op, fn in _torch_layout_calls(
            x.contiguous(memory_format=fmt), w.contiguous(memory_format=fmt), fmt, stride,
            padding, groups).items()})
    return calls


# PyTorch's native kernels can crash the process (oneDNN's strided 1x1 channels_last backward aborts on
# some CPUs: npxception.testing.isolated), and here PyTorch runs in the timing process itself, since
# the contenders are interleaved. So each layout's calls run first in a child at the same shape.
PROBE = """
import numpy as np, torch
from benchmarks.bench_ops import torch_calls
torch.set_num_threads({threads})
rng = np.random.default_rng(0)
x, w = rng.standard_normal({x_shape}).astype("{dtype}"), rng.standard_normal({w_shape}).astype("{dtype}")
for fn in torch_calls(x, w, {stride}, {padding}, {groups}, layouts=("{layout}",)).values():
    fn(); fn()
"""


def crashed_layouts(x_nhwc, w_keras, stride, padding, groups) -> dict:
    """{layout: 'SIGABRT', ...} for the layouts whose calls killed a child process at this shape."""
    crashed = {}
    for layout in LAYOUTS:
        done = run_python(PROBE.format(threads=torch.get_num_threads(), x_shape=x_nhwc.shape, w_shape=w_keras.shape,
                                       dtype=x_nhwc.dtype.name, stride=stride, padding=padding, groups=groups,
                                       layout=layout), timeout=600)
        if done.crashed:
            print(f"PyTorch {layout} at x {x_nhwc.shape}, w {w_keras.shape}: crashed ({done.how}); not timed",
                  flush=True)
            crashed[layout] = done.how
    return crashed


def _torch_layout_calls(x, w, memory_format, stride, padding, groups) -> dict:
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, w, stride=stride, padding=padding, groups=groups)
    dy = torch.randn_like(y).contiguous(memory_format=memory_format)

    def forward():
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, w, stride=stride, padding=padding, groups=groups)

    def backward(mask):
        return torch.ops.aten.convolution_backward(
            dy, x, w, None, [stride, stride], [padding, padding], [1, 1], False, [0, 0], groups, mask)

    return {"forward": forward,
            "input grad": lambda: backward([True, False, False]),
            "filter grad": lambda: backward([False, True, False])}


def check_against_torch(y_ours, x_nhwc, w_keras, stride, padding, groups) -> None:
    """Fail loudly if PyTorch computes something else than we do (a wrong weight layout, say)."""
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, _torch_weight(w_keras, groups), stride=stride,
                                       padding=padding, groups=groups)
    expected = y.permute(0, 2, 3, 1).numpy()
    err = np.max(np.abs(y_ours - expected)) / np.max(np.abs(expected))
    if not err < 1e-4:
        raise AssertionError(f"cpu backend and PyTorch disagree: relative error {err:.2e}")


def depthwise_case(n, hw, c, dtype):
    """(our calls, torch_calls' arguments, bytes each op must move) for a 3x3 "same" depthwise layer."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, hw, hw, c)).astype(dtype)
    w = rng.standard_normal((3, 3, c, 1)).astype(dtype)
    dy = rng.standard_normal((n, hw, hw, c)).astype(dtype)
    one = (1, 1)
    pads = resolve_padding("same", (hw, hw), (3, 3), one, one)
    check_against_torch(cpu.depthwise_conv2d(x, w, one, pads, one), x, w, 1, 1, c)
    ours = {
        "forward": lambda: cpu.depthwise_conv2d(x, w, one, pads, one),
        "input grad": lambda: cpu.depthwise_input_grad(dy, w, x.shape, one, pads, one),
        "filter grad": lambda: cpu.depthwise_filter_grad(dy, x, w, one, pads, one),
    }
    # Each op reads two activation-sized tensors; forward and input grad also write one.
    moved = {"forward": 2 * x.nbytes, "input grad": 2 * x.nbytes, "filter grad": 2 * x.nbytes}
    return ours, (x, w, 1, 1, c), moved


def pointwise_case(n, hw, cin, cout, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, hw, hw, cin)).astype(dtype)
    w = rng.standard_normal((1, 1, cin, cout)).astype(dtype)
    dy = rng.standard_normal((n, hw, hw, cout)).astype(dtype)
    check_against_torch(cpu.pointwise_conv2d(x, w), x, w, 1, 0, 1)
    ours = {
        "forward": lambda: cpu.pointwise_conv2d(x, w),
        "input grad": lambda: cpu.pointwise_input_grad(dy, w, x.shape),
        "filter grad": lambda: cpu.pointwise_filter_grad(dy, x, w),
    }
    return ours, (x, w, 1, 0, 1), None


def stem_case(n, hw, cin, cout, stride, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, hw, hw, cin)).astype(dtype)
    w = rng.standard_normal((3, 3, cin, cout)).astype(dtype)
    s, one, pads = (stride, stride), (1, 1), (0, 0, 0, 0)
    y = cpu.conv2d(x, w, s, pads, one)
    check_against_torch(y, x, w, stride, 0, 1)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ours = {
        "forward": lambda: cpu.conv2d(x, w, s, pads, one),
        "input grad": lambda: cpu.conv2d_input_grad(dy, w, x.shape, s, pads, one),
        "filter grad": lambda: cpu.conv2d_filter_grad(dy, x, w, s, pads, one),
    }
    return ours, (x, w, stride, 0, 1), None


def run_case(kind, shape, case, repeats, bandwidth):
    """Time every op of one layer (ours and PyTorch's layouts interleaved); print and return rows. A layout
    that crashes its probe is left out, recorded as crashed, and the ratio uses the other."""
    ours, torch_args, moved = case
    crashed = crashed_layouts(*torch_args)
    timed = [layout for layout in LAYOUTS if layout not in crashed]
    torch_fns = torch_calls(*torch_args, layouts=timed)
    rows = []
    for op, fn in ours.items():
        ms = interleaved_median_ms({"ours": fn, **{layout: torch_fns[(layout, op)] for layout in timed}}, repeats)
        entry = dict(kind=kind, shape=shape, op=op, ours_ms=round(ms["ours"], 3))
        for layout in LAYOUTS:
            entry[f"torch_{layout}_ms"] = round(ms[layout], 3) if layout in ms else f"crashed ({crashed[layout]})"
        entry["ratio"] = round(min(ms[layout] for layout in timed) / ms["ours"], 2) if timed else None
        line = (f"{kind:9s} {shape:26s} {op:11s} ours {ms['ours']:8.2f} ms  torch nchw "
                f"{_ms(entry['torch_nchw_ms'])}  cl {_ms(entry['torch_channels_last_ms'])}  "
                f"ratio {_ms(entry['ratio'], '5.2f')}")
        if moved is not None:
            entry["roofline"] = round(moved[op] / (ms["ours"] * 1e-3) / 1e9 / bandwidth, 2)
            line += f"  roofline {entry['roofline']:4.0%}"
        print(line, flush=True)
        rows.append(entry)
    return rows


def _ms(value, spec: str = "8.2f") -> str:
    """A number in a table, or the word that stands in for it ('crashed (SIGABRT)', '-')."""
    if value is None:
        return "-"
    return format(value, spec) if isinstance(value, float) else value


def markdown(meta, rows) -> str:
    lines = [
        "# cpu backend vs PyTorch (CPU), Xception's layer shapes",
        "",
        f"{meta['cpu']}, {meta['threads']} threads for Numba, BLAS and PyTorch; batch {meta['batch']}, "
        f"{meta['dtype']}; {meta['clock']}, median of {meta['repeats']} runs after a warm-up; copy bandwidth "
        f"{meta['bandwidth_gb_s']:.1f} GB/s measured in the same run. {meta['note']} (1-minute load "
        f"average {meta['load_average_before']} before, {meta['load_average_after']} after, on "
        f"{os.cpu_count()} cores.)",
        "",
        "ratio = PyTorch's faster layout / ours (> 1: the cpu backend is faster). roofline = the "
        "fraction of the copy bandwidth the kernel reaches on the bytes it must move.",
        "",
        "| layer | shape | op | ours ms | torch NCHW ms | torch channels_last ms | ratio | roofline |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        roof = f"{r['roofline']:.0%}" if "roofline" in r else ""
        lines.append(f"| {r['kind']} | {r['shape']} | {r['op']} | {r['ours_ms']:.2f} | "
                     f"{_ms(r['torch_nchw_ms'], '.2f')} | {_ms(r['torch_channels_last_ms'], '.2f')} | "
                     f"{_ms(r['ratio'], '.2f')} | {roof} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--quick", action="store_true",
                        help="batch 1, one repeat, small shapes only; results are printed, not saved")
    parser.add_argument("--note", default="", help="a sentence about the run for the results table")
    parser.add_argument("--thread-time", action="store_true",
                        help="one thread, timed by the CPU time of the calling thread (where the "
                             "work then runs): insensitive to other processes on a shared machine; "
                             "writes ops_cpu_thread_time.{json,md}")
    args = parser.parse_args(argv)
    global clock
    if args.quick:
        args.batch, args.repeats = 1, 1
    if args.thread_time:
        args.threads, clock = 1, CLOCKS["thread"]
    set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    dtype = np.dtype(args.dtype).type
    n = args.batch

    load_before = os.getloadavg()[0]
    bandwidth = copy_bandwidth(max(args.repeats, 3))
    print(f"copy bandwidth: {bandwidth:.1f} GB/s; 1-minute load average {load_before:.1f}", flush=True)
    rows = []
    for hw, c in DEPTHWISE_SHAPES[2:] if args.quick else DEPTHWISE_SHAPES:
        rows += run_case("depthwise", f"{n}x{hw}x{hw}x{c}", depthwise_case(n, hw, c, dtype),
                         args.repeats, bandwidth)
    for hw, cin, cout in POINTWISE_SHAPES[2:] if args.quick else POINTWISE_SHAPES:
        rows += run_case("pointwise", f"{n}x{hw}x{hw}x{cin}->{cout}",
                         pointwise_case(n, hw, cin, cout, dtype), args.repeats, bandwidth)
    for hw, cin, cout, stride in STEM_SHAPES[1:] if args.quick else STEM_SHAPES:
        hw = 31 if args.quick else hw
        rows += run_case("stem conv", f"{n}x{hw}x{hw}x{cin}->{cout} s{stride}",
                         stem_case(n, hw, cin, cout, stride, dtype), args.repeats, bandwidth)

    if args.quick:
        return
    meta = dict(cpu=_cpu_name(), threads=args.threads, batch=n, dtype=args.dtype,
                clock="CPU time of the calling thread" if args.thread_time else "wall clock",
                repeats=args.repeats, bandwidth_gb_s=round(bandwidth, 2), note=args.note,
                load_average_before=round(load_before, 1),
                load_average_after=round(os.getloadavg()[0], 1),
                numpy=np.__version__, torch=torch.__version__, python=platform.python_version())
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "ops_cpu_thread_time" if args.thread_time else "ops_cpu"
    (RESULTS / f"{stem}.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(meta, rows))
    print(f"wrote {RESULTS / stem}.json and .md")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
