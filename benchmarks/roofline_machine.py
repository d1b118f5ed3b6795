"""The machine's limits for benchmarks/roofline.py: FP32 peak (stated and measured) and copy bandwidth.

    theoretical_peak()   cores x lanes x FMA units x 2 x clock, from lscpu and /proc/cpuinfo
    fma_peak(...)        a Numba kernel of independent FMA chains, 1 and 2 threads, in child processes
    stream(...)          STREAM-like copy and triad on arrays much larger than the last-level cache
    square_sgemm(...)    OpenBLAS sgemm on a large square matrix: the achievable peak

Peaks are the best of several repeats (a peak is what the machine can do, and on a shared machine
other work only ever makes a repeat slower). Bandwidth counts the bytes a kernel reads plus the
bytes it writes (copy 8 per float32 element, triad 12), not the cache line a store may first read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import npxception.threads  # noqa: E402,F401  (sets OpenMP's wait policy before Numba starts threads)

CHAINS, LANES_PER_CHAIN = 16, 16  # 16 independent chains of one 512-bit vector: hides the FMA latency
WIDTH = CHAINS * LANES_PER_CHAIN


def _lscpu() -> dict[str, str]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n")[0]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines())}


def theoretical_peak() -> dict:
    """FP32 peak = cores x lanes x FMA units x 2 flops x clock, with what was read and what was assumed."""
    cpu, info, assumed = _lscpu(), _cpuinfo(), []
    flags = set((cpu.get("Flags") or info.get("flags", "")).split())
    sockets = int(cpu.get("Socket(s)", 1) or 1)
    per_socket = cpu.get("Core(s) per socket")
    cores = sockets * int(per_socket) if per_socket else os.cpu_count() or 1
    if not per_socket:
        assumed.append("cores = logical CPUs (lscpu gave no cores per socket)")
    if cpu.get("Hypervisor vendor"):
        assumed.append(f"a {cpu['Hypervisor vendor']} guest: each vCPU is taken as a whole core (a host "
                       "hyper-thread sibling would share one core's FMA units)")
    lanes = 16 if "avx512f" in flags else 8 if "avx" in flags else 4
    if "fma" in flags:
        units = 2
        assumed.append("2 FMA units per core (Intel server cores with AVX-512 and every AVX2 core since "
                       "Haswell have 2; some AVX-512 parts have 1 for 512-bit vectors)")
    else:
        units = 1
        assumed.append("no FMA: one multiply and one add per lane per cycle, counted as one FMA unit")
    if cpu.get("CPU max MHz"):
        mhz, clock_from = float(cpu["CPU max MHz"]), "lscpu CPU max MHz (the highest boost clock)"
    else:
        mhz, clock_from = float(info.get("cpu MHz", 0.0) or 0.0), "/proc/cpuinfo cpu MHz (the reported clock)"
        assumed.append("clock = the reported clock; boost and AVX-512 clocks are not visible here")
    return {"model": cpu.get("Model name") or info.get("model name", "?"), "cores": cores, "lanes_fp32": lanes,
            "vector_isa": "AVX-512" if lanes == 16 else "AVX/AVX2" if lanes == 8 else "SSE", "fma_units": units,
            "clock_ghz": mhz / 1e3, "clock_from": clock_from, "l3": cpu.get("L3 cache", "?"),
            "peak_gflops": cores * lanes * units * 2 * mhz / 1e3,
            "peak_gflops_per_core": lanes * units * 2 * mhz / 1e3, "assumed": assumed,
            "formula": f"{cores} cores x {lanes} lanes x {units} FMA units x 2 x {mhz / 1e3:.2f} GHz"}


def last_level_cache_bytes() -> int:
    text = _lscpu().get("L3 cache") or _lscpu().get("L2 cache") or ""
    match = re.match(r"([\d.]+)\s*([KMG])i?B?", text)
    if not match:
        return 64 * 2**20
    return int(float(match.group(1)) * {"K": 2**10, "M": 2**20, "G": 2**30}[match.group(2)])


# ---------------------------------------------------------------------------- FMA chains (in a child)

def _fma_child(iterations: int) -> dict:
    import numba
    from numba import njit, prange

    @njit(fastmath=True)
    def chains(acc, a, b, iterations):
        # WIDTH is a compile-time constant: LLVM unrolls the lane loop into CHAINS vector FMAs and keeps
        # acc in registers across the outer loop; each chain depends only on itself.
        for _ in range(iterations):
            for j in range(WIDTH):
                acc[j] = acc[j] * a + b

    @njit(parallel=True)
    def on_threads(acc, a, b, iterations):
        for t in prange(acc.shape[0]):  # one row per thread
            chains(acc[t], a, b, iterations)

    a, b = np.float32(0.999), np.float32(1e-3)
    chains(np.ones(WIDTH, np.float32), a, b, 1)  # compiles it, so its machine code can be read
    asm = next(iter(chains.inspect_asm().values()))
    fmas = re.findall(r"vfn?m(?:add|sub)\d*ps\s+[^\n]*%([xyz])mm", asm)
    width = {"z": 512, "y": 256, "x": 128}.get(max(set(fmas), key=fmas.count), 0) if fmas else 0
    out = {"vector_bits": width, "vector_fmas_in_kernel": len(fmas), "gflops": {}}
    for threads in (1, 2):
        if threads > numba.config.NUMBA_NUM_THREADS:
            continue
        numba.set_num_threads(threads)
        acc = np.full((threads, WIDTH), 0.5, np.float32)
        on_threads(acc, a, b, 1)
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            on_threads(acc, a, b, iterations)
            best = min(best, time.perf_counter() - start)
        out["gflops"][str(threads)] = 2 * WIDTH * iterations * threads / best / 1e9
    return out


def fma_peak(iterations: int) -> dict:
    """Numba's FMA chains twice: as Numba compiles by default, and with LLVM's 256-bit preference off.

    LLVM tunes some AVX-512 cores to prefer 256-bit vectors (to avoid the clock drop of 512-bit
    code), so Numba kernels run at half the machine's vector width unless told otherwise; the
    second run (NUMBA_CPU_FEATURES = host features + ",-prefer-256-bit") measures the full width.
    """
    import llvmlite.binding as llvm

    runs = {}
    wide = os.environ.copy()
    wide["NUMBA_CPU_FEATURES"] = llvm.get_host_cpu_features().flatten() + ",-prefer-256-bit"
    for name, env in (("numba_default", os.environ.copy()), ("numba_no_prefer_256", wide)):
        done = subprocess.run([sys.executable, __file__, "--fma-child", str(iterations)], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            runs[name] = {"failed": " | ".join(done.stderr.strip().splitlines()[-2:])}
        else:
            runs[name] = json.loads(done.stdout.strip().splitlines()[-1])
    runs["cpu_name"] = llvm.get_host_cpu_name()
    return runs


# ---------------------------------------------------------------------------- bandwidth

def _stream_kernels():
    from numba import njit, prange

    @njit(parallel=True)
    def copy(dst, src):
        for i in prange(src.size):
            dst[i] = src[i]

    @njit(parallel=True)
    def triad(a, b, c, s):
        for i in prange(a.size):
            a[i] = b[i] + s * c[i]

    return copy, triad


def _best_seconds(run, repeats: int) -> float:
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def stream(mib: int, repeats: int = 5) -> dict:
    """GB/s (read + write bytes) of np.copyto and of Numba prange copy and triad, on 1 and 2 threads.

    np.copyto runs on one thread; its 2-thread figure is two Python threads each copying one half
    (NumPy releases the GIL while it copies).
    """
    from npxception.threads import max_threads, set_num_threads

    n = mib * 2**20 // 4
    a, b, c = (np.full(n, v, np.float32) for v in (0.0, 1.0, 2.0))  # touched: no page faults when timed
    copy, triad = _stream_kernels()
    halves = (slice(0, n // 2), slice(n // 2, n))
    out = {"array_mib": mib, "results": []}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for threads in (1, 2):
            if threads > max_threads():
                continue
            set_num_threads(threads)
            numpy_copy = (lambda: np.copyto(a, b)) if threads == 1 else \
                (lambda: list(pool.map(lambda s: np.copyto(a[s], b[s]), halves)))
            for name, run, nbytes in (("np.copyto copy", numpy_copy, 8 * n),
                                      ("numba prange copy", lambda: copy(a, b), 8 * n),
                                      ("numba prange triad", lambda: triad(a, b, c, np.float32(3.0)), 12 * n)):
                seconds = _best_seconds(run, repeats)
                out["results"].append({"kernel": name, "threads": threads, "gb_per_s": nbytes / seconds / 1e9})
    return out


def square_sgemm(n: int, repeats: int = 3) -> list[dict]:
    """OpenBLAS sgemm of two n x n float32 matrices on 1 and 2 threads: 2 n^3 flops."""
    from npxception.threads import max_threads, set_num_threads

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = np.empty((n, n), np.float32)
    rows = []
    for threads in (1, 2):
        if threads > max_threads():
            continue
        set_num_threads(threads)
        seconds = _best_seconds(lambda: np.matmul(a, b, out=out), repeats)
        rows.append({"n": n, "threads": threads, "gflops": 2 * n**3 / seconds / 1e9})
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--fma-child":
        print(json.dumps(_fma_child(int(sys.argv[2]))))
    else:
        raise SystemExit("run benchmarks/roofline.py; this module is its measuring half")
