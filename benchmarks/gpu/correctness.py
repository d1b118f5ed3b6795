"""Stage "ops": every CUDA op against the NumPy reference at Xception's layer shapes.

float32 on the GPU against the float64 reference on the same inputs (the arguments are drawn in
float32 and cast up), within FLOAT32_RTOL; ops that must be bit-identical (the dropout mask, add)
against the float32 reference exactly. Then float64 on the GPU for the first shape of every
function at the test suite's float64 budget: a tight check of the index arithmetic.
"""

from __future__ import annotations

import time

import numpy as np

from npxception.testing.compare import RTOL, assert_close
from npxception.testing.cases import Case, run as run_case

from .cases import selected_cases
from .context import guarded

# At Xception's shapes one output sums up to 2 x 147 x 147 products (filter and batch-norm
# gradients); the kernels sum in fixed-order partials, which keeps float32 near 1e-6, but a
# budget of 1e-3 separates rounding from a wrong index without flagging long sums.
FLOAT32_RTOL = 1e-3


def compare(case: Case, dtype, backend, reference) -> float:
    """Max relative error of `case` on the GPU in `dtype` (asserts shapes, NaNs, infinities, budget)."""
    ours = run_case(backend, case, np.float32, compute_dtype=dtype)
    if case.exact:
        expected = run_case(reference, case, np.float32, compute_dtype=dtype)
    else:
        expected = run_case(reference, case, np.float32, compute_dtype=np.float64)
    if len(ours) != len(expected):
        raise AssertionError(f"{case.name}: {len(ours)} outputs, the reference has {len(expected)}")
    worst = 0.0
    for k, (a, e) in enumerate(zip(ours, expected)):
        if e is None or a is None:
            if (a is None) != (e is None):
                raise AssertionError(f"{case.name} output {k}: {a!r} where the reference has {e!r}")
            continue
        a, e = np.asarray(a), np.asarray(e)
        if a.dtype != np.dtype(dtype) and a.ndim:
            raise AssertionError(f"{case.name} output {k}: dtype {a.dtype}, expected {np.dtype(dtype)}")
        if case.exact:
            if not np.array_equal(a, e, equal_nan=True):
                raise AssertionError(f"{case.name} output {k}: not bit-identical to the reference")
            continue
        rtol = FLOAT32_RTOL if np.dtype(dtype) == np.float32 else RTOL[np.dtype(np.float64)]
        worst = max(worst, assert_close(a.astype(np.float64), e, name=f"{case.name} output {k}", rtol=rtol))
    return worst


def stage(run) -> dict:
    from npxception.backends import get_backend

    gpu, reference = get_backend("cuda"), get_backend("numpy")
    batch = 1 if run.sim else run.options.get("check_batch", 2)
    stop_at = run.options.get("checks_stop_at_s", 0.6 * run.budget_s)   # leave this much for the rest
    cases = selected_cases(run, batch)
    first_of_fn = {}
    for case in cases:
        first_of_fn.setdefault(case.fn, case)
    plan = [(c, np.float32) for c in cases] + [(c, np.float64) for c in first_of_fn.values()]
    rows, skipped = [], []
    for case, dtype in plan:
        if run.left() < stop_at:
            skipped.append(f"{case.name} {np.dtype(dtype)}")
            continue
        t0 = time.perf_counter()
        err, failure = guarded(compare, case, dtype, gpu, reference)
        row = {"op": case.name, "dtype": str(np.dtype(dtype)), "ok": failure is None,
               "max_rel_error": err, "seconds": round(time.perf_counter() - t0, 3)}
        if failure:
            row["error"] = failure
        rows.append(row)
        mark = "ok " if row["ok"] else "BAD"
        detail = f"err {err:.1e}" if err is not None else failure
        print(f"  {mark} {case.name:<52} {row['dtype']:<8} {detail}", flush=True)
    bad = [r["op"] + " " + r["dtype"] for r in rows if not r["ok"]]
    return {"batch": batch, "checked": len(rows), "passed": len(rows) - len(bad), "failed": bad,
            "skipped_for_budget": skipped, "rows": rows}
