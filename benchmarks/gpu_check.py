"""One-command check of the CUDA backend on a real GPU: correctness at Xception's shapes, then speed.

    PYTHONPATH=. python3 benchmarks/gpu_check.py            # < 5 minutes on an H100
    PYTHONPATH=. python3 benchmarks/gpu_check.py --sim      # no GPU: a dry run in the simulator

`--sim` runs every section at tiny shapes in the CUDA simulator, with PyTorch on the CPU and wall
clock timers: its numbers mean nothing, but it exercises every code path of the GPU run.

Sections, each guarded so that one failure is reported (compactly) and the rest still runs:

1. versions and the device;
2. every CUDA op in float32 against the NumPy reference in float64 on the CPU, at Xception's real
   layer shapes (batch 2), plus float64 on the GPU for the core kernels (tight tolerance);
3. timings with CUDA events (median after warm-up) of every op at batch 16, against PyTorch on the
   same GPU: cuDNN/cuBLAS with TF32 off (strict float32) and with PyTorch's defaults; depthwise
   bandwidth as a fraction of the measured device-to-device copy bandwidth; our SGEMM against cuBLAS;
4. one training step (forward, loss, backward, SGD update) of the full Xception at 299x299
   (batch 8) and of the small preset, against the PyTorch twin in npxception.testing (run before
   the per-op timings: it is the headline number).

A hard time budget (--budget seconds, default 240) bounds the run: checks stop at 40% of it,
SGEMM at 60%, training steps need 30 s left, op timings stop when it is spent. One
table is printed; with $OUT set, everything is also written to $OUT/gpu_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
import zlib
from pathlib import Path

ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ARGS.add_argument("--sim", action="store_true", help="no GPU: a dry run at tiny shapes in the simulator")
ARGS.add_argument("--budget", type=float, default=240.0, help="seconds before timings are skipped")
ARGS.add_argument("--check-batch", type=int, default=2)
ARGS.add_argument("--time-batch", type=int, default=16)
ARGS.add_argument("--train-batch", type=int, default=8)
OPTIONS = ARGS.parse_args()
if OPTIONS.sim:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"   # must precede the first numba import
# Numba warns at every launch of a small grid (the loss, the classifier): noise in this report.
os.environ.setdefault("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "0")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

SIM = OPTIONS.sim
TORCH_DEVICE = "cpu" if SIM else "cuda"
START = time.monotonic()
RESULTS: dict = {"versions": {}, "device": {}, "checks": [], "timings": [], "gemm": [],
                 "bandwidth": {}, "train": [], "errors": [], "skipped": []}


def elapsed() -> float:
    return time.monotonic() - START


def budget_left() -> float:
    return OPTIONS.budget - elapsed()


def report_error(where: str, exc: BaseException) -> None:
    """One short line per frame (last 4) and the message: enough to fix, short enough to read."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    lines = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames]
    message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc) else ''}"
    RESULTS["errors"].append({"where": where, "error": message, "trace": lines})
    print(f"  ERROR in {where}: {message}\n    " + " <- ".join(reversed(lines)), flush=True)


def guarded(where: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # one failing op must not stop the run
        report_error(where, exc)
        return None


# ----------------------------------------------------------------------------- 1. environment

def collect_versions() -> None:
    from importlib import metadata

    v = RESULTS["versions"]
    v["python"] = platform.python_version()
    for dist in ("numpy", "numba", "numba-cuda", "torch", "cuda-bindings", "nvidia-cuda-nvrtc"):
        try:
            v[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            v[dist] = None
    try:
        import npxception

        v["npxception"] = npxception.__version__
    except Exception as exc:
        report_error("import npxception", exc)


def collect_device() -> bool:
    """Fill RESULTS["device"]; True when a GPU (or the simulator) is usable."""
    from numba import cuda

    import npxception

    d = RESULTS["device"]
    d["cuda_available"] = npxception.cuda_available()
    d["simulator"] = bool(OPTIONS.sim)
    if not d["cuda_available"] or OPTIONS.sim:
        return d["cuda_available"]
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    d.update(name=name, compute_capability=list(dev.compute_capability))
    for attr in ("MULTIPROCESSOR_COUNT", "MEMORY_CLOCK_RATE", "GLOBAL_MEMORY_BUS_WIDTH",
                 "CLOCK_RATE"):
        try:
            d[attr.lower()] = int(getattr(dev, attr))
        except Exception:
            d[attr.lower()] = None
    if d["memory_clock_rate"] and d["global_memory_bus_width"]:   # kHz, bits; DDR: x2
        d["peak_bandwidth_gbs"] = 2 * d["memory_clock_rate"] * 1e3 * d["global_memory_bus_width"] / 8 / 1e9
    try:
        d["driver"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
        d["runtime"] = ".".join(map(str, cuda.runtime.get_version()))
    except Exception:
        pass
    try:
        import torch

        d["torch_cuda"] = torch.version.cuda
        d["cudnn"] = torch.backends.cudnn.version()
        d["torch_sees_gpu"] = torch.cuda.is_available()
    except Exception:
        d["torch_cuda"] = None
    return True


# ----------------------------------------------------------------------------- 2. op checks

def xception_shapes(batch: int, sim: bool) -> dict:
    """Layer shapes of Xception at 299x299 (or tiny stand-ins for the simulator)."""
    if sim:
        return dict(stem1=(batch, 9, 9, 3, 4), stem2=(batch, 4, 4, 4, 6), short=(batch, 6, 6, 6, 8),
                    dw=[(batch, 7, 10, 40)], dw_s2=(batch, 8, 10, 20), pw=[(batch, 6, 5, 12, 20)],
                    bn=[(batch, 5, 7, 40)], act=(batch, 5, 6, 40), pool=[(batch, 9, 10, 40)],
                    gap=(batch, 3, 2, 300), dense=(batch, 20, 30), param=700)
    return dict(stem1=(batch, 299, 299, 3, 32), stem2=(batch, 149, 149, 32, 64),
                short=(batch, 147, 147, 64, 128),
                dw=[(batch, 147, 147, 64), (batch, 74, 74, 256), (batch, 19, 19, 728),
                    (batch, 10, 10, 1536)],
                dw_s2=(batch, 74, 74, 128),
                pw=[(batch, 147, 147, 64, 128), (batch, 19, 19, 728, 728), (batch, 10, 10, 1536, 2048)],
                bn=[(batch, 147, 147, 128), (batch, 10, 10, 2048)], act=(batch, 147, 147, 128),
                pool=[(batch, 147, 147, 128), (batch, 74, 74, 256)], gap=(batch, 10, 10, 2048),
                dense=(batch, 2048, 1000), param=728 * 728)


def op_specs(batch: int, sim: bool) -> list:
    """(label, backend function, args builder(rng) -> float64 args, float64-on-GPU too, exact)."""
    from npxception.shapes import resolve_padding

    s = xception_shapes(batch, sim)
    specs = []

    def n(rng, *shape):
        return rng.standard_normal(shape)

    def conv_spec(tag, shape, k, stride, padding, f64=False):
        nb, h, w, cin, cout = shape
        pads = resolve_padding(padding, (h, w), (k, k), (stride, stride))
        ho = (h + pads[0] + pads[1] - k) // stride + 1
        wo = (w + pads[2] + pads[3] - k) // stride + 1
        geo = ((stride, stride), pads, (1, 1))
        specs.append((f"conv2d {tag}", "conv2d", lambda r: (n(r, nb, h, w, cin), n(r, k, k, cin, cout), *geo),
                      f64, False))
        specs.append((f"conv2d_bwd {tag}", "conv2d_backward",
                      lambda r: (n(r, nb, ho, wo, cout), n(r, nb, h, w, cin), n(r, k, k, cin, cout), *geo),
                      f64, False))

    conv_spec(f"{s['stem1'][1]}x{s['stem1'][1]}x3 k3 s2", s["stem1"], 3, 2, "valid")
    conv_spec(f"{s['stem2'][1]}x{s['stem2'][1]} k3", s["stem2"], 3, 1, "valid", f64=True)
    conv_spec(f"shortcut {s['short'][1]} 1x1 s2", s["short"], 1, 2, "same")

    def dw_spec(shape, stride, f64):
        nb, h, w, c = shape
        pads = resolve_padding("same", (h, w), (3, 3), (stride, stride))
        ho, wo = -(-h // stride), -(-w // stride)
        geo = ((stride, stride), pads, (1, 1))
        tag = f"{h}x{w}x{c}" + (" s2" if stride == 2 else "")
        specs.append((f"depthwise {tag}", "depthwise_conv2d",
                      lambda r: (n(r, nb, h, w, c), n(r, 3, 3, c, 1), *geo), f64, False))
        specs.append((f"depthwise_bwd {tag}", "depthwise_conv2d_backward",
                      lambda r: (n(r, nb, ho, wo, c), n(r, nb, h, w, c), n(r, 3, 3, c, 1), *geo), f64, False))

    for i, shape in enumerate(s["dw"]):
        dw_spec(shape, 1, f64=(i == 0))
    dw_spec(s["dw_s2"], 2, f64=True)

    for i, (nb, h, w, cin, cout) in enumerate(s["pw"]):
        tag = f"{h}x{w} {cin}->{cout}"
        specs.append((f"pointwise {tag}", "pointwise_conv2d",
                      lambda r, a=(nb, h, w, cin, cout): (n(r, *a[:4]), n(r, 1, 1, a[3], a[4])), i == 0, False))
        specs.append((f"pointwise_bwd {tag}", "pointwise_conv2d_backward",
                      lambda r, a=(nb, h, w, cin, cout): (n(r, *a[:3], a[4]), n(r, *a[:4]), n(r, 1, 1, a[3], a[4])),
                      i == 0, False))

    for i, shape in enumerate(s["bn"]):
        c = shape[3]
        tag = f"{shape[1]}x{shape[2]}x{c}"

        def stats(x):
            return x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))

        specs.append((f"bn_train {tag}", "batch_norm_train",
                      lambda r, sh=shape: (n(r, *sh) * 2 + 1, n(r, sh[3]), n(r, sh[3]), 1e-3), i == 0, False))
        specs.append((f"bn_infer {tag}", "batch_norm_infer",
                      lambda r, sh=shape: (n(r, *sh), n(r, sh[3]), n(r, sh[3]), n(r, sh[3]),
                                           r.random(sh[3]) + 0.5, 1e-3), False, False))

        def bn_bwd(r, sh=shape):
            x = n(r, *sh) * 2 + 1
            return (n(r, *sh), x, n(r, sh[3]), *stats(x), 1e-3, True)

        specs.append((f"bn_bwd {tag}", "batch_norm_backward", bn_bwd, i == 0, False))

    act = s["act"]
    tag = f"{act[1]}x{act[2]}x{act[3]}"
    specs += [(f"relu {tag}", "relu", lambda r: (n(r, *act),), False, True),
              (f"relu_bwd {tag}", "relu_backward", lambda r: (n(r, *act), n(r, *act)), False, True),
              (f"elu {tag}", "elu", lambda r: (n(r, *act), 1.0), False, False),
              (f"elu_bwd {tag}", "elu_backward", lambda r: (n(r, *act), n(r, *act), 1.0), False, False),
              (f"add {tag}", "add", lambda r: (n(r, *act), n(r, *act)), False, True)]

    for i, (nb, h, w, c) in enumerate(s["pool"]):
        pads = resolve_padding("same", (h, w), (3, 3), (2, 2))
        tag = f"{h}x{w}x{c} pad{pads}"
        ho, wo = -(-h // 2), -(-w // 2)
        specs.append((f"maxpool {tag}", "max_pool2d",
                      lambda r, a=(nb, h, w, c), p=pads: (n(r, *a), (3, 3), (2, 2), p), i == 0, True))
        specs.append((f"maxpool_bwd {tag}", "max_pool2d_backward",
                      lambda r, a=(nb, h, w, c), p=pads, o=(ho, wo):
                      (n(r, a[0], *o, a[3]), n(r, *a), (3, 3), (2, 2), p), i == 0, False))

    g = s["gap"]
    specs += [(f"gap {g[1]}x{g[2]}x{g[3]}", "global_avg_pool2d", lambda r: (n(r, *g),), False, False),
              (f"gap_bwd {g[1]}x{g[2]}x{g[3]}", "global_avg_pool2d_backward",
               lambda r: (n(r, g[0], g[3]), n(r, *g)), False, False)]
    nb, cin, cout = s["dense"]
    specs += [(f"dense {cin}->{cout}", "dense", lambda r: (n(r, nb, cin), n(r, cin, cout), n(r, cout)),
               False, False),
              (f"dense_bwd {cin}->{cout}", "dense_backward",
               lambda r: (n(r, nb, cout), n(r, nb, cin), n(r, cin, cout), True), False, False),
              (f"dropout {nb}x{cin}", "dropout", lambda r: (n(r, nb, cin), 0.5, 12345), False, True),
              (f"softmax_ce {nb}x{cout}", "softmax_cross_entropy",
               lambda r: (n(r, nb, cout), r.integers(0, cout, nb), 0.1), False, False),
              (f"softmax_ce_bwd {nb}x{cout}", "softmax_cross_entropy_backward",
               lambda r: (1.0, n(r, nb, cout), r.integers(0, cout, nb), 0.1), False, False)]
    p = s["param"]
    specs += [("sgd nesterov", "sgd_update", lambda r: (n(r, p), n(r, p), n(r, p), 0.045, 0.9, True, 1e-5),
               False, False),
              ("rmsprop", "rmsprop_update",
               lambda r: (n(r, p), n(r, p), r.random(p), n(r, p), 1e-3, 0.9, 0.9, 1e-7, 1e-5), False, False),
              ("adamw", "adam_update",
               lambda r: (n(r, p), n(r, p), n(r, p), r.random(p), 1e-3, 0.9, 0.999, 1e-7, 1e-2, True, 5),
               False, False),
              ("ema", "ema_update", lambda r: (n(r, p), n(r, p), 0.999), False, False),
              ("scale_", "scale_", lambda r: (n(r, p), 0.5), False, False),
              ("sum_squares", "sum_squares", lambda r: (n(r, p),), False, False)]
    return specs


IN_PLACE = {"sgd_update", "rmsprop_update", "adam_update", "ema_update", "scale_"}


def call(backend, fn: str, args, dtype):
    """Run one backend function on copies of args cast to dtype; results as float64 NumPy."""
    moved = []
    for a in args:
        if isinstance(a, np.ndarray):
            a = a.astype(dtype) if a.dtype.kind == "f" else a.astype(np.int64)
            moved.append(backend.to_device(np.ascontiguousarray(a)))
        else:
            moved.append(a)
    out = getattr(backend, fn)(*moved)
    if fn in IN_PLACE:
        out = tuple(m for m, a in zip(moved, args) if isinstance(a, np.ndarray))
    outs = out if isinstance(out, tuple) else (out,)
    return [None if o is None else np.asarray(o if isinstance(o, float) else backend.to_numpy(o),
                                              dtype=np.float64) for o in outs]


def rel_error(actual, expected) -> float:
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
    return float(np.max(np.abs(actual - expected), initial=0.0)) / scale


def run_checks(batch: int) -> None:
    from npxception.backends import cuda as gpu
    from npxception.backends import reference

    tol = {np.float32: 1e-3, np.float64: 1e-9}
    for label, fn, make, with_f64, exact in op_specs(batch, OPTIONS.sim):
        if budget_left() < OPTIONS.budget * 0.6:
            RESULTS["skipped"].append(f"check {label} (budget)")
            continue
        rng = np.random.default_rng(zlib.crc32(label.encode()))
        args = make(rng)
        t0 = time.perf_counter()
        expected = guarded(f"reference {label}", call, reference, fn, args, np.float64)
        if expected is None:
            continue
        for dtype in (np.float32, np.float64) if with_f64 else (np.float32,):
            ours = guarded(f"cuda {label} {dtype.__name__}", call, gpu, fn, args, dtype)
            if ours is None:
                RESULTS["checks"].append({"op": label, "dtype": dtype.__name__, "ok": False,
                                          "error": "raised"})
                continue
            errs = [0.0 if e is None and o is None else rel_error(o, e) for o, e in zip(ours, expected)]
            if exact and dtype is np.float32:   # exact ops: compare with the float32 reference
                ref32 = call(reference, fn, args, np.float32)
                errs = [float(np.max(np.abs(o - e), initial=0.0)) for o, e in zip(ours, ref32)]
                ok = all(e == 0.0 for e in errs)
            else:
                ok = all(e <= tol[dtype] for e in errs)
            RESULTS["checks"].append({"op": label, "dtype": dtype.__name__, "ok": ok,
                                      "max_rel_error": max(errs), "seconds": time.perf_counter() - t0})
            mark = "ok " if ok else "BAD"
            print(f"  {mark} {label:<38} {dtype.__name__:<8} err {max(errs):.1e}", flush=True)


# ----------------------------------------------------------------------------- 3. timings

def hw(size: int) -> int:
    """A spatial size of the timing cases: the real one, or a tiny stand-in for the dry run."""
    return max(3, size // 25) if SIM else size


def ch(channels: int) -> int:
    return min(channels, 24) if SIM else channels


def median_ms(fn, record, elapsed_ms, sync, *, min_runs=5, max_runs=50, target_s=0.4) -> float:
    """Median time of fn() between two events on the default stream, after two warm-up calls."""
    fn()
    if not SIM:
        fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t0, 1e-6)
    runs = 1 if SIM else int(min(max_runs, max(min_runs, target_s / once)))
    times = []
    for _ in range(runs):
        start, end = record(), None
        fn()
        end = record()
        times.append(elapsed_ms(start, end))
    return float(np.median(times))


def wall_timer():
    """The dry run's stand-in for CUDA events (the simulator and the CPU have none)."""
    return time.perf_counter, lambda a, b: (b - a) * 1e3, lambda: None


def numba_timer():
    if SIM:
        return wall_timer()
    from numba import cuda

    def record():
        ev = cuda.event(timing=True)
        ev.record()
        return ev

    def elapsed_ms(a, b):
        b.synchronize()
        return cuda.event_elapsed_time(a, b)

    return record, elapsed_ms, cuda.synchronize


def torch_timer():
    if SIM:
        return wall_timer()
    import torch

    def record():
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev

    def elapsed_ms(a, b):
        b.synchronize()
        return a.elapsed_time(b)

    return record, elapsed_ms, torch.cuda.synchronize


def set_torch_precision(strict: bool) -> None:
    import torch

    torch.backends.cudnn.allow_tf32 = not strict
    torch.backends.cuda.matmul.allow_tf32 = False if strict else DEFAULT_MATMUL_TF32
    torch.backends.cudnn.benchmark = False


DEFAULT_MATMUL_TF32 = False


def time_ops(batch: int) -> None:
    """Our op vs PyTorch (strict float32, then defaults) at batch `batch`."""
    global DEFAULT_MATMUL_TF32
    import torch
    import torch.nn.functional as F

    from npxception.backends import cuda as gpu
    from npxception.shapes import resolve_padding

    DEFAULT_MATMUL_TF32 = torch.backends.cuda.matmul.allow_tf32
    ours_t, torch_t = numba_timer(), torch_timer()
    dev = TORCH_DEVICE
    rng = np.random.default_rng(0)
    aten = torch.ops.aten

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def nchw(a):   # an NHWC array as a channels_last NCHW torch tensor (same memory layout)
        return torch.from_numpy(a).to(dev).permute(0, 3, 1, 2)

    def oihw(w, depthwise=False):
        t = torch.from_numpy(w).to(dev)
        return t.permute(2, 3, 0, 1).contiguous() if depthwise else t.permute(3, 2, 0, 1).contiguous()

    cases = []   # (label, ours(), torch(), bytes moved or None, flops or None)

    def conv_case(label, nb, h, w, cin, cout, k, stride, padding, depthwise):
        x = arr(nb, h, w, cin)
        wk = arr(k, k, cin, 1) if depthwise else arr(k, k, cin, cout)
        pads = resolve_padding(padding, (h, w), (k, k), (stride, stride))
        ho, wo = (h + pads[0] + pads[1] - k) // stride + 1, (w + pads[2] + pads[3] - k) // stride + 1
        co = cin if depthwise else cout
        dy = arr(nb, ho, wo, co)
        xd, wd, dyd = gpu.to_device(x), gpu.to_device(wk), gpu.to_device(dy)
        geo = ((stride, stride), pads, (1, 1))
        xt, wt, dyt = nchw(x), oihw(wk, depthwise), nchw(dy)
        groups = cin if depthwise else 1
        symmetric = pads[0] == pads[1] and pads[2] == pads[3]
        tp = (pads[0], pads[2])
        fwd_name = "depthwise_conv2d" if depthwise else "conv2d"
        bytes_fwd = x.nbytes + wk.nbytes + dy.nbytes
        flops = 2 * nb * ho * wo * co * k * k * (1 if depthwise else cin)
        cases.append((label, lambda: getattr(gpu, fwd_name)(xd, wd, *geo),
                      (lambda: F.conv2d(xt, wt, None, stride, tp, 1, groups)) if symmetric else None,
                      bytes_fwd, flops))
        cases.append((label.replace(" ", "_bwd ", 1), lambda: getattr(gpu, fwd_name + "_backward")(dyd, xd, wd, *geo),
                      (lambda: aten.convolution_backward(dyt, xt, wt, None, [stride] * 2, list(tp), [1, 1],
                                                         False, [0, 0], groups, [True, True, False]))
                      if symmetric else None, 2 * x.nbytes + 2 * dy.nbytes, 2 * flops))

    b = batch
    conv_case("conv 299x299x3->32 s2", b, hw(299), hw(299), 3, ch(32), 3, 2, "valid", False)
    conv_case("conv 149x149x32->64", b, hw(149), hw(149), ch(32), ch(64), 3, 1, "valid", False)
    conv_case("conv 1x1 s2 147x147x64->128", b, hw(147), hw(147), ch(64), ch(128), 1, 2, "same", False)
    for h, c in ((147, 64), (147, 128), (74, 256), (37, 728), (19, 728), (10, 1536)):
        conv_case(f"depthwise {h}x{h}x{c}", b, hw(h), hw(h), ch(c), ch(c), 3, 1, "same", True)

    for h, cin, cout in ((147, 64, 128), (74, 128, 256), (19, 728, 728), (10, 1536, 2048)):
        label = f"{h}x{h} {cin}->{cout}"
        h, cin, cout = hw(h), ch(cin), ch(cout)
        x, wk, dy = arr(b, h, h, cin), arr(1, 1, cin, cout), arr(b, h, h, cout)
        xd, wd, dyd = gpu.to_device(x), gpu.to_device(wk), gpu.to_device(dy)
        xm = torch.from_numpy(x).to(dev).reshape(-1, cin)
        wm = torch.from_numpy(wk).to(dev).reshape(cin, cout)
        dym = torch.from_numpy(dy).to(dev).reshape(-1, cout)
        flops = 2 * b * h * h * cin * cout
        cases.append((f"pointwise {label}", lambda xd=xd, wd=wd: gpu.pointwise_conv2d(xd, wd),
                      lambda xm=xm, wm=wm: xm @ wm, None, flops))
        cases.append((f"pointwise_bwd {label}",
                      lambda dyd=dyd, xd=xd, wd=wd: gpu.pointwise_conv2d_backward(dyd, xd, wd),
                      lambda dym=dym, xm=xm, wm=wm: (dym @ wm.T, xm.T @ dym), None, 2 * flops))

    for h0, c0 in ((147, 128), (19, 728)):
        h, c = hw(h0), ch(c0)
        x, dy = arr(b, h, h, c), arr(b, h, h, c)
        gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
        xd, dyd, gd, bd = (gpu.to_device(a) for a in (x, dy, gamma, beta))
        mean_d, var_d = gpu.to_device(x.mean((0, 1, 2))), gpu.to_device(x.var((0, 1, 2)))
        xt, dyt = nchw(x), nchw(dy)
        gt, bt = torch.from_numpy(gamma).to(dev), torch.from_numpy(beta).to(dev)
        _, sm, si = aten.native_batch_norm(xt, gt, bt, None, None, True, 0.01, 1e-3)
        cases.append((f"bn_train {h0}x{h0}x{c0}", lambda xd=xd, gd=gd, bd=bd: gpu.batch_norm_train(xd, gd, bd, 1e-3),
                      lambda xt=xt, gt=gt, bt=bt: aten.native_batch_norm(xt, gt, bt, None, None, True, 0.01, 1e-3),
                      3 * x.nbytes, None))
        cases.append((f"bn_bwd {h0}x{h0}x{c0}",
                      lambda dyd=dyd, xd=xd, gd=gd, m=mean_d, v=var_d: gpu.batch_norm_backward(dyd, xd, gd, m, v,
                                                                                                1e-3, True),
                      lambda dyt=dyt, xt=xt, gt=gt, sm=sm, si=si: aten.native_batch_norm_backward(
                          dyt, xt, gt, None, None, sm, si, True, 1e-3, [True, True, True]),
                      5 * x.nbytes, None))

    x = arr(b, hw(147), hw(147), ch(128))
    xd, xt = gpu.to_device(x), nchw(x)
    cases.append(("relu 147x147x128", lambda: gpu.relu(xd), lambda: torch.relu(xt), 2 * x.nbytes, None))
    cases.append(("add 147x147x128", lambda: gpu.add(xd, xd), lambda: xt + xt, 3 * x.nbytes, None))
    cases.append(("maxpool 147x147x128 s2", lambda: gpu.max_pool2d(xd, (3, 3), (2, 2), (1, 1, 1, 1)),
                  lambda: F.max_pool2d(xt, 3, 2, 1), x.nbytes * 5 // 4, None))
    yt, idx = F.max_pool2d(xt, 3, 2, 1, return_indices=True)
    dy = np.ascontiguousarray(arr(*yt.shape).transpose(0, 2, 3, 1))   # NHWC, like our output
    dyd, dyt = gpu.to_device(dy), nchw(dy)
    cases.append(("maxpool_bwd 147x147x128 s2",
                  lambda: gpu.max_pool2d_backward(dyd, xd, (3, 3), (2, 2), (1, 1, 1, 1)),
                  lambda: aten.max_pool2d_with_indices_backward(dyt, xt, [3, 3], [2, 2], [1, 1], [1, 1], False, idx),
                  x.nbytes * 9 // 4, None))
    g = arr(b, hw(10), hw(10), ch(2048))
    gd, gt = gpu.to_device(g), torch.from_numpy(g).to(dev)
    cases.append(("gap 10x10x2048", lambda: gpu.global_avg_pool2d(gd), lambda: gt.mean((1, 2)), g.nbytes, None))
    xf, wf, bf = arr(b, ch(2048)), arr(ch(2048), ch(1000)), arr(ch(1000))
    xfd, wfd, bfd = gpu.to_device(xf), gpu.to_device(wf), gpu.to_device(bf)
    xft, wft, bft = (torch.from_numpy(a).to(dev) for a in (xf, wf, bf))
    cases.append(("dense 2048->1000", lambda: gpu.dense(xfd, wfd, bfd), lambda: torch.addmm(bft, xft, wft),
                  None, 2 * b * xf.shape[1] * wf.shape[1]))
    p = arr(ch(728) * ch(728))
    pd, gd2, vd = gpu.to_device(p), gpu.to_device(p), gpu.to_device(p)
    cases.append(("sgd_update 728x728", lambda: gpu.sgd_update(pd, gd2, vd, 1e-9, 0.9, False, 0.0), None,
                  4 * p.nbytes, None))

    for label, ours, theirs, nbytes, flops in cases:
        if budget_left() < 0:
            RESULTS["skipped"].append(f"timing {label} (budget)")
            continue
        row = {"op": label, "batch": b}
        row["ours_ms"] = guarded(f"time ours {label}", median_ms, ours, *ours_t)
        if theirs is not None:
            for strict, key in ((True, "torch_strict_ms"), (False, "torch_default_ms")):
                set_torch_precision(strict)
                with torch.no_grad():
                    row[key] = guarded(f"time torch {label}", median_ms, theirs, *torch_t)
        if row.get("ours_ms"):
            if nbytes:
                row["ours_gbs"] = nbytes / row["ours_ms"] / 1e6
            if flops:
                row["ours_tflops"] = flops / row["ours_ms"] / 1e9
            if row.get("torch_strict_ms"):
                row["speedup_vs_strict"] = row["torch_strict_ms"] / row["ours_ms"]
        RESULTS["timings"].append(row)
        print(f"  {label:<34} ours {fmt(row.get('ours_ms')):>8} ms   torch strict "
              f"{fmt(row.get('torch_strict_ms')):>8}   default {fmt(row.get('torch_default_ms')):>8}", flush=True)
    set_torch_precision(True)


def time_bandwidth_and_gemm() -> None:
    """Device-to-device copy bandwidth (the practical peak) and our SGEMM against cuBLAS."""
    import torch

    from npxception.backends import cuda as gpu
    from npxception.backends.cuda.gemm import matmul

    ours_t, torch_t = numba_timer(), torch_timer()
    src = torch.empty(2**10 if SIM else 256 * 2**20, dtype=torch.float32, device=TORCH_DEVICE)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), *torch_t)
    RESULTS["bandwidth"]["copy_gbs"] = 2 * src.numel() * 4 / ms / 1e6
    src = dst = None   # free 2 GiB before the GEMMs
    print(f"  device-to-device copy: {RESULTS['bandwidth']['copy_gbs']:.0f} GB/s", flush=True)
    rng = np.random.default_rng(0)
    shapes = (((130, 20, 20, False), (300, 16, 8, False), (24, 24, 300, True)) if SIM else
              ((4096, 4096, 4096, False), (16 * 147 * 147, 128, 64, False), (16 * 19 * 19, 728, 728, False),
               (728, 728, 16 * 19 * 19, True)))   # the last: a weight gradient X^T @ dY (split-K)
    for m, n, k, transposed in shapes:
        if budget_left() < OPTIONS.budget * 0.4:
            RESULTS["skipped"].append(f"gemm {m}x{n}x{k} (budget)")
            continue
        a_np = rng.standard_normal((k, m) if transposed else (m, k)).astype(np.float32)
        b_np = rng.standard_normal((k, n)).astype(np.float32)
        ad, bd = gpu.to_device(a_np), gpu.to_device(b_np)
        at, bt = torch.from_numpy(a_np).to(TORCH_DEVICE), torch.from_numpy(b_np).to(TORCH_DEVICE)
        ours = guarded("gemm ours", median_ms,
                       lambda ad=ad, bd=bd, t=transposed: matmul(ad, bd, a_transposed=t), *ours_t)
        set_torch_precision(True)
        cublas = guarded("gemm cublas", median_ms,
                         lambda at=at, bt=bt, t=transposed: (at.T if t else at) @ bt, *torch_t)
        flops = 2 * m * n * k
        row = {"m": m, "n": n, "k": k, "a_transposed": transposed, "ours_ms": ours, "cublas_fp32_ms": cublas}
        if ours and cublas:
            row.update(ours_tflops=flops / ours / 1e9, cublas_tflops=flops / cublas / 1e9, ratio=cublas / ours)
            print(f"  sgemm {m}x{n}x{k}{' (A^T)' if transposed else ''}: ours {row['ours_tflops']:.1f} TFLOP/s, "
                  f"cuBLAS fp32 {row['cublas_tflops']:.1f} -> {100 * row['ratio']:.0f}%", flush=True)
        RESULTS["gemm"].append(row)


# ----------------------------------------------------------------------------- 4. training step

def time_training(preset: str, batch: int) -> None:
    try:
        from npxception import Xception, XceptionConfig
        from npxception.testing.torch_xception import TorchXception
    except Exception as exc:
        RESULTS["train"].append({"preset": preset, "status": f"model not available: {exc}"})
        print(f"  model not available: {type(exc).__name__}: {exc}", flush=True)
        return
    import torch
    import torch.nn.functional as F

    cfg = {"paper": XceptionConfig.paper, "small": XceptionConfig.small,
           "tiny": lambda: XceptionConfig.tiny(input_shape=(8, 8, 3))}[preset]()
    h, w, c = cfg.input_shape
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch, h, w, c)).astype(np.float32)
    labels = rng.integers(0, cfg.num_classes, batch).astype(np.int64)
    row = {"preset": preset, "batch": batch, "input": [h, w, c]}
    RESULTS["train"].append(row)

    model = Xception(cfg, backend="cuda", seed=0, dtype="float32")
    be = model.backend
    xd, yd = be.to_device(x), be.to_device(labels)
    velocity = {}

    def our_step():
        logits = model.forward(xd, training=True)
        loss = be.softmax_cross_entropy(logits, yd, 0.0)
        model.backward(be.softmax_cross_entropy_backward(1.0, logits, yd, 0.0))
        for key, (param, grad) in model.trainable().items():
            if key not in velocity:
                velocity[key] = be.zeros(param.shape, param.dtype)
            be.sgd_update(param, grad, velocity[key], 0.01, 0.9, False, 1e-5)
        return loss

    t0 = time.perf_counter()
    row["first_loss"] = float(be.to_numpy(our_step()))
    row["first_step_s_incl_compile"] = time.perf_counter() - t0
    runs = 1 if SIM else 5 if preset == "paper" else 10
    row["ours_ms"] = median_ms(our_step, *numba_timer(), min_runs=runs, max_runs=runs, target_s=0)
    row["ours_images_per_s"] = batch / row["ours_ms"] * 1e3

    twin = TorchXception(cfg, dtype=torch.float32).to(TORCH_DEVICE)
    twin.load_our_state_dict(model.state_dict())
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(TORCH_DEVICE)
    yt = torch.from_numpy(labels).to(TORCH_DEVICE)
    set_torch_precision(True)
    with torch.no_grad():   # same weights: inference logits must agree
        ours_logits = be.to_numpy(model.forward(xd, training=False))
        twin_logits = twin(xt, training=False).cpu().numpy()
    row["inference_logits_rel_error_vs_torch"] = rel_error(ours_logits, twin_logits)
    opt = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)
    seed = [0]

    def torch_step():
        opt.zero_grad(set_to_none=True)
        seed[0] += 1
        loss = F.cross_entropy(twin(xt, training=True, dropout_seed=seed[0]), yt)
        loss.backward()
        opt.step()
        return loss

    for strict, key in ((True, "torch_strict_ms"), (False, "torch_default_ms")):
        set_torch_precision(strict)
        row[key] = median_ms(torch_step, *torch_timer(), min_runs=runs, max_runs=runs, target_s=0)
    row["speedup_vs_strict"] = row["torch_strict_ms"] / row["ours_ms"]
    set_torch_precision(True)
    print(f"  train step {preset} b{batch}: ours {row['ours_ms']:.1f} ms, torch strict {row['torch_strict_ms']:.1f}"
          f", default {row['torch_default_ms']:.1f}; logits vs torch {row['inference_logits_rel_error_vs_torch']:.1e}",
          flush=True)


# ----------------------------------------------------------------------------- report

def fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def print_table() -> None:
    print("\n==== summary " + "=" * 100)
    d = RESULTS["device"]
    print(f"device: {d.get('name', 'none')}  cc {d.get('compute_capability')}  SMs {d.get('multiprocessor_count')}"
          f"  peak {fmt(d.get('peak_bandwidth_gbs'), '.0f')} GB/s"
          f"  copy {fmt(RESULTS['bandwidth'].get('copy_gbs'), '.0f')} GB/s")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in RESULTS["versions"].items()))
    checks = RESULTS["checks"]
    bad = [c for c in checks if not c["ok"]]
    print(f"op checks: {len(checks) - len(bad)}/{len(checks)} ok" + (": BAD " + ", ".join(
        f"{c['op']} {c['dtype']} ({fmt(c.get('max_rel_error'), '.1e')})" for c in bad) if bad else ""))
    if RESULTS["timings"]:
        title = f"op (batch {1 if SIM else OPTIONS.time_batch})"
        print(f"{title:<36}{'ours ms':>9}{'torch32':>9}{'torchdef':>9}"
              f"{'x strict':>9}{'GB/s':>8}{'TFLOP/s':>9}")
        for r in RESULTS["timings"]:
            print(f"{r['op']:<36}{fmt(r.get('ours_ms')):>9}{fmt(r.get('torch_strict_ms')):>9}"
                  f"{fmt(r.get('torch_default_ms')):>9}{fmt(r.get('speedup_vs_strict'), '.2f'):>9}"
                  f"{fmt(r.get('ours_gbs'), '.0f'):>8}{fmt(r.get('ours_tflops'), '.2f'):>9}")
    for r in RESULTS["gemm"]:
        print(f"sgemm {r['m']}x{r['n']}x{r['k']}{' A^T' if r['a_transposed'] else ''}: ours "
              f"{fmt(r.get('ours_tflops'), '.1f')} TFLOP/s vs cuBLAS fp32 {fmt(r.get('cublas_tflops'), '.1f')}"
              f" ({fmt(100 * r['ratio'] if r.get('ratio') else None, '.0f')}%)")
    for r in RESULTS["train"]:
        if "ours_ms" not in r:
            print(f"train {r['preset']}: {r.get('status', 'incomplete')}")
            continue
        print(f"train step {r['preset']} batch {r['batch']}: ours {fmt(r['ours_ms'], '.1f')} ms "
              f"({fmt(r['ours_images_per_s'], '.0f')} img/s), torch strict {fmt(r.get('torch_strict_ms'), '.1f')} ms,"
              f" default {fmt(r.get('torch_default_ms'), '.1f')} ms; logits vs torch "
              f"{fmt(r.get('inference_logits_rel_error_vs_torch'), '.1e')}")
    if RESULTS["skipped"]:
        print(f"skipped ({len(RESULTS['skipped'])}): " + "; ".join(RESULTS["skipped"][:8]))
    if RESULTS["errors"]:
        print(f"errors ({len(RESULTS['errors'])}): " + "; ".join(f"{e['where']}: {e['error']}"
                                                                for e in RESULTS["errors"][:10]))
    print(f"total {elapsed():.0f} s")


def write_json() -> None:
    out = os.environ.get("OUT")
    if not out:
        return
    path = Path(out) / "gpu_check.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    RESULTS["total_seconds"] = elapsed()
    path.write_text(json.dumps(RESULTS, indent=1, default=str))
    print(f"wrote {path}")


def main() -> int:
    print("== versions and device", flush=True)
    guarded("versions", collect_versions)
    have_gpu = guarded("device", collect_device)
    print(json.dumps({**RESULTS["versions"], **RESULTS["device"]}), flush=True)
    if not have_gpu:
        print("No CUDA GPU found (npxception.cuda_available() is False): nothing to check on a device. "
              "Run with --sim for a simulator smoke run of the op checks.")
        write_json()
        return 0
    where = ", simulator, tiny shapes" if SIM else ""
    print(f"== op checks (batch {1 if SIM else OPTIONS.check_batch}{where})", flush=True)
    guarded("checks", run_checks, 1 if SIM else OPTIONS.check_batch)
    try:
        import torch

        torch_ok = SIM or torch.cuda.is_available()
    except Exception as exc:
        report_error("import torch", exc)
        torch_ok = False
    if not torch_ok:
        RESULTS["skipped"].append("timings: PyTorch with CUDA not available")
        print_table()
        write_json()
        return 0
    print("== bandwidth and SGEMM", flush=True)
    guarded("bandwidth/gemm", time_bandwidth_and_gemm)
    presets = (("tiny", 2),) if SIM else (("paper", OPTIONS.train_batch), ("small", 64))
    for preset, batch in presets:
        if budget_left() < 30:
            RESULTS["skipped"].append(f"train {preset} (budget)")
            continue
        print(f"== training step {preset}", flush=True)
        guarded(f"train {preset}", time_training, preset, batch)
    print(f"== op timings (batch {1 if SIM else OPTIONS.time_batch})", flush=True)
    guarded("timings", time_ops, 1 if SIM else OPTIONS.time_batch)
    print_table()
    write_json()
    return 0


if __name__ == "__main__":
    sys.exit(main())
