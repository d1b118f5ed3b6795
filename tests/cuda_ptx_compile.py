"""Compile every kernel of the CUDA backend to PTX for compute capability 9.0, with no GPU.

    python tests/cuda_ptx_compile.py      # run by tests/test_cuda_ptx.py in its own process

How it works without a GPU:

* Signatures. Every case of npxception/testing/cases.py runs through the backend with NumPy arrays standing
  in for device arrays and `launch` replaced by a recorder: Numba types a C-contiguous NumPy array
  and a device array alike (`array(float32, 4d, C)`), so the recorded (kernel, argument types) pairs
  are exactly the signatures that a GPU run compiles, and none is written by hand.
* Compilation. `numba.cuda.compile_ptx(kernel.py_func, types, cc=(9, 0))` lowers each one through
  NVVM (from the `cu13` extra) without touching a driver.
* Device functions. A `@cuda.jit(device=True)` dispatcher compiles its own body the first time a
  kernel calls it, and asks the *current GPU* for its compute capability to do so, which fails with
  no driver. Every device function in the backend is therefore declared `inline="always"`: Numba
  inlines it into the calling kernel at the IR level, so it is compiled as part of the kernel, for
  the kernel's target (cc 9.0 here), and never on its own.
* Registers and spills. When nvJitLink is available (cuda-bindings), the PTX is assembled for sm_90
  with `-verbose` and ptxas's report is parsed: registers per thread, spill stores/loads, local
  memory. float32 kernels must not spill (their register tiles must stay in registers).

Exit status 0 when every kernel compiled, every kernel defined in the backend was reached by some
case, no float32 kernel spills, and no float32 kernel does float64 arithmetic by accident (a Python
float literal promotes float32 math to float64, 2x-64x slower on GPUs).
"""

from __future__ import annotations

import re
import sys
import time
import types as pytypes
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numba import cuda, typeof  # noqa: E402

from npxception.backends import cuda as backend  # noqa: E402
from npxception.testing.cases import CASES, run  # noqa: E402

CC = (9, 0)
MODULES = [m for m in sys.modules.values()
           if getattr(m, "__name__", "").startswith("npxception.backends.cuda.")]


def is_kernel(obj) -> bool:
    return (hasattr(obj, "py_func") and hasattr(obj, "targetoptions")
            and not obj.targetoptions.get("device", False))


def defined_kernels() -> dict:
    """Every kernel the backend defines: module-level ones and the per-dtype tables' entries."""
    found = {}
    for module in MODULES:
        for value in vars(module).values():
            candidates = value.values() if isinstance(value, dict) else [value]
            for obj in candidates:
                if is_kernel(obj):
                    found[id(obj)] = obj
    return found


def record_signatures() -> dict:
    """{(kernel id, argument types): kernel} from running every case with recorded launches."""
    seen = {}

    def record(kernel, grid, block, *args):
        seen[(id(kernel), tuple(typeof(a) for a in args))] = kernel

    def host_empty(shape, dtype):
        return np.zeros(shape, dtype=dtype)

    for module in MODULES:
        for name, stand_in in (("launch", record), ("empty", host_empty), ("to_numpy", np.asarray)):
            if hasattr(module, name):
                setattr(module, name, stand_in)
    host = pytypes.SimpleNamespace(**{n: getattr(backend, n) for n in backend.__all__})
    host.to_device, host.to_numpy = np.ascontiguousarray, np.asarray
    with np.errstate(all="ignore"):   # outputs are never computed: only the launches matter
        for case in CASES:
            for dtype in (np.float32, np.float64):
                run(host, case, dtype)
    return seen


def ptxas_report(ptx: str) -> dict | None:
    """Registers / spills / local memory from nvJitLink's verbose log, or None if unavailable."""
    try:
        from cuda.bindings import nvjitlink
    except ImportError:
        return None
    handle = nvjitlink.create(2, [f"-arch=sm_{CC[0]}{CC[1]}", "-verbose"])
    try:
        data = ptx.encode()
        nvjitlink.add_data(handle, nvjitlink.InputType.PTX, data, len(data), "kernel")
        nvjitlink.complete(handle)
        log = bytearray(nvjitlink.get_info_log_size(handle))
        nvjitlink.get_info_log(handle, log)
    finally:
        nvjitlink.destroy(handle)
    text = log.decode(errors="replace")

    def number(pattern):
        match = re.search(pattern, text)
        return int(match.group(1)) if match else 0

    return {"registers": number(r"[Uu]sed (\d+) registers"),
            "spill_stores": number(r"(\d+) bytes spill stores"),
            "spill_loads": number(r"(\d+) bytes spill loads"),
            "local_bytes": number(r"(\d+) bytes lmem")}


def main() -> int:
    start = time.perf_counter()
    defined = defined_kernels()
    signatures = record_signatures()
    failures, rows = [], []
    for (_, argtypes), kernel in sorted(signatures.items(),
                                        key=lambda kv: kv[1].py_func.__qualname__):
        name = kernel.py_func.__name__
        dtypes = sorted({str(t.dtype) for t in argtypes if hasattr(t, "dtype") and t.ndim > 0
                         and str(t.dtype).startswith("float")})
        free = dict(zip(kernel.py_func.__code__.co_freevars,
                        (c.cell_contents for c in kernel.py_func.__closure__ or ())))
        layout = "".join("T" if free[v] else "N" for v in ("a_transposed", "b_transposed")
                         if v in free)
        label = f"{name}{'_' + layout if layout else ''}[{','.join(dtypes) or 'scalar'}]"
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, argtypes, cc=CC)
        except Exception as exc:  # report every failing kernel, not just the first
            failures.append(f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            continue
        report = ptxas_report(ptx)
        f64_ops = len(re.findall(r"^\s+(?:fma|mul|add|sub|div)(?:\.rn)?\.f64", ptx, re.M))
        rows.append((label, len(ptx), f64_ops, report))
        spills = report and (report["spill_stores"] or report["spill_loads"])
        if spills and "float64" not in dtypes:
            failures.append(f"{label}: float32 kernel spills registers ({report})")
        if f64_ops and dtypes == ["float32"]:
            failures.append(f"{label}: float32 kernel does {f64_ops} float64 operations")
    missing = sorted(k.py_func.__qualname__ for key, k in defined.items()
                     if key not in {kid for kid, _ in signatures})
    for qualname in missing:
        failures.append(f"{qualname}: defined but no case launches it")

    print(f"{'kernel':<46} {'PTX bytes':>9} {'f64 ops':>7} {'regs':>5} {'spill st/ld':>11} "
          f"{'lmem':>5}")
    for label, size, f64_ops, report in rows:
        if report is None:
            print(f"{label:<46} {size:>9} {f64_ops:>7} {'n/a':>5}")
        else:
            spill = f"{report['spill_stores']}/{report['spill_loads']}"
            print(f"{label:<46} {size:>9} {f64_ops:>7} {report['registers']:>5} {spill:>11} "
                  f"{report['local_bytes']:>5}")
    print(f"{len(rows)} kernel signatures compiled for sm_{CC[0]}{CC[1]} "
          f"({len(defined)} kernels defined) in {time.perf_counter() - start:.1f} s")
    for line in failures:
        print("FAIL", line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
